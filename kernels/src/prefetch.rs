//! A cache prefetch hint for hash-table lookups: probes ask for the slot a key a few rows ahead
//! will need, so that its cache miss overlaps the work on the rows before it.

/// Asks the CPU to bring the cache line at `address` into its caches: a hint that changes no
/// result, so that a lookup a few keys later finds its slot loaded.
#[inline]
#[allow(unsafe_code)]
pub(crate) fn prefetch<T>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` only hints the cache hierarchy: it reads nothing the program sees
    // and never faults, even for an address outside any allocation (the key ahead may be out of
    // a direct table's range). Its target feature, SSE, is part of the x86-64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetching_any_address_is_harmless() {
        let values = vec![7u32; 4];
        prefetch(values.as_ptr());
        prefetch(values.as_ptr().wrapping_add(1 << 40));
        prefetch(std::ptr::null::<u32>());
        assert_eq!(values, vec![7; 4]);
    }
}
