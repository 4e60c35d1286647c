//! Copies between private buffers and shared memory that other processes may write at the
//! same time.
//!
//! In Rust's memory model a plain copy that races with another writer is undefined
//! behaviour, and a process sharing memory with foreign peers cannot rule such a race out.
//! These copies therefore touch the shared side only through operations the compiler cannot
//! reason about as plain accesses:
//!
//! * large copies and fills use one inline-assembly loop (opaque to the compiler): vector
//!   moves, `rep movsb`/`rep stosb` or non-temporal stores, chosen once per process from
//!   CPUID and per call from the size, the way glibc's `memcpy`/`memset` choose (see
//!   [`CopyStrategy`]);
//! * copies of 16 to 127 bytes (a typical message) use one assembly block of overlapping
//!   16-byte SSE2 moves, first and last, as glibc's `memcpy` does for these sizes (on
//!   x86-64; 130 fewer instructions per 64-byte message written and read than the word
//!   loop, measured with callgrind);
//! * smaller copies use relaxed atomic loads or stores of aligned 8-byte words, with
//!   single-byte atomics for the unaligned ends; a copy whose two sides share their offset
//!   in a 4 KiB page ("4K aliasing", which makes `rep movsb` ten times slower on AMD Zen)
//!   takes the vector loop instead of `rep movsb` (it used to take the word loop, four to
//!   ten times slower than the vector loop there).
//!
//! A racing writer can leave the copied bytes torn. That is never undefined behaviour here;
//! callers detect it with their share's own protocol (sequence numbers re-checked after the
//! copy) and never trust the bytes for memory safety.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// True when `rep movsb` from `src` to `dst` would hit 4K aliasing.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn aliased(dst: usize, src: usize) -> bool {
    let d = dst.wrapping_sub(src) & 4095;
    !(64..=4096 - 64).contains(&d)
}

/// Copies `dst.len()` bytes from shared memory at `src` into `dst`.
///
/// # Safety
/// `src..src + dst.len()` must lie inside one live mapping that stays mapped for the
/// duration of the call. Other processes may write those bytes concurrently; `dst` then
/// receives unspecified (possibly torn) bytes.
///
/// Inline, as are the other two entry points: a small copy (a message, a descriptor) is
/// then a few instructions in its caller, with no call level; larger ones call out.
#[inline]
pub(crate) unsafe fn copy_from_shared(src: *const u8, dst: &mut [u8]) {
    // SAFETY: `dst` is a valid exclusive slice; viewing initialised bytes as MaybeUninit is
    // always sound and the callee only writes initialised bytes into it.
    let dst_uninit = unsafe { &mut *(dst as *mut [u8] as *mut [MaybeUninit<u8>]) };
    // SAFETY: forwarded caller contract.
    unsafe { copy_from_shared_uninit(src, dst_uninit) }
}

/// [`copy_from_shared`] into possibly uninitialised memory; every byte of `dst` is
/// initialised when it returns.
///
/// # Safety
/// As for [`copy_from_shared`].
#[inline]
pub(crate) unsafe fn copy_from_shared_uninit(src: *const u8, dst: &mut [MaybeUninit<u8>]) {
    // SAFETY: `src..src+len` is mapped (caller's contract); `dst` is a live exclusive slice
    // of `len` bytes, private, so the two do not overlap; when it copies, every byte of
    // `dst` is written.
    if unsafe { copied_if_small(dst.as_mut_ptr().cast::<u8>(), src, dst.len()) } {
        return;
    }
    // SAFETY: forwarded caller contract.
    unsafe { copy_from_shared_large(src, dst) }
}

/// [`copy_from_shared_uninit`] past the small sizes, with this machine's strategy: out of
/// line, so the inline entry point stays short.
///
/// # Safety
/// As for [`copy_from_shared`].
#[inline(never)]
unsafe fn copy_from_shared_large(src: *const u8, dst: &mut [MaybeUninit<u8>]) {
    // SAFETY: forwarded caller contract.
    unsafe { copy_from_shared_with(copy_strategy(), src, dst) }
}

/// [`copy_from_shared_uninit`] with a given strategy.
///
/// # Safety
/// As for [`copy_from_shared`].
unsafe fn copy_from_shared_with(st: &CopyStrategy, src: *const u8, dst: &mut [MaybeUninit<u8>]) {
    let len = dst.len();
    let d = dst.as_mut_ptr().cast::<u8>();
    let mut i = 0;
    if len >= BULK_MIN {
        // SAFETY: the caller guarantees `src..src+len` is mapped; `dst` is a live exclusive
        // slice of `len` bytes; the two cannot overlap because `dst` is private memory.
        i = unsafe { bulk_copy(st, d, src, len) };
    }
    while i < len && (src as usize + i) % 8 != 0 {
        // SAFETY: `src + i` is inside the caller's mapped range; an AtomicU8 has no alignment
        // requirement; concurrent writers are fine for atomic accesses. `d + i` is in `dst`.
        unsafe {
            d.add(i)
                .write(AtomicU8::from_ptr(src.add(i).cast_mut()).load(Ordering::Relaxed))
        };
        i += 1;
    }
    while i + 8 <= len {
        // SAFETY: `src + i` is 8-byte aligned (the loop above aligned it) and the 8 bytes lie
        // inside the caller's mapped range; atomic loads tolerate concurrent writers. `d + i`
        // has 8 bytes left in `dst` (i + 8 ≤ len); the store is unaligned-safe.
        unsafe {
            let w =
                AtomicU64::from_ptr(src.add(i).cast::<u64>().cast_mut()).load(Ordering::Relaxed);
            d.add(i).cast::<u64>().write_unaligned(w);
        }
        i += 8;
    }
    while i < len {
        // SAFETY: as for the head bytes above.
        unsafe {
            d.add(i)
                .write(AtomicU8::from_ptr(src.add(i).cast_mut()).load(Ordering::Relaxed))
        };
        i += 1;
    }
}

/// Copies `src` into shared memory at `dst`.
///
/// # Safety
/// `dst..dst + src.len()` must lie inside one live, writable mapping that stays mapped for
/// the duration of the call. Concurrent readers in other processes may see torn bytes.
#[inline]
pub(crate) unsafe fn copy_to_shared(dst: *mut u8, src: &[u8]) {
    // SAFETY: `dst..dst+len` is mapped writable (caller's contract); `src` is a live slice
    // of `len` private bytes, so the two do not overlap.
    if unsafe { copied_if_small(dst, src.as_ptr(), src.len()) } {
        return;
    }
    // SAFETY: forwarded caller contract.
    unsafe { copy_to_shared_large(dst, src) }
}

/// [`copy_to_shared`] past the small sizes, with this machine's strategy (out of line, as
/// [`copy_from_shared_large`]).
///
/// # Safety
/// As for [`copy_to_shared`].
#[inline(never)]
unsafe fn copy_to_shared_large(dst: *mut u8, src: &[u8]) {
    // SAFETY: forwarded caller contract.
    unsafe { copy_to_shared_with(copy_strategy(), dst, src) }
}

/// From this many bytes up to [`BULK_MIN`], copies in either direction are [`small_copy`]'s
/// (on x86-64; elsewhere the word loops do them).
#[cfg(target_arch = "x86_64")]
const SMALL_MIN: usize = 16;

