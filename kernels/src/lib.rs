//! Sabot's hot primitives on Arrow arrays. Key columns of fixed-width types are packed into
//! one word per row ([`KeyPacking`]; [`PackedKey`] is `u64`, or `u128` for wide group keys),
//! hashed with one multiply-xorshift mix per key ([`hash_u64`]), and looked up in
//! open-addressing tables specialized for such keys: the [`JoinHashTable`] (duplicate keys in a
//! CSR layout, built in hash partitions that can be built in parallel) and the [`GroupMap`]
//! (group ids for a whole batch at once). String group keys become `u32` ids through a
//! [`StringDictionary`] shared by an operator's tasks, and then pack like integers. Operators in
//! `sabot-exec` call these; keys that do not pack take the operators' row-format path.

#![deny(unsafe_code)]

mod error;
mod group_map;
mod hash;
mod join_table;
mod keys;
mod packed_key;
mod slots;
mod string_dictionary;

pub use error::{KernelError, Result};
pub use group_map::GroupMap;
pub use hash::{hash_u64, hash_u64_slice};
pub use join_table::{JoinHashTable, JoinPartition, PartitionedRows};
pub use keys::KeyPacking;
pub use packed_key::PackedKey;
pub use string_dictionary::StringDictionary;
