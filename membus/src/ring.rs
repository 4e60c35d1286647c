//! The message ring behind memmsg and memcmd (spec §4, §5): one algorithm, two header
//! layouts. The public handle types in [`crate::memmsg`] and [`crate::memcmd`] wrap it.

use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::error::{explain_wrong_type, Error, ErrorKind, Result};
use crate::layout::identify::ShareType;
use crate::layout::ring::{
    Frame, RingKind, RingLayout, FRAME_HEADER, OFF_ID, OFF_READERS, OFF_SEQ, OFF_SIZE, OFF_WRITE,
};
use crate::name::ShareName;
use crate::sys::copy::{copy_from_shared, copy_from_shared_uninit, copy_to_shared};
use crate::sys::pthread::{LockGuard, LockPair};
use crate::sys::shm::{Access, Replace, Segment, SharedSegment};
use crate::wait::CondWaits;

/// libmembus's lock deadline.
pub(crate) const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// The default waiting policy of a reader (see [`WaitPolicy`]).
pub(crate) const DEFAULT_WAIT: WaitPolicy = WaitPolicy::SpinYield {
    spin: Duration::from_micros(20),
    yield_for: Duration::from_micros(200),
};

/// How a reader waits for the next message in a blocking read (`read` with a timeout):
/// what it costs in CPU against how soon it sees the message.
///
/// Every policy first checks the write position without a lock (a shared-memory load), so
/// a message that is already there is read at once; they differ in what a reader does when
/// none is:
///
/// * [`Spin`](Self::Spin)`(d)`: spin on the write position for up to `d` (one CPU busy for
///   at most `d` per wait), then sleep on the share's futex until a writer wakes it. A
///   wake-up from sleep costs a futex round trip (tens of µs on a guest, more when it
///   crosses CPUs); zero sleeps at once.
/// * [`SpinYield`](Self::SpinYield) (the default, 20 µs then 200 µs): spin for `spin`, then
///   keep polling for up to `yield_for` more while giving the CPU away between polls
///   (`sched_yield`), then sleep. The spin covers a peer answering from another CPU (a
///   round trip takes well under a µs there) and the few-µs hiccups of a guest (an
///   interrupt on the peer's CPU): a reader that had already started yielding then pays
///   ~15 µs more, which with a 5 µs spin put the quiet-machine p99.9 of a round trip at
///   14–17 µs instead of 0.4–3 µs. The yield phase covers a peer delayed longer or sharing
///   this CPU (it gets the CPU at once instead of after a sleep), so a steady exchange
///   whose messages are up to ~200 µs apart never pays a futex wake-up. With no other
///   runnable thread the CPU stays busy while yielding, so a wait costs at most
///   `spin + yield_for` of CPU (220 µs by default: 0.7 % of a CPU for a reader of 30
///   messages a second).
/// * [`BusyPoll`](Self::BusyPoll): never sleeps; spins for the whole timeout. The lowest and
///   steadiest latency, at the cost of one CPU at 100 % for as long as the reader waits
///   (use it on a dedicated core).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitPolicy {
    /// Spin up to this long, then sleep.
    Spin(Duration),
    /// Spin for `spin`, poll with `sched_yield` for `yield_for`, then sleep.
    SpinYield {
        /// How long to spin first.
        spin: Duration,
        /// How long to keep polling, yielding the CPU between polls, before sleeping.
        yield_for: Duration,
    },
    /// Poll until the message or the timeout, never sleeping.
    BusyPoll,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        DEFAULT_WAIT
    }
}
/// How many times a reader whose lock-free read declined while a writer held the mutex
/// tries it again, a pause apart, before it takes the mutex itself (see `read_now`).
const WRITER_SPINS: u32 = 64;
/// How long an attacher waits for a live creator to finish initialising the header.
const INIT_WAIT: Duration = Duration::from_millis(500);

/// Where a new reader starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Start {
    /// At the current write position: only messages written after the reader attached are
    /// delivered. The default.
    #[default]
    Latest,
    /// At ring offset 0, like a pymembus or libmembus reader: the backlog still intact from
    /// the start of the ring data area is delivered first (after a wrap this is the part of
    /// the current lap written since the wrap). Messages written before the first one
    /// delivered (sequence numbers 1 up to it) are reported as an
    /// [`Overrun`](Received::Overrun) first, so delivered plus lost always adds up to
    /// everything written.
    Oldest,
}

/// Options for memmsg and memcmd handles. `QueueOptions::new()` gives libmembus's defaults
/// except for the creation mode, which is owner-only.
///
/// ```
/// use std::time::Duration;
/// use membus::{QueueOptions, Start};
/// let opts = QueueOptions::new().mode(0o644).start(Start::Oldest).lock_timeout(Duration::from_secs(1));
/// # let _ = opts;
/// ```
#[derive(Clone, Debug)]
pub struct QueueOptions {
    pub(crate) mode: u32,
    pub(crate) lock_timeout: Duration,
    pub(crate) wait: WaitPolicy,
    pub(crate) start: Start,
    pub(crate) capacity: Option<usize>,
    pub(crate) register_reader: bool,
    pub(crate) replace_stale: bool,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            mode: 0o600,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            wait: DEFAULT_WAIT,
            start: Start::Latest,
            capacity: None,
            register_reader: true,
            replace_stale: false,
        }
    }
}

impl QueueOptions {
    /// The defaults: mode 0600, 5 s lock deadline, waiting by [`WaitPolicy::default`] (spin
    /// 20 µs, then yield 200 µs, then sleep), start at the latest message,
    /// any capacity on attach, memcmd handles registered as readers.
    pub fn new() -> QueueOptions {
        QueueOptions::default()
    }

    /// Permission bits for a share this handle creates (applied exactly, whatever the
    /// umask). Default 0o600; libmembus uses 0o644.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// How long to wait for the share's lock before [`ErrorKind::LockTimeout`]. Default 5 s,
    /// as libmembus.
    #[must_use]
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Shorthand for [`wait_policy`](Self::wait_policy)`(WaitPolicy::Spin(spin))`: a
    /// blocking read spins on the write position this long, then sleeps on the share's
    /// futex; zero sleeps at once.
    #[must_use]
    pub fn spin(mut self, spin: Duration) -> Self {
        self.wait = WaitPolicy::Spin(spin);
        self
    }

    /// How a blocking read waits (see [`WaitPolicy`] for each policy's CPU cost). Default
    /// [`WaitPolicy::SpinYield`] with 20 µs of spinning and 200 µs of yielding.
    #[must_use]
    pub fn wait_policy(mut self, policy: WaitPolicy) -> Self {
        self.wait = policy;
        self
    }

    /// Where a reader starts. Default [`Start::Latest`].
    #[must_use]
    pub fn start(mut self, start: Start) -> Self {
        self.start = start;
        self
    }

    /// On attach, require this capacity ([`ErrorKind::SizeMismatch`] otherwise), as
    /// libmembus's `open(name, size, ...)` does. Default: accept the share's own capacity.
    #[must_use]
    pub fn expect_capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// memcmd only: count this handle in the share's reader count while it lives (what
    /// libmembus's `bReader` does). Default true.
    #[must_use]
    pub fn register_reader(mut self, register: bool) -> Self {
        self.register_reader = register;
        self
    }

