//! Child process of the mutated-header harness (`tests/mutated_fixtures.rs`).
//!
//! `membus-mutant FIXTURE FIRST COUNT LOCK_MS WAIT_MS`: for each case number in
//! `FIRST..FIRST+COUNT`, installs fixture FIXTURE (a file of the repository's fixture
//! folder) mutated as the case number says (case 0: pristine) under a fresh share name,
//! drives every accessor of its type, and removes the share. It prints, one line each:
//! `start CASE NAME MUTATION`, `slow CASE CALL MS` for a call longer than the lock
//! deadline plus one second, `fail CASE WHAT` when a pristine fixture does not read as the
//! manifest says, and `done CASE CALLS`. A panic, a signal or a hang is seen by the
//! parent, which knows the case from the last `start` line.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use membus::memkv::MemKv;
use membus::{QueueOptions, Received, Start};
use membus_tests::mutate::{exercise, mutate, Limits, Rng, ShareType, Timer};
use membus_tests::{fixture_bytes, fixture_entry, unique_name};

fn seed(file: &str, case: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in file.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^ case.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn texts(v: &membus_tests::serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    x.as_str()
                        .or_else(|| x.get(0).and_then(|y| y.as_str()))
                        .unwrap_or("")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a pristine fixture against the manifest; returns what differs.
fn check_pristine(
    ty: ShareType,
    name: &str,
    expect: &membus_tests::serde_json::Value,
) -> Vec<String> {
    let mut bad = Vec::new();
    let opts = QueueOptions::new()
        .start(Start::Oldest)
        .register_reader(false);
    let want = if expect["messages_from_start"].is_array() {
        texts(&expect["messages_from_start"])
    } else {
        texts(&expect["pymembus_reader_from_offset0_saw"])
    };
    let mut got = Vec::new();
    match ty {
        ShareType::Msg => match membus::memmsg::Reader::attach_with(name, &opts) {
            Ok(mut r) => loop {
                match r.read(Duration::ZERO) {
                    Ok(Received::Message { payload, .. }) => {
                        got.push(String::from_utf8_lossy(&payload).into_owned())
                    }
                    Ok(Received::Overrun { .. }) => {}
                    _ => break,
                }
            },
            Err(e) => bad.push(format!("attach: {e}")),
        },
        ShareType::Cmd => match membus::memcmd::MemCmd::attach_with(name, &opts) {
            Ok(mut r) => loop {
                match r.read(Duration::ZERO) {
                    Ok(Received::Message { payload, .. }) => {
                        got.push(String::from_utf8_lossy(&payload).into_owned())
                    }
                    Ok(Received::Overrun { .. }) => {}
                    _ => break,
                }
            },
            Err(e) => bad.push(format!("attach: {e}")),
        },
        ShareType::Kv => match MemKv::attach(name) {
            Ok(kv) => {
                if let Some(values) = expect["values"].as_object() {
                    for (k, v) in values {
                        let found = kv.get_by_name(k).map(|x| x.value);
                        if found.as_deref().ok() != v.as_str().map(str::as_bytes) {
                            bad.push(format!("value {k}: expected {v}, found {found:?}"));
                        }
                    }
                }
                if Some(kv.epoch()) != expect["epoch"].as_i64() {
                    bad.push(format!("epoch {}", kv.epoch()));
                }
            }
            Err(e) => bad.push(format!("attach: {e}")),
        },
        ShareType::Vid => match membus::memvid::VideoReader::attach(name) {
            Ok(r) => {
                if Some(r.seq()) != expect["seq"].as_u64() {
                    bad.push(format!("seq {}", r.seq()));
                }
            }
            Err(e) => bad.push(format!("attach: {e}")),
        },
        ShareType::Aud => match membus::memaud::AudioReader::attach(name) {
            Ok(r) => {
                if Some(r.seq()) != expect["seq"].as_u64() {
                    bad.push(format!("seq {}", r.seq()));
                }
            }
            Err(e) => bad.push(format!("attach: {e}")),
        },
        ShareType::Pkt => {
            let o = membus::mempkt::ReaderOptions {
                from: membus::ReadFrom::Oldest,
                expect: None,
            };
            match membus::mempkt::PacketReader::attach_with(name, &o) {
                Ok(mut r) => {
                    let (mut p, mut m) = (Vec::new(), Vec::new());
                    let mut n = 0;
                    while let Ok(membus::Next::Frame(_)) = r.next_into(&mut p, &mut m) {
                        n += 1;
                    }
                    let want_n = expect["records"].as_array().map_or(0, |a| a.len());
                    if n != want_n {
                        bad.push(format!("records: expected {want_n}, read {n}"));
                    }
                }
                Err(e) => bad.push(format!("attach: {e}")),
            }
        }
    }
    if matches!(ty, ShareType::Msg | ShareType::Cmd) && got != want {
        bad.push(format!("messages: expected {want:?}, read {got:?}"));
    }
    bad
}

/// `membus-mutant live FIXTURE MILLIS SEED`: three threads drive every accessor of the
/// fixture's share in a loop while the main thread overwrites random words of its header,
/// lock bytes and slots with extreme values for MILLIS ms. Prints `live done CALLS`.
fn live(args: &[String]) -> ExitCode {
    let (Some(file), Some(ms), Some(seed)) = (
        args.get(2),
        args.get(3).and_then(|v| v.parse::<u64>().ok()),
        args.get(4).and_then(|v| v.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: membus-mutant live FIXTURE MILLIS SEED");
        return ExitCode::from(2);
    };
    let entry = fixture_entry(file);
    let Some(ty) = entry["type"].as_str().and_then(ShareType::parse) else {
        return ExitCode::from(2);
    };
    let image = fixture_bytes(file);
    let name = unique_name("live");
    if std::fs::write(format!("/dev/shm{name}"), &image).is_err() {
        return ExitCode::from(3);
    }
    println!("start 0 {name} live scribbling");
    let lim = Limits {
        lock: Duration::from_millis(50),
        wait: Duration::from_millis(2),
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let regions = membus_tests::mutate::regions(ty, &image);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut t = Timer::new(lim.lock + Duration::from_secs(1));
                    exercise(ty, &name, lim, &mut t);
                    calls.fetch_add(t.calls, std::sync::atomic::Ordering::Relaxed);
                    for (call, dt) in &t.slow {
                        println!("slow 0 {call} {}", dt.as_millis());
                    }
                }
            });
        }
        let raw = membus_tests::RawShare::open(&name).expect("map the share");
        let mut rng = Rng::new(seed);
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_millis(ms) {
            let (_, r) = &regions[rng.below(regions.len())];
            if r.len() >= 8 {
                let at = (r.start + rng.below(r.len() - 7)) & !7;
                let v = match rng.below(5) {
                    0 => i64::MIN,
                    1 => i64::MAX,
                    2 => -1,
                    3 => 0,
                    _ => rng.next_u64() as i64,
                };
                if at + 8 <= raw.len() {
                    raw.put_i64(at, v);
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let _ = membus::remove(name.as_str());
    println!(
        "live done {}",
        calls.load(std::sync::atomic::Ordering::Relaxed)
    );
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("live") {
        return live(&args);
    }
    let parsed = (|| {
        Some((
            args.get(1)?.clone(),
            args.get(2)?.parse::<u64>().ok()?,
            args.get(3)?.parse::<u64>().ok()?,
            args.get(4)?.parse::<u64>().ok()?,
            args.get(5)?.parse::<u64>().ok()?,
        ))
    })();
    let Some((file, first, count, lock_ms, wait_ms)) = parsed else {
        eprintln!("usage: membus-mutant FIXTURE FIRST COUNT LOCK_MS WAIT_MS");
        return ExitCode::from(2);
    };
    let entry = fixture_entry(&file);
    let Some(ty) = entry["type"].as_str().and_then(ShareType::parse) else {
        eprintln!("unknown share type for {file}");
        return ExitCode::from(2);
    };
    let pristine = fixture_bytes(&file);
    let lim = Limits {
        lock: Duration::from_millis(lock_ms),
        wait: Duration::from_millis(wait_ms),
    };
    let mut out = std::io::stdout().lock();
    for case in first..first + count {
        let mut image = pristine.clone();
        let desc = if case == 0 {
            "pristine".to_string()
        } else {
            mutate(ty, &mut image, &mut Rng::new(seed(&file, case)))
        };
        let name = unique_name("mutant");
        let path = format!("/dev/shm{name}");
        if let Err(e) = std::fs::write(&path, &image) {
            eprintln!("write {path}: {e}");
            return ExitCode::from(3);
        }
        let _ = writeln!(out, "start {case} {name} {desc}");
        let _ = out.flush();
        let mut t = Timer::new(lim.lock + Duration::from_secs(1));
        if case == 0 {
            for what in check_pristine(ty, &name, &entry["expect"]) {
                let _ = writeln!(out, "fail {case} {what}");
            }
        }
        exercise(ty, &name, lim, &mut t);
        let _ = membus::remove(name.as_str());
        for (call, dt) in &t.slow {
            let _ = writeln!(out, "slow {case} {call} {}", dt.as_millis());
        }
        let _ = writeln!(out, "done {case} {}", t.calls);
        let _ = out.flush();
    }
    ExitCode::SUCCESS
}
