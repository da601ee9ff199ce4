//! Bloom filters of a table's keys: 10 bits and 7 probes per key, about 1% false positives, so
//! a lookup of a missing key seldom reads a block. Probes come from one 64-bit FNV-1a hash of
//! the key by double hashing. Encoded as `[probes u8][bit array]`.

use crate::error::{Result, StorageError};

const BITS_PER_KEY: usize = 10;
const PROBES: u8 = 7;

/// A filter that says "maybe present" for every key it was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BloomFilter {
    probes: u8,
    bits: Vec<u8>,
}

/// The hash a filter is built from and probed with.
pub(crate) fn key_hash(key: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for &byte in key {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV-1a mixes its last bytes poorly into the high bits; finish with a multiply-xorshift.
    hash ^= hash >> 29;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^ (hash >> 32)
}

impl BloomFilter {
    /// The filter of the keys whose [`key_hash`]es are `hashes`.
    pub(crate) fn from_hashes(hashes: &[u64]) -> BloomFilter {
        let bit_count = (hashes.len() * BITS_PER_KEY).max(64);
        let mut filter = BloomFilter {
            probes: PROBES,
            bits: vec![0u8; bit_count.div_ceil(8)],
        };
        for &hash in hashes {
            for bit in filter.bit_positions(hash) {
                filter.bits[bit / 8] |= 1 << (bit % 8);
            }
        }
        filter
    }

    fn bit_positions(&self, hash: u64) -> impl Iterator<Item = usize> + use<> {
        let (first, step) = (hash, hash.rotate_left(32) | 1);
        let bit_count = (self.bits.len() * 8) as u64;
        (0..u64::from(self.probes))
            .map(move |probe| (first.wrapping_add(probe.wrapping_mul(step)) % bit_count) as usize)
    }

    /// Whether `key` may be among the keys the filter was built from (`false` is certain).
    pub(crate) fn may_contain(&self, key: &[u8]) -> bool {
        self.bit_positions(key_hash(key))
            .all(|bit| self.bits[bit / 8] & (1 << (bit % 8)) != 0)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.bits.len());
        out.push(self.probes);
        out.extend_from_slice(&self.bits);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<BloomFilter> {
        match bytes {
            [probes @ 1..=30, bits @ ..] if !bits.is_empty() => Ok(BloomFilter {
                probes: *probes,
                bits: bits.to_vec(),
            }),
            _ => Err(StorageError::malformed(
                "bloom filter",
                "needs a probe count of 1 to 30 and at least one byte of bits",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_about_one_percent_false_positives() {
        let keys: Vec<Vec<u8>> = (0..10_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let hashes: Vec<u64> = keys.iter().map(|key| key_hash(key)).collect();
        let filter = BloomFilter::from_hashes(&hashes);
        assert!(keys.iter().all(|key| filter.may_contain(key)));
        let false_positives = (10_000..110_000u32)
            .filter(|i| filter.may_contain(&i.to_be_bytes()))
            .count();
        assert!(false_positives < 2_000, "{false_positives} of 100000");
        let decoded = BloomFilter::decode(&filter.encode()).unwrap();
        assert_eq!(decoded, filter);
    }
}