/// The size rule both copy directions share: a copy of nothing (a record without
/// metadata, say) is done at once, one of [`SMALL_MIN`]..[`BULK_MIN`] bytes by
/// [`small_copy`]; `false` leaves the copy to the caller's strategy and word loops.
///
/// # Safety
/// `src..src+len` must be readable and `dst..dst+len` writable for the whole call, and
/// the two ranges must not overlap.
#[inline(always)]
unsafe fn copied_if_small(dst: *mut u8, src: *const u8, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    if (SMALL_MIN..BULK_MIN).contains(&len) {
        // SAFETY: forwarded caller contract, and 16 ≤ len < 128.
        unsafe { small_copy(dst, src, len) };
        return true;
    }
    let _ = (dst, src);
    false
}

/// Copies `len` (16 ≤ len < 128) bytes with 16-byte SSE2 moves (every x86-64 CPU has
/// them): the first and the last 16, 32 or 64 bytes, overlapping in the middle, all loads
/// before all stores, as glibc's `memcpy` does for these sizes. One opaque assembly block,
/// so the compiler never sees the shared side's accesses. Where a concurrent writer changes
/// the overlapped bytes between the two loads, `dst` holds one of its versions of each
/// byte, which is what a torn copy may hold anyway.
///
/// # Safety
/// `src..src+len` must be readable and `dst..dst+len` writable for the whole call, the two
/// ranges must not overlap, and `16 ≤ len < 128`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn small_copy(dst: *mut u8, src: *const u8, len: usize) {
    debug_assert!((SMALL_MIN..BULK_MIN).contains(&len));
    // SAFETY: every move is 16 bytes at an offset o of both ranges with 0 ≤ o and
    // o + 16 ≤ len, so inside both (caller's contract): for 16 ≤ len ≤ 32 the offsets are
    // 0 and len − 16; for 33 ≤ len ≤ 64, 0, 16, len − 32 and len − 16; for 65 ≤ len ≤ 127,
    // 0, 16, 32, 48, len − 64, len − 48, len − 32 and len − 16. movdqu needs no alignment;
    // the registers used are declared clobbered; no stack is used; the flags are kept.
    unsafe {
        if len <= 32 {
            core::arch::asm!(
                "movdqu xmm0, [{s}]",
                "movdqu xmm1, [{s} + {n} - 16]",
                "movdqu [{d}], xmm0",
                "movdqu [{d} + {n} - 16], xmm1",
                s = in(reg) src, d = in(reg) dst, n = in(reg) len,
                out("xmm0") _, out("xmm1") _,
                options(nostack, preserves_flags),
            );
        } else if len <= 64 {
            core::arch::asm!(
                "movdqu xmm0, [{s}]",
                "movdqu xmm1, [{s} + 16]",
                "movdqu xmm2, [{s} + {n} - 32]",
                "movdqu xmm3, [{s} + {n} - 16]",
                "movdqu [{d}], xmm0",
                "movdqu [{d} + 16], xmm1",
                "movdqu [{d} + {n} - 32], xmm2",
                "movdqu [{d} + {n} - 16], xmm3",
                s = in(reg) src, d = in(reg) dst, n = in(reg) len,
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                options(nostack, preserves_flags),
            );
        } else {
            core::arch::asm!(
                "movdqu xmm0, [{s}]",
                "movdqu xmm1, [{s} + 16]",
                "movdqu xmm2, [{s} + 32]",
                "movdqu xmm3, [{s} + 48]",
                "movdqu xmm4, [{s} + {n} - 64]",
                "movdqu xmm5, [{s} + {n} - 48]",
                "movdqu xmm6, [{s} + {n} - 32]",
                "movdqu xmm7, [{s} + {n} - 16]",
                "movdqu [{d}], xmm0",
                "movdqu [{d} + 16], xmm1",
                "movdqu [{d} + 32], xmm2",
                "movdqu [{d} + 48], xmm3",
                "movdqu [{d} + {n} - 64], xmm4",
                "movdqu [{d} + {n} - 48], xmm5",
                "movdqu [{d} + {n} - 32], xmm6",
                "movdqu [{d} + {n} - 16], xmm7",
                s = in(reg) src, d = in(reg) dst, n = in(reg) len,
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                options(nostack, preserves_flags),
            );
        }
    }
}

/// [`copy_to_shared`] with a given strategy.
///
/// # Safety
/// As for [`copy_to_shared`].
unsafe fn copy_to_shared_with(st: &CopyStrategy, dst: *mut u8, src: &[u8]) {
    let len = src.len();
    let s = src.as_ptr();
    let mut i = 0;
    if len >= BULK_MIN {
        // SAFETY: the caller guarantees `dst..dst+len` is mapped writable; `src` is a live
        // slice of `len` private bytes, so the ranges do not overlap.
        i = unsafe { bulk_copy(st, dst, s, len) };
    }
    while i < len && (dst as usize + i) % 8 != 0 {
        // SAFETY: `dst + i` is inside the caller's writable mapped range; no alignment needed;
        // `s + i` is inside `src`.
        unsafe { AtomicU8::from_ptr(dst.add(i)).store(s.add(i).read(), Ordering::Relaxed) };
        i += 1;
    }
    while i + 8 <= len {
        // SAFETY: `dst + i` is 8-byte aligned and the 8 bytes are inside the caller's
        // writable mapped range; atomic stores tolerate concurrent readers. `s + i` has 8
        // bytes left in `src`; the load is unaligned-safe.
        unsafe {
            let w = s.add(i).cast::<u64>().read_unaligned();
            AtomicU64::from_ptr(dst.add(i).cast::<u64>()).store(w, Ordering::Relaxed);
        }
        i += 8;
    }
    while i < len {
        // SAFETY: as for the head bytes above.
        unsafe { AtomicU8::from_ptr(dst.add(i)).store(s.add(i).read(), Ordering::Relaxed) };
        i += 1;
    }
}

/// Appends to `out` the bytes at `src..src + len` up to the first 0 byte, loading whole
/// aligned 8-byte words (relaxed atomics) and stopping at the word holding the NUL; returns
/// whether a NUL was found. For NUL-terminated text fields at any alignment (memkv values).
///
/// # Safety
/// Every aligned 8-byte word that overlaps `src..src + len` must lie inside one live
/// mapping for the duration of the call (bytes outside the range are loaded but ignored).
pub(crate) unsafe fn read_cstr_from_shared(src: *const u8, len: usize, out: &mut Vec<u8>) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let start = src as usize;
    let end = start + len;
    out.reserve(len);
    let mut w = start & !7;
    while w < end {
        // SAFETY: `w` is 8-aligned and overlaps the range, so the caller guarantees the
        // word is mapped; an atomic load tolerates concurrent writers.
        let x = unsafe { AtomicU64::from_ptr(w as *mut u64) }.load(Ordering::Relaxed);
        let lo = start.saturating_sub(w);
        let hi = (end - w).min(8);
        // A whole word inside the range with no 0 byte (the classic has-zero-byte test,
        // exact as a yes/no): append it at once.
        if lo == 0 && hi == 8 && x.wrapping_sub(ONES) & !x & HIGHS == 0 {
            out.extend_from_slice(&x.to_ne_bytes());
            w += 8;
            continue;
        }
        let word = x.to_ne_bytes();
        let bytes = &word[lo..hi];
        if let Some(z) = bytes.iter().position(|&b| b == 0) {
            out.extend_from_slice(&bytes[..z]);
            return true;
        }
        out.extend_from_slice(bytes);
        w += 8;
    }
    false
}

