//! Waiting on many sources at once, without polling.
//!
//! [`select`] blocks until one of several handles is ready and returns its index, or
//! `None` at the timeout. Every readable handle is a source:
//!
//! | source | ready when | sleeps on |
//! |---|---|---|
//! | [`memmsg::Reader`](crate::memmsg::Reader), [`memcmd::MemCmd`](crate::memcmd::MemCmd), [`typed::Receiver`](crate::typed::Receiver) | a message or an overrun is there to read | a futex on the share's global sequence |
//! | [`memkv::Watch`](crate::memkv::Watch), [`typed::KvWatch`](crate::typed::KvWatch) | a batch after the watch's epoch is committed | a futex on the store's epoch |
//! | [`memvid::VideoReader`](crate::memvid::VideoReader), [`memaud::AudioReader`](crate::memaud::AudioReader), [`mempkt::PacketReader`](crate::mempkt::PacketReader) | a frame (or an overrun) is there | a futex on the ring's publish counter |
//! | [`Ticker`] | its next tick is due | a timeout |
//! | [`Condition`] | your closure returns true | short naps (50 µs growing to 1 ms) |
//!
//! "Ready" also covers an overrun to report. Readiness is a lock-free hint that can go
//! stale (another reader of the same memcmd may take the command first), so read with a
//! zero or short timeout after `select` returns. A share whose lock cannot be taken is
//! still reported ready when it has something to read: the read then returns the lock
//! error, which is how the caller learns of it.
//!
//! ## How waiting works
//!
//! - A waiter sleeps on a futex word that every writer of the share changes anyway: the low
//!   half of the global sequence (memmsg, memcmd, media rings) or of the epoch (memkv).
//!   Before it sleeps it registers its process in the share's waiter registry (media: the
//!   reserved header words; memmsg/memcmd/memkv: a companion object `<name>.membus-wait`),
//!   and membus writers issue a `FUTEX_WAKE` only when someone is registered. Media readers
//!   map the share read-only; to register, a waiting reader maps the header read-write
//!   through a second descriptor.
//! - membus waiters never sleep in the glibc condition of memmsg, memcmd and memkv: a
//!   waiter killed there would block every later broadcast of that share, for every peer,
//!   because glibc's broadcast waits for the waiters of the group it closes to leave. A
//!   process killed while waiting here leaves at most a registry bit, which writers clear
//!   once they notice its process is gone. membus writers still wake libmembus/pymembus
//!   waiters: when the condition's waiter count is non-zero they have a helper thread
//!   broadcast it, so a broadcast that a dead foreign waiter blocks holds up nobody.
//! - libmembus and pymembus writers wake nobody (they only broadcast the condition). A
//!   waiter sees their data when its safety-net timeout ends (1 ms, doubling up to 50 ms
//!   for memmsg, memcmd and memkv, which a foreign writer can join, and up to 250 ms for
//!   media rings, whose only writer is their creator) and from then on polls every
//!   millisecond, as libmembus does. A handle attached to a share that has no live membus
//!   owner polls from the start. When
//!   registration is impossible (the share's mode forbids it, or 63 processes already
//!   wait), the waiter polls too.
//! - Several futex words are waited on at once with `futex_waitv` (Linux 5.16+); older
//!   kernels get 200 µs naps instead.
//!
//! A process blocked in `select` with nothing arriving wakes only for those safety nets:
//! about two dozen times in two seconds in the test suite's measurement, where 1 ms
//! polling would be two thousand.
//!
//! ## Fairness
//!
//! When several sources are ready, [`select`] starts its scan at a different index on
//! each call (round robin per thread), so a busy low index cannot starve the others.
//! [`select_fn`] keeps libmembus's semantics instead: conditions in index order, lowest
//! ready index wins.
//!
//! ```no_run
//! use std::time::Duration;
//! use membus::select::{select, Ticker};
//! use membus::{memkv::MemKv, memmsg::Reader, memvid::VideoReader};
//!
//! # fn main() -> membus::Result<()> {
//! let mut cmds = Reader::attach("/camera-cmd")?;
//! let kv = MemKv::attach("/camera-state")?;
//! let mut state = kv.watch();
//! let mut video = VideoReader::attach("/camera-video")?;
//! let mut clock = Ticker::new(Duration::from_millis(100));
//! loop {
//!     match select(&[&cmds, &state, &video, &clock], Duration::from_secs(1)) {
//!         Some(0) => { let _ = cmds.read(Duration::ZERO)?; }
//!         Some(1) => { let _ = state.changes()?; }
//!         Some(2) => { let _ = video.next()?; }
//!         Some(3) => { clock.tick(); }
//!         _ => println!("idle"),
//!     }
//! }
//! # }
//! ```

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use crate::sys::futex::{self, WaitvOutcome, Word};
use crate::wait::{low_half, Entered, Registry};

