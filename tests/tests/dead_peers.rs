//! No dead peer wedges a share: waiters SIGKILLed while blocked, membus ones and foreign
//! ones (a Python process sleeping in the share's glibc condition, as libmembus and
//! pymembus readers do), on memmsg, memcmd and memkv shares made by membus (robust mutex)
//! and laid out as libmembus makes them (the fixtures' non-robust Boost 1.74 mutex).
//!
//! After every kill the next write must complete (it used to block for ever inside
//! `pthread_cond_broadcast`), and a reader that stays alive must receive it. The bound
//! asserted on a write is the lock timeout (5 s, far above any scheduling delay); the
//! slowest write is printed, not asserted.
//!
//! `MEMBUS_KILL_ROUNDS` sets the rounds per case (default 200 for membus waiters, 60 for
//! Python waiters, whose processes are slower to start).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use membus::memcmd::MemCmd;
use membus::memkv::MemKv;
use membus::memmsg::{Reader, Writer};
use membus::{QueueOptions, Received};
use membus_tests::{install_fixture, spawn, RawShare, ShmGuard};

const PEER: &str = env!("CARGO_BIN_EXE_membus-peer");
/// A write that takes this long is blocked, not slow.
const HUNG: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Msg,
    Cmd,
    Kv,
}

impl Kind {
    fn arg(self) -> &'static str {
        match self {
            Kind::Msg => "msg",
            Kind::Cmd => "cmd",
            Kind::Kv => "kv",
        }
    }
    fn python(self) -> &'static str {
        match self {
            Kind::Msg => "memmsg",
            Kind::Cmd => "memcmd",
            Kind::Kv => "memkv",
        }
    }
    fn fixture(self) -> &'static str {
        match self {
            Kind::Msg => "memmsg_basic.bin",
            Kind::Cmd => "memcmd_basic.bin",
            Kind::Kv => "memkv_basic.bin",
        }
    }
    fn mutex(self) -> usize {
        if self == Kind::Msg {
            32
        } else {
            40
        }
    }
    fn cond(self) -> usize {
        self.mutex() + 40
    }
}

