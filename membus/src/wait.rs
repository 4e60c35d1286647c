//! Waiting that no dead peer can wedge: waiter registries, companion objects, and waking
//! foreign waiters off the writer's thread.
//!
//! ## Why membus waiters stay out of the glibc condition
//!
//! memmsg, memcmd and memkv headers embed a process-shared glibc `pthread_cond_t`, and
//! libmembus/pymembus waiters sleep in `pthread_cond_timedwait` on it. glibc's condition
//! (2.25 and later, up to at least 2.36 as shipped here) keeps per-group reference counts:
//! a waiter holds one while it sleeps in the kernel, and `pthread_cond_broadcast` waits,
//! without a timeout and holding the condition's internal lock, until every waiter of the
//! group it closes has dropped its reference. A waiter killed while it sleeps never drops
//! it, so every later broadcast on that share blocks for ever, with the writer's mutex held
//! in libmembus's case. No library can undo that from outside.
//!
//! So membus waiters never register in the condition. They sleep on a futex word that
//! every writer changes anyway (the low half of the global sequence of memmsg/memcmd, of
//! memkv's epoch, of a media ring's publish counter) and register in a [`Registry`] so that
//! membus writers know to issue a `FUTEX_WAKE`:
//!
//! - media rings keep the registry in their reserved header words (libmembus writes them 0
//!   at creation and never reads them);
//! - memmsg, memcmd and memkv have no spare header bytes, so the registry lives in a
//!   *companion object* `<name>.membus-wait` (one page), which libmembus and pymembus never
//!   open. A membus creator makes it (replacing a stale one) and removes it with the share;
//!   a membus process that attaches to a share made by libmembus or pymembus creates it
//!   if it is missing and leaves it in place (`membus rm` removes it with the share).
//!
//! A registry is a bitmap word plus one slot per waiting *process* holding its process id.
//! A process sets its bit while at least one of its threads waits. A process killed while
//! waiting leaves its bit set; writers notice when their wakes keep finding nobody asleep
//! and clear the bits of processes that no longer exist ([`Registry::repair`]), so a dead
//! waiter costs a few spare wake-ups and nothing else.
//!
//! ## Foreign writers and foreign waiters
//!
//! A libmembus or pymembus writer only broadcasts the condition, which membus waiters do
//! not sleep in: they see such a writer's messages when their safety-net timeout ends, and
//! from then on poll every millisecond (what libmembus itself does), per handle. A handle
//! attached to a share with no live membus owner (made by libmembus or pymembus) polls from
//! the start.
//!
//! A membus writer still wakes libmembus/pymembus waiters: when the condition's waiter
//! count says someone sleeps in it, the broadcast is handed to a helper thread of that
//! share ([`ForeignWake`]). If a dead foreign waiter makes the broadcast hang, only that
//! helper thread hangs; the writer never waits for it, later writes coalesce into the
//! pending broadcast, and membus readers are unaffected.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::name::ShareName;
use crate::select::FutexSpec;
use crate::sys::futex::{self, Word};
use crate::sys::pthread::LockPair;
use crate::sys::shm::{Access, FileId, Segment, SharedSegment};

/// Most process slots a registry can have (bits 0..62 of the bitmap word).
const MAX_SLOTS: usize = 63;
/// Consecutive wakes that found nobody asleep before a writer looks for dead waiters.
const REPAIR_AFTER: u32 = 64;

/// A waiter registry inside shared memory: which processes have a thread waiting.
#[derive(Clone, Copy)]
pub(crate) struct Registry<'a> {
    /// The object holding it and the offset of `active` there: the process-local key.
    key: (FileId, usize),
    /// Bit i set: the process in slot i has at least one thread waiting.
    active: &'a AtomicI64,
    /// Process ids, 0 = free. A slot is claimed by a compare-exchange from 0.
    pids: &'a [AtomicI64],
}

