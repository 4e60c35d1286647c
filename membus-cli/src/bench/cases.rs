//! The benchmark cases. Those named like libmembus's use exactly its workloads
//! (bench/bench_libmembus.cpp at d816109); the others are membus's own.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use membus::layout::media::{AudioFormat, VideoFormat};
use membus::memaud::{AudioParams, AudioWriter};
use membus::memcmd::MemCmd;
use membus::memkv::MemKv;
use membus::memmsg::{Reader, Writer};
use membus::mempkt::{PacketParams, PacketReader, PacketWriter, RecordMeta};
use membus::memvid::{VideoParams, VideoReader, VideoWriter};
use membus::Next;
use membus::{MemMap, Received};

use super::{interleave, run_for, unique_name, waits, BenchResult, Latency, Throughput, Window};

pub(crate) enum Outcome {
    Throughput(Throughput),
    Latency(Latency),
    /// Latency rows measured in alternating slices, with their per-slice ratios (boxed:
    /// it is several times the size of the other variants).
    Interleaved(Box<interleave::Interleaved>),
}

pub(crate) struct Case {
    pub title: &'static str,
    pub run: fn(Duration) -> BenchResult<Outcome>,
}

pub(crate) fn all() -> Vec<Case> {
    vec![
        Case {
            title: "memmap read/write",
            run: |d| Ok(Outcome::Throughput(memmap_rw(d)?)),
        },
        Case {
            title: "memmsg single writer/reader",
            run: |d| Ok(Outcome::Throughput(memmsg_single(d)?)),
        },
        Case {
            title: "memcmd 4 writers/1 reader",
            run: |d| Ok(Outcome::Throughput(memcmd_four(d)?)),
        },
        Case {
            title: "memkv setValue",
            run: |d| Ok(Outcome::Throughput(memkv_set(d)?)),
        },
        Case {
            title: "memkv getValue",
            run: |d| Ok(Outcome::Throughput(memkv_get(d)?)),
        },
        Case {
            title: "memvid publish 640x480",
            run: |d| Ok(Outcome::Throughput(memvid_publish(d, 640, 480)?)),
        },
        Case {
            title: "memvid publish 1920x1080",
            run: |d| Ok(Outcome::Throughput(memvid_publish(d, 1920, 1080)?)),
        },
        Case {
            title: "memset 1920x1080 rgb24 into 4 buffers (floor)",
            run: |d| Ok(Outcome::Throughput(memset_floor(d, 1920, 1080)?)),
        },
        Case {
            title: "memaud publish",
            run: |d| Ok(Outcome::Throughput(memaud_publish(d)?)),
        },
        Case {
            title: "mempkt write 1024",
            run: |d| Ok(Outcome::Throughput(mempkt_write(d, 1024)?)),
        },
        Case {
            title: "mempkt write 32768",
            run: |d| Ok(Outcome::Throughput(mempkt_write(d, 32768)?)),
        },
        Case {
            title: "mempkt read 32768",
            run: |d| Ok(Outcome::Throughput(mempkt_read(d, 32768)?)),
        },
        Case {
            title: "mempkt read (zero-copy view) 32768",
            run: |d| Ok(Outcome::Throughput(mempkt_read_view(d, 32768)?)),
        },
        Case {
            title: "memcpy in + out, 2 MiB arena (floor for mempkt read)",
            run: |d| Ok(Outcome::Throughput(memcpy_floor(d, 32768)?)),
        },
        Case {
            title: "memkv typed get (u64 field)",
            run: |d| Ok(Outcome::Throughput(typed_kv(d, TypedOp::Get)?)),
        },
        Case {
            title: "memkv typed set (u64 field)",
            run: |d| Ok(Outcome::Throughput(typed_kv(d, TypedOp::Set)?)),
        },
        Case {
            title: "memkv typed snapshot (8 fields)",
            run: |d| Ok(Outcome::Throughput(typed_kv(d, TypedOp::Snapshot)?)),
        },
        Case {
            title: "memmsg round-trip latency",
            run: |d| Ok(Outcome::Latency(memmsg_roundtrip_threads(d)?)),
        },
        Case {
            title: "memmsg round-trip latency (2 processes)",
            run: |d| Ok(Outcome::Latency(memmsg_roundtrip_processes(d, "default")?)),
        },
        Case {
            title: "memmsg round-trip latency (2 processes, wait spin 20 µs)",
            run: |d| Ok(Outcome::Latency(memmsg_roundtrip_processes(d, "spin20")?)),
        },
        Case {
            title: "memmsg round-trip latency (2 processes, wait busy-poll)",
            run: |d| Ok(Outcome::Latency(memmsg_roundtrip_processes(d, "busy")?)),
        },
        Case {
            title: "memvid frame hand-off latency (2 processes)",
            run: |d| Ok(Outcome::Latency(memvid_handoff(d)?)),
        },
        Case {
            title: "shm spin ping-pong (2 processes, floor)",
            run: |d| Ok(Outcome::Latency(spin_pingpong_processes(d)?)),
        },
        Case {
            title: STALLS_ROW,
            run: |d| Ok(Outcome::Latency(machine_stalls(d))),
        },
        Case {
            title: interleave::TITLE,
            run: |d| {
                Ok(Outcome::Interleaved(Box::new(interleave::run(
                    d, "default",
                )?)))
            },
        },
        Case {
            title: "typed send+receive (small enum)",
            run: |d| Ok(Outcome::Throughput(waits::typed_send_receive(d)?)),
        },
        Case {
            title: "select() wakeup latency",
            run: |d| Ok(Outcome::Latency(waits::select_wakeup(d)?)),
        },
        Case {
            title: "select() wakeup latency (2 processes)",
            run: |d| Ok(Outcome::Latency(waits::select_wakeup_processes(d)?)),
        },
        Case {
            title: "futex wake/wait round trip (2 processes, floor)",
            run: |d| Ok(Outcome::Latency(waits::futex_roundtrip_processes(d)?)),
        },
        Case {
            title: "async wakeup latency (2 processes)",
            run: |d| Ok(Outcome::Latency(waits::async_wakeup_video(d)?)),
        },
        Case {
            title: "select() wakeup latency, memmsg (2 processes)",
            run: |d| Ok(Outcome::Latency(waits::wakeup_memmsg(d, false)?)),
        },
        Case {
            title: "async wakeup latency, memmsg (2 processes)",
            run: |d| Ok(Outcome::Latency(waits::wakeup_memmsg(d, true)?)),
        },
    ]
}

