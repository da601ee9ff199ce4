//! SQL `LIKE` patterns made of literal text and `%` (no `_`, no escapes), matched by SIMD
//! substring search (`memchr::memmem`): each literal segment is looked for after the previous
//! one's match, leftmost first, which decides such a pattern exactly. Arrow's own `LIKE` has
//! fast paths for one segment (prefix, suffix, contains) and falls back to a regular expression
//! for more (TPC-H Q13's `'%special%requests%'`, Q16's `'%Customer%Complaints%'`).

use arrow::array::{Array, ArrayAccessor, ByteView, MAX_INLINE_VIEW_LEN, StringViewArray};
use arrow::buffer::BooleanBuffer;
use arrow::buffer::NullBuffer;
use memchr::memmem::Finder;

/// A `LIKE` pattern of literal segments separated by `%`.
#[derive(Debug, Clone)]
pub struct LikePattern {
    /// The first non-empty literal segment.
    first: Finder<'static>,
    /// The segments between the first and the last.
    middle: Vec<Finder<'static>>,
    /// The last non-empty literal segment.
    last: Finder<'static>,
    /// Whether the pattern does not start with `%`: the first segment is a prefix.
    anchored_start: bool,
    /// Whether the pattern does not end with `%`: the last segment is a suffix.
    anchored_end: bool,
}

impl LikePattern {
    /// The pattern `pattern`, when it has at least two literal segments and no `_` or escape
    /// character (`None` otherwise: Arrow's kernels match those as fast or need a regular
    /// expression).
    pub fn multi_segment(pattern: &str) -> Option<LikePattern> {
        if pattern.contains(['_', '\\']) {
            return None;
        }
        let mut segments: Vec<Finder<'static>> = pattern
            .split('%')
            .filter(|segment| !segment.is_empty())
            .map(|segment| Finder::new(segment.as_bytes()).into_owned())
            .collect();
        if segments.len() < 2 {
            return None;
        }
        let last = segments.pop()?;
        let first = segments.remove(0);
        Some(LikePattern {
            first,
            middle: segments,
            last,
            anchored_start: !pattern.starts_with('%'),
            anchored_end: !pattern.ends_with('%'),
        })
    }

    /// Whether `value` matches the pattern.
    pub fn matches(&self, value: &[u8]) -> bool {
        let (first, last) = (&self.first, &self.last);
        let mut position = if self.anchored_start {
            if !value.starts_with(first.needle()) {
                return false;
            }
            first.needle().len()
        } else {
            match first.find(value) {
                Some(found) => found + first.needle().len(),
                None => return false,
            }
        };
        for segment in &self.middle {
            match segment.find(&value[position..]) {
                Some(found) => position += found + segment.needle().len(),
                None => return false,
            }
        }
        if self.anchored_end {
            value.len() >= position + last.needle().len() && value.ends_with(last.needle())
        } else {
            last.find(&value[position..]).is_some()
        }
    }
}

/// The rows of `values` (a `Utf8`, `LargeUtf8` or `Utf8View` array) that match `pattern`
/// (`negated`: that do not); null rows are in neither.
pub fn strings_like<'a>(
    values: impl ArrayAccessor<Item = &'a str>,
    pattern: &LikePattern,
    negated: bool,
) -> BooleanBuffer {
    let matched = BooleanBuffer::collect_bool(values.len(), |row| {
        pattern.matches(values.value(row).as_bytes()) != negated
    });
    valid_only(matched, values.nulls())
}

/// `matched` without the rows that `nulls` marks null: a null matches neither way.
fn valid_only(matched: BooleanBuffer, nulls: Option<&NullBuffer>) -> BooleanBuffer {
    match nulls {
        Some(nulls) => &matched & nulls.inner(),
        None => matched,
    }
}

/// [`strings_like`] of a `Utf8View` array. Where the pattern's first segment may start anywhere,
/// the strings held in data buffers are screened by one search of each buffer for that segment
/// (every occurrence, overlapping ones included) instead of one search per row: only a row with
/// an occurrence inside its own bytes is matched against the whole pattern. TPC-H Q13's
/// `o_comment`, 48 bytes a row on average: a search per row cost more than decompressing the
/// column.
pub fn string_views_like(
    values: &StringViewArray,
    pattern: &LikePattern,
    negated: bool,
) -> BooleanBuffer {
    if pattern.anchored_start {
        return strings_like(values, pattern, negated);
    }
    let first = &pattern.first;
    let needle_len = first.needle().len();
    let occurrences: Vec<Vec<usize>> = values
        .data_buffers()
        .iter()
        .map(|buffer| {
            let mut found = Vec::new();
            let mut from = 0;
            while let Some(at) = first.find(&buffer[from..]) {
                found.push(from + at);
                from += at + 1;
            }
            found
        })
        .collect();
    // Per buffer: the first occurrence at or after the last row's start, and that start. Rows
    // of a decoded page lie in their buffer in row order, so the cursor only moves on.
    let mut cursors = vec![(0usize, 0usize); occurrences.len()];
    let views = values.views();
    let matched = BooleanBuffer::collect_bool(values.len(), |row| {
        let view = ByteView::from(views[row]);
        let is_match = if view.length <= MAX_INLINE_VIEW_LEN {
            pattern.matches(values.value(row).as_bytes())
        } else {
            let (start, length) = (view.offset as usize, view.length as usize);
            let found = &occurrences[view.buffer_index as usize];
            let (cursor, last_start) = &mut cursors[view.buffer_index as usize];
            if start < *last_start {
                *cursor = found.partition_point(|&at| at < start);
            } else {
                while *cursor < found.len() && found[*cursor] < start {
                    *cursor += 1;
                }
            }
            *last_start = start;
            let inside = found
                .get(*cursor)
                .is_some_and(|&at| at + needle_len <= start + length);
            inside && pattern.matches(values.value(row).as_bytes())
        };
        is_match != negated
    });
    valid_only(matched, values.nulls())
}

