//! Packing of fixed-width key columns into one word per row (`u64` or `u128`), the trick DuckDB
//! and Polars use to compare and hash multi-column keys as one machine word. Each column stores `value - min` in
//! its own bit field. A join derives the fields from the value ranges of its build side, so two
//! `BIGINT` keys of TPC-H (part and supplier ids) share one word; a group-by, which cannot see
//! its input in advance, gives each column its type's full width plus a null bit.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Int8Type, Int16Type, Int32Type, Int64Type,
    UInt8Type, UInt16Type, UInt32Type,
};

use crate::error::{KernelError, Result};
use crate::packed_key::PackedKey;

/// The largest decimal precision whose values all fit an `i64`.
const MAX_PACKED_DECIMAL_PRECISION: u8 = 18;

/// Where each key column lives inside a packed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPacking {
    columns: Vec<PackedColumn>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PackedColumn {
    data_type: DataType,
    /// The value stored as 0.
    min: i64,
    /// Width of the field: `value - min` is below `2^bits`.
    bits: u32,
    /// Position of the field's lowest bit.
    shift: u32,
    /// Position of the column's null bit (group layouts of nullable columns).
    null_bit: Option<u32>,
}

impl PackedColumn {
    fn max_offset(&self) -> u64 {
        if self.bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        }
    }
}

impl KeyPacking {
    /// The packing for a join whose build side has these key columns: each field is as wide as
    /// the range of its column's non-null values. `None` when a type does not pack or the
    /// ranges need more than 64 bits (join tables hold `u64` keys).
    pub fn for_join_build(columns: &[ArrayRef]) -> Option<KeyPacking> {
        let mut packed = Vec::with_capacity(columns.len());
        let mut shift = 0u32;
        for column in columns {
            if !packs(column.data_type()) {
                return None;
            }
            let (min, max) = value_range(column.as_ref())?;
            let range = max.wrapping_sub(min) as u64;
            let bits = 64 - range.leading_zeros();
            if shift + bits > 64 {
                return None;
            }
            packed.push(PackedColumn {
                data_type: column.data_type().clone(),
                min,
                bits,
                shift,
                null_bit: None,
            });
            shift += bits;
        }
        Some(KeyPacking { columns: packed })
    }

    /// The packing for group keys of these types and nullabilities: every value of the type
    /// fits its field, and each nullable column adds a null bit. Where `ranges` gives a signed
    /// integer, date or decimal column's smallest and largest value (from file statistics, say),
    /// its field spans only that range; a value outside it then does not pack (its row is not
    /// usable). `None` when a type does not pack or the fields need more than 128 bits.
    pub fn for_group_keys(
        fields: &[(DataType, bool)],
        ranges: &[Option<(i64, i64)>],
    ) -> Option<KeyPacking> {
        let mut packed = Vec::with_capacity(fields.len());
        let mut shift = 0u32;
        for (index, (data_type, nullable)) in fields.iter().enumerate() {
            let (min, bits) = match ranges.get(index).copied().flatten() {
                Some((min, max)) if min <= max && takes_ranges(data_type) => {
                    (min, 64 - (max.wrapping_sub(min) as u64).leading_zeros())
                }
                _ => full_range(data_type)?,
            };
            let null_bits = u32::from(*nullable);
            if shift + bits + null_bits > u128::BITS {
                return None;
            }
            packed.push(PackedColumn {
                data_type: data_type.clone(),
                min,
                bits,
                shift,
                null_bit: nullable.then_some(shift + bits),
            });
            shift += bits + null_bits;
        }
        Some(KeyPacking { columns: packed })
    }

    /// The number of key columns packed.
    pub fn key_columns(&self) -> usize {
        self.columns.len()
    }

    /// The bits a packed key uses: keys of up to 64 bits go in a `u64`, wider ones in a `u128`.
    pub fn bits(&self) -> u32 {
        self.columns.last().map_or(0, |field| {
            field
                .null_bit
                .map_or(field.shift + field.bits, |bit| bit + 1)
        })
    }

