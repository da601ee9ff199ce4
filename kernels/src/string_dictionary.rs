//! A dictionary of strings shared by every task of one operator: each distinct string gets a
//! `u32` id (0 stands for null), so string group keys pack into a word like integers do, and
//! two tasks give the same string the same id. A `Utf8View` string of up to 12 bytes is looked up
//! by its view (length and inline bytes, one `u128`) without touching its bytes; other strings
//! of up to 15 bytes as one `u128` of their bytes and length; longer ones through a hash map of
//! their bytes, hashed with `ahash` (std's SipHash showed in TPC-H Q16's profile). Inline views
//! seen recently are answered by a small direct-mapped cache, one-byte strings by an array indexed
//! by their byte. Lookups take a read lock; only a batch with new strings takes the write lock,
//! once.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use ahash::RandomState;
use arrow::array::{Array, ArrayRef, AsArray, StringArray, StringViewArray};
use arrow::datatypes::DataType;

use crate::error::{KernelError, Result};
use crate::packed_key::PackedKey;
use crate::slots::SlotTable;

/// The id of null.
const NULL_ID: u32 = 0;
/// Marks a row whose string the read pass did not find.
const MISSING: u32 = u32::MAX;
/// Strings up to this long are looked up as one `u128` (their bytes and their length).
const SHORT_STRING_BYTES: usize = 15;

/// Interns the strings of string columns (`Utf8`, `LargeUtf8`, `Utf8View`) into `u32` ids.
#[derive(Default)]
pub struct StringDictionary {
    entries: RwLock<Entries>,
}

struct Entries {
    /// Inline `Utf8View` views (bytes past the length zeroed), with their dictionary ids.
    views: SlotTable<u128>,
    view_ids: Vec<u32>,
    short: SlotTable<u128>,
    /// Dictionary id of each short string, by its slot-table id.
    short_ids: Vec<u32>,
    long: HashMap<Box<[u8]>, u32, RandomState>,
    /// The strings, by id minus one.
    values: Vec<Box<str>>,
    /// Bytes of the strings, each counted twice (in `values` and as a key of `long` or `short`).
    string_bytes: usize,
}

impl Default for Entries {
    fn default() -> Self {
        Entries {
            views: SlotTable::with_expected(0),
            view_ids: Vec::new(),
            short: SlotTable::with_expected(0),
            short_ids: Vec::new(),
            long: HashMap::with_hasher(RandomState::new()),
            values: Vec::new(),
            string_bytes: 0,
        }
    }
}

impl Entries {
    fn find(&self, value: &str) -> Option<u32> {
        match short_key(value) {
            Some(key) => self
                .short
                .find(key, key.hash())
                .map(|short| self.short_ids[short as usize]),
            None => self.long.get(value.as_bytes()).copied(),
        }
    }

    fn find_view(&self, view: u128) -> Option<u32> {
        self.views
            .find(view, view.hash())
            .map(|index| self.view_ids[index as usize])
    }

    fn find_or_insert_view(&mut self, view: u128, value: &str) -> u32 {
        let index = self.views.find_or_insert(view, view.hash()) as usize;
        if index == self.view_ids.len() {
            let id = self.find_or_insert(value);
            self.view_ids.push(id);
        }
        self.view_ids[index]
    }

    fn find_or_insert(&mut self, value: &str) -> u32 {
        let next_id = self.values.len() as u32 + 1;
        let id = match short_key(value) {
            Some(key) => {
                let short = self.short.find_or_insert(key, key.hash()) as usize;
                if short == self.short_ids.len() {
                    self.short_ids.push(next_id);
                }
                self.short_ids[short]
            }
            None => *self.long.entry(value.as_bytes().into()).or_insert(next_id),
        };
        if id == next_id {
            self.string_bytes += 2 * (value.len() + std::mem::size_of::<Box<str>>());
            self.values.push(value.into());
        }
        id
    }
}

