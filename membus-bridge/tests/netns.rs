//! Two "hosts" on one machine: two network namespaces joined by a veth pair, each process
//! tree with its own private /dev/shm (`unshare -m` plus a tmpfs), so both hosts use the
//! same share names. Needs root and `ip netns`; otherwise it says why and skips.
//!
//! A custom harness (no libtest): the same executable also runs the in-host helpers (the
//! share writer on host A, the share reader on host B) when `MEMBUS_NETNS_ROLE` is set,
//! because only processes inside a host's mount namespace see its /dev/shm.
//!
//! Only addresses inside the namespaces this test creates are used (10.231.x.1 and .2 on
//! the veth pair); the namespaces, and with them the veth pair and the tmpfs mounts, are
//! deleted afterwards.

mod common;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{field, Proc, BRIDGE};
use membus::layout::media::VideoFormat;
use membus::memmsg::{Reader, Writer};
use membus::memvid::{VideoParams, VideoReader, VideoWriter};
use membus::{Next, Received};

/// A named scenario.
type Case = (&'static str, fn(&Net));

const ROLE: &str = "MEMBUS_NETNS_ROLE";
const SHARE: &str = "/membus-test-netns-share";
const N_MSG: u64 = 20_000;
const N_FRAMES: u64 = 300;

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        let arg = std::env::var("MEMBUS_NETNS_ARG").unwrap_or_default();
        helper(&role, &arg);
        return;
    }
    if let Some(why) = cannot_run() {
        println!("netns: skipped: {why}");
        println!("test result: ok. 0 passed; 0 failed; 5 ignored; 0 measured; 0 filtered out");
        return;
    }
    let net = Net::create();
    let cases: [Case; 5] = [
        ("memmsg_20000_across_hosts_without_loss", memmsg_case),
        ("memvid_300_frames_throttled_link_counts_skips", memvid_case),
        ("exporter_host_killed_marks_mirror_stale", kill_case),
        (
            "full_dev_shm_on_importer_names_the_share_others_flow",
            full_shm_case,
        ),
        (
            "link_down_and_up_resumes_with_every_message_counted",
            link_case,
        ),
    ];
    // libtest-style name filters (`cargo test --test netns -- link`).
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = 0;
    let mut ran = 0;
    for (name, case) in cases {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&net)));
        let ok = r.is_ok();
        println!(
            "test netns::{name} ... {}",
            if ok { "ok" } else { "FAILED" }
        );
        if !ok {
            failed += 1;
        }
    }
    drop(net);
    println!(
        "test result: {}. {} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out",
        if failed == 0 { "ok" } else { "FAILED" },
        ran - failed
    );
    if failed > 0 {
        std::process::exit(1);
    }
}

fn cannot_run() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (network namespaces need it)".into());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Some(format!(
                "`ip netns` unavailable: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Err(e) => return Some(format!("`ip` not found: {e}")),
    }
    for tool in ["unshare", "tc"] {
        if Command::new(tool).arg("--version").output().is_err()
            && Command::new(tool).arg("-V").output().is_err()
        {
            return Some(format!("`{tool}` not found"));
        }
    }
    None
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The two namespaces and the veth pair between them; deleted on drop.
struct Net {
    a: String,
    b: String,
    va: String,
    ip_a: String,
    ip_b: String,
}