/// Writes `src` and then zero bytes to the `field_len`-byte field at `dst` (a C string
/// field padded with NULs, as `strncpy` leaves it), in one pass of aligned word stores
/// between the unaligned head and tail bytes. `src.len()` must not exceed `field_len`.
///
/// # Safety
/// `dst..dst + field_len` must be mapped writable for the duration of the call.
pub(crate) unsafe fn write_padded_to_shared(dst: *mut u8, src: &[u8], field_len: usize) {
    debug_assert!(src.len() <= field_len);
    let n = src.len().min(field_len);
    let s = src.as_ptr();
    // Head: single bytes up to the first 8-byte boundary of `dst` (or the field's end).
    let head = ((8 - dst as usize % 8) % 8).min(field_len);
    let mut i = 0;
    while i < head {
        let b = if i < n {
            // SAFETY: i < n ≤ src.len().
            unsafe { s.add(i).read() }
        } else {
            0
        };
        // SAFETY: `dst + i` is inside the caller's writable range (i < field_len).
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(b, Ordering::Relaxed);
        i += 1;
    }
    // Whole words of text.
    while i + 8 <= n {
        // SAFETY: `s + i` has 8 bytes left in `src` (read unaligned); `dst + i` is 8-byte
        // aligned with 8 bytes left in the caller's writable range (i + 8 ≤ n ≤ field_len);
        // atomic stores tolerate concurrent readers.
        unsafe {
            let w = s.add(i).cast::<u64>().read_unaligned();
            AtomicU64::from_ptr(dst.add(i).cast::<u64>()).store(w, Ordering::Relaxed);
        }
        i += 8;
    }
    // The word where the text ends: its last bytes, then NULs.
    if i < n && i + 8 <= field_len {
        // 1..=7 bytes of text, built in a register: a partial copy into a stack word and a
        // reload of all eight bytes would stall on store forwarding.
        let k = n - i;
        let w = if n >= 8 {
            // SAFETY: n - 8 ≥ 0 and the 8 bytes end at n ≤ src.len(); read unaligned.
            let last8 = unsafe { s.add(n - 8).cast::<[u8; 8]>().read_unaligned() };
            // Its top k bytes (in memory order) are the text's last k bytes.
            u64::from_le_bytes(last8) >> (8 * (8 - k))
        } else {
            src[i..n]
                .iter()
                .rev()
                .fold(0u64, |w, &b| (w << 8) | u64::from(b))
        };
        // SAFETY: as for the whole words above (i + 8 ≤ field_len).
        unsafe { AtomicU64::from_ptr(dst.add(i).cast::<u64>()) }
            .store(u64::from_ne_bytes(w.to_le_bytes()), Ordering::Relaxed);
        i += 8;
    }
    // NUL words.
    while i + 8 <= field_len {
        // SAFETY: as for the whole words above.
        unsafe { AtomicU64::from_ptr(dst.add(i).cast::<u64>()) }.store(0, Ordering::Relaxed);
        i += 8;
    }
    // Tail: single bytes after the last whole word.
    while i < field_len {
        let b = if i < n {
            // SAFETY: i < n ≤ src.len().
            unsafe { s.add(i).read() }
        } else {
            0
        };
        // SAFETY: as for the head bytes.
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(b, Ordering::Relaxed);
        i += 1;
    }
}

/// Fills `len` bytes of shared memory at `dst` with `byte`.
///
/// # Safety
/// As for [`copy_to_shared`].
pub(crate) unsafe fn fill_shared(dst: *mut u8, byte: u8, len: usize) {
    // SAFETY: forwarded caller contract.
    unsafe { fill_shared_with(copy_strategy(), dst, byte, len) }
}

/// [`fill_shared`] with a given strategy.
///
/// # Safety
/// As for [`copy_to_shared`].
unsafe fn fill_shared_with(st: &CopyStrategy, dst: *mut u8, byte: u8, len: usize) {
    let word = u64::from_ne_bytes([byte; 8]);
    let mut i = 0;
    if len >= BULK_MIN {
        // SAFETY: the caller guarantees `dst..dst+len` is mapped writable.
        i = unsafe { bulk_fill(st, dst, byte, len) };
    }
    while i < len && (dst as usize + i) % 8 != 0 {
        // SAFETY: `dst + i` is inside the caller's writable mapped range.
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(byte, Ordering::Relaxed);
        i += 1;
    }
    while i + 8 <= len {
        // SAFETY: `dst + i` is 8-aligned with 8 bytes left in the caller's writable range.
        unsafe { AtomicU64::from_ptr(dst.add(i).cast::<u64>()) }.store(word, Ordering::Relaxed);
        i += 8;
    }
    while i < len {
        // SAFETY: as for the head bytes.
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(byte, Ordering::Relaxed);
        i += 1;
    }
}

/// The copy/fill plan names accepted by `MEMBUS_COPY` (see [`CopyStrategy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyPlan {
    /// glibc's plan on Intel: `rep movsb`/`rep stosb` (with ERMS) from glibc's
    /// thresholds up to the non-temporal threshold, vector moves below, non-temporal
    /// stores above.
    Intel,
    /// The plan measured on AMD Zen 4 (family 0x19), chosen for AMD CPUs before Zen 5:
    /// vector moves for copies of every size up to the non-temporal threshold, `rep stosb`
    /// only for fills of 256 KiB up to 4 MiB (where it beat vector stores there),
    /// non-temporal stores above the threshold.
    Amd,
    /// The plan measured on AMD Zen 5 (family 0x1A), chosen for AMD family 0x1A and later:
    /// glibc's string-instruction thresholds as on Intel (`rep movsb` from 2112 bytes with
    /// FSRM, `rep stosb` from 2048, both up to the non-temporal threshold), with 64-byte
    /// AVX-512 moves below them where the CPU has AVX-512 (Zen 5 runs them at full width).
    /// Zen 5's string instructions store whole lines without reading them first, which
    /// vector stores must: copies into and fills of memory that is not in the cache ran
    /// 1.3–2× faster than with the `amd` plan there.
    Zen5,
    /// Vector moves only (no string instructions, no non-temporal stores).
    Vector,
    /// `rep movsb`/`rep stosb` from 128 bytes on, nothing else.
    Rep,
    /// Relaxed 8-byte atomic words only (no bulk path): the reference.
    Words,
}

impl CopyPlan {
    /// The plan's name as `MEMBUS_COPY` spells it.
    pub fn name(self) -> &'static str {
        match self {
            CopyPlan::Intel => "intel",
            CopyPlan::Amd => "amd",
            CopyPlan::Zen5 => "zen5",
            CopyPlan::Vector => "vector",
            CopyPlan::Rep => "rep",
            CopyPlan::Words => "words",
        }
    }
}

