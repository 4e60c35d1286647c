//! The mutated-header harness: every fixture of `fixtures/libmembus-2.1`, mutated (bit
//! flips and word overwrites with extreme values in the header, the lock bytes and the
//! slot or descriptor areas), each case run in a `membus-mutant` child process that
//! drives every accessor (attach, reads, writes, waits and selects with short timeouts,
//! snapshots). A watchdog kills a child whose case makes no progress for 8 s and names
//! the case.
//!
//! Asserted: no signal, no panic, no hang, no call longer than the lock deadline (50 ms
//! in the child) plus one second of slack for a loaded machine, and case 0 of each
//! fixture (pristine) reads as the manifest says.
//!
//! The live tests run three threads on one share while the main thread of the child keeps
//! overwriting header, lock and slot words.
//!
//! `MEMBUS_MUTANT_CASES` sets the cases per fixture (default 120, which keeps this test
//! to a few seconds; the full run is `MEMBUS_MUTANT_CASES=2000`).

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use membus_tests::manifest;

const CASE_DEADLINE: Duration = Duration::from_secs(8);
const BATCH: u64 = 250;
const LOCK_MS: &str = "50";
const WAIT_MS: &str = "2";

/// Runs cases `0..end` of `file` in children; returns the problems found.
fn run_fixture(file: &str, end: u64, done: &mut u64) -> Vec<String> {
    let bin = env!("CARGO_BIN_EXE_membus-mutant");
    let mut problems = Vec::new();
    let mut next = 0;
    while next < end {
        let count = BATCH.min(end - next);
        let mut child = Command::new(bin)
            .args([
                file,
                &next.to_string(),
                &count.to_string(),
                LOCK_MS,
                WAIT_MS,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn membus-mutant");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut current: Option<(u64, String, String)> = None;
        let mut last_done = None;
        let hung = loop {
            match rx.recv_timeout(CASE_DEADLINE) {
                Ok(line) => {
                    let mut parts = line.splitn(4, ' ');
                    let tag = parts.next().unwrap_or("");
                    let case: u64 = parts
                        .next()
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(u64::MAX);
                    match tag {
                        "start" => {
                            let name = parts.next().unwrap_or("").to_string();
                            let desc = parts.next().unwrap_or("").to_string();
                            current = Some((case, name, desc));
                        }
                        "done" => {
                            *done += 1;
                            last_done = Some(case);
                            current = None;
                        }
                        "slow" | "fail" => {
                            let what = line.splitn(3, ' ').nth(2).unwrap_or("").to_string();
                            let desc = current.as_ref().map_or("", |c| c.2.as_str());
                            problems.push(format!("{file} case {case} ({desc}): {tag} {what}"));
                        }
                        _ => problems.push(format!("{file}: unexpected child output {line:?}")),
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break true,
                Err(mpsc::RecvTimeoutError::Disconnected) => break false,
            }
        };
        if hung {
            let _ = child.kill();
        }
        let status = child.wait().expect("wait membus-mutant");
        let _ = reader.join();
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        if let Some((case, name, desc)) = &current {
            let _ = membus::remove(name.as_str());
            let what = if hung {
                format!("no progress for {CASE_DEADLINE:?} (hang), killed")
            } else {
                format!("child ended with {status}: {}", stderr.trim())
            };
            problems.push(format!("{file} case {case} ({desc}): {what}"));
            next = case + 1;
        } else if !status.success() {
            problems.push(format!(
                "{file}: child ended with {status}: {}",
                stderr.trim()
            ));
            next = last_done.map_or(end, |d| d + 1);
        } else {
            next += count;
        }
    }
    problems
}

#[test]
fn mutated_fixtures_never_crash_hang_or_stall() {
    let cases: u64 = std::env::var("MEMBUS_MUTANT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let m = manifest();
    let files: Vec<String> = m["fixtures"]
        .as_array()
        .expect("fixtures")
        .iter()
        .filter_map(|f| f["file"].as_str().map(str::to_string))
        .collect();
    assert_eq!(files.len(), 9, "every fixture is exercised");
    let mut problems = Vec::new();
    let mut done = 0;
    for f in &files {
        problems.extend(run_fixture(f, cases, &mut done));
    }
    // Every case ran to its end, or is listed as a problem.
    assert!(
        done + problems.len() as u64 >= cases * files.len() as u64,
        "only {done} of {} cases completed",
        cases * files.len() as u64
    );
    assert!(
        problems.is_empty(),
        "{} problem(s) in {} cases per fixture:\n{}",
        problems.len(),
        cases,
        problems.join("\n")
    );
}

/// Runs `membus-mutant live FILE MS SEED` (three threads drive every accessor while the
/// main thread overwrites header, lock and slot words); returns the problems seen.
fn run_live(file: &str, ms: u64, seed: u64) -> Vec<String> {
    let bin = env!("CARGO_BIN_EXE_membus-mutant");
    let mut child = Command::new(bin)
        .args(["live", file, &ms.to_string(), &seed.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn membus-mutant");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut problems = Vec::new();
    let mut name = None;
    let mut finished = false;
    let deadline = Duration::from_millis(ms) + CASE_DEADLINE;
    let started = std::time::Instant::now();
    loop {
        let left = deadline.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with("start ") => {
                name = line.split(' ').nth(2).map(str::to_string);
            }
            Ok(line) if line.starts_with("live done ") => {
                let calls: u64 = line[10..].parse().unwrap_or(0);
                if calls == 0 {
                    problems.push(format!("{file} live seed {seed}: no call completed"));
                }
                finished = true;
            }
            Ok(line) => problems.push(format!("{file} live seed {seed}: {line}")),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                problems.push(format!(
                    "{file} live seed {seed}: no end after {deadline:?} (hang), killed"
                ));
                let _ = child.kill();
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait().expect("wait membus-mutant");
    let _ = reader.join();
    if !status.success() || !finished {
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        problems.push(format!("{file} live seed {seed}: {status}: {first}"));
    }
    if let Some(n) = name {
        let _ = membus::remove(n.as_str());
    }
    problems
}

#[test]
fn live_scribbling_on_media_shares_never_crashes_hangs_or_stalls() {
    let mut problems = Vec::new();
    for file in [
        "memvid_rgb24.bin",
        "memvid_gray8_extra.bin",
        "memaud_s16le.bin",
        "memaud_usertype.bin",
        "mempkt_basic.bin",
    ] {
        problems.extend(run_live(file, 1500, 1));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The same on memmsg, memcmd and memkv. A reader sleeping inside
/// `pthread_cond_timedwait` while a peer rewrites the lock bytes could make glibc block
/// untimed (the condition's internal lock in `__condvar_cancel_waiting`, or the mutex
/// re-lock in `__pthread_mutex_cond_lock`) or abort (`__pthread_mutex_cond_lock`:
/// assertion `mutex->__data.__owner == 0`); membus waiters sleep on futex words instead
/// and never call glibc's condition wait, so none of that can happen.
#[test]
fn live_scribbling_on_lock_based_shares_never_crashes_hangs_or_stalls() {
    let mut problems = Vec::new();
    for seed in 1..=4 {
        for file in ["memmsg_basic.bin", "memcmd_basic.bin", "memkv_basic.bin"] {
            problems.extend(run_live(file, 3000, seed));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