    /// On create, also replace an existing share that libmembus or pymembus made, as long
    /// as no live membus process owns it. Default false.
    ///
    /// Whatever this says, a create replaces a share that membus created and whose
    /// creator has died (a restart after a crash just works), and never replaces a share
    /// whose membus creator is alive. A share made by libmembus or pymembus carries no
    /// owner lock, so membus cannot tell whether it is in use; by default it is reported
    /// ([`ErrorKind::CreateFailed`]), and this option says "it is not, replace it".
    #[must_use]
    pub fn replace_stale(mut self, replace: bool) -> Self {
        self.replace_stale = replace;
        self
    }
}

/// What a read produced: exactly one of a message, a timeout, or an overrun.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received<T> {
    /// The next message and its sequence number.
    Message {
        /// The writer's sequence number for this message (1 for the first).
        seq: u64,
        /// The payload, or its length when it was written into the caller's buffer.
        payload: T,
    },
    /// Nothing arrived before the deadline.
    Timeout,
    /// The writer overtook this reader: `lost` messages were skipped, and the reader now
    /// stands at the newest write position.
    Overrun {
        /// How many messages this reader will never see.
        lost: u64,
    },
}

impl<T> Received<T> {
    /// The payload, if this is a message.
    pub fn message(self) -> Option<T> {
        match self {
            Received::Message { payload, .. } => Some(payload),
            _ => None,
        }
    }

    /// Applies `f` to the payload.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Received<U> {
        match self {
            Received::Message { seq, payload } => Received::Message {
                seq,
                payload: f(payload),
            },
            Received::Timeout => Received::Timeout,
            Received::Overrun { lost } => Received::Overrun { lost },
        }
    }

    /// `(seq, payload)` for a message; [`ErrorKind::Timeout`] or [`ErrorKind::Overrun`]
    /// (with the lost count as the found value) otherwise.
    ///
    /// # Errors
    /// As described.
    pub fn into_result(self) -> Result<(u64, T)> {
        match self {
            Received::Message { seq, payload } => Ok((seq, payload)),
            Received::Timeout => Err(Error::new(
                ErrorKind::Timeout,
                "no message before the deadline",
            )),
            Received::Overrun { lost } => Err(Error::new(
                ErrorKind::Overrun,
                format!("{lost} messages lost"),
            )),
        }
    }
}

/// A reader's position: ring offset R and last delivered sequence L (−1 = none yet).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor {
    r: usize,
    last: i64,
}

