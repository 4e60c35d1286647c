//! Waiting cases: libmembus's select wake-up (one memvid source), the same across
//! processes, the bare futex round trip they are measured against, typed messages, and
//! the async wake-ups (the same workloads awaited through `membus::aio`, driven by a
//! minimal executor that parks the thread between polls).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use membus::layout::media::VideoFormat;
use membus::memmsg::{Reader, Writer};
use membus::memvid::{VideoParams, VideoReader, VideoWriter};
use membus::select::select;
use membus::typed::{Receiver, Recv, Sender};
use membus::{MemMap, Next, Received};

use super::cases::{finish, monotonic_ns, spawn_peer, stop_requested};
use super::{run_for, unique_name, BenchResult, Latency, Throughput, Window};

/// libmembus's select case: an 8×4 gray8 memvid, 8 slots, 200 fps.
fn select_video(name: &str) -> membus::Result<VideoWriter> {
    VideoWriter::create(name, &VideoParams::new(8, 4, VideoFormat::Gray8, 200, 8))
}

/// One publish of the select case: fill 0x42, stamp the send time in vpts, publish.
fn publish_stamped(w: &mut VideoWriter) -> membus::Result<()> {
    {
        let mut f = w.frame();
        f.fill(0x42)?;
        f.set_vpts(monotonic_ns());
    }
    w.publish().map(|_| ())
}

/// Right after a wake-up: drains `r` and records the delay from the newest frame's send
/// stamp (its vpts) to now, with libmembus's 50 ms sanity cap.
fn sample_newest_frame(r: &mut VideoReader, l: &mut Latency) -> BenchResult<()> {
    let detected = monotonic_ns();
    let mut newest = None;
    loop {
        match r.next()? {
            Next::Frame(f) => newest = Some(f.vpts()),
            Next::Overrun { .. } => {}
            Next::Empty => break,
        }
    }
    if let Some(sent) = newest {
        push_sample(l, detected, sent);
    }
    Ok(())
}

/// Records `detected - sent` (ns) in µs if it is plausible (libmembus's 50 ms cap).
fn push_sample(l: &mut Latency, detected: i64, sent: i64) {
    let us = (detected - sent) as f64 / 1000.0;
    if sent > 0 && us > 0.0 && us < 50_000.0 {
        l.samples_us.push(us);
    }
}

/// The reader side of both select cases: `select(50 ms, [memvid])`, then the delay from
/// the writer's stamp to the return, with libmembus's 50 ms sanity cap.
fn select_samples(
    r: &mut VideoReader,
    d: Duration,
    name: &str,
    payload: &str,
) -> BenchResult<Latency> {
    let mut l = Latency {
        name: name.into(),
        group: "select",
        payload: payload.into(),
        samples_us: Vec::new(),
    };
    let window = Window::new(d);
    while window.more(&l) {
        if select(&[&*r], Duration::from_millis(50)) != Some(0) {
            continue;
        }
        sample_newest_frame(r, &mut l)?;
    }
    window.finish(l)
}

/// libmembus "select() wakeup latency": a writer thread publishes every 5 ms; this thread
/// returns from select on the one memvid source.
pub(crate) fn select_wakeup(d: Duration) -> BenchResult<Latency> {
    let name = unique_name("sel_vid");
    let mut w = select_video(&name)?;
    let mut r = VideoReader::attach(name.as_str())?;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| -> membus::Result<()> {
            // Acquire: pairs with the Release store of `done` below.
            while !done.load(Ordering::Acquire) {
                publish_stamped(&mut w)?;
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        });
        std::thread::sleep((d / 10).max(Duration::from_millis(50)));
        let got = select_samples(&mut r, d, "select() wakeup latency", "1 memvid source");
        // Release: pairs with the writer's Acquire load.
        done.store(true, Ordering::Release);
        writer.join().map_err(|_| "writer thread panicked")??;
        got
    })
}

/// The same with the writer in another process.
pub(crate) fn select_wakeup_processes(d: Duration) -> BenchResult<Latency> {
    let name = unique_name("xsel_vid");
    let warm = (d / 10).max(Duration::from_millis(50));
    let child = spawn_peer("select-publish", &[&name])?;
    let mut r = VideoReader::attach(name.as_str())?;
    std::thread::sleep(warm);
    let got = select_samples(
        &mut r,
        d,
        "select() wakeup latency (2 processes)",
        "1 memvid source",
    );
    drop(r);
    finish(child)?;
    got
}

