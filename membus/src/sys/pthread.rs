//! Process-shared glibc mutex and condition that live inside a share (spec §2).
//!
//! libmembus builds one `pthread_mutex_t` (40 bytes) and one `pthread_cond_t` (48 bytes) in
//! the header of memmsg, memcmd and memkv shares. membus drives them with glibc's own
//! functions on the mapped memory and never re-implements their futex protocol.
//!
//! membus locks the mutex as libmembus does, but never *waits* on the condition: a waiter
//! killed inside `pthread_cond_timedwait` wedges every later broadcast (see
//! [`crate::wait`]). It only broadcasts it, for libmembus/pymembus waiters, from a helper
//! thread ([`crate::wait::ForeignWake`]).

use std::io;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::layout::pthread::{
    check_cond, check_mutex, check_mutex_words, mutex_off, CondProblem, MutexWords,
};
use crate::sys::clock::realtime_deadline;

/// Size of glibc's `pthread_mutex_t` on x86_64 (spec §2.1).
pub(crate) const MUTEX_SIZE: usize = 40;
/// Size of glibc's `pthread_cond_t` on x86_64 (spec §2.1).
pub(crate) const COND_SIZE: usize = 48;

#[cfg(target_arch = "x86_64")]
const _: () = {
    assert!(std::mem::size_of::<libc::pthread_mutex_t>() == MUTEX_SIZE);
    assert!(std::mem::size_of::<libc::pthread_cond_t>() == COND_SIZE);
};

/// Offset of `__lock` (the futex word) in glibc's x86_64 `pthread_mutex_t`.
const MUTEX_LOCK: usize = 0;
/// Offset of `__owner` (the owner's thread id) in glibc's x86_64 `pthread_mutex_t`.
const MUTEX_OWNER: usize = 8;
/// The thread-id bits of a mutex's lock word (the kernel's `FUTEX_TID_MASK`); the others
/// are flags (`FUTEX_WAITERS`, `FUTEX_OWNER_DIED`). A normal mutex's word is 0, 1 or 2.
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// How many pauses a locker polls a held mutex before it sleeps on it: about 3 µs on AMD
/// Zen 4 (25 ns per pause, measured), and longer on Intel cores since Skylake, whose pause
/// takes about 140 cycles.
const LOCK_SPINS: u32 = 128;
/// Offset of `__wrefs` in glibc's (2.25+) `pthread_cond_t`: bit 0 process-shared, bit 1
/// CLOCK_MONOTONIC, bit 2 wake request, waiter references from bit 3 up.
const COND_WREFS: usize = 36;

/// A mutex/condition pair inside a mapping.
///
/// Holds raw pointers into a segment owned by the same handle; see [`LockPair::new`]. A
/// clone points at the same objects; whoever holds it must keep the mapping alive as
/// `new`'s contract says (handles that share a mapping hold it through an `Arc`).
pub(crate) struct LockPair {
    mutex: NonNull<libc::pthread_mutex_t>,
    cond: NonNull<libc::pthread_cond_t>,
    /// After a lock timeout whose owner had died: the mutex's state then ([`lock_state`]).
    /// While it stays so, `lock` fails at once instead of waiting out its timeout again.
    /// 0: not known dead.
    ///
    /// [`lock_state`]: LockPair::lock_state
    dead_owner: AtomicU64,
}

impl Clone for LockPair {
    fn clone(&self) -> LockPair {
        LockPair {
            mutex: self.mutex,
            cond: self.cond,
            dead_owner: AtomicU64::new(self.dead_owner.load(Ordering::Relaxed)),
        }
    }
}

// SAFETY: the pointers refer to process-shared pthread objects in shared memory, which are
// designed to be used from any thread of any process; the owning handle keeps the mapping
// alive for as long as the LockPair lives.
unsafe impl Send for LockPair {}
// SAFETY: see `Send`; all access goes through glibc's thread-safe pthread functions.
unsafe impl Sync for LockPair {}

fn os(rc: libc::c_int) -> io::Error {
    io::Error::from_raw_os_error(rc)
}

