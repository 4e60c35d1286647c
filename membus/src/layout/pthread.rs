//! Validation of the glibc lock objects embedded in memmsg, memcmd and memkv headers
//! (spec §2), before glibc ever sees them.
//!
//! glibc trusts the bytes of a `pthread_mutex_t` and a `pthread_cond_t`: a hostile or
//! corrupted `__kind` sends it into priority-inheritance or priority-protect code that
//! asserts and aborts the process (`tpp.c`, `pthread_mutex_timedlock.c`), a condition whose
//! internal lock bits are set makes every signal and wait block in an untimed futex wait,
//! and a condition whose clock bit says CLOCK_MONOTONIC turns membus's CLOCK_REALTIME
//! deadlines into waits of decades. These functions check a snapshot of the two images
//! against what glibc 2.36 on x86_64 accepts without asserting, restricted to what membus
//! and libmembus create:
//!
//! * mutex `__kind` is 0x80 (process-shared, Boost ≤ 1.77) or 0x90 (process-shared and
//!   robust, Boost ≥ 1.78, and membus), so glibc takes its plain or robust path and never
//!   the PI, PP, recursive, error-checking, adaptive or elision ones;
//! * mutex `__lock` is a state those paths produce: 0, 1 or 2 for the plain mutex; 0, or a
//!   thread id (≤ the kernel's `PID_MAX_LIMIT`) with the `FUTEX_WAITERS`/`FUTEX_OWNER_DIED`
//!   bits, or `FUTEX_OWNER_DIED` alone, for the robust one;
//! * mutex `__count` is 0 or 1 (glibc sets 1 while a robust mutex is held) and `__owner`
//!   is 0, a thread id, or glibc's "inconsistent" / "not recoverable" markers;
//! * condition `__wrefs` has the process-shared bit set and the clock bit clear
//!   (CLOCK_REALTIME: the deadlines membus and libmembus pass are wall-clock ones), and
//!   counts no more waiters than Linux can have threads;
//! * condition `__g1_orig_size` has its two internal-lock bits clear;
//! * the condition's group references do not exceed its waiter references:
//!   `(__g_refs[0] >> 1) + (__g_refs[1] >> 1) ≤ __wrefs >> 3`. glibc's waiters raise
//!   `__wrefs` before `__g_refs` and lower `__g_refs` before `__wrefs`
//!   (`pthread_cond_wait.c`), so this holds at every instant; group references that no
//!   waiter holds would make the next `pthread_cond_broadcast` wait for them forever.
//!
//! Fields that a live condition legitimately fills with any value (the waiter sequence,
//! group sizes and signal counts) are not constrained, and neither are the
//! mutex's `__nusers`, `__spins`, `__elision` and robust-list pointers, which glibc's plain
//! and robust paths never interpret before overwriting them.
//!
//! The snapshot is read word by word, so the fields may come from different instants. Only
//! per-field checks are made (no cross-field invariant a concurrent lock or unlock could
//! break between two loads), except the reference counts above, which a waiter entering or
//! leaving between two loads can make look inconsistent for an instant. That, and a live
//! peer briefly holding the condition's internal lock, are [`CondProblem::Transient`]:
//! callers re-check such a condition for a short while before reporting it.

use crate::error::{Error, ErrorKind, Result};

/// Size of glibc's `pthread_mutex_t` on x86_64.
pub const MUTEX_SIZE: usize = 40;
/// Size of glibc's `pthread_cond_t` on x86_64.
pub const COND_SIZE: usize = 48;

/// Mutex field offsets (glibc `struct __pthread_mutex_s`, x86_64).
pub mod mutex_off {
    /// `int __lock`: the futex word.
    pub const LOCK: usize = 0;
    /// `unsigned int __count`.
    pub const COUNT: usize = 4;
    /// `int __owner`: the owner's thread id or a marker.
    pub const OWNER: usize = 8;
    /// `unsigned int __nusers`.
    pub const NUSERS: usize = 12;
    /// `int __kind`: type and flags.
    pub const KIND: usize = 16;
}

/// Condition field offsets (glibc ≥ 2.25 `struct __pthread_cond_s`).
pub mod cond_off {
    /// `__wseq`, 64-bit waiter sequence.
    pub const WSEQ: usize = 0;
    /// `__g1_start`, 64-bit.
    pub const G1_START: usize = 8;
    /// `unsigned int __g1_orig_size`: the group size shifted left by 2, and the condition's
    /// internal lock in the two low bits.
    pub const G1_ORIG_SIZE: usize = 32;
    /// `unsigned int __wrefs`: bit 0 process-shared, bit 1 clock (1 = CLOCK_MONOTONIC),
    /// bit 2 destroy-wake request, waiter references from bit 3.
    pub const WREFS: usize = 36;
    /// `unsigned int __g_refs[2]`: references to each group, in units of 2 (bit 0 is a
    /// wake request).
    pub const G_REFS: usize = 16;
}

