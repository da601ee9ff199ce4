//! Sabot's hot primitives on Arrow arrays. Key columns of fixed-width types are packed into
//! one word per row ([`KeyPacking`]; [`PackedKey`] is `u64`, or `u128` for wide group keys),
//! hashed with one multiply-xorshift mix per key ([`hash_u64`]), and looked up in
//! open-addressing tables specialized for such keys: the [`JoinHashTable`] (duplicate keys in a
//! CSR layout, built in hash partitions that can be built in parallel) and the [`GroupMap`]
//! (group ids for a whole batch at once). String group keys become `u32` ids through a
//! [`StringDictionary`] shared by an operator's tasks, and then pack like integers. Operators in
//! `sabot-exec` call these; keys that do not pack take the operators' row-format path.
//! The key-packing loop runs an AVX2 build where the CPU has one (module `simd`). String-view
//! columns are matched against literals by their 16-byte views ([`views_matching`]).
//! Distinct values are counted in fixed memory by [`HyperLogLog`] sketches (`ANALYZE`).
//! `LIKE` patterns of several literal segments are matched by substring search ([`LikePattern`]).
//! Decimal sums, differences and products of operands that fit 64 bits run unchecked in one
//! pass ([`decimal_arithmetic`]). Running grouped SUM, MIN, MAX, COUNT and AVG ([`GroupedFold`], [`GroupedCount`], [`GroupedMean`]) back the
//! aggregation operator's accumulators. One-shot grouped SUM and COUNT over group ids ([`grouped_sum_i64`], [`grouped_sum_f64`]) and probes of
//! large join tables run on a GPU with the `cuda` feature, when one is present and the input is
//! large enough (module `cuda`); otherwise, and always without the feature, on the CPU.

#![deny(unsafe_code)]

#[cfg(feature = "cuda")]
pub mod cuda;
mod decimal_arithmetic;
mod error;
mod group_map;
mod grouped_fold;
mod grouped_sum;
mod hash;
mod hyperloglog;
mod join_table;
mod keys;
mod like_match;
mod packed_key;
mod prefetch;
mod simd;
mod slots;
mod string_dictionary;
mod view_match;

pub use decimal_arithmetic::{
    DecimalOp, DecimalOperand, MAX_RESCALE_DIGITS, OffsetColumn, decimal_arithmetic,
    decimal_offset_product,
};
pub use error::{KernelError, Result};
pub use group_map::GroupMap;
pub use grouped_fold::{Fold, GroupedCount, GroupedFold, GroupedMean};
pub use grouped_sum::{
    Backend, GPU_MIN_GROUPS, GPU_MIN_ROWS, GroupedSums, grouped_sum_f64, grouped_sum_i64,
    grouped_sum_on_cpu,
};
pub use hash::{hash_u64, hash_u64_slice};
pub use hyperloglog::HyperLogLog;
#[cfg(feature = "cuda")]
pub use join_table::{GPU_MIN_BUILD_ROWS, GPU_MIN_PROBE_ROWS, GPU_MIN_PROBE_ROWS_VARIABLE};
pub use join_table::{JoinHashTable, JoinPartition, PartitionedRows};
pub use keys::{KeyPacking, union_of_ranges, value_range};
pub use like_match::{LikePattern, string_views_like, strings_like};
pub use packed_key::PackedKey;
pub use string_dictionary::StringDictionary;
pub use view_match::{ViewLiteral, views_matching};