/// Polls `f` on this thread, parking between wakes, until it completes or `deadline`.
fn block_on_until<F: std::future::Future>(f: F, deadline: Instant) -> Option<F::Output> {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::park_timeout(deadline - now);
    }
}

/// "async wakeup latency": the 2-process select case with the reader awaiting
/// `membus::aio::ready` instead of calling `select`.
pub(crate) fn async_wakeup_video(d: Duration) -> BenchResult<Latency> {
    let name = unique_name("asel_vid");
    let warm = (d / 10).max(Duration::from_millis(50));
    let child = spawn_peer("select-publish", &[&name])?;
    let mut r = VideoReader::attach(name.as_str())?;
    std::thread::sleep(warm);
    let mut l = Latency {
        name: "async wakeup latency (2 processes)".into(),
        group: "select",
        payload: "1 memvid source".into(),
        samples_us: Vec::new(),
    };
    let window = Window::new(d);
    while window.more(&l) {
        if block_on_until(
            membus::aio::ready(&r),
            Instant::now() + Duration::from_millis(50),
        )
        .is_none()
        {
            continue;
        }
        sample_newest_frame(&mut r, &mut l)?;
    }
    drop(r);
    finish(child)?;
    window.finish(l)
}

/// A memmsg source in another process writing its send time every 5 ms; this thread waits
/// with `select` (or awaits `read_async`) and measures stamp to return.
pub(crate) fn wakeup_memmsg(d: Duration, use_async: bool) -> BenchResult<Latency> {
    let name = unique_name("sel_msg");
    let warm = (d / 10).max(Duration::from_millis(50));
    let child = spawn_peer("msg-publish", &[&name])?;
    let mut r = Reader::attach(name.as_str())?;
    std::thread::sleep(warm);
    let mut l = Latency {
        name: if use_async {
            "async wakeup latency, memmsg (2 processes)".into()
        } else {
            "select() wakeup latency, memmsg (2 processes)".into()
        },
        group: "select",
        payload: "1 memmsg source".into(),
        samples_us: Vec::new(),
    };
    // What arrived during the warm-up is backlog, not a wake-up: drain it first.
    while r.read(Duration::ZERO)? != Received::Timeout {}
    let window = Window::new(d);
    let mut buf = Vec::with_capacity(64);
    while window.more(&l) {
        let first = if use_async {
            match block_on_until(r.read_async(), Instant::now() + Duration::from_millis(50)) {
                Some(got) => got?.message(),
                None => continue,
            }
        } else {
            if select(&[&r], Duration::from_millis(50)) != Some(0) {
                continue;
            }
            r.read_into(&mut buf, Duration::ZERO)?
                .message()
                .map(|_| buf.clone())
        };
        let detected = monotonic_ns();
        // As in the memvid case, the newest stamp counts: drain what else is there.
        let mut newest = first;
        while let Received::Message { payload, .. } = r.read(Duration::ZERO)? {
            newest = Some(payload);
        }
        if let Some(bytes) = newest.and_then(|b| <[u8; 8]>::try_from(&b[..]).ok()) {
            push_sample(&mut l, detected, i64::from_le_bytes(bytes));
        }
    }
    drop(r);
    finish(child)?;
    window.finish(l)
}

/// Offsets of the futex ping-pong words in their memmap (separate cache lines).
const FUTEX_PING: usize = 0;
const FUTEX_PONG: usize = 64;
const FUTEX_STOP: u64 = u32::MAX as u64;