/// The view of an inline `Utf8View` string (at most 12 bytes) with the bytes past its length
/// zeroed, or `None` for a longer string.
#[inline]
fn inline_view(view: u128) -> Option<u128> {
    const LENGTH_BITS: u32 = 32;
    const MAX_INLINE_BYTES: u32 = 12;
    let length = view as u32;
    match length {
        0..MAX_INLINE_BYTES => Some(view & ((1u128 << (LENGTH_BITS + 8 * length)) - 1)),
        MAX_INLINE_BYTES => Some(view),
        _ => None,
    }
}

/// A small direct-mapped cache of inline views and their ids, in front of the dictionary's
/// table: a column of few distinct short strings (flags, codes) finds nearly every row here, with
/// one multiply instead of the table's hash and probe.
struct RecentViews {
    entries: [(u128, u32); RecentViews::SLOTS],
}

impl RecentViews {
    const SLOTS: usize = 64;

    fn new() -> RecentViews {
        // No inline view equals `u128::MAX`: its length field would be past 12.
        RecentViews {
            entries: [(u128::MAX, NULL_ID); RecentViews::SLOTS],
        }
    }

    #[inline]
    fn slot(view: u128) -> usize {
        let folded = (view as u64) ^ ((view >> 64) as u64);
        (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (u64::BITS - RecentViews::SLOTS.ilog2()))
            as usize
    }

    #[inline]
    fn get(&self, view: u128) -> Option<u32> {
        let (held, id) = self.entries[RecentViews::slot(view)];
        (held == view).then_some(id)
    }

    #[inline]
    fn insert(&mut self, view: u128, id: u32) {
        self.entries[RecentViews::slot(view)] = (view, id);
    }
}

/// A string of at most [`SHORT_STRING_BYTES`] bytes as one word: its bytes, then its length.
fn short_key(value: &str) -> Option<u128> {
    let bytes = value.as_bytes();
    if bytes.len() > SHORT_STRING_BYTES {
        return None;
    }
    let mut word = [0u8; 16];
    word[..bytes.len()].copy_from_slice(bytes);
    word[SHORT_STRING_BYTES] = bytes.len() as u8;
    Some(u128::from_le_bytes(word))
}

/// Calls `visit` with each row's string (`None` for null).
fn for_each_string(column: &dyn Array, mut visit: impl FnMut(usize, Option<&str>)) -> Result<()> {
    match column.data_type() {
        DataType::Utf8 => column
            .as_string::<i32>()
            .iter()
            .enumerate()
            .for_each(|(row, value)| visit(row, value)),
        DataType::LargeUtf8 => column
            .as_string::<i64>()
            .iter()
            .enumerate()
            .for_each(|(row, value)| visit(row, value)),
        DataType::Utf8View => column
            .as_string_view()
            .iter()
            .enumerate()
            .for_each(|(row, value)| visit(row, value)),
        other => {
            return Err(KernelError::KeyColumn {
                index: 0,
                message: format!("{other} is not a string type"),
            });
        }
    }
    Ok(())
}

impl StringDictionary {
    /// An empty dictionary.
    pub fn new() -> StringDictionary {
        StringDictionary::default()
    }

