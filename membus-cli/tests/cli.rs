//! The `membus` command against pymembus fixtures and live shares, run as a real binary.

use std::io::Write as _;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use membus::memcmd::MemCmd;
use membus_tests::serde_json::{self, Value};
use membus_tests::{fixture_entry, install_fixture, install_share, unique_name, ShmGuard};

fn membus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_membus"))
        .args(args)
        .output()
        .expect("run membus")
}

fn ok(args: &[&str]) -> String {
    let out = membus(args);
    assert!(
        out.status.success(),
        "membus {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&ok(args)).expect("valid JSON")
}

fn wait_for(name: &str) {
    let t = Instant::now();
    while !std::path::Path::new(&format!("/dev/shm{name}")).exists() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{name} never appeared"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until process `pid` has `name` mapped (it has attached).
fn wait_mapped(pid: u32, name: &str) {
    let t = Instant::now();
    let needle = format!("/dev/shm{name}");
    while !std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .contains(&needle)
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "process {pid} never attached to {name}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn ls_and_info_report_each_fixture() {
    let cases = [
        ("memmsg_basic.bin", "memmsg", true),
        ("memmsg_wrapped.bin", "memmsg", true),
        ("memcmd_basic.bin", "memcmd", true),
        ("memkv_basic.bin", "memkv", true),
        ("memvid_rgb24.bin", "memvid", false),
        ("memvid_gray8_extra.bin", "memvid", false),
        ("memaud_s16le.bin", "memaud", false),
        ("memaud_usertype.bin", "memaud", false),
        ("mempkt_basic.bin", "mempkt", false),
    ];
    let guards: Vec<_> = cases.iter().map(|(f, _, _)| install_fixture(f)).collect();
    let listing = json(&["ls", "--json"]);
    for ((file, kind, likely), g) in cases.iter().zip(&guards) {
        let entry = fixture_entry(file);
        let row = listing
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == g.name())
            .unwrap_or_else(|| panic!("{file} not listed"));
        assert_eq!(row["type"], *kind, "{file}");
        assert_eq!(row["likely"], *likely, "{file}");
        assert_eq!(
            row["size"].as_u64().unwrap(),
            std::fs::metadata(format!("/dev/shm{}", g.name()))
                .unwrap()
                .len()
        );
        assert_eq!(row["session_id"], entry["session_id"], "{file}");
        assert_eq!(
            row["state"], "stale",
            "pymembus took no owner lock and nobody maps it"
        );
        assert!(row["problem"].is_null(), "{file}: {}", row["problem"]);
        let info = json(&["info", g.name(), "--json"]);
        assert_eq!(info["type"], *kind);
    }
    let msg = json(&["info", guards[0].name(), "--json"]);
    assert_eq!(msg["header"]["capacity"], 1024);
    assert_eq!(msg["header"]["write"], 48);
    assert_eq!(msg["header"]["seq"], 2);
    let cmd = json(&["info", guards[2].name(), "--json"]);
    assert_eq!(cmd["header"]["readers"], 1);
    let kv = json(&["info", guards[3].name(), "--json"]);
    assert_eq!(
        (
            kv["header"]["count"].as_i64(),
            kv["header"]["max_name_len"].as_i64(),
            kv["header"]["max_value_len"].as_i64()
        ),
        (Some(3), Some(14), Some(64))
    );
    assert_eq!(kv["header"]["epoch"], 2);
    let vid = json(&["info", guards[4].name(), "--json"]);
    assert_eq!(
        (
            vid["header"]["width"].as_i64(),
            vid["header"]["height"].as_i64(),
            vid["header"]["bufs"].as_i64()
        ),
        (Some(16), Some(8), Some(2))
    );
    assert_eq!(vid["header"]["format_name"], "rgb24");
    assert_eq!(vid["header"]["bytes_per_pixel"], 3);
    let aud = json(&["info", guards[6].name(), "--json"]);
    assert_eq!(aud["header"]["format_name"], "s16le");
    assert_eq!(
        json(&["info", guards[7].name(), "--json"])["header"]["format_name"],
        "userType"
    );
    assert_eq!(
        (
            aud["header"]["channels"].as_i64(),
            aud["header"]["sample_rate"].as_i64()
        ),
        (Some(2), Some(48000))
    );
    assert_eq!(aud["header"]["payloadsize"], 3840);
    let extra = json(&["info", guards[5].name(), "--json"]);
    assert_eq!(
        (
            extra["header"]["width"].as_i64(),
            extra["header"]["height"].as_i64()
        ),
        (Some(641), Some(481))
    );
    assert_eq!(extra["header"]["frameextra"], 24);
    assert_eq!(extra["header"]["fourcc"], 875967048);
    let pkt = json(&["info", guards[8].name(), "--json"]);
    assert_eq!(pkt["header"]["maxrec"], 4096);
    assert_eq!(pkt["header"]["fourcc"], 1196444237);
    assert_eq!(pkt["header"]["seq"], 3);
    // The human table names the same shares.
    let table = ok(&["ls"]);
    assert!(table.starts_with("NAME"));
    let line = table
        .lines()
        .find(|l| l.starts_with(guards[2].name()))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        line.contains("memcmd (likely)") && line.contains("stale"),
        "{line}"
    );
}

