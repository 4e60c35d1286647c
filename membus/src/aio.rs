//! Async waiting: every readable share as a future, and message, change and record readers
//! as [`Stream`]s (feature `async`, also enabled by `tokio`).
//!
//! The futures work in any executor (tokio, both flavours, or another): readiness comes from
//! the same futex words as [`select`](crate::select), watched by **one reactor thread per
//! process**, whatever the number of shares and waiting futures. The thread sleeps in one
//! `futex_waitv` over every distinct word that futures wait on (many futures on one share
//! share one word) plus a control word, and calls the wakers of the futures whose word
//! moved. It registers in each share's waiter registry like any waiter, so membus writers
//! wake it; against libmembus/pymembus writers, which wake nobody, it re-reads the words
//! every millisecond while such a source is pending, and otherwise as a safety net every
//! 50 ms (memmsg, memcmd, memkv, where a foreign writer can join) or 250 ms (media). Idle futures therefore cost no CPU of their own: 1,000 pending reads on
//! one share are one word in one wait.
//!
//! ```no_run
//! # async fn demo() -> membus::Result<()> {
//! use membus::memmsg::Reader;
//! use membus::memkv::MemKv;
//! let mut cmds = Reader::attach("/camera-cmd")?;
//! let kv = MemKv::attach("/camera-state")?;
//! let mut watch = kv.watch();
//! // With tokio: tokio::select! over shares and timers.
//! let got = cmds.read_async().await?;
//! let changes = watch.changes_async().await?;
//! # let _ = (got, changes);
//! # Ok(()) }
//! ```
//!
//! **Cancellation.** Every future here only *waits* while pending; the item is taken in
//! the same (synchronous) poll that finds it ready. Dropping a future therefore loses
//! nothing: the next call, blocking or async, gets the same item.
//!
//! **Latency.** An awaited wake-up crosses one more thread than a blocking
//! [`select`](crate::select): the writer wakes the reactor, which wakes the task's executor
//! thread. It therefore costs about one more cross-CPU wake-up than `select` (the reactor
//! calls wakers after releasing its lock, so a woken task's first poll does not wait for
//! it). Nothing spins to hide that hop: idle futures must cost nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

pub use futures_core::Stream;

use crate::select::{Selectable, SpecParts};
use crate::sys::futex::{self, Word};
use crate::sys::shm::FileId;
use crate::wait::{Entered, Registry};

/// Re-read interval while a source's writer is known not to wake (libmembus/pymembus).
const POLL: Duration = Duration::from_millis(1);
/// Longest sleep of the reactor (its own safety net; each source may ask for less).
const SAFETY: Duration = Duration::from_millis(250);
/// The reactor thread leaves after this long without pending futures.
const IDLE_EXIT: Duration = Duration::from_secs(5);

/// What a pending future waits for.
struct Entry {
    id: u64,
    /// The word's identity (object, offset): entries with equal keys share one futex.
    key: Option<(FileId, usize)>,
    /// The futex word: the low half of a 64-bit header word (null: time only). Only ever
    /// handed to the kernel (see `run`).
    word: *const u32,
    /// Its low half when the future registered.
    expected: u32,
    /// Re-read (and fire) no later than this; for time-only entries, fire then.
    deadline: Option<Instant>,
    /// The writer of this source does not wake: re-read every millisecond.
    polling: bool,
    /// Re-read at least this often otherwise (the source's safety net).
    safety: Duration,
    waker: Waker,
}

// SAFETY: `word` is never dereferenced from Rust, by any thread: it is only handed to the
// kernel (futex calls), which validates it. The other fields are Send.
unsafe impl Send for Entry {}

/// How an entry ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fired {
    /// Its word moved and a wake (or another entry's event) showed it.
    Changed,
    /// Its word moved, seen at a timed re-read: that writer does not wake.
    ChangedUnannounced,
    /// Its deadline passed.
    Deadline,
}

#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    fired: Vec<(u64, Fired)>,
    next_id: u64,
    running: bool,
}

struct Reactor {
    state: Mutex<State>,
    idle: Condvar,
    /// Bumped (and woken) whenever the entries change.
    control: AtomicU32,
}