#[cfg(not(target_endian = "little"))]
compile_error!("membus's futex words are the low half of 64-bit words: little-endian only");

pub(crate) mod sealed {
    /// Only membus types are sources: their wait strategy is part of the wire protocol.
    pub trait Sealed {}
}

/// Something [`select`] can wait on. Implemented by membus's readable handles,
/// [`Ticker`] and [`Condition`] (and references to them).
pub trait Selectable: sealed::Sealed {
    /// Whether the source has something now (a lock-free hint).
    fn is_ready(&self) -> bool;

    /// How to sleep until it may be ready. Not public API.
    #[doc(hidden)]
    fn wait_spec(&self) -> WaitSpec<'_>;
}

impl<T: Selectable + ?Sized> sealed::Sealed for &T {}

impl<T: Selectable + ?Sized> Selectable for &T {
    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }

    fn wait_spec(&self) -> WaitSpec<'_> {
        (**self).wait_spec()
    }
}

impl<T: Selectable + ?Sized> sealed::Sealed for &mut T {}

impl<T: Selectable + ?Sized> Selectable for &mut T {
    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }

    fn wait_spec(&self) -> WaitSpec<'_> {
        (**self).wait_spec()
    }
}

/// How a source sleeps. Opaque; not public API.
#[doc(hidden)]
pub struct WaitSpec<'a>(Spec<'a>);

enum Spec<'a> {
    Futex(FutexSpec<'a>),
    Until(Instant),
    Poll,
}

impl<'a> WaitSpec<'a> {
    pub(crate) fn futex(f: FutexSpec<'a>) -> WaitSpec<'a> {
        WaitSpec(Spec::Futex(f))
    }

    pub(crate) fn poll() -> WaitSpec<'a> {
        WaitSpec(Spec::Poll)
    }

    #[cfg(feature = "async")]
    pub(crate) fn until(t: Instant) -> WaitSpec<'a> {
        WaitSpec(Spec::Until(t))
    }

    /// What the spec says, for the async reactor.
    #[cfg(feature = "async")]
    pub(crate) fn into_parts(self) -> SpecParts<'a> {
        match self.0 {
            Spec::Futex(f) => SpecParts::Futex(f),
            Spec::Until(t) => SpecParts::Until(t),
            Spec::Poll => SpecParts::Poll,
        }
    }
}

/// A [`WaitSpec`] taken apart.
#[cfg(feature = "async")]
pub(crate) enum SpecParts<'a> {
    /// Sleep on a share's futex word.
    Futex(FutexSpec<'a>),
    /// Ready at an instant.
    Until(Instant),
    /// Can only be polled.
    Poll,
}