/// `__kind` of a process-shared plain (timed) mutex: `PTHREAD_MUTEX_PSHARED_BIT`.
pub const KIND_PSHARED: u32 = 0x80;
/// `__kind` of a process-shared robust mutex: the pshared bit plus
/// `PTHREAD_MUTEX_ROBUST_NORMAL_NP` (16).
pub const KIND_PSHARED_ROBUST: u32 = 0x90;

/// The kernel's `FUTEX_OWNER_DIED` bit.
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
/// The thread-id bits of a robust lock word.
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// The largest thread id Linux can hand out (`PID_MAX_LIMIT`, 4 Mi on 64-bit).
pub const PID_MAX_LIMIT: u32 = 4 * 1024 * 1024;
/// glibc's `PTHREAD_MUTEX_INCONSISTENT` owner marker (`INT_MAX`).
const OWNER_INCONSISTENT: u32 = i32::MAX as u32;
/// glibc's `PTHREAD_MUTEX_NOTRECOVERABLE` owner marker (`INT_MAX - 1`).
const OWNER_NOTRECOVERABLE: u32 = i32::MAX as u32 - 1;

/// Condition `__wrefs` bit 0: process-shared.
const WREFS_PSHARED: u32 = 1;
/// Condition `__wrefs` bit 1: the clock is CLOCK_MONOTONIC.
const WREFS_MONOTONIC: u32 = 2;

fn u32_at(image: &[u8], off: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(b) = image.get(off..off + 4) {
        w.copy_from_slice(b);
    }
    u32::from_le_bytes(w)
}

fn invalid(field: &str, detail: String) -> Error {
    Error::new(
        ErrorKind::InvalidLayout,
        format!("{field} {detail}; glibc could abort or block on it, so it is not used"),
    )
}

/// Checks a snapshot of a `pthread_mutex_t` image (40 bytes).
///
/// # Errors
/// [`ErrorKind::InvalidLayout`] naming the field (`mutex __kind`, `mutex __lock`,
/// `mutex __count` or `mutex __owner`) and the value found.
pub fn check_mutex(image: &[u8; MUTEX_SIZE]) -> Result<()> {
    check_mutex_words(MutexWords {
        kind: u32_at(image, mutex_off::KIND),
        lock: u32_at(image, mutex_off::LOCK),
        count: u32_at(image, mutex_off::COUNT),
        owner: u32_at(image, mutex_off::OWNER),
    })
}

/// The four words of a `pthread_mutex_t` that [`check_mutex`] looks at (the others never
/// steer glibc into an assertion for the kinds it accepts).
#[derive(Clone, Copy, Debug)]
pub struct MutexWords {
    /// `__kind`.
    pub kind: u32,
    /// `__lock`, the futex word.
    pub lock: u32,
    /// `__count`.
    pub count: u32,
    /// `__owner`.
    pub owner: u32,
}

/// [`check_mutex`] on the four words it needs, read one by one (the lock path's check).
///
/// # Errors
/// As for [`check_mutex`].
#[inline]
pub fn check_mutex_words(w: MutexWords) -> Result<()> {
    // The common case, a free mutex of a kind membus or libmembus creates, passes every
    // check below; it is told apart in a few compares, the rest is out of line.
    if w.lock == 0
        && w.count <= 1
        && w.owner == 0
        && (w.kind == KIND_PSHARED || w.kind == KIND_PSHARED_ROBUST)
    {
        return Ok(());
    }
    check_mutex_words_in_full(w)
}