/// libmembus "memmap read/write": write 64 KiB, touch byte 0, read 64 KiB back.
fn memmap_rw(d: Duration) -> BenchResult<Throughput> {
    const N: usize = 64 * 1024;
    let payload = vec![b'm'; N];
    let map = MemMap::create(unique_name("memmap"), N)?;
    let mut copy = vec![0u8; N];
    let mut first = [0u8; 1];
    run_for("memmap read/write", "memmap", "64 KiB", d, || {
        map.write_at(0, &payload)?;
        map.read_at(0, &mut first)?;
        std::hint::black_box(&first);
        map.read_at(0, &mut copy)?;
        std::hint::black_box(&copy);
        Ok(2 * N as u64)
    })
}

/// A throughput case's read must find the message just written.
fn expect_message(got: Received<usize>) -> BenchResult<u64> {
    match got {
        Received::Message { payload, .. } => Ok(payload as u64),
        other => Err(
            format!("benchmark read found {other:?} instead of the message just written").into(),
        ),
    }
}

/// libmembus "memmsg single writer/reader": one 64 B write then one read, 8 KiB ring.
fn memmsg_single(d: Duration) -> BenchResult<Throughput> {
    let payload = [b'q'; 64];
    let name = unique_name("memmsg");
    let tx = Writer::create(&name, 8192)?;
    let mut rx = Reader::attach(&name)?;
    let mut buf = Vec::with_capacity(64);
    run_for("memmsg single writer/reader", "memmsg", "64 B", d, || {
        tx.write(&payload)?;
        expect_message(rx.read_into(&mut buf, Duration::ZERO)?)
    })
}

/// libmembus "memcmd 4 writers/1 reader": four sender handles in turn, one receiver, 32 KiB.
fn memcmd_four(d: Duration) -> BenchResult<Throughput> {
    let payload = [b'c'; 64];
    let name = unique_name("memcmd");
    let mut receiver = MemCmd::create(&name, 32768)?;
    let opts = membus::QueueOptions::new().register_reader(false);
    let senders = (0..4)
        .map(|_| MemCmd::attach_with(&name, &opts))
        .collect::<Result<Vec<_>, _>>()?;
    let mut idx = 0;
    let mut buf = Vec::with_capacity(64);
    run_for("memcmd 4 writers/1 reader", "memcmd", "64 B", d, || {
        senders[idx].write(&payload)?;
        idx = (idx + 1) % senders.len();
        expect_message(receiver.read_into(&mut buf, Duration::ZERO)?)
    })
}

