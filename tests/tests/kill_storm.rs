//! SIGKILL at random points: writer and reader processes on memmsg, memcmd and memkv
//! shares are killed a few milliseconds after they start hammering the share, over and
//! over, while a reader in this process keeps going. Nothing may hang, and the surviving
//! reader's delivered + reported-lost messages must equal what the share says was written
//! (writers killed mid-write holding the robust mutex are repaired by the next locker).
//!
//! `MEMBUS_STORM_KILLS` sets the kills per share type (default 170, over 500 in all).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use membus::memcmd::MemCmd;
use membus::memkv::MemKv;
use membus::memmsg::{Reader, Writer};
use membus::Received;
use membus_tests::{spawn, ShmGuard};

const PEER: &str = env!("CARGO_BIN_EXE_membus-peer");

fn kills() -> usize {
    std::env::var("MEMBUS_STORM_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(170)
}

/// A tiny deterministic generator (xorshift), so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Starts `role` on the share and SIGKILLs it 0–3 ms after it reported ready; returns how
/// it ended (a child that exited on its own with a failure is an error).
fn storm(kind: &str, name: &str, n: usize, seed: u64) {
    let mut rng = Rng(seed);
    for i in 0..n {
        let writer = rng.next() % 3 != 0;
        let id = i.to_string();
        let args: Vec<&str> = if writer {
            vec!["churn-write", kind, name, &id]
        } else {
            vec!["churn-read", kind, name]
        };
        let mut child = spawn(Path::new(PEER), &args);
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "{args:?}");
        std::thread::sleep(Duration::from_micros(rng.next() % 3000));
        // SAFETY: plain kill(2) of the child this test started.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
        let status = child.wait().unwrap();
        assert!(
            !status.success() && status.code().is_none(),
            "{args:?} ended by itself ({status}) before the kill: it failed"
        );
    }
}

fn ring_case(kind: &str) {
    let g = ShmGuard::new(&format!("storm-{kind}"));
    // The creator stays alive (and owns the share); children attach to it.
    let (_owner_msg, _owner_cmd);
    let mut read: Box<dyn FnMut(Duration) -> Received<Vec<u8>> + Send> = if kind == "msg" {
        _owner_msg = Some(Writer::create(g.name(), 1 << 20).unwrap());
        let mut r = Reader::attach(g.name()).unwrap();
        Box::new(move |t| r.read(t).unwrap())
    } else {
        _owner_cmd = Some(MemCmd::create(g.name(), 1 << 20).unwrap());
        let mut c = MemCmd::attach(g.name()).unwrap();
        Box::new(move |t| c.read(t).unwrap())
    };
    let start_seq = membus_tests::RawShare::open(g.name()).unwrap().get_i64(16);
    let stop = Arc::new(AtomicBool::new(false));
    let survivor = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let (mut delivered, mut lost, mut last) = (0u64, 0u64, None::<u64>);
            let mut drain_until = None::<Instant>;
            loop {
                match read(Duration::from_millis(100)) {
                    Received::Message { seq, .. } => {
                        if let Some(l) = last {
                            assert!(seq > l, "sequence went backwards: {l} then {seq}");
                        }
                        last = Some(seq);
                        delivered += 1;
                    }
                    Received::Overrun { lost: n } => lost += n,
                    Received::Timeout => {
                        if stop.load(Ordering::SeqCst) {
                            // Writers are gone: one more quiet read and it is all in.
                            if drain_until.is_some_and(|t| Instant::now() >= t) {
                                return (delivered, lost);
                            }
                            drain_until.get_or_insert(Instant::now());
                        }
                    }
                }
            }
        })
    };
    storm(kind, g.name(), kills(), 0x9e37_79b9_7f4a_7c15);
    stop.store(true, Ordering::SeqCst);
    let (delivered, lost) = survivor.join().expect("the surviving reader kept going");
    let end_seq = membus_tests::RawShare::open(g.name()).unwrap().get_i64(16);
    let written = (end_seq - start_seq) as u64;
    println!("{kind}: {written} written, survivor delivered {delivered} + lost {lost}");
    assert!(written > 0, "the killed writers wrote something");
    assert_eq!(
        delivered + lost,
        written,
        "every message written is delivered or counted as lost"
    );
}

#[test]
fn memmsg_survives_a_kill_storm() {
    ring_case("msg");
}

#[test]
fn memcmd_survives_a_kill_storm() {
    ring_case("cmd");
}

#[test]
fn memkv_survives_a_kill_storm() {
    let g = ShmGuard::new("storm-kv");
    let owner = MemKv::create_named(g.name(), &["a", "b", "c"], 8, 40).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let survivor = {
        let (stop, name) = (Arc::clone(&stop), g.name().to_string());
        std::thread::spawn(move || {
            let kv = MemKv::attach(&name).unwrap();
            let mut e = kv.epoch();
            let mut snapshots = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let s = kv.snapshot().expect("snapshots keep working");
                assert!(s.epoch >= e, "epochs never go backwards");
                e = s.epoch;
                snapshots += 1;
                let _ = kv.wait_for_change(e, Duration::from_millis(5)).unwrap();
            }
            snapshots
        })
    };
    storm("kv", g.name(), kills(), 0x2545_f491_4f6c_dd1d);
    stop.store(true, Ordering::SeqCst);
    let snapshots = survivor.join().expect("the surviving reader kept going");
    // After the storm the store is whole: every slot stable, and a write goes through.
    let e = owner.set(0, "after").unwrap();
    let s = owner.snapshot().unwrap();
    assert!(s.epoch >= e);
    for i in 0..3 {
        assert!(!owner.get(i).unwrap().stale, "slot {i} was left mid-write");
    }
    println!("kv: epoch {}, survivor took {snapshots} snapshots", s.epoch);
}