/// A share's wait words.
pub(crate) struct FutexSpec<'a> {
    /// A 64-bit header word every writer changes (global sequence, epoch); its low half is
    /// the futex word.
    pub(crate) seq: &'a AtomicI64,
    /// The registry to enter; `None` when it cannot be written (poll instead).
    pub(crate) registry: Option<Registry<'a>>,
    /// Learned per handle: a writer publishes without waking (libmembus), so poll.
    pub(crate) polling_writer: &'a AtomicBool,
    /// The word's identity across mappings: the object and the word's offset in it (one
    /// futex for the kernel, whichever process or mapping names it).
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) key: (crate::sys::shm::FileId, usize),
    /// Longest sleep while no writer is known not to wake: how late a first message from
    /// a libmembus/pymembus writer can be seen ([`SAFETY_MULTI_WRITER`] for memmsg, memcmd
    /// and memkv, where a foreign writer can join a membus share; [`SAFETY_MEDIA`] for media
    /// rings, whose one writer is the creator).
    pub(crate) safety: Duration,
}

/// Safety-net sleep of memmsg, memcmd and memkv waits.
pub(crate) const SAFETY_MULTI_WRITER: Duration = Duration::from_millis(50);
/// Safety-net sleep of media waits.
pub(crate) const SAFETY_MEDIA: Duration = Duration::from_millis(250);

/// Makes a handle a [`select`] source through its `$field`, which has `poll()` and
/// `wait_spec()` (a memmsg/memcmd `RingReader`, a media `SlotRing`).
macro_rules! impl_selectable {
    ($t:ty, $field:ident) => {
        impl $crate::select::sealed::Sealed for $t {}

        impl $crate::select::Selectable for $t {
            fn is_ready(&self) -> bool {
                self.$field.poll()
            }

            fn wait_spec(&self) -> $crate::select::WaitSpec<'_> {
                self.$field.wait_spec()
            }
        }
    };
}
pub(crate) use impl_selectable;

/// Blocks until `source` is ready or `timeout` passes; returns whether it is ready.
pub fn wait_ready(source: &dyn Selectable, timeout: Duration) -> bool {
    select(&[source], timeout).is_some()
}

/// Like [`wait_ready`], until an instant.
pub(crate) fn wait_ready_until(source: &dyn Selectable, deadline: Instant) -> bool {
    wait_ready(source, deadline.saturating_duration_since(Instant::now()))
}

thread_local! {
    static ROTATION: Cell<usize> = const { Cell::new(0) };
}

const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);
/// Poll interval against writers that do not wake (libmembus's own interval).
const POLL: Duration = Duration::from_millis(1);

pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    deadline_from(Instant::now(), timeout)
}

/// [`deadline_after`] from a clock reading the caller already has.
pub(crate) fn deadline_from(now: Instant, timeout: Duration) -> Instant {
    now.checked_add(timeout)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

/// Waits until one of `sources` is ready and returns its index, or `None` when `timeout`
/// passes first (a zero timeout checks once). An empty list returns `None` at once.
///
/// When several are ready, the scan starts at a different index on each call (round robin
/// per thread), so no source starves another. See the [module docs](self) for how each kind
/// of source sleeps.
pub fn select(sources: &[&dyn Selectable], timeout: Duration) -> Option<usize> {
    let n = sources.len();
    if n == 0 {
        return None;
    }
    let start = ROTATION.with(|r| {
        let s = r.get();
        r.set(s.wrapping_add(1));
        s % n
    });
    let first_ready = || {
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| sources[i].is_ready())
    };
    if let Some(i) = first_ready() {
        return Some(i);
    }
    if timeout.is_zero() {
        return None;
    }
    let deadline = deadline_after(timeout);
    let mut round: u32 = 0;
    loop {
        wait_round(sources, deadline, round);
        if let Some(i) = first_ready() {
            return Some(i);
        }
        if Instant::now() >= deadline {
            return None;
        }
        round = round.saturating_add(1);
    }
}