const KV_NAMES: [&str; 8] = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"];

/// libmembus "memkv setValue": 8 slots, 16-byte names, 64-byte values (membus rounds the
/// value length to 70 so slots stay 8-byte aligned); sets `value_<v>` into slot v % 8.
fn memkv_set(d: Duration) -> BenchResult<Throughput> {
    let kv = MemKv::create_named(unique_name("memkv"), &KV_NAMES, 16, 64)?;
    let mut v = 0u64;
    let mut buf = [0u8; 32];
    run_for("memkv setValue", "memkv", "64 B value", d, || {
        let n = value_text(&mut buf, v);
        kv.set((v % 8) as usize, &buf[..n])?;
        v += 1;
        Ok(64)
    })
}

/// `"value_" + to_string(v)` into `buf` (what libmembus's case builds with std::to_string,
/// whose libstdc++ implementation also converts two digits at a time from a table);
/// returns the length.
fn value_text(buf: &mut [u8; 32], mut v: u64) -> usize {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";
    buf[..6].copy_from_slice(b"value_");
    let digits = v.checked_ilog10().map_or(1, |d| d as usize + 1);
    let mut at = 6 + digits;
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        at -= 2;
        buf[at] = PAIRS[pair];
        buf[at + 1] = PAIRS[pair + 1];
    }
    if v >= 10 {
        let pair = v as usize * 2;
        buf[at - 2] = PAIRS[pair];
        buf[at - 1] = PAIRS[pair + 1];
    } else {
        buf[at - 1] = b'0' + v as u8;
    }
    6 + digits
}

/// libmembus "memkv getValue": the same store, every slot "value"; reads slot v % 8.
fn memkv_get(d: Duration) -> BenchResult<Throughput> {
    let kv = MemKv::create_named(unique_name("memkv_get"), &KV_NAMES, 16, 64)?;
    for i in 0..8 {
        kv.set(i, b"value")?;
    }
    let mut v = 0usize;
    let mut buf = Vec::with_capacity(80);
    run_for("memkv getValue", "memkv", "64 B value", d, || {
        let stale = kv.get_into(v % 8, &mut buf)?;
        std::hint::black_box((stale, &buf));
        v += 1;
        Ok(64)
    })
}

/// libmembus "memvid publish": fill the current rgb24 slot with 0x7f, publish; 4 slots.
fn memvid_publish(d: Duration, w: u32, h: u32) -> BenchResult<Throughput> {
    let mut vid = VideoWriter::create(
        unique_name("memvid"),
        &VideoParams::new(w, h, VideoFormat::Rgb24, 30, 4),
    )?;
    let bytes = u64::from(w) * u64::from(h) * 3;
    run_for("memvid publish", "memvid", &format!("{w}x{h}"), d, || {
        vid.frame().fill(0x7f)?;
        vid.publish()?;
        Ok(bytes)
    })
}

/// The floor for the publish case: glibc's memset of the same bytes into private memory,
/// rotating over 4 frame buffers like the 4-slot ring (the same working set: 25 MB for
/// 1080p, more than the caches hold).
fn memset_floor(d: Duration, w: usize, h: usize) -> BenchResult<Throughput> {
    let mut bufs: Vec<Vec<u8>> = (0..4).map(|_| vec![0u8; w * h * 3]).collect();
    let bytes = (w * h * 3) as u64;
    let mut i = 0;
    run_for(
        "memset, 4 rotating buffers (floor)",
        "floor",
        &format!("{w}x{h} rgb24"),
        d,
        || {
            bufs[i % 4].fill(0x7f);
            std::hint::black_box(&mut bufs[i % 4]);
            i += 1;
            Ok(bytes)
        },
    )
}

/// libmembus "memaud publish": stereo s16le 48 kHz at 100 buffers/s, 4 slots; fill 0, publish.
fn memaud_publish(d: Duration) -> BenchResult<Throughput> {
    let mut aud = AudioWriter::create(
        unique_name("memaud"),
        &AudioParams::new(2, AudioFormat::S16le, 48000, 100, 4),
    )?;
    let bytes = aud.layout().frames.payload as u64;
    run_for(
        "memaud publish",
        "memaud",
        "stereo S16LE 48k/100fps",
        d,
        || {
            aud.buffer().fill(0)?;
            aud.publish()?;
            Ok(bytes)
        },
    )
}