/// [`check_mutex_words`] for every other state.
#[cold]
#[inline(never)]
fn check_mutex_words_in_full(w: MutexWords) -> Result<()> {
    let MutexWords {
        kind,
        lock,
        count,
        owner,
    } = w;
    let robust = match kind {
        KIND_PSHARED => false,
        KIND_PSHARED_ROBUST => true,
        _ => {
            return Err(invalid(
                "mutex __kind",
                format!(
                    "is {kind:#x}, not a kind membus or libmembus creates ({KIND_PSHARED:#x} or {KIND_PSHARED_ROBUST:#x})"
                ),
            )
            .with_sizes(u64::from(KIND_PSHARED_ROBUST), u64::from(kind)))
        }
    };
    let lock_ok = if robust {
        let tid = lock & FUTEX_TID_MASK;
        let flags = lock & !FUTEX_TID_MASK;
        lock == 0
            || (tid != 0 && tid <= PID_MAX_LIMIT)
            || (tid == 0 && flags & FUTEX_OWNER_DIED != 0)
    } else {
        lock <= 2
    };
    if !lock_ok {
        return Err(invalid(
            "mutex __lock",
            format!(
                "is {lock:#x}, not a state of a {} mutex",
                if robust { "robust" } else { "plain" }
            ),
        ));
    }
    if count > 1 {
        return Err(invalid(
            "mutex __count",
            format!("is {count}, more than the 1 glibc sets on a non-recursive mutex"),
        )
        .with_sizes(1, u64::from(count)));
    }
    let owner_ok = owner <= PID_MAX_LIMIT
        || (robust && (owner == OWNER_INCONSISTENT || owner == OWNER_NOTRECOVERABLE));
    if !owner_ok {
        return Err(invalid(
            "mutex __owner",
            format!("is {owner:#x}, neither 0, a thread id nor a glibc marker"),
        ));
    }
    Ok(())
}

/// What is wrong with a condition image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CondProblem {
    /// Not process-shared, or on CLOCK_MONOTONIC: permanent, refuse at once.
    Attributes,
    /// The internal lock bits are set, or the group references exceed the waiter
    /// references: a live peer may cause either for a moment, so the caller re-checks for
    /// a short while before refusing.
    Transient,
}