/// How membus copies bytes into and out of shared memory on this CPU, chosen once per
/// process from CPUID the way glibc's `memcpy`/`memset` choose (vendor, ERMS/FSRM,
/// AVX2/AVX-512, cache sizes), and the size of each copy.
///
/// Every path is one inline-assembly loop (opaque to the compiler, as the soundness rule
/// for shared memory requires) followed by relaxed atomic words for the tail:
///
/// * below 128 bytes: relaxed 8-byte atomic words;
/// * `[movsb_from, movsb_to)`: one `rep movsb`, unless the two sides share their offset in
///   a 4 KiB page (4K aliasing, which makes it ten times slower on AMD Zen): then the
///   vector moves below; `[stosb_from, stosb_to)`: one `rep stosb`;
/// * from `nt_from` on: 32-byte non-temporal stores (`vmovntdq`, then `sfence`), which do
///   not evict the caches for data no one reads soon — glibc's threshold, a quarter of the
///   shared L3 (glibc ≥ 2.38), at least 16 KiB;
/// * otherwise: `vec`-byte vector moves (32 = AVX2, 64 = AVX-512), 128 bytes per iteration.
///
/// On Intel it follows glibc's plan ([`CopyPlan::Intel`]: `rep movsb` from 2112 bytes with
/// FSRM, else 2048 × vector width ÷ 16; `rep stosb` from 2048; 32-byte vectors, as glibc
/// prefers on AVX-512 Intel parts to avoid frequency drops); on AMD Zen 5 (family 0x1A)
/// and later the same thresholds with 64-byte vectors ([`CopyPlan::Zen5`]); on earlier AMD
/// CPUs and any other vendor the plan measured on AMD Zen 4 ([`CopyPlan::Amd`]). The
/// environment variable `MEMBUS_COPY`, read once, forces another: a comma-separated list of
/// a plan name (`intel`, `amd`, `zen5`, `vector`, `rep`, `words`) and the settings
/// `vec=32|64` and `nt=BYTES|off`, e.g. `MEMBUS_COPY=intel` or
/// `MEMBUS_COPY=amd,nt=off`. A value this CPU cannot run (`vec=64` without AVX-512) or
/// cannot parse is ignored (the automatic choice stays) and reported in
/// [`override_error`](Self::override_error).
#[derive(Clone, Debug)]
pub struct CopyStrategy {
    /// The CPU the strategy was chosen for.
    pub cpu: crate::sys::cpu::CpuInfo,
    /// The plan in force.
    pub plan: CopyPlan,
    /// True when `MEMBUS_COPY` chose it.
    pub forced: bool,
    /// Why a `MEMBUS_COPY` value was rejected, if it was.
    pub override_error: Option<String>,
    /// Vector width in bytes (32 or 64), 0 for none.
    pub vec: usize,
    /// Copies of `movsb_from..movsb_to` bytes use `rep movsb`.
    pub movsb_from: usize,
    /// See `movsb_from`.
    pub movsb_to: usize,
    /// Fills of `stosb_from..stosb_to` bytes use `rep stosb`.
    pub stosb_from: usize,
    /// See `stosb_from`.
    pub stosb_to: usize,
    /// Copies and fills of at least this many bytes use non-temporal stores
    /// (`usize::MAX`: never).
    pub nt_from: usize,
}

impl std::fmt::Display for CopyStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let range = |a: usize, b: usize| {
            if a >= b {
                "never".to_string()
            } else if b == usize::MAX {
                format!("{a}+ B")
            } else {
                format!("{a}..{b} B")
            }
        };
        write!(
            f,
            "plan {}{}, vector {} B, rep movsb {}, rep stosb {}, non-temporal {}",
            self.plan.name(),
            if self.forced { " (MEMBUS_COPY)" } else { "" },
            self.vec,
            range(self.movsb_from, self.movsb_to),
            range(self.stosb_from, self.stosb_to),
            range(self.nt_from, usize::MAX),
        )
    }
}

/// Below this many bytes the word loop does the whole copy.
const BULK_MIN: usize = 128;
/// Without vectors, `rep movsb`/`rep stosb` only pay off from this size (start-up cost).
const REP_MIN: usize = 2048;
/// The AMD plan's `rep stosb` window (measured on AMD EPYC guests: 63 vs 53 GB/s at 900 KB,
/// vector stores below (38 vs 58 ns at 3840 B) and for multi-megabyte fills).
const AMD_STOSB: (usize, usize) = (256 * 1024, 4 * 1024 * 1024);
/// AMD's CPUID family of Zen 5 (EPYC 9005 "Turin", Ryzen 9000), from which
/// [`CopyPlan::Zen5`] is chosen.
const ZEN5_FAMILY: u32 = 0x1a;

impl CopyStrategy {
    /// glibc's non-temporal threshold: a quarter of the shared L3 (glibc 2.38's rule),
    /// at least 16 KiB (glibc's floor, 0x4040); without a known L3, 3/4 of the L2.
    fn glibc_nt_threshold(cpu: &crate::sys::cpu::CpuInfo) -> usize {
        let t = if cpu.l3 > 0 {
            cpu.l3 / 4
        } else if cpu.l2 > 0 {
            cpu.l2 * 3 / 4
        } else {
            return usize::MAX;
        };
        t.max(0x4040)
    }

    /// The strategy `plan` gives on `cpu` (with the vector width the plan picks).
    pub(crate) fn for_plan(cpu: crate::sys::cpu::CpuInfo, plan: CopyPlan) -> CopyStrategy {
        let vec = if cpu.avx2 { 32 } else { 0 };
        let never = (usize::MAX, usize::MAX);
        let nt = if vec > 0 {
            Self::glibc_nt_threshold(&cpu)
        } else {
            usize::MAX
        };
        let (vec, movsb, stosb, nt_from) = match plan {
            CopyPlan::Words => (0, never, never, usize::MAX),
            CopyPlan::Rep => (
                0,
                (BULK_MIN, usize::MAX),
                (BULK_MIN, usize::MAX),
                usize::MAX,
            ),
            CopyPlan::Vector if vec > 0 => (vec, never, never, usize::MAX),
            _ if vec == 0 => (0, (REP_MIN, usize::MAX), (REP_MIN, usize::MAX), usize::MAX),
            CopyPlan::Vector => unreachable!("handled above"),
            CopyPlan::Intel | CopyPlan::Zen5 => {
                let vec = if plan == CopyPlan::Zen5 && cpu.avx512f {
                    64
                } else {
                    vec
                };
                let (movsb, stosb) = if cpu.erms || cpu.fsrm {
                    let from = if cpu.fsrm { 2112 } else { 2048 * vec / 16 };
                    ((from, nt), (2048, nt))
                } else {
                    (never, never)
                };
                (vec, movsb, stosb, nt)
            }
            CopyPlan::Amd => {
                let stosb = if cpu.erms {
                    (AMD_STOSB.0, AMD_STOSB.1.min(nt))
                } else {
                    never
                };
                (vec, never, stosb, nt)
            }
        };
        CopyStrategy {
            cpu,
            plan,
            forced: false,
            override_error: None,
            vec,
            movsb_from: movsb.0,
            movsb_to: movsb.1,
            stosb_from: stosb.0,
            stosb_to: stosb.1,
            nt_from,
        }
    }

    /// The automatic choice for `cpu`, then `MEMBUS_COPY` (`over`) applied if it is valid.
    pub(crate) fn choose(cpu: crate::sys::cpu::CpuInfo, over: Option<&str>) -> CopyStrategy {
        let auto = if cpu.is_intel() {
            CopyPlan::Intel
        } else if cpu.is_amd() && cpu.family >= ZEN5_FAMILY {
            CopyPlan::Zen5
        } else {
            CopyPlan::Amd
        };
        let Some(text) = over
            .map(str::trim)
            .filter(|t| !t.is_empty() && *t != "auto")
        else {
            return Self::for_plan(cpu, auto);
        };
        match Self::parse_override(&cpu, auto, text) {
            Ok(mut s) => {
                s.forced = true;
                s
            }
            Err(e) => {
                let mut s = Self::for_plan(cpu, auto);
                s.override_error = Some(format!("MEMBUS_COPY={text:?} ignored: {e}"));
                s
            }
        }
    }