/// Where a read puts the payload.
pub(crate) enum Sink<'a> {
    Vec(&'a mut Vec<u8>),
    Slice(&'a mut [u8]),
}

/// One mapped memmsg or memcmd share.
///
/// The mapping is reference-counted so the foreign-waiter broadcaster can keep using it;
/// the user's handle is the `primary` one, whose drop gives up the name at once.
pub(crate) struct Ring {
    seg: SharedSegment,
    layout: RingLayout,
    lock: LockPair,
    write: NonNull<AtomicI64>,
    seq: NonNull<AtomicI64>,
    /// Start of the ring data area and its length (S + 46), checked against the mapping.
    ring: NonNull<u8>,
    ring_len: usize,
    lock_timeout: Duration,
    wait: WaitPolicy,
    waits: CondWaits,
    /// Where this handle's next write will most likely put its frame: the end of its last
    /// one. Only a hint for prefetching and for placing the frame before the lock (see
    /// `write`); never trusted as an offset.
    next_frame_hint: AtomicUsize,
    /// The global seq this handle's last write left: the other half of that guess.
    last_seq_hint: AtomicI64,
}

// SAFETY: the NonNull fields point into `seg`'s mapping, which lives at least as long as the
// Ring (its SharedSegment holds an Arc); they are only used as `&AtomicI64` (thread-safe). Segment and
// LockPair are Send+Sync.
unsafe impl Send for Ring {}
// SAFETY: see `Send`.
unsafe impl Sync for Ring {}

impl Ring {
    fn from_segment(seg: Segment, layout: RingLayout, opts: &QueueOptions) -> Result<Ring> {
        let kind = layout.kind();
        let bad = || {
            Error::new(ErrorKind::InvalidLayout, "header words out of bounds")
                .with_share(seg.name().as_str())
        };
        let write = NonNull::from(seg.atomic_i64(OFF_WRITE).ok_or_else(bad)?);
        let seq = NonNull::from(seg.atomic_i64(OFF_SEQ).ok_or_else(bad)?);
        let mutex = seg
            .range(kind.mutex_offset(), crate::layout::ring::MUTEX_SIZE)
            .ok_or_else(bad)?;
        let cond = seg
            .range(kind.cond_offset(), crate::layout::ring::COND_SIZE)
            .ok_or_else(bad)?;
        // SAFETY: both ranges were bounds-checked above, are 8-byte aligned (page-aligned
        // mapping, offsets 32/40 and 72/80), and live in `seg`, which every Ring holding this
        // LockPair (or a clone of it) keeps alive through its SharedSegment.
        let lock = unsafe { LockPair::new(mutex, cond) };
        let ring_len = layout.ring_len();
        let ring = seg
            .range(layout.ring_offset(), ring_len)
            .filter(|p| *p as usize % 8 == 0)
            .and_then(NonNull::new)
            .ok_or_else(bad)?;
        let seg = SharedSegment::new(seg);
        let waits = CondWaits::new(&seg, &lock);
        Ok(Ring {
            seg,
            layout,
            lock,
            write,
            seq,
            ring,
            ring_len,
            lock_timeout: opts.lock_timeout,
            wait: opts.wait,
            waits,
            next_frame_hint: AtomicUsize::new(0),
            last_seq_hint: AtomicI64::new(0),
        })
    }

    /// Creates the share exclusively and initialises its header; the capacity is published
    /// last with a release store, so no attacher can see a half-built header (W14).
    pub(crate) fn create(
        name: &ShareName,
        kind: RingKind,
        capacity: usize,
        opts: &QueueOptions,
    ) -> Result<Ring> {
        let layout =
            RingLayout::new(kind, capacity as u64).map_err(|e| e.with_share(name.as_str()))?;
        let replace = if opts.replace_stale {
            Replace::AnyStale
        } else {
            Replace::StaleMembus
        };
        let seg = Segment::create_replacing(name, layout.object_size(), opts.mode, replace)?;
        let ring = Ring::from_segment(seg, layout, opts)?;
        // The object is fresh and zero-filled: write = 0, seq = 0, readers = 0, ring[0] = 0
        // (the wrap marker) already hold. Only the id, the lock pair and the size are set.
        ring.word(OFF_ID)
            .store(crate::sys::random_session_id(), Ordering::Relaxed);
        // SAFETY: nobody else can use the lock pair yet: the size word is still 0, and every
        // attacher (membus or libmembus) refuses a header whose size is not S.
        unsafe { ring.lock.init(true) }.map_err(|e| {
            Error::new(
                ErrorKind::CreateFailed,
                "initialising the share's mutex and condition",
            )
            .with_share(name.as_str())
            .with_os_error(e)
        })?;
        // Release: publishes the id and the lock pair; pairs with the Acquire load of the size
        // word in `attach`.
        ring.word(OFF_SIZE)
            .store(capacity as i64, Ordering::Release);
        Ok(ring)
    }

    /// Attaches to an existing share, checking its header against the object size and the
    /// expected capacity, if any.
    pub(crate) fn attach(name: &ShareName, kind: RingKind, opts: &QueueOptions) -> Result<Ring> {
        if let Some(cap) = opts.capacity {
            RingLayout::new(kind, cap as u64).map_err(|e| e.with_share(name.as_str()))?;
        }
        let started = Instant::now();
        loop {
            let outcome = Self::attach_once(name, kind, opts);
            let initialising = match &outcome {
                Err(e) if e.kind() == ErrorKind::MapFailed && e.os_error().is_none() => true,
                Err(e)
                    if e.kind() == ErrorKind::InvalidLayout
                        && e.detail().starts_with("header capacity 0 ") =>
                {
                    true
                }
                _ => false,
            };
            if !initialising
                || started.elapsed() >= INIT_WAIT
                || !Segment::has_live_owner(name).unwrap_or(false)
            {
                let expected = match kind {
                    RingKind::Msg => ShareType::MemMsg,
                    RingKind::Cmd => ShareType::MemCmd,
                };
                return outcome.map_err(|e| explain_wrong_type(name, expected, e));
            }
            // A live membus creator is between O_EXCL and publishing the header.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn attach_once(name: &ShareName, kind: RingKind, opts: &QueueOptions) -> Result<Ring> {
        let seg = Segment::attach(name, Access::ReadWrite)?;
        let size_field = seg
            .atomic_i64(OFF_SIZE)
            .ok_or_else(|| {
                Error::new(ErrorKind::InvalidLayout, "object smaller than one word")
                    .with_share(name.as_str())
            })?
            // Acquire: pairs with the creator's Release store of the size word.
            .load(Ordering::Acquire);
        if let Some(cap) = opts.capacity {
            if size_field != 0 && size_field != cap as i64 {
                return Err(Error::new(
                    ErrorKind::SizeMismatch,
                    format!(
                        "the {} has capacity {size_field}, not the expected {cap}",
                        kind.type_name()
                    ),
                )
                .with_share(name.as_str())
                .with_sizes(cap as u64, size_field as u64));
            }
        }
        let layout = RingLayout::from_header(kind, size_field, seg.len())
            .map_err(|e| e.with_share(name.as_str()))?;
        let ring = Ring::from_segment(seg, layout, opts)?;
        // Refuse lock bytes glibc would abort or block on before any call reaches glibc.
        ring.lock.check(name.as_str())?;
        Ok(ring)
    }

    /// Attaches if the share exists, creates it otherwise (libmembus's `open(..., bCreate)`),
    /// retrying when another process wins the creation race.
    pub(crate) fn open_or_create(
        name: &ShareName,
        kind: RingKind,
        capacity: usize,
        opts: &QueueOptions,
    ) -> Result<(Ring, bool)> {
        let opts = QueueOptions {
            capacity: Some(capacity),
            ..opts.clone()
        };
        let mut last = None;
        for _ in 0..3 {
            match Self::attach(name, kind, &opts) {
                Ok(r) => return Ok((r, false)),
                Err(e) if e.kind() == ErrorKind::OpenFailed && e.errno() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
            match Self::create(name, kind, capacity, &opts) {
                Ok(r) => return Ok((r, true)),
                Err(e)
                    if e.kind() == ErrorKind::CreateFailed && e.errno() == Some(libc::EEXIST) =>
                {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::new(ErrorKind::CreateFailed, "creation race lost repeatedly")
                .with_share(name.as_str())
        }))
    }

    fn word(&self, off: usize) -> &AtomicI64 {
        debug_assert!(off <= OFF_READERS);
        // Header words below the mutex were bounds-checked at attach/create time
        // (object size = S + overhead > 128).
        self.seg
            .atomic_i64(off)
            .unwrap_or_else(|| unreachable!("header word checked at construction"))
    }

    fn write_word(&self) -> &AtomicI64 {
        // SAFETY: `write` points into the mapping owned by `self.seg` (bounds and alignment
        // checked in `from_segment`) and lives as long as `&self`.
        unsafe { self.write.as_ref() }
    }

    fn seq_word(&self) -> &AtomicI64 {
        // SAFETY: as for `write_word`.
        unsafe { self.seq.as_ref() }
    }

    /// The 8-byte word at ring offset `r`, bounds- and alignment-checked now.
    #[inline(always)]
    fn ring_word(&self, r: usize) -> Result<&AtomicI64> {
        if r % 8 != 0 || r > self.ring_len - 8 {
            return Err(self.bad_offset(r));
        }
        // SAFETY: r + 8 ≤ ring_len, and `ring` + ring_len ≤ the mapping's end (checked in
        // `from_segment`), so the word is inside the mapping owned by `self.seg`, which
        // outlives the returned borrow; `ring` is 8-aligned (page-aligned mapping, header of
        // 120 or 128 bytes) and r is a multiple of 8.
        Ok(unsafe { AtomicI64::from_ptr(self.ring.as_ptr().add(r).cast::<i64>()) })
    }

    #[cold]
    #[inline(never)]
    fn bad_offset(&self, r: usize) -> Error {
        self.invalid(format!("ring offset {r} is outside the ring or unaligned"))
    }

    /// Pointer to `len` bytes at ring offset `r`, bounds-checked now.
    #[inline(always)]
    fn ring_bytes(&self, r: usize, len: usize) -> Result<*mut u8> {
        match r.checked_add(len) {
            // SAFETY: r + len ≤ ring_len: the range is inside the mapping (see `ring_word`).
            Some(end) if end <= self.ring_len => Ok(unsafe { self.ring.as_ptr().add(r) }),
            _ => Err(self.bad_range(r, len)),
        }
    }

    #[cold]
    #[inline(never)]
    fn bad_range(&self, r: usize, len: usize) -> Error {
        self.invalid(format!("{len} bytes at ring offset {r} run past the ring"))
    }

    fn invalid(&self, detail: String) -> Error {
        Error::new(ErrorKind::InvalidLayout, detail).with_share(self.name().as_str())
    }

    pub(crate) fn name(&self) -> &ShareName {
        self.seg.name()
    }

    pub(crate) fn layout(&self) -> &RingLayout {
        &self.layout
    }

    pub(crate) fn is_creator(&self) -> bool {
        self.seg.is_creator()
    }

    pub(crate) fn session_id(&self) -> i64 {
        self.word(OFF_ID).load(Ordering::Relaxed)
    }

    /// Last sequence number issued (a relaxed snapshot).
    pub(crate) fn last_seq(&self) -> u64 {
        self.seq_word().load(Ordering::Relaxed).max(0) as u64
    }

    /// memcmd's reader count word.
    pub(crate) fn readers_word(&self) -> &AtomicI64 {
        debug_assert_eq!(self.layout.kind(), RingKind::Cmd);
        self.word(OFF_READERS)
    }

    /// Repairs the header after a peer died holding the lock (EOWNERDEAD).
    ///
    /// The write offset must be valid and the word at it must be the zero "next frame"
    /// marker. A frame sitting at the write offset and carrying the newest sequence number
    /// was never published (its writer died before advancing the write offset): the number
    /// is un-issued, so readers see neither a torn message nor a gap. This covers both
    /// membus's write order (frame, seq, write offset) and libmembus's (seq, frame, write
    /// offset). A libmembus writer that died right after bumping seq, before its frame,
    /// leaves a gap that readers report as one lost message.
    fn repair(&self) -> Result<()> {
        match self
            .layout
            .check_write(self.write_word().load(Ordering::Relaxed))
        {
            Some(w) => {
                let seq_h = self.seq_word().load(Ordering::Relaxed);
                let len_word = self.ring_word(w)?.load(Ordering::Relaxed);
                if seq_h > 0
                    && matches!(self.layout.frame_at(w, len_word), Frame::Valid { .. })
                    && self.ring_word(w + 8)?.load(Ordering::Relaxed) == seq_h
                {
                    self.seq_word().store(seq_h - 1, Ordering::Relaxed);
                }
                self.ring_word(w)?.store(0, Ordering::Relaxed);
            }
            None => {
                self.ring_word(0)?.store(0, Ordering::Relaxed);
                self.write_word().store(0, Ordering::Release);
            }
        }
        Ok(())
    }

    #[inline(always)]
    fn lock(&self) -> Result<LockGuard<'_>> {
        self.lock
            .lock(self.lock_timeout, self.name().as_str(), || self.repair())
    }
}

impl Ring {
    /// Writes one message; returns its sequence number.
    pub(crate) fn write(&self, msg: &[u8]) -> Result<u64> {
        let stride = self
            .layout
            .check_message(msg.len())
            .map_err(|e| e.with_share(self.name().as_str()))?;
        self.prefetch_next_frame(stride);
        // Where the frame goes is worked out, and bounds-checked, before the lock, from
        // where this handle's last write left the header; under the lock one comparison
        // with the header confirms it (or, when another writer came between, or this is the
        // handle's first write, it is worked out again). Readers poll the header line the
        // lock lives in, and each poll while the lock is held takes that line away from
        // this writer, whose next store to it then waits for a transfer: the shorter the
        // time from the lock to the write offset's store, the fewer such polls land in it.
        // The header line (the lock's and the write offset's) is asked for in exclusive
        // state at once, since the lock's atomic operation needs it so; the guess reads
        // nothing shared and is worked out while the line is on its way. (Guessing from the
        // header itself, read before the lock, measured slower.)
        crate::sys::cpu::prefetch_for_write(self.write.as_ptr().cast::<u8>());
        // Relaxed: hints only, confirmed under the lock.
        let guess = self
            .place_frame(
                self.next_frame_hint.load(Ordering::Relaxed) as i64,
                self.last_seq_hint.load(Ordering::Relaxed),
                stride,
            )
            .ok();
        let guard = self.lock()?;
        // Under the lock every writer's stores are ordered before ours by the mutex; the
        // atomic loads only keep the lock-free `poll` race-free.
        let w = self.write_word().load(Ordering::Relaxed);
        let h = self.seq_word().load(Ordering::Relaxed);
        let frame = match guess {
            Some(guess) if guess.w == w && guess.h == h => guess,
            _ => self.place_frame(w, h, stride)?,
        };
        if let Some(marker) = frame.wrap_marker {
            marker.store(0, Ordering::Relaxed);
        }
        let (at, seq) = (frame.at, frame.seq);
        // Frame first, then the global seq, then the write offset: a writer that dies at any
        // point leaves a state `repair` can tell apart (see there). libmembus readers read
        // only under the lock, so the order is invisible to them; membus readers read
        // without it (`try_read_unlocked`) and rely on the order and fences below.
        //
        // The frame's sequence word goes first, its length word second: a lock-free reader
        // that sees a new length also sees the new sequence word (the Release fence pairs
        // with the Acquire load of the length word in `try_read_unlocked`), so a frame
        // header being rewritten is never taken for the old frame with another length.
        frame.seq_word().store(seq, Ordering::Relaxed);
        // Release: pairs with the reader's Acquire load of the length word and with the
        // Acquire fence after its payload copy. A reader that sees any byte stored below
        // also sees this frame's sequence word, which is how it notices a write in
        // progress over what it copied.
        fence(Ordering::Release);
        frame.len_word().store(msg.len() as i64, Ordering::Relaxed);
        // SAFETY: `place_frame` checked the frame's `stride` bytes inside the ring, and
        // FRAME_HEADER + msg.len() ≤ stride (`check_message`); the mapping is writable and
        // lives as long as `self`.
        unsafe { copy_to_shared(frame.start.as_ptr().add(FRAME_HEADER), msg) };
        self.seq_word().store(seq, Ordering::Relaxed);
        // Release: pairs with the Acquire loads of the write offset in `has_data` and
        // `try_read_unlocked` (a reader that sees the new write offset sees the whole frame
        // and the new seq). This is the last store a waiter's condition depends on; the
        // SeqCst half of the waiter handshake is the fence after the unlock below, not a
        // SeqCst swap here: a locked instruction on the header line that readers poll,
        // inside the lock, measured slower.
        self.write_word()
            .store((at + stride) as i64, Ordering::Release);
        // Release: the next-frame marker below lands after the new write offset for any
        // lock-free reader that copied it (pairs with its Acquire fence after the copy).
        fence(Ordering::Release);
        frame.next_word().store(0, Ordering::Relaxed);
        drop(guard);
        // SeqCst fence: the writer's half of the waiter handshake (see `Waker::publish`):
        // after the stores of the seq and the write offset, before `after_write` loads the
        // registry's bitmap; pairs with the waiter's SeqCst registration and fence
        // (`Registry::enter`). Past the unlock it waits for no shared cache line.
        fence(Ordering::SeqCst);
        // Relaxed: hints for this handle's next write, ordered with nothing.
        self.next_frame_hint.store(at + stride, Ordering::Relaxed);
        self.last_seq_hint.store(seq, Ordering::Relaxed);
        // Waiters sleep on the global seq, stored above; wake them now that the mutex is free
        // (libmembus broadcasts under the lock; no peer can tell the difference, since a
        // waiter in the condition registered before it released the mutex).
        self.waits.after_write(self.seq_word());
        Ok(seq as u64)
    }

    /// Where a frame of `stride` bytes (from `check_message`) goes when the header holds
    /// write offset `w` and global seq `h`, as the writer algorithm places it (spec §4.5):
    /// at W when it fits before S, else at 0 after a wrap marker at W (when W is a valid
    /// offset inside the ring). Every word and byte the write stores to is bounds-checked
    /// here, once.
    #[inline(always)]
    fn place_frame(&self, w: i64, h: i64, stride: usize) -> Result<FramePlace<'_>> {
        let (at, wrap_marker) = match self.layout.place(w, stride) {
            Some(at) => (at, None),
            None => {
                let marker = match self
                    .layout
                    .check_write(w)
                    .filter(|&w| w > 0 && w < self.layout.capacity())
                {
                    Some(w) => Some(self.ring_word(w)?),
                    None => None,
                };
                (0, marker)
            }
        };
        // The frame's header, its payload and the word after it (the next frame's length
        // word, where the marker goes): `stride` + 8 bytes from `at`. `place` keeps
        // at + stride ≤ S, so this holds for every layout; it is checked all the same,
        // once, as every offset is before use.
        let Some(end) = at.checked_add(stride).and_then(|e| e.checked_add(8)) else {
            return Err(self.bad_range(at, stride));
        };
        if at % 8 != 0 || stride % 8 != 0 || stride < FRAME_HEADER || end > self.ring_len {
            return Err(self.bad_range(at, stride));
        }
        Ok(FramePlace {
            w,
            h,
            at,
            seq: h.wrapping_add(1).max(1),
            // SAFETY: at + stride + 8 ≤ ring_len: inside the mapping (see `ring_word`).
            start: unsafe { self.ring.add(at) },
            stride,
            wrap_marker,
        })
    }

    /// Asks for the cache lines the next write will most likely store to, in exclusive
    /// state, before the lock is taken: where this handle's last write ended, the line
    /// after it, and the line of the next frame's marker (`stride` on). A reader that
    /// checked the next frame's header holds those lines too, so without this the write's
    /// first stores wait for that transfer after the lock's own (stores cannot leave the
    /// store buffer past the lock's atomic operation until both are done); with it the two
    /// transfers overlap. A wrong guess (another writer moved the offset, or the ring
    /// wrapped) costs only the prefetches. Lines in between, in a longer frame, are left to
    /// the copy and the hardware prefetcher.
    #[inline(always)]
    fn prefetch_next_frame(&self, stride: usize) {
        let at = self.next_frame_hint.load(Ordering::Relaxed);
        // Only when all three lie inside the ring (a frame is at least 16 bytes, so `at` +
        // 64 < `at` + `stride` + 64 too): every address is then inside the mapping. Next to
        // the ring's end (a wrap is due) nothing is prefetched. No overflow: `at` ≤ ring_len
        // (the end of a frame) and `stride` ≤ the capacity (`check_message`).
        if at + stride + 64 < self.ring_len {
            let p = self.ring.as_ptr();
            crate::sys::cpu::prefetch_for_write(p.wrapping_add(at));
            crate::sys::cpu::prefetch_for_write(p.wrapping_add(at + 64));
            crate::sys::cpu::prefetch_for_write(p.wrapping_add(at + stride));
        }
    }

    /// A cursor at the current write position (Start::Latest) or at offset 0 (Start::Oldest).
    pub(crate) fn cursor(&self, start: Start) -> Result<Cursor> {
        match start {
            Start::Oldest => Ok(Cursor { r: 0, last: -1 }),
            Start::Latest => {
                let guard = self.lock()?;
                let w = self.write_word().load(Ordering::Relaxed);
                let last = self.seq_word().load(Ordering::Relaxed);
                drop(guard);
                let r = self
                    .layout
                    .check_write(w)
                    .ok_or_else(|| self.invalid(format!("write offset {w} is invalid")))?;
                Ok(Cursor { r, last })
            }
        }
    }

    /// Lock-free hint: is there something for `cur` to read (a message or an overrun)?
    pub(crate) fn has_data(&self, cur: &Cursor) -> bool {
        // Acquire: pairs with the writer's Release store of the write offset.
        let w = self.write_word().load(Ordering::Acquire);
        if w != cur.r as i64 {
            return true;
        }
        cur.last >= 0 && self.seq_word().load(Ordering::Relaxed) != cur.last
    }

    /// Reads the next message for `cur` into `sink`, waiting up to `timeout`.
    pub(crate) fn read(
        &self,
        cur: &mut Cursor,
        sink: &mut Sink<'_>,
        timeout: Duration,
    ) -> Result<Received<usize>> {
        // What is already there is read at once, before any clock read (two of them cost as
        // much as a read on a guest).
        if self.has_data(cur) {
            if let Some(got) = self.read_now(cur, sink)? {
                return Ok(got);
            }
        }
        if timeout.is_zero() {
            return Ok(Received::Timeout);
        }
        let now = Instant::now();
        let deadline = crate::select::deadline_from(now, timeout);
        let (spin, yield_for) = match self.wait {
            WaitPolicy::Spin(spin) => (spin, Duration::ZERO),
            WaitPolicy::SpinYield { spin, yield_for } => (spin, yield_for),
            WaitPolicy::BusyPoll => (timeout, Duration::ZERO),
        };
        // Both phases end by the deadline (and never overflow an Instant, whatever
        // the timeout).
        let spin_end = now.checked_add(spin).map_or(deadline, |t| t.min(deadline));
        let yield_end = spin_end
            .checked_add(yield_for)
            .map_or(deadline, |t| t.min(deadline));
        let mut yielding = false;
        'spin: loop {
            // While yielding, check the clock after every yield: one may give the CPU
            // away for a whole time slice.
            for _ in 0..if yielding { 1 } else { 64 } {
                if self.has_data(cur) {
                    break 'spin;
                }
                if yielding {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
            let t = Instant::now();
            if t >= yield_end {
                break;
            }
            yielding = t >= spin_end;
        }
        loop {
            if self.has_data(cur) {
                if let Some(got) = self.read_now(cur, sink)? {
                    return Ok(got);
                }
            }
            if Instant::now() >= deadline {
                return Ok(Received::Timeout);
            }
            if self.wait == WaitPolicy::BusyPoll {
                // Busy-polling never sleeps: poll on until the message or the deadline, a
                // pause apart (64 pauses between two polls were 1.6 µs on AMD Zen 4, a
                // round trip's tail), reading the clock every 64 polls.
                for _ in 0..64 {
                    if self.has_data(cur) {
                        break;
                    }
                    std::hint::spin_loop();
                }
            } else {
                crate::select::wait_ready_until(
                    &Pending {
                        ring: self,
                        cur: *cur,
                    },
                    deadline,
                );
            }
        }
    }

    /// Copies the `len`-byte payload of the frame at ring offset `r` into `sink`.
    /// `Ok(Err(room))`: a slice sink of `room` bytes is too small (nothing copied).
    #[inline(always)]
    fn copy_payload(
        &self,
        r: usize,
        len: usize,
        sink: &mut Sink<'_>,
    ) -> Result<std::result::Result<(), usize>> {
        let src = self.ring_bytes(r + FRAME_HEADER, len)?;
        match sink {
            Sink::Vec(v) => {
                v.clear();
                v.reserve(len);
                // SAFETY: `src` is bounds-checked for `len` bytes of the mapping; the spare
                // capacity holds at least `len` bytes after `reserve`.
                unsafe { copy_from_shared_uninit(src, &mut v.spare_capacity_mut()[..len]) };
                // SAFETY: the copy initialised the first `len` bytes of the spare capacity.
                unsafe { v.set_len(len) };
            }
            Sink::Slice(s) => {
                let room = s.len();
                let Some(dst) = s.get_mut(..len) else {
                    return Ok(Err(room));
                };
                // SAFETY: as above; `dst` is exactly `len` private bytes.
                unsafe { copy_from_shared(src, dst) };
            }
        }
        Ok(Ok(()))
    }

    /// One step of the reader algorithm now: without the lock when `try_read_unlocked` can
    /// vouch for what it read, else under the lock. `None` means nothing to read.
    ///
    /// Inline, with the locked step out of line: the lock-free step is a message's whole
    /// read, and each call level it passes through costs a round trip a register save and
    /// restore on the echoing side.
    #[inline(always)]
    fn read_now(&self, cur: &mut Cursor, sink: &mut Sink<'_>) -> Result<Option<Received<usize>>> {
        if let Some(got) = self.try_read_unlocked(cur, sink) {
            return Ok(Some(got));
        }
        self.read_now_locked(cur, sink)
    }

    /// `read_now` after the lock-free step declined: waits out a writer at work, then
    /// takes the step under the lock.
    #[inline(never)]
    fn read_now_locked(
        &self,
        cur: &mut Cursor,
        sink: &mut Sink<'_>,
    ) -> Result<Option<Received<usize>>> {
        if self.lock.is_held() {
            if let Some(got) = self.wait_out_writer(cur, sink) {
                return Ok(Some(got));
            }
        }
        let guard = self.lock()?;
        let got = self.try_read(cur, sink)?;
        drop(guard);
        Ok(got)
    }

    /// The lock-free read declined while the mutex is held: a writer at work makes it
    /// decline for as long as its write takes (its global seq is new, its write offset not
    /// yet). This waits that out, trying again a pause apart while the mutex stays held,
    /// rather than queue behind the writer on the mutex, which costs both sides a futex
    /// sleep and wake-up and the writer's next lock a transfer. Out of line: the common
    /// read never comes here.
    #[cold]
    #[inline(never)]
    fn wait_out_writer(&self, cur: &mut Cursor, sink: &mut Sink<'_>) -> Option<Received<usize>> {
        for _ in 0..WRITER_SPINS {
            std::hint::spin_loop();
            if let Some(got) = self.try_read_unlocked(cur, sink) {
                return Some(got);
            }
            if !self.lock.is_held() {
                return None;
            }
        }
        None
    }

    /// Reads the next message without taking the lock, when it can prove the copy is the
    /// message `cur` expects, whole; `None` leaves `cur` as it was and hands the step to the
    /// locked reader (nothing new, a first read, an overrun, a wrap exactly onto `cur`, a
    /// corrupt frame, a buffer too small, or a writer that published or started writing
    /// meanwhile).
    ///
    /// A reader under the lock sees the ring between two writes; this one reads while
    /// writers may be working, and accepts its copy only when no write can have touched it:
    ///
    /// 1. It loads the write offset W and the global seq H, and finds the frame at its
    ///    offset the way the locked reader does. The frame must carry seq `last + 1` and lie
    ///    either wholly before W in the ring (`r + stride ≤ W`) or wholly after the header
    ///    of the frame a writer would put at W next (`r ≥ W + 16`).
    /// 2. It copies the payload, then (after an Acquire fence) requires W and H unchanged
    ///    and no frame header carrying seq `H` or `H + 1` at W or at 0, the only two places
    ///    the next frame can start (a header carrying `H` at 0 is allowed when it is the
    ///    frame just copied and W ends it: see the comment at that check).
    ///
    /// Any write that could have reached the copied bytes is seen in step 2:
    /// * a published write changes H (both libraries bump it once per message);
    /// * a membus writer in progress has stored its frame's seq word (`H + 1`, at W or 0)
    ///   before a Release fence and its first payload byte; the Acquire fence after the copy
    ///   makes that word visible once any byte it wrote was copied (the copy's loads are
    ///   atomic or opaque assembly, see [`crate::sys::copy`]);
    /// * a libmembus writer in progress bumps H and then stores its frame's length and seq
    ///   (the new H) before its payload, in program order under its lock; x86 keeps stores
    ///   in order, so a copied byte of its frame implies either a changed H (bumped after
    ///   the first load of H) or a frame header carrying that H at W or 0 (bumped before).
    ///   (libmembus's own readers are untouched: they read under the lock, which every
    ///   writer of both libraries still holds for the whole write.)
    ///
    /// Step 1's geometry keeps the next frame's header, and the wrap marker a writer stores
    /// at W, out of the copied frame; a reader lapped onto garbage is caught by the seq
    /// check there or by the locked reader it falls back to. Every word and byte range is
    /// bounds-checked before use, so a hostile peer can only make this path decline.
    #[inline(always)]
    fn try_read_unlocked(&self, cur: &mut Cursor, sink: &mut Sink<'_>) -> Option<Received<usize>> {
        // Against a libmembus writer the argument above rests on x86's store order; elsewhere
        // every read takes the lock.
        if !cfg!(target_arch = "x86_64") {
            return None;
        }
        let want = cur.last.checked_add(1).filter(|_| cur.last >= 0)?;
        // Acquire: pairs with the writer's Release store of the write offset; the frames and
        // the seq stored before it are visible.
        let w_raw = self.write_word().load(Ordering::Acquire);
        let seq_h = self.seq_word().load(Ordering::Acquire);
        let w = self.layout.check_write(w_raw)?;
        if seq_h < want {
            return None;
        }
        if cur.r == w {
            // Caught up, or lapped exactly onto `cur` (W5b): the locked reader tells which.
            return None;
        }
        let cap = self.layout.capacity();
        let mut r = if cur.r >= cap { 0 } else { cur.r };
        // Acquire on each length word: pairs with the Release fence a membus writer puts
        // between a frame's seq word and its length word (see `write`).
        let mut len_word = self.ring_word(r).ok()?.load(Ordering::Acquire);
        if matches!(self.layout.frame_at(r, len_word), Frame::Wrap) {
            r = 0;
            len_word = self.ring_word(0).ok()?.load(Ordering::Acquire);
        }
        let Frame::Valid { len, stride } = self.layout.frame_at(r, len_word) else {
            return None;
        };
        if r == w || !(r + stride <= w || r >= w + FRAME_HEADER) {
            return None;
        }
        if self.ring_word(r + 8).ok()?.load(Ordering::Relaxed) != want {
            return None;
        }
        // A racing writer can only tear the copied bytes, which the checks below then
        // reject. A slice too small is left to the locked reader, which reports it.
        self.copy_payload(r, len, sink).ok()?.ok()?;
        // Acquire: pairs with the writers' Release fences (see `write`), so a copied byte of
        // a later write implies the stores checked here.
        fence(Ordering::Acquire);
        if self.seq_word().load(Ordering::Relaxed) != seq_h
            || self.write_word().load(Ordering::Relaxed) != w_raw
        {
            return None;
        }
        // A frame in progress at W or 0 carries H + 1 (a membus writer publishes H after the
        // frame) or H itself (a libmembus writer bumps H first, possibly before the load of
        // H above, so H can be unchanged while it writes). Either, there, means a writer may
        // be at work; the newest frame sitting at 0 looks the same and is read under the
        // lock instead, with one exception: the frame just copied is the newest
        // (`want == H`), at 0, and W ends it, the ring's state once a write that wrapped is
        // published (about once per lap in a stream). A libmembus writer's frame in
        // progress at 0 looks the same only while W is 0 (it moves W to 0 before it bumps
        // H) or, read before that, still at the end of the frame before, which is where
        // `cur` stands; both cases left above (`r == w`, `cur.r == w`). Any other write
        // that reaches [0, W) changes H after the load above or stores H + 1 at 0, and is
        // still caught.
        let next = seq_h.wrapping_add(1);
        let at_w = self.ring_word(w + 8).ok()?.load(Ordering::Relaxed);
        if at_w == seq_h || at_w == next {
            return None;
        }
        let at_0 = self.ring_word(8).ok()?.load(Ordering::Relaxed);
        if at_0 == next || (at_0 == seq_h && !(r == 0 && want == seq_h && w == stride)) {
            return None;
        }
        cur.r = r + stride;
        cur.last = want;
        Some(Received::Message {
            seq: want as u64,
            payload: len,
        })
    }

    /// How a waiter for `cur` sleeps: on the global seq's futex word.
    pub(crate) fn wait_spec(&self) -> crate::select::FutexSpec<'_> {
        self.waits.spec(self.seq_word())
    }

    /// With the lock held: `cur` stands at the write position. Empty, unless the writer
    /// lapped the reader exactly onto its own offset (W5b), which the global seq reveals.
    fn caught_up(cur: &mut Cursor, seq_h: i64) -> Option<Received<usize>> {
        if cur.last >= 0 && seq_h != cur.last {
            let lost = seq_h.saturating_sub(cur.last).max(0) as u64;
            cur.last = seq_h;
            return Some(Received::Overrun { lost });
        }
        None
    }

    /// With the lock held: one step of the reader algorithm (spec §4.6, with W5 fixed).
    /// `None` means nothing to read.
    fn try_read(&self, cur: &mut Cursor, sink: &mut Sink<'_>) -> Result<Option<Received<usize>>> {
        let raw_w = self.write_word().load(Ordering::Relaxed);
        let w = self.layout.check_write(raw_w).ok_or_else(|| {
            self.invalid(format!(
                "write offset {raw_w} is outside 0..={} or unaligned",
                self.layout.capacity()
            ))
        })?;
        let seq_h = self.seq_word().load(Ordering::Relaxed);
        if cur.r == w {
            return Ok(Self::caught_up(cur, seq_h));
        }
        if cur.r >= self.layout.capacity() {
            // W5c: a frame ended exactly at S; the next one is at 0. Keep `last`, so gap
            // detection stays on.
            cur.r = 0;
            if cur.r == w {
                return Ok(Self::caught_up(cur, seq_h));
            }
        }
        let (len, stride) = match self
            .layout
            .frame_at(cur.r, self.ring_word(cur.r)?.load(Ordering::Relaxed))
        {
            Frame::Valid { len, stride } => (len, stride),
            Frame::Wrap => {
                cur.r = 0;
                if cur.r == w {
                    return Ok(Self::caught_up(cur, seq_h));
                }
                let word = self.ring_word(0)?.load(Ordering::Relaxed);
                match self.layout.frame_at(0, word) {
                    Frame::Valid { len, stride } => (len, stride),
                    Frame::Wrap => {
                        return Err(
                            self.invalid(format!("the frame at ring offset 0 has length {word}"))
                        )
                    }
                }
            }
        };
        let fseq = self.ring_word(cur.r + 8)?.load(Ordering::Relaxed);
        if cur.last < 0 && fseq > 1 {
            // A reader that started at offset 0 (Start::Oldest) and finds a later message
            // there: messages 1..fseq were overwritten before it got to them. Report them
            // once; the message itself is delivered by the next call.
            cur.last = fseq - 1;
            return Ok(Some(Received::Overrun {
                lost: (fseq - 1) as u64,
            }));
        }
        if cur.last >= 0 && fseq != cur.last.wrapping_add(1) {
            let lost = seq_h.saturating_sub(cur.last).max(0) as u64;
            cur.r = w;
            cur.last = seq_h;
            return Ok(Some(Received::Overrun { lost }));
        }
        if let Err(room) = self.copy_payload(cur.r, len, sink)? {
            return Err(Error::new(
                ErrorKind::MessageTooLarge,
                format!(
                    "the next message ({len} bytes) does not fit the caller's {room}-byte \
                     buffer; it stays unread"
                ),
            )
            .with_share(self.name().as_str())
            .with_sizes(len as u64, room as u64));
        }
        cur.r += stride;
        cur.last = fseq;
        Ok(Some(Received::Message {
            seq: fseq.max(0) as u64,
            payload: len,
        }))
    }
}

/// Where one write puts its frame, worked out from the header words `w` and `h` by
/// [`Ring::place_frame`], which checked the `stride` + 8 bytes from `start` inside the
/// ring data area.
#[derive(Clone, Copy)]
struct FramePlace<'a> {
    /// The write offset this placement was worked out from.
    w: i64,
    /// The global seq this placement was worked out from.
    h: i64,
    /// The frame's ring offset.
    at: usize,
    /// The frame's sequence number (`h` + 1, skipping 0).
    seq: i64,
    /// The frame's first byte; 8-aligned.
    start: NonNull<u8>,
    /// The frame's size.
    stride: usize,
    /// Where the wrap marker goes, when the frame wraps to 0.
    wrap_marker: Option<&'a AtomicI64>,
}

