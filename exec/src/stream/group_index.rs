//! Group keys of streaming operators: key columns encoded per batch (packed into a `u128` where
//! the types allow, else Arrow's row format), and per-window indexes giving each distinct key a
//! group id and turning the ids back into key columns.

use arrow::array::ArrayRef;
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, Rows, SortField};
use hashbrown::HashMap;
use sabot_kernels::{GroupMap, KeyPacking};

use crate::error::{ExecError, Result};

const OPERATOR: &str = "window keys";

/// How an operator encodes its key columns.
pub(crate) enum KeyEncoder {
    /// No key: every row is in one group.
    Global,
    Packed {
        columns: Vec<usize>,
        packing: KeyPacking,
    },
    Rows {
        columns: Vec<usize>,
        converter: RowConverter,
    },
}

/// The encoded keys of a batch's rows.
pub(crate) enum EncodedKeys {
    Global,
    Packed(Vec<u128>),
    Rows(Rows),
}

impl KeyEncoder {
    /// The encoder for key columns `columns` of `schema`.
    pub(crate) fn try_new(schema: &Schema, columns: &[usize]) -> Result<KeyEncoder> {
        if columns.is_empty() {
            return Ok(KeyEncoder::Global);
        }
        let fields: Vec<_> = columns
            .iter()
            .map(|&index| {
                let field = schema.field(index);
                (field.data_type().clone(), field.is_nullable())
            })
            .collect();
        if let Some(packing) = KeyPacking::for_group_keys(&fields, &[]) {
            return Ok(KeyEncoder::Packed {
                columns: columns.to_vec(),
                packing,
            });
        }
        let sort_fields = fields
            .into_iter()
            .map(|(data_type, _)| SortField::new(data_type))
            .collect();
        let converter = RowConverter::new(sort_fields).map_err(ExecError::arrow(OPERATOR))?;
        Ok(KeyEncoder::Rows {
            columns: columns.to_vec(),
            converter,
        })
    }

    /// The keys of `batch`'s rows.
    pub(crate) fn encode(&self, batch: &RecordBatch) -> Result<EncodedKeys> {
        let indices: &[usize] = match self {
            KeyEncoder::Global => &[],
            KeyEncoder::Packed { columns, .. } | KeyEncoder::Rows { columns, .. } => columns,
        };
        let columns: Vec<ArrayRef> = indices
            .iter()
            .map(|&index| batch.column(index).clone())
            .collect();
        self.encode_columns(&columns, batch.num_rows())
    }

    /// The keys of `rows` rows whose key columns are `columns`.
    pub(crate) fn encode_columns(&self, columns: &[ArrayRef], rows: usize) -> Result<EncodedKeys> {
        match self {
            KeyEncoder::Global => Ok(EncodedKeys::Global),
            KeyEncoder::Packed { packing, .. } => {
                let mut keys = Vec::with_capacity(rows);
                let mut usable = Vec::with_capacity(rows);
                packing
                    .pack(columns, &mut keys, &mut usable)
                    .map_err(ExecError::kernel(OPERATOR))?;
                Ok(EncodedKeys::Packed(keys))
            }
            KeyEncoder::Rows { converter, .. } => converter
                .convert_columns(columns)
                .map(EncodedKeys::Rows)
                .map_err(ExecError::arrow(OPERATOR)),
        }
    }

    /// An empty index for keys of this encoder.
    pub(crate) fn new_index(&self) -> GroupIndex {
        match self {
            KeyEncoder::Global => GroupIndex::Global { exists: false },
            KeyEncoder::Packed { .. } => GroupIndex::Packed(GroupMap::new()),
            KeyEncoder::Rows { .. } => GroupIndex::Rows {
                ids: HashMap::default(),
                keys: Vec::new(),
            },
        }
    }

    /// The key columns of `index`'s groups, in group-id order.
    pub(crate) fn key_columns(
        &self,
        index: &GroupIndex,
        groups: &[usize],
    ) -> Result<Vec<ArrayRef>> {
        match (self, index) {
            (KeyEncoder::Global, _) => Ok(Vec::new()),
            (KeyEncoder::Packed { packing, .. }, GroupIndex::Packed(map)) => {
                let all = map.keys();
                let keys: Vec<u128> = groups.iter().map(|&group| all[group]).collect();
                packing.unpack(&keys).map_err(ExecError::kernel(OPERATOR))
            }
            (KeyEncoder::Rows { converter, .. }, GroupIndex::Rows { keys, .. }) => {
                let parser = converter.parser();
                converter
                    .convert_rows(groups.iter().map(|&group| parser.parse(&keys[group])))
                    .map_err(ExecError::arrow(OPERATOR))
            }
            _ => Err(mismatch()),
        }
    }
}