    fn parse_override(
        cpu: &crate::sys::cpu::CpuInfo,
        auto: CopyPlan,
        text: &str,
    ) -> std::result::Result<CopyStrategy, String> {
        let (mut plan, mut vec, mut nt) = (None, None, None);
        for tok in text.split(',').map(str::trim) {
            match tok.split_once('=') {
                None => {
                    let p = match tok {
                        "intel" => CopyPlan::Intel,
                        "amd" => CopyPlan::Amd,
                        "zen5" => CopyPlan::Zen5,
                        "vector" => CopyPlan::Vector,
                        "rep" => CopyPlan::Rep,
                        "words" => CopyPlan::Words,
                        "auto" => auto,
                        _ => return Err(format!("unknown plan {tok:?}")),
                    };
                    plan = Some(p);
                }
                Some(("vec", v)) => {
                    let w: usize = v.parse().map_err(|_| format!("bad vec {v:?}"))?;
                    match w {
                        32 if cpu.avx2 => {}
                        64 if cpu.avx512f => {}
                        32 | 64 => return Err(format!("this CPU cannot run vec={w}")),
                        _ => return Err(format!("vec must be 32 or 64, not {w}")),
                    }
                    vec = Some(w);
                }
                Some(("nt", v)) => {
                    nt = Some(if v == "off" {
                        usize::MAX
                    } else {
                        v.parse::<usize>()
                            .map_err(|_| format!("bad nt {v:?}"))?
                            .max(BULK_MIN)
                    });
                }
                Some((k, _)) => return Err(format!("unknown setting {k:?}")),
            }
        }
        let mut s = Self::for_plan(cpu.clone(), plan.unwrap_or(auto));
        if let Some(w) = vec {
            if s.vec == 0 {
                return Err(format!("plan {} uses no vectors", s.plan.name()));
            }
            s.vec = w;
        }
        if let Some(n) = nt {
            if n != usize::MAX && !cpu.avx2 {
                return Err("non-temporal stores need AVX2".into());
            }
            // The string-instruction windows end where non-temporal stores begin.
            if s.movsb_to == s.nt_from {
                s.movsb_to = n;
            }
            if s.stosb_to == s.nt_from || s.stosb_to > n {
                s.stosb_to = n.max(s.stosb_from);
            }
            s.nt_from = n;
        }
        Ok(s)
    }
}

static STRATEGY: std::sync::OnceLock<CopyStrategy> = std::sync::OnceLock::new();

/// The copy strategy of this process, chosen on first use (see [`CopyStrategy`]).
pub fn copy_strategy() -> &'static CopyStrategy {
    STRATEGY.get_or_init(|| {
        let over = std::env::var("MEMBUS_COPY").ok();
        CopyStrategy::choose(crate::sys::cpu::CpuInfo::detect(), over.as_deref())
    })
}

/// Copies a prefix of `len` bytes with one opaque assembly loop as `s` says and returns
/// how many bytes it copied (the caller's word loop does the rest).
///
/// # Safety
/// `src..src+len` must be readable and `dst..dst+len` writable for the whole call, and
/// the two ranges must not overlap.
#[cfg(target_arch = "x86_64")]
unsafe fn bulk_copy(s: &CopyStrategy, dst: *mut u8, src: *const u8, len: usize) -> usize {
    if len >= s.nt_from && s.vec > 0 {
        // SAFETY: forwarded contract; `vec > 0` means AVX2 is present (`for_plan`).
        return unsafe { nt_copy(dst, src, len) };
    }
    if (s.movsb_from..s.movsb_to).contains(&len) && !aliased(dst as usize, src as usize) {
        // SAFETY: forwarded contract.
        unsafe { rep_movsb(dst, src, len) };
        return len;
    }
    match s.vec {
        // SAFETY: forwarded contract; vec=64 is only set when AVX-512F is present.
        64 => unsafe { vec64_copy(dst, src, len) },
        // SAFETY: forwarded contract; vec=32 is only set when AVX2 is present.
        32 => unsafe { vec32_copy(dst, src, len) },
        _ => 0,
    }
}

/// 32-byte AVX2 moves, four per iteration, for the largest multiple of 128 bytes ≤ `len`;
/// returns that count.
///
/// # Safety
/// As for `bulk_copy`, and AVX2 must be present.
#[cfg(target_arch = "x86_64")]
unsafe fn vec32_copy(dst: *mut u8, src: *const u8, len: usize) -> usize {
    let n = len & !127;
    if n == 0 {
        return 0;
    }
    // SAFETY: AVX2 is present (caller); n is a positive multiple of 128 and ≤ len, so every
    // 128-byte step stays inside both ranges (caller's contract); unaligned vmovdqu needs
    // no alignment; the registers used are declared clobbered; vzeroupper avoids AVX/SSE
    // transition penalties after the loop; no stack is used.
    unsafe {
        core::arch::asm!(
            "2:",
            "vmovdqu ymm0, [{s}]",
            "vmovdqu ymm1, [{s} + 32]",
            "vmovdqu ymm2, [{s} + 64]",
            "vmovdqu ymm3, [{s} + 96]",
            "vmovdqu [{d}], ymm0",
            "vmovdqu [{d} + 32], ymm1",
            "vmovdqu [{d} + 64], ymm2",
            "vmovdqu [{d} + 96], ymm3",
            "add {s}, 128",
            "add {d}, 128",
            "sub {n}, 128",
            "jnz 2b",
            "vzeroupper",
            s = inout(reg) src => _,
            d = inout(reg) dst => _,
            n = inout(reg) n => _,
            out("ymm0") _,
            out("ymm1") _,
            out("ymm2") _,
            out("ymm3") _,
            options(nostack),
        );
    }
    n
}

/// 64-byte AVX-512 moves, two per iteration, for the largest multiple of 128 bytes ≤
/// `len`; returns that count.
///
/// # Safety
/// As for `bulk_copy`, and AVX-512F must be present.
#[cfg(target_arch = "x86_64")]
unsafe fn vec64_copy(dst: *mut u8, src: *const u8, len: usize) -> usize {
    let n = len & !127;
    if n == 0 {
        return 0;
    }
    // SAFETY: AVX-512F is present (caller); n is a positive multiple of 128 and ≤ len, so
    // every step stays inside both ranges; vmovdqu64 needs no alignment; zmm0/zmm1 are
    // declared clobbered; vzeroupper as in `vec32_copy`; no stack is used.
    unsafe {
        core::arch::asm!(
            "2:",
            "vmovdqu64 zmm0, [{s}]",
            "vmovdqu64 zmm1, [{s} + 64]",
            "vmovdqu64 [{d}], zmm0",
            "vmovdqu64 [{d} + 64], zmm1",
            "add {s}, 128",
            "add {d}, 128",
            "sub {n}, 128",
            "jnz 2b",
            "vzeroupper",
            s = inout(reg) src => _,
            d = inout(reg) dst => _,
            n = inout(reg) n => _,
            out("zmm0") _,
            out("zmm1") _,
            options(nostack),
        );
    }
    n
}