impl FramePlace<'_> {
    /// The word `off` bytes into the frame (a multiple of 8, at most `stride`).
    ///
    /// # Safety
    /// `off` is 0 (the length word), 8 (the sequence word) or `stride` (the word after the
    /// frame).
    #[inline(always)]
    unsafe fn word(&self, off: usize) -> &AtomicI64 {
        debug_assert!(off % 8 == 0 && off <= self.stride);
        // SAFETY: `place_frame` checked `stride` + 8 bytes from `start` inside the mapping,
        // which lives as long as the borrowed `Ring` (longer than `&self`); off + 8 ≤
        // stride + 8 (caller's contract), and `start` + off is 8-aligned (`start` is, and
        // off is a multiple of 8).
        unsafe { AtomicI64::from_ptr(self.start.as_ptr().add(off).cast::<i64>()) }
    }

    /// The frame's length word.
    fn len_word(&self) -> &AtomicI64 {
        // SAFETY: offset 0.
        unsafe { self.word(0) }
    }

    /// The frame's sequence word.
    fn seq_word(&self) -> &AtomicI64 {
        // SAFETY: offset 8.
        unsafe { self.word(8) }
    }

    /// The word right after the frame: the next frame's length word.
    fn next_word(&self) -> &AtomicI64 {
        // SAFETY: offset `stride`.
        unsafe { self.word(self.stride) }
    }
}