impl<'a> Registry<'a> {
    /// A registry over `active` and `pids` (at most 63 slots are used), which live in the
    /// object `host` at offset `offset`.
    pub(crate) fn new(
        host: FileId,
        offset: usize,
        active: &'a AtomicI64,
        pids: &'a [AtomicI64],
    ) -> Self {
        Registry {
            key: (host, offset),
            active,
            pids: &pids[..pids.len().min(MAX_SLOTS)],
        }
    }

    /// Registers the calling thread as a waiter; `None` when every slot is taken by live
    /// processes (the caller then polls). Deregisters when the returned guard drops.
    ///
    /// The caller must issue a SeqCst fence after this and only then load the word it
    /// is about to sleep on (see [`Waker::publish`]).
    pub(crate) fn enter(&self) -> Option<Entered<'a>> {
        let me = i64::from(std::process::id());
        let mut table = lock(&LOCAL);
        // After a fork the child inherits the parent's entries; their slots are not ours.
        table.retain(|e| e.pid == me);
        if let Some(e) = table.iter_mut().find(|e| e.key == self.key) {
            e.threads += 1;
            return Some(Entered { reg: *self });
        }
        let slot = self.claim(me).or_else(|| {
            self.repair();
            self.claim(me)
        })?;
        // SeqCst: the registration must precede, in the single total order, the waiter's
        // fence and its load of the futex word; pairs with the writer's SeqCst swap (or
        // store and SeqCst fence) and its load of `active` in `Waker::publish`.
        self.active.fetch_or(1 << slot, Ordering::SeqCst);
        table.push(LocalEntry {
            key: self.key,
            pid: me,
            slot,
            threads: 1,
        });
        Some(Entered { reg: *self })
    }

    fn claim(&self, me: i64) -> Option<usize> {
        self.pids.iter().position(|p| {
            // AcqRel: a slot changes hands only through this exchange and the release in
            // `Entered::drop`; no data is published through it.
            p.load(Ordering::Relaxed) == 0
                && p.compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
        })
    }

    /// Frees the slots of processes that no longer exist, clearing their bits. Returns
    /// how many were freed.
    pub(crate) fn repair(&self) -> usize {
        let mut freed = 0;
        for (i, p) in self.pids.iter().enumerate() {
            let pid = p.load(Ordering::Acquire);
            if pid != 0 && !crate::sys::process_alive(pid) {
                // Bit first, then the slot: nobody can claim the slot while it still holds
                // the dead id, so the bit cleared here is the dead process's.
                self.active.fetch_and(!(1 << i), Ordering::AcqRel);
                if p.compare_exchange(pid, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    freed += 1;
                }
            }
        }
        freed
    }

    /// Whether any process is registered (SeqCst: see [`Waker::publish`]).
    fn anyone(&self) -> bool {
        self.active.load(Ordering::SeqCst) != 0
    }
}

/// One process-local registration: the slot this process holds and how many of its
/// threads wait.
struct LocalEntry {
    key: (FileId, usize),
    pid: i64,
    slot: usize,
    threads: usize,
}

static LOCAL: Mutex<Vec<LocalEntry>> = Mutex::new(Vec::new());

/// A poisoned lock only means a panic elsewhere; every update here is a single push,
/// retain or counter change, so the data stays consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A thread's registration; deregisters on drop.
pub(crate) struct Entered<'a> {
    reg: Registry<'a>,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        let me = i64::from(std::process::id());
        let mut table = lock(&LOCAL);
        let Some(at) = table
            .iter()
            .position(|e| e.key == self.reg.key && e.pid == me)
        else {
            return;
        };
        table[at].threads -= 1;
        if table[at].threads > 0 {
            return;
        }
        let slot = table.swap_remove(at).slot;
        // Bit first, then the slot (see `Registry::repair`). Relaxed: writers only compare
        // the bitmap with zero; a stale bit costs one spare wake.
        self.reg.active.fetch_and(!(1 << slot), Ordering::Relaxed);
        if let Some(p) = self.reg.pids.get(slot) {
            let _ = p.compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
}

