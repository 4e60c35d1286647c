//! Process-shared futex waits and wakes on 32-bit words inside shares.
//!
//! These are the kernel primitives under membus's event-driven waiting (DESIGN decision 7):
//! a waiter sleeps until a word inside a share changes; a writer wakes it only when a
//! waiter is registered. The futexes are *shared* (no `FUTEX_PRIVATE_FLAG`): the waiter
//! and the waker are different processes with different mappings of the same object, and
//! the kernel keys shared futexes by the underlying page, not the virtual address.

use std::marker::PhantomData;
#[cfg(any(test, feature = "async"))]
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

/// The address of a 4-byte aligned futex word that stays mapped for `'a`.
///
/// Only the kernel reads through it: membus never loads a `Word` from Rust, so a word
/// that is also the low half of a 64-bit atomic (the media rings' global sequence) is
/// never accessed with mixed sizes by Rust code.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Word<'a> {
    addr: *const u32,
    _mapped: PhantomData<&'a u32>,
}

impl<'a> Word<'a> {
    /// A process-local atomic as a futex word.
    #[cfg(any(test, feature = "async"))]
    pub(crate) fn local(w: &'a AtomicU32) -> Word<'a> {
        Word {
            addr: w.as_ptr(),
            _mapped: PhantomData,
        }
    }

    /// A word that may no longer be mapped by the time the kernel looks at it. Sound because
    /// a `Word` is only ever handed to the kernel, which reports an unmapped address as
    /// EFAULT instead of faulting: a caller must simply expect that outcome.
    #[cfg(feature = "async")]
    pub(crate) fn kernel_only(addr: *const u32) -> Word<'static> {
        Word {
            addr,
            _mapped: PhantomData,
        }
    }

    /// # Safety
    /// `addr` must be 4-byte aligned and point into a mapping that stays mapped for `'a`.
    pub(crate) unsafe fn from_ptr(addr: *const u32) -> Word<'a> {
        debug_assert!(addr as usize % 4 == 0);
        Word {
            addr,
            _mapped: PhantomData,
        }
    }
}

/// How a multi-word wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitvOutcome {
    /// A FUTEX_WAKE on the word at this index woke the thread.
    Woken(usize),
    /// One of the words no longer held its expected value, a signal, or a nap of the
    /// fallback ended: re-check them all.
    Changed,
    /// The deadline passed.
    TimedOut,
}

/// Wakes up to `n` waiters on `word`; returns how many were woken.
pub(crate) fn wake(word: Word<'_>, n: u32) -> usize {
    let n = n.min(i32::MAX as u32);
    // SAFETY: `word.addr` is aligned and mapped (`Word`'s contract); FUTEX_WAKE does not
    // access the memory beyond resolving its address to the futex key.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.addr,
            libc::FUTEX_WAKE,
            n,
            0usize,
            0usize,
            0u32,
        )
    };
    usize::try_from(rc).unwrap_or(0)
}

/// What [`probe`] found.
#[cfg(feature = "async")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    /// The word holds the expected value.
    Same,
    /// It holds another value.
    Moved,
    /// Its address is not mapped (any more), or the kernel refused it.
    Fault,
}

/// Compares `word` with `expected` through the kernel (a FUTEX_WAIT with a zero timeout),
/// so the word is never read from Rust: safe even if its mapping has gone.
#[cfg(feature = "async")]
pub(crate) fn probe(word: Word<'_>, expected: u32) -> Probe {
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: FUTEX_WAIT only reads the 4-byte word at `word.addr` (the kernel validates
    // the address and returns EFAULT if it is not mapped) and the timespec, which is a
    // live local; a zero relative timeout returns at once.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.addr,
            libc::FUTEX_WAIT,
            expected,
            &zero as *const libc::timespec,
            0usize,
            0u32,
        )
    };
    if rc == 0 {
        // Woken within a zero timeout: treat it as a change.
        return Probe::Moved;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ETIMEDOUT | libc::EINTR) => Probe::Same,
        Some(libc::EAGAIN) => Probe::Moved,
        _ => Probe::Fault,
    }
}

/// One entry of `futex_waitv` (Linux ≥ 5.16), `struct futex_waitv` of the kernel ABI.
#[repr(C)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// FUTEX2_SIZE_U32: a 32-bit futex, shared (FUTEX2_PRIVATE not set).
const FUTEX2_SIZE_U32: u32 = 0x02;
/// The kernel's limit on words per `futex_waitv` call.
pub(crate) const WAITV_MAX: usize = 128;

