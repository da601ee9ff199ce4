//! Hashing of packed keys: the splitmix64 finalizer, two multiplies and three shifts per key,
//! with no data-dependent branch, so a slice of keys hashes in one tight loop.

/// The hash of one packed key. Every bit of the key affects every bit of the hash, so both the
/// high bits (partition) and the low bits (slot) of the hash are usable.
#[inline]
pub fn hash_u64(key: u64) -> u64 {
    let mixed = (key ^ (key >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    mixed ^ (mixed >> 31)
}

/// The hashes of `keys`, written over `hashes`.
pub fn hash_u64_slice(keys: &[u64], hashes: &mut Vec<u64>) {
    hashes.clear();
    hashes.extend(keys.iter().map(|&key| hash_u64(key)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_keys_spread_over_low_and_high_bits() {
        let buckets = 64u64;
        let mut low = vec![0usize; buckets as usize];
        let mut high = vec![0usize; buckets as usize];
        for key in 0..64_000u64 {
            let hash = hash_u64(key);
            low[(hash % buckets) as usize] += 1;
            high[(hash >> 58) as usize] += 1;
        }
        for counts in [low, high] {
            assert!(
                counts.iter().all(|&count| (800..1200).contains(&count)),
                "{counts:?}"
            );
        }
    }

    #[test]
    fn slice_matches_one_by_one() {
        let keys: Vec<u64> = (0..100).map(|key| key * 7919).collect();
        let mut hashes = Vec::new();
        hash_u64_slice(&keys, &mut hashes);
        let expected: Vec<u64> = keys.iter().map(|&key| hash_u64(key)).collect();
        assert_eq!(hashes, expected);
    }
}
