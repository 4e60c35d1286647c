//! Deadlines on CLOCK_REALTIME, the clock libmembus peers' locks and conditions use.

use std::time::Duration;

/// The current CLOCK_REALTIME time.
fn realtime_now() -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_REALTIME always exists, so the call
    // cannot fail (the debug assertion checks that).
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    debug_assert_eq!(rc, 0, "clock_gettime(CLOCK_REALTIME) failed");
    ts
}

/// The absolute CLOCK_REALTIME time `timeout` from now, saturating far in the future.
pub(crate) fn realtime_deadline(timeout: Duration) -> libc::timespec {
    let now = realtime_now();
    let add_sec = i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX);
    let mut sec = now.tv_sec.saturating_add(add_sec);
    let mut nsec = now.tv_nsec + i64::from(timeout.subsec_nanos());
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_normalised_and_saturates() {
        let d = realtime_deadline(Duration::from_nanos(999_999_999));
        assert!((0..1_000_000_000).contains(&d.tv_nsec));
        let far = realtime_deadline(Duration::MAX);
        assert_eq!(far.tv_sec, i64::MAX);
        assert!((0..1_000_000_000).contains(&far.tv_nsec));
    }
}