/// Non-temporal copy: one unaligned 32-byte move for the head, then 32-byte-aligned
/// `vmovntdq` stores four per iteration, then `sfence` (so the stores are ordered before
/// any later release store, as ordinary stores would be); returns the prefix length copied.
///
/// # Safety
/// As for `bulk_copy`, and AVX2 must be present.
#[cfg(target_arch = "x86_64")]
unsafe fn nt_copy(dst: *mut u8, src: *const u8, len: usize) -> usize {
    if len < 160 {
        // SAFETY: forwarded contract.
        return unsafe { vec32_copy(dst, src, len) };
    }
    let head = (32 - dst as usize % 32) % 32;
    // len ≥ 160 > head + 127, so n > 0.
    let n = (len - head) & !127;
    // SAFETY: AVX2 present (caller). The head move covers bytes 0..32 ≤ len of both ranges;
    // the loop covers head..head+n ≤ len with `d` 32-byte aligned as vmovntdq requires
    // (dst + head is a multiple of 32); source loads are unaligned vmovdqu; `sfence` orders
    // the weakly ordered stores before the caller's later stores; the registers used are
    // declared clobbered; no stack is used.
    unsafe {
        core::arch::asm!(
            "vmovdqu ymm0, [{s0}]",
            "vmovdqu [{d0}], ymm0",
            "2:",
            "vmovdqu ymm0, [{s}]",
            "vmovdqu ymm1, [{s} + 32]",
            "vmovdqu ymm2, [{s} + 64]",
            "vmovdqu ymm3, [{s} + 96]",
            "vmovntdq [{d}], ymm0",
            "vmovntdq [{d} + 32], ymm1",
            "vmovntdq [{d} + 64], ymm2",
            "vmovntdq [{d} + 96], ymm3",
            "add {s}, 128",
            "add {d}, 128",
            "sub {n}, 128",
            "jnz 2b",
            "sfence",
            "vzeroupper",
            s0 = in(reg) src,
            d0 = in(reg) dst,
            s = inout(reg) src.add(head) => _,
            d = inout(reg) dst.add(head) => _,
            n = inout(reg) n => _,
            out("ymm0") _,
            out("ymm1") _,
            out("ymm2") _,
            out("ymm3") _,
            options(nostack),
        );
    }
    head + n
}

/// Fills a prefix of `len` bytes at `dst` with `byte` with one opaque assembly loop as `s`
/// says and returns how many bytes it filled.
///
/// # Safety
/// `dst..dst+len` must be writable for the whole call.
#[cfg(target_arch = "x86_64")]
unsafe fn bulk_fill(s: &CopyStrategy, dst: *mut u8, byte: u8, len: usize) -> usize {
    if len >= s.nt_from && s.vec > 0 {
        // SAFETY: forwarded contract; vec > 0 means AVX2 is present.
        return unsafe { nt_fill(dst, byte, len) };
    }
    if (s.stosb_from..s.stosb_to).contains(&len) {
        // SAFETY: forwarded contract.
        unsafe { rep_stosb(dst, byte, len) };
        return len;
    }
    match s.vec {
        // SAFETY: forwarded contract; vec=64 only with AVX-512F.
        64 => unsafe { vec64_fill(dst, byte, len) },
        // SAFETY: forwarded contract; vec=32 only with AVX2.
        32 => unsafe { vec32_fill(dst, byte, len) },
        _ => 0,
    }
}

/// AVX2 stores of `byte`, four per iteration, for the largest multiple of 128 bytes ≤ `len`.
///
/// # Safety
/// `dst..dst+len` writable; AVX2 present.
#[cfg(target_arch = "x86_64")]
unsafe fn vec32_fill(dst: *mut u8, byte: u8, len: usize) -> usize {
    let n = len & !127;
    if n == 0 {
        return 0;
    }
    // SAFETY: AVX2 is present (caller); n is a positive multiple of 128 and ≤ len, so every
    // store stays inside the caller's writable range; ymm0 and the pointer/count registers
    // are declared clobbered; vzeroupper as in `vec32_copy`; no stack is used.
    unsafe {
        core::arch::asm!(
            "vmovd xmm0, {b:e}",
            "vpbroadcastb ymm0, xmm0",
            "2:",
            "vmovdqu [{d}], ymm0",
            "vmovdqu [{d} + 32], ymm0",
            "vmovdqu [{d} + 64], ymm0",
            "vmovdqu [{d} + 96], ymm0",
            "add {d}, 128",
            "sub {n}, 128",
            "jnz 2b",
            "vzeroupper",
            b = in(reg) u32::from(byte),
            d = inout(reg) dst => _,
            n = inout(reg) n => _,
            out("ymm0") _,
            options(nostack),
        );
    }
    n
}

/// AVX-512 stores of `byte`, two per iteration, for the largest multiple of 128 bytes ≤ `len`.
///
/// # Safety
/// `dst..dst+len` writable; AVX-512F present.
#[cfg(target_arch = "x86_64")]
unsafe fn vec64_fill(dst: *mut u8, byte: u8, len: usize) -> usize {
    let n = len & !127;
    if n == 0 {
        return 0;
    }
    let word = u64::from_ne_bytes([byte; 8]);
    // SAFETY: AVX-512F is present (caller); n is a positive multiple of 128 and ≤ len, so
    // every store stays inside the caller's writable range; vpbroadcastq from a general
    // register is AVX-512F; zmm0 is declared clobbered; no stack is used.
    unsafe {
        core::arch::asm!(
            "vpbroadcastq zmm0, {w}",
            "2:",
            "vmovdqu64 [{d}], zmm0",
            "vmovdqu64 [{d} + 64], zmm0",
            "add {d}, 128",
            "sub {n}, 128",
            "jnz 2b",
            "vzeroupper",
            w = in(reg) word,
            d = inout(reg) dst => _,
            n = inout(reg) n => _,
            out("zmm0") _,
            options(nostack),
        );
    }
    n
}

