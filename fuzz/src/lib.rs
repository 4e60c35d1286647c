//! membus fuzz targets: one per share type's header/layout validation and one per share
//! type that installs the input as a share and drives every accessor.
//!
//! Each target takes arbitrary bytes and must return without panicking, aborting or
//! hanging; what a hostile input may produce is an error. The binaries in `fuzz_targets/`
//! run them under libFuzzer (`--features libfuzzer`) or, on a stable toolchain, through
//! [`replay_main`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use membus::layout::kv::KvLayout;
use membus::layout::media::{header_words, AudLayout, PktLayout, VidLayout};
use membus::layout::pthread::{check_cond, check_mutex, COND_SIZE, MUTEX_SIZE};
use membus::layout::ring::{Frame, RingKind, RingLayout};
use membus_tests::mutate::{exercise, Limits, Rng, ShareType, Timer};

fn i64_at(data: &[u8], off: usize) -> i64 {
    let mut w = [0u8; 8];
    if let Some(b) = data.get(off..off + 8) {
        w.copy_from_slice(b);
    }
    i64::from_le_bytes(w)
}

/// memmsg/memcmd header validation and frame classification: the input is a share image
/// (the first byte's low bit picks memcmd).
pub fn layout_ring(data: &[u8]) {
    let kind = if data.first().is_some_and(|b| b & 1 == 1) {
        RingKind::Cmd
    } else {
        RingKind::Msg
    };
    for kind in [kind, kind.other()] {
        if let Ok(l) = RingLayout::from_header(kind, i64_at(data, 0), data.len()) {
            assert_eq!(l.object_size(), data.len());
            let w = i64_at(data, 8);
            let mut r = 0usize;
            // Walk the frames the way a reader does, bounded by the ring length.
            for _ in 0..64 {
                let len_word = i64_at(data, l.ring_offset() + r);
                match l.frame_at(r, len_word) {
                    Frame::Valid { len, stride } => {
                        assert!(r + stride <= l.capacity() && len + 16 <= stride);
                        r += stride;
                    }
                    Frame::Wrap => r = 0,
                }
            }
            if let Some(at) = l.check_write(w) {
                assert!(at + 8 <= l.ring_len());
            }
        }
    }
}

/// memkv header validation: the input is a share image.
pub fn layout_kv(data: &[u8]) {
    if let Ok(l) = KvLayout::from_header(
        i64_at(data, 0),
        i64_at(data, 8),
        i64_at(data, 16),
        data.len(),
    ) {
        assert!(l.object_size() <= data.len());
        assert_eq!(l.stride() % 8, 0);
        let last = l.slot(l.count() - 1).expect("last slot");
        assert!(last + l.stride() <= data.len());
    }
}

/// memvid, memaud and mempkt header validation: the input is a share image.
pub fn layout_media(data: &[u8]) {
    let h = header_words(data);
    if let Ok(l) = VidLayout::from_header(&h, data.len()) {
        let f = &l.frames;
        assert!(f.payload_at(f.bufs - 1) + f.payload <= data.len());
    }
    if let Ok(l) = AudLayout::from_header(&h, data.len()) {
        let f = &l.frames;
        assert!(f.payload_at(f.bufs - 1) + f.payload <= data.len());
    }
    if let Ok(l) = PktLayout::from_header(&h, data.len()) {
        assert!(l.arenaoffset + l.arenasz <= data.len());
        assert!(l.desc(l.bufs - 1) + 64 <= data.len());
    }
}

/// glibc mutex and condition image validation: the first 40 bytes are a mutex, the next
/// 48 a condition (missing bytes are zero).
pub fn layout_pthread(data: &[u8]) {
    let mut m = [0u8; MUTEX_SIZE];
    let mut c = [0u8; COND_SIZE];
    for (i, b) in data.iter().take(MUTEX_SIZE + COND_SIZE).enumerate() {
        if i < MUTEX_SIZE {
            m[i] = *b;
        } else {
            c[i - MUTEX_SIZE] = *b;
        }
    }
    let _ = check_mutex(&m);
    let _ = check_cond(&c);
}

/// Installs `data` as a share under a fresh `/membus-test-fuzz-…` name, drives every
/// accessor of `ty` with short lock and wait deadlines, and removes it.
fn share(ty: ShareType, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let name = membus_tests::unique_name("fuzz");
    let path = format!("/dev/shm{name}");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let lim = Limits {
        lock: Duration::from_millis(20),
        wait: Duration::from_millis(1),
    };
    let mut t = Timer::new(lim.lock + Duration::from_secs(1));
    exercise(ty, &name, lim, &mut t);
    let _ = membus::remove(name.as_str());
    assert!(
        t.slow.is_empty(),
        "calls longer than the lock deadline + 1 s: {:?}",
        t.slow
    );
}

