//! The Rust side of the Python module's cross-process tests (`membus-py/tests`).
//! Usage: `membus-py-peer ROLE NAME ARGS...`. Every role prints one result line on
//! stdout; roles that own a share (`*-serve`) then keep it until a line arrives on stdin.
//!
//! Roles (payloads are `"<tag>-<i>"` for i in 0..COUNT):
//! * `msg-write NAME COUNT`, `cmd-write NAME COUNT`: attach and write COUNT messages
//!   tagged `rust`; print `done`.
//! * `msg-read NAME COUNT`, `cmd-read NAME COUNT`: attach, read COUNT messages from the
//!   oldest (5 s each), print them joined by `,`.
//! * `kv-set NAME KEY VALUE`: attach a memkv and set KEY; print `done`.
//! * `kv-get NAME KEY`: print KEY's value.
//! * `map-write NAME TEXT`: attach a memmap and write TEXT at offset 0; print `done`.
//! * `map-read NAME LEN`: print the first LEN bytes as text.
//! * `vid-serve NAME COUNT`: create an 8×4 rgb24 memvid (3 slots, scanwidth 32), publish
//!   COUNT frames whose every payload byte is `(seq * 7 + offset) % 251`, print `done`.
//! * `vid-read NAME`: attach, print `seq=S sum=X vpts=V` for the newest frame (slot
//!   ptr-1), where X sums the visible pixel bytes (padding excluded).
//! * `aud-serve NAME COUNT`: create a stereo s16le 48 kHz/100 fps memaud (3 buffers),
//!   publish COUNT buffers whose sample k is `seq * 1000 + k` (as i16), print `done`.
//! * `aud-read NAME`: print `seq=S first=A last=B pts=P` for the newest buffer.
//! * `pkt-serve NAME COUNT`: create a mempkt (8 descriptors, 4 KiB arena, maxrec 512)
//!   and write COUNT records `rust-i` (kind video, track 3, pts i, meta `m-i`); print `done`.
//! * `pkt-read NAME COUNT`: attach from the oldest and print the COUNT records'
//!   `payload/meta/pts` joined by `,`.

use std::io::{BufRead, Write};
use std::process::exit;
use std::time::{Duration, Instant};

use membus::layout::media::{AudioFormat, VideoFormat};
use membus::memaud::{AudioParams, AudioReader, AudioWriter};
use membus::memcmd::MemCmd;
use membus::memkv::MemKv;
use membus::memmsg::{Reader, Writer};
use membus::mempkt::{PacketParams, PacketReader, PacketWriter, PktKind, RecordMeta};
use membus::memvid::{VideoParams, VideoReader, VideoWriter};
use membus::{MemMap, Next, QueueOptions, ReadFrom, Received, Start};

fn fail(msg: String) -> ! {
    eprintln!("membus-py-peer: {msg}");
    exit(1)
}

fn arg(args: &[String], i: usize) -> &str {
    args.get(i)
        .map(String::as_str)
        .unwrap_or_else(|| fail(format!("missing argument {i}")))
}

fn num(args: &[String], i: usize) -> u64 {
    arg(args, i)
        .parse()
        .unwrap_or_else(|e| fail(format!("argument {i}: {e}")))
}