/// The distinct keys of one window (or pane): each has a group id, numbered from 0 in order of
/// first appearance.
pub(crate) enum GroupIndex {
    Global {
        exists: bool,
    },
    Packed(GroupMap<u128>),
    Rows {
        ids: HashMap<Box<[u8]>, usize, ahash::RandomState>,
        keys: Vec<Box<[u8]>>,
    },
}

impl GroupIndex {
    /// How many groups there are.
    pub(crate) fn len(&self) -> usize {
        match self {
            GroupIndex::Global { exists } => usize::from(*exists),
            GroupIndex::Packed(map) => map.len(),
            GroupIndex::Rows { keys, .. } => keys.len(),
        }
    }

    /// Appends the group id of each row of `keys` (or of rows `rows` only) to `group_ids`.
    pub(crate) fn intern(
        &mut self,
        keys: &EncodedKeys,
        rows: &[usize],
        group_ids: &mut Vec<usize>,
    ) -> Result<()> {
        match (self, keys) {
            (GroupIndex::Global { exists }, EncodedKeys::Global) => {
                *exists |= !rows.is_empty();
                group_ids.extend(rows.iter().map(|_| 0));
            }
            (GroupIndex::Packed(map), EncodedKeys::Packed(packed)) => {
                let selected: Vec<u128> = rows.iter().map(|&row| packed[row]).collect();
                map.intern(&selected, group_ids);
            }
            (GroupIndex::Rows { ids, keys }, EncodedKeys::Rows(encoded)) => {
                for &row in rows {
                    group_ids.push(intern_row(ids, keys, encoded.row(row).as_ref()));
                }
            }
            _ => return Err(mismatch()),
        }
        Ok(())
    }

    /// Adds `other`'s keys (an index of the same encoder); returns each of `other`'s group ids'
    /// id here.
    pub(crate) fn absorb_keys(&mut self, other: &GroupIndex) -> Result<Vec<usize>> {
        let mut mapping = Vec::with_capacity(other.len());
        match (self, other) {
            (GroupIndex::Global { exists }, GroupIndex::Global { exists: theirs }) => {
                *exists |= *theirs;
                mapping.extend((0..usize::from(*theirs)).map(|_| 0));
            }
            (GroupIndex::Packed(map), GroupIndex::Packed(theirs)) => {
                map.intern(&theirs.keys(), &mut mapping);
            }
            (GroupIndex::Rows { ids, keys }, GroupIndex::Rows { keys: theirs, .. }) => {
                mapping.extend(theirs.iter().map(|key| intern_row(ids, keys, key)));
            }
            _ => return Err(mismatch()),
        }
        Ok(mapping)
    }
}

fn intern_row(
    ids: &mut HashMap<Box<[u8]>, usize, ahash::RandomState>,
    keys: &mut Vec<Box<[u8]>>,
    key: &[u8],
) -> usize {
    if let Some(&id) = ids.get(key) {
        return id;
    }
    let id = keys.len();
    ids.insert(key.into(), id);
    keys.push(key.into());
    id
}

fn mismatch() -> ExecError {
    ExecError::Internal {
        operator: OPERATOR,
        message: "keys of one window operator were encoded two ways".to_string(),
    }
}

/// One row's key, owned: what keyed state outside a window index is stored under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum OwnedKey {
    Global,
    Packed(u128),
    Row(Box<[u8]>),
}

impl KeyEncoder {
    /// Row `row`'s key among `keys`.
    pub(crate) fn owned_key(&self, keys: &EncodedKeys, row: usize) -> OwnedKey {
        match keys {
            EncodedKeys::Global => OwnedKey::Global,
            EncodedKeys::Packed(packed) => OwnedKey::Packed(packed[row]),
            EncodedKeys::Rows(rows) => OwnedKey::Row(rows.row(row).as_ref().into()),
        }
    }

    /// The key columns holding `keys`, in order.
    pub(crate) fn columns_of(&self, keys: &[OwnedKey]) -> Result<Vec<ArrayRef>> {
        match self {
            KeyEncoder::Global => Ok(Vec::new()),
            KeyEncoder::Packed { packing, .. } => {
                let packed = keys
                    .iter()
                    .map(|key| match key {
                        OwnedKey::Packed(value) => Ok(*value),
                        _ => Err(mismatch()),
                    })
                    .collect::<Result<Vec<u128>>>()?;
                packing.unpack(&packed).map_err(ExecError::kernel(OPERATOR))
            }
            KeyEncoder::Rows { converter, .. } => {
                let parser = converter.parser();
                let rows = keys
                    .iter()
                    .map(|key| match key {
                        OwnedKey::Row(bytes) => Ok(parser.parse(bytes)),
                        _ => Err(mismatch()),
                    })
                    .collect::<Result<Vec<_>>>()?;
                converter
                    .convert_rows(rows)
                    .map_err(ExecError::arrow(OPERATOR))
            }
        }
    }
}
