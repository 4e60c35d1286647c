//! Process-shared futex waits and wakes on 32-bit words inside shares.
//!
//! These are the kernel primitives under membus's event-driven waiting (DESIGN decision 7):
//! a waiter sleeps until a word inside a share changes; a writer wakes it only when a
//! waiter is registered. The futexes are *shared* (no `FUTEX_PRIVATE_FLAG`): the waiter
//! and the waker are different processes with different mappings of the same object, and
//! the kernel keys shared futexes by the underlying page, not the virtual address.

use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

/// How a multi-word wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitvOutcome {
    /// Woken, or one of the words no longer held its expected value (re-check them all).
    Changed,
    /// The deadline passed.
    TimedOut,
}

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    }
}

/// Sleeps while `word` holds `expected`, at most `timeout` (`None`: no limit).
///
/// Returns when woken, when the word differs from `expected` (at once), on a signal, on a
/// spurious wake-up, or at the timeout: callers re-check their condition in a loop.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(timespec);
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, 4-byte aligned AtomicU32 (the reference guarantees both);
    // FUTEX_WAIT only reads it. `ts_ptr` is null or points to a timespec that outlives the
    // call. The other arguments are unused by FUTEX_WAIT. Errors (EAGAIN when the value
    // already differs, EINTR, ETIMEDOUT) all mean "re-check", which every caller does.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes up to `n` waiters on `word`; returns how many were woken.
pub(crate) fn wake(word: &AtomicU32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32);
    // SAFETY: `word` is a live, aligned AtomicU32; FUTEX_WAKE does not access the memory
    // beyond using its address as the key.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            0usize,
            0usize,
            0u32,
        )
    };
    usize::try_from(rc).unwrap_or(0)
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
/// 128 words) falls back to bounded adaptive polling, 50 µs growing to 1 ms.
pub(crate) fn wait_any(words: &[(&AtomicU32, u32)], deadline: Option<Instant>) -> WaitvOutcome {
    use std::sync::atomic::Ordering;
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
                uaddr: w.as_ptr() as u64,
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
        // SAFETY: `list` holds `words.len()` ≤ 128 valid entries pointing at live, aligned
        // AtomicU32 words (borrowed for the call); `ts_ptr` is null or a live timespec;
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
            return WaitvOutcome::Changed;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ETIMEDOUT) => return WaitvOutcome::TimedOut,
            Some(libc::ENOSYS) => {}           // older kernel: poll below
            _ => return WaitvOutcome::Changed, // EAGAIN (a value differs), EINTR: re-check
        }
    }
    let mut pause = Duration::from_micros(50);
    loop {
        if words.iter().any(|(w, v)| w.load(Ordering::Acquire) != *v) {
            return WaitvOutcome::Changed;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return WaitvOutcome::TimedOut;
        }
        let nap = deadline.map_or(pause, |d| pause.min(d - now));
        std::thread::sleep(nap);
        pause = (pause * 2).min(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn wait_returns_at_once_when_the_value_differs_and_times_out_otherwise() {
        let w = AtomicU32::new(5);
        let t = Instant::now();
        wait(&w, 4, Some(Duration::from_secs(5)));
        assert!(t.elapsed() < Duration::from_secs(5));
        let t = Instant::now();
        wait(&w, 5, Some(Duration::from_millis(20)));
        assert!(t.elapsed() >= Duration::from_millis(20));
        assert_eq!(wake(&w, 1), 0, "nobody waits");
    }

    #[test]
    fn wake_and_wait_any_see_a_change_in_any_word() {
        let words = Arc::new([AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)]);
        let w2 = Arc::clone(&words);
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            w2[2].store(1, Ordering::Release);
            wake(&w2[2], u32::MAX);
        });
        let list: Vec<(&AtomicU32, u32)> = words.iter().map(|w| (w, 0)).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert_eq!(
                wait_any(&list, Some(deadline)),
                WaitvOutcome::Changed,
                "woken before the deadline"
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
