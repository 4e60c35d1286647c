//! Exporter and importer as separate processes over 127.0.0.1.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{endpoint, field, final_line, free_port, unique_namespace, Proc};
use membus::memcmd::MemCmd;
use membus::memkv::MemKv;
use membus::memmsg::{Reader, Writer};
use membus::mirror::MirrorNote;
use membus::Received;
use membus_tests::ShmGuard;

const START: Duration = Duration::from_secs(30);

fn exporter(label: &str, ns: &str, port: u16, names: &[&str]) -> Proc {
    let ep = endpoint(port);
    let mut args = vec!["export", "--listen", &ep, "--namespace", ns];
    args.extend_from_slice(names);
    Proc::spawn(label, &args)
}

fn importer(label: &str, ns: &str, port: u16, spec: &str) -> Proc {
    let ep = endpoint(port);
    Proc::spawn(
        label,
        &["import", spec, "--connect", &ep, "--namespace", ns],
    )
}

#[test]
fn memmsg_20000_messages_arrive_in_order_without_loss() {
    let src = ShmGuard::new("bridge-msg-src");
    let dst = ShmGuard::new("bridge-msg-dst");
    let ns = unique_namespace();
    // Large enough that the local writer never laps the exporter's reader.
    let writer = Writer::create(src.name(), 4 << 20).unwrap();
    let port = free_port();
    let mut exp = exporter("exp", &ns, port, &[src.name()]);
    exp.wait_line(&["export memmsg", src.name()], START);
    let spec = format!("{}={}", src.name(), dst.name());
    let mut imp = importer("imp", &ns, port, &spec);
    imp.wait_line(&["ready", dst.name()], START);
    let mut reader = Reader::attach(dst.name()).unwrap();
    assert_eq!(
        reader.capacity(),
        4 << 20,
        "mirror has the exporter's capacity"
    );

    const N: u64 = 20_000;
    let mut msg = [0u8; 64];
    for i in 0..N {
        msg[..8].copy_from_slice(&i.to_le_bytes());
        msg[8..16].copy_from_slice(&(!i).to_le_bytes());
        writer.write(&msg).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut got = 0u64;
    let mut last_seq = 0;
    while got < N {
        assert!(
            Instant::now() < deadline,
            "only {got} of {N} messages within 120 s"
        );
        match reader.read(Duration::from_millis(200)).unwrap() {
            Received::Message { seq, payload } => {
                assert_eq!(payload.len(), 64);
                let i = u64::from_le_bytes(payload[..8].try_into().unwrap());
                let j = u64::from_le_bytes(payload[8..16].try_into().unwrap());
                assert_eq!((i, j), (got, !got), "message {got} out of order or corrupt");
                assert!(seq > last_seq);
                last_seq = seq;
                got += 1;
            }
            Received::Timeout => {}
            Received::Overrun { lost } => panic!("mirror reader lost {lost} after {got}"),
        }
    }
    imp.signal(libc::SIGUSR1);
    let status = imp.wait_line(&["status:", dst.name()], START);
    assert_eq!(field(&status, "received"), N, "{status}");
    let imp_lines = imp.stop();
    let exp_lines = exp.stop();
    let fin = final_line(&imp_lines, dst.name());
    assert_eq!(field(fin, "lost"), 0, "{fin}");
    assert_eq!(field(fin, "malformed"), 0, "{fin}");
    assert_eq!(field(final_line(&exp_lines, src.name()), "sent"), N);
    // The importer removed the mirror it created.
    assert!(
        membus::has_live_owner(dst.name()).is_err(),
        "mirror {} still exists after the importer stopped",
        dst.name()
    );
}

#[test]
fn memcmd_commands_from_two_importers_arrive_exactly_once() {
    let owner_name = ShmGuard::new("bridge-cmd-own");
    let a = ShmGuard::new("bridge-cmd-a");
    let b = ShmGuard::new("bridge-cmd-b");
    let ns = unique_namespace();
    let mut owner = MemCmd::create(owner_name.name(), 1 << 20).unwrap();
    let port = free_port();
    let spec = format!("memcmd:{}", owner_name.name());
    let mut exp = exporter("exp", &ns, port, &[&spec]);
    exp.wait_line(&["export memcmd", owner_name.name()], START);
    let mut ia = importer(
        "imp-a",
        &ns,
        port,
        &format!("{}={}", owner_name.name(), a.name()),
    );
    let mut ib = importer(
        "imp-b",
        &ns,
        port,
        &format!("{}={}", owner_name.name(), b.name()),
    );
    ia.wait_line(&["ready", a.name()], START);
    ib.wait_line(&["ready", b.name()], START);
    let ca = MemCmd::attach(a.name()).unwrap();
    let cb = MemCmd::attach(b.name()).unwrap();
    const N: usize = 500;
    for i in 0..N {
        ca.write(format!("a-{i}").as_bytes()).unwrap();
        cb.write(format!("b-{i}").as_bytes()).unwrap();
    }
    let mut next: HashMap<String, usize> = HashMap::new();
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while total < 2 * N {
        assert!(
            Instant::now() < deadline,
            "only {total} commands within 60 s"
        );
        match owner.read(Duration::from_millis(200)).unwrap() {
            Received::Message { payload, .. } => {
                let s = String::from_utf8(payload).unwrap();
                let (who, i) = s.split_once('-').unwrap();
                let i: usize = i.parse().unwrap();
                let want = next.entry(who.to_owned()).or_insert(0);
                assert_eq!(
                    i, *want,
                    "sender {who}: got {i}, expected {want} (order/duplicate)"
                );
                *want += 1;
                total += 1;
            }
            Received::Timeout => {}
            Received::Overrun { lost } => panic!("owner lost {lost}"),
        }
    }
    // Nothing more arrives: exactly once.
    match owner.read(Duration::from_millis(500)).unwrap() {
        Received::Timeout => {}
        other => panic!("extra command after {total}: {other:?}"),
    }
    assert_eq!(next["a"], N);
    assert_eq!(next["b"], N);
    ia.stop();
    ib.stop();
    let lines = exp.stop();
    let fin = final_line(&lines, owner_name.name());
    assert_eq!(field(fin, "received"), 2 * N as u64, "{fin}");
    assert_eq!(field(fin, "duplicates"), 0, "{fin}");
}

#[test]
fn memkv_late_joiner_gets_snapshot_then_whole_batches() {
    let src = ShmGuard::new("bridge-kv-src");
    let dst = ShmGuard::new("bridge-kv-dst");
    let ns = unique_namespace();
    let kv = MemKv::create_named(src.name(), &["mode", "x", "y"], 14, 32).unwrap();
    kv.set_by_name("mode", "auto").unwrap();
    kv.set_many(&[(1, b"0".as_slice()), (2, b"0")]).unwrap();
    let port = free_port();
    let mut exp = exporter("exp", &ns, port, &[src.name()]);
    exp.wait_line(&["export memkv", src.name()], START);
    // Changes before anyone imports: the late joiner must see their result.
    for i in 1..=20 {
        let v = i.to_string();
        kv.set_many(&[(1, v.as_bytes()), (2, v.as_bytes())])
            .unwrap();
    }
    let mut imp = importer("imp", &ns, port, &format!("{}={}", src.name(), dst.name()));
    imp.wait_line(&["ready", dst.name()], START);
    let mirror = MemKv::attach(dst.name()).unwrap();
    assert_eq!(mirror.slot_names().unwrap(), ["mode", "x", "y"]);
    assert_eq!(mirror.max_value_len(), kv.max_value_len());
    let snap = mirror.snapshot().unwrap();
    assert_eq!(
        snap.values,
        [b"auto".to_vec(), b"20".to_vec(), b"20".to_vec()]
    );
    // The mirror's epochs are the exporter's: 1 + 1 + 20 batches so far.
    assert_eq!(snap.epoch, kv.epoch(), "{snap:?}");
    assert_eq!(snap.epoch, 22);

    // Now batches: x and y always change together; the mirror must never show them apart.
    const LAST: u32 = 300;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 21;
    loop {
        assert!(
            Instant::now() < deadline,
            "mirror did not reach batch {LAST} in 60 s"
        );
        if i <= LAST {
            let v = i.to_string();
            kv.set_many(&[(1, v.as_bytes()), (2, v.as_bytes())])
                .unwrap();
            i += 1;
        }
        let s = mirror.snapshot().unwrap();
        assert_eq!(s.values[1], s.values[2], "batch split on the mirror: {s:?}");
        if s.values[1] == LAST.to_string().as_bytes() {
            break;
        }
        if i > LAST {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    kv.set_by_name("mode", "manual").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while mirror.get(0).unwrap().value != b"manual" {
        assert!(Instant::now() < deadline, "single set did not arrive");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Every batch was applied under the exporter's own epoch, so a reader of the mirror
    // sees the same numbers (and the same change history) as one of the source.
    assert_eq!(mirror.epoch(), kv.epoch());
    let last_epochs = |k: &MemKv| -> Vec<(usize, i64)> {
        let mut c: Vec<_> = k
            .changed_since(0)
            .unwrap()
            .changes
            .iter()
            .map(|c| (c.index, c.epoch))
            .collect();
        c.sort();
        c
    };
    assert_eq!(last_epochs(&mirror), last_epochs(&kv));
    let lines = imp.stop();
    exp.stop();
    let fin = final_line(&lines, dst.name());
    assert_eq!(field(fin, "lost"), 0, "{fin}");
}

fn checksum(b: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for c in b.chunks_exact(8) {
        h = (h ^ u64::from_le_bytes(c.try_into().unwrap())).wrapping_mul(0x100_0000_01b3);
    }
    h
}

#[test]
fn memvid_300_frames_with_checksums_and_counted_skips() {
    use membus::layout::media::VideoFormat;
    use membus::memvid::{VideoParams, VideoReader, VideoWriter};
    use membus::{Identity, Next};

    let src = ShmGuard::new("bridge-vid-src");
    let dst = ShmGuard::new("bridge-vid-dst");
    let ns = unique_namespace();
    let mut params = VideoParams::new(640, 480, VideoFormat::Rgb24, 30, 4);
    params.frameextra = 16;
    params.identity = Identity {
        fourcc: u32::from_le_bytes(*b"RGB3"),
        guid: [0xab; 16],
        meta: b"camera-7".to_vec(),
    };
    let mut writer = VideoWriter::create(src.name(), &params).unwrap();
    let port = free_port();
    let mut exp = exporter("exp", &ns, port, &[src.name()]);
    exp.wait_line(&["export memvid", src.name()], START);
    let mut imp = importer("imp", &ns, port, &format!("{}={}", src.name(), dst.name()));
    imp.wait_line(&["ready", dst.name()], START);
    let mut reader = VideoReader::attach(dst.name()).unwrap();
    assert_eq!(reader.fourcc(), params.identity.fourcc);
    assert_eq!(reader.guid(), params.identity.guid);
    assert_eq!(reader.meta().unwrap(), b"camera-7");
    assert_eq!(
        reader.layout(),
        writer.layout(),
        "mirror has the same geometry"
    );

    const N: u64 = 300;
    let len = 640 * 3 * 480;
    let mut buf = vec![0u8; len];
    let (mut ok, mut torn, mut overrun) = (0u64, 0u64, 0u64);
    let mut last_index = None;
    let mut drain = |reader: &mut VideoReader, last: &mut Option<u64>| loop {
        match reader.next().unwrap() {
            Next::Frame(f) => {
                f.copy_to(&mut buf).unwrap();
                let user = f.user_data();
                let vpts = f.vpts();
                if !f.is_intact() {
                    torn += 1;
                    continue;
                }
                assert_eq!(user.len(), 16);
                let i = u64::from_le_bytes(user[..8].try_into().unwrap());
                let sum = u64::from_le_bytes(user[8..].try_into().unwrap());
                assert_eq!(checksum(&buf), sum, "frame {i}: checksum");
                assert_eq!(buf[0], i as u8, "frame {i}: first pixel");
                assert_eq!(vpts, 1000 + i as i64);
                assert!(last.is_none_or(|l| i > l), "frame {i} after {last:?}");
                *last = Some(i);
                ok += 1;
            }
            Next::Overrun { lost } => overrun += lost,
            Next::Empty => break,
        }
    };
    for i in 0..N {
        {
            let mut f = writer.frame();
            let bytes = f.bytes_mut().unwrap();
            for (y, row) in bytes.chunks_exact_mut(640 * 3).enumerate() {
                row.fill((i as usize + y) as u8);
            }
            let sum = checksum(bytes);
            let mut user = [0u8; 16];
            user[..8].copy_from_slice(&i.to_le_bytes());
            user[8..].copy_from_slice(&sum.to_le_bytes());
            f.set_user_data(&user).unwrap();
            f.set_vpts(1000 + i as i64);
        }
        writer.publish().unwrap();
        drain(&mut reader, &mut last_index);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while last_index != Some(N - 1) {
        assert!(
            Instant::now() < deadline,
            "last frame never arrived ({last_index:?})"
        );
        reader.wait_ready(Duration::from_millis(100));
        drain(&mut reader, &mut last_index);
    }
    let lines = imp.stop();
    let exp_lines = exp.stop();
    let fin = final_line(&lines, dst.name());
    let (skipped, lost) = (field(fin, "skipped"), field(fin, "lost"));
    assert_eq!(field(fin, "malformed"), 0, "{fin}");
    assert_eq!(
        ok + torn + overrun + skipped + lost,
        N,
        "every frame delivered or counted: ok {ok} torn {torn} overrun {overrun} skipped {skipped} lost {lost}"
    );
    let efin = final_line(&exp_lines, src.name());
    assert_eq!(
        field(efin, "skipped"),
        skipped,
        "skips counted at the source: {efin}"
    );
    eprintln!("frames: ok {ok} torn {torn} mirror overrun {overrun} skipped {skipped} lost {lost}");
}

#[test]
fn exporter_killed_marks_mirror_stale_then_resumes_without_duplicates() {
    let src = ShmGuard::new("bridge-kill-src");
    let dst = ShmGuard::new("bridge-kill-dst");
    let ns = unique_namespace();
    let writer = Writer::create(src.name(), 1 << 16).unwrap();
    let port = free_port();
    let mut exp = exporter("exp", &ns, port, &[src.name()]);
    exp.wait_line(&["export memmsg", src.name()], START);
    let mut imp = importer("imp", &ns, port, &format!("{}={}", src.name(), dst.name()));
    imp.wait_line(&["ready", dst.name()], START);
    let mut reader = Reader::attach(dst.name()).unwrap();
    let read_n = |reader: &mut Reader, n: usize, tag: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        while got.len() < n {
            assert!(Instant::now() < deadline, "{tag}: only {got:?}");
            match reader.read(Duration::from_millis(100)).unwrap() {
                Received::Message { payload, .. } => got.push(String::from_utf8(payload).unwrap()),
                Received::Timeout => {}
                Received::Overrun { lost } => panic!("{tag}: overrun {lost}"),
            }
        }
        got
    };
    for i in 0..5 {
        writer.write(format!("one-{i}").as_bytes()).unwrap();
    }
    assert_eq!(read_n(&mut reader, 5, "before")[4], "one-4");

    // SIGKILL: no chance to say goodbye.
    exp.child.kill().unwrap();
    exp.child.wait().unwrap();
    imp.wait_line(&["mirror stale", dst.name()], Duration::from_secs(20));
    imp.signal(libc::SIGUSR1);
    imp.wait_line(&["status:", dst.name(), "[stale]"], START);
    // Local tools see it too: the mirror note beside the share says the source is gone.
    let note = MirrorNote::read(dst.name())
        .unwrap()
        .expect("a mirror note");
    assert!(!note.live, "{note:?}");
    assert_eq!(note.source, format!("{ns}/membus{}", src.name()));
    assert_eq!(note.pid, imp.child.id());

    // A new exporter session on the same endpoint: the mirror follows it again.
    let mut exp2 = exporter("exp2", &ns, port, &[src.name()]);
    exp2.wait_line(&["export memmsg", src.name()], START);
    imp.wait_line(&["is back", dst.name()], Duration::from_secs(30));
    // Messages written while no exporter ran are not replayed (no duplicates); new ones
    // arrive. Retry until the importer has the new exporter's data path.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    let first = loop {
        assert!(Instant::now() < deadline, "nothing from the new exporter");
        writer.write(format!("two-{i}").as_bytes()).unwrap();
        i += 1;
        if let Received::Message { payload, .. } = reader.read(Duration::from_millis(200)).unwrap()
        {
            break String::from_utf8(payload).unwrap();
        }
    };
    assert!(
        first.starts_with("two-"),
        "replayed an old message: {first}"
    );
    assert!(MirrorNote::read(dst.name()).unwrap().unwrap().live);
    let lines = imp.stop();
    exp2.stop();
    // The bridge removes the note with the mirror.
    assert_eq!(MirrorNote::read(dst.name()).unwrap(), None);
    let fin = final_line(&lines, dst.name());
    assert_eq!(field(fin, "duplicates"), 0, "{fin}");
    assert!(field(fin, "resyncs") >= 1, "{fin}");
}

#[test]
fn malformed_frames_are_counted_and_skipped() {
    use zenoh::Wait;

    let src = ShmGuard::new("bridge-bad-src");
    let dst = ShmGuard::new("bridge-bad-dst");
    let ns = unique_namespace();
    let writer = Writer::create(src.name(), 1 << 16).unwrap();
    let (port, port2) = (free_port(), free_port());
    let mut exp = exporter("exp", &ns, port, &[src.name()]);
    exp.wait_line(&["export memmsg", src.name()], START);
    let (ep, ep2) = (endpoint(port), endpoint(port2));
    let spec = format!("{}={}", src.name(), dst.name());
    let mut imp = Proc::spawn(
        "imp",
        &[
            "import",
            &spec,
            "--connect",
            &ep,
            "--listen",
            &ep2,
            "--namespace",
            &ns,
        ],
    );
    imp.wait_line(&["ready", dst.name()], START);
    let mut reader = Reader::attach(dst.name()).unwrap();

    // A hostile peer on the importer's endpoint.
    let net = membus_bridge::NetOptions {
        connect: vec![ep2.clone()],
        ..Default::default()
    };
    let session = membus_bridge::net::open_session(&net).unwrap();
    let keys = membus_bridge::Keys::new(Some(&ns), src.name()).unwrap();
    let mut good_header = Vec::new();
    membus_bridge::wire::Header {
        kind: membus_bridge::wire::Kind::Video,
        session: 1,
        seq: 1,
        skipped: 0,
        stamp: 0,
    }
    .write(&mut good_header);
    let bad: Vec<Vec<u8>> = vec![
        vec![],
        b"garbage".to_vec(),
        vec![0xff; 100],
        good_header[..20].to_vec(),
        good_header.clone(), // a video frame on a memmsg share
    ];
    // Wait until the hostile peer's puts reach the importer: repeat the batch until the
    // importer reports malformed frames (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "importer never saw the malformed frames"
        );
        for b in &bad {
            session.put(keys.data.clone(), b.clone()).wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
        imp.signal(libc::SIGUSR1);
        let l = imp.wait_line(&["status:", dst.name()], START);
        imp.seen.retain(|s| !s.starts_with("status:"));
        if field(&l, "malformed") >= bad.len() as u64 {
            break;
        }
    }
    session.close().wait().unwrap();
    // Nothing bogus reached the mirror, and the real stream still flows.
    writer.write(b"real").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "real message did not arrive");
        match reader.read(Duration::from_millis(100)).unwrap() {
            Received::Message { payload, .. } => {
                assert_eq!(payload, b"real", "a malformed frame reached the mirror");
                break;
            }
            Received::Timeout => {}
            Received::Overrun { lost } => panic!("overrun {lost}"),
        }
    }
    imp.stop();
    exp.stop();
}

