//! A foreign peer in another language: a Python process with only its standard library
//! (mmap, struct, ctypes → glibc pthread functions) writes and reads memmsg and memcmd
//! shares as the wire specification says, against membus readers and writers in this
//! process, including a membus reader blocked in a wait that the Python writer (which only
//! broadcasts the glibc condition, where membus waiters never sleep) must still reach.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use membus::memcmd::MemCmd;
use membus::memmsg::{Reader, Writer};
use membus::{QueueOptions, Received};
use membus_tests::{msg, ShmGuard};

/// Whether a `python3` can run the peer. Without one (a machine with only the Rust
/// toolchain) these tests are skipped with a message, unless `MEMBUS_REQUIRE_PYTHON` is set
/// (as CI does), which makes a missing Python a failure.
fn python_available(test: &str) -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("MEMBUS_REQUIRE_PYTHON").is_none(),
            "{test}: python3 is required (MEMBUS_REQUIRE_PYTHON is set) but does not run"
        );
        // Straight to stderr (not captured by the test harness), so a skip is always seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: no python3 to run the foreign peer"
        );
    }
    ok
}

fn peer(args: &[&str]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/ring_peer.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python peer {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn python_writes_membus_reads() {
    if !python_available("python_writes_membus_reads") {
        return;
    }
    let g = ShmGuard::new("py-msg");
    let w = Writer::create(g.name(), 128).unwrap();
    // No spin: this reader sleeps at once. The Python writer wakes nobody (it broadcasts
    // the condition, where membus waiters never sleep), so the reader finds its message
    // when its safety-net timeout ends.
    let mut r = Reader::attach_with(g.name(), &QueueOptions::new().spin(Duration::ZERO)).unwrap();
    w.write(b"from rust").unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let mut r2 =
                Reader::attach_with(g.name(), &QueueOptions::new().spin(Duration::ZERO)).unwrap();
            r2.read(Duration::from_secs(20)).unwrap()
        });
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(peer(&["write", "memmsg", g.name(), "py-01"]).trim(), "2");
        assert_eq!(
            waiter.join().unwrap(),
            msg(2, "py-01"),
            "the blocked reader got the Python writer's message"
        );
    });
    // Nine more through a 128-byte ring: the Python writer wraps, as libmembus does.
    let args: Vec<String> = (2..=10).map(|i| format!("py-{i:02}")).collect();
    let mut argv = vec!["write", "memmsg", g.name()];
    argv.extend(args.iter().map(String::as_str));
    let seqs = peer(&argv);
    assert_eq!(
        seqs.lines().collect::<Vec<_>>(),
        (3..=11).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    // `r` fell a lap behind the Python writer: it is told that all 11 messages are lost.
    assert_eq!(
        r.read(Duration::ZERO).unwrap(),
        Received::Overrun { lost: 11 }
    );
    // A reader from ring offset 0 sees the Python frames after the wrap, intact and in order.
    let mut oldest =
        Reader::attach_with(g.name(), &QueueOptions::new().start(membus::Start::Oldest)).unwrap();
    let mut tail: Vec<_> = oldest.try_iter().map(|x| x.unwrap()).collect();
    assert!(tail.len() > 1);
    // The messages before the first one still at offset 0 were overwritten: counted first,
    // so everything written is accounted for.
    let Received::Overrun { lost } = tail.remove(0) else {
        panic!("{tail:?}: the overwritten backlog is reported first")
    };
    assert_eq!(lost + tail.len() as u64, 11, "delivered + lost = written");
    for (i, m) in tail.iter().enumerate() {
        let Received::Message { seq, payload } = m else {
            panic!("{m:?}")
        };
        assert_eq!(*seq, 11 - (tail.len() - 1 - i) as u64);
        assert_eq!(payload, format!("py-{:02}", seq - 1).as_bytes());
    }
    w.write(b"after").unwrap();
    assert_eq!(r.read(Duration::ZERO).unwrap(), msg(12, "after"));
}

#[test]
fn membus_writes_python_reads_memcmd() {
    if !python_available("membus_writes_python_reads_memcmd") {
        return;
    }
    let g = ShmGuard::new("py-cmd");
    let c = MemCmd::create(g.name(), 1024).unwrap();
    for m in ["pan-left", "zoom-in", "{\"expose\":{\"us\":500}}"] {
        c.write(m.as_bytes()).unwrap();
    }
    let lines = peer(&["read", "memcmd", g.name(), "3"]);
    let got: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        got,
        vec![
            serde_json::json!({"seq": 1, "text": "pan-left"}),
            serde_json::json!({"seq": 2, "text": "zoom-in"}),
            serde_json::json!({"seq": 3, "text": "{\"expose\":{\"us\":500}}"}),
        ]
    );
    // And Python's commands reach a membus handle in between.
    peer(&["write", "memcmd", g.name(), "pan-stop"]);
    let mut rx =
        MemCmd::attach_with(g.name(), &QueueOptions::new().start(membus::Start::Oldest)).unwrap();
    let all: Vec<_> = rx.try_iter().map(|x| x.unwrap()).collect();
    assert_eq!(all.last().unwrap(), &msg(4, "pan-stop"));
}

/// A select over a memcmd, a memkv watch and a memvid returns the memcmd's index when the
/// Python peer writes a command to it (seen when the wait's safety net ends: the Python
/// writer wakes nobody).
#[test]
fn python_write_wakes_a_select_over_three_shares() {
    if !python_available("python_write_wakes_a_select_over_three_shares") {
        return;
    }
    use membus::memkv::MemKv;
    use membus::memvid::VideoReader;
    use membus::select::select;

    let (gc, gk, gv) = (
        ShmGuard::new("py-sel-c"),
        ShmGuard::new("py-sel-k"),
        ShmGuard::new("py-sel-v"),
    );
    let mut cmd = MemCmd::create(gc.name(), 4096).unwrap();
    let kv = MemKv::create_named(gk.name(), &["a"], 4, 16).unwrap();
    let watch = kv.watch();
    let _vw = membus_tests::tiny_video(gv.name());
    let vr = VideoReader::attach(gv.name()).unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| select(&[&watch, &vr, &cmd], Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(100));
        peer(&["write", "memcmd", gc.name(), "pan-left"]);
        assert_eq!(waiter.join().unwrap(), Some(2), "woken for the memcmd");
    });
    assert_eq!(cmd.read(Duration::ZERO).unwrap(), msg(1, "pan-left"));
}