static REACTOR: Reactor = Reactor {
    state: Mutex::new(State {
        entries: Vec::new(),
        fired: Vec::new(),
        next_id: 1,
        running: false,
    }),
    idle: Condvar::new(),
    control: AtomicU32::new(0),
};

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A poisoned lock means a panic elsewhere; every update is a push, retain or counter
    // change, so the state stays consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Reactor {
    fn poke(&self) {
        // Release: pairs with the reactor's Acquire load when it builds its wait list.
        self.control.fetch_add(1, Ordering::Release);
        futex::wake(Word::local(&self.control), u32::MAX);
        self.idle.notify_one();
    }

    fn add(&'static self, mut e: Entry) -> u64 {
        let mut st = lock(&self.state);
        let id = st.next_id;
        st.next_id += 1;
        e.id = id;
        st.entries.push(e);
        if !st.running {
            st.running = true;
            let spawned = std::thread::Builder::new()
                .name("membus-async".into())
                .spawn(move || self.run());
            if spawned.is_err() {
                // No reactor thread: fire everything at once, so futures fall back to
                // re-polling (their waits degrade to busy polling rather than hanging).
                st.running = false;
                for e in st.entries.drain(..) {
                    e.waker.wake();
                }
            }
        }
        drop(st);
        self.poke();
        id
    }

    /// Removes entry `id`; returns how it fired, if it did.
    fn remove(&self, id: u64) -> Option<Fired> {
        let mut st = lock(&self.state);
        st.entries.retain(|e| e.id != id);
        let fired = st
            .fired
            .iter()
            .position(|(i, _)| *i == id)
            .map(|at| st.fired.swap_remove(at).1);
        fired
    }

    fn update_waker(&self, id: u64, w: &Waker) -> bool {
        let mut st = lock(&self.state);
        match st.entries.iter_mut().find(|e| e.id == id) {
            Some(e) => {
                if !e.waker.will_wake(w) {
                    e.waker = w.clone();
                }
                true
            }
            None => false,
        }
    }

    /// The reactor thread.
    fn run(&self) {
        let mut idle_since: Option<Instant> = None;
        let mut last_wait_was_timeout = false;
        loop {
            let mut st = lock(&self.state);
            let now = Instant::now();
            // Fire entries whose word moved or whose deadline passed.
            // One probe per distinct (word, expected value) this round.
            let mut probed: Vec<((FileId, usize), u32, bool)> = Vec::new();
            let mut wake: Vec<Waker> = Vec::new();
            let mut i = 0;
            while i < st.entries.len() {
                let e = &st.entries[i];
                // Compared by the kernel, never read from Rust: a future that was forgotten
                // (`mem::forget`) leaves an entry whose mapping may be gone; its word then
                // faults in the kernel and the entry is dropped like a fired one.
                let moved = match e.key {
                    Some(key) if !e.word.is_null() => {
                        match probed.iter().find(|p| p.0 == key && p.1 == e.expected) {
                            Some(p) => p.2,
                            None => {
                                let m = futex::probe(Word::kernel_only(e.word), e.expected)
                                    != futex::Probe::Same;
                                probed.push((key, e.expected, m));
                                m
                            }
                        }
                    }
                    _ => false,
                };
                let due = e.deadline.is_some_and(|d| d <= now);
                if moved || (due && e.word.is_null()) {
                    let e = st.entries.swap_remove(i);
                    let how = if !moved {
                        Fired::Deadline
                    } else if last_wait_was_timeout {
                        Fired::ChangedUnannounced
                    } else {
                        Fired::Changed
                    };
                    st.fired.push((e.id, how));
                    wake.push(e.waker);
                } else {
                    i += 1;
                }
            }
            if !wake.is_empty() {
                // Wake outside the lock: the woken task's first step is a poll that takes
                // it (`update_waker`, `remove`); held here, that poll would block on it
                // and cost one more sleep and wake-up on the latency path.
                drop(st);
                for w in wake {
                    w.wake();
                }
                continue;
            }
            if st.entries.is_empty() {
                let since = *idle_since.get_or_insert(now);
                if since.elapsed() >= IDLE_EXIT {
                    st.running = false;
                    return;
                }
                let left = IDLE_EXIT.saturating_sub(since.elapsed());
                drop(
                    self.idle
                        .wait_timeout(st, left)
                        .unwrap_or_else(PoisonError::into_inner),
                );
                last_wait_was_timeout = false;
                continue;
            }
            idle_since = None;
            // Distinct words with their current low halves (equal to every entry's
            // expected value, or the entry would have fired above).
            let mut words: Vec<(Word<'_>, u32)> = Vec::new();
            let mut keys: Vec<(FileId, usize)> = Vec::new();
            let mut wake_at = now + SAFETY;
            for e in &st.entries {
                if let Some(d) = e.deadline {
                    wake_at = wake_at.min(d);
                }
                wake_at = wake_at.min(now + if e.polling { POLL } else { e.safety });
                let Some(key) = e.key else {
                    continue;
                };
                if keys.contains(&key) {
                    continue;
                }
                if words.len() >= futex::WAITV_MAX - 1 {
                    // More distinct words than one wait can hold: re-read the rest often.
                    wake_at = wake_at.min(now + POLL);
                    continue;
                }
                keys.push(key);
                words.push((Word::kernel_only(e.word), e.expected));
            }
            // Acquire: pairs with `poke`'s Release; a later poke changes the value, so the
            // wait below returns at once or is woken.
            let c = self.control.load(Ordering::Acquire);
            words.push((Word::local(&self.control), c));
            drop(st);
            // The words are only handed to the kernel (which tolerates an address that was
            // unmapped meanwhile: EFAULT, then a rebuild); Rust never reads through them
            // outside the lock.
            let outcome = futex::wait_any(&words, Some(wake_at));
            last_wait_was_timeout = outcome == futex::WaitvOutcome::TimedOut;
        }
    }
}

