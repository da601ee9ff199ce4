//! Page pruning by join keys: which rows of a Parquet row group may hold one of a join's build
//! keys, read from the file's page index (each page's min and max of the probe key column, and
//! its first row). A probe pipeline whose join keeps only rows with a match (see the executor's
//! key filters) then reads only those pages: a scan of a table sorted by its key (TPC-H's
//! `lineitem` by order) probed by a few keys (Q18's 57 large orders) skips the rest of every
//! column chunk without decompressing it.

use std::ops::Range;

use arrow::array::{ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::page_index::column_index::ColumnIndexMetaData;

/// The build keys a scan's rows must match on one of its columns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeyPages {
    /// The column of the scan's output holding the probe key.
    pub(crate) column: usize,
    /// The build keys, ascending and distinct.
    pub(crate) keys: Vec<i64>,
}

/// Whether a key column of `data_type` can prune pages: signed integers and dates, whose page
/// statistics order as their values do.
pub(crate) fn prunes_pages(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Date32
    )
}

/// The non-null values of `column` (of a type [`prunes_pages`] takes), ascending and distinct;
/// `None` for another type.
pub(crate) fn distinct_keys(column: &ArrayRef) -> Option<Vec<i64>> {
    if !prunes_pages(column.data_type()) {
        return None;
    }
    let values = cast(column, &DataType::Int64).ok()?;
    let mut keys: Vec<i64> = values
        .as_primitive::<Int64Type>()
        .iter()
        .flatten()
        .collect();
    keys.sort_unstable();
    keys.dedup();
    Some(keys)
}

/// The rows of row group `row_group` in pages of leaf column `leaf` whose min/max range holds
/// one of `keys` (ascending), as ascending disjoint ranges; `None` where the file has no page
/// index for the column or its statistics are not of 32- or 64-bit integers. A page of nulls
/// holds no key; a page without statistics may hold any.
pub(crate) fn rows_with_keys(
    metadata: &ParquetMetaData,
    row_group: usize,
    leaf: usize,
    keys: &[i64],
) -> Option<Vec<Range<usize>>> {
    let index = metadata.column_index()?.get(row_group)?.get(leaf)?;
    let pages = metadata
        .offset_index()?
        .get(row_group)?
        .get(leaf)?
        .page_locations();
    let rows = usize::try_from(metadata.row_group(row_group).num_rows()).ok()?;
    let indexed_pages = match index {
        ColumnIndexMetaData::INT32(index) => index.min_values().len(),
        ColumnIndexMetaData::INT64(index) => index.min_values().len(),
        _ => return None,
    };
    // A damaged file whose two indexes disagree is read whole.
    if indexed_pages != pages.len() {
        return None;
    }
    // Per page: `None` where the statistics are of another type; `Some(None)` for a page of
    // nulls; else its bounds, unbounded where a statistic is missing.
    let bounds = |page: usize| -> Option<Option<(i64, i64)>> {
        let (nulls, min, max) = match index {
            ColumnIndexMetaData::INT32(index) => (
                index.is_null_page(page),
                index.min_value(page).map(|&min| i64::from(min)),
                index.max_value(page).map(|&max| i64::from(max)),
            ),
            ColumnIndexMetaData::INT64(index) => (
                index.is_null_page(page),
                index.min_value(page).copied(),
                index.max_value(page).copied(),
            ),
            _ => return None,
        };
        Some((!nulls).then(|| (min.unwrap_or(i64::MIN), max.unwrap_or(i64::MAX))))
    };
    let mut kept: Vec<Range<usize>> = Vec::new();
    for (page, location) in pages.iter().enumerate() {
        let start = usize::try_from(location.first_row_index).ok()?;
        let end = match pages.get(page + 1) {
            Some(next) => usize::try_from(next.first_row_index).ok()?,
            None => rows,
        };
        let holds_key = bounds(page)?.is_some_and(|(min, max)| {
            let first_at_least_min = keys.partition_point(|&key| key < min);
            keys.get(first_at_least_min).is_some_and(|&key| key <= max)
        });
        if !holds_key || start >= end {
            continue;
        }
        match kept.last_mut() {
            Some(last) if last.end == start => last.end = end,
            _ => kept.push(start..end),
        }
    }
    Some(kept)
}

/// The rows in both `left` and `right` (each ascending and disjoint), ascending and disjoint.
pub(crate) fn intersect(left: &[Range<usize>], right: &[Range<usize>]) -> Vec<Range<usize>> {
    let (mut both, mut l, mut r) = (Vec::new(), 0, 0);
    while let (Some(a), Some(b)) = (left.get(l), right.get(r)) {
        let (start, end) = (a.start.max(b.start), a.end.min(b.end));
        if start < end {
            both.push(start..end);
        }
        if a.end <= b.end {
            l += 1;
        } else {
            r += 1;
        }
    }
    both
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{Field, Schema};
    use arrow::record_batch::RecordBatch;
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
    use parquet::file::metadata::PageIndexPolicy;
    use parquet::file::properties::WriterProperties;

    use super::*;

    #[test]
    fn only_the_pages_whose_range_holds_a_key_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sorted.parquet");
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from_iter_values(0..1_000))],
        )
        .unwrap();
        let properties = WriterProperties::builder()
            .set_data_page_row_count_limit(100)
            .set_write_batch_size(100)
            .build();
        let mut writer =
            ArrowWriter::try_new(File::create(&path).unwrap(), schema, Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let metadata = ArrowReaderMetadata::load(&File::open(&path).unwrap(), options).unwrap();
        let metadata = metadata.metadata();
        assert_eq!(
            rows_with_keys(metadata, 0, 0, &[-5, 150, 155, 199, 200, 720]),
            Some(vec![100..300, 700..800])
        );
        assert_eq!(rows_with_keys(metadata, 0, 0, &[5_000]), Some(vec![]));
        assert_eq!(rows_with_keys(metadata, 0, 0, &[]), Some(vec![]));
    }

    #[test]
    fn intersections_keep_the_rows_in_both() {
        assert_eq!(
            intersect(&[0..10, 20..30], &[5..25, 28..40]),
            vec![5..10, 20..25, 28..30]
        );
        assert!(intersect(&[0..10, 40..50], &[10..20, 30..35]).is_empty());
        assert!(intersect(&[], &[0..5, 8..9]).is_empty());
    }

    #[test]
    fn distinct_keys_are_sorted_without_nulls() {
        let column: ArrayRef = Arc::new(Int64Array::from(vec![Some(9), None, Some(-3), Some(9)]));
        assert_eq!(distinct_keys(&column), Some(vec![-3, 9]));
        let strings: ArrayRef = Arc::new(arrow::array::StringArray::from(vec!["a"]));
        assert_eq!(distinct_keys(&strings), None);
        assert!(prunes_pages(&DataType::Date32) && !prunes_pages(&DataType::UInt64));
    }
}
