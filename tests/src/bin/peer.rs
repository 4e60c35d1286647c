//! Child process for membus's cross-process tests. Usage: `membus-peer ROLE ARGS...`.
//!
//! Roles:
//! * `msg-read NAME COUNT`: attach a memmsg reader, print `ready`, then account for
//!   sequence numbers 1..=COUNT as delivered (intact, in order, once) or lost; print
//!   `delivered=D lost=L overruns=O`. Exit 1 on any violation.
//! * `msg-write NAME COUNT [PAUSE_EVERY]`: attach as writer and write payloads 1..=COUNT
//!   (sleeping 50 µs after every PAUSE_EVERY messages, when given).
//! * `cmd-write NAME ID COUNT`: attach to a memcmd (unregistered) and write `ID:i` for
//!   i in 0..COUNT.
//! * `lock-and-die NAME MUTEX_OFFSET`: lock the share's mutex, print `locked`, SIGKILL self.
//! * `create-and-die NAME`: create a memmap, print `created`, SIGKILL self.
//! * `attach-code NAME`: try to attach a memmap read-write; print `ok` or the error code.
//! * `vid-write NAME COUNT`: create a 640×480 rgb24 memvid (4 slots), print `created`,
//!   wait for a line on stdin, then publish COUNT frames ([`membus_tests::video_frame`]).
//! * `pkt-write NAME COUNT`: create a mempkt (16 descriptors, 256 KiB arena), print
//!   `created`, wait for a line on stdin, then write COUNT records
//!   ([`membus_tests::packet`]).
//! * `select-feed MSG KV VID ACK COUNT`: create a memmsg MSG, a memkv KV (one slot `n`)
//!   and a 8×4 gray8 memvid VID, print `created`, wait for a line on stdin, then for i in
//!   0..COUNT put event i on source [`membus_tests::select_source`]`(i)` (message `i`, value
//!   `i`, or a frame with vpts `i`) and wait for the parent's acknowledgement `i` on the
//!   memmsg ACK before the next.
//! * `create-and-wait TYPE NAME`: create a share of TYPE (`memmsg`, `memcmd`, `memkv`,
//!   `memvid`, `memaud`, `mempkt`; 4 KiB rings, a 2-slot memkv, small media rings), print
//!   `created`, then wait
//!   for standard input to close (the test kills it with SIGKILL first).
//! * `full-shm-check`: run where /dev/shm is a private 1 MiB tmpfs (see the `sparse`
//!   test): a 2 MiB create, and read-write and read-only attaches of a sparse share that the
//!   free space cannot back, must fail with clear errors; print `ok`, or exit 1 saying what
//!   went wrong.
//! * `lock-and-hold NAME MUTEX_OFFSET`: lock the share's mutex, print `locked`, hold it
//!   until a line arrives on stdin (or stdin closes), then exit holding it.
//! * `foreign-msg-write NAME COUNT [PAUSE_EVERY]`: write payloads 1..=COUNT to a memmsg the way
//!   libmembus 2.1's `memmsg::write` does, store for store (lock; bump the global seq; on
//!   a wrap the zero marker and W = 0; frame length, frame seq, payload; advance W; zero
//!   the next length word; broadcast the condition; unlock), with plain volatile stores;
//!   PAUSE_EVERY as for `msg-write`.
//! * `die-mid-write NAME`: on a memmsg, do what a libmembus writer does up to the middle of
//!   a payload copy (seq bumped, frame header written, half the payload), then SIGKILL self.
//! * `wait-read KIND NAME`: KIND is `msg`, `cmd`, `kv` or `vid`. Attach, print `ready`,
//!   then block in one read (memmsg/memcmd), `wait_for_change` (memkv) or `wait_ready`
//!   (memvid) of up to 60 s; the parent kills it there.
//! * `churn-write KIND NAME ID`: attach and write without pause until killed (memmsg:
//!   [`membus_tests::payload`]s; memcmd: `ID:i`; memkv: slot `i % count` set to `ID:i`).
//! * `churn-read KIND NAME`: attach and read (or snapshot) without pause until killed,
//!   exiting 1 on any error other than a lock error.

use std::io::Write;
use std::process::exit;
use std::time::Duration;

use membus::memcmd::MemCmd;
use membus::memmsg::{Reader, Writer};
use membus::{QueueOptions, Received};
use membus_tests::{payload, RawShare};

