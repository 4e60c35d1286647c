//! Waiting on many sources at once, without polling.
//!
//! [`select`] blocks until one of several handles is ready and returns its index, or
//! `None` at the timeout. Every readable handle is a source:
//!
//! | source | ready when | sleeps on |
//! |---|---|---|
//! | [`memmsg::Reader`](crate::memmsg::Reader), [`memcmd::MemCmd`](crate::memcmd::MemCmd), [`typed::Receiver`](crate::typed::Receiver) | a message or an overrun is there to read | the share's condition (libmembus writers wake it too) |
//! | [`memkv::Watch`](crate::memkv::Watch), [`typed::KvWatch`](crate::typed::KvWatch) | a batch after the watch's epoch is committed | the share's condition |
//! | [`memvid::VideoReader`](crate::memvid::VideoReader), [`memaud::AudioReader`](crate::memaud::AudioReader), [`mempkt::PacketReader`](crate::mempkt::PacketReader) | a frame (or an overrun) is there | a futex on the global sequence, woken by membus writers |
//! | [`Ticker`] | its next tick is due | a timeout |
//! | [`Condition`] | your closure returns true | short naps (50 µs growing to 1 ms) |
//!
//! "Ready" also covers an overrun to report. A share whose lock cannot be taken (a peer
//! died holding a non-robust mutex) is polled every millisecond instead of waited on; the
//! next read reports the lock error. Readiness is a hint that can go stale
//! (another reader of the same memcmd may take the command first), so read with a zero or
//! short timeout after `select` returns.
//!
//! ## How waiting works
//!
//! - **Media rings** (DESIGN decision 7): the waiter adds itself to a waiter count in the
//!   share's first reserved header word (libmembus leaves it zero) and sleeps on the low
//!   half of the global sequence; membus writers publish with a sequentially consistent
//!   store and issue a `FUTEX_WAKE` only when the count is non-zero. Readers map the share
//!   read-only; to register, a waiting reader maps the first page read-write through a
//!   second descriptor. When the share's mode denies that, or the writer is libmembus (it
//!   never wakes anyone), waits fall back to polling every millisecond, as libmembus does;
//!   with a membus writer and nothing arriving, the safety-net timeout grows to 250 ms.
//! - **memmsg, memcmd, memkv**: their writers (membus or libmembus) broadcast the share's
//!   glibc condition. A lone source is waited on directly; in a multi-source select a
//!   background thread per share (shared by every select in the process, and gone after
//!   5 s without use) sleeps on the condition and wakes the selecting thread through a
//!   futex. While a select is waiting, that thread also wakes every 2 s to notice when
//!   it is no longer needed.
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
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::sys::futex::{self, WaitvOutcome, Word};
use crate::sys::pthread::{LockGuard, Wake};
use crate::sys::shm::FileId;

#[cfg(not(target_endian = "little"))]
compile_error!("membus's media futex is the low half of a 64-bit word: little-endian only");

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
    Cond(&'a dyn CondShare, Expect),
    Until(Instant),
    Poll,
}

impl<'a> WaitSpec<'a> {
    pub(crate) fn futex(f: FutexSpec<'a>) -> WaitSpec<'a> {
        WaitSpec(Spec::Futex(f))
    }

    pub(crate) fn cond(share: &'a dyn CondShare, expect: Expect) -> WaitSpec<'a> {
        WaitSpec(Spec::Cond(share, expect))
    }

    pub(crate) fn poll() -> WaitSpec<'a> {
        WaitSpec(Spec::Poll)
    }
}

/// A media ring's wait words.
pub(crate) struct FutexSpec<'a> {
    /// The global sequence (64-bit); its low half is the futex word.
    pub(crate) seq: &'a AtomicI64,
    /// The waiter count to register in; `None` when it cannot be written (poll instead).
    pub(crate) waiters: Option<&'a AtomicI64>,
    /// Learned per reader: the writer publishes without waking (libmembus), so poll.
    pub(crate) polling_writer: &'a AtomicBool,
}

impl<'a> FutexSpec<'a> {
    fn word(&self) -> Word<'a> {
        // SAFETY: `seq` is an 8-byte aligned word of a mapping borrowed for 'a; on a
        // little-endian target (checked above) its first 4 bytes are the low half, which
        // is 4-byte aligned and mapped for 'a as well.
        unsafe { Word::from_ptr(self.seq.as_ptr().cast::<u32>()) }
    }
}