/// A future that resolves when `source` is ready (see [`ready`]).
pub struct Ready<'a> {
    source: &'a (dyn Selectable + Sync),
    reg: Option<Pending<'a>>,
}

struct Pending<'a> {
    id: u64,
    _entered: Option<Entered<'a>>,
    polling: Option<&'a AtomicBool>,
}

/// Resolves when `source` is ready: the async counterpart of
/// [`wait_ready`](crate::select::wait_ready), for `tokio::select!` (or any other
/// combinator) over shares, timers and sockets. Never consumes anything.
pub fn ready(source: &(dyn Selectable + Sync)) -> Ready<'_> {
    Ready { source, reg: None }
}

impl std::fmt::Debug for Ready<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ready")
            .field("pending", &self.reg.is_some())
            .finish()
    }
}

impl Future for Ready<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if let Some(p) = &this.reg {
            if REACTOR.update_waker(p.id, cx.waker()) {
                // Still registered: nothing moved yet, unless the source became ready
                // another way (a spurious poll).
                if this.source.is_ready() {
                    this.unregister();
                    return Poll::Ready(());
                }
                return Poll::Pending;
            }
            // Fired.
            this.unregister();
        }
        if this.source.is_ready() {
            return Poll::Ready(());
        }
        this.register(cx.waker());
        // Re-check after registering: whatever happened before the registration is
        // visible now; whatever happens after it moves the word the reactor watches.
        if this.source.is_ready() {
            this.unregister();
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl<'a> Ready<'a> {
    fn register(&mut self, waker: &Waker) {
        let source: &'a (dyn Selectable + Sync) = self.source;
        let mut safety = SAFETY;
        let (word, key, entered, flag, deadline) = match source.wait_spec().into_parts() {
            SpecParts::Futex(f) => {
                let entered = f.registry.as_ref().and_then(Registry::enter);
                // SeqCst fence: orders the registration before the load of the word below;
                // pairs with the writer's fence in `Waker::publish`.
                fence(Ordering::SeqCst);
                safety = f.safety;
                (
                    Some(f.seq),
                    Some(f.key),
                    entered,
                    Some(f.polling_writer),
                    None,
                )
            }
            SpecParts::Until(t) => (None, None, None, None, Some(t)),
            SpecParts::Poll => (None, None, None, None, Some(Instant::now() + POLL)),
        };
        // Without a registration, or against a writer that does not wake: re-read often.
        let polling = word.is_some()
            && (entered.is_none() || flag.is_some_and(|p| p.load(Ordering::Relaxed)));
        let (ptr, expected) = match word {
            // Relaxed: the word may lie in a read-only mapping; the fence above orders it.
            Some(w) => (
                w.as_ptr().cast::<u32>().cast_const(),
                w.load(Ordering::Relaxed) as u32,
            ),
            None => (std::ptr::null(), 0),
        };
        let id = REACTOR.add(Entry {
            id: 0,
            key,
            word: ptr,
            expected,
            deadline,
            polling,
            safety,
            waker: waker.clone(),
        });
        self.reg = Some(Pending {
            id,
            _entered: entered,
            polling: flag,
        });
    }

    fn unregister(&mut self) {
        if let Some(p) = self.reg.take() {
            match REACTOR.remove(p.id) {
                Some(Fired::ChangedUnannounced) => {
                    if let Some(flag) = p.polling {
                        flag.store(true, Ordering::Relaxed);
                    }
                }
                Some(Fired::Changed) => {
                    if let Some(flag) = p.polling {
                        flag.store(false, Ordering::Relaxed);
                    }
                }
                _ => {}
            }
        }
    }
}

impl Drop for Ready<'_> {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// A [`Stream`] over what a handle reads, one item per ready source. Made by the handles'
/// `stream()` methods; dropping it (or a pending `next`) loses nothing.
pub struct ItemStream<'a, R, T> {
    step: fn(&'a mut R) -> StepFuture<'a, R, T>,
    state: StreamState<'a, R, T>,
}

/// One step of an [`ItemStream`]: reads the next item and hands the handle back.
pub type StepFuture<'a, R, T> = Pin<Box<dyn Future<Output = (T, &'a mut R)> + Send + 'a>>;