/// libmembus "mempkt write": 32 descriptors, arena 64 records, one record per operation.
fn mempkt_write(d: Duration, n: usize) -> BenchResult<Throughput> {
    let mut pk = PacketWriter::create(unique_name("mempkt"), &PacketParams::new(32, n * 64, n))?;
    let payload = vec![b'p'; n];
    run_for(
        "mempkt write",
        "mempkt",
        &format!("{n} B/record (incl. copy)"),
        d,
        || {
            pk.write(&payload, &RecordMeta::default())?;
            Ok(n as u64)
        },
    )
}

/// libmembus "mempkt read": write one record, then copy it back out through a reader.
fn mempkt_read(d: Duration, n: usize) -> BenchResult<Throughput> {
    let name = unique_name("mempkt_read");
    let mut w = PacketWriter::create(&name, &PacketParams::new(32, n * 64, n))?;
    let mut r = PacketReader::attach(&name)?;
    let payload = vec![b'p'; n];
    let (mut out, mut meta) = (Vec::with_capacity(n), Vec::new());
    run_for(
        "mempkt read",
        "mempkt",
        &format!("{n} B/record (copy-out)"),
        d,
        || {
            w.write(&payload, &RecordMeta::default())?;
            match r.next_into(&mut out, &mut meta)? {
                Next::Frame(_) => Ok(out.len() as u64),
                other => Err(format!("mempkt read found {other:?}").into()),
            }
        },
    )
}

/// The mempkt read workload read through `next_view`: write one record, take it as a
/// zero-copy view, sum its payload once (8-byte words, so every byte is read), check the
/// view is still intact and the sum is the one written.
fn mempkt_read_view(d: Duration, n: usize) -> BenchResult<Throughput> {
    let name = unique_name("mempkt_view");
    let mut w = PacketWriter::create(&name, &PacketParams::new(32, n * 64, n))?;
    let mut r = PacketReader::attach(&name)?;
    let payload = vec![b'p'; n];
    let expected = checksum(&payload);
    run_for(
        "mempkt read (zero-copy view)",
        "mempkt",
        &format!("{n} B/record"),
        d,
        || {
            w.write(&payload, &RecordMeta::default())?;
            match r.next_view()? {
                Next::Frame(v) => {
                    let sum = checksum(std::hint::black_box(v.payload()));
                    if !v.is_intact() || sum != expected || v.payload().len() != n {
                        return Err(format!(
                            "mempkt view read {} bytes, sum {sum:#x} (wrote {n}, {expected:#x}), intact {}",
                            v.payload().len(),
                            v.is_intact()
                        )
                        .into());
                    }
                    Ok(n as u64)
                }
                other => Err(format!("mempkt view read found {other:?}").into()),
            }
        },
    )
}

/// A checksum that reads every byte once: the wrapping sum of the 8-byte little-endian
/// words, then the tail bytes. Compiled for AVX2 too and chosen at run time (as a reader's
/// own code would be), so the touch runs at load bandwidth rather than at SSE2's half.
fn checksum(bytes: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked just above), the only requirement of a
        // `target_feature(enable = "avx2")` function.
        return unsafe { checksum_avx2(bytes) };
    }
    checksum_portable(bytes)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn checksum_avx2(bytes: &[u8]) -> u64 {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi64, _mm256_loadu_si256, _mm256_setzero_si256, _mm256_storeu_si256,
    };
    // Four 32-byte accumulators of 8-byte lanes: the same word sum, grouped differently.
    let mut acc = [_mm256_setzero_si256(); 4];
    let blocks = bytes.len() / 128;
    for b in 0..blocks {
        for (i, a) in acc.iter_mut().enumerate() {
            let at = b * 128 + i * 32;
            debug_assert!(at + 32 <= bytes.len());
            // SAFETY: at + 32 ≤ blocks · 128 ≤ bytes.len(), so the 32 bytes are inside
            // `bytes`; loadu needs no alignment.
            let v = unsafe { _mm256_loadu_si256(bytes.as_ptr().add(at).cast::<__m256i>()) };
            *a = _mm256_add_epi64(*a, v);
        }
    }
    let s = _mm256_add_epi64(
        _mm256_add_epi64(acc[0], acc[1]),
        _mm256_add_epi64(acc[2], acc[3]),
    );
    let mut lanes = [0u64; 4];
    // SAFETY: `lanes` is 32 writable bytes; storeu needs no alignment.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast::<__m256i>(), s) };
    lanes
        .iter()
        .fold(checksum_portable(&bytes[blocks * 128..]), |s, &l| {
            s.wrapping_add(l)
        })
}