/// A ring plus one reader position: the read side shared by memmsg readers and memcmd
/// handles.
pub(crate) struct RingReader {
    pub(crate) ring: Ring,
    pub(crate) cursor: Cursor,
}

impl RingReader {
    pub(crate) fn new(ring: Ring, start: Start) -> Result<RingReader> {
        let cursor = ring.cursor(start)?;
        Ok(RingReader { ring, cursor })
    }

    pub(crate) fn read(&mut self, timeout: Duration) -> Result<Received<Vec<u8>>> {
        let mut v = Vec::new();
        Ok(self
            .ring
            .read(&mut self.cursor, &mut Sink::Vec(&mut v), timeout)?
            .map(|_| v))
    }

    pub(crate) fn read_into(
        &mut self,
        buf: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<Received<usize>> {
        self.ring
            .read(&mut self.cursor, &mut Sink::Vec(buf), timeout)
    }

    pub(crate) fn read_to_slice(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<Received<usize>> {
        self.ring
            .read(&mut self.cursor, &mut Sink::Slice(buf), timeout)
    }

    pub(crate) fn poll(&self) -> bool {
        self.ring.has_data(&self.cursor)
    }

    pub(crate) fn wait_spec(&self) -> crate::select::WaitSpec<'_> {
        crate::select::WaitSpec::futex(self.ring.wait_spec())
    }
}

/// A reader position waiting for something to read: a private select source.
struct Pending<'a> {
    ring: &'a Ring,
    cur: Cursor,
}