fn rounds(default: usize) -> usize {
    std::env::var("MEMBUS_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The writing side of a share, kept by the test for the whole case.
enum Writing {
    Msg(Writer),
    Cmd(MemCmd),
    Kv(MemKv),
}

impl Writing {
    fn write(&self, i: usize) -> i64 {
        let text = format!("round {i}");
        match self {
            Writing::Msg(w) => w.write(text.as_bytes()).unwrap() as i64,
            Writing::Cmd(c) => c.write(text.as_bytes()).unwrap() as i64,
            Writing::Kv(kv) => kv.set(0, text).unwrap(),
        }
    }
}

/// A share for one case: made by membus, or installed from a pymembus fixture.
fn share(kind: Kind, foreign: bool) -> (ShmGuard, Writing) {
    if foreign {
        let g = install_fixture(kind.fixture());
        let w = match kind {
            Kind::Msg => Writing::Msg(Writer::attach(g.name()).unwrap()),
            Kind::Cmd => Writing::Cmd(
                MemCmd::attach_with(g.name(), &QueueOptions::new().register_reader(false)).unwrap(),
            ),
            Kind::Kv => Writing::Kv(MemKv::attach(g.name()).unwrap()),
        };
        return (g, w);
    }
    let g = ShmGuard::new(&format!("dead-{}", kind.arg()));
    let w = match kind {
        Kind::Msg => Writing::Msg(Writer::create(g.name(), 1 << 16).unwrap()),
        Kind::Cmd => Writing::Cmd(MemCmd::create(g.name(), 1 << 16).unwrap()),
        Kind::Kv => Writing::Kv(MemKv::create_named(g.name(), &["a", "b"], 16, 30).unwrap()),
    };
    (g, w)
}

/// A reader in this process that stays alive through the kills: records the newest
/// sequence number (memmsg/memcmd) or epoch (memkv) it has received, and fails the test on
/// any gap.
fn survivor(kind: Kind, name: &str, seen: Arc<AtomicI64>, stop: Arc<AtomicI64>) {
    let long = Duration::from_millis(500);
    match kind {
        Kind::Msg | Kind::Cmd => {
            let mut read: Box<dyn FnMut() -> Received<Vec<u8>>> = if kind == Kind::Msg {
                let mut r = Reader::attach(name).unwrap();
                Box::new(move || r.read(long).unwrap())
            } else {
                let mut c = MemCmd::attach(name).unwrap();
                Box::new(move || c.read(long).unwrap())
            };
            seen.store(0, Ordering::SeqCst);
            let mut last = None;
            while stop.load(Ordering::SeqCst) == 0 {
                match read() {
                    Received::Message { seq, .. } => {
                        if let Some(l) = last {
                            assert_eq!(seq, l + 1, "the surviving reader got every message");
                        }
                        last = Some(seq);
                        seen.store(seq as i64, Ordering::SeqCst);
                    }
                    Received::Overrun { lost } => panic!("surviving reader lost {lost}"),
                    Received::Timeout => {}
                }
            }
        }
        Kind::Kv => {
            let kv = MemKv::attach(name).unwrap();
            let mut e = kv.epoch();
            seen.store(e, Ordering::SeqCst);
            while stop.load(Ordering::SeqCst) == 0 {
                if let Some(now) = kv.wait_for_change(e, long).unwrap() {
                    assert!(now > e);
                    e = now;
                    seen.store(e, Ordering::SeqCst);
                }
            }
        }
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn kill9(pid: i32) {
    // SAFETY: plain kill(2) of a child process id this test started.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill {pid}");
}

/// Whether `pid` is registered as a waiter in the share's companion registry.
fn registered(name: &str, pid: u32) -> bool {
    let Ok(c) = RawShare::open(&format!("{name}.membus-wait")) else {
        return false;
    };
    let active = c.get_i64(8);
    (0..63).any(|i| c.get_i64(16 + 8 * i) == i64::from(pid) && active & (1 << i) != 0)
}

/// Runs `rounds` of: a waiter that gets killed while blocked, then one write that must
/// complete and reach the survivor. `kill_one` starts a waiter, waits until it is asleep,
/// and kills it.
fn run_case(kind: Kind, foreign: bool, rounds: usize, mut kill_one: impl FnMut(&str)) {
    let (g, writing) = share(kind, foreign);
    let seen = Arc::new(AtomicI64::new(-1));
    let stop = Arc::new(AtomicI64::new(0));
    let name = g.name().to_string();
    let t = {
        let (seen, stop, name) = (Arc::clone(&seen), Arc::clone(&stop), name.clone());
        std::thread::spawn(move || survivor(kind, &name, seen, stop))
    };
    wait_until("the survivor is attached", || {
        seen.load(Ordering::SeqCst) >= 0
    });
    let mut slowest = Duration::ZERO;
    for i in 0..rounds {
        kill_one(&name);
        let t0 = Instant::now();
        let v = writing.write(i);
        let took = t0.elapsed();
        assert!(
            took < HUNG,
            "{kind:?} (foreign layout: {foreign}) round {i}: the write after a killed waiter took {took:?}"
        );
        slowest = slowest.max(took);
        wait_until("the survivor has the write", || {
            seen.load(Ordering::SeqCst) >= v
        });
    }
    stop.store(1, Ordering::SeqCst);
    t.join().expect("the survivor saw every write");
    println!(
        "{kind:?}, {} layout: {rounds} waiters killed; slowest next write {slowest:?}",
        if foreign { "libmembus" } else { "membus" }
    );
    // With nobody waiting any more, writers find the dead waiters' registrations empty and
    // remove them.
    if let Ok(c) = RawShare::open(&format!("{name}.membus-wait")) {
        for i in 0..(64 * 3) {
            writing.write(rounds + i);
            if c.get_i64(8) == 0 {
                break;
            }
        }
        assert_eq!(c.get_i64(8), 0, "dead waiters' registry bits are repaired");
    }
    drop(writing);
}

/// Starts a `wait-read KIND NAME` child, waits until `registered(pid)` says it sleeps in
/// the registry, and SIGKILLs it there.
fn kill_registered_waiter(kind: &str, name: &str, registered: impl Fn(u32) -> bool) {
    let mut child = spawn(Path::new(PEER), &["wait-read", kind, name]);
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    let pid = child.id();
    wait_until("the waiter is registered", || registered(pid));
    kill9(pid as i32);
    child.wait().unwrap();
}

/// A membus waiter child blocked in a read (or `wait_for_change`), killed once it is
/// registered.
fn kill_membus_waiter(kind: Kind) -> impl FnMut(&str) {
    move |name: &str| kill_registered_waiter(kind.arg(), name, |pid| registered(name, pid))
}

#[test]
fn killed_membus_waiters_never_block_writers_or_readers() {
    let n = rounds(200);
    for kind in [Kind::Msg, Kind::Cmd, Kind::Kv] {
        for foreign in [false, true] {
            run_case(kind, foreign, n, kill_membus_waiter(kind));
        }
    }
}

/// A Python process that forks libmembus-style waiters on request.
struct PyWaiters {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl PyWaiters {
    fn start(kind: Kind, name: &str) -> PyWaiters {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/ring_peer.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["waiters", kind.python(), name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let out = BufReader::new(child.stdout.take().unwrap());
        PyWaiters { child, out }
    }

    /// Forks one waiter and returns its pid once it says it is about to wait.
    fn fork_waiter(&mut self) -> i32 {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"wait\n").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.trim()
            .strip_prefix("waiting ")
            .unwrap_or_else(|| panic!("python waiter said {line:?}"))
            .parse()
            .unwrap()
    }
}

impl Drop for PyWaiters {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[test]
fn killed_foreign_waiters_never_block_membus_writers() {
    let n = rounds(60);
    for kind in [Kind::Msg, Kind::Cmd, Kind::Kv] {
        for foreign in [false, true] {
            let mut py: Option<PyWaiters> = None;
            run_case(kind, foreign, n, |name: &str| {
                let py = py.get_or_insert_with(|| PyWaiters::start(kind, name));
                let raw = RawShare::open(name).unwrap();
                let wrefs = |r: &RawShare| r.get_i64(kind.cond() + 32) as u64 >> 32;
                let before = wrefs(&raw);
                let pid = py.fork_waiter();
                // Asleep in the condition: registered there, and the mutex released.
                wait_until("the python waiter sleeps in the condition", || {
                    wrefs(&raw) != before && (raw.get_i64(kind.mutex()) as u32) & 0x3fff_ffff == 0
                });
                kill9(pid);
            });
        }
    }
}

/// A media reader killed while it waits leaves its registration in the reserved header
/// words; the writer's wakes find nobody and it is removed.
#[test]
fn killed_media_waiters_are_removed_from_the_registry() {
    let g = ShmGuard::new("dead-vid");
    let mut w = membus_tests::tiny_video(g.name());
    let raw = RawShare::open(g.name()).unwrap();
    // reserved0 (104): the bitmap of waiting processes; reserved1..7 (112..168): their ids.
    let registered = |pid: u32| {
        let active = raw.get_i64(104);
        (0..7).any(|i| raw.get_i64(112 + 8 * i) == i64::from(pid) && active & (1 << i) != 0)
    };
    let n = rounds(200).min(40);
    for _ in 0..n {
        kill_registered_waiter("vid", g.name(), registered);
    }
    assert_ne!(raw.get_i64(104), 0, "the dead waiters' bits are still set");
    for i in 0..(64 * 3) {
        w.frame().fill(i as u8).unwrap();
        w.publish().unwrap();
        if raw.get_i64(104) == 0 {
            break;
        }
    }
    assert_eq!(raw.get_i64(104), 0, "the writer removed the dead waiters");
    for i in 0..7 {
        assert_eq!(raw.get_i64(112 + 8 * i), 0, "slot {i} is free again");
    }
}