/// Non-temporal fill: an unaligned 32-byte head store, then aligned `vmovntdq` stores,
/// then `sfence`; returns the prefix length filled.
///
/// # Safety
/// `dst..dst+len` writable; AVX2 present.
#[cfg(target_arch = "x86_64")]
unsafe fn nt_fill(dst: *mut u8, byte: u8, len: usize) -> usize {
    if len < 160 {
        // SAFETY: forwarded contract.
        return unsafe { vec32_fill(dst, byte, len) };
    }
    let head = (32 - dst as usize % 32) % 32;
    // len ≥ 160 > head + 127, so n > 0.
    let n = (len - head) & !127;
    // SAFETY: AVX2 present (caller); the head store covers 0..32 ≤ len; the loop covers
    // head..head+n ≤ len with a 32-byte-aligned pointer as vmovntdq requires; n > 0 since
    // len ≥ 160 > head + 127; `sfence` orders the stores before the caller's later
    // (release) stores; ymm0 and the pointer/count registers are declared clobbered.
    unsafe {
        core::arch::asm!(
            "vmovd xmm0, {b:e}",
            "vpbroadcastb ymm0, xmm0",
            "vmovdqu [{d0}], ymm0",
            "2:",
            "vmovntdq [{d}], ymm0",
            "vmovntdq [{d} + 32], ymm0",
            "vmovntdq [{d} + 64], ymm0",
            "vmovntdq [{d} + 96], ymm0",
            "add {d}, 128",
            "sub {n}, 128",
            "jnz 2b",
            "sfence",
            "vzeroupper",
            b = in(reg) u32::from(byte),
            d0 = in(reg) dst,
            d = inout(reg) dst.add(head) => _,
            n = inout(reg) n => _,
            out("ymm0") _,
            options(nostack),
        );
    }
    head + n
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn bulk_fill(s: &CopyStrategy, dst: *mut u8, byte: u8, len: usize) -> usize {
    if !(s.stosb_from..s.stosb_to).contains(&len) {
        return 0;
    }
    // SAFETY: forwarded contract.
    unsafe { rep_stosb(dst, byte, len) };
    len
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn bulk_copy(s: &CopyStrategy, dst: *mut u8, src: *const u8, len: usize) -> usize {
    if !(s.movsb_from..s.movsb_to).contains(&len) {
        return 0;
    }
    // SAFETY: forwarded contract.
    unsafe { rep_movsb(dst, src, len) };
    len
}

#[cfg(target_arch = "x86_64")]
unsafe fn rep_movsb(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the callers guarantee both ranges are valid for `len` bytes; the direction flag
    // is clear on entry per the SysV ABI, so the copy runs forwards; rcx/rdi/rsi are declared
    // clobbered and no stack is used.
    unsafe {
        core::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
}

#[cfg(target_arch = "x86_64")]
unsafe fn rep_stosb(dst: *mut u8, byte: u8, len: usize) {
    // SAFETY: the caller guarantees `dst..dst+len` is writable; DF is clear per the ABI;
    // rcx/rdi are declared clobbered, al is an input only, no stack is used.
    unsafe {
        core::arch::asm!(
            "rep stosb",
            inout("rcx") len => _,
            inout("rdi") dst => _,
            in("al") byte,
            options(nostack, preserves_flags)
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn rep_movsb(dst: *mut u8, src: *const u8, len: usize) {
    for i in 0..len {
        // SAFETY: both ranges are valid for `len` bytes (caller's contract); byte atomics
        // need no alignment and tolerate concurrent access on the shared side.
        unsafe {
            let b = AtomicU8::from_ptr(src.add(i).cast_mut()).load(Ordering::Relaxed);
            AtomicU8::from_ptr(dst.add(i)).store(b, Ordering::Relaxed);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn rep_stosb(dst: *mut u8, byte: u8, len: usize) {
    for i in 0..len {
        // SAFETY: `dst..dst+len` is writable (caller's contract).
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(byte, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_round_trip_at_every_alignment_and_size() {
        let mut shared = vec![0u64; 1024]; // 8 KiB, 8-byte aligned backing: off + len < 8192
        let base = shared.as_mut_ptr().cast::<u8>();
        for &len in &[
            0usize, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 2047, 2048,
            2305, 4000, 4099,
        ] {
            for off in 0..9 {
                let src: Vec<u8> = (0..len).map(|i| (i * 31 + off) as u8).collect();
                // SAFETY: off + len ≤ 8 + 4099 < 8192 bytes of `shared`.
                unsafe { copy_to_shared(base.add(off), &src) };
                let mut back = vec![0u8; len];
                // SAFETY: as above.
                unsafe { copy_from_shared(base.add(off), &mut back) };
                assert_eq!(back, src, "len {len} off {off}");
            }
        }
        // SAFETY: 100 + 3000 < 8192.
        unsafe { fill_shared(base.add(100), 0xab, 3000) };
        let mut back = vec![0u8; 3000];
        // SAFETY: as above.
        unsafe { copy_from_shared(base.add(100), &mut back) };
        assert!(back.iter().all(|&b| b == 0xab));
    }

    /// Every plan this CPU can run, plus variants whose thresholds are small enough that
    /// the test sizes cross each path (string instructions, non-temporal stores, AVX-512).
    fn test_strategies() -> Vec<CopyStrategy> {
        let cpu = crate::sys::cpu::CpuInfo::detect();
        let mut out = Vec::new();
        for plan in [
            CopyPlan::Intel,
            CopyPlan::Amd,
            CopyPlan::Zen5,
            CopyPlan::Vector,
            CopyPlan::Rep,
            CopyPlan::Words,
        ] {
            out.push(CopyStrategy::for_plan(cpu.clone(), plan));
        }
        for text in [
            "intel,nt=1000",
            "amd,nt=2100",
            "intel,vec=64",
            "vector,vec=64,nt=3000",
        ] {
            let s = CopyStrategy::choose(cpu.clone(), Some(text));
            if s.override_error.is_none() {
                out.push(s);
            }
        }
        let mut small = CopyStrategy::for_plan(cpu, CopyPlan::Intel);
        small.movsb_from = 200;
        small.movsb_to = 3000;
        small.stosb_from = 200;
        small.stosb_to = 3000;
        out.push(small);
        out
    }

    #[test]
    fn every_plan_copies_and_fills_exactly() {
        let mut shared = vec![0u64; 1280]; // 10 KiB
        let base = shared.as_mut_ptr().cast::<u8>();
        for st in test_strategies() {
            for &len in &[
                0usize, 7, 127, 128, 129, 200, 1000, 2047, 2100, 2200, 4099, 9000,
            ] {
                for off in [0usize, 1, 8, 31, 33, 100] {
                    let src: Vec<u8> = (0..len).map(|i| (i * 13 + off + 1) as u8).collect();
                    // SAFETY: off + len + 8 ≤ 100 + 9000 + 8 < 10240 bytes of `shared`.
                    unsafe {
                        fill_shared_with(&st, base.add(off), 0x5a, len + 8);
                        copy_to_shared_with(&st, base.add(off), &src);
                    }
                    let mut back = vec![MaybeUninit::new(0u8); len + 8];
                    // SAFETY: as above.
                    unsafe { copy_from_shared_with(&st, base.add(off), &mut back) };
                    // SAFETY: every byte was written by the copy.
                    let back: Vec<u8> = back.iter().map(|b| unsafe { b.assume_init() }).collect();
                    assert_eq!(&back[..len], &src[..], "{st} len {len} off {off}");
                    assert!(
                        back[len..].iter().all(|&b| b == 0x5a),
                        "{st} len {len} off {off}"
                    );
                }
            }
        }
    }

    #[test]
    fn overrides_parse_or_are_reported() {
        let cpu = crate::sys::cpu::CpuInfo {
            vendor: "GenuineIntel".into(),
            erms: true,
            fsrm: true,
            avx2: true,
            l2: 2 << 20,
            l3: 64 << 20,
            l3_sharing: 16,
            ..Default::default()
        };
        let auto = CopyStrategy::choose(cpu.clone(), None);
        assert_eq!(auto.plan, CopyPlan::Intel);
        assert_eq!((auto.movsb_from, auto.stosb_from), (2112, 2048));
        assert_eq!(auto.nt_from, 16 << 20);
        assert_eq!(auto.movsb_to, auto.nt_from);
        let amd = CopyStrategy::choose(cpu.clone(), Some("amd,nt=off"));
        assert!(amd.forced && amd.override_error.is_none());
        assert_eq!(
            (amd.plan, amd.nt_from, amd.movsb_from),
            (CopyPlan::Amd, usize::MAX, usize::MAX)
        );
        for bad in ["bogus", "vec=64", "vec=16", "nt=lots", "speed=11"] {
            let s = CopyStrategy::choose(cpu.clone(), Some(bad));
            assert!(!s.forced, "{bad}");
            assert_eq!(s.plan, CopyPlan::Intel, "{bad}");
            assert!(
                s.override_error.as_deref().unwrap_or("").contains(bad),
                "{bad}"
            );
        }
        let mut zen = cpu;
        zen.vendor = "AuthenticAMD".into();
        zen.family = 0x19;
        let z = CopyStrategy::choose(zen.clone(), None);
        assert_eq!(
            (z.plan, z.vec, z.movsb_from),
            (CopyPlan::Amd, 32, usize::MAX)
        );
        assert_eq!((z.stosb_from, z.stosb_to), AMD_STOSB);
        // Zen 5: glibc's string thresholds, 64-byte vectors only with AVX-512.
        zen.family = 0x1a;
        let z5 = CopyStrategy::choose(zen.clone(), None);
        assert_eq!(
            (z5.plan, z5.vec, z5.movsb_from, z5.stosb_from),
            (CopyPlan::Zen5, 32, 2112, 2048)
        );
        assert_eq!((z5.movsb_to, z5.stosb_to), (z5.nt_from, z5.nt_from));
        zen.avx512f = true;
        assert_eq!(CopyStrategy::choose(zen.clone(), None).vec, 64);
        let forced = CopyStrategy::choose(zen.clone(), Some("amd"));
        assert_eq!((forced.plan, forced.vec), (CopyPlan::Amd, 32));
        // A later family takes the Zen 5 plan too; a Hygon (family 0x18) the Zen 4 one.
        zen.family = 0x1b;
        assert_eq!(CopyStrategy::choose(zen.clone(), None).plan, CopyPlan::Zen5);
        zen.vendor = "HygonGenuine".into();
        zen.family = 0x18;
        assert_eq!(CopyStrategy::choose(zen, None).plan, CopyPlan::Amd);
    }

    #[test]
    fn cstr_reads_handle_every_byte_value_next_to_the_nul() {
        // High bytes (0x80..=0xff) and 0x01 around a NUL must neither hide the NUL nor fake
        // one in the whole-word fast path.
        let mut backing = vec![0u64; 16];
        let base = backing.as_mut_ptr().cast::<u8>();
        for start in 0..8 {
            for fill in [0x01u8, 0x7f, 0x80, 0x81, 0xfe, 0xff] {
                for n in 0..40 {
                    let text: Vec<u8> = (0..n)
                        .map(|i| fill.wrapping_add((i % 3) as u8).max(1))
                        .collect();
                    // SAFETY: start + n + 1 ≤ 48 < 128 bytes of `backing`.
                    unsafe {
                        copy_to_shared(base.add(start), &text);
                        copy_to_shared(base.add(start + n), &[0]);
                    }
                    let mut out = Vec::new();
                    // SAFETY: the covering words lie inside `backing`.
                    assert!(unsafe { read_cstr_from_shared(base.add(start), n + 1, &mut out) });
                    assert_eq!(out, text, "start {start} fill {fill:#x} len {n}");
                }
            }
        }
    }

    #[test]
    fn cstr_reads_stop_at_the_nul_at_any_alignment() {
        let mut backing = vec![0u64; 8];
        let base = backing.as_mut_ptr().cast::<u8>();
        for start in 0..9 {
            for n in 0..30 {
                let text: Vec<u8> = (0..n).map(|i| b'a' + i as u8).collect();
                // SAFETY: start + n + 1 ≤ 40 < 64 bytes of `backing`.
                unsafe {
                    copy_to_shared(base.add(start), &text);
                    copy_to_shared(base.add(start + n), &[0]);
                }
                let mut out = Vec::new();
                // SAFETY: the covering words lie inside `backing`'s 64 bytes.
                assert!(unsafe { read_cstr_from_shared(base.add(start), n + 1, &mut out) });
                assert_eq!(out, text, "start {start} len {n}");
                let mut out = Vec::new();
                // SAFETY: as above; without the NUL in range it reads exactly n bytes.
                assert!(!unsafe { read_cstr_from_shared(base.add(start), n, &mut out) });
                assert_eq!(out, text);
            }
        }
    }

    #[test]
    fn padded_writes_fill_the_field_at_any_alignment() {
        for start in 0..9 {
            for field in 0..40 {
                for n in 0..=field {
                    let mut backing = vec![u64::MAX; 8];
                    let base = backing.as_mut_ptr().cast::<u8>();
                    let text: Vec<u8> = (0..n).map(|i| b'a' + i as u8).collect();
                    // SAFETY: start + field ≤ 48 < 64 bytes of `backing`.
                    unsafe { write_padded_to_shared(base.add(start), &text, field) };
                    let mut all = [0u8; 64];
                    // SAFETY: 64 bytes of `backing`, no concurrent writer.
                    unsafe { copy_from_shared(base, &mut all) };
                    assert!(
                        all[..start].iter().all(|&b| b == 0xff),
                        "{start} {field} {n}"
                    );
                    assert_eq!(&all[start..start + n], &text[..]);
                    assert!(all[start + n..start + field].iter().all(|&b| b == 0));
                    assert!(all[start + field..].iter().all(|&b| b == 0xff));
                }
            }
        }
    }

    #[test]
    fn aliasing_detection() {
        assert!(aliased(0x2000, 0x1000));
        assert!(aliased(0x2010, 0x1000));
        assert!(!aliased(0x2100, 0x1000));
        assert!(aliased(0x1ff0, 0x1000));
    }

    /// Copies whose two sides share their offset in a 4 KiB page (which `rep movsb` avoids
    /// by taking the vector loop) are exact in both directions, under every plan.
    #[test]
    fn aliased_copies_are_exact() {
        let mut shared = vec![0u64; 4096]; // 32 KiB
        let mut private = vec![0u8; 32 * 1024];
        let sh = shared.as_mut_ptr().cast::<u8>();
        for st in test_strategies() {
            for &len in &[128usize, 1000, 2200, 4099, 9000] {
                for d in [0usize, 16, 4064] {
                    // `dst` at page offset 256 in the shared buffer's first 4 KiB, the
                    // private side `d` bytes before it modulo 4 KiB.
                    let dst_off = (4096 + 256 - sh as usize % 4096) % 4096;
                    let want = (sh as usize + dst_off + 4096 - d) % 4096;
                    let src_off = (want + 4096 - private.as_ptr() as usize % 4096) % 4096;
                    let dst_addr = sh as usize + dst_off;
                    let src_addr = private.as_ptr() as usize + src_off;
                    assert_eq!(dst_addr.wrapping_sub(src_addr) % 4096, d);
                    assert!(aliased(dst_addr, src_addr));
                    let src = &mut private[src_off..src_off + len];
                    for (i, b) in src.iter_mut().enumerate() {
                        *b = (i * 7 + d + 3) as u8;
                    }
                    let src = &private[src_off..src_off + len];
                    // SAFETY: dst_off + len + 8 < 4096 + 9000 + 8 < 32 KiB of `shared`.
                    unsafe {
                        fill_shared_with(&st, sh.add(dst_off), 0, len + 8);
                        copy_to_shared_with(&st, sh.add(dst_off), src);
                    }
                    // SAFETY: as above; `shared` outlives the view.
                    let written = unsafe { std::slice::from_raw_parts(sh.add(dst_off), len + 8) };
                    assert_eq!(&written[..len], src, "{st} len {len} d {d} in");
                    assert!(
                        written[len..].iter().all(|&b| b == 0),
                        "{st} len {len} d {d}"
                    );
                    // Out: the private side `d` bytes after the shared one, modulo 4 KiB.
                    let want = (dst_addr + d) % 4096;
                    let out_off = (want + 4096 - private.as_ptr() as usize % 4096) % 4096;
                    let out = &mut private[out_off..out_off + len];
                    out.fill(0);
                    // SAFETY: as above; `out` is `len` exclusive private bytes, and viewing
                    // initialised bytes as MaybeUninit is sound.
                    unsafe {
                        copy_from_shared_with(
                            &st,
                            sh.add(dst_off),
                            &mut *(out as *mut [u8] as *mut [MaybeUninit<u8>]),
                        )
                    };
                    assert!(aliased(out.as_ptr() as usize, dst_addr));
                    // SAFETY: as above.
                    let written = unsafe { std::slice::from_raw_parts(sh.add(dst_off), len) };
                    assert_eq!(out, written, "{st} len {len} d {d} out");
                }
            }
        }
    }
}