fn fail(msg: String) -> ! {
    eprintln!("membus-peer: {msg}");
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

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn lock_mutex(share: &RawShare, off: usize) {
    let m = share.at(off).cast::<libc::pthread_mutex_t>();
    // SAFETY: `m` points at the share's process-shared mutex (offset given by the test).
    let rc = unsafe { libc::pthread_mutex_lock(m) };
    if rc != 0 && rc != libc::EOWNERDEAD {
        fail(format!("pthread_mutex_lock: {rc}"));
    }
}

fn die() -> ! {
    // SAFETY: sending SIGKILL to ourselves; nothing after it runs.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    unreachable!("SIGKILL did not kill")
}

/// The `foreign-msg-write` role: libmembus 2.1's memmsg writer, store for store (see
/// `source/cpp/memmsg.cpp`, `memmsg::write`). memmsg header: size at 0, write offset at 8,
/// global seq at 16, mutex at 32, condition at 72, ring data at 120.
fn foreign_msg_write(name: &str, count: u64, pause: impl Fn(u64)) {
    const RING: usize = 120;
    let share = RawShare::open(name).unwrap_or_else(|e| fail(format!("open: {e}")));
    let size = share.get_i64(0);
    let mutex = share.at(32).cast::<libc::pthread_mutex_t>();
    let cond = share.at(72).cast::<libc::pthread_cond_t>();
    for i in 1..=count {
        let msg = payload(i);
        let len = msg.len() as i64;
        let stride = (16 + len + 7) & !7;
        lock_mutex(&share, 32);
        let mut w = share.get_i64(8);
        if w < 0 || stride > size - w {
            if 0 < w && w < size {
                share.put_i64(RING + w as usize, 0);
            }
            w = 0;
            share.put_i64(8, 0);
        }
        let seq = share.get_i64(16) + 1;
        share.put_i64(16, seq);
        let at = RING + w as usize;
        share.put_i64(at, len);
        share.put_i64(at + 8, seq);
        for (k, b) in msg.iter().enumerate() {
            // SAFETY: inside the mapping (`at` panics otherwise); volatile, as a C++ memcpy
            // into shared memory is opaque to the readers.
            unsafe { std::ptr::write_volatile(share.at(at + 16 + k), *b) };
        }
        w += stride;
        share.put_i64(8, w);
        share.put_i64(RING + w as usize, 0);
        // SAFETY: the share's process-shared condition and mutex, which this process holds.
        let rc = unsafe { libc::pthread_cond_broadcast(cond) };
        if rc != 0 {
            fail(format!("pthread_cond_broadcast: {rc}"));
        }
        // SAFETY: as above; locked by `lock_mutex`.
        let rc = unsafe { libc::pthread_mutex_unlock(mutex) };
        if rc != 0 {
            fail(format!("pthread_mutex_unlock: {rc}"));
        }
        pause(i);
    }
}

/// The optional PAUSE_EVERY argument at `i`: a function of the message number that sleeps
/// 50 µs after every PAUSE_EVERY messages (never, without the argument).
fn pause_every(args: &[String], i: usize) -> impl Fn(u64) {
    let every = if args.len() > i { num(args, i) } else { 0 };
    move |n: u64| {
        if every > 0 && n % every == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match arg(&args, 1) {
        "msg-read" => {
            let name = arg(&args, 2);
            let count = num(&args, 3);
            let mut r = Reader::attach(name).unwrap_or_else(|e| fail(format!("attach: {e}")));
            say("ready");
            let (mut next, mut delivered, mut lost, mut overruns) = (1u64, 0u64, 0u64, 0u64);
            let mut buf = Vec::new();
            while next <= count {
                match r.read_into(&mut buf, Duration::from_secs(10)) {
                    Ok(Received::Message { seq, .. }) => {
                        if seq != next {
                            fail(format!("expected seq {next}, got {seq}"));
                        }
                        if buf != payload(seq) {
                            fail(format!("payload of seq {seq} is corrupt"));
                        }
                        delivered += 1;
                        next += 1;
                    }
                    Ok(Received::Overrun { lost: n }) => {
                        if n == 0 {
                            fail(format!("overrun with 0 lost at seq {next}"));
                        }
                        lost += n;
                        overruns += 1;
                        next += n;
                    }
                    Ok(Received::Timeout) => fail(format!("timeout waiting for seq {next}")),
                    Err(e) => fail(format!("read: {e}")),
                }
            }
            if next != count + 1 {
                fail(format!("accounted up to {}, expected {count}", next - 1));
            }
            say(&format!(
                "delivered={delivered} lost={lost} overruns={overruns}"
            ));
        }
        "msg-write" => {
            let name = arg(&args, 2);
            let count = num(&args, 3);
            let pause = pause_every(&args, 4);
            let w = Writer::attach(name).unwrap_or_else(|e| fail(format!("attach: {e}")));
            for i in 1..=count {
                let seq = w
                    .write(&payload(i))
                    .unwrap_or_else(|e| fail(format!("write {i}: {e}")));
                if seq != i {
                    fail(format!("write {i} got seq {seq}"));
                }
                pause(i);
            }
        }
        "cmd-write" => {
            let name = arg(&args, 2);
            let id = num(&args, 3);
            let count = num(&args, 4);
            let opts = QueueOptions::new().register_reader(false);
            let c =
                MemCmd::attach_with(name, &opts).unwrap_or_else(|e| fail(format!("attach: {e}")));
            for i in 0..count {
                c.write(format!("{id}:{i}").as_bytes())
                    .unwrap_or_else(|e| fail(format!("write {i}: {e}")));
            }
        }
        "lock-and-die" => {
            let share =
                RawShare::open(arg(&args, 2)).unwrap_or_else(|e| fail(format!("open: {e}")));
            lock_mutex(&share, num(&args, 3) as usize);
            say("locked");
            die();
        }
        "lock-and-hold" => {
            let share =
                RawShare::open(arg(&args, 2)).unwrap_or_else(|e| fail(format!("open: {e}")));
            lock_mutex(&share, num(&args, 3) as usize);
            say("locked");
            let mut go = String::new();
            let _ = std::io::stdin().read_line(&mut go);
        }
        "foreign-msg-write" => {
            foreign_msg_write(arg(&args, 2), num(&args, 3), pause_every(&args, 4))
        }
        "die-mid-write" => {
            // memmsg header: write at 8, seq at 16, mutex at 32, ring data at 120.
            let share =
                RawShare::open(arg(&args, 2)).unwrap_or_else(|e| fail(format!("open: {e}")));
            lock_mutex(&share, 32);
            let w = share.get_i64(8) as usize;
            let seq = share.get_i64(16) + 1;
            share.put_i64(16, seq);
            share.put_i64(120 + w, 100);
            share.put_i64(120 + w + 8, seq);
            for i in 0..50 {
                // SAFETY: in bounds (checked by `at`); volatile so it lands before the kill.
                unsafe { std::ptr::write_volatile(share.at(120 + w + 16 + i), 0xee) };
            }
            say("dying");
            die();
        }
        "vid-write" => {
            use membus::layout::media::VideoFormat;
            use membus::memvid::{VideoParams, VideoWriter};
            let count = num(&args, 3);
            let mut w = VideoWriter::create(
                arg(&args, 2),
                &VideoParams::new(640, 480, VideoFormat::Rgb24, 30, 4),
            )
            .unwrap_or_else(|e| fail(format!("create: {e}")));
            say("created");
            let mut go = String::new();
            let _ = std::io::stdin().read_line(&mut go);
            for seq in 1..=count {
                {
                    let mut f = w.frame();
                    membus_tests::video_frame(seq, &mut f)
                        .unwrap_or_else(|e| fail(format!("frame {seq}: {e}")));
                }
                w.publish()
                    .unwrap_or_else(|e| fail(format!("publish {seq}: {e}")));
                // About 2,000 frames a second: a reader keeps up most of the time, not always.
                std::thread::sleep(Duration::from_micros(500));
            }
            // Stay until the reader is done with the last frames.
            let _ = std::io::stdin().read_line(&mut go);
        }
        "pkt-write" => {
            use membus::mempkt::{PacketParams, PacketWriter};
            let count = num(&args, 3);
            let mut w =
                PacketWriter::create(arg(&args, 2), &PacketParams::new(16, 256 * 1024, 16 * 1024))
                    .unwrap_or_else(|e| fail(format!("create: {e}")));
            say("created");
            let mut go = String::new();
            let _ = std::io::stdin().read_line(&mut go);
            for seq in 1..=count {
                let (payload, meta) = membus_tests::packet(seq);
                w.write(&payload, &meta.as_record())
                    .unwrap_or_else(|e| fail(format!("write {seq}: {e}")));
                if seq % 16 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            let _ = std::io::stdin().read_line(&mut go);
        }
        "select-feed" => {
            use membus::layout::media::VideoFormat;
            use membus::memkv::MemKv;
            use membus::memvid::{VideoParams, VideoWriter};
            let count = num(&args, 6);
            let msg = Writer::create(arg(&args, 2), 4096)
                .unwrap_or_else(|e| fail(format!("create memmsg: {e}")));
            let kv = MemKv::create_named(arg(&args, 3), &["n"], 8, 24)
                .unwrap_or_else(|e| fail(format!("create memkv: {e}")));
            let mut vid = VideoWriter::create(
                arg(&args, 4),
                &VideoParams::new(8, 4, VideoFormat::Gray8, 200, 8),
            )
            .unwrap_or_else(|e| fail(format!("create memvid: {e}")));
            say("created");
            let mut go = String::new();
            let _ = std::io::stdin().read_line(&mut go);
            let mut ack =
                Reader::attach(arg(&args, 5)).unwrap_or_else(|e| fail(format!("attach ack: {e}")));
            for i in 0..count {
                let text = i.to_string();
                match membus_tests::select_source(i) {
                    0 => msg.write(text.as_bytes()).map(|_| ()),
                    1 => kv.set(0, &text).map(|_| ()),
                    _ => {
                        vid.frame().set_vpts(i as i64);
                        vid.publish().map(|_| ())
                    }
                }
                .unwrap_or_else(|e| fail(format!("event {i}: {e}")));
                match ack.read(Duration::from_secs(20)) {
                    Ok(Received::Message { payload, .. }) if payload == text.as_bytes() => {}
                    other => fail(format!("ack {i}: {other:?}")),
                }
            }
            say("done");
            let _ = std::io::stdin().read_line(&mut go);
        }
        "wait-read" => {
            let (kind, name) = (arg(&args, 2), arg(&args, 3));
            let long = Duration::from_secs(60);
            match kind {
                "msg" => {
                    let mut r =
                        Reader::attach(name).unwrap_or_else(|e| fail(format!("attach: {e}")));
                    say("ready");
                    let _ = r.read(long);
                }
                "cmd" => {
                    let mut c =
                        MemCmd::attach(name).unwrap_or_else(|e| fail(format!("attach: {e}")));
                    say("ready");
                    let _ = c.read(long);
                }
                "kv" => {
                    let kv = membus::memkv::MemKv::attach(name)
                        .unwrap_or_else(|e| fail(format!("attach: {e}")));
                    let e = kv.epoch();
                    say("ready");
                    let _ = kv.wait_for_change(e, long);
                }
                "vid" => {
                    let r = membus::memvid::VideoReader::attach(name)
                        .unwrap_or_else(|e| fail(format!("attach: {e}")));
                    say("ready");
                    let _ = r.wait_ready(long);
                }
                other => fail(format!("unknown kind {other}")),
            }
        }
        "churn-write" => {
            let (kind, name, id) = (arg(&args, 2), arg(&args, 3), num(&args, 4));
            match kind {
                "msg" => {
                    let w = Writer::attach(name).unwrap_or_else(|e| fail(format!("attach: {e}")));
                    say("ready");
                    for i in 1.. {
                        let _ = w.write(&payload(i));
                    }
                }
                "cmd" => {
                    let opts = QueueOptions::new().register_reader(false);
                    let c = MemCmd::attach_with(name, &opts)
                        .unwrap_or_else(|e| fail(format!("attach: {e}")));
                    say("ready");
                    for i in 0u64.. {
                        let _ = c.write(format!("{id}:{i}").as_bytes());
                    }
                }
                "kv" => {
                    let kv = membus::memkv::MemKv::attach(name)
                        .unwrap_or_else(|e| fail(format!("attach: {e}")));
                    say("ready");
                    let n = kv.count().max(1);
                    for i in 0usize.. {
                        let _ = kv.set(i % n, format!("{id}:{i}"));
                    }
                }
                other => fail(format!("unknown kind {other}")),
            }
        }
        "churn-read" => {
            let (kind, name) = (arg(&args, 2), arg(&args, 3));
            let tolerable = |e: &membus::Error| {
                matches!(
                    e.kind(),
                    membus::ErrorKind::LockTimeout | membus::ErrorKind::LockFailed
                )
            };
            let short = Duration::from_millis(2);
            match kind {
                "msg" | "cmd" => {
                    let mut r: Box<dyn FnMut() -> membus::Result<Received<Vec<u8>>>> =
                        if kind == "msg" {
                            let mut r = Reader::attach(name)
                                .unwrap_or_else(|e| fail(format!("attach: {e}")));
                            Box::new(move || r.read(short))
                        } else {
                            let mut c = MemCmd::attach(name)
                                .unwrap_or_else(|e| fail(format!("attach: {e}")));
                            Box::new(move || c.read(short))
                        };
                    say("ready");
                    loop {
                        if let Err(e) = r() {
                            if !tolerable(&e) {
                                fail(format!("read: {e}"));
                            }
                        }
                    }
                }
                "kv" => {
                    let kv = membus::memkv::MemKv::attach(name)
                        .unwrap_or_else(|e| fail(format!("attach: {e}")));
                    say("ready");
                    loop {
                        if let Err(e) = kv.snapshot() {
                            if !tolerable(&e) {
                                fail(format!("snapshot: {e}"));
                            }
                        }
                        let _ = kv.wait_for_change(kv.epoch(), short);
                    }
                }
                other => fail(format!("unknown kind {other}")),
            }
        }
        "create-and-wait" => {
            fn created<T>(r: membus::Result<T>) -> T {
                r.unwrap_or_else(|e| fail(format!("create: {e}")))
            }
            let name = arg(&args, 3);
            let held: Box<dyn std::any::Any> = match arg(&args, 2) {
                "memmsg" => Box::new(created(Writer::create(name, 4096))),
                "memcmd" => Box::new(created(MemCmd::create(name, 4096))),
                "memkv" => Box::new(created(membus::memkv::MemKv::create_named(
                    name,
                    &["a", "b"],
                    8,
                    16,
                ))),
                "memvid" => Box::new(membus_tests::tiny_video(name)),
                "memaud" => Box::new(created(membus::memaud::AudioWriter::create(
                    name,
                    &membus_tests::small_audio_params(),
                ))),
                "mempkt" => Box::new(created(membus::mempkt::PacketWriter::create(
                    name,
                    &membus::mempkt::PacketParams::new(8, 1 << 16, 4096),
                ))),
                other => fail(format!("unknown share type {other}")),
            };
            say("created");
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            drop(held);
        }
        "full-shm-check" => {
            full_shm_check();
            say("ok");
        }
        "create-and-die" => {
            let _map = membus::MemMap::create(arg(&args, 2), 4096)
                .unwrap_or_else(|e| fail(format!("create: {e}")));
            say("created");
            die();
        }
        "attach-code" => match membus::MemMap::attach(arg(&args, 2)) {
            Ok(_) => say("ok"),
            Err(e) => say(&e.code().to_string()),
        },
        other => fail(format!("unknown role {other}")),
    }
}

/// The checks of the `full-shm-check` role, in a 1 MiB /dev/shm.
fn full_shm_check() {
    use membus::{ErrorKind, MemMap};
    let expect_err = |what: &str, r: membus::Result<MemMap<membus::memmap::ReadWrite>>| match r {
        Ok(_) => fail(format!("{what}: succeeded in a full /dev/shm")),
        Err(e) => e,
    };
    let exists = |n: &str| std::path::Path::new(&format!("/dev/shm{n}")).exists();

    let e = expect_err(
        "2 MiB create",
        MemMap::create("/membus-test-full-big", 2 << 20),
    );
    if e.kind() != ErrorKind::CreateFailed || e.errno() != Some(libc::ENOSPC) {
        fail(format!("2 MiB create: wrong error {e}"));
    }
    if exists("/membus-test-full-big") {
        fail("2 MiB create: the failed create left its object".into());
    }

    let sparse = "/membus-test-full-sparse";
    let f = std::fs::File::create_new(format!("/dev/shm{sparse}"))
        .unwrap_or_else(|e| fail(format!("create the sparse object: {e}")));
    f.set_len(768 << 10)
        .unwrap_or_else(|e| fail(format!("ftruncate: {e}")));
    let filler = MemMap::create("/membus-test-full-filler", 512 << 10)
        .unwrap_or_else(|e| fail(format!("512 KiB filler: {e}")));

    let e = expect_err("read-write attach", MemMap::attach(sparse));
    if e.kind() != ErrorKind::MapFailed || e.errno() != Some(libc::ENOSPC) {
        fail(format!("read-write attach: wrong error {e}"));
    }
    match MemMap::attach_read_only(sparse) {
        Ok(_) => fail("read-only attach: succeeded with holes /dev/shm cannot back".into()),
        Err(e) if e.kind() == ErrorKind::MapFailed && e.to_string().contains("SIGBUS") => {}
        Err(e) => fail(format!("read-only attach: wrong error {e}")),
    }

    drop(filler);
    let m = MemMap::attach(sparse)
        .unwrap_or_else(|e| fail(format!("read-write attach with room: {e}")));
    m.write_at((768 << 10) - 4, b"last")
        .unwrap_or_else(|e| fail(format!("write the last page: {e}")));
}