/// memmsg: every accessor on the input as a share image.
pub fn share_memmsg(data: &[u8]) {
    share(ShareType::Msg, data);
}

/// memcmd: every accessor on the input as a share image.
pub fn share_memcmd(data: &[u8]) {
    share(ShareType::Cmd, data);
}

/// memkv: every accessor on the input as a share image.
pub fn share_memkv(data: &[u8]) {
    share(ShareType::Kv, data);
}

/// memvid: every accessor on the input as a share image.
pub fn share_memvid(data: &[u8]) {
    share(ShareType::Vid, data);
}

/// memaud: every accessor on the input as a share image.
pub fn share_memaud(data: &[u8]) {
    share(ShareType::Aud, data);
}

/// mempkt: every accessor on the input as a share image.
pub fn share_mempkt(data: &[u8]) {
    share(ShareType::Pkt, data);
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/libmembus-2.1")
}

fn inputs_in(path: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    if path.is_dir() {
        if let Ok(rd) = std::fs::read_dir(path) {
            let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            entries.sort();
            for p in entries {
                inputs_in(&p, out);
            }
        }
    } else if let Ok(b) = std::fs::read(path) {
        out.push((path.to_path_buf(), b));
    }
}

/// The stable driver: runs `target` on every input given as an argument (files or
/// folders; default: `fuzz/corpus/<name>` and the repository's fixtures of the target's
/// type), then on random mutations of them (bit flips, byte and word overwrites) until
/// `MEMBUS_FUZZ_ITERS` mutations (default 2000) or `MEMBUS_FUZZ_SECONDS` (default 30)
/// have passed. A panic fails the run; the input is saved as `fuzz/artifacts/<name>/…` first.
pub fn replay_main(name: &str, target: fn(&[u8])) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut inputs = Vec::new();
    if args.is_empty() {
        inputs_in(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("corpus")
                .join(name),
            &mut inputs,
        );
        let ty = name.strip_prefix("share_");
        let mut fixtures = Vec::new();
        inputs_in(&fixtures_dir(), &mut fixtures);
        inputs.extend(fixtures.into_iter().filter(|(p, _)| {
            let file = p.file_name().and_then(|f| f.to_str()).unwrap_or("");
            file.ends_with(".bin") && ty.is_none_or(|t| file.starts_with(&format!("{t}_")))
        }));
    } else {
        for a in &args {
            inputs_in(Path::new(a), &mut inputs);
        }
    }
    if inputs.is_empty() {
        eprintln!("{name}: no inputs (run fuzz/seed-corpus.sh or pass files)");
        return ExitCode::from(2);
    }
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let iters = env("MEMBUS_FUZZ_ITERS", 2000);
    let budget = Duration::from_secs(env("MEMBUS_FUZZ_SECONDS", 30));
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("artifacts")
        .join(name);
    let run = |data: &[u8], label: &str| {
        // Save first: a panic or an abort leaves the input behind for `cargo run -- FILE`.
        let _ = std::fs::create_dir_all(&artifacts);
        let crash = artifacts.join("last-input");
        let _ = std::fs::write(&crash, data);
        target(data);
        let _ = std::fs::remove_file(&crash);
        let _ = label;
    };
    for (p, data) in &inputs {
        run(data, &p.display().to_string());
    }
    let started = Instant::now();
    let mut rng = Rng::new(env("MEMBUS_FUZZ_SEED", 0x6d65_6d62_7573));
    let mut done = 0u64;
    while done < iters && started.elapsed() < budget {
        let (_, base) = &inputs[rng.below(inputs.len())];
        let mut data = base.clone();
        for _ in 0..1 + rng.below(4) {
            if data.is_empty() {
                break;
            }
            // Mostly the first 8 KiB, where headers, lock bytes and slot headers are.
            let span = if rng.below(4) == 0 {
                data.len()
            } else {
                data.len().min(8192)
            };
            let at = rng.below(span);
            match rng.below(3) {
                0 => data[at] ^= 1 << rng.below(8),
                1 => data[at] = rng.next_u64() as u8,
                _ => {
                    let at = at & !7;
                    let v = match rng.below(6) {
                        0 => i64::MIN,
                        1 => i64::MAX,
                        2 => -1,
                        3 => 0,
                        _ => rng.next_u64() as i64,
                    };
                    let end = (at + 8).min(data.len());
                    data[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
                }
            }
        }
        run(&data, "mutation");
        done += 1;
    }
    println!(
        "{name}: {} corpus inputs and {done} mutations in {:.1} s, no failure",
        inputs.len(),
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