impl LockPair {
    /// # Safety
    /// `mutex` must point to `MUTEX_SIZE` and `cond` to `COND_SIZE` 8-byte-aligned bytes of
    /// a writable shared mapping that outlives the returned value (the caller stores both in
    /// the handle that owns the mapping, and drops the LockPair no later than the mapping).
    pub(crate) unsafe fn new(mutex: *mut u8, cond: *mut u8) -> LockPair {
        debug_assert!(mutex as usize % 8 == 0 && cond as usize % 8 == 0);
        LockPair {
            // SAFETY: the caller guarantees non-null pointers into a live mapping.
            mutex: unsafe { NonNull::new_unchecked(mutex.cast()) },
            // SAFETY: as above.
            cond: unsafe { NonNull::new_unchecked(cond.cast()) },
            dead_owner: AtomicU64::new(0),
        }
    }

    /// The 4-byte word at `off` of the mutex (`off` ≤ 36, a multiple of 4).
    fn mutex_word(&self, off: usize) -> &AtomicI32 {
        debug_assert!(off % 4 == 0 && off + 4 <= MUTEX_SIZE);
        // SAFETY: the mutex is MUTEX_SIZE bytes, 8-aligned, mapped for as long as `self`
        // lives (constructor contract); `off` is in bounds and 4-aligned; glibc and peers
        // access these words atomically, and AtomicI32 accepts any bit pattern.
        unsafe { AtomicI32::from_ptr(self.mutex.as_ptr().cast::<u8>().add(off).cast()) }
    }

    /// The condition's `__wrefs` word.
    #[inline]
    fn cond_wrefs(&self) -> &AtomicU32 {
        // SAFETY: as for `mutex_word`: the condition is COND_SIZE bytes, 8-aligned and
        // mapped while `self` lives; COND_WREFS + 4 ≤ COND_SIZE and is 4-aligned.
        unsafe { AtomicU32::from_ptr(self.cond.as_ptr().cast::<u8>().add(COND_WREFS).cast()) }
    }

    /// Whether any thread (of any process) sleeps in the condition: its waiter reference
    /// count is non-zero. membus never waits there, so these are libmembus/pymembus
    /// waiters (or dead ones).
    #[inline]
    pub(crate) fn cond_has_waiters(&self) -> bool {
        // Relaxed: a waiter registers under the mutex before it releases it, and the writer
        // asking this has taken and released the mutex since, which orders the two.
        self.cond_wrefs().load(Ordering::Relaxed) >> 3 != 0
    }

    /// Wakes every thread waiting on the condition. Called without holding the mutex, from
    /// a helper thread ([`crate::wait::ForeignWake`]): with a dead waiter in the condition
    /// glibc's broadcast can block for ever. A condition that is not process-shared is left
    /// alone (glibc would wake only this process, where nobody waits on it).
    pub(crate) fn broadcast(&self) {
        if self.cond_wrefs().load(Ordering::Relaxed) & 1 == 0 {
            return;
        }
        // Hostile condition bytes never reach glibc; foreign waiters then rely on their
        // own timeouts.
        if self.check_cond().is_err() {
            return;
        }
        // SAFETY: the cond pointer is valid (constructor contract); glibc allows a broadcast
        // without holding the associated mutex.
        let rc = unsafe { libc::pthread_cond_broadcast(self.cond.as_ptr()) };
        debug_assert_eq!(rc, 0, "pthread_cond_broadcast");
    }

    /// Whether the mutex is locked, and by which thread, as one word (see `dead_owner`);
    /// 0 when it is unlocked. The waiters bit of the lock word is left out: other lockers
    /// flip it while the holder stays the same.
    fn lock_state(&self) -> u64 {
        // Relaxed: a snapshot compared for equality only.
        let locked = self.mutex_word(MUTEX_LOCK).load(Ordering::Relaxed) != 0;
        let o = self.mutex_word(MUTEX_OWNER).load(Ordering::Relaxed) as u32;
        if locked {
            1 | (u64::from(o) << 32)
        } else {
            0
        }
    }

    /// After a timeout: whether the mutex is still held by a thread that no longer exists.
    fn owner_is_dead(&self) -> Option<i32> {
        let owner = self.mutex_word(MUTEX_OWNER).load(Ordering::Relaxed);
        let locked = self.mutex_word(MUTEX_LOCK).load(Ordering::Relaxed) != 0;
        (locked && owner > 0 && !crate::sys::process_alive(i64::from(owner))).then_some(owner)
    }