    /// Packs `columns` (one per key, of the types this packing was made for) into `keys`. A row
    /// is usable (`true` in `usable`) unless a key is outside its field's range or null in a
    /// layout without null bits: such a row equals no packed build key.
    pub fn pack<K: PackedKey>(
        &self,
        columns: &[ArrayRef],
        keys: &mut Vec<K>,
        usable: &mut Vec<bool>,
    ) -> Result<()> {
        if self.bits() > K::BITS {
            return Err(KernelError::KeyColumn {
                index: 0,
                message: format!("{} key bits do not fit {} bits", self.bits(), K::BITS),
            });
        }
        if columns.len() != self.columns.len() {
            return Err(KernelError::KeyColumn {
                index: columns.len(),
                message: format!(
                    "{} key columns, expected {}",
                    columns.len(),
                    self.columns.len()
                ),
            });
        }
        let rows = columns.first().map_or(0, |column| column.len());
        keys.clear();
        usable.clear();
        for (index, (column, field)) in columns.iter().zip(&self.columns).enumerate() {
            if column.data_type() != &field.data_type || column.len() != rows {
                return Err(KernelError::KeyColumn {
                    index,
                    message: format!(
                        "{} rows of {}, expected {rows} rows of {}",
                        column.len(),
                        column.data_type(),
                        field.data_type
                    ),
                });
            }
            let values = values_as_i64(column.as_ref()).ok_or_else(|| KernelError::KeyColumn {
                index,
                message: format!("{} does not pack", column.data_type()),
            })?;
            let nulls = column
                .logical_nulls()
                .filter(|nulls| nulls.null_count() > 0);
            if index == 0 && nulls.is_none() {
                first_field(field, &values, keys, usable);
                continue;
            }
            if index == 0 {
                keys.resize(rows, K::default());
                usable.resize(rows, true);
            }
            pack_field(field, &values, nulls.as_ref(), keys, usable);
            if let Some(nulls) = &nulls {
                mark_nulls(field, nulls, keys, usable);
            }
        }
        Ok(())
    }

    /// The key columns of packed `keys` (group layouts: every key came from [`KeyPacking::pack`]).
    pub fn unpack<K: PackedKey>(&self, keys: &[K]) -> Result<Vec<ArrayRef>> {
        self.columns
            .iter()
            .map(|field| {
                let mask = field.max_offset();
                let values = keys.iter().map(|&key| {
                    let offset = if field.bits == 0 {
                        0
                    } else {
                        key.get_field(field.shift, mask)
                    };
                    field.min.wrapping_add(offset as i64)
                });
                let nulls = field.null_bit.map(|bit| {
                    NullBuffer::from_iter(keys.iter().map(|&key| key.get_field(bit, 1) == 0))
                });
                typed_array(&field.data_type, values, nulls)
            })
            .collect()
    }
}

/// Packs the first key column, without nulls, into fresh `keys` and `usable`: one pass that
/// writes each key and whether its value is in range, with no read of what was there. Runs the
/// AVX2 build where the CPU has it.
fn first_field<K: PackedKey>(
    field: &PackedColumn,
    values: &[i64],
    keys: &mut Vec<K>,
    usable: &mut Vec<bool>,
) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::avx2() {
        #[allow(unsafe_code)]
        // SAFETY: `first_field_avx2` needs nothing but AVX2, which this CPU has (checked just
        // above).
        unsafe {
            first_field_avx2(field, values, keys, usable);
        }
        return;
    }
    first_field_baseline(field, values, keys, usable);
}

/// [`first_field`] compiled with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn first_field_avx2<K: PackedKey>(
    field: &PackedColumn,
    values: &[i64],
    keys: &mut Vec<K>,
    usable: &mut Vec<bool>,
) {
    first_field_baseline(field, values, keys, usable);
}

/// [`first_field`]'s loop, inlined into each build.
#[inline(always)]
fn first_field_baseline<K: PackedKey>(
    field: &PackedColumn,
    values: &[i64],
    keys: &mut Vec<K>,
    usable: &mut Vec<bool>,
) {
    let max_offset = field.max_offset();
    let offset = |value: i64| value.wrapping_sub(field.min) as u64;
    if field.bits == 0 {
        keys.resize(values.len(), K::default());
    } else {
        keys.extend(
            values
                .iter()
                .map(|&value| K::field(offset(value) & max_offset, field.shift)),
        );
    }
    usable.extend(values.iter().map(|&value| offset(value) <= max_offset));
}