    /// Whether columns of `data_type` can be interned.
    pub fn accepts(data_type: &DataType) -> bool {
        matches!(
            data_type,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
    }

    /// Writes the id of each row's string over `ids` (0 for null), adding new strings.
    pub fn intern(&self, column: &dyn Array, ids: &mut Vec<u32>) -> Result<()> {
        ids.clear();
        if column.data_type() == &DataType::Utf8View {
            self.intern_views(column.as_string_view(), ids);
            return Ok(());
        }
        let mut missing = Vec::new();
        {
            let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
            for_each_string(column, |row, value| {
                let id = match value {
                    None => NULL_ID,
                    Some(value) => entries.find(value).unwrap_or_else(|| {
                        missing.push(row);
                        MISSING
                    }),
                };
                ids.push(id);
            })?;
        }
        if missing.is_empty() {
            return Ok(());
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let mut next_missing = missing.into_iter().peekable();
        for_each_string(column, |row, value| {
            if next_missing.peek() == Some(&row) {
                next_missing.next();
                if let Some(value) = value {
                    ids[row] = entries.find_or_insert(value);
                }
            }
        })
    }

    fn intern_views(&self, column: &StringViewArray, ids: &mut Vec<u32>) {
        let views = column.views();
        let nulls = column.logical_nulls();
        let is_null = |row: usize| nulls.as_ref().is_some_and(|nulls| nulls.is_null(row));
        ids.resize(views.len(), NULL_ID);
        let mut missing = Vec::new();
        {
            let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
            let mut recent = RecentViews::new();
            // Ids of one-byte strings (flags and codes) by their byte; 0 where not yet known. A
            // row found here is written without a look at its null bit: a null row's id is set
            // to null after the loop.
            let mut one_byte = [NULL_ID; 256];
            for (row, (&view, id)) in views.iter().zip(ids.iter_mut()).enumerate() {
                let byte = (view as u32 == 1).then_some((view >> 32) as u8 as usize);
                if let Some(byte) = byte
                    && one_byte[byte] != NULL_ID
                {
                    *id = one_byte[byte];
                    continue;
                }
                if is_null(row) {
                    continue;
                }
                let found = match inline_view(view) {
                    Some(inline) => recent.get(inline).or_else(|| {
                        let found = entries.find_view(inline);
                        if let Some(id) = found {
                            recent.insert(inline, id);
                        }
                        found
                    }),
                    None => entries.find(column.value(row)),
                };
                if let (Some(byte), Some(id)) = (byte, found) {
                    one_byte[byte] = id;
                }
                *id = found.unwrap_or_else(|| {
                    missing.push(row);
                    MISSING
                });
            }
        }
        if let Some(nulls) = nulls.as_ref().filter(|nulls| nulls.null_count() > 0) {
            for (id, valid) in ids.iter_mut().zip(nulls.iter()) {
                if !valid {
                    *id = NULL_ID;
                }
            }
        }
        if missing.is_empty() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        for row in missing {
            let value = column.value(row);
            ids[row] = match inline_view(views[row]) {
                Some(inline) => entries.find_or_insert_view(inline, value),
                None => entries.find_or_insert(value),
            };
        }
    }

    /// The strings by id, as an array of `data_type` whose row `id` holds the string with that
    /// id (row 0 is null).
    pub fn values(&self, data_type: &DataType) -> Result<ArrayRef> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let values: ArrayRef = Arc::new(StringArray::from_iter(
            std::iter::once(None).chain(entries.values.iter().map(|value| Some(value.as_ref()))),
        ));
        Ok(arrow::compute::cast(&values, data_type)?)
    }

    /// Bytes held by the dictionary.
    pub fn memory_size(&self) -> usize {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries.views.memory_size()
            + entries.view_ids.capacity() * 4
            + entries.short.memory_size()
            + entries.short_ids.capacity() * 4
            + entries.string_bytes
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::LargeStringArray;

    use super::*;

    #[test]
    fn equal_strings_share_an_id_across_types_and_calls() {
        let dictionary = StringDictionary::new();
        let long = "a string longer than fifteen bytes";
        let mut first = Vec::new();
        dictionary
            .intern(
                &StringArray::from(vec![Some("b"), None, Some(long), Some("b")]),
                &mut first,
            )
            .unwrap();
        assert_eq!(first, vec![1, 0, 2, 1]);
        let mut second = Vec::new();
        dictionary
            .intern(
                &StringViewArray::from(vec![Some(long), Some("c"), Some("")]),
                &mut second,
            )
            .unwrap();
        assert_eq!(second, vec![2, 3, 4]);
        let mut third = Vec::new();
        dictionary
            .intern(&LargeStringArray::from(vec!["", "b"]), &mut third)
            .unwrap();
        assert_eq!(third, vec![4, 1]);
        let values = dictionary.values(&DataType::Utf8).unwrap();
        let values = values.as_string::<i32>();
        assert!(values.is_null(0));
        let strings: Vec<&str> = (1..values.len()).map(|id| values.value(id)).collect();
        assert_eq!(strings, vec!["b", long, "c", ""]);
    }

    #[test]
    fn one_byte_flags_keep_their_ids_across_batches_and_types() {
        let flags: Vec<Option<&str>> = (0..3000)
            .map(|row| match row % 7 {
                0 => None,
                1 | 4 => Some("R"),
                2 => Some("A"),
                3 => Some("N"),
                5 => Some("NN"),
                _ => Some(""),
            })
            .collect();
        let dictionary = StringDictionary::new();
        let mut from_strings = Vec::new();
        dictionary
            .intern(&StringArray::from(flags.clone()), &mut from_strings)
            .unwrap();
        for _ in 0..2 {
            let mut from_views = Vec::new();
            dictionary
                .intern(&StringViewArray::from(flags.clone()), &mut from_views)
                .unwrap();
            assert_eq!(from_views, from_strings);
        }
        // New one-byte strings first met as views get ids the string path then finds.
        let views_first = StringDictionary::new();
        let mut first_views = Vec::new();
        views_first
            .intern(&StringViewArray::from(flags.clone()), &mut first_views)
            .unwrap();
        let mut then_strings = Vec::new();
        views_first
            .intern(&StringArray::from(flags.clone()), &mut then_strings)
            .unwrap();
        assert_eq!(then_strings, first_views);
        let values = dictionary.values(&DataType::Utf8).unwrap();
        let values = values.as_string::<i32>();
        for (flag, &id) in flags.iter().zip(&from_strings) {
            match flag {
                None => assert_eq!(id, NULL_ID),
                Some(flag) => assert_eq!(values.value(id as usize), *flag),
            }
        }
    }

    #[test]
    fn a_null_row_is_null_whatever_view_lies_under_it() {
        let strings = StringViewArray::from(vec!["R", "A", "R", "a longer string past twelve"]);
        let nulls = arrow::buffer::NullBuffer::from(vec![true, false, false, false]);
        let masked = StringViewArray::new(
            strings.views().clone(),
            strings.data_buffers().to_vec(),
            Some(nulls),
        );
        let dictionary = StringDictionary::new();
        let mut ids = Vec::new();
        dictionary.intern(&masked, &mut ids).unwrap();
        assert_ne!(ids[0], NULL_ID);
        assert_eq!(&ids[1..], &[NULL_ID; 3]);
        let values = dictionary.values(&DataType::Utf8).unwrap();
        assert_eq!(values.len(), 2, "only R was interned");
    }

    #[test]
    fn inline_views_match_the_same_strings_of_other_types() {
        let dictionary = StringDictionary::new();
        let values = [
            "twelve bytes",
            "",
            "a",
            "a",
            "thirteen byte",
            "a",
            "twelve bytes",
        ];
        let mut from_views = Vec::new();
        dictionary
            .intern(&StringViewArray::from(values.to_vec()), &mut from_views)
            .unwrap();
        assert_eq!(from_views, vec![1, 2, 3, 3, 4, 3, 1]);
        let mut from_strings = Vec::new();
        dictionary
            .intern(&StringArray::from(values.to_vec()), &mut from_strings)
            .unwrap();
        assert_eq!(from_strings, from_views);
        let mut sliced = Vec::new();
        let views = StringViewArray::from(vec![Some("x"), None, Some("twelve bytes")]);
        dictionary.intern(&views.slice(1, 2), &mut sliced).unwrap();
        assert_eq!(sliced, vec![0, 1]);
    }
}
