//! The bytes of an operator's state at a checkpoint: a few `i64` header values (watermark
//! progress, counters) and at most one Arrow batch (keys and aggregate states, buffered rows)
//! in Arrow's IPC stream format.

use std::io::Cursor;

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

use crate::error::{ExecError, Result};

const OPERATOR: &str = "state snapshot";

/// Encodes `header` and `batch`.
pub(crate) fn encode(header: &[i64], batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(8 + header.len() * 8);
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    for value in header {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    bytes.extend(encode_batch(batch)?);
    Ok(bytes)
}

/// Encodes `header` and several batches (of possibly different schemas).
pub(crate) fn encode_all(header: &[i64], batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&(batches.len() as u64).to_le_bytes());
    for batch in batches {
        let part = encode(header, batch)?;
        bytes.extend_from_slice(&(part.len() as u64).to_le_bytes());
        bytes.extend(part);
    }
    Ok(bytes)
}

/// Decodes what [`encode_all`] wrote.
pub(crate) fn decode_all(bytes: &[u8]) -> Result<(Vec<i64>, Vec<RecordBatch>)> {
    let mut rest = bytes;
    let take_word = |rest: &mut &[u8]| -> Result<u64> {
        let (word, tail) = rest.split_first_chunk::<8>().ok_or_else(|| {
            ExecError::InvalidStream("operator state is damaged: cut short".to_string())
        })?;
        *rest = tail;
        Ok(u64::from_le_bytes(*word))
    };
    let count = take_word(&mut rest)?;
    let mut header = Vec::new();
    let mut batches = Vec::new();
    for _ in 0..count {
        let len = usize::try_from(take_word(&mut rest)?).unwrap_or(usize::MAX);
        if len > rest.len() {
            return Err(ExecError::InvalidStream(
                "operator state is damaged: a part is cut short".to_string(),
            ));
        }
        let (part, tail) = rest.split_at(len);
        rest = tail;
        let (part_header, batch) = decode(part)?;
        header = part_header;
        batches.push(batch);
    }
    if !rest.is_empty() {
        return Err(ExecError::InvalidStream(
            "operator state is damaged: bytes after its last part".to_string(),
        ));
    }
    Ok((header, batches))
}

fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut stream = Vec::new();
    let mut writer =
        StreamWriter::try_new(&mut stream, &batch.schema()).map_err(ExecError::arrow(OPERATOR))?;
    writer.write(batch).map_err(ExecError::arrow(OPERATOR))?;
    writer.finish().map_err(ExecError::arrow(OPERATOR))?;
    drop(writer);
    bytes.extend_from_slice(&(stream.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&stream);
    Ok(bytes)
}

/// Decodes what [`encode`] wrote; an error (never a panic) on damaged bytes.
pub(crate) fn decode(bytes: &[u8]) -> Result<(Vec<i64>, RecordBatch)> {
    let damaged =
        |what: &str| ExecError::InvalidStream(format!("operator state is damaged: {what}"));
    let count = bytes
        .get(..8)
        .map(|word| u64::from_le_bytes(word.try_into().unwrap_or_default()))
        .ok_or_else(|| damaged("no header"))?;
    let header_end = usize::try_from(count)
        .ok()
        .and_then(|count| count.checked_mul(8))
        .and_then(|len| len.checked_add(8))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| damaged("header longer than the state"))?;
    let header = bytes[8..header_end]
        .chunks_exact(8)
        .map(|word| i64::from_le_bytes(word.try_into().unwrap_or_default()))
        .collect();
    let stream_len = bytes
        .get(header_end..header_end + 8)
        .map(|word| u64::from_le_bytes(word.try_into().unwrap_or_default()))
        .ok_or_else(|| damaged("no batch length"))?;
    let stream = &bytes[header_end + 8..];
    if stream.len() as u64 != stream_len {
        return Err(damaged("the batch is cut short or followed by other bytes"));
    }
    let mut reader =
        StreamReader::try_new(Cursor::new(stream), None).map_err(ExecError::arrow(OPERATOR))?;
    let batch = reader
        .next()
        .ok_or_else(|| damaged("no batch"))?
        .map_err(ExecError::arrow(OPERATOR))?;
    Ok((header, batch))
}

/// The header value at `index`, or an error naming the operator whose state lacks it.
pub(crate) fn header_value(header: &[i64], index: usize, operator: &str) -> Result<i64> {
    header.get(index).copied().ok_or_else(|| {
        ExecError::InvalidStream(format!("{operator} state has no header value {index}"))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn state_round_trips_and_damage_is_an_error() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap();
        let bytes = encode(&[i64::MIN, 7], &batch).unwrap();
        let (header, decoded) = decode(&bytes).unwrap();
        assert_eq!(header, vec![i64::MIN, 7]);
        assert_eq!(decoded, batch);
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "a state cut to {len} bytes");
        }
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
        let both = encode_all(&[3], &[batch.clone(), batch.slice(1, 2)]).unwrap();
        let (header, batches) = decode_all(&both).unwrap();
        assert_eq!(header, vec![3]);
        assert_eq!(batches, vec![batch.clone(), batch.slice(1, 2)]);
        for len in 0..both.len() {
            assert!(
                decode_all(&both[..len]).is_err(),
                "states cut to {len} bytes"
            );
        }
    }
}