impl Net {
    fn create() -> Net {
        let pid = std::process::id();
        let tag = pid % 100_000;
        let n = Net {
            a: format!("membus-t{pid}-a"),
            b: format!("membus-t{pid}-b"),
            va: format!("mbva{tag}"),
            ip_a: format!("10.231.{}.1", pid % 250),
            ip_b: format!("10.231.{}.2", pid % 250),
        };
        let vb = format!("mbvb{tag}");
        sh(&["ip", "netns", "add", &n.a]);
        sh(&["ip", "netns", "add", &n.b]);
        sh(&[
            "ip", "link", "add", &n.va, "netns", &n.a, "type", "veth", "peer", "name", &vb,
            "netns", &n.b,
        ]);
        sh(&[
            "ip",
            "-n",
            &n.a,
            "addr",
            "add",
            &format!("{}/24", n.ip_a),
            "dev",
            &n.va,
        ]);
        sh(&[
            "ip",
            "-n",
            &n.b,
            "addr",
            "add",
            &format!("{}/24", n.ip_b),
            "dev",
            &vb,
        ]);
        for (ns, dev) in [(&n.a, &n.va), (&n.b, &vb)] {
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        n
    }

    /// Starts a host shell in namespace `ns` with a private /dev/shm: the bridge with
    /// `bridge_args` in the background, then the helper `role` in the foreground; when the
    /// helper ends, the bridge gets SIGTERM and its exit is awaited.
    fn host(&self, label: &str, ns: &str, bridge_args: &[String], role: &str, arg: &str) -> Host {
        self.host_sized(label, ns, bridge_args, role, arg, "256m")
    }

    /// [`host`](Self::host) with a /dev/shm of `size` (tmpfs syntax).
    fn host_sized(
        &self,
        label: &str,
        ns: &str,
        bridge_args: &[String],
        role: &str,
        arg: &str,
        size: &str,
    ) -> Host {
        let me = std::env::current_exe().expect("current exe");
        let quoted: Vec<String> = bridge_args.iter().map(|a| format!("'{a}'")).collect();
        let script = format!(
            "mount -t tmpfs -o size={size} membus-test /dev/shm || exit 97\n\
             '{BRIDGE}' {} &\n\
             BP=$!\n\
             '{}'\n\
             HS=$?\n\
             kill -TERM $BP 2>/dev/null\n\
             wait $BP\n\
             echo \"host: bridge exited $?\"\n\
             exit $HS\n",
            quoted.join(" "),
            me.display()
        );
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            ns,
            "unshare",
            "-m",
            "--propagation",
            "private",
        ])
        .args(["sh", "-c", &script])
        .env(ROLE, role)
        .env("MEMBUS_NETNS_ARG", arg)
        .stdin(Stdio::piped())
        .process_group(0);
        Host(Proc::spawn_cmd(label, &mut cmd))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.a]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).status();
    }
}

/// A host shell: its process group is killed if the test gives up on it.
struct Host(Proc);

impl Host {
    fn tell(&mut self, line: &str) {
        let stdin = self.0.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("write to host");
        stdin.flush().expect("flush");
    }

