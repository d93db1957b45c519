//! The byte layout of one stored row, shared by the embedded and Redis stores: the event time
//! (i64, little-endian), the number of features, then each feature as its name (u32 length +
//! bytes) and its encoded value. Rows carry their feature names, so a view that gains or loses
//! features still reads its older rows (a feature the row lacks reads as null).

use crate::store::{OnlineRow, StoredRow};
use crate::value::Value;

/// Appends the row's bytes to `out`.
pub(crate) fn encode_row(features: &[String], row: &OnlineRow, out: &mut Vec<u8>) {
    out.reserve(16 + 16 * features.len());
    out.extend_from_slice(&row.event_ts.to_le_bytes());
    out.extend_from_slice(&(features.len() as u32).to_le_bytes());
    for (name, v) in features.iter().zip(&row.values) {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        v.encode(out);
    }
}

pub(crate) fn row_ts(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

pub(crate) fn decode_row(mut bytes: &[u8], features: &[String]) -> Result<StoredRow, String> {
    let take = |input: &mut &[u8], n: usize| -> Result<Vec<u8>, String> {
        if input.len() < n {
            return Err("truncated row".into());
        }
        let (h, r) = input.split_at(n);
        *input = r;
        Ok(h.to_vec())
    };
    let ts = i64::from_le_bytes(take(&mut bytes, 8)?.try_into().expect("8 bytes"));
    let n = u32::from_le_bytes(take(&mut bytes, 4)?.try_into().expect("4 bytes")) as usize;
    let mut values = vec![Value::Null; features.len()];
    for _ in 0..n {
        let len = u32::from_le_bytes(take(&mut bytes, 4)?.try_into().expect("4 bytes")) as usize;
        let name = take(&mut bytes, len)?;
        let v = Value::decode(&mut bytes).map_err(|e| e.to_string())?;
        if let Some(i) = features
            .iter()
            .position(|f| f.as_bytes() == name.as_slice())
        {
            values[i] = v;
        }
    }
    Ok(StoredRow {
        event_ts: ts,
        values,
    })
}