impl crate::select::sealed::Sealed for Pending<'_> {}

impl crate::select::Selectable for Pending<'_> {
    fn is_ready(&self) -> bool {
        self.ring.has_data(&self.cur)
    }

    fn wait_spec(&self) -> crate::select::WaitSpec<'_> {
        crate::select::WaitSpec::futex(self.ring.wait_spec())
    }
}

/// Non-blocking iterator over what is readable now: yields messages and overruns, ends
/// when nothing is left (or after yielding an error).
pub struct TryIter<'a> {
    pub(crate) reader: &'a mut RingReader,
    pub(crate) done: bool,
}

impl Iterator for TryIter<'_> {
    type Item = Result<Received<Vec<u8>>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.reader.read(Duration::ZERO) {
            Ok(Received::Timeout) => {
                self.done = true;
                None
            }
            Ok(got) => Some(Ok(got)),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// The read methods shared by [`memmsg::Reader`](crate::memmsg::Reader) and
/// [`memcmd::MemCmd`](crate::memcmd::MemCmd), generated once for both.
macro_rules! reader_methods {
    () => {
        /// Reads the next message, waiting up to `timeout` (zero: do not wait).
        ///
        /// Returns exactly one of [`Received::Message`], [`Received::Timeout`] or
        /// [`Received::Overrun`] (with how many messages were lost; the reader then stands at
        /// the newest write position). A waiting reader first polls the write position as
        /// its [`WaitPolicy`](crate::WaitPolicy) says (spin, then yield; or busy-poll), then
        /// sleeps on a futex that membus writers wake; against a libmembus
        /// writer, which wakes nobody, it polls every millisecond once it has seen one of its
        /// messages arrive unannounced (see [`select`](crate::select) for the details).
        ///
        /// A reader takes no lock for the usual step, the next message in order: it copies
        /// the frame and then checks that no writer published or started writing over it
        /// meanwhile (the lock stays with the writers, so a stalled writer holding it does
        /// not delay reads of what is already published). The first read of a reader
        /// started at the oldest message, overruns, and a read that overlapped a write take
        /// the lock, as libmembus's reader always does.
        ///
        /// # Errors
        /// [`ErrorKind::LockTimeout`]/[`ErrorKind::LockFailed`] when the share's lock cannot
        /// be taken; [`ErrorKind::InvalidLayout`] when the header or a frame is corrupt.
        pub fn read(
            &mut self,
            timeout: std::time::Duration,
        ) -> $crate::Result<$crate::Received<Vec<u8>>> {
            self.reader.read(timeout)
        }

        /// Like [`read`](Self::read), writing the payload into `buf` (cleared first) and
        /// returning its length. Allocates only when `buf`'s capacity is too small. When
        /// no message is returned, `buf`'s contents are unspecified.
        ///
        /// # Errors
        /// As for [`read`](Self::read).
        pub fn read_into(
            &mut self,
            buf: &mut Vec<u8>,
            timeout: std::time::Duration,
        ) -> $crate::Result<$crate::Received<usize>> {
            self.reader.read_into(buf, timeout)
        }

        /// Like [`read`](Self::read), copying the payload into `buf` without allocating.
        ///
        /// # Errors
        /// As for [`read`](Self::read), and [`ErrorKind::MessageTooLarge`] (expected = the
        /// message length, found = `buf.len()`) when the message does not fit; the message
        /// then stays unread, so a larger buffer can take it. When no message is returned,
        /// `buf`'s contents are unspecified.
        pub fn read_to_slice(
            &mut self,
            buf: &mut [u8],
            timeout: std::time::Duration,
        ) -> $crate::Result<$crate::Received<usize>> {
            self.reader.read_to_slice(buf, timeout)
        }

        /// Whether a read would find something now (a message or an overrun), without
        /// taking the lock. A hint: it can be stale either way by the time you act on it.
        pub fn poll(&self) -> bool {
            self.reader.poll()
        }

        /// Blocks until [`poll`](Self::poll) is true or `timeout` passes, without
        /// consuming anything; returns `poll()`. Sleeps as [`read`](Self::read) does. Also a
        /// source for [`select`](crate::select::select).
        pub fn wait_ready(&self, timeout: std::time::Duration) -> bool {
            $crate::select::wait_ready(self, timeout)
        }

        /// Waits for the next message or overrun without blocking a thread (no timeout:
        /// combine it with a timer, e.g. `tokio::time::timeout`). Cancellation-safe: the
        /// message is taken only in the poll that returns it, so a dropped future loses
        /// nothing. See [`aio`](crate::aio).
        ///
        /// # Errors
        /// As for [`read`](Self::read).
        #[cfg(feature = "async")]
        pub async fn read_async(&mut self) -> $crate::Result<$crate::Received<Vec<u8>>> {
            loop {
                match self.read(std::time::Duration::ZERO)? {
                    $crate::Received::Timeout => $crate::aio::ready(&*self).await,
                    got => return Ok(got),
                }
            }
        }

        /// The messages (and overruns) as a [`Stream`](crate::aio::Stream) that never
        /// ends, each item as from [`read_async`](Self::read_async).
        #[cfg(feature = "async")]
        pub fn stream(
            &mut self,
        ) -> $crate::aio::ItemStream<'_, Self, $crate::Result<$crate::Received<Vec<u8>>>> {
            $crate::aio::ItemStream::new(self, |r| {
                Box::pin(async move {
                    let item = r.read_async().await;
                    (item, r)
                })
            })
        }

        /// Iterates over what is readable now without waiting.
        pub fn try_iter(&mut self) -> $crate::TryIter<'_> {
            $crate::TryIter {
                reader: &mut self.reader,
                done: false,
            }
        }
    };
}
pub(crate) use reader_methods;
