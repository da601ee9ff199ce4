//! Equality of a string-view column with string literals, decided by the columns' 16-byte
//! views. A view starts with the string's length; a string of at most 12 bytes follows inline,
//! zero-padded, so equality with such a literal is one 128-bit comparison per row. A longer
//! string's view holds its first 4 bytes after the length, so only rows whose length and
//! prefix match compare their bytes. Arrow's comparison kernels instead take each row's bytes
//! through the general byte-view path.

use arrow::array::{Array, GenericByteViewArray};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::ByteViewType;

/// Longest string stored inline in its view.
const MAX_INLINE_LEN: usize = 12;

/// A literal as the views of equal strings start.
#[derive(Debug, Clone)]
pub struct ViewLiteral {
    bytes: Vec<u8>,
    /// The view of an equal string: whole for inline literals, else its length and prefix.
    view: u128,
}

impl ViewLiteral {
    pub fn new(bytes: &[u8]) -> ViewLiteral {
        let mut view = [0u8; 16];
        view[..4].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        let inline = bytes.len().min(MAX_INLINE_LEN);
        // Longer strings keep only their first 4 bytes in the view.
        let stored = if bytes.len() <= MAX_INLINE_LEN {
            inline
        } else {
            4
        };
        view[4..4 + stored].copy_from_slice(&bytes[..stored]);
        ViewLiteral {
            bytes: bytes.to_vec(),
            view: u128::from_le_bytes(view),
        }
    }

    fn is_inline(&self) -> bool {
        self.bytes.len() <= MAX_INLINE_LEN
    }
}

/// The rows of `array` equal to any of `literals` (`negated`: equal to none), as a mask; a
/// null row is false either way.
pub fn views_matching<T: ByteViewType + ?Sized>(
    array: &GenericByteViewArray<T>,
    literals: &[ViewLiteral],
    negated: bool,
) -> BooleanBuffer {
    let views = array.views();
    let mut matching = BooleanBuffer::new_unset(array.len());
    for literal in literals {
        let equal = if literal.is_inline() {
            let target = literal.view;
            BooleanBuffer::collect_bool(views.len(), |row| views[row] == target)
        } else {
            // The length and prefix: the view's low 8 bytes.
            let target = literal.view as u64;
            BooleanBuffer::collect_bool(views.len(), |row| {
                views[row] as u64 == target
                    && AsRef::<[u8]>::as_ref(array.value(row)) == literal.bytes.as_slice()
            })
        };
        matching = &matching | &equal;
    }
    if negated {
        matching = !&matching;
    }
    match array.nulls() {
        Some(nulls) => &matching & nulls.inner(),
        None => matching,
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::StringViewArray;
    use proptest::prelude::*;

    use super::*;

    /// Strings of lengths around the inline limit, sharing prefixes, with nulls.
    fn strings() -> impl Strategy<Value = Vec<Option<String>>> {
        let piece = prop::sample::select(vec!["", "a", "ab", "abcd", "abcdefghijkl", "x"]);
        proptest::collection::vec(
            proptest::option::weighted(
                0.9,
                proptest::collection::vec(piece, 0..4).prop_map(|pieces| pieces.concat()),
            ),
            0..200,
        )
    }

    proptest! {
        #[test]
        fn matches_like_comparing_the_strings(
            rows in strings(),
            literals in proptest::collection::vec(
                prop::sample::select(vec!["", "a", "abcd", "abcdefghijkl", "abcdefghijkla", "abcdx", "ab"]),
                1..3,
            ),
            negated in any::<bool>(),
        ) {
            let array = StringViewArray::from(rows.clone());
            let view_literals: Vec<ViewLiteral> =
                literals.iter().map(|literal| ViewLiteral::new(literal.as_bytes())).collect();
            let found = views_matching(&array, &view_literals, negated);
            for (row, value) in rows.iter().enumerate() {
                let expected = value.as_ref().is_some_and(|value| {
                    literals.iter().any(|literal| literal == value) != negated
                });
                prop_assert_eq!(found.value(row), expected, "row {} {:?}", row, value);
            }
        }
    }

    #[test]
    fn long_strings_in_shared_buffers_are_compared_by_their_bytes() {
        let long = "DELIVER IN PERSON";
        let array = StringViewArray::from(vec![
            Some(long),
            Some("DELIVER IN PERSOM"),
            Some("DELI"),
            None,
            Some("COLLECT COD"),
        ]);
        let found = views_matching(&array, &[ViewLiteral::new(long.as_bytes())], false);
        assert_eq!(
            found.iter().collect::<Vec<_>>(),
            [true, false, false, false, false]
        );
    }
}