/// FUTEX_WAIT while the low half of `word` is `expected` (1 s safety timeout).
fn futex_wait(word: &AtomicU64, expected: u32) {
    let ts = libc::timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    // SAFETY: `word` is a live, 8-byte aligned word of a shared mapping; its first four
    // bytes are the low half (x86-64 is little-endian) and 4-byte aligned. FUTEX_WAIT only
    // reads them; `ts` outlives the call. Every outcome means "re-check", which callers do.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr().cast::<u32>(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// FUTEX_WAKE one waiter on the low half of `word`.
fn futex_wake(word: &AtomicU64) {
    // SAFETY: as in `futex_wait`; FUTEX_WAKE only uses the address as the futex key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr().cast::<u32>(),
            libc::FUTEX_WAKE,
            1u32,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Sleeps until `word` holds `want` (Acquire), on the futex; false if `until` passes first.
fn futex_wait_for(word: &AtomicU64, want: u64, until: Instant) -> bool {
    loop {
        // Acquire: pairs with the other side's Release store before its wake.
        let v = word.load(Ordering::Acquire);
        if v == want || v == FUTEX_STOP {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        futex_wait(word, v as u32);
    }
}

/// The floor for the select cases: two processes hand a counter back and forth, each
/// sleeping on a futex and waking the other (a store then FUTEX_WAKE each way); the
/// sample is the round trip. One round trip every 5 ms, the select cases' frame rate.
pub(crate) fn futex_roundtrip_processes(d: Duration) -> BenchResult<Latency> {
    let name = unique_name("futex");
    let map = MemMap::create(&name, 4096)?;
    let child = spawn_peer("futex-echo", &[&name])?;
    let (ping, pong) = (map.atomic_u64(FUTEX_PING)?, map.atomic_u64(FUTEX_PONG)?);
    let mut l = Latency {
        name: "futex wake/wait round trip (2 processes, floor)".into(),
        group: "floor",
        payload: "4 B word".into(),
        samples_us: Vec::new(),
    };
    let warm_end = Instant::now() + (d / 10).max(Duration::from_millis(50));
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
        // Release: pairs with the echo's Acquire load in `futex_wait_for`.
        ping.store(i, Ordering::Release);
        futex_wake(ping);
        if !futex_wait_for(pong, i, warm_end + d + super::GRACE) {
            break Err("the echo process stopped answering");
        }
        if measuring {
            l.samples_us.push(t0.elapsed().as_secs_f64() * 1e6);
        }
        // Both sides then sleep 5 ms, as the select cases' reader does between frames (so
        // the CPUs idle as deeply as there).
        std::thread::sleep(Duration::from_millis(5));
    };
    // Release: pairs with the echo's Acquire load; tells it to exit.
    ping.store(FUTEX_STOP, Ordering::Release);
    futex_wake(ping);
    finish(child)?;
    result?;
    window.unwrap_or_else(|| Window::new(d)).finish(l)
}

#[derive(membus::Message, Clone, Copy, Debug, PartialEq)]
enum BenchCmd {
    PanLeft,
}

/// Typed send+receive of a small enum: the "memmsg single writer/reader" workload (one
/// write, one read, 8 KiB ring) through `Sender<M>`/`Receiver<M>` (wire form `pan-left`).
pub(crate) fn typed_send_receive(d: Duration) -> BenchResult<Throughput> {
    let name = unique_name("typed");
    let mut tx: Sender<BenchCmd> = Writer::create(&name, 8192)?.into();
    let mut rx: Receiver<BenchCmd> = Reader::attach(&name)?.into();
    run_for(
        "typed send+receive (small enum)",
        "memmsg",
        "unit variant",
        d,
        || {
            tx.send(&BenchCmd::PanLeft)?;
            match rx.recv(Duration::ZERO)? {
                Recv::Message {
                    msg: BenchCmd::PanLeft,
                    ..
                } => Ok(8),
                other => Err(format!("typed read found {other:?}").into()),
            }
        },
    )
}

/// Child roles of these cases.
pub(crate) fn peer(role: &str, names: &[String], say_ready: impl Fn()) -> BenchResult<()> {
    match (role, names) {
        ("select-publish", [name]) => {
            let mut w = select_video(name)?;
            say_ready();
            while !stop_requested() {
                publish_stamped(&mut w)?;
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        }
        ("msg-publish", [name]) => {
            let w = Writer::create(name.as_str(), 4096)?;
            say_ready();
            while !stop_requested() {
                w.write(&monotonic_ns().to_le_bytes())?;
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        }
        ("futex-echo", [name]) => {
            let map = MemMap::attach(name.as_str())?;
            let (ping, pong) = (map.atomic_u64(FUTEX_PING)?, map.atomic_u64(FUTEX_PONG)?);
            say_ready();
            let mut last = 0;
            loop {
                futex_wait_for_change(ping, last);
                // Acquire: pairs with the parent's Release store of PING.
                let s = ping.load(Ordering::Acquire);
                if s == FUTEX_STOP || stop_requested() {
                    return Ok(());
                }
                // Release: pairs with the parent's Acquire load in `futex_wait_for`.
                pong.store(s, Ordering::Release);
                futex_wake(pong);
                last = s;
            }
        }
        _ => Err(format!("unknown bench peer role {role} with {} names", names.len()).into()),
    }
}

/// Sleeps until `word` differs from `last` or the parent says stop.
fn futex_wait_for_change(word: &AtomicU64, last: u64) {
    loop {
        // Acquire: pairs with the writer's Release store before its wake.
        let v = word.load(Ordering::Acquire);
        if v != last || stop_requested() {
            return;
        }
        futex_wait(word, v as u32);
    }
}