/// Packs one column's `values` into its field; a non-null value outside the field's range makes
/// its row unusable (a null row's value is meaningless and is left to [`mark_nulls`]).
fn pack_field<K: PackedKey>(
    field: &PackedColumn,
    values: &[i64],
    nulls: Option<&NullBuffer>,
    keys: &mut [K],
    usable: &mut [bool],
) {
    let max_offset = field.max_offset();
    let rows = values.iter().zip(keys.iter_mut()).zip(usable.iter_mut());
    match (nulls, field.bits) {
        // Without nulls, one branch-free pass: the compiler vectorizes the range checks.
        (None, 0) => {
            for ((&value, _), usable) in rows {
                *usable &= value == field.min;
            }
        }
        (None, _) => {
            for ((&value, key), usable) in rows {
                let offset = value.wrapping_sub(field.min) as u64;
                *usable &= offset <= max_offset;
                *key = key.or(K::field(offset & max_offset, field.shift));
            }
        }
        (Some(nulls), _) => {
            let fits = |value: i64| field.bits != 0 || value == field.min;
            for (row, ((&value, key), usable)) in rows.enumerate() {
                let offset = value.wrapping_sub(field.min) as u64;
                let in_range = offset <= max_offset && fits(value);
                *usable &= in_range || nulls.is_null(row);
                if field.bits != 0 {
                    *key = key.or(K::field(offset & max_offset, field.shift));
                }
            }
        }
    }
}

fn mark_nulls<K: PackedKey>(
    field: &PackedColumn,
    nulls: &NullBuffer,
    keys: &mut [K],
    usable: &mut [bool],
) {
    for row in (0..keys.len()).filter(|&row| nulls.is_null(row)) {
        match field.null_bit {
            Some(bit) => {
                let cleared = if field.bits == 0 {
                    keys[row]
                } else {
                    keys[row].clear_field(field.shift, field.max_offset())
                };
                keys[row] = cleared.or(K::field(1, bit));
            }
            None => usable[row] = false,
        }
    }
}

/// Whether a group key column of `data_type` can be packed by a value range: signed types, whose
/// file statistics hold the values themselves.
fn takes_ranges(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Date32
            | DataType::Date64
            | DataType::Decimal128(..)
    ) && packs(data_type)
}

/// Whether columns of `data_type` pack.
fn packs(data_type: &DataType) -> bool {
    full_range(data_type).is_some()
}

/// The smallest value of `data_type` and the bits its values span.
fn full_range(data_type: &DataType) -> Option<(i64, u32)> {
    Some(match data_type {
        DataType::Int8 => (i64::from(i8::MIN), 8),
        DataType::Int16 => (i64::from(i16::MIN), 16),
        DataType::Int32 | DataType::Date32 => (i64::from(i32::MIN), 32),
        DataType::Int64 | DataType::Date64 => (i64::MIN, 64),
        DataType::UInt8 => (0, 8),
        DataType::UInt16 => (0, 16),
        DataType::UInt32 => (0, 32),
        DataType::Decimal128(precision, _) if *precision <= MAX_PACKED_DECIMAL_PRECISION => {
            (i64::MIN, 64)
        }
        _ => return None,
    })
}

/// The smallest and largest non-null value of `column` (0 and 0 when there is none), when its
/// type packs into a key (integers, dates, decimals of up to 18 digits): the bounds a column's
/// statistics give, computed from its values.
pub fn value_range(column: &dyn Array) -> Option<(i64, i64)> {
    let values = values_as_i64(column)?;
    let nulls = column.logical_nulls();
    let valid = |row: &usize| nulls.as_ref().is_none_or(|nulls| nulls.is_valid(*row));
    let mut range: Option<(i64, i64)> = None;
    for row in (0..values.len()).filter(valid) {
        let value = values[row];
        range = Some(match range {
            Some((min, max)) => (min.min(value), max.max(value)),
            None => (value, value),
        });
    }
    Some(range.unwrap_or((0, 0)))
}

/// The smallest range holding every one of `ranges`, or `None` when there are none or one is
/// unknown: bounds of a table from the bounds of its files or batches.
pub fn union_of_ranges(ranges: impl IntoIterator<Item = Option<(i64, i64)>>) -> Option<(i64, i64)> {
    ranges
        .into_iter()
        .try_fold(None, |union: Option<(i64, i64)>, range| {
            let (low, high) = range?;
            Some(Some(match union {
                Some((lowest, highest)) => (lowest.min(low), highest.max(high)),
                None => (low, high),
            }))
        })
        .flatten()
}