#[cfg(test)]
mod tests {
    use arrow::array::{StringArray, StringViewArray};
    use proptest::prelude::*;

    use super::*;

    /// `LIKE` by its definition: `%` matches any run of characters, the rest itself.
    fn reference(pattern: &[u8], value: &[u8]) -> bool {
        match pattern.split_first() {
            None => value.is_empty(),
            Some((b'%', rest)) => (0..=value.len()).any(|skip| reference(rest, &value[skip..])),
            Some((&literal, rest)) => {
                value.first() == Some(&literal) && reference(rest, &value[1..])
            }
        }
    }

    #[test]
    fn tpch_patterns_match_as_like_does() {
        let pattern = LikePattern::multi_segment("%special%requests%").unwrap();
        assert!(pattern.matches(b"the special requests are"));
        assert!(pattern.matches(b"specialrequests"));
        assert!(!pattern.matches(b"requests special"));
        assert!(!pattern.matches(b"special request"));
        let anchored = LikePattern::multi_segment("ab%ab").unwrap();
        assert!(anchored.matches(b"abab") && anchored.matches(b"ab xx ab"));
        // The prefix and suffix may not share characters.
        assert!(!anchored.matches(b"aba") && !anchored.matches(b"ab"));
        for single in ["%green%", "forest%", "%BRASS", "PROMO", "a_b%c", "%a\\%b%"] {
            assert!(LikePattern::multi_segment(single).is_none(), "{single}");
        }
    }

    #[test]
    fn nulls_match_neither_way() {
        let values = StringViewArray::from(vec![Some("x special y requests"), None, Some("no")]);
        let pattern = LikePattern::multi_segment("%special%requests%").unwrap();
        let like: Vec<bool> = strings_like(&values, &pattern, false).iter().collect();
        assert_eq!(like, [true, false, false]);
        let not_like: Vec<bool> = strings_like(&values, &pattern, true).iter().collect();
        assert_eq!(not_like, [false, false, true]);
        let utf8 = StringArray::from(vec![Some("x special y requests"), None, Some("no")]);
        let like: Vec<bool> = strings_like(&utf8, &pattern, false).iter().collect();
        assert_eq!(like, [true, false, false]);
    }

    #[test]
    fn view_rows_in_any_buffer_order_match_as_row_by_row() {
        let strings: Vec<Option<String>> = (0..400)
            .map(|row| {
                (row % 11 != 0).then(|| match row % 5 {
                    0 => format!("row {row} has special then requests"),
                    1 => format!("special{row}"),
                    2 => "specialrequests".to_string(),
                    3 => format!("requests before special {row}"),
                    _ => format!("nothing here for row {row} at all"),
                })
            })
            .collect();
        let values = StringViewArray::from(strings.clone());
        // Rows reversed: their strings then lie in the buffer in descending order.
        let reversed = arrow::compute::take(
            &values,
            &arrow::array::UInt32Array::from_iter_values((0..400).rev()),
            None,
        )
        .unwrap();
        let reversed = reversed.as_any().downcast_ref::<StringViewArray>().unwrap();
        for pattern in ["%special%requests%", "%ecial%ests", "%special%requests"] {
            let pattern = LikePattern::multi_segment(pattern).unwrap();
            for negated in [false, true] {
                for array in [&values, reversed, &values.slice(37, 300)] {
                    assert_eq!(
                        string_views_like(array, &pattern, negated),
                        strings_like(array, &pattern, negated)
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn views_screened_by_buffer_search_match_as_row_by_row(
            pattern in "%[ab]{1,3}%[ab%]{1,5}",
            values in proptest::collection::vec(proptest::option::of("[ab]{0,20}"), 0..60),
        ) {
            if let Some(compiled) = LikePattern::multi_segment(&pattern) {
                let array = StringViewArray::from(values);
                for negated in [false, true] {
                    prop_assert_eq!(
                        string_views_like(&array, &compiled, negated),
                        strings_like(&array, &compiled, negated)
                    );
                }
            }
        }

        #[test]
        fn patterns_of_literals_and_percents_match_like_their_definition(
            pattern in "[ab%]{0,8}",
            value in "[ab]{0,10}",
        ) {
            if let Some(compiled) = LikePattern::multi_segment(&pattern) {
                prop_assert_eq!(
                    compiled.matches(value.as_bytes()),
                    reference(pattern.as_bytes(), value.as_bytes()),
                    "{} LIKE {}", value, pattern
                );
            }
        }
    }
}