    /// Closes stdin (the helper's cue to finish) and waits for a clean exit; every line.
    fn finish(mut self) -> Vec<String> {
        drop(self.0.child.stdin.take());
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = self.0.child.try_wait() {
                assert!(st.success(), "host exited with {st}: {:#?}", self.0.seen);
                break;
            }
            assert!(
                Instant::now() < end,
                "host did not finish: {:#?}",
                self.0.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Collect what is left on stdout.
        let _ = self
            .0
            .wait_line(&["host: bridge exited"], Duration::from_secs(5));
        std::mem::take(&mut self.0.seen)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Ok(None) = self.0.child.try_wait() {
            // SAFETY: kill(2) on the process group we created; no memory obligations.
            unsafe { libc::kill(-(self.0.child.id() as i32), libc::SIGKILL) };
        }
    }
}

fn export_args(net: &Net, port: u16, share: &str) -> Vec<String> {
    vec![
        "export".into(),
        share.into(),
        "--listen".into(),
        format!("tcp/{}:{port}", net.ip_a),
    ]
}

fn import_args(net: &Net, port: u16, share: &str) -> Vec<String> {
    vec![
        "import".into(),
        share.into(),
        "--connect".into(),
        format!("tcp/{}:{port}", net.ip_a),
    ]
}

const T: Duration = Duration::from_secs(30);

fn final_of(lines: &[String]) -> String {
    lines
        .iter()
        .find(|l| l.starts_with("final:"))
        .unwrap_or_else(|| panic!("no final line in {lines:#?}"))
        .clone()
}

fn memmsg_case(net: &Net) {
    let port = 17447;
    let share = format!("memmsg:{SHARE}-msg");
    let mut a = net.host(
        "host-a",
        &net.a,
        &export_args(net, port, &share),
        "msg-writer",
        "msg",
    );
    a.0.wait_line(&["helper: created"], T);
    a.0.wait_line(&["export memmsg"], T);
    let mut b = net.host(
        "host-b",
        &net.b,
        &import_args(net, port, &format!("{SHARE}-msg")),
        "msg-reader",
        "msg",
    );
    b.0.wait_line(&["ready"], T);
    b.0.wait_line(&["helper: attached"], T);
    a.tell("go");
    let ok = b.0.wait_line(&["helper: result"], Duration::from_secs(180));
    assert!(ok.contains("helper: result ok"), "{ok}");
    let lb = b.finish();
    a.finish();
    let fin = final_of(&lb);
    assert_eq!(field(&fin, "received"), N_MSG, "{fin}");
    assert_eq!(field(&fin, "lost"), 0, "{fin}");
}

fn memvid_case(net: &Net) {
    let port = 17448;
    // Throttle host A's side of the link: 80 Mbit/s is ~11 frames of 640x480 rgb24 a second.
    sh(&[
        "ip", "netns", "exec", &net.a, "tc", "qdisc", "add", "dev", &net.va, "root", "tbf", "rate",
        "80mbit", "burst", "256kb", "latency", "100ms",
    ]);
    let share = format!("{SHARE}-vid");
    let mut a = net.host(
        "host-a",
        &net.a,
        &export_args(net, port, &share),
        "vid-writer",
        "vid",
    );
    a.0.wait_line(&["helper: created"], T);
    a.0.wait_line(&["export memvid"], T);
    let mut b = net.host(
        "host-b",
        &net.b,
        &import_args(net, port, &share),
        "vid-reader",
        "vid",
    );
    b.0.wait_line(&["ready"], T);
    b.0.wait_line(&["helper: attached"], T);
    a.tell("go");
    let ok = b.0.wait_line(&["helper: result"], Duration::from_secs(180));
    sh(&[
        "ip", "netns", "exec", &net.a, "tc", "qdisc", "del", "dev", &net.va, "root",
    ]);
    assert!(ok.contains("helper: result ok"), "{ok}");
    let lb = b.finish();
    a.finish();
    let fin = final_of(&lb);
    let nums: Vec<u64> = ok
        .split_whitespace()
        .filter_map(|w| w.split_once('=').and_then(|(_, v)| v.parse().ok()))
        .collect();
    let (delivered, torn, overrun) = (nums[0], nums[1], nums[2]);
    let (skipped, lost) = (field(&fin, "skipped"), field(&fin, "lost"));
    assert!(
        skipped > 0,
        "a throttled link must make the exporter skip: {fin}"
    );
    assert_eq!(
        delivered + torn + overrun + skipped + lost,
        N_FRAMES,
        "every frame delivered or counted ({ok}; {fin})"
    );
}

fn kill_case(net: &Net) {
    let port = 17449;
    let share = format!("memmsg:{SHARE}-kill");
    let mut a = net.host(
        "host-a",
        &net.a,
        &export_args(net, port, &share),
        "idle",
        "",
    );
    a.0.wait_line(&["helper: created"], T);
    let running = a.0.wait_line(&["membus-bridge: running, pid"], T);
    a.0.wait_line(&["export memmsg"], T);
    let pid: i32 = running
        .split("pid ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .expect("pid in the running line");
    let mut b = net.host(
        "host-b",
        &net.b,
        &import_args(net, port, &format!("{SHARE}-kill")),
        "none",
        "",
    );
    b.0.wait_line(&["ready"], T);
    // SAFETY: kill(2) on the exporter bridge this test started (its pid from its own line).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    b.0.wait_line(&["mirror stale"], Duration::from_secs(20));
    let lb = b.finish();
    a.finish();
    assert!(final_of(&lb).contains("[stale]"), "{:?}", final_of(&lb));
}

fn full_shm_case(net: &Net) {
    let port = 17450;
    let big = format!("memmsg:{SHARE}-big");
    let small = format!("memmsg:{SHARE}-small");
    let args = vec![
        "export".to_string(),
        big,
        small,
        "--listen".into(),
        format!("tcp/{}:{port}", net.ip_a),
    ];
    let mut a = net.host("host-a", &net.a, &args, "two-writers", "");
    a.0.wait_line(&["helper: created"], T);
    a.0.wait_line(&["export memmsg", "-small"], T);
    a.0.wait_line(&["export memmsg", "-big"], T);
    let args = vec![
        "import".to_string(),
        format!("{SHARE}-big"),
        format!("{SHARE}-small"),
        "--connect".into(),
        format!("tcp/{}:{port}", net.ip_a),
    ];
    // 1 MiB of /dev/shm on the importer: the 4 MiB mirror cannot be created.
    let mut b = net.host_sized("host-b", &net.b, &args, "small-reader", "", "1m");
    let err = b.0.wait_line(&["import", "-big:", "retrying"], T);
    assert!(err.contains(&format!("{SHARE}-big")), "{err}");
    b.0.wait_line(&["ready", "-small"], T);
    b.0.wait_line(&["helper: attached"], T);
    a.tell("go");
    let ok = b.0.wait_line(&["helper: result"], Duration::from_secs(60));
    assert!(ok.contains("helper: result ok"), "{ok}");
    b.finish();
    a.finish();
}

fn link_case(net: &Net) {
    let port = 17451;
    let share = format!("memmsg:{SHARE}-link");
    let mut a = net.host(
        "host-a",
        &net.a,
        &export_args(net, port, &share),
        "paced-writer",
        "",
    );
    a.0.wait_line(&["helper: created"], T);
    a.0.wait_line(&["export memmsg"], T);
    let mut b = net.host(
        "host-b",
        &net.b,
        &import_args(net, port, &format!("{SHARE}-link")),
        "paced-reader",
        "",
    );
    b.0.wait_line(&["ready"], T);
    b.0.wait_line(&["helper: attached"], T);
    a.tell("go");
    // Cut the link for 12 s in the middle of the stream (longer than Zenoh's 10 s lease, so
    // the session breaks and what was in flight is lost), then bring it back. The writer
    // keeps writing until the reader has seen the stream resume, however long the bridge
    // takes to recover, so the end of the stream never falls into the outage.
    std::thread::sleep(Duration::from_millis(1500));
    sh(&["ip", "-n", &net.a, "link", "set", &net.va, "down"]);
    b.0.wait_line(&["mirror stale"], Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    sh(&["ip", "-n", &net.a, "link", "set", &net.va, "up"]);
    b.0.wait_line(&["is back"], Duration::from_secs(30));
    let resumed =
        b.0.wait_line_for(&["helper: resumed"], Duration::from_secs(60));
    a.tell("stop");
    let wrote = a.0.wait_line(&["helper: wrote"], T);
    let n: u64 = wrote
        .rsplit(' ')
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{wrote}"));
    b.tell(&format!("last {n}"));
    let ok = b.0.wait_line(&["helper: result"], Duration::from_secs(60));
    let lb = b.finish();
    // The exporter's final counters go to the log either way (they tell a stalled
    // exporter from a stalled importer).
    a.finish();
    assert!(
        resumed.is_some(),
        "the stream did not resume within 60 s: {ok}"
    );
    assert!(ok.contains("helper: result ok"), "{ok}");
    let fin = final_of(&lb);
    let nums: Vec<u64> = ok
        .split_whitespace()
        .filter_map(|w| w.split_once('=').and_then(|(_, v)| v.parse().ok()))
        .collect();
    let (got, overrun) = (nums[0], nums[1]);
    assert!(got < n, "a 12 s outage must cost messages: {ok}; {fin}");
    assert_eq!(
        got + overrun + field(&fin, "lost"),
        n,
        "every message delivered or counted ({ok}; {fin})"
    );
}

/// Reads stdin lines on a thread: the in-host helpers' control channel.
fn stdin_lines() -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

// ---- helpers that run inside a host ----

fn helper(role: &str, _arg: &str) {
    let stdin = std::io::stdin();
    let wait_go = || {
        let mut line = String::new();
        let _ = stdin.read_line(&mut line);
    };
    let wait_eof = || {
        let mut line = String::new();
        while matches!(stdin.read_line(&mut line), Ok(n) if n > 0) {
            line.clear();
        }
    };
    match role {
        "msg-writer" => {
            let w = Writer::create(format!("{SHARE}-msg"), 4 << 20).expect("create");
            println!("helper: created");
            wait_go();
            let mut m = [0u8; 64];
            for i in 0..N_MSG {
                m[..8].copy_from_slice(&i.to_le_bytes());
                w.write(&m).expect("write");
            }
            println!("helper: wrote {N_MSG}");
            wait_eof();
        }
        "msg-reader" => {
            let mut r = attach_retry(|| Reader::attach(format!("{SHARE}-msg")));
            println!("helper: attached");
            let end = Instant::now() + Duration::from_secs(120);
            let mut got = 0u64;
            while got < N_MSG {
                if Instant::now() > end {
                    println!("helper: result FAIL only {got} messages");
                    return;
                }
                match r.read(Duration::from_millis(100)).expect("read") {
                    Received::Message { payload, .. } => {
                        let i = u64::from_le_bytes(payload[..8].try_into().unwrap());
                        if i != got {
                            println!("helper: result FAIL message {i} where {got} was due");
                            return;
                        }
                        got += 1;
                    }
                    Received::Timeout => {}
                    Received::Overrun { lost } => {
                        println!("helper: result FAIL overrun {lost}");
                        return;
                    }
                }
            }
            println!("helper: result ok received {got}");
        }
        "vid-writer" => {
            let mut p = VideoParams::new(640, 480, VideoFormat::Rgb24, 30, 4);
            p.frameextra = 16;
            let mut w = VideoWriter::create(format!("{SHARE}-vid"), &p).expect("create");
            println!("helper: created");
            wait_go();
            for i in 0..N_FRAMES {
                {
                    let mut f = w.frame();
                    let b = f.bytes_mut().expect("bytes");
                    for (y, row) in b.chunks_exact_mut(640 * 3).enumerate() {
                        row.fill((i as usize + y) as u8);
                    }
                    let sum = checksum(b);
                    let mut u = [0u8; 16];
                    u[..8].copy_from_slice(&i.to_le_bytes());
                    u[8..].copy_from_slice(&sum.to_le_bytes());
                    f.set_user_data(&u).expect("user data");
                }
                w.publish().expect("publish");
                std::thread::sleep(Duration::from_millis(5));
            }
            println!("helper: published {N_FRAMES}");
            wait_eof();
        }
        "vid-reader" => {
            let mut r = attach_retry(|| VideoReader::attach(format!("{SHARE}-vid")));
            println!("helper: attached");
            let mut buf = vec![0u8; 640 * 3 * 480];
            let (mut ok, mut torn, mut overrun) = (0u64, 0u64, 0u64);
            let end = Instant::now() + Duration::from_secs(120);
            loop {
                if Instant::now() > end {
                    println!("helper: result FAIL last frame never came (ok {ok})");
                    return;
                }
                r.wait_ready(Duration::from_millis(100));
                let mut last = false;
                loop {
                    match r.next().expect("next") {
                        Next::Frame(f) => {
                            f.copy_to(&mut buf).expect("copy");
                            let u = f.user_data();
                            if !f.is_intact() {
                                torn += 1;
                                continue;
                            }
                            let i = u64::from_le_bytes(u[..8].try_into().unwrap());
                            let sum = u64::from_le_bytes(u[8..16].try_into().unwrap());
                            if checksum(&buf) != sum || buf[0] != i as u8 {
                                println!("helper: result FAIL frame {i} checksum");
                                return;
                            }
                            ok += 1;
                            last = i == N_FRAMES - 1;
                        }
                        Next::Overrun { lost } => overrun += lost,
                        Next::Empty => break,
                    }
                }
                if last {
                    break;
                }
            }
            println!("helper: result ok delivered={ok} torn={torn} overrun={overrun}");
        }
        "idle" => {
            let w = Writer::create(format!("{SHARE}-kill"), 1 << 16).expect("create");
            println!("helper: created");
            wait_eof();
            drop(w);
        }
        "none" => wait_eof(),
        "paced-writer" => {
            let w = Writer::create(format!("{SHARE}-link"), 1 << 20).expect("create");
            println!("helper: created");
            let lines = stdin_lines();
            let _ = lines.recv(); // go
            let mut n = 0u64;
            // Bounded: at most 120 s of stream (the test says stop long before).
            while n < 60_000 && lines.try_recv().is_err() {
                w.write(&n.to_le_bytes()).expect("write");
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            println!("helper: wrote {n}");
            while lines.recv().is_ok() {}
        }
        "paced-reader" => {
            let mut r = attach_retry(|| Reader::attach(format!("{SHARE}-link")));
            println!("helper: attached");
            let lines = stdin_lines();
            let end = Instant::now() + Duration::from_secs(150);
            let (mut got, mut overrun, mut last) = (0u64, 0u64, None::<u64>);
            // Messages received since the first gap (the outage), and the writer's total
            // once the test tells it.
            let (mut after_gap, mut gap_seen, mut total) = (0u64, false, None::<u64>);
            while total.is_none_or(|n| last != Some(n - 1)) {
                if Instant::now() > end {
                    println!(
                        "helper: result FAIL stream did not resume (got {got}, last {last:?}, total {total:?})"
                    );
                    return;
                }
                if let Ok(line) = lines.try_recv() {
                    total = line.strip_prefix("last ").and_then(|n| n.parse().ok());
                }
                match r.read(Duration::from_millis(100)).expect("read") {
                    Received::Message { payload, .. } => {
                        let i = u64::from_le_bytes(payload[..8].try_into().unwrap());
                        if last.is_some_and(|l| i <= l) {
                            println!("helper: result FAIL message {i} after {last:?}");
                            return;
                        }
                        if last.is_some_and(|l| i > l + 1) {
                            gap_seen = true;
                        }
                        if gap_seen {
                            after_gap += 1;
                            if after_gap == 300 {
                                println!("helper: resumed");
                            }
                        }
                        last = Some(i);
                        got += 1;
                    }
                    Received::Overrun { lost } => overrun += lost,
                    Received::Timeout => {}
                }
            }
            println!("helper: result ok got={got} overrun={overrun}");
        }
        "two-writers" => {
            let _big = Writer::create(format!("{SHARE}-big"), 4 << 20).expect("create big");
            let small = Writer::create(format!("{SHARE}-small"), 1 << 16).expect("create small");
            println!("helper: created");
            wait_go();
            for i in 0..100u64 {
                small.write(&i.to_le_bytes()).expect("write");
            }
            wait_eof();
        }
        "small-reader" => {
            let mut r = attach_retry(|| Reader::attach(format!("{SHARE}-small")));
            println!("helper: attached");
            let end = Instant::now() + Duration::from_secs(30);
            let mut got = 0u64;
            while got < 100 {
                if Instant::now() > end {
                    println!("helper: result FAIL only {got}");
                    return;
                }
                if let Received::Message { payload, .. } =
                    r.read(Duration::from_millis(100)).expect("read")
                {
                    if payload != got.to_le_bytes() {
                        println!("helper: result FAIL message {got}");
                        return;
                    }
                    got += 1;
                }
            }
            println!("helper: result ok received {got}");
        }
        other => panic!("unknown role {other}"),
    }
}

fn attach_retry<T>(f: impl Fn() -> membus::Result<T>) -> T {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        match f() {
            Ok(t) => return t,
            Err(e) if Instant::now() > end => panic!("attach: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn checksum(b: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for c in b.chunks_exact(8) {
        h = (h ^ u64::from_le_bytes(c.try_into().unwrap())).wrapping_mul(0x100_0000_01b3);
    }
    h
}