/// One registration and sleep over all sources.
fn wait_round(sources: &[&dyn Selectable], deadline: Instant, round: u32) {
    let specs: Vec<Spec<'_>> = sources.iter().map(|s| s.wait_spec().0).collect();
    let mut words: Vec<(Word<'_>, u32)> = Vec::with_capacity(specs.len());
    let mut word_source: Vec<usize> = Vec::with_capacity(specs.len());
    let mut entered: Vec<Entered<'_>> = Vec::new();
    let mut wake_at = deadline;
    let mut slice: Option<Duration> = None;
    let mut shorten = |d: Duration| slice = Some(slice.map_or(d, |s| s.min(d)));
    for (i, spec) in specs.iter().enumerate() {
        match spec {
            Spec::Futex(f) => {
                match f.registry.as_ref().and_then(Registry::enter) {
                    Some(e) => {
                        entered.push(e);
                        if f.polling_writer.load(Ordering::Relaxed) {
                            shorten(POLL);
                        } else {
                            shorten(POLL.saturating_mul(1 << round.min(8)).min(f.safety));
                        }
                    }
                    None => shorten(POLL),
                }
                // SeqCst fence: orders the registration above before this load; pairs with
                // the writer's SeqCst fence in `Waker::publish`. The load itself is
                // Relaxed because the word may lie in a read-only mapping, where Rust
                // promises only Relaxed atomic loads.
                std::sync::atomic::fence(Ordering::SeqCst);
                let v = f.seq.load(Ordering::Relaxed);
                words.push((low_half(f.seq), v as u32));
                word_source.push(i);
            }
            Spec::Until(t) => wake_at = wake_at.min(*t),
            Spec::Poll => shorten(
                Duration::from_micros(50)
                    .saturating_mul(1 << round.min(5))
                    .min(POLL),
            ),
        }
    }
    // Re-check after registering: whatever happened before a registration is visible now,
    // and whatever happens after it changes a word or wakes us.
    if !sources.iter().any(|s| s.is_ready()) {
        if let Some(s) = slice {
            wake_at = wake_at.min(Instant::now() + s);
        }
        match futex::wait_any(&words, Some(wake_at)) {
            WaitvOutcome::Woken(k) => {
                // Woken on a share's word: its writer wakes its waiters.
                if let Some(Spec::Futex(f)) = word_source.get(k).and_then(|&i| specs.get(i)) {
                    f.polling_writer.store(false, Ordering::Relaxed);
                }
            }
            WaitvOutcome::TimedOut => {
                // Data found after a timeout, not a wake: that writer does not wake.
                for &i in &word_source {
                    if let Spec::Futex(f) = &specs[i] {
                        if f.registry.is_some() && sources[i].is_ready() {
                            f.polling_writer.store(true, Ordering::Relaxed);
                        }
                    }
                }
            }
            WaitvOutcome::Changed => {}
        }
    }
    drop(entered);
}

/// Waits until one of `conditions` returns true and returns its index, or `None` at the
/// timeout: libmembus's `select` semantics (conditions checked in index order, so the
/// lowest ready index wins; a zero timeout checks once).
///
/// Closures cannot be woken, so this polls: naps of 50 µs growing to 1 ms (libmembus
/// sleeps 1 ms every time). Prefer [`select`] over handles, or mix closures in as a
/// [`Condition`].
pub fn select_fn(timeout: Duration, conditions: &mut [&mut dyn FnMut() -> bool]) -> Option<usize> {
    if conditions.is_empty() {
        return None;
    }
    let deadline = deadline_after(timeout);
    let mut nap = Duration::from_micros(50);
    loop {
        if let Some(i) = conditions.iter_mut().position(|c| c()) {
            return Some(i);
        }
        let now = Instant::now();
        if timeout.is_zero() || now >= deadline {
            return None;
        }
        std::thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(POLL);
    }
}

/// A closure as a [`select`] source. It is polled (see [`select_fn`]), so a select that
/// includes one naps at most 1 ms at a time.
pub struct Condition<F>(F);

impl<F> std::fmt::Debug for Condition<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Condition")
    }
}

/// Wraps `f` as a [`select`] source.
pub fn condition<F: Fn() -> bool>(f: F) -> Condition<F> {
    Condition(f)
}

impl<F: Fn() -> bool> sealed::Sealed for Condition<F> {}