/// Sleeps until any of `words` no longer holds its expected value or is woken, or until
/// `deadline`. Uses `futex_waitv` where the kernel has it (5.16+); otherwise (or beyond
/// 128 words) naps 200 µs and reports `Changed`, so callers poll their condition.
pub(crate) fn wait_any(words: &[(Word<'_>, u32)], deadline: Option<Instant>) -> WaitvOutcome {
    if words.is_empty() {
        if let Some(d) = deadline {
            std::thread::sleep(d.saturating_duration_since(Instant::now()));
        }
        return WaitvOutcome::TimedOut;
    }
    if words.len() <= WAITV_MAX {
        let list: Vec<FutexWaitv> = words
            .iter()
            .map(|(w, v)| FutexWaitv {
                val: u64::from(*v),
                uaddr: w.addr as u64,
                flags: FUTEX2_SIZE_U32,
                reserved: 0,
            })
            .collect();
        // futex_waitv takes an absolute timeout on the clock it is given.
        let abs = deadline.map(|d| {
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: valid timespec out-pointer; CLOCK_MONOTONIC always exists.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
            let left = d.saturating_duration_since(Instant::now());
            let mut sec = now.tv_sec.saturating_add(
                libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
            );
            let mut nsec = now.tv_nsec + libc::c_long::from(left.subsec_nanos() as i32);
            if nsec >= 1_000_000_000 {
                nsec -= 1_000_000_000;
                sec = sec.saturating_add(1);
            }
            libc::timespec {
                tv_sec: sec,
                tv_nsec: nsec,
            }
        });
        let ts_ptr = abs
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `list` holds `words.len()` ≤ 128 valid entries whose addresses are
        // aligned and mapped for the call (`Word`'s contract); `ts_ptr` is null or a live timespec;
        // flags 0 and CLOCK_MONOTONIC are what the syscall documents.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_futex_waitv,
                list.as_ptr(),
                list.len() as u32,
                0u32,
                ts_ptr,
                libc::CLOCK_MONOTONIC,
            )
        };
        if rc >= 0 {
            return WaitvOutcome::Woken(rc as usize);
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ETIMEDOUT) => return WaitvOutcome::TimedOut,
            // EAGAIN (a value differs), EINTR: re-check.
            Some(libc::EAGAIN | libc::EINTR) => return WaitvOutcome::Changed,
            // ENOSYS (kernel before 5.16) or anything unexpected: nap below, never spin.
            _ => {}
        }
    }
    // No futex_waitv: sleep in short, growing naps; the caller re-checks its words (it
    // knows how to read them; a `Word` is never read from Rust).
    let now = Instant::now();
    if deadline.is_some_and(|d| now >= d) {
        return WaitvOutcome::TimedOut;
    }
    let nap = Duration::from_micros(200);
    std::thread::sleep(deadline.map_or(nap, |d| nap.min(d - now)));
    WaitvOutcome::Changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn wait_any_reports_a_differing_value_a_timeout_and_a_wake() {
        let w = AtomicU32::new(5);
        let soon = || Some(Instant::now() + Duration::from_millis(20));
        assert_eq!(
            wait_any(&[(Word::local(&w), 4)], soon()),
            WaitvOutcome::Changed
        );
        assert_eq!(
            wait_any(&[(Word::local(&w), 5)], soon()),
            WaitvOutcome::TimedOut
        );
        assert_eq!(wake(Word::local(&w), 1), 0, "nobody waits");
        let w = Arc::new(AtomicU32::new(0));
        let w2 = Arc::clone(&w);
        let h = std::thread::spawn(move || loop {
            // Keep waking until the waiter is seen asleep and woken (count 1).
            if wake(Word::local(&w2), 1) == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        });
        let long = Some(Instant::now() + Duration::from_secs(30));
        assert_eq!(
            wait_any(&[(Word::local(&w), 0)], long),
            WaitvOutcome::Woken(0)
        );
        h.join().unwrap();
    }

    #[test]
    fn wake_and_wait_any_see_a_change_in_any_word() {
        let words = Arc::new([AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)]);
        let w2 = Arc::clone(&words);
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            w2[2].store(1, Ordering::Release);
            wake(Word::local(&w2[2]), u32::MAX);
        });
        let list: Vec<(Word<'_>, u32)> = words.iter().map(|w| (Word::local(w), 0)).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = wait_any(&list, Some(deadline));
            assert!(
                matches!(got, WaitvOutcome::Woken(2) | WaitvOutcome::Changed),
                "{got:?}: woken before the deadline"
            );
            if words[2].load(Ordering::Acquire) == 1 {
                break;
            }
        }
        h.join().unwrap();
        assert_eq!(
            wait_any(&list[..2], Some(Instant::now() + Duration::from_millis(10))),
            WaitvOutcome::TimedOut
        );
        assert_eq!(
            wait_any(&list, Some(Instant::now() + Duration::from_secs(5))),
            WaitvOutcome::Changed,
            "word 2 differs"
        );
    }
}