#[inline(always)]
fn checksum_portable(bytes: &[u8]) -> u64 {
    // Eight independent lanes per 64-byte block, so the adds vectorise.
    let mut acc = [0u64; 8];
    let blocks = bytes.len() / 64;
    for b in 0..blocks {
        for (i, a) in acc.iter_mut().enumerate() {
            let at = b * 64 + i * 8;
            let w = u64::from_le_bytes([
                bytes[at],
                bytes[at + 1],
                bytes[at + 2],
                bytes[at + 3],
                bytes[at + 4],
                bytes[at + 5],
                bytes[at + 6],
                bytes[at + 7],
            ]);
            *a = a.wrapping_add(w);
        }
    }
    let mut sum = acc.iter().fold(0u64, |s, &a| s.wrapping_add(a));
    let rest = &bytes[blocks * 64..];
    let words = rest.chunks_exact(8);
    let tail = words.remainder();
    for c in words {
        sum = sum.wrapping_add(u64::from_le_bytes([
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
        ]));
    }
    for &b in tail {
        sum = sum.wrapping_add(u64::from(b));
    }
    sum
}

/// The floor for the mempkt read case: the same two copies with glibc's memcpy in private
/// memory — the payload into the next of 64 record places of a 2 MiB arena (the case's
/// arena size), then back out into a reused buffer — with no ring bookkeeping at all.
fn memcpy_floor(d: Duration, n: usize) -> BenchResult<Throughput> {
    let mut arena = vec![0u8; n * 64];
    let payload = vec![b'p'; n];
    let mut out = vec![0u8; n];
    let mut i = 0;
    run_for(
        "memcpy in + out, 2 MiB arena (floor)",
        "floor",
        &format!("{n} B/record"),
        d,
        || {
            let place = &mut arena[(i % 64) * n..][..n];
            place.copy_from_slice(std::hint::black_box(&payload));
            out.copy_from_slice(std::hint::black_box(place));
            std::hint::black_box(&mut out);
            i += 1;
            Ok(n as u64)
        },
    )
}

/// Cross-process frame hand-off: a child publishes a small frame carrying its send time
/// (CLOCK_MONOTONIC ns in vpts); this process spins on the reader and records the delay.
fn memvid_handoff(d: Duration) -> BenchResult<Latency> {
    let name = unique_name("handoff");
    let child = spawn_peer("memvid-publish", &[&name])?;
    let mut r = VideoReader::attach(name.as_str())?;
    let mut l = Latency {
        name: "memvid frame hand-off latency (2 processes)".into(),
        group: "memvid",
        payload: "64x48 rgb24".into(),
        samples_us: Vec::new(),
    };
    let window = Window::new(d);
    while window.more(&l) {
        if let Next::Frame(f) = r.next()? {
            let now = monotonic_ns();
            let sent = f.vpts();
            if sent > 0 && now > sent {
                l.samples_us.push((now - sent) as f64 / 1000.0);
            }
        } else {
            std::hint::spin_loop();
        }
    }
    drop(r);
    finish(child)?;
    window.finish(l)
}

pub(crate) fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// The typed counterpart of the memkv cases: eight fields, like libmembus's eight slots.
#[derive(membus::MemKv, Clone, Debug, Default)]
struct BenchState {
    frames: u64,
    dropped: u64,
    exposure_us: u32,
    gain_db: f64,
    fps: f32,
    enabled: bool,
    #[memkv(max_len = 32)]
    label: String,
    seq: i64,
}

enum TypedOp {
    Get,
    Set,
    Snapshot,
}

/// Typed get/set of one integer field, and a whole-struct snapshot (membus's own cases,
/// to compare with the raw getValue/setValue above).
fn typed_kv(d: Duration, op: TypedOp) -> BenchResult<Throughput> {
    let kv = membus::Kv::<BenchState>::create(
        unique_name("typedkv"),
        &BenchState {
            label: "bench".into(),
            ..Default::default()
        },
    )?;
    let mut v = 0u64;
    let (name, payload) = match op {
        TypedOp::Get => ("memkv typed get (u64 field)", "u64"),
        TypedOp::Set => ("memkv typed set (u64 field)", "u64"),
        TypedOp::Snapshot => ("memkv typed snapshot (8 fields)", "8 fields"),
    };
    run_for(name, "memkv", payload, d, || {
        match op {
            TypedOp::Get => {
                std::hint::black_box(kv.get(BenchState::FRAMES)?);
            }
            TypedOp::Set => {
                kv.set(BenchState::FRAMES, v)?;
            }
            TypedOp::Snapshot => {
                std::hint::black_box(kv.snapshot()?);
            }
        }
        v += 1;
        Ok(8)
    })
}