/// A writer's side of the registry: wakes registered waiters after a publish, and repairs
/// the registry when its wakes keep finding nobody.
#[derive(Default)]
pub(crate) struct Waker {
    idle_wakes: AtomicU32,
}

impl Waker {
    /// Call after the last store a waiter's condition depends on, which must be a SeqCst
    /// read-modify-write (the media and memkv writers use `swap(_, SeqCst)`) or be followed
    /// by a SeqCst fence (the memmsg/memcmd writers, after their unlock), with the futex
    /// word changed at or before it: wakes every waiter sleeping on `word` if any process is
    /// registered.
    ///
    /// That SeqCst swap (or fence), this SeqCst load of the bitmap, and the waiter's SeqCst
    /// registration plus SeqCst fence (see [`Registry::enter`]) make a Dekker pair: in the
    /// single total order either this load comes after the waiter's registration and sees
    /// its bit, or the swap (fence) comes before the waiter's fence and the waiter's loads
    /// after it see every store up to the swap (its condition then holds, or the futex word
    /// moved and the kernel's compare refuses to sleep on the old value). Where the swap
    /// costs what a fence would, it serves as the release store the writer needs anyway.
    pub(crate) fn publish(&self, word: Word<'_>, reg: Option<&Registry<'_>>) {
        let Some(reg) = reg else {
            return;
        };
        if !reg.anyone() {
            return;
        }
        if futex::wake(word, u32::MAX) > 0 {
            self.idle_wakes.store(0, Ordering::Relaxed);
        } else if self.idle_wakes.fetch_add(1, Ordering::Relaxed) + 1 >= REPAIR_AFTER {
            // Registered but never asleep: a waiter between registering and sleeping, one
            // that polls, or one that died. Only the dead are removed.
            self.idle_wakes.store(0, Ordering::Relaxed);
            reg.repair();
        }
    }
}

/// The futex word of a 64-bit header word: its low half (little-endian).
pub(crate) fn low_half(word: &AtomicI64) -> Word<'_> {
    // SAFETY: `word` is an 8-byte aligned atomic inside a mapping borrowed for the returned
    // lifetime; on little-endian targets (checked in `select`) its first 4 bytes are the low
    // half, 4-byte aligned and mapped as long as the word is. Only the kernel reads it.
    unsafe { Word::from_ptr(word.as_ptr().cast::<u32>()) }
}

// ---------------------------------------------------------------------------------------
// Companion objects.

/// Suffix of a companion object's name.
pub(crate) const COMPANION_SUFFIX: &str = ".membus-wait";
/// Size of a companion object.
const COMPANION_SIZE: usize = 4096;
/// First word of a companion object.
const COMPANION_MAGIC: i64 = i64::from_le_bytes(*b"MBWAIT01");
const OFF_MAGIC: usize = 0;
const OFF_ACTIVE: usize = 8;
const OFF_PIDS: usize = 16;

/// Removes the share `name` and its companion object, if any. `Ok(false)` when the share
/// did not exist.
pub(crate) fn remove_with_companion(name: &ShareName) -> crate::Result<bool> {
    let removed = Segment::remove(name)?;
    if let Some(c) = Companion::name_for(name) {
        let _ = Segment::remove(&c);
    }
    let _ = crate::mirror::MirrorNote::remove(name);
    Ok(removed)
}

/// The companion object of a memmsg, memcmd or memkv share: its waiter registry.
pub(crate) struct Companion {
    seg: Segment,
}

impl Companion {
    /// The companion's name, if it fits in a share name.
    pub(crate) fn name_for(share: &ShareName) -> Option<ShareName> {
        ShareName::new(&format!("{}{COMPANION_SUFFIX}", share.as_str())).ok()
    }

    /// For the creator of `share`: removes any companion left by an earlier share of the
    /// same name and creates a fresh one, owned by this handle (removed with it).
    pub(crate) fn create(share: &ShareName, mode: u32) -> Option<Companion> {
        let name = Self::name_for(share)?;
        let _ = Segment::remove(&name);
        match Segment::create(&name, COMPANION_SIZE, mode) {
            Ok(seg) => Companion::checked(seg),
            // Another process attached to the new share first and made it: use that one.
            Err(_) => Self::attach(&name),
        }
    }