fn ok<T>(r: membus::Result<T>, what: &str) -> T {
    r.unwrap_or_else(|e| fail(format!("{what}: {e}")))
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Keeps a created share until the parent writes a line (or closes stdin).
fn serve() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

fn read_n(
    count: u64,
    mut read: impl FnMut(&mut Vec<u8>) -> membus::Result<Received<usize>>,
) -> String {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..count {
        match ok(read(&mut buf), "read") {
            Received::Message { .. } => out.push(String::from_utf8_lossy(&buf).into_owned()),
            Received::Timeout => fail("timed out".into()),
            Received::Overrun { lost } => fail(format!("overrun, {lost} lost")),
        }
    }
    out.join(",")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = arg(&args, 2);
    let wait = Duration::from_secs(5);
    let oldest = QueueOptions::new().start(Start::Oldest);
    match arg(&args, 1) {
        "msg-write" => {
            let w = ok(Writer::attach(name), "attach");
            for i in 0..num(&args, 3) {
                ok(w.write(format!("rust-{i}").as_bytes()), "write");
            }
            say("done");
        }
        "cmd-write" => {
            let c = ok(
                MemCmd::attach_with(name, &QueueOptions::new().register_reader(false)),
                "attach",
            );
            for i in 0..num(&args, 3) {
                ok(c.write(format!("rust-{i}").as_bytes()), "write");
            }
            say("done");
        }
        "msg-read" => {
            let mut r = ok(Reader::attach_with(name, &oldest), "attach");
            say(&read_n(num(&args, 3), |b| r.read_into(b, wait)));
        }
        "cmd-read" => {
            let mut c = ok(MemCmd::attach_with(name, &oldest), "attach");
            say(&read_n(num(&args, 3), |b| c.read_into(b, wait)));
        }
        "kv-set" => {
            let kv = ok(MemKv::attach(name), "attach");
            ok(kv.set_by_name(arg(&args, 3), arg(&args, 4)), "set");
            say("done");
        }
        "kv-get" => {
            let kv = ok(MemKv::attach(name), "attach");
            let v = ok(kv.get_by_name(arg(&args, 3)), "get");
            say(&String::from_utf8_lossy(&v.value));
        }
        "map-write" => {
            let m = ok(MemMap::attach(name), "attach");
            m.write(arg(&args, 3).as_bytes());
            say("done");
        }
        "map-read" => {
            let m = ok(MemMap::attach_read_only(name), "attach");
            say(&String::from_utf8_lossy(&m.read(num(&args, 3) as usize)));
        }
        "vid-serve" => {
            let mut p = VideoParams::new(8, 4, VideoFormat::Rgb24, 30, 3);
            p.scanwidth = 32;
            p.mode = 0o644;
            let mut w = ok(VideoWriter::create(name, &p), "create");
            for _ in 0..num(&args, 3) {
                let seq = w.seq() + 1;
                let mut f = w.frame();
                let bytes = ok(f.bytes_mut(), "frame");
                for (k, b) in bytes.iter_mut().enumerate() {
                    *b = ((seq as usize * 7 + k) % 251) as u8;
                }
                f.set_vpts(seq as i64 * 100);
                ok(w.publish(), "publish");
            }
            say("done");
            serve();
        }
        "vid-read" => {
            let r = ok(VideoReader::attach(name), "attach");
            let l = r.layout().clone();
            let slot = (ok(r.write_ptr(), "ptr") + l.frames.bufs - 1) % l.frames.bufs;
            let f = ok(r.slot(slot), "slot");
            let data = f.to_vec();
            let row = l.video.width * l.video.format.bytes_per_pixel();
            let sum: u64 = data
                .chunks(l.video.scanwidth)
                .flat_map(|r| &r[..row])
                .map(|&b| u64::from(b))
                .sum();
            say(&format!("seq={} sum={sum} vpts={}", f.seq(), f.vpts()));
        }
        "aud-serve" => {
            let mut p = AudioParams::new(2, AudioFormat::S16le, 48_000, 100, 3);
            p.mode = 0o644;
            let mut w = ok(AudioWriter::create(name, &p), "create");
            for _ in 0..num(&args, 3) {
                let seq = w.seq() + 1;
                let mut b = w.buffer();
                let s = ok(b.samples_mut::<i16>(), "samples");
                for (k, v) in s.iter_mut().enumerate() {
                    *v = (seq as i64 * 1000 + k as i64) as i16;
                }
                b.set_pts(seq as i64);
                ok(w.publish(), "publish");
            }
            say("done");
            serve();
        }
        "aud-read" => {
            let r = ok(AudioReader::attach(name), "attach");
            let bufs = r.layout().frames.bufs;
            let slot = (ok(r.write_ptr(), "ptr") + bufs - 1) % bufs;
            let b = ok(r.slot(slot), "slot");
            let s = ok(b.samples::<i16>(), "samples");
            say(&format!(
                "seq={} first={} last={} pts={}",
                b.seq(),
                s[0],
                s[s.len() - 1],
                b.pts()
            ));
        }
        "pkt-serve" => {
            let mut p = PacketParams::new(8, 4096, 512);
            p.mode = 0o644;
            let mut w = ok(PacketWriter::create(name, &p), "create");
            for i in 0..num(&args, 3) {
                let meta = format!("m-{i}");
                let rec = RecordMeta {
                    kind: PktKind::Video,
                    track: 3,
                    pts: i as i64,
                    meta: meta.as_bytes(),
                };
                ok(w.write(format!("rust-{i}").as_bytes(), &rec), "write");
            }
            say("done");
            serve();
        }
        "pkt-read" => {
            let opts = membus::mempkt::ReaderOptions {
                from: ReadFrom::Oldest,
                ..Default::default()
            };
            let mut r = ok(PacketReader::attach_with(name, &opts), "attach");
            let (mut payload, mut meta, mut out) = (Vec::new(), Vec::new(), Vec::new());
            let deadline = Instant::now() + wait;
            while (out.len() as u64) < num(&args, 3) {
                match ok(r.next_into(&mut payload, &mut meta), "next") {
                    Next::Frame(info) => out.push(format!(
                        "{}/{}/{}",
                        String::from_utf8_lossy(&payload),
                        String::from_utf8_lossy(&meta),
                        info.pts
                    )),
                    Next::Overrun { lost } => fail(format!("overrun, {lost} lost")),
                    Next::Empty if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Next::Empty => fail("timed out".into()),
                }
            }
            say(&out.join(","));
        }
        other => fail(format!("unknown role {other}")),
    }
}
