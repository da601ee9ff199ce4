//! HyperLogLog sketches (Flajolet et al., 2007): the number of distinct values of a column
//! estimated in 16 KiB, whatever its length, from the values' 64-bit hashes. Sketches of parts
//! of a column (row groups read by different threads) merge into the sketch of the whole. The
//! standard error is 1.04 / sqrt(2^14), 0.8%; small counts use linear counting, which is exact
//! to within a few values while most registers are empty.

use crate::hash::hash_u64;

/// Bits of a hash that choose its register.
const PRECISION: u32 = 14;
const REGISTERS: usize = 1 << PRECISION;

/// A HyperLogLog sketch of a set of hashed values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HyperLogLog {
    /// Per register, the most leading zeros (plus one) seen in the hashes it was given.
    registers: Box<[u8]>,
}

impl Default for HyperLogLog {
    fn default() -> Self {
        HyperLogLog {
            registers: vec![0; REGISTERS].into_boxed_slice(),
        }
    }
}

impl HyperLogLog {
    /// An empty sketch.
    pub fn new() -> HyperLogLog {
        HyperLogLog::default()
    }

    /// Adds one value by its hash. The hash is mixed again, so hashes whose high bits vary
    /// little (an identity hash of small integers) still spread over the registers.
    pub fn insert_hash(&mut self, hash: u64) {
        let mixed = hash_u64(hash);
        let register = (mixed >> (64 - PRECISION)) as usize;
        // The rest of the hash, with a stop bit so that an all-zero rest counts as the most
        // zeros the rest can have.
        let rest = (mixed << PRECISION) | (1 << (PRECISION - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        let slot = &mut self.registers[register];
        *slot = (*slot).max(rank);
    }

    /// Adds every value whose hash is in `hashes`.
    pub fn insert_hashes(&mut self, hashes: &[u64]) {
        for &hash in hashes {
            self.insert_hash(hash);
        }
    }

    /// Makes this the sketch of both sketches' values together.
    pub fn merge(&mut self, other: &HyperLogLog) {
        for (mine, theirs) in self.registers.iter_mut().zip(other.registers.iter()) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// The estimated number of distinct values added.
    pub fn estimate(&self) -> f64 {
        let registers = REGISTERS as f64;
        let (sum, empty) = self
            .registers
            .iter()
            .fold((0.0f64, 0usize), |(sum, empty), &rank| {
                (
                    sum + (-f64::from(rank)).exp2(),
                    empty + usize::from(rank == 0),
                )
            });
        let alpha = 0.7213 / (1.0 + 1.079 / registers);
        let raw = alpha * registers * registers / sum;
        if raw <= 2.5 * registers && empty > 0 {
            registers * (registers / empty as f64).ln()
        } else {
            raw
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    fn sketch(values: impl IntoIterator<Item = u64>) -> HyperLogLog {
        let mut sketch = HyperLogLog::new();
        for value in values {
            sketch.insert_hash(value);
        }
        sketch
    }

    fn relative_error(estimate: f64, exact: usize) -> f64 {
        (estimate - exact as f64).abs() / (exact as f64).max(1.0)
    }

    #[test]
    fn an_empty_sketch_counts_nothing_and_repeats_count_once() {
        assert_eq!(HyperLogLog::new().estimate(), 0.0);
        let repeated = sketch(std::iter::repeat_n(42, 100_000));
        assert!((repeated.estimate() - 1.0).abs() < 0.01);
    }

    #[test]
    fn counts_of_every_size_are_within_a_few_standard_errors() {
        for exact in [10usize, 1_000, 30_000, 60_000, 1_000_000] {
            // Sequential keys, as a table's key column holds them.
            let estimate = sketch(0..exact as u64).estimate();
            assert!(
                relative_error(estimate, exact) < 0.03,
                "{exact} distinct values estimated as {estimate}"
            );
        }
    }

    #[test]
    fn merged_sketches_count_the_union() {
        let mut left = sketch(0..50_000);
        let right = sketch(25_000..100_000);
        left.merge(&right);
        assert_eq!(left, sketch(0..100_000));
        assert!(relative_error(left.estimate(), 100_000) < 0.03);
    }

    proptest! {
        #[test]
        fn random_values_are_counted_to_within_five_percent(
            values in proptest::collection::vec(0u64..20_000, 0..40_000),
        ) {
            let exact = values.iter().collect::<HashSet<_>>().len();
            let estimate = sketch(values.iter().copied()).estimate();
            prop_assert!(
                relative_error(estimate, exact) < 0.05,
                "{} distinct values estimated as {}", exact, estimate
            );
        }
    }
}
