//! The machine words keys are packed into: `u64` for keys of up to 64 bits, `u128` for keys of
//! up to 128 bits (two `BIGINT`s, or a `BIGINT`, a `DATE` and an `INT`).

use std::fmt::Debug;

use crate::hash::hash_u64;

/// A word that holds a packed key.
pub trait PackedKey: Copy + Eq + Default + Debug + Send + Sync + 'static {
    /// The word's width.
    const BITS: u32;
    /// `offset` placed at bit `shift`.
    fn field(offset: u64, shift: u32) -> Self;
    /// The `mask`ed bits starting at `shift`.
    fn get_field(self, shift: u32, mask: u64) -> u64;
    /// Both keys' bits.
    fn or(self, other: Self) -> Self;
    /// The key with the field at `shift` (of `mask`) cleared.
    fn clear_field(self, shift: u32, mask: u64) -> Self;
    /// The key's hash; every bit of the key affects every bit of the hash.
    fn hash(self) -> u64;
}

impl PackedKey for u64 {
    const BITS: u32 = 64;

    #[inline]
    fn field(offset: u64, shift: u32) -> Self {
        offset << shift
    }

    #[inline]
    fn get_field(self, shift: u32, mask: u64) -> u64 {
        (self >> shift) & mask
    }

    #[inline]
    fn or(self, other: Self) -> Self {
        self | other
    }

    #[inline]
    fn clear_field(self, shift: u32, mask: u64) -> Self {
        self & !(mask << shift)
    }

    #[inline]
    fn hash(self) -> u64 {
        hash_u64(self)
    }
}

impl PackedKey for u128 {
    const BITS: u32 = 128;

    #[inline]
    fn field(offset: u64, shift: u32) -> Self {
        u128::from(offset) << shift
    }

    #[inline]
    fn get_field(self, shift: u32, mask: u64) -> u64 {
        (self >> shift) as u64 & mask
    }

    #[inline]
    fn or(self, other: Self) -> Self {
        self | other
    }

    #[inline]
    fn clear_field(self, shift: u32, mask: u64) -> Self {
        self & !(u128::from(mask) << shift)
    }

    #[inline]
    fn hash(self) -> u64 {
        hash_u64(self as u64 ^ hash_u64((self >> 64) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_in_both_widths() {
        let narrow = u64::field(5, 3).or(u64::field(9, 40));
        assert_eq!((narrow.get_field(3, 7), narrow.get_field(40, 15)), (5, 9));
        assert_eq!(narrow.clear_field(3, 7).get_field(3, 7), 0);
        let wide = u128::field(u64::MAX, 64).or(u128::field(1, 0));
        assert_eq!(wide.get_field(64, u64::MAX), u64::MAX);
        assert_eq!(wide.get_field(0, 1), 1);
        assert_ne!(wide.hash(), u128::field(1, 0).hash());
    }
}