enum StreamState<'a, R, T> {
    Idle(Option<&'a mut R>),
    Waiting(StepFuture<'a, R, T>),
}

impl<'a, R, T> ItemStream<'a, R, T> {
    pub(crate) fn new(reader: &'a mut R, step: fn(&'a mut R) -> StepFuture<'a, R, T>) -> Self {
        ItemStream {
            step,
            state: StreamState::Idle(Some(reader)),
        }
    }
}

impl<R, T> std::fmt::Debug for ItemStream<'_, R, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemStream").finish_non_exhaustive()
    }
}

impl<'a, R, T> Stream for ItemStream<'a, R, T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                StreamState::Idle(r) => {
                    let Some(r) = r.take() else {
                        return Poll::Ready(None);
                    };
                    this.state = StreamState::Waiting((this.step)(r));
                }
                StreamState::Waiting(fut) => {
                    let (item, r) = std::task::ready!(fut.as_mut().poll(cx));
                    this.state = StreamState::Idle(Some(r));
                    return Poll::Ready(Some(item));
                }
            }
        }
    }
}

impl<R, T> Unpin for ItemStream<'_, R, T> {}

/// Ready at an instant: a short pause inside the reactor, without a timer crate.
struct Soon(Instant);

impl crate::select::sealed::Sealed for Soon {}

impl Selectable for Soon {
    fn is_ready(&self) -> bool {
        Instant::now() >= self.0
    }

    fn wait_spec(&self) -> crate::select::WaitSpec<'_> {
        crate::select::WaitSpec::until(self.0)
    }
}

/// Waits until `deliverable()` says the next read would return something. `source`'s
/// readiness comes first (its futex word moved); a source that is ready but not yet
/// deliverable (a libmembus writer between its two stores) is looked at again shortly.
pub(crate) async fn until(source: &(dyn Selectable + Sync), deliverable: impl Fn() -> bool) {
    loop {
        if deliverable() {
            return;
        }
        if source.is_ready() {
            ready(&Soon(Instant::now() + Duration::from_micros(100))).await;
        } else {
            ready(source).await;
        }
    }
}

/// "The source's publish counter exceeds `last`" as a source (see [`seq_above`]).
struct Above<'a> {
    source: &'a (dyn Selectable + Sync),
    last: i64,
}

impl crate::select::sealed::Sealed for Above<'_> {}

impl Selectable for Above<'_> {
    fn is_ready(&self) -> bool {
        match self.source.wait_spec().into_parts() {
            // Acquire: pairs with the writer's Release store of the global sequence (its
            // last publish step), so the slots it published are visible to later reads.
            SpecParts::Futex(f) => f.seq.load(Ordering::Acquire) > self.last,
            // No counter to compare (not a share): the source's own readiness.
            SpecParts::Until(_) | SpecParts::Poll => self.source.is_ready(),
        }
    }

    fn wait_spec(&self) -> crate::select::WaitSpec<'_> {
        self.source.wait_spec()
    }
}

/// Resolves when the global publish counter of a media reader (memvid, memaud, mempkt)
/// exceeds `last`: libmembus's `waitForFrame(ms, lastSeq)` condition, for readers that
/// address slots by index (as pymembus does) instead of through their cursor, which this
/// neither reads nor moves. Woken like [`ready`] (same futex word, same reactor).
///
/// For memmsg, memcmd and memkv sources the counter is the share's 64-bit wake word
/// (rarely what a caller means; use [`ready`]). Sources that are not shares resolve when
/// they are ready. Cancellation-safe: it only waits.
pub async fn seq_above(source: &(dyn Selectable + Sync), last: u64) {
    let above = Above {
        source,
        last: i64::try_from(last).unwrap_or(i64::MAX),
    };
    ready(&above).await;
}
