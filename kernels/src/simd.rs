//! Run-time SIMD dispatch. A hot loop is compiled twice, for the x86-64 baseline (SSE2) and with
//! AVX2 enabled, and [`avx2`] tells at run time whether this CPU can run the second: the wider
//! registers and 64-bit compares let the compiler handle four keys per instruction where the
//! baseline handles two or fewer. Other CPUs, and x86-64 ones without AVX2, run the baseline.

/// Whether this CPU runs AVX2 code (std caches the answer after the first call).
#[inline]
pub(crate) fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