    /// Builds the objects in place: a process-shared (and, if `robust`, robust) mutex and a
    /// process-shared condition on CLOCK_REALTIME, as libmembus's Boost does.
    ///
    /// # Safety
    /// No other thread or process may use the objects until this returns (the creator calls
    /// it before it publishes the share's header).
    pub(crate) unsafe fn init(&self, robust: bool) -> io::Result<()> {
        // SAFETY: attribute objects are local and initialised by the *_init calls before use;
        // the mutex/cond pointers are valid and unused by anyone else (caller's contract).
        unsafe {
            let mut ma: libc::pthread_mutexattr_t = std::mem::zeroed();
            let mut rc = libc::pthread_mutexattr_init(&mut ma);
            if rc != 0 {
                return Err(os(rc));
            }
            rc = libc::pthread_mutexattr_setpshared(&mut ma, libc::PTHREAD_PROCESS_SHARED);
            if rc == 0 && robust {
                rc = libc::pthread_mutexattr_setrobust(&mut ma, libc::PTHREAD_MUTEX_ROBUST);
            }
            if rc == 0 {
                rc = libc::pthread_mutex_init(self.mutex.as_ptr(), &ma);
            }
            libc::pthread_mutexattr_destroy(&mut ma);
            if rc != 0 {
                return Err(os(rc));
            }
            let mut ca: libc::pthread_condattr_t = std::mem::zeroed();
            rc = libc::pthread_condattr_init(&mut ca);
            if rc != 0 {
                return Err(os(rc));
            }
            rc = libc::pthread_condattr_setpshared(&mut ca, libc::PTHREAD_PROCESS_SHARED);
            if rc == 0 {
                rc = libc::pthread_cond_init(self.cond.as_ptr(), &ca);
            }
            libc::pthread_condattr_destroy(&mut ca);
            if rc != 0 {
                return Err(os(rc));
            }
        }
        Ok(())
    }

    /// Locks the mutex, waiting at most `timeout` (as an absolute CLOCK_REALTIME deadline,
    /// like libmembus's 5 s).
    ///
    /// When the previous owner died holding the lock (EOWNERDEAD on a robust mutex),
    /// `recover` runs while the lock is held, to validate and repair the protected state;
    /// the mutex is then made consistent whatever `recover` returned, so other processes are
    /// never stuck, and `recover`'s error (if any) is returned after unlocking.
    ///
    /// Inline for the usual case, a free mutex with words that pass the check: one
    /// `pthread_mutex_trylock` and no call level of its own. Everything else (a dead owner
    /// on record, words that fail the check, a held mutex, an error) is out of line.
    #[inline(always)]
    pub(crate) fn lock(
        &self,
        timeout: Duration,
        share: &str,
        recover: impl FnOnce() -> Result<()>,
    ) -> Result<LockGuard<'_>> {
        if self.dead_owner.load(Ordering::Relaxed) == 0 {
            if let Ok(rc) = self.first_try() {
                if rc == 0 {
                    return Ok(LockGuard {
                        pair: self,
                        _not_send: PhantomData,
                    });
                }
                return self.lock_after(rc, timeout, share, recover);
            }
        }
        self.lock_from_start(timeout, share, recover)
    }

    /// One attempt at the lock, the start of every `lock`: the mutex words are checked
    /// (hostile mutex bytes must never reach glibc, which asserts on some kinds; only the
    /// four words the check needs are read), then one `pthread_mutex_trylock`, whose result
    /// it returns.
    ///
    /// # Errors
    /// The words fail [`check_mutex_words`] (without the share's name).
    #[inline(always)]
    fn first_try(&self) -> Result<libc::c_int> {
        // The words are read for the check and then written by the lock: ask for the cache
        // line in exclusive state at once, so a reader polling the same header line costs
        // one transfer instead of two (shared for the check, then exclusive for the CAS).
        crate::sys::cpu::prefetch_for_write(self.mutex.as_ptr().cast::<u8>());
        check_mutex_words(self.mutex_words())?;
        // SAFETY: the mutex pointer is valid (constructor contract); its words passed the
        // check just now; trylock never blocks.
        Ok(unsafe { libc::pthread_mutex_trylock(self.mutex.as_ptr()) })
    }

    /// `lock` when its inline path did not apply: reports a dead owner on record (or
    /// forgets it when the words moved), reports words that fail the check, or goes on
    /// from a first attempt.
    #[inline(never)]
    fn lock_from_start(
        &self,
        timeout: Duration,
        share: &str,
        recover: impl FnOnce() -> Result<()>,
    ) -> Result<LockGuard<'_>> {
        let dead = self.dead_owner.load(Ordering::Relaxed);
        if dead != 0 {
            if dead == self.lock_state() {
                return Err(Self::dead_owner_error(share, (dead >> 32) as i32));
            }
            // The words moved (the share was repaired or re-created): try again.
            self.dead_owner.store(0, Ordering::Relaxed);
        }
        let rc = self.first_try().map_err(|e| e.with_share(share))?;
        self.lock_after(rc, timeout, share, recover)
    }

    /// `lock` after a first `pthread_mutex_trylock` returned `rc`: spins and waits when
    /// the mutex was held, recovers a dead owner's mutex, maps errors.
    #[inline(never)]
    fn lock_after(
        &self,
        mut rc: libc::c_int,
        timeout: Duration,
        share: &str,
        recover: impl FnOnce() -> Result<()>,
    ) -> Result<LockGuard<'_>> {
        if rc == libc::EBUSY {
            rc = self.spin_trylock(share)?;
        }
        if rc == libc::EBUSY {
            // The words may have changed while it spun: check them again before glibc waits.
            check_mutex_words(self.mutex_words()).map_err(|e| e.with_share(share))?;
            let deadline = realtime_deadline(timeout);
            // SAFETY: as above; `deadline` is a valid timespec.
            rc = unsafe { libc::pthread_mutex_timedlock(self.mutex.as_ptr(), &deadline) };
        }
        match rc {
            0 => Ok(LockGuard { pair: self, _not_send: PhantomData }),
            libc::EOWNERDEAD => {
                let guard = LockGuard { pair: self, _not_send: PhantomData };
                guard.recover_owner_dead(share, recover)?;
                Ok(guard)
            }
            libc::ETIMEDOUT => {
                if let Some(owner) = self.owner_is_dead() {
                    let state = self.lock_state();
                    if state != 0 {
                        self.dead_owner.store(state, Ordering::Relaxed);
                    }
                    return Err(Self::dead_owner_error(share, owner).with_os_error(os(rc)));
                }
                Err(Error::new(
                    ErrorKind::LockTimeout,
                    "the share's mutex stayed locked until the deadline (its holder is alive but did not release it)",
                )
                .with_share(share)
                .with_os_error(os(rc)))
            }
            libc::ENOTRECOVERABLE => Err(Error::new(
                ErrorKind::LockFailed,
                "the share's mutex is not recoverable (a peer found its owner dead and did not repair it); re-create the share",
            )
            .with_share(share)
            .with_os_error(os(rc))),
            _ => Err(Error::new(ErrorKind::LockFailed, "pthread_mutex_timedlock").with_share(share).with_os_error(os(rc))),
        }
    }
}