    /// For an attacher: the existing companion, or a new one (not owned: it stays when
    /// this handle goes) made with the main object's permission bits.
    pub(crate) fn open(main: &Segment) -> Option<Companion> {
        let name = Self::name_for(main.name())?;
        if let Some(c) = Self::attach(&name) {
            return Some(c);
        }
        let mode = main.mode().ok()?;
        match Segment::create(&name, COMPANION_SIZE, mode) {
            Ok(seg) => {
                seg.disown();
                Companion::checked(seg)
            }
            Err(_) => Self::attach(&name),
        }
    }

    fn attach(name: &ShareName) -> Option<Companion> {
        Segment::attach(name, Access::ReadWrite)
            .ok()
            .and_then(Companion::checked)
    }

    /// Accepts an object of the right size whose magic is set (or sets it on a fresh one).
    fn checked(seg: Segment) -> Option<Companion> {
        if seg.len() < COMPANION_SIZE {
            return None;
        }
        let magic = seg.atomic_i64(OFF_MAGIC)?;
        // Relaxed: the magic guards against foreign bytes, it publishes nothing.
        match magic.compare_exchange(0, COMPANION_MAGIC, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => {}
            Err(m) if m == COMPANION_MAGIC => {}
            Err(_) => return None,
        }
        Some(Companion { seg })
    }

    /// Whether a waiter may be registered: the registry's bitmap word (SeqCst, the load
    /// [`Registry`]'s own check makes; see [`Waker::publish`]), read without building the
    /// registry, so that a writer with nobody waiting skips it. `true` when the word is out
    /// of range (the full check then decides).
    #[inline]
    pub(crate) fn maybe_waiters(&self) -> bool {
        self.seg
            .atomic_i64(OFF_ACTIVE)
            .is_none_or(|active| active.load(Ordering::SeqCst) != 0)
    }