#[test]
fn tail_prints_the_fixture_messages() {
    let g = install_fixture("memmsg_basic.bin");
    assert_eq!(
        ok(&[
            "tail",
            g.name(),
            "--from-start",
            "--count",
            "2",
            "--timeout",
            "5s"
        ]),
        "hello\nworld!\n"
    );
    let g = install_fixture("memcmd_basic.bin");
    assert_eq!(
        ok(&[
            "tail",
            g.name(),
            "--from-start",
            "--count",
            "3",
            "--timeout",
            "5s"
        ]),
        "pan-left\nzoom-in\npan-stop\n"
    );
    let hex = ok(&["tail", g.name(), "--from-start", "--count", "1", "--hex"]);
    assert_eq!(hex, "70616e2d6c656674\n");
    // Asking for more than there is fails after the timeout, naming the shortfall.
    let out = membus(&[
        "tail",
        g.name(),
        "--from-start",
        "--count",
        "4",
        "--timeout",
        "200ms",
    ]);
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 of 4"));
}

#[test]
fn send_and_tail_work_across_processes() {
    let g = ShmGuard::new("cli-cmd");
    let _owner = MemCmd::create(g.name(), 4096).unwrap();
    let tail = Command::new(env!("CARGO_BIN_EXE_membus"))
        .args([
            "tail",
            g.name(),
            "--from-start",
            "--count",
            "3",
            "--timeout",
            "20s",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    ok(&["send", g.name(), "pan-left", "zoom-in"]);
    let mut send_stdin = Command::new(env!("CARGO_BIN_EXE_membus"))
        .args(["send", g.name()])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(send_stdin.stdin.as_mut().unwrap(), b"bytes\xffhere\n").unwrap();
    drop(send_stdin.stdin.take());
    assert!(send_stdin.wait().unwrap().success());
    let out = tail.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "pan-left\nzoom-in\nbytes\\xffhere\n"
    );

    // memmsg made by `send --create`, kept alive by --linger while another process reads.
    let name = unique_name("cli-msg");
    let _cleanup = ShmGuard(name.clone());
    let mut sender = Command::new(env!("CARGO_BIN_EXE_membus"))
        .args([
            "send", &name, "--create", "4096", "--linger", "20s", "hello", "world",
        ])
        .spawn()
        .unwrap();
    wait_for(&name);
    assert_eq!(
        ok(&[
            "tail",
            &name,
            "--from-start",
            "--count",
            "2",
            "--timeout",
            "10s"
        ]),
        "hello\nworld\n"
    );
    sender.kill().unwrap();
    sender.wait().unwrap();
}

fn linger(name: &str) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_membus"))
        .args(["send", name, "--create", "1024", "--linger", "60s", "x"])
        .spawn()
        .unwrap();
    wait_for(name);
    // The share exists before its header is published; wait until it is recognisable.
    let t = Instant::now();
    while membus::has_live_owner(name).map(|l| !l).unwrap_or(true)
        || json(&["info", name, "--json"])["type"] != "memmsg"
    {
        assert!(t.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

#[test]
fn rm_removes_stale_shares_and_keeps_live_ones() {
    let tag = format!("rmtest{}", std::process::id());
    let (alive, dead) = (
        unique_name(&format!("{tag}-alive")),
        unique_name(&format!("{tag}-dead")),
    );
    let _g = (ShmGuard(alive.clone()), ShmGuard(dead.clone()));
    let mut alive_owner = linger(&alive);
    let mut dead_owner = linger(&dead);
    dead_owner.kill().unwrap(); // SIGKILL: no destructor runs, the share stays behind
    dead_owner.wait().unwrap();
    let listing = json(&["ls", "--json"]);
    let state = |n: &str| {
        listing
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .map(|r| r["state"].clone())
    };
    assert_eq!(state(&alive), Some(Value::from("live")));
    assert_eq!(state(&dead), Some(Value::from("stale")));

    assert_eq!(ok(&["rm", "--stale", &tag]), format!("removed {dead}\n"));
    assert!(!std::path::Path::new(&format!("/dev/shm{dead}")).exists());
    assert!(std::path::Path::new(&format!("/dev/shm{alive}")).exists());

    let out = membus(&["rm", &alive]);
    assert!(
        !out.status.success(),
        "a live share is not removed without --force"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("membus: share {alive}: live")),
        "{err}"
    );
    assert_eq!(ok(&["rm", "--force", &alive]), format!("removed {alive}\n"));
    alive_owner.kill().unwrap();
    alive_owner.wait().unwrap();
}

#[test]
fn errors_are_one_line_with_a_non_zero_status() {
    let missing = unique_name("cli-missing");
    for args in [
        vec!["info", missing.as_str()],
        vec!["tail", missing.as_str()],
        vec!["send", missing.as_str(), "x"],
        vec!["kv", missing.as_str(), "dump"],
        vec!["rm", missing.as_str()],
    ] {
        let out = membus(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        let want = format!("membus: share {missing}: no such share (`membus ls` lists the shares");
        assert!(
            err.starts_with(&want),
            "{args:?}: one text for a missing share: {err}"
        );
    }
    // Garbage is reported as unknown, never crashes the tool, and cannot be tailed.
    let g = install_share("garbage", &[0xa5u8; 777]);
    assert_eq!(json(&["info", g.name(), "--json"])["type"], "unknown");
    let out = membus(&["tail", g.name(), "--timeout", "100ms"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("an object of no known share type"), "{err}");
    let out = membus(&["info", "bad/name"]);
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("membus: invalid argument"));
}

#[test]
fn kv_dump_get_set_and_tail_a_memkv() {
    let entry = fixture_entry("memkv_basic.bin");
    let g = install_fixture("memkv_basic.bin");
    let values = &entry["expect"]["values"];
    let dump = json(&["kv", g.name(), "dump", "--json"]);
    assert_eq!(dump["epoch"], entry["expect"]["epoch"]);
    let slots = dump["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 3);
    for s in slots {
        assert_eq!(s["value"], values[s["name"].as_str().unwrap()], "{s}");
    }
    assert_eq!(
        ok(&["kv", g.name(), "dump"]),
        "mode=auto\ncount=42\nstatus=ready\n"
    );
    assert_eq!(ok(&["kv", g.name(), "get", "count"]), "42\n");

    // A tail in another process sees a batch set by a third one, each change with its epoch.
    // The tail starts from the epoch it finds when it attaches, which the test cannot observe:
    // so the batch is set again until the tail has printed one (no timing assumption).
    let mut tail = Command::new(env!("CARGO_BIN_EXE_membus"))
        .args(["tail", g.name(), "--count", "2", "--timeout", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut { stdout }, &mut s);
        let _ = tx.send(s);
    });
    wait_mapped(tail.id(), g.name());
    let t = Instant::now();
    let printed = loop {
        let epoch = ok(&["kv", g.name(), "set", "mode", "manual", "count", "43"]);
        assert!(epoch.starts_with("epoch "), "{epoch}");
        if let Ok(s) = rx.recv_timeout(Duration::from_millis(200)) {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the tail printed nothing in 60 s"
        );
    };
    let status = tail.wait().unwrap();
    assert!(status.success(), "tail failed: {status}");
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "{printed}");
    let epoch_of = |l: &str| l.split(':').next().unwrap_or_default().to_string();
    assert_eq!(
        epoch_of(lines[0]),
        epoch_of(lines[1]),
        "one batch: {printed}"
    );
    assert!(
        lines[0].ends_with(": mode=manual") && lines[1].ends_with(": count=43"),
        "{printed}"
    );

    // --from-start --count N prints N of the values written so far, no more.
    assert_eq!(
        ok(&[
            "tail",
            g.name(),
            "--from-start",
            "--count",
            "2",
            "--timeout",
            "10s"
        ])
        .lines()
        .count(),
        2
    );

    let out = membus(&["kv", g.name(), "get", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("membus: "));
    let other = install_fixture("memmsg_basic.bin");
    let out = membus(&["kv", other.name(), "dump"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("this is a memmsg share, not a memkv"), "{err}");
    let garbage = install_share("kv-garbage", &[0x5au8; 300]);
    let err = String::from_utf8_lossy(&membus(&["kv", garbage.name(), "dump"]).stderr).into_owned();
    assert!(
        err.contains("an object of no known share type") && !err.contains("a unknown"),
        "{err}"
    );
}

#[test]
fn tail_follows_media_rings_frame_by_frame() {
    let g = install_fixture("memvid_rgb24.bin");
    assert_eq!(
        ok(&[
            "tail",
            g.name(),
            "--from-start",
            "--count",
            "1",
            "--timeout",
            "5s"
        ]),
        "seq=1 slot=0 vpts=123456 apts=123000 size=384 user=0\n"
    );
    let g2 = install_fixture("memvid_gray8_extra.bin");
    assert_eq!(
        ok(&["tail", g2.name(), "--from-start", "--count", "2", "--timeout", "5s"]),
        "seq=1 slot=0 vpts=0 apts=0 size=308321 user=12\nseq=2 slot=1 vpts=77 apts=0 size=308321 user=0\n"
    );
    let g3 = install_fixture("memaud_s16le.bin");
    assert_eq!(
        ok(&["tail", g3.name(), "--from-start", "--count", "1"]),
        "seq=1 slot=0 pts=555 size=3840 user=0\n"
    );
    let entry = fixture_entry("mempkt_basic.bin");
    let g4 = install_fixture("mempkt_basic.bin");
    let lines = ok(&[
        "tail",
        g4.name(),
        "--from-start",
        "--count",
        "3",
        "--timeout",
        "5s",
    ]);
    let kinds = ["data", "video", "audio"];
    for (line, rec) in lines
        .lines()
        .zip(entry["expect"]["records"].as_array().unwrap())
    {
        let meta_len = rec["meta"].as_str().unwrap().len();
        let want = format!(
            "pts={} size={} kind={} track={} meta={meta_len}",
            rec["pts"],
            rec["payload_len"],
            kinds[rec["kind"].as_u64().unwrap() as usize],
            rec["track"]
        );
        assert!(line.ends_with(&want), "{line} vs {want}");
    }
    assert_eq!(lines.lines().count(), 3);

    // A writer in another handle (as a libmembus writer would) publishes frame 2 into slot
    // 1, then frame 5 into slot 0 (frames 3 and 4 never reach this reader). The tail starts
    // from the start, so its first line (frame 1) says it is following; each frame is
    // published only after the tail printed the one before (no timing assumption).
    let mut tail = Command::new(env!("CARGO_BIN_EXE_membus"))
        .args([
            "tail",
            g.name(),
            "--from-start",
            "--count",
            "3",
            "--timeout",
            "60s",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(tail.stdout.take().unwrap()));
    let mut next_line = || {
        lines
            .next()
            .expect("a line from tail")
            .expect("tail output")
    };
    assert_eq!(
        next_line(),
        "seq=1 slot=0 vpts=123456 apts=123000 size=384 user=0"
    );
    let raw = membus_tests::RawShare::open(g.name()).unwrap();
    let slot = |i: usize| 4096 + i * 448;
    raw.put_i64(slot(1) + 8, 999);
    raw.put_i64(slot(1) + 32, 2);
    raw.put_i64(40, 2);
    assert_eq!(next_line(), "seq=2 slot=1 vpts=999 apts=0 size=384 user=0");
    raw.put_i64(slot(0) + 8, 5000);
    raw.put_i64(slot(0) + 32, 5);
    raw.put_i64(40, 5);
    assert_eq!(next_line(), "overrun: 2 lost");
    assert_eq!(
        next_line(),
        "seq=5 slot=0 vpts=5000 apts=123000 size=384 user=0"
    );
    let status = tail.wait().unwrap();
    assert!(status.success(), "tail: {status}");

    // A corrupt header is an error, not a crash.
    raw.put_i64(56, 1 << 40);
    let out = membus(&["tail", g.name(), "--from-start", "--timeout", "100ms"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid layout"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn send_create_keeps_the_share_until_interrupted() {
    let name = unique_name("cli-keep");
    let _cleanup = ShmGuard(name.clone());
    // Sizes take units; with no --linger the share stays until SIGINT/SIGTERM.
    let sender = Command::new(env!("CARGO_BIN_EXE_membus"))
        .args(["send", &name, "--create", "4k", "one", "two"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&name);
    assert_eq!(
        ok(&[
            "tail",
            &name,
            "--from-start",
            "--count",
            "2",
            "--timeout",
            "20s"
        ]),
        "one\ntwo\n",
        "a reader that comes later still finds the messages"
    );
    assert_eq!(json(&["info", &name, "--json"])["header"]["capacity"], 4096);
    // SAFETY: sending SIGTERM to our own child, which is alive (it waits for a signal).
    let rc = unsafe { libc::kill(sender.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let out = sender.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "SIGTERM ends it cleanly: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !std::path::Path::new(&format!("/dev/shm{name}")).exists(),
        "the created share is removed when the command ends"
    );
}

#[test]
fn sizes_take_units_and_bad_ones_are_refused() {
    let name = unique_name("cli-units");
    let _cleanup = ShmGuard(name.clone());
    let out = membus(&["send", &name, "--create", "64KiB", "--linger", "0s", "x"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tiny = unique_name("cli-tiny");
    let _tiny = ShmGuard(tiny.clone());
    let out = membus(&["send", &tiny, "--create", "10", "--linger", "0s", "hi"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("too small for any message") && !err.contains("(expected"),
        "the error says why, without a meaningless suffix: {err}"
    );
    let out = membus(&["send", &name, "--create", "4 parsecs", "x"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown unit"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[derive(membus::MemKvEnum, Clone, Copy, Debug, Default, PartialEq)]
enum Level {
    #[default]
    Low,
    High,
}

#[derive(membus::MemKv, Clone, Debug, Default, PartialEq)]
struct Typed {
    rate_hz: u32,
    enabled: bool,
    level: Level,
}

#[test]
fn kv_set_refuses_what_a_typed_reader_cannot_parse() {
    let g = ShmGuard::new("cli-typed");
    let kv = membus::Kv::<Typed>::create(g.name(), &Typed::default()).unwrap();
    let refused = |args: &[&str], what: &str| {
        let out = membus(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{what} was accepted");
        assert!(
            err.contains("--raw"),
            "{what}: the error should name --raw: {err}"
        );
        err
    };
    let err = refused(
        &["kv", g.name(), "set", "rate_hz", "fast"],
        "text for a number",
    );
    // The store describes itself: the error names the field and what it accepts.
    assert!(
        err.contains("field `rate_hz`") && err.contains("expected an integer from 0 to 4294967295"),
        "{err}"
    );
    refused(&["kv", g.name(), "set", "enabled", "yes"], "yes for a bool");
    // Without the description, the current text of the slot is the guide.
    let desc = format!("/dev/shm{}.membus-schema", g.name());
    let saved = std::fs::read(&desc).unwrap();
    std::fs::remove_file(&desc).unwrap();
    let err = refused(
        &["kv", g.name(), "set", "rate_hz", "fast"],
        "text for a number (no description)",
    );
    assert!(err.contains("expect a number"), "{err}");
    std::fs::write(&desc, saved).unwrap();
    refused(&["kv", g.name(), "set", "__schema", "0"], "a schema write");
    assert_eq!(kv.get(Typed::RATE_HZ).unwrap(), 0, "nothing was written");
    ok(&["kv", g.name(), "set", "rate_hz", "30", "enabled", "true"]);
    assert_eq!(kv.get(Typed::RATE_HZ).unwrap(), 30);
    assert!(kv.get(Typed::ENABLED).unwrap());
    ok(&["kv", g.name(), "set", "--raw", "rate_hz", "fast"]);
    assert!(
        kv.get(Typed::RATE_HZ).is_err(),
        "--raw writes what it is given"
    );
}

#[test]
fn info_on_a_memvid_prints_each_field_once() {
    let g = install_fixture("memvid_rgb24.bin");
    let text = ok(&["info", g.name()]);
    for key in ["type", "size", "width", "height"] {
        let n = text
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(key))
            .count();
        assert_eq!(n, 1, "`{key}` printed {n} times:\n{text}");
    }
}

#[test]
fn help_puts_each_example_on_its_own_line() {
    // Every subcommand the top-level help lists (so a new one is covered too), and the
    // codegen languages.
    let top = ok(&["--help"]);
    let mut cmds: Vec<Vec<&str>> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(|c| vec![c])
        .collect();
    assert!(cmds.len() >= 9, "too few subcommands found in:\n{top}");
    cmds.push(vec!["codegen", "python"]);
    cmds.push(vec!["codegen", "cpp"]);
    for args in cmds {
        let cmd = args.join(" ");
        let help = ok(&[args.as_slice(), &["--help"]].concat());
        let examples: Vec<&str> = help.lines().filter(|l| l.contains("Example:")).collect();
        assert!(!examples.is_empty(), "{cmd} --help has no example:\n{help}");
        for l in &examples {
            assert_eq!(
                l.matches("Example:").count(),
                1,
                "{cmd} --help runs examples together:\n{help}"
            );
            assert!(l.trim_start().starts_with("Example:"), "{cmd}: {l}");
        }
    }
}

#[test]
fn rm_stale_removes_only_the_callers_shares_unless_all_users() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        // Straight to stderr (not captured by the test harness), so a skip is always seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: giving a share to another user needs root; not run"
        );
        return;
    }
    let tag = format!("rmuser{}", std::process::id());
    let theirs = unique_name(&format!("{tag}-theirs"));
    let _g = ShmGuard(theirs.clone());
    // A crashed owner's share (SIGKILL: no destructor runs), then given to another user.
    let mut owner = linger(&theirs);
    owner.kill().unwrap();
    owner.wait().unwrap();
    std::os::unix::fs::chown(format!("/dev/shm{theirs}"), Some(65534), Some(65534)).unwrap();
    assert_eq!(
        ok(&["rm", "--stale", &tag]),
        "",
        "another user's share is kept"
    );
    assert!(std::path::Path::new(&format!("/dev/shm{theirs}")).exists());
    assert_eq!(
        ok(&["rm", "--stale", "--all-users", &tag]),
        format!("removed {theirs}\n")
    );
}

#[test]
fn rm_stale_removes_a_waiter_registry_whose_share_is_gone() {
    // A membus reader of a pymembus-made share leaves the share's waiter registry
    // (`NAME.membus-wait`) in place; once the share itself is gone, it is stale.
    let g = install_fixture("memmsg_basic.bin");
    let companion = format!("{}.membus-wait", g.name());
    let _c = ShmGuard(companion.clone());
    drop(membus::memmsg::Reader::attach(g.name()).unwrap());
    assert!(std::path::Path::new(&format!("/dev/shm{companion}")).exists());
    std::fs::remove_file(format!("/dev/shm{}", g.name())).unwrap();
    let tag = g.name().trim_start_matches('/');
    assert_eq!(
        ok(&["rm", "--stale", tag]),
        format!("removed {companion}\n")
    );
    assert!(!std::path::Path::new(&format!("/dev/shm{companion}")).exists());
}

#[test]
fn a_mirror_whose_exporter_is_gone_shows_as_stale_mirror() {
    // What membus-bridge does for a mirror: the share has a live owner (here, this test),
    // and a note beside it says whether the source on the other host is alive.
    use membus::mirror::MirrorNote;
    let name = unique_name("mirror");
    let _g = ShmGuard(name.clone());
    let _n = ShmGuard(format!("{name}.membus-mirror"));
    let w = membus::memmsg::Writer::create(name.as_str(), 4096).unwrap();
    let state = |v: &Value| v["state"].as_str().unwrap_or_default().to_string();
    assert_eq!(state(&json(&["info", &name, "--json"])), "live");

    MirrorNote::new("plant/membus/cam", true)
        .write(name.as_str())
        .unwrap();
    let v = json(&["info", &name, "--json"]);
    assert_eq!(state(&v), "live");
    assert_eq!(v["mirror"]["source"], "plant/membus/cam");
    assert_eq!(v["mirror"]["live"], true);

    MirrorNote::new("plant/membus/cam", false)
        .write(name.as_str())
        .unwrap();
    assert_eq!(state(&json(&["info", &name, "--json"])), "stale mirror");
    let text = ok(&["info", &name]);
    assert!(
        text.lines()
            .any(|l| l.starts_with("mirror") && l.contains("of plant/membus/cam (exporter gone")),
        "{text}"
    );
    let ls = ok(&["ls"]);
    let row = ls
        .lines()
        .find(|l| l.contains(name.as_str()))
        .expect("listed");
    assert!(row.contains("stale mirror"), "{row}");
    // A live bridge keeps it: `rm --stale` leaves it alone, a plain `rm` wants --force.
    let tag = name.trim_start_matches('/');
    assert_eq!(ok(&["rm", "--stale", tag]), "");
    assert!(!membus(&["rm", &name]).status.success());

    // A bridge killed outright leaves the note; once the share is gone it is an orphan
    // that `rm --stale` removes.
    drop(w);
    assert!(std::path::Path::new(&format!("/dev/shm{name}.membus-mirror")).exists());
    assert_eq!(
        ok(&["rm", "--stale", tag]),
        format!("removed {name}.membus-mirror\n")
    );

    // A note that is not one is reported, never trusted.
    let w = membus::memmsg::Writer::create(name.as_str(), 4096).unwrap();
    std::fs::write(format!("/dev/shm{name}.membus-mirror"), b"garbage\n").unwrap();
    let text = ok(&["info", &name]);
    assert!(text.contains("not a mirror note"), "{text}");
    assert_eq!(state(&json(&["info", &name, "--json"])), "live");
    drop(w);
    assert_eq!(MirrorNote::read(name.as_str()).ok().flatten(), None);
}

/// Runs `membus ARGS` with standard output a pipe whose reading end is already closed (as
/// in `membus ls | head -0` once `head` has gone), so every write to it fails with EPIPE.
fn membus_stdout_closed(args: &[&str]) -> Output {
    use std::os::fd::{FromRawFd as _, OwnedFd};
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a writable array of two descriptors, what pipe2 fills in.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 succeeded, so fds[0] is an open descriptor that nothing else owns.
    let read_end = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: likewise for fds[1].
    let write_end = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    drop(read_end);
    Command::new(env!("CARGO_BIN_EXE_membus"))
        .args(args)
        .stdout(Stdio::from(write_end))
        .output()
        .expect("run membus")
}

/// A reader that stops reading early (`membus ls | head -1`) ends the command quietly: no
/// panic, no "Broken pipe" message, a success status; whatever the command does besides
/// printing is still done.
#[test]
fn a_closed_standard_output_ends_quietly() {
    let a = install_fixture("memmsg_basic.bin");
    let b = install_fixture("memkv_basic.bin");
    let json = std::env::temp_dir().join(format!(
        "membus-cli-closed-stdout-{}.json",
        std::process::id()
    ));
    let json_arg = json.to_str().expect("temp path is UTF-8").to_string();
    let cases: [&[&str]; 7] = [
        &["ls"],
        &["ls", "--json"],
        &["info", a.name()],
        &["kv", b.name(), "dump"],
        &[
            "tail",
            a.name(),
            "--from-start",
            "--count",
            "1",
            "--timeout",
            "5s",
        ],
        &[
            "bench",
            "--only",
            "memkv getValue",
            "--duration-ms",
            "50",
            "--json",
            &json_arg,
        ],
        &["rm", a.name(), b.name()],
    ];
    for args in cases {
        let out = membus_stdout_closed(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked") && !err.to_lowercase().contains("broken pipe"),
            "`membus {}` with its output closed said:\n{err}",
            args.join(" ")
        );
        assert!(
            out.status.success(),
            "`membus {}` with its output closed ended with {} and said:\n{err}",
            args.join(" "),
            out.status
        );
    }
    // The bench wrote its JSON although nobody read its table, and `rm` removed both
    // shares although nobody read "removed ...".
    let text = std::fs::read_to_string(&json).expect("the bench wrote its JSON");
    std::fs::remove_file(&json).expect("remove the JSON file");
    assert!(text.contains("\"memkv getValue\""), "{text}");
    for g in [&a, &b] {
        assert!(
            !std::path::Path::new(&format!("/dev/shm{}", g.name())).exists(),
            "{} was not removed",
            g.name()
        );
    }
}
