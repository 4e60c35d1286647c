//! Copies between private buffers and shared memory that other processes may write at the
//! same time.
//!
//! In Rust's memory model a plain copy that races with another writer is undefined
//! behaviour, and a process sharing memory with foreign peers cannot rule such a race out.
//! These copies therefore touch the shared side only through operations the compiler cannot
//! reason about as plain accesses:
//!
//! * large copies use one inline-assembly `rep movsb` (opaque to the compiler, and as fast
//!   as glibc's `memcpy` here);
//! * small copies, and large ones whose two sides share a page offset (on AMD Zen that
//!   "4K aliasing" makes `rep movsb` and glibc's `memcpy` ten times slower), use relaxed
//!   atomic loads or stores of aligned 8-byte words, with single-byte atomics for the
//!   unaligned ends.
//!
//! A racing writer can leave the copied bytes torn. That is never undefined behaviour here;
//! callers detect it with their share's own protocol (sequence numbers re-checked after the
//! copy) and never trust the bytes for memory safety.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// From this many bytes a bulk assembly loop beats the word loop.
const BULK_MIN: usize = 128;
/// Without AVX2, `rep movsb`/`rep stosb` only pay off from this size (start-up cost).
const REP_MIN: usize = 2048;
/// Fills of this many bytes up to `STOSB_TO` use `rep stosb` even with AVX2.
const STOSB_FROM: usize = 256 * 1024;
/// See `STOSB_FROM`.
const STOSB_TO: usize = 4 * 1024 * 1024;

/// True when `rep movsb` from `src` to `dst` would hit 4K aliasing.
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
pub(crate) unsafe fn copy_from_shared_uninit(src: *const u8, dst: &mut [MaybeUninit<u8>]) {
    let len = dst.len();
    let d = dst.as_mut_ptr().cast::<u8>();
    let mut i = 0;
    if len >= BULK_MIN && !aliased(d as usize, src as usize) {
        // SAFETY: the caller guarantees `src..src+len` is mapped; `dst` is a live exclusive
        // slice of `len` bytes; the two cannot overlap because `dst` is private memory.
        i = unsafe { bulk_copy(d, src, len) };
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
pub(crate) unsafe fn copy_to_shared(dst: *mut u8, src: &[u8]) {
    let len = src.len();
    let s = src.as_ptr();
    let mut i = 0;
    if len >= BULK_MIN && !aliased(dst as usize, s as usize) {
        // SAFETY: the caller guarantees `dst..dst+len` is mapped writable; `src` is a live
        // slice of `len` private bytes, so the ranges do not overlap.
        i = unsafe { bulk_copy(dst, s, len) };
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
    let word = u64::from_ne_bytes([byte; 8]);
    let mut i = 0;
    if len >= BULK_MIN {
        // SAFETY: the caller guarantees `dst..dst+len` is mapped writable.
        i = unsafe { bulk_fill(dst, byte, len) };
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

#[inline]
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Copies a prefix of `len` bytes with one opaque assembly loop and returns how many bytes
/// it copied (the caller's word loop does the rest): with AVX2, 32-byte moves four per
/// iteration for a multiple of 128 bytes (faster than `rep movsb`, glibc's `memcpy` and
/// word loops at every size from 128 bytes on this project's machines); without it,
/// `rep movsb` for everything from 2 KiB, nothing below.
///
/// # Safety
/// `src..src+len` must be readable and `dst..dst+len` writable for the whole call, and
/// the two ranges must not overlap.
#[cfg(target_arch = "x86_64")]
unsafe fn bulk_copy(dst: *mut u8, src: *const u8, len: usize) -> usize {
    if !has_avx2() {
        if len < REP_MIN {
            return 0;
        }
        // SAFETY: forwarded contract.
        unsafe { rep_movsb(dst, src, len) };
        return len;
    }
    let n = len & !127;
    if n == 0 {
        return 0;
    }
    // SAFETY: AVX2 is present (checked above); n is a positive multiple of 128 and ≤ len,
    // so every 128-byte step stays inside both ranges (caller's contract); unaligned
    // vmovdqu needs no alignment; the registers used are declared clobbered; vzeroupper
    // avoids AVX/SSE transition penalties after the loop; no stack is used.
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

/// Fills a prefix of `len` bytes at `dst` with `byte` with one opaque assembly loop and
/// returns how many bytes it filled: AVX2 stores for a multiple of 128 bytes, or without
/// AVX2 `rep stosb` for everything from 2 KiB.
///
/// # Safety
/// `dst..dst+len` must be writable for the whole call.
#[cfg(target_arch = "x86_64")]
unsafe fn bulk_fill(dst: *mut u8, byte: u8, len: usize) -> usize {
    // Measured on this project's machines: `rep stosb` wins for fills that stay in the
    // L2/L3 caches (63 vs 53 GB/s at 900 KB), AVX2 stores below (38 vs 58 ns at 3840 B)
    // and for multi-megabyte fills (23 vs 20 GB/s at 6 MB).
    if !has_avx2() || (STOSB_FROM..STOSB_TO).contains(&len) {
        if len < REP_MIN {
            return 0;
        }
        // SAFETY: forwarded contract.
        unsafe { rep_stosb(dst, byte, len) };
        return len;
    }
    let n = len & !127;
    if n == 0 {
        return 0;
    }
    // SAFETY: AVX2 is present (`has_avx2` above was true); n is a positive multiple of 128 and ≤ len, so every store
    // stays inside the caller's writable range; ymm0 and the pointer/count registers are
    // declared clobbered; vzeroupper as in `bulk_copy`; no stack is used.
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

#[cfg(not(target_arch = "x86_64"))]
unsafe fn bulk_fill(dst: *mut u8, byte: u8, len: usize) -> usize {
    if len < REP_MIN {
        return 0;
    }
    // SAFETY: forwarded contract.
    unsafe { rep_stosb(dst, byte, len) };
    len
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn bulk_copy(dst: *mut u8, src: *const u8, len: usize) -> usize {
    if len < REP_MIN {
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
            0usize, 1, 7, 8, 9, 63, 64, 100, 2047, 2048, 2305, 4000, 4099,
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
}