    /// The registry inside.
    pub(crate) fn registry(&self) -> Option<Registry<'_>> {
        Some(Registry::new(
            self.seg.file_id(),
            OFF_ACTIVE,
            self.seg.atomic_i64(OFF_ACTIVE)?,
            self.seg.atomic_i64_slice(OFF_PIDS, MAX_SLOTS)?,
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Waking foreign waiters.

/// Broadcasts a share's glibc condition for libmembus/pymembus waiters, on a helper thread
/// of its own, so that a broadcast blocked by a dead foreign waiter never holds up a
/// writer.
pub(crate) struct ForeignWake {
    inner: Arc<ForeignInner>,
}

struct ForeignInner {
    lock: LockPair,
    /// Keeps the mapping `lock` points into alive while the helper thread runs.
    _map: Arc<Segment>,
    state: Mutex<ForeignState>,
    cv: Condvar,
}

#[derive(Default)]
struct ForeignState {
    /// A broadcast is requested and not yet started.
    pending: bool,
    /// The helper thread exists.
    running: bool,
    /// When the broadcast in progress started.
    busy_since: Option<Instant>,
}

/// A helper thread with nothing to do leaves after this.
const HELPER_IDLE: Duration = Duration::from_secs(5);

impl ForeignWake {
    /// For the condition of `lock`, which lives in `map`.
    pub(crate) fn new(lock: LockPair, map: Arc<Segment>) -> ForeignWake {
        ForeignWake {
            inner: Arc::new(ForeignInner {
                lock,
                _map: map,
                state: Mutex::new(ForeignState::default()),
                cv: Condvar::new(),
            }),
        }
    }

    /// After a write: if libmembus/pymembus waiters sleep in the condition, makes sure a
    /// broadcast follows. Never blocks on the condition itself; requests made while one is
    /// pending (or hanging) merge into it.
    #[inline]
    pub(crate) fn after_write(&self) {
        if self.inner.lock.cond_has_waiters() {
            self.request_broadcast();
        }
    }

    /// The rest of [`after_write`](Self::after_write), when foreign waiters sleep (out of
    /// line: a ring without them never comes here).
    #[cold]
    #[inline(never)]
    fn request_broadcast(&self) {
        let mut st = lock(&self.inner.state);
        if st.pending {
            return;
        }
        st.pending = true;
        if st.running {
            drop(st);
            self.inner.cv.notify_one();
            return;
        }
        st.running = true;
        drop(st);
        let inner = Arc::clone(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("membus-broadcast".into())
            .spawn(move || inner.run());
        if spawned.is_err() {
            // No thread to be had: foreign waiters then rely on their own timeouts.
            let mut st = lock(&self.inner.state);
            st.running = false;
            st.pending = false;
        }
    }
}

impl ForeignInner {
    fn run(&self) {
        loop {
            let mut st = lock(&self.state);
            while !st.pending {
                let (g, timeout) = self
                    .cv
                    .wait_timeout(st, HELPER_IDLE)
                    .unwrap_or_else(PoisonError::into_inner);
                st = g;
                if timeout.timed_out() && !st.pending {
                    st.running = false;
                    return;
                }
            }
            st.pending = false;
            st.busy_since = Some(Instant::now());
            drop(st);
            // May block for ever if a foreign waiter died in the condition; then this thread
            // stays here, `pending` stays set by later writes, and nothing else waits.
            self.lock.broadcast();
            lock(&self.state).busy_since = None;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The waiting state of a memmsg, memcmd or memkv handle.

/// Everything a memmsg/memcmd/memkv handle needs to wait and to wake: its companion's
/// registry, what it learned about the writers, and its foreign-waiter broadcaster.
pub(crate) struct CondWaits {
    /// The share's identity and mapping address, for futex word keys.
    share: (FileId, usize),
    companion: Option<Companion>,
    polling_writer: AtomicBool,
    waker: Waker,
    foreign: ForeignWake,
}

impl CondWaits {
    /// For a handle on `seg` whose mutex/condition pair is `lock`. A creator makes a fresh
    /// companion; an attacher opens (or makes) the existing one and, when the share has no
    /// live membus owner (libmembus/pymembus made it), starts out polling.
    pub(crate) fn new(seg: &SharedSegment, lock: &LockPair) -> CondWaits {
        let created = seg.is_creator();
        let companion = if created {
            seg.mode()
                .ok()
                .and_then(|mode| Companion::create(seg.name(), mode))
        } else {
            Companion::open(seg)
        };
        let polling = !created && !Segment::has_live_owner(seg.name()).unwrap_or(false);
        CondWaits {
            share: (seg.file_id(), seg.base() as usize),
            companion,
            polling_writer: AtomicBool::new(polling),
            waker: Waker::default(),
            foreign: ForeignWake::new(lock.clone(), seg.mapping()),
        }
    }

    fn registry(&self) -> Option<Registry<'_>> {
        self.companion.as_ref().and_then(Companion::registry)
    }

    /// After a write whose last predicate store was a SeqCst swap or was followed by a
    /// SeqCst fence (see [`Waker::publish`]), and whose change to `word` (the futex word's
    /// 64-bit home) came at or before it, with the share's mutex released: wakes membus
    /// waiters, and has libmembus/pymembus waiters woken off this thread.
    #[inline]
    pub(crate) fn after_write(&self, word: &AtomicI64) {
        if let Some(c) = &self.companion {
            if c.maybe_waiters() {
                self.waker.publish(low_half(word), c.registry().as_ref());
            }
        }
        self.foreign.after_write();
    }

    /// How a waiter on this handle sleeps until `word` changes.
    pub(crate) fn spec<'a>(&'a self, word: &'a AtomicI64) -> FutexSpec<'a> {
        FutexSpec {
            seq: word,
            registry: self.registry(),
            polling_writer: &self.polling_writer,
            key: (
                self.share.0,
                (word.as_ptr() as usize).wrapping_sub(self.share.1),
            ),
            safety: crate::select::SAFETY_MULTI_WRITER,
        }
    }
}
