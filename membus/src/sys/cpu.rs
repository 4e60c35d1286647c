//! What the CPU offers for bulk copies, read once with CPUID: vendor, model, the string
//! instruction and vector features, and the cache sizes (the inputs glibc's `memcpy` and
//! `memset` choose their strategy from).

/// The CPU as the copy strategy sees it (see [`crate::copy_strategy`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuInfo {
    /// The CPUID vendor string (`GenuineIntel`, `AuthenticAMD`, ...), empty off x86-64.
    pub vendor: String,
    /// The CPUID brand string (the model name), empty when the CPU has none.
    pub model: String,
    /// The display family (CPUID 1:EAX, base plus extended family): 6 for Intel Core and
    /// Xeon, 0x17 for AMD Zen 1/2, 0x19 for Zen 3/4, 0x1A for Zen 5; 0 if unknown.
    pub family: u32,
    /// The display model number within the family (base plus extended model); 0 if
    /// unknown.
    pub model_number: u32,
    /// Enhanced `rep movsb`/`rep stosb` (CPUID 7.0:EBX bit 9).
    pub erms: bool,
    /// Fast short `rep movsb` (CPUID 7.0:EDX bit 4).
    pub fsrm: bool,
    /// AVX2, usable (the OS saves the registers).
    pub avx2: bool,
    /// AVX-512 Foundation, usable.
    pub avx512f: bool,
    /// Bytes of L2 cache of one core (0 if unknown).
    pub l2: usize,
    /// Bytes of the L3 cache the calling core shares (0 if unknown or none).
    pub l3: usize,
    /// How many logical CPUs share that L3 (CPUID's own figure, 1 if unknown).
    pub l3_sharing: usize,
}

impl CpuInfo {
    /// Whether the vendor is Intel.
    pub fn is_intel(&self) -> bool {
        self.vendor == "GenuineIntel"
    }

    /// Whether the vendor is AMD (or Hygon, its Zen licensee).
    pub fn is_amd(&self) -> bool {
        self.vendor == "AuthenticAMD" || self.vendor == "HygonGenuine"
    }

    /// The feature flags that matter to the copies, space-separated (`erms fsrm avx2 ...`).
    pub fn flags(&self) -> String {
        let mut f = Vec::new();
        for (on, name) in [
            (self.erms, "erms"),
            (self.fsrm, "fsrm"),
            (self.avx2, "avx2"),
            (self.avx512f, "avx512f"),
        ] {
            if on {
                f.push(name);
            }
        }
        f.join(" ")
    }