/// The values of a column of a packing type as `i64`s (decimals beyond `i64` saturate; their
/// precision rules them out).
fn values_as_i64(column: &dyn Array) -> Option<std::borrow::Cow<'_, [i64]>> {
    use std::borrow::Cow;
    fn widened<T>(values: &[T]) -> Cow<'static, [i64]>
    where
        T: Copy + Into<i64>,
    {
        Cow::Owned(values.iter().map(|&value| value.into()).collect())
    }
    Some(match column.data_type() {
        DataType::Int8 => widened(column.as_primitive::<Int8Type>().values()),
        DataType::Int16 => widened(column.as_primitive::<Int16Type>().values()),
        DataType::Int32 => widened(column.as_primitive::<Int32Type>().values()),
        DataType::Date32 => widened(column.as_primitive::<Date32Type>().values()),
        DataType::UInt8 => widened(column.as_primitive::<UInt8Type>().values()),
        DataType::UInt16 => widened(column.as_primitive::<UInt16Type>().values()),
        DataType::UInt32 => widened(column.as_primitive::<UInt32Type>().values()),
        DataType::Int64 => Cow::Borrowed(column.as_primitive::<Int64Type>().values().as_ref()),
        DataType::Date64 => Cow::Borrowed(column.as_primitive::<Date64Type>().values().as_ref()),
        DataType::Decimal128(precision, _) if *precision <= MAX_PACKED_DECIMAL_PRECISION => {
            Cow::Owned(
                column
                    .as_primitive::<Decimal128Type>()
                    .values()
                    .iter()
                    .map(|&value| value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
                    .collect(),
            )
        }
        _ => return None,
    })
}

/// An array of `data_type` holding `values` (each within the type's range).
fn typed_array(
    data_type: &DataType,
    values: impl Iterator<Item = i64>,
    nulls: Option<NullBuffer>,
) -> Result<ArrayRef> {
    macro_rules! narrowed {
        ($arrow_type:ty, $native:ty) => {
            Arc::new(
                PrimitiveArray::<$arrow_type>::try_new(
                    values.map(|value| value as $native).collect(),
                    nulls,
                )?
                .with_data_type(data_type.clone()),
            ) as ArrayRef
        };
    }
    Ok(match data_type {
        DataType::Int8 => narrowed!(Int8Type, i8),
        DataType::Int16 => narrowed!(Int16Type, i16),
        DataType::Int32 => narrowed!(Int32Type, i32),
        DataType::Date32 => narrowed!(Date32Type, i32),
        DataType::Int64 => narrowed!(Int64Type, i64),
        DataType::Date64 => narrowed!(Date64Type, i64),
        DataType::UInt8 => narrowed!(UInt8Type, u8),
        DataType::UInt16 => narrowed!(UInt16Type, u16),
        DataType::UInt32 => narrowed!(UInt32Type, u32),
        DataType::Decimal128(..) => narrowed!(Decimal128Type, i128),
        other => {
            return Err(KernelError::KeyColumn {
                index: 0,
                message: format!("{other} does not pack"),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both builds of the first-field loop give the same keys and usable rows, in range and out
    /// of it, for a field of no bits and fields at a shift, in `u64` and `u128` keys.
    #[test]
    fn the_avx2_build_of_the_first_field_packs_as_the_baseline_does() {
        let values: Vec<i64> = (0..1000i64)
            .map(|row| (row * 7919) % 2000 - 500)
            .chain([i64::MIN, i64::MAX, 0, -1])
            .collect();
        for (min, bits, shift) in [(-500, 10, 0), (0, 0, 0), (-100, 8, 3), (i64::MIN, 64, 0)] {
            let field = PackedColumn {
                data_type: DataType::Int64,
                min,
                bits,
                shift,
                null_bit: None,
            };
            let (mut keys, mut usable) = (Vec::<u64>::new(), Vec::new());
            first_field_baseline(&field, &values, &mut keys, &mut usable);
            let (mut wide_keys, mut wide_usable) = (Vec::<u128>::new(), Vec::new());
            first_field_baseline(&field, &values, &mut wide_keys, &mut wide_usable);
            assert_eq!(usable, wide_usable);
            assert_eq!(keys.len(), values.len());
            let in_range = usable.iter().filter(|&&usable| usable).count();
            assert!(in_range > 0 && (bits == 64 || in_range < values.len()));
            if !crate::simd::avx2() {
                eprintln!("this CPU has no AVX2: only the baseline build was checked");
                continue;
            }
            #[cfg(target_arch = "x86_64")]
            {
                let (mut simd_keys, mut simd_usable) = (Vec::<u64>::new(), Vec::new());
                #[allow(unsafe_code)]
                // SAFETY: `simd::avx2()` said this CPU runs AVX2.
                unsafe {
                    first_field_avx2(&field, &values, &mut simd_keys, &mut simd_usable);
                }
                assert_eq!((simd_keys, simd_usable), (keys, usable));
                let (mut simd_wide, mut simd_wide_usable) = (Vec::<u128>::new(), Vec::new());
                #[allow(unsafe_code)]
                // SAFETY: as above.
                unsafe {
                    first_field_avx2(&field, &values, &mut simd_wide, &mut simd_wide_usable);
                }
                assert_eq!((simd_wide, simd_wide_usable), (wide_keys, wide_usable));
            }
        }
    }
}
