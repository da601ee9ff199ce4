//! Merging sorted entry streams (the memtable's and the tables') into one, in key order (or,
//! for streams that run backwards, in reverse key order), where for a key present in several
//! streams the newest stream's entry wins and the others are skipped. Deletes come through as `None` values: a read drops them, and a compaction that
//! merges every table drops them too.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;

use crate::error::Result;
use crate::sstable::Entry;

/// A stream of entries in key order.
pub(crate) type Entries = Box<dyn Iterator<Item = Result<Entry>> + Send>;

/// The next entry's key of one stream, ordered so the heap's top is the key to emit next
/// (the smallest, or the largest when descending), newest stream first among equal keys.
#[derive(PartialEq, Eq)]
struct Head {
    key: Vec<u8>,
    stream: usize,
    descending: bool,
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        let by_key = if self.descending {
            self.key.cmp(&other.key)
        } else {
            other.key.cmp(&self.key)
        };
        by_key.then_with(|| other.stream.cmp(&self.stream))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The merge of streams given newest first.
pub(crate) struct Merged {
    streams: Vec<Entries>,
    descending: bool,
    heads: BinaryHeap<Head>,
    values: Vec<Option<Option<Vec<u8>>>>,
    failed: bool,
}

impl Merged {
    /// The merge of streams in ascending key order.
    pub(crate) fn new(streams: Vec<Entries>) -> Result<Merged> {
        Merged::with_direction(streams, false)
    }

    /// The merge of streams in descending key order.
    pub(crate) fn descending(streams: Vec<Entries>) -> Result<Merged> {
        Merged::with_direction(streams, true)
    }

    fn with_direction(streams: Vec<Entries>, descending: bool) -> Result<Merged> {
        let mut merged = Merged {
            values: vec![None; streams.len()],
            streams,
            descending,
            heads: BinaryHeap::new(),
            failed: false,
        };
        for stream in 0..merged.streams.len() {
            merged.advance(stream)?;
        }
        Ok(merged)
    }

    /// Moves stream `stream` to its next entry.
    fn advance(&mut self, stream: usize) -> Result<()> {
        if let Some(entry) = self.streams[stream].next() {
            let (key, value) = entry?;
            self.values[stream] = Some(value);
            self.heads.push(Head {
                key,
                stream,
                descending: self.descending,
            });
        }
        Ok(())
    }

    /// Replaces the top head (of stream `stream`) by that stream's next entry, or drops it
    /// when the stream is used up, and returns the key it held. Replacing in place costs one
    /// or two comparisons while the same stream keeps the smallest key, where a pop and a
    /// push would cost two walks of the heap.
    fn replace_top(&mut self, stream: usize) -> Result<Option<Vec<u8>>> {
        let Some(mut top) = self.heads.peek_mut() else {
            return Ok(None);
        };
        match self.streams[stream].next() {
            Some(Ok((key, value))) => {
                self.values[stream] = Some(value);
                Ok(Some(std::mem::replace(&mut top.key, key)))
            }
            Some(Err(error)) => {
                self.failed = true;
                Err(error)
            }
            None => Ok(Some(PeekMut::pop(top).key)),
        }
    }
}

impl Iterator for Merged {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        if self.failed {
            return None;
        }
        let newest = self.heads.peek()?.stream;
        let value = self.values[newest].take().unwrap_or_default();
        let key = match self.replace_top(newest) {
            Ok(key) => key?,
            Err(error) => return Some(Err(error)),
        };
        // Older entries of the same key are shadowed.
        while let Some(head) = self.heads.peek() {
            if head.key != key {
                break;
            }
            let stream = head.stream;
            self.values[stream] = None;
            if let Err(error) = self.replace_top(stream) {
                return Some(Err(error));
            }
        }
        Some(Ok((key, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(entries: &[(&str, Option<&str>)]) -> Entries {
        let entries: Vec<Result<Entry>> = entries
            .iter()
            .map(|(key, value)| {
                Ok((
                    key.as_bytes().to_vec(),
                    value.map(|v| v.as_bytes().to_vec()),
                ))
            })
            .collect();
        Box::new(entries.into_iter())
    }

    #[test]
    fn the_newest_entry_of_a_key_wins() {
        let newest = stream(&[("b", None), ("d", Some("new"))]);
        let oldest = stream(&[
            ("a", Some("1")),
            ("b", Some("2")),
            ("d", Some("old")),
            ("e", Some("5")),
        ]);
        let merged: Vec<Entry> = Merged::new(vec![newest, oldest])
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        let shown: Vec<(String, Option<String>)> = merged
            .into_iter()
            .map(|(key, value)| {
                (
                    String::from_utf8(key).unwrap(),
                    value.map(|value| String::from_utf8(value).unwrap()),
                )
            })
            .collect();
        let expected = [
            ("a", Some("1")),
            ("b", None),
            ("d", Some("new")),
            ("e", Some("5")),
        ];
        let expected: Vec<(String, Option<String>)> = expected
            .iter()
            .map(|(key, value)| (key.to_string(), value.map(str::to_string)))
            .collect();
        assert_eq!(shown, expected);
    }

    #[test]
    fn merging_backwards_gives_the_same_entries_in_reverse() {
        let newest = stream(&[("d", Some("new")), ("b", None)]);
        let oldest = stream(&[
            ("e", Some("5")),
            ("d", Some("old")),
            ("b", Some("2")),
            ("a", Some("1")),
        ]);
        let merged: Vec<Entry> = Merged::descending(vec![newest, oldest])
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        let keys: Vec<(&[u8], Option<&[u8]>)> = merged
            .iter()
            .map(|(key, value)| (key.as_slice(), value.as_deref()))
            .collect();
        assert_eq!(
            keys,
            vec![
                (&b"e"[..], Some(&b"5"[..])),
                (b"d", Some(b"new")),
                (b"b", None),
                (b"a", Some(b"1"))
            ]
        );
    }
}