    /// Reads the CPU with CPUID.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn detect() -> CpuInfo {
        use std::arch::x86_64::CpuidResult;
        #[allow(unused_unsafe)]
        let cpuid = |leaf: u32, sub: u32| -> CpuidResult {
            // SAFETY: CPUID exists on every x86-64 CPU and only reads identification
            // registers; leaves above the reported maximum return zeros or the highest
            // basic leaf (checked by the callers against the maxima below).
            unsafe { std::arch::x86_64::__cpuid_count(leaf, sub) }
        };
        let l0 = cpuid(0, 0);
        let max_basic = l0.eax;
        let mut vendor = Vec::with_capacity(12);
        for r in [l0.ebx, l0.edx, l0.ecx] {
            vendor.extend_from_slice(&r.to_le_bytes());
        }
        let vendor = String::from_utf8_lossy(&vendor).trim().to_string();
        let max_ext = cpuid(0x8000_0000, 0).eax;
        let mut model = Vec::with_capacity(48);
        if max_ext >= 0x8000_0004 {
            for leaf in 0x8000_0002..=0x8000_0004 {
                let r = cpuid(leaf, 0);
                for w in [r.eax, r.ebx, r.ecx, r.edx] {
                    model.extend_from_slice(&w.to_le_bytes());
                }
            }
        }
        let model = String::from_utf8_lossy(&model)
            .trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .to_string();
        let (family, model_number) = if max_basic >= 1 {
            let a = cpuid(1, 0).eax;
            let base_family = (a >> 8) & 0xf;
            let base_model = (a >> 4) & 0xf;
            let family = if base_family == 0xf {
                base_family + ((a >> 20) & 0xff)
            } else {
                base_family
            };
            // The extended model counts for families 6 and 15 and up (Intel's and AMD's
            // rule alike).
            let model = if base_family == 0x6 || base_family == 0xf {
                base_model | (((a >> 16) & 0xf) << 4)
            } else {
                base_model
            };
            (family, model)
        } else {
            (0, 0)
        };
        let (erms, fsrm) = if max_basic >= 7 {
            let r = cpuid(7, 0);
            (r.ebx & (1 << 9) != 0, r.edx & (1 << 4) != 0)
        } else {
            (false, false)
        };
        let mut info = CpuInfo {
            vendor,
            model,
            family,
            model_number,
            erms,
            fsrm,
            avx2: std::arch::is_x86_feature_detected!("avx2"),
            avx512f: std::arch::is_x86_feature_detected!("avx512f"),
            l2: 0,
            l3: 0,
            l3_sharing: 1,
        };
        // Deterministic cache parameters: leaf 4 (Intel), 0x8000_001D (AMD with TOPOEXT),
        // same register format.
        let topoext = max_ext >= 0x8000_0001 && cpuid(0x8000_0001, 0).ecx & (1 << 22) != 0;
        let cache_leaf = if info.is_intel() && max_basic >= 4 {
            Some(4)
        } else if info.is_amd() && topoext && max_ext >= 0x8000_001D {
            Some(0x8000_001D)
        } else {
            None
        };
        if let Some(leaf) = cache_leaf {
            for sub in 0..16 {
                let r = cpuid(leaf, sub);
                let kind = r.eax & 0x1f;
                if kind == 0 {
                    break;
                }
                if kind != 1 && kind != 3 {
                    continue; // instruction caches
                }
                let level = (r.eax >> 5) & 7;
                let ways = ((r.ebx >> 22) & 0x3ff) as usize + 1;
                let parts = ((r.ebx >> 12) & 0x3ff) as usize + 1;
                let line = (r.ebx & 0xfff) as usize + 1;
                let sets = r.ecx as usize + 1;
                let size = ways * parts * line * sets;
                match level {
                    2 => info.l2 = size,
                    3 => {
                        info.l3 = size;
                        info.l3_sharing = ((r.eax >> 14) & 0xfff) as usize + 1;
                    }
                    _ => {}
                }
            }
        }
        if (info.l2 == 0 || info.l3 == 0) && max_ext >= 0x8000_0006 {
            let r = cpuid(0x8000_0006, 0);
            if info.l2 == 0 {
                info.l2 = (r.ecx >> 16) as usize * 1024;
            }
            if info.l3 == 0 {
                info.l3 = (r.edx >> 18) as usize * 512 * 1024;
            }
        }
        info
    }

    /// Off x86-64 nothing is known.
    #[cfg(not(target_arch = "x86_64"))]
    pub(crate) fn detect() -> CpuInfo {
        CpuInfo {
            l3_sharing: 1,
            ..CpuInfo::default()
        }
    }
}

/// A hint that the cache line at `p` is about to be written (`prefetchw`: AMD since K8,
/// Intel since Broadwell; older Intel CPUs execute it as a no-op). Never faults, whatever
/// `p` is, and changes no memory.
#[inline(always)]
pub(crate) fn prefetch_for_write(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it does not fault on any address, reads or writes no
    // architectural state the program can observe, and touches no stack or flags.
    unsafe {
        core::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, preserves_flags, readonly));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_is_consistent_with_std() {
        let c = CpuInfo::detect();
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(c.vendor.len(), 12, "{c:?}");
            assert_eq!(c.avx2, std::arch::is_x86_feature_detected!("avx2"));
            assert_eq!(c.erms, std::arch::is_x86_feature_detected!("ermsb"));
        }
        assert!(c.l3_sharing >= 1);
        #[cfg(target_arch = "x86_64")]
        if c.is_amd() || c.is_intel() {
            // Every x86-64 CPU of these vendors is family 6 (Intel) or 0xF and up.
            assert!(c.family == 6 || c.family >= 0xf, "{c:?}");
        }
        assert!(c.flags().split(' ').all(|f| f.is_empty() || f.len() >= 4));
    }
}