impl LockPair {
    /// Whether the mutex is held now (by anyone): a snapshot of its lock word.
    pub(crate) fn is_held(&self) -> bool {
        // Relaxed: a hint for how long to wait; the lock itself is taken by glibc.
        self.mutex_word(MUTEX_LOCK).load(Ordering::Relaxed) as u32 & FUTEX_TID_MASK != 0
    }

    /// After a failed trylock: polls the lock word for up to [`LOCK_SPINS`] pauses and
    /// tries again each time it reads free. Every holder of these mutexes (a write, a locked
    /// read, a snapshot) holds it for a copy's time, so this usually ends the wait without
    /// the futex sleep and wake-up (microseconds on both sides, and the holder's unlock then
    /// makes a system call) that `pthread_mutex_timedlock` costs. `EBUSY` when it did not.
    ///
    /// # Errors
    /// The words fail [`check_mutex_words`] before a retry (a peer rewrote them meanwhile).
    fn spin_trylock(&self, share: &str) -> Result<libc::c_int> {
        for _ in 0..LOCK_SPINS {
            std::hint::spin_loop();
            if !self.is_held() {
                // What reaches glibc is checked at the moment of use, as in `lock`.
                check_mutex_words(self.mutex_words()).map_err(|e| e.with_share(share))?;
                // SAFETY: the mutex pointer is valid (constructor contract); trylock never
                // blocks.
                let rc = unsafe { libc::pthread_mutex_trylock(self.mutex.as_ptr()) };
                if rc != libc::EBUSY {
                    return Ok(rc);
                }
            }
        }
        Ok(libc::EBUSY)
    }

    fn dead_owner_error(share: &str, owner: i32) -> Error {
        Error::new(
            ErrorKind::LockTimeout,
            format!(
                "the share's mutex is held by thread {owner}, which no longer exists, and the \
                 mutex is not robust, so nobody can take it again; re-create the share \
                 (`membus rm` it, then create it anew). Later calls on this handle fail at once \
                 until the mutex changes"
            ),
        )
        .with_share(share)
    }