/// Ping 64 B, wait for the echo, record the round trip; `pong_rx` waits up to 100 ms.
fn pingpong(
    d: Duration,
    name: &str,
    ping_tx: &Writer,
    pong_rx: &mut Reader,
) -> BenchResult<Latency> {
    let payload = [b'p'; 64];
    let mut buf = Vec::with_capacity(64);
    for _ in 0..20 {
        ping_tx.write(&payload)?;
        let _ = pong_rx.read_into(&mut buf, Duration::from_millis(50))?;
    }
    let mut l = Latency {
        name: name.into(),
        group: "memmsg",
        payload: "64 B".into(),
        samples_us: Vec::new(),
    };
    let window = Window::new(d);
    while window.more(&l) {
        let t0 = Instant::now();
        ping_tx.write(&payload)?;
        if let Received::Message { .. } = pong_rx.read_into(&mut buf, Duration::from_millis(100))? {
            let us = t0.elapsed().as_secs_f64() * 1e6;
            if us > 0.0 && us < 1e6 {
                l.samples_us.push(us);
            }
        }
    }
    window.finish(l)
}

/// libmembus "memmsg round-trip latency": an echo thread, 4 KiB rings.
fn memmsg_roundtrip_threads(d: Duration) -> BenchResult<Latency> {
    let (fwd, rev) = (unique_name("lat_fwd"), unique_name("lat_rev"));
    let ping_tx = Writer::create(&fwd, 4096)?;
    let mut ping_rx = Reader::attach(&fwd)?;
    let pong_tx = Writer::create(&rev, 4096)?;
    let mut pong_rx = Reader::attach(&rev)?;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let echo = s.spawn(|| -> membus::Result<()> {
            let mut buf = Vec::with_capacity(64);
            // Acquire: pairs with the Release store of `done` below.
            while !done.load(Ordering::Acquire) {
                if let Received::Message { .. } =
                    ping_rx.read_into(&mut buf, Duration::from_millis(5))?
                {
                    pong_tx.write(&buf)?;
                }
            }
            Ok(())
        });
        let result = pingpong(d, "memmsg round-trip latency", &ping_tx, &mut pong_rx);
        // Release: pairs with the echo thread's Acquire load.
        done.store(true, Ordering::Release);
        ping_tx.write(b"stop")?;
        echo.join().map_err(|_| "echo thread panicked")??;
        result
    })
}

/// Starts `membus bench-peer ROLE NAMES...` and waits until it says it is ready (its shares
/// exist and it is about to serve). The child runs until its standard input closes
/// ([`finish`], or this process's exit), so it serves as long as the case measures.
pub(crate) fn spawn_peer(role: &str, names: &[&str]) -> BenchResult<Child> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("bench-peer")
        .arg(role)
        .args(names)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().ok_or("no child stdout")?).read_line(&mut line)?;
    if line.trim() != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("bench peer {role} did not start: {line:?}").into());
    }
    Ok(child)
}

/// Tells a peer to stop (closes its standard input) and waits for it, at most 5 s.
pub(crate) fn finish(mut child: Child) -> BenchResult<()> {
    drop(child.stdin.take());
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                return Err(format!("bench peer failed: {status}").into());
            }
            return Ok(());
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return Err("bench peer did not stop within 5 s of being told to; killed it".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Set once this process's standard input has closed: a bench peer's signal to stop.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Whether the parent told this bench peer to stop.
pub(crate) fn stop_requested() -> bool {
    // Relaxed: a lone flag; nothing else is published with it.
    STOP_REQUESTED.load(Ordering::Relaxed)
}

/// Starts the thread that sets [`stop_requested`] when standard input reaches its end.
fn watch_stdin() {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        // Relaxed: see `stop_requested`.
        STOP_REQUESTED.store(true, Ordering::Relaxed);
    });
}

/// The waiting policies the cross-process round trip is measured with, by the name the
/// echo peer is given, with the case-name suffix.
pub(super) fn wait_policy(name: &str) -> BenchResult<(membus::WaitPolicy, &'static str)> {
    Ok(match name {
        "default" => (membus::WaitPolicy::default(), ""),
        "spin20" => (
            membus::WaitPolicy::Spin(Duration::from_micros(20)),
            ", wait spin 20 µs",
        ),
        "busy" => (membus::WaitPolicy::BusyPoll, ", wait busy-poll"),
        other => return Err(format!("unknown wait policy {other:?}").into()),
    })
}