impl<F: Fn() -> bool> Selectable for Condition<F> {
    fn is_ready(&self) -> bool {
        (self.0)()
    }

    fn wait_spec(&self) -> WaitSpec<'_> {
        WaitSpec(Spec::Poll)
    }
}

/// A periodic clock as a [`select`] source: ready when a tick is due. Sleeping until a
/// tick costs nothing (it is a timeout, not a poll).
#[derive(Clone, Debug)]
pub struct Ticker {
    period: Duration,
    next: Instant,
}

impl Ticker {
    /// Ticks every `period` (at least 1 µs), the first one `period` from now.
    pub fn new(period: Duration) -> Ticker {
        let period = period.max(Duration::from_micros(1));
        Ticker {
            period,
            next: deadline_after(period),
        }
    }

    /// Whether a tick is due.
    pub fn poll(&self) -> bool {
        Instant::now() >= self.next
    }

    /// When the next tick is due.
    pub fn next_tick(&self) -> Instant {
        self.next
    }

    /// Acknowledges the due ticks: returns how many periods have passed since the last
    /// acknowledged one (0 if none is due; more than 1 when ticks were missed) and moves
    /// the next tick past now, keeping the phase.
    pub fn tick(&mut self) -> u64 {
        let now = Instant::now();
        if now < self.next {
            return 0;
        }
        let behind = now - self.next;
        let missed = (behind.as_nanos() / self.period.as_nanos()) as u64;
        let due = missed + 1;
        let step = u32::try_from(due).map_or(FAR, |d| self.period.saturating_mul(d));
        self.next = self.next.checked_add(step).unwrap_or(now + self.period);
        due
    }

    /// Blocks until a tick is due or `timeout` passes; returns [`poll`](Self::poll).
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        wait_ready(self, timeout)
    }
}

impl sealed::Sealed for Ticker {}

impl Selectable for Ticker {
    fn is_ready(&self) -> bool {
        self.poll()
    }

    fn wait_spec(&self) -> WaitSpec<'_> {
        WaitSpec(Spec::Until(self.next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_zero_timeouts_return_at_once() {
        assert_eq!(select(&[], Duration::from_secs(60)), None);
        let never = condition(|| false);
        assert_eq!(select(&[&never], Duration::ZERO), None);
        assert_eq!(select_fn(Duration::ZERO, &mut [&mut || false]), None);
        assert_eq!(select_fn(Duration::from_secs(60), &mut []), None);
    }

    #[test]
    fn select_fn_prefers_the_lowest_ready_index() {
        let mut calls = [0u32; 3];
        let got = {
            let [a, b, c] = &mut calls;
            select_fn(
                Duration::from_secs(5),
                &mut [
                    &mut || {
                        *a += 1;
                        false
                    },
                    &mut || {
                        *b += 1;
                        true
                    },
                    &mut || {
                        *c += 1;
                        true
                    },
                ],
            )
        };
        assert_eq!(got, Some(1));
        assert_eq!(calls, [1, 1, 0], "index order, stops at the first true");
    }

    #[test]
    fn select_rotates_among_ready_sources() {
        let a = condition(|| true);
        let b = condition(|| true);
        let c = condition(|| false);
        let mut hits = [0u32; 3];
        for _ in 0..300 {
            hits[select(&[&a, &b, &c], Duration::ZERO).unwrap()] += 1;
        }
        assert!(hits[0] >= 100 && hits[1] >= 100, "{hits:?}");
        assert_eq!(hits[2], 0);
    }

    #[test]
    fn ticker_counts_missed_periods_and_keeps_phase() {
        let mut t = Ticker::new(Duration::from_millis(10));
        assert_eq!(t.tick(), 0);
        assert!(wait_ready(&t, Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(25));
        let first = t.next_tick();
        let due = t.tick();
        assert!(due >= 3, "{due}");
        assert_eq!(
            t.next_tick() - first,
            Duration::from_millis(10) * due as u32
        );
        assert!(!t.poll());
    }
}