/// Checks a snapshot of a `pthread_cond_t` image (48 bytes).
///
/// # Errors
/// [`ErrorKind::InvalidLayout`] naming the field (`condition __wrefs`,
/// `condition __g1_orig_size` or `condition __g_refs`) and the value found, with the [`CondProblem`] that tells a
/// permanent defect from one a live peer may be causing for an instant.
pub fn check_cond(image: &[u8; COND_SIZE]) -> std::result::Result<(), (CondProblem, Error)> {
    let wrefs = u32_at(image, cond_off::WREFS);
    if wrefs & WREFS_PSHARED == 0 {
        return Err((
            CondProblem::Attributes,
            invalid(
                "condition __wrefs",
                format!("is {wrefs:#x}: the condition is not process-shared"),
            ),
        ));
    }
    if wrefs & WREFS_MONOTONIC != 0 {
        return Err((
            CondProblem::Attributes,
            invalid(
                "condition __wrefs",
                format!(
                    "is {wrefs:#x}: the condition's clock is CLOCK_MONOTONIC, but membus and libmembus deadlines are CLOCK_REALTIME"
                ),
            ),
        ));
    }
    if wrefs >> 3 > PID_MAX_LIMIT {
        return Err((
            CondProblem::Attributes,
            invalid(
                "condition __wrefs",
                format!(
                    "is {wrefs:#x}: {} waiters, more than threads can exist ({PID_MAX_LIMIT})",
                    wrefs >> 3
                ),
            ),
        ));
    }
    let orig = u32_at(image, cond_off::G1_ORIG_SIZE);
    if orig & 3 != 0 {
        return Err((
            CondProblem::Transient,
            invalid(
                "condition __g1_orig_size",
                format!(
                    "is {orig:#x}: the condition's internal lock is held (by a peer that died inside it, or that keeps it)"
                ),
            ),
        ));
    }
    let g0 = u32_at(image, cond_off::G_REFS);
    let g1 = u32_at(image, cond_off::G_REFS + 4);
    let refs = u64::from(g0 >> 1) + u64::from(g1 >> 1);
    let waiters = u64::from(wrefs >> 3);
    if refs > waiters {
        return Err((
            CondProblem::Transient,
            invalid(
                "condition __g_refs",
                format!(
                    "is [{g0:#x}, {g1:#x}]: {refs} group references but only {waiters} waiters, so a broadcast would wait forever for references nobody holds"
                ),
            )
            .with_sizes(waiters, refs),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The lock path's quick accept agrees with the full check on every combination of
    /// edge values of the four words.
    #[test]
    fn the_quick_accept_is_a_subset_of_the_full_check() {
        let kinds = [0, 0x80, 0x90, 0x81, 0x91, 0x10];
        let locks = [
            0,
            1,
            2,
            3,
            77,
            FUTEX_OWNER_DIED,
            FUTEX_OWNER_DIED | 77,
            u32::MAX,
        ];
        let counts = [0, 1, 2, u32::MAX];
        let owners = [
            0,
            1,
            PID_MAX_LIMIT,
            PID_MAX_LIMIT + 1,
            OWNER_INCONSISTENT,
            u32::MAX,
        ];
        let mut quick = 0;
        for kind in kinds {
            for lock in locks {
                for count in counts {
                    for owner in owners {
                        let w = MutexWords {
                            kind,
                            lock,
                            count,
                            owner,
                        };
                        let full = check_mutex_words_in_full(w).is_ok();
                        assert_eq!(check_mutex_words(w).is_ok(), full, "{w:?}");
                        if lock == 0 && count <= 1 && owner == 0 && full {
                            quick += 1;
                        }
                    }
                }
            }
        }
        // Both kinds, with count 0 and 1, take the quick accept.
        assert_eq!(quick, 4);
    }

    fn mutex(kind: u32, lock: u32, count: u32, owner: u32) -> [u8; MUTEX_SIZE] {
        let mut m = [0u8; MUTEX_SIZE];
        m[mutex_off::LOCK..][..4].copy_from_slice(&lock.to_le_bytes());
        m[mutex_off::COUNT..][..4].copy_from_slice(&count.to_le_bytes());
        m[mutex_off::OWNER..][..4].copy_from_slice(&owner.to_le_bytes());
        m[mutex_off::KIND..][..4].copy_from_slice(&kind.to_le_bytes());
        m
    }

    fn cond(wrefs: u32, orig: u32) -> [u8; COND_SIZE] {
        let mut c = [0u8; COND_SIZE];
        c[cond_off::WREFS..][..4].copy_from_slice(&wrefs.to_le_bytes());
        c[cond_off::G1_ORIG_SIZE..][..4].copy_from_slice(&orig.to_le_bytes());
        c
    }

    /// The kernel's `FUTEX_WAITERS` bit in a robust mutex's lock word.
    const FUTEX_WAITERS: u32 = 0x8000_0000;

    fn field_of(e: &Error) -> &str {
        e.detail().split(" is ").next().unwrap_or("")
    }

    #[test]
    fn freshly_built_images_pass() {
        // Spec §2.3: everything zero but __kind, and __wrefs = 1.
        check_mutex(&mutex(0x80, 0, 0, 0)).unwrap();
        check_mutex(&mutex(0x90, 0, 0, 0)).unwrap();
        check_cond(&cond(1, 0)).unwrap();
    }

    #[test]
    fn held_and_contended_states_pass() {
        for lock in [1, 2] {
            check_mutex(&mutex(0x80, lock, 0, 1234)).unwrap();
        }
        for lock in [
            4321,
            4321 | FUTEX_WAITERS,
            4321 | FUTEX_OWNER_DIED,
            FUTEX_OWNER_DIED,
            FUTEX_OWNER_DIED | FUTEX_WAITERS,
        ] {
            check_mutex(&mutex(0x90, lock, 1, 4321)).unwrap();
        }
        check_mutex(&mutex(0x90, 0, 0, OWNER_NOTRECOVERABLE)).unwrap();
        check_mutex(&mutex(0x90, 77, 1, OWNER_INCONSISTENT)).unwrap();
        // Waiters registered, a group in flight, destroy-wake bit: all legitimate.
        let mut c = cond(1 | 4 | (3 << 3), 12 << 2);
        c[0] = 0x55;
        c[16] = 5; // two references to group 0 and a wake request
        c[20] = 2; // one reference to group 1
        check_cond(&c).unwrap();
    }

    #[test]
    fn priority_and_other_kinds_are_refused() {
        // PP (0x40) aborts in tpp.c, PI (0x20) in pthread_mutex_timedlock.c; recursive,
        // error-checking, adaptive and elision kinds are not what peers create.
        for kind in [
            0,
            1,
            2,
            3,
            0x20,
            0x40,
            0xa0,
            0xc0,
            0x81,
            0x91,
            0x180,
            0x10,
            u32::MAX,
        ] {
            let e = check_mutex(&mutex(kind, 0, 0, 0)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidLayout);
            assert_eq!(field_of(&e), "mutex __kind", "{e}");
            assert!(e.to_string().contains(&format!("{kind:#x}")), "{e}");
        }
    }

    #[test]
    fn impossible_lock_count_and_owner_values_are_refused() {
        let e = check_mutex(&mutex(0x80, 3, 0, 0)).unwrap_err();
        assert_eq!(field_of(&e), "mutex __lock");
        let e = check_mutex(&mutex(0x90, FUTEX_WAITERS, 0, 0)).unwrap_err();
        assert_eq!(field_of(&e), "mutex __lock");
        let e = check_mutex(&mutex(0x90, PID_MAX_LIMIT + 1, 0, 0)).unwrap_err();
        assert_eq!(field_of(&e), "mutex __lock");
        let e = check_mutex(&mutex(0x80, 0, 2, 0)).unwrap_err();
        assert_eq!(field_of(&e), "mutex __count");
        assert_eq!(e.sizes(), Some((1, 2)));
        let e = check_mutex(&mutex(0x80, 1, 0, OWNER_INCONSISTENT)).unwrap_err();
        assert_eq!(field_of(&e), "mutex __owner");
        let e = check_mutex(&mutex(0x90, 1, 0, u32::MAX)).unwrap_err();
        assert_eq!(field_of(&e), "mutex __owner");
    }

    #[test]
    fn hostile_condition_words_are_refused() {
        let (p, e) = check_cond(&cond(0, 0)).unwrap_err();
        assert_eq!(
            (p, field_of(&e)),
            (CondProblem::Attributes, "condition __wrefs")
        );
        let (p, e) = check_cond(&cond(3, 0)).unwrap_err();
        assert_eq!(p, CondProblem::Attributes);
        assert!(e.to_string().contains("CLOCK_MONOTONIC"), "{e}");
        // Found by fuzzing: __wrefs 0x656d6f6d claims 212 million waiters.
        let (p, e) = check_cond(&cond(0x656d_6f6d, 0)).unwrap_err();
        assert_eq!(
            (p, field_of(&e)),
            (CondProblem::Attributes, "condition __wrefs")
        );
        check_cond(&cond(1 | (PID_MAX_LIMIT << 3), 0)).unwrap();
        for bits in [1, 2, 3] {
            let (p, e) = check_cond(&cond(1, (5 << 2) | bits)).unwrap_err();
            assert_eq!(
                (p, field_of(&e)),
                (CondProblem::Transient, "condition __g1_orig_size")
            );
        }
        // Group references nobody holds (found by the mutated-header harness: a broadcast
        // then waits for them forever).
        for (g0, g1, wrefs) in [
            (0x80, 0, 1),
            (0xffff_fffe, 0x7fff_ffff, 1),
            (4, 2, 1 | (2 << 3)),
        ] {
            let mut c = cond(wrefs, 0);
            c[cond_off::G_REFS..][..4].copy_from_slice(&u32::to_le_bytes(g0));
            c[cond_off::G_REFS + 4..][..4].copy_from_slice(&u32::to_le_bytes(g1));
            let (p, e) = check_cond(&c).unwrap_err();
            assert_eq!(
                (p, field_of(&e)),
                (CondProblem::Transient, "condition __g_refs")
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_mutex_bytes_never_panic(bytes in proptest::array::uniform32(any::<u8>()), tail in any::<u64>()) {
            let mut m = [0u8; MUTEX_SIZE];
            m[..32].copy_from_slice(&bytes);
            m[32..].copy_from_slice(&tail.to_le_bytes());
            if check_mutex(&m).is_ok() {
                let kind = u32_at(&m, mutex_off::KIND);
                prop_assert!(kind == KIND_PSHARED || kind == KIND_PSHARED_ROBUST);
                prop_assert!(u32_at(&m, mutex_off::COUNT) <= 1);
            }
        }

        #[test]
        fn arbitrary_cond_bytes_never_panic(bytes in proptest::array::uniform32(any::<u8>()), tail in proptest::array::uniform16(any::<u8>())) {
            let mut c = [0u8; COND_SIZE];
            c[..32].copy_from_slice(&bytes);
            c[32..].copy_from_slice(&tail);
            if check_cond(&c).is_ok() {
                prop_assert_eq!(u32_at(&c, cond_off::WREFS) & 3, 1);
                prop_assert_eq!(u32_at(&c, cond_off::G1_ORIG_SIZE) & 3, 0);
            }
        }

        #[test]
        fn valid_kinds_with_arbitrary_words_never_panic(robust in any::<bool>(), lock in any::<u32>(), count in any::<u32>(), owner in any::<u32>()) {
            let kind = if robust { KIND_PSHARED_ROBUST } else { KIND_PSHARED };
            let _ = check_mutex(&mutex(kind, lock, count, owner));
        }
    }
}