/// The same round trip with the echo in another process, both readers waiting by `policy`.
fn memmsg_roundtrip_processes(d: Duration, policy: &str) -> BenchResult<Latency> {
    let (wait, suffix) = wait_policy(policy)?;
    let opts = membus::QueueOptions::new().wait_policy(wait);
    let (fwd, rev) = (unique_name("xlat_fwd"), unique_name("xlat_rev"));
    let ping_tx = Writer::create(&fwd, 4096)?;
    let _rev_owner = Writer::create(&rev, 4096)?;
    let mut pong_rx = Reader::attach_with(&rev, &opts)?;
    let child = spawn_peer(&format!("memmsg-echo:{policy}"), &[&fwd, &rev])?;
    let result = pingpong(
        d,
        &format!("memmsg round-trip latency (2 processes{suffix})"),
        &ping_tx,
        &mut pong_rx,
    );
    ping_tx.write(b"stop")?;
    finish(child)?;
    result
}

/// Offsets in the ping-pong block: two sequence words on their own cache lines, then the
/// two 64-byte payloads.
pub(super) const PING_SEQ: usize = 0;
pub(super) const PONG_SEQ: usize = 64;
pub(super) const PING_DATA: usize = 128;
pub(super) const PONG_DATA: usize = 192;
pub(super) const STOP: u64 = u64::MAX;

/// The machine stalls case's row name.
const STALLS_ROW: &str = "machine stalls over 1 µs (1 thread reading the clock, no IPC)";

/// The machine's own stalls: one thread reads the clock in a tight loop for `d` and
/// records every gap over 1 µs between two reads (a read costs tens of ns). Nothing else
/// runs, so each gap is time the thread lost to the machine: an interrupt, or, on a virtual
/// machine, the host running something else on this vCPU. A stall that overlaps a round
/// trip lands on it whole, so with both vCPUs taking part a round trip of T µs meets one
/// with a probability of about 2 × rate × T: once that exceeds 0.1 %, its p99.9 is a
/// stall's length, whatever the IPC. The payload column shows the rate, per second.
fn machine_stalls(d: Duration) -> Latency {
    let (samples_us, secs) = clock_gaps(d);
    Latency {
        name: STALLS_ROW.into(),
        group: "floor",
        payload: format!("{:.0}/s", samples_us.len() as f64 / secs),
        samples_us,
    }
}

/// Reads the clock in a tight loop for `d`; returns every gap over 1 µs between two
/// reads (µs) and the seconds it ran (see [`machine_stalls`]).
pub(super) fn clock_gaps(d: Duration) -> (Vec<f64>, f64) {
    let start = Instant::now();
    let mut prev = start;
    let mut gaps_us = Vec::new();
    loop {
        let now = Instant::now();
        let gap = now - prev;
        if gap > Duration::from_micros(1) {
            gaps_us.push(gap.as_secs_f64() * 1e6);
        }
        prev = now;
        if now - start >= d {
            break;
        }
    }
    (gaps_us, start.elapsed().as_secs_f64())
}