/// Publishes a media ring's new global sequence and wakes registered waiters.
///
/// The swap is SeqCst, and so is the waiter count load after it; a waiter increments the
/// count (SeqCst) and then, after a SeqCst fence, loads the sequence. In the single total
/// order of those operations either the writer sees the count or the waiter sees the new
/// sequence, so no waiter sleeps through a publish; and if the sequence changes between
/// the waiter's load and its sleep, the kernel's compare in `futex_waitv` returns at once. (Writer and waiter are different
/// processes; the argument is about the hardware, where both sides' SeqCst operations are
/// full barriers on x86-64, `lock xchg`/`lock xadd`.)
pub(crate) fn publish_seq(seq: &AtomicI64, waiters: &AtomicI64, value: i64) {
    // SeqCst swap: also a Release store of the sequence, pairing with readers' Acquire
    // loads of it (`SlotRing::next_slot`).
    seq.swap(value, Ordering::SeqCst);
    if waiters.load(Ordering::SeqCst) != 0 {
        // SAFETY: `seq` is an aligned word of a mapping borrowed for this call; its low
        // half is 4-byte aligned (little-endian target).
        let w = unsafe { Word::from_ptr(seq.as_ptr().cast::<u32>()) };
        futex::wake(w, u32::MAX);
    }
}

/// What "nothing new" looks like in a share's header: the source is ready as soon as one
/// of up to two words moves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expect {
    words: [(usize, i64, bool); 2],
    n: usize,
}

impl Expect {
    /// Ready when the word at `off` differs from `v`.
    pub(crate) fn changed(off: usize, v: i64) -> Expect {
        Expect {
            words: [(off, v, false), (0, 0, false)],
            n: 1,
        }
    }

    /// Ready when the word at `off` exceeds `v`.
    pub(crate) fn above(off: usize, v: i64) -> Expect {
        Expect {
            words: [(off, v, true), (0, 0, false)],
            n: 1,
        }
    }

    /// Also ready when the word at `off` differs from `v`.
    pub(crate) fn or_changed(mut self, off: usize, v: i64) -> Expect {
        self.words[1] = (off, v, false);
        self.n = 2;
        self
    }

    fn met(&self, share: &dyn CondShare) -> bool {
        self.words[..self.n].iter().any(|&(off, v, above)| {
            let now = share.header_word(off);
            if above {
                now > v
            } else {
                now != v
            }
        })
    }
}

/// A share with a glibc mutex/condition pair whose writers broadcast on every change.
pub(crate) trait CondShare: Send + Sync {
    /// The object's identity: one background waiter per object.
    fn file_id(&self) -> FileId;
    /// Takes the share's mutex (repairing after a dead owner).
    fn lock_share(&self) -> Result<LockGuard<'_>>;
    /// Waits on the condition until woken or `deadline`.
    fn wait_share(&self, guard: &mut LockGuard<'_>, deadline: Instant) -> Result<Wake>;
    /// A header word (relaxed; under the lock).
    fn header_word(&self, off: usize) -> i64;
    /// A second handle on the same mapping for a background waiter.
    fn clone_arc(&self) -> Arc<dyn CondShare>;
}

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

/// Implements [`CondShare`] for a condition-based share type (memmsg/memcmd `Ring`,
/// `MemKv`) in its own module, where it has a `seg: SharedSegment` field and the private
/// methods `lock()`, `repair()`, `name()` and `share_clone()`.
macro_rules! impl_cond_share {
    ($ty:ty) => {
        impl $crate::select::CondShare for $ty {
            fn file_id(&self) -> $crate::sys::shm::FileId {
                self.seg.file_id()
            }

            fn lock_share(&self) -> $crate::error::Result<$crate::sys::pthread::LockGuard<'_>> {
                self.lock()
            }

            fn wait_share(
                &self,
                guard: &mut $crate::sys::pthread::LockGuard<'_>,
                deadline: ::std::time::Instant,
            ) -> $crate::error::Result<$crate::sys::pthread::Wake> {
                guard.wait_until(deadline, self.name().as_str(), || self.repair())
            }

            fn header_word(&self, off: usize) -> i64 {
                // Offsets come from the type's `idle_expect` (header words checked at
                // construction); an out-of-range offset reads as 0.
                self.seg
                    .atomic_i64(off)
                    .map_or(0, |w| w.load(::std::sync::atomic::Ordering::Relaxed))
            }

            fn clone_arc(&self) -> ::std::sync::Arc<dyn $crate::select::CondShare> {
                ::std::sync::Arc::new(self.share_clone())
            }
        }
    };
}
pub(crate) use impl_cond_share;

/// Blocks until `source` is ready or `timeout` passes; returns whether it is ready.
pub fn wait_ready(source: &dyn Selectable, timeout: Duration) -> bool {
    select(&[source], timeout).is_some()
}

thread_local! {
    static ROTATION: Cell<usize> = const { Cell::new(0) };
}

const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);
/// Poll interval against writers that do not wake (libmembus's own interval).
const POLL: Duration = Duration::from_millis(1);
/// Longest safety-net sleep on a media futex when the writer is known to wake.
const FUTEX_SAFETY_MAX: Duration = Duration::from_millis(250);

fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
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
    if n == 1 {
        if let Spec::Cond(share, expect) = sources[0].wait_spec().0 {
            return wait_cond(share, &expect, deadline).then_some(0);
        }
    }
    // Sources whose background waiter could not lock the share: polled instead.
    let mut polled = vec![false; n];
    let mut round: u32 = 0;
    loop {
        wait_round(sources, &mut polled, deadline, round);
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
fn wait_round(sources: &[&dyn Selectable], polled: &mut [bool], deadline: Instant, round: u32) {
    let specs: Vec<Spec<'_>> = sources.iter().map(|s| s.wait_spec().0).collect();
    let notify = Arc::new(Notify::default());
    let mut words: Vec<(Word<'_>, u32)> = Vec::with_capacity(specs.len() + 1);
    let mut word_source: Vec<usize> = Vec::with_capacity(specs.len());
    let mut registered: Vec<&AtomicI64> = Vec::new();
    let mut subs: Vec<(usize, Subscription)> = Vec::new();
    let mut wake_at = deadline;
    let mut slice: Option<Duration> = None;
    let mut shorten = |d: Duration| slice = Some(slice.map_or(d, |s| s.min(d)));
    for (i, spec) in specs.iter().enumerate() {
        match spec {
            Spec::Futex(f) => {
                match f.waiters {
                    Some(w) => {
                        // SeqCst: see `publish_seq`.
                        w.fetch_add(1, Ordering::SeqCst);
                        registered.push(w);
                        if f.polling_writer.load(Ordering::Relaxed) {
                            shorten(POLL);
                        } else {
                            shorten(POLL.saturating_mul(1 << round.min(7)).min(FUTEX_SAFETY_MAX));
                        }
                    }
                    None => shorten(POLL),
                }
                // The fence orders the registration above before this load (see
                // `publish_seq`); the load itself is Relaxed because `seq` may lie in a
                // read-only mapping, where Rust promises only Relaxed atomic loads.
                std::sync::atomic::fence(Ordering::SeqCst);
                let v = f.seq.load(Ordering::Relaxed);
                words.push((f.word(), v as u32));
                word_source.push(i);
            }
            Spec::Cond(..) if polled[i] => shorten(POLL),
            Spec::Cond(share, expect) => match subscribe(*share, *expect, &notify) {
                Some(s) => subs.push((i, s)),
                None => shorten(POLL),
            },
            Spec::Until(t) => wake_at = wake_at.min(*t),
            Spec::Poll => shorten(
                Duration::from_micros(50)
                    .saturating_mul(1 << round.min(5))
                    .min(POLL),
            ),
        }
    }
    let fired_before = notify.word.load(Ordering::Acquire);
    if !subs.is_empty() {
        words.push((Word::local(&notify.word), fired_before));
    }
    // Re-check after registering: whatever happened before a registration is visible now,
    // and whatever happens after it wakes us.
    if !sources.iter().any(|s| s.is_ready()) {
        if let Some(s) = slice {
            wake_at = wake_at.min(Instant::now() + s);
        }
        let outcome = futex::wait_any(&words, Some(wake_at));
        match outcome {
            WaitvOutcome::Woken(k) => {
                // Woken on a media word: that writer wakes its waiters.
                if let Some(Spec::Futex(f)) = word_source.get(k).and_then(|&i| specs.get(i)) {
                    f.polling_writer.store(false, Ordering::Relaxed);
                }
            }
            WaitvOutcome::TimedOut => {
                // A frame found after a timeout, not a wake: that writer does not wake.
                for &i in &word_source {
                    if let Spec::Futex(f) = &specs[i] {
                        if f.waiters.is_some() && sources[i].is_ready() {
                            f.polling_writer.store(true, Ordering::Relaxed);
                        }
                    }
                }
            }
            WaitvOutcome::Changed => {}
        }
    }
    for w in registered {
        // Pairs with nothing: the count is only compared with zero by writers.
        w.fetch_sub(1, Ordering::Relaxed);
    }
    for (i, s) in &subs {
        if s.state.failed.load(Ordering::Acquire) {
            polled[*i] = true;
        }
    }
}

/// Waits on one share's condition directly (no background thread).
fn wait_cond(share: &dyn CondShare, expect: &Expect, deadline: Instant) -> bool {
    if let Ok(mut guard) = share.lock_share() {
        loop {
            if expect.met(share) {
                return true;
            }
            match share.wait_share(&mut guard, deadline) {
                Ok(Wake::TimedOut) => return expect.met(share),
                Ok(Wake::Woken) => {}
                Err(_) => break,
            }
        }
    }
    // The lock cannot be taken (a dead peer's non-robust mutex, an unrecoverable one):
    // readiness is still visible without it, so poll; the next read reports the error.
    loop {
        if expect.met(share) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

/// A process-local futex word that background waiters bump to wake a selecting thread.
#[derive(Default)]
struct Notify {
    word: AtomicU32,
}

impl Notify {
    fn fire(&self) {
        // Release: pairs with the selecting thread's Acquire load in `wait_round`; the
        // futex compare itself is done by the kernel.
        self.word.fetch_add(1, Ordering::Release);
        futex::wake(Word::local(&self.word), u32::MAX);
    }
}

/// One select's interest in a share, held by that share's background waiter.
struct SubState {
    expect: Expect,
    notify: Arc<Notify>,
    failed: AtomicBool,
}

/// Removes the interest on drop.
struct Subscription {
    watcher: Arc<Watcher>,
    state: Arc<SubState>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.watcher.state)
            .subs
            .retain(|s| !Arc::ptr_eq(s, &self.state));
    }
}

/// The background waiter of one share.
struct Watcher {
    state: Mutex<WatchState>,
    cv: Condvar,
}

struct WatchState {
    /// A handle on the share while anyone is interested.
    share: Option<Arc<dyn CondShare>>,
    subs: Vec<Arc<SubState>>,
    /// Set when the thread is leaving; a new watcher replaces it.
    exiting: bool,
}

static WATCHERS: Mutex<Vec<(FileId, Arc<Watcher>)>> = Mutex::new(Vec::new());
/// A background waiter with nobody interested leaves after this.
const IDLE_EXIT: Duration = Duration::from_secs(5);
/// While waiting for the share, a background waiter checks this often whether anyone is
/// still interested.
const SLICE: Duration = Duration::from_secs(2);

/// A poisoned lock only means a panic elsewhere; the protected lists stay consistent
/// (every mutation is a single push or retain).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn subscribe(share: &dyn CondShare, expect: Expect, notify: &Arc<Notify>) -> Option<Subscription> {
    let id = share.file_id();
    let mut all = lock(&WATCHERS);
    loop {
        let watcher = match all.iter().find(|(k, _)| *k == id) {
            Some((_, w)) => Arc::clone(w),
            None => {
                let w = Arc::new(Watcher {
                    state: Mutex::new(WatchState {
                        share: None,
                        subs: Vec::new(),
                        exiting: false,
                    }),
                    cv: Condvar::new(),
                });
                let for_thread = Arc::clone(&w);
                std::thread::Builder::new()
                    .name("membus-select".into())
                    .spawn(move || watch(&for_thread))
                    .ok()?;
                all.push((id, Arc::clone(&w)));
                w
            }
        };
        let mut st = lock(&watcher.state);
        if st.exiting {
            drop(st);
            all.retain(|(_, w)| !Arc::ptr_eq(w, &watcher));
            continue;
        }
        if st.share.is_none() {
            st.share = Some(share.clone_arc());
        }
        let state = Arc::new(SubState {
            expect,
            notify: Arc::clone(notify),
            failed: AtomicBool::new(false),
        });
        st.subs.push(Arc::clone(&state));
        drop(st);
        watcher.cv.notify_one();
        return Some(Subscription {
            watcher: Arc::clone(&watcher),
            state,
        });
    }
}

/// The background waiter's thread.
fn watch(w: &Arc<Watcher>) {
    loop {
        let share = {
            let mut st = lock(&w.state);
            let idle_since = Instant::now();
            loop {
                if !st.subs.is_empty() {
                    if let Some(s) = &st.share {
                        break Arc::clone(s);
                    }
                }
                st.share = None;
                let left = IDLE_EXIT.saturating_sub(idle_since.elapsed());
                if left.is_zero() {
                    st.exiting = true;
                    drop(st);
                    lock(&WATCHERS).retain(|(_, x)| !Arc::ptr_eq(x, w));
                    return;
                }
                st =
                    w.cv.wait_timeout(st, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
            }
        };
        watch_share(w, &*share);
    }
}

/// Sleeps on the share's condition until every interested select has been notified.
fn watch_share(w: &Watcher, share: &dyn CondShare) {
    let fail_all = || {
        for s in lock(&w.state).subs.drain(..) {
            s.failed.store(true, Ordering::Release);
            s.notify.fire();
        }
    };
    let Ok(mut guard) = share.lock_share() else {
        fail_all();
        return;
    };
    loop {
        {
            let mut st = lock(&w.state);
            st.subs.retain(|s| {
                if s.expect.met(share) {
                    s.notify.fire();
                    false
                } else {
                    true
                }
            });
            if st.subs.is_empty() {
                return;
            }
        }
        if share
            .wait_share(&mut guard, Instant::now() + SLICE)
            .is_err()
        {
            drop(guard);
            fail_all();
            return;
        }
    }
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