    /// Checks the mutex and condition bytes against what glibc accepts without asserting
    /// or blocking untimed ([`crate::layout::pthread`]). A condition whose internal lock
    /// is held, or whose reference counts disagree, is re-checked for up to
    /// [`COND_LOCK_GRACE`], since a live peer causes either for a moment.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidLayout`] naming the share and the field.
    pub(crate) fn check(&self, share: &str) -> Result<()> {
        check_mutex(&self.mutex_image()).map_err(|e| e.with_share(share))?;
        self.check_cond().map_err(|e| e.with_share(share))
    }

    /// The condition half of [`check`](Self::check).
    fn check_cond(&self) -> Result<()> {
        let mut started = None;
        loop {
            match check_cond(&self.cond_image()) {
                Ok(()) => return Ok(()),
                Err((CondProblem::Transient, e)) => {
                    let t0 = *started.get_or_insert_with(Instant::now);
                    if t0.elapsed() >= COND_LOCK_GRACE {
                        return Err(e);
                    }
                    std::thread::yield_now();
                }
                Err((_, e)) => return Err(e),
            }
        }
    }

    /// The words [`check_mutex_words`] needs, each an atomic load.
    fn mutex_words(&self) -> MutexWords {
        // Relaxed: a snapshot for validation only.
        let w = |off| self.mutex_word(off).load(Ordering::Relaxed) as u32;
        MutexWords {
            kind: w(mutex_off::KIND),
            lock: w(mutex_off::LOCK),
            count: w(mutex_off::COUNT),
            owner: w(mutex_off::OWNER),
        }
    }

    fn mutex_image(&self) -> [u8; MUTEX_SIZE] {
        let mut out = [0u8; MUTEX_SIZE];
        for (i, chunk) in out.chunks_exact_mut(4).enumerate() {
            // SAFETY: (1) in bounds and aligned: the mutex is MUTEX_SIZE bytes, 8-aligned,
            // in a writable mapping that outlives `self` (constructor contract), so word
            // i < MUTEX_SIZE / 4 is inside it and 4-aligned; (2) the `&AtomicU32` lives only
            // for this load; (3) other threads and processes change these words (glibc's
            // own atomics, in C), so this side only ever reads them atomically.
            let w = unsafe { AtomicU32::from_ptr(self.mutex.as_ptr().cast::<u32>().add(i)) };
            // Relaxed: a snapshot for validation only; no data is published through it.
            chunk.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        out
    }

    fn cond_image(&self) -> [u8; COND_SIZE] {
        let mut out = [0u8; COND_SIZE];
        for (i, chunk) in out.chunks_exact_mut(4).enumerate() {
            // SAFETY: as in `mutex_image`, for the COND_SIZE bytes of the condition
            // (i < COND_SIZE / 4).
            let w = unsafe { AtomicU32::from_ptr(self.cond.as_ptr().cast::<u32>().add(i)) };
            // Relaxed: a snapshot for validation only.
            chunk.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        out
    }
}

/// How long a condition may look transiently wrong (internal lock held, reference counts
/// mid-update) before it is refused.
const COND_LOCK_GRACE: Duration = Duration::from_millis(10);

/// The held mutex. Unlocks on drop. Not `Send`: a pthread mutex must be unlocked by the
/// thread that locked it.
pub(crate) struct LockGuard<'a> {
    pair: &'a LockPair,
    _not_send: PhantomData<*const ()>,
}

impl LockGuard<'_> {
    /// Runs `recover` with the lock held after EOWNERDEAD, then marks the mutex consistent.
    fn recover_owner_dead(&self, share: &str, recover: impl FnOnce() -> Result<()>) -> Result<()> {
        let repaired = recover();
        // SAFETY: this thread holds the mutex (EOWNERDEAD hands it over locked).
        let rc = unsafe { libc::pthread_mutex_consistent(self.pair.mutex.as_ptr()) };
        if rc != 0 {
            return Err(
                Error::new(ErrorKind::LockFailed, "pthread_mutex_consistent")
                    .with_share(share)
                    .with_os_error(os(rc)),
            );
        }
        repaired
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: this thread holds the mutex for as long as the guard exists.
        let rc = unsafe { libc::pthread_mutex_unlock(self.pair.mutex.as_ptr()) };
        // Not asserted: a peer that rewrites the lock bytes while this thread holds the
        // mutex makes glibc refuse the unlock (EINVAL, EPERM); nothing can be done about it
        // here, and a hostile peer must not be able to make this process panic.
        let _ = rc;
    }
}