/// The physical floor: two processes spin on a sequence word each and copy 64 B each way,
/// with no queue, lock or condition.
fn spin_pingpong_processes(d: Duration) -> BenchResult<Latency> {
    let name = unique_name("spin");
    let map = MemMap::create(&name, 4096)?;
    let child = spawn_peer("spin-echo", &[&name])?;
    let (ping, pong) = (map.atomic_u64(PING_SEQ)?, map.atomic_u64(PONG_SEQ)?);
    let payload = [b's'; 64];
    let mut back = [0u8; 64];
    let mut l = Latency {
        name: "shm spin ping-pong (2 processes, floor)".into(),
        group: "floor",
        payload: "64 B".into(),
        samples_us: Vec::new(),
    };
    let warm_end = Instant::now() + Duration::from_millis(50);
    let mut window = None;
    let mut i = 0u64;
    let result = loop {
        let now = Instant::now();
        let measuring = now >= warm_end;
        if measuring && !window.get_or_insert_with(|| Window::new(d)).more(&l) {
            break Ok(());
        }
        i += 1;
        let t0 = Instant::now();
        map.write_at(PING_DATA, &payload)?;
        // Release: publishes the payload; pairs with the echo's Acquire load of PING_SEQ.
        ping.store(i, Ordering::Release);
        // Acquire: pairs with the echo's Release store of PONG_SEQ after its payload copy.
        let mut spins = 0u32;
        let mut answered = true;
        while pong.load(Ordering::Acquire) != i {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % 4096 == 0 && Instant::now() >= warm_end + d + super::GRACE {
                answered = false;
                break;
            }
        }
        if !answered {
            break Err("the echo process stopped answering");
        }
        map.read_at(PONG_DATA, &mut back)?;
        if measuring {
            l.samples_us.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    };
    // Release: pairs with the echo's Acquire load; tells it to exit.
    ping.store(STOP, Ordering::Release);
    finish(child)?;
    result?;
    window.unwrap_or_else(|| Window::new(d)).finish(l)
}

/// `membus bench-peer ROLE NAMES...`: the child side of the cross-process cases.
pub(crate) fn peer(role: &str, names: &[String]) -> BenchResult<()> {
    watch_stdin();
    // A parent that is gone notices nothing either way; the child then stops when its
    // standard input closes.
    let say_ready = || {
        let _ = outln!("ready");
    };
    match (role, names) {
        (echo, [fwd, rev]) if echo.starts_with("memmsg-echo:") => {
            let (wait, _) = wait_policy(&echo["memmsg-echo:".len()..])?;
            let opts = membus::QueueOptions::new().wait_policy(wait);
            let mut rx = Reader::attach_with(fwd.as_str(), &opts)?;
            let tx = Writer::attach(rev.as_str())?;
            say_ready();
            let mut buf = Vec::with_capacity(64);
            while !stop_requested() {
                if let Received::Message { .. } =
                    rx.read_into(&mut buf, Duration::from_millis(5))?
                {
                    if buf == b"stop" {
                        return Ok(());
                    }
                    tx.write(&buf)?;
                }
            }
            Ok(())
        }
        ("spin-echo", [name]) => {
            let map = MemMap::attach(name.as_str())?;
            let (ping, pong) = (map.atomic_u64(PING_SEQ)?, map.atomic_u64(PONG_SEQ)?);
            let mut buf = [0u8; 64];
            say_ready();
            let mut last = 0;
            let mut spins = 0u32;
            loop {
                // Acquire: pairs with the parent's Release store of PING_SEQ.
                let s = ping.load(Ordering::Acquire);
                spins = spins.wrapping_add(1);
                if s == STOP || (spins % 4096 == 0 && stop_requested()) {
                    return Ok(());
                }
                if s != last {
                    map.read_at(PING_DATA, &mut buf)?;
                    map.write_at(PONG_DATA, &buf)?;
                    // Release: publishes the echoed payload; pairs with the parent's Acquire.
                    pong.store(s, Ordering::Release);
                    last = s;
                } else {
                    std::hint::spin_loop();
                }
            }
        }
        ("memvid-publish", [name]) => {
            let mut w = VideoWriter::create(
                name.as_str(),
                &VideoParams::new(64, 48, VideoFormat::Rgb24, 1000, 8),
            )?;
            say_ready();
            while !stop_requested() {
                {
                    let mut f = w.frame();
                    f.fill(1)?;
                    f.set_vpts(monotonic_ns());
                }
                w.publish()?;
                // One frame every 100 µs, so each is measured on its own.
                let t = Instant::now();
                while t.elapsed() < Duration::from_micros(100) {
                    std::hint::spin_loop();
                }
            }
            Ok(())
        }
        (echo, names) if echo.starts_with("interleave-echo:") => {
            interleave::peer(&echo["interleave-echo:".len()..], names, say_ready)
        }
        _ => waits::peer(role, names, say_ready),
    }
}

#[cfg(test)]
mod tests {
    use super::{checksum, checksum_portable, value_text};

    #[test]
    fn checksum_reads_every_byte() {
        let bytes: Vec<u8> = (0..1003u32).map(|i| (i * 7) as u8).collect();
        let slow = bytes.chunks(8).fold(0u64, |a, c| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            if c.len() == 8 {
                a.wrapping_add(u64::from_le_bytes(w))
            } else {
                a.wrapping_add(c.iter().map(|&b| u64::from(b)).sum::<u64>())
            }
        });
        assert_eq!(checksum(&bytes), slow);
        assert_eq!(checksum_portable(&bytes), slow);
        let mut changed = bytes.clone();
        changed[500] ^= 1;
        assert_ne!(checksum(&changed), slow);
    }

    #[test]
    fn value_text_matches_format() {
        let mut buf = [0u8; 32];
        for v in [0u64, 7, 10, 12345, u64::MAX] {
            let n = value_text(&mut buf, v);
            assert_eq!(&buf[..n], format!("value_{v}").as_bytes());
        }
    }
}