#[test]
fn memaud_buffers_arrive_in_order_and_are_never_skipped() {
    use membus::layout::media::AudioFormat;
    use membus::memaud::{AudioParams, AudioReader, AudioWriter};
    use membus::Next;

    let src = ShmGuard::new("bridge-aud-src");
    let dst = ShmGuard::new("bridge-aud-dst");
    let ns = unique_namespace();
    let mut params = AudioParams::new(2, AudioFormat::S16le, 48_000, 100, 64);
    params.frameextra = 8;
    params.identity.guid = [3; 16];
    let mut writer = AudioWriter::create(src.name(), &params).unwrap();
    let port = free_port();
    let mut exp = exporter("exp", &ns, port, &[src.name()]);
    exp.wait_line(&["export memaud", src.name()], START);
    let mut imp = importer("imp", &ns, port, &format!("{}={}", src.name(), dst.name()));
    imp.wait_line(&["ready", dst.name()], START);
    let mut reader = AudioReader::attach(dst.name()).unwrap();
    assert_eq!(reader.layout(), writer.layout());
    assert_eq!(reader.guid(), [3; 16]);
    const N: i64 = 400;
    let mut buf = vec![0u8; writer.layout().frames.payload];
    let (mut ok, mut overrun, mut next_pts) = (0i64, 0u64, 0i64);
    let mut drain = |reader: &mut AudioReader, next_pts: &mut i64| loop {
        match reader.next().unwrap() {
            Next::Frame(b) => {
                b.copy_to(&mut buf).unwrap();
                let (pts, user) = (b.pts(), b.user_data());
                assert!(b.is_intact());
                assert!(pts >= *next_pts, "buffer {pts} after {next_pts}");
                assert!(buf.iter().all(|&x| x == pts as u8), "buffer {pts} content");
                assert_eq!(user, pts.to_le_bytes());
                *next_pts = pts + 1;
                ok += 1;
            }
            Next::Overrun { lost } => overrun += lost,
            Next::Empty => break,
        }
    };
    for i in 0..N {
        {
            let mut b = writer.buffer();
            b.fill(i as u8).unwrap();
            b.set_pts(i);
            b.set_user_data(&i.to_le_bytes()).unwrap();
        }
        writer.publish().unwrap();
        std::thread::sleep(Duration::from_millis(1));
        drain(&mut reader, &mut next_pts);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while next_pts < N {
        assert!(
            Instant::now() < deadline,
            "last buffer never arrived ({next_pts})"
        );
        reader.wait_ready(Duration::from_millis(100));
        drain(&mut reader, &mut next_pts);
    }
    let lines = imp.stop();
    let exp_lines = exp.stop();
    let fin = final_line(&lines, dst.name());
    assert_eq!(field(fin, "skipped"), 0, "audio is never skipped: {fin}");
    assert_eq!(field(final_line(&exp_lines, src.name()), "skipped"), 0);
    assert_eq!(ok as u64 + overrun + field(fin, "lost"), N as u64, "{fin}");
}

#[test]
fn mempkt_records_keep_kind_track_pts_and_meta() {
    use membus::mempkt::{PacketParams, PacketReader, PacketWriter, PktKind, RecordMeta};
    use membus::Next;

    let src = ShmGuard::new("bridge-pkt-src");
    let dst = ShmGuard::new("bridge-pkt-dst");
    let ns = unique_namespace();
    let mut params = PacketParams::new(4096, 4 << 20, 4096);
    params.identity.fourcc = 42;
    params.identity.meta = b"pkt-meta".to_vec();
    let mut writer = PacketWriter::create(src.name(), &params).unwrap();
    let port = free_port();
    let mut exp = exporter("exp", &ns, port, &[src.name()]);
    exp.wait_line(&["export mempkt", src.name()], START);
    let mut imp = importer("imp", &ns, port, &format!("{}={}", src.name(), dst.name()));
    imp.wait_line(&["ready", dst.name()], START);
    let mut reader = PacketReader::attach(dst.name()).unwrap();
    assert_eq!(reader.fourcc(), 42);
    assert_eq!(reader.meta().unwrap(), b"pkt-meta");
    const N: i64 = 2000;
    for i in 0..N {
        let payload = vec![i as u8; 1 + (i as usize % 700)];
        let meta = i.to_le_bytes();
        let rec = RecordMeta {
            kind: if i % 2 == 0 {
                PktKind::Video
            } else {
                PktKind::Other(9)
            },
            track: i % 3,
            pts: 10 * i,
            meta: &meta,
        };
        writer.write(&payload, &rec).unwrap();
    }
    let (mut payload, mut meta) = (Vec::new(), Vec::new());
    let mut i = 0i64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while i < N {
        assert!(Instant::now() < deadline, "only {i} records within 60 s");
        match reader.next_into(&mut payload, &mut meta).unwrap() {
            Next::Frame(r) => {
                assert_eq!(r.pts, 10 * i, "record order");
                assert_eq!(r.track, i % 3);
                assert_eq!(r.kind.value(), if i % 2 == 0 { 1 } else { 9 });
                assert_eq!(meta, i.to_le_bytes());
                assert_eq!(payload, vec![i as u8; 1 + (i as usize % 700)]);
                i += 1;
            }
            Next::Overrun { lost } => panic!("mirror overrun {lost} at {i}"),
            Next::Empty => {
                reader.wait_ready(Duration::from_millis(100));
            }
        }
    }
    let lines = imp.stop();
    exp.stop();
    let fin = final_line(&lines, dst.name());
    assert_eq!(field(fin, "lost"), 0, "{fin}");
    assert_eq!(field(fin, "received"), N as u64, "{fin}");
}

#[test]
fn run_config_bridges_both_ways_and_namespaces_keep_systems_apart() {
    let src = ShmGuard::new("bridge-cfg-src");
    let dst = ShmGuard::new("bridge-cfg-dst");
    let other = ShmGuard::new("bridge-cfg-other");
    let ns = unique_namespace();
    let writer = Writer::create(src.name(), 1 << 16).unwrap();
    let port = free_port();
    // One process exports and imports its own share back under another name.
    // Inside the build directory (CARGO_TARGET_TMPDIR): tests never read outside the repository.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("membus-bridge-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bridge.toml");
    std::fs::write(
        &file,
        format!(
            "listen = [\"{}\"]\nnamespace = \"{ns}\"\nstats_every = \"1s\"\nexport = [\"memmsg:{}\"]\nimport = [\"{}={}\"]\n",
            endpoint(port),
            src.name(),
            src.name(),
            dst.name()
        ),
    )
    .unwrap();
    let mut run = Proc::spawn("run", &["run", "--config", file.to_str().unwrap()]);
    run.wait_line(&["ready", dst.name()], START);
    // A second system on the same network under another namespace: it must not see the
    // first system's share.
    let ns2 = unique_namespace();
    let mut stranger = importer(
        "stranger",
        &ns2,
        port,
        &format!("{}={}", src.name(), other.name()),
    );
    stranger.wait_line(&["waiting for the exporter"], START);

    let mut reader = Reader::attach(dst.name()).unwrap();
    writer.write(b"over the loop").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "message did not come back");
        if let Received::Message { payload, .. } = reader.read(Duration::from_millis(100)).unwrap()
        {
            assert_eq!(payload, b"over the loop");
            break;
        }
    }
    // Periodic status lines.
    run.wait_line(&["status:", dst.name(), "received 1"], START);
    let lines = stranger.stop();
    assert!(
        !lines.iter().any(|l| l.contains("ready")),
        "a bridge in another namespace mirrored the share: {lines:#?}"
    );
    assert!(
        membus::has_live_owner(other.name()).is_err(),
        "stranger created a mirror"
    );
    run.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn typed_kv_bridges_with_its_schema_check() {
    use membus::{Kv, MemKv as DeriveMemKv};

    #[derive(DeriveMemKv, Debug, Clone, PartialEq)]
    #[memkv(max_len = 16)]
    struct Camera {
        exposure_us: u32,
        label: String,
    }
    #[derive(DeriveMemKv, Debug, Clone, PartialEq)]
    struct Other {
        exposure_us: u64,
        label: u8,
    }

    let src = ShmGuard::new("bridge-typed-src");
    let dst = ShmGuard::new("bridge-typed-dst");
    let ns = unique_namespace();
    let kv = Kv::create(
        src.name(),
        &Camera {
            exposure_us: 100,
            label: "front".into(),
        },
    )
    .unwrap();
    let port = free_port();
    let mut exp = exporter("exp", &ns, port, &[src.name()]);
    exp.wait_line(&["export memkv", src.name()], START);
    let mut imp = importer("imp", &ns, port, &format!("{}={}", src.name(), dst.name()));
    imp.wait_line(&["ready", dst.name()], START);
    let mirror = Kv::<Camera>::attach(dst.name()).expect("typed attach passes the schema check");
    assert_eq!(mirror.snapshot().unwrap().label, "front");
    let Err(err) = Kv::<Other>::attach(dst.name()) else {
        panic!("another schema was accepted");
    };
    assert!(err.to_string().contains("schema mismatch"), "{err}");
    kv.update(|b| {
        b.set(Camera::EXPOSURE_US, 2000)
            .set(Camera::LABEL, "rear".to_string());
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while mirror.snapshot().unwrap().exposure_us != 2000 {
        assert!(Instant::now() < deadline, "typed update did not arrive");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        mirror.snapshot().unwrap().label,
        "rear",
        "batch arrived whole"
    );
    imp.stop();
    exp.stop();
}

#[test]
fn geometry_change_of_a_new_exporter_is_reported_and_skipped() {
    use membus::layout::media::VideoFormat;
    use membus::memvid::{VideoParams, VideoReader, VideoWriter};
    use membus::Next;

    let src = ShmGuard::new("bridge-geo-src");
    let dst = ShmGuard::new("bridge-geo-dst");
    let ns = unique_namespace();
    let mut w = VideoWriter::create(
        src.name(),
        &VideoParams::new(64, 32, VideoFormat::Rgb24, 30, 4),
    )
    .unwrap();
    let port = free_port();
    let mut exp = exporter("exp", &ns, port, &[src.name()]);
    exp.wait_line(&["export memvid", src.name()], START);
    let mut imp = importer("imp", &ns, port, &format!("{}={}", src.name(), dst.name()));
    imp.wait_line(&["ready", dst.name()], START);
    let mut reader = VideoReader::attach(dst.name()).unwrap();
    let before = reader.layout().clone();
    // The camera process restarts with another geometry: the exporter notices that the
    // name now refers to a new share and exports that one under a new bridge session.
    drop(w);
    // Same byte count per frame, another geometry.
    w = VideoWriter::create(
        src.name(),
        &VideoParams::new(32, 64, VideoFormat::Rgb24, 30, 4),
    )
    .unwrap();
    exp.wait_line(&["re-created"], START);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the change was never reported");
        w.frame().fill(1).unwrap();
        w.publish().unwrap();
        if imp
            .seen
            .iter()
            .any(|l| l.contains("another type or geometry"))
        {
            break;
        }
        let _ = imp.wait_line_for(&["another type or geometry"], Duration::from_millis(100));
    }
    for _ in 0..5 {
        w.frame().fill(2).unwrap();
        w.publish().unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        matches!(reader.next().unwrap(), Next::Empty),
        "a frame of the other geometry reached the mirror"
    );
    assert_eq!(reader.layout(), &before);
    let lines = imp.stop();
    exp.stop();
    assert!(field(final_line(&lines, dst.name()), "malformed") >= 1);
}
