//! The binary files of a recommender version, little-endian, laid out so that a server can
//! memory-map them and read rows in place (no parsing, no copy):
//!
//! ```text
//! factors (*.qvf)   0  magic "QVRSFAC1"        csr (*.qvc)   0  magic "QVRSCSR1"
//!                   8  rows: u64                              8  rows: u64
//!                  16  dim: u64                              16  cols: u64
//!                  24  dtype: u32 = 1 (f32)                  24  nnz: u64
//!                  28  zero padding to 64                    32  zero padding to 64
//!                  64  rows × dim f32, row-major             64  indptr: (rows + 1) × u64
//!                                                                indices: nnz × u32
//!                                                                data: nnz × f32
//! ```
//!
//! The data starts at byte 64, so a page-aligned mapping keeps every `f32` row 64-byte aligned
//! (one cache line, one AVX-512 load). Files are written to a temporary name and renamed.

use std::io::Write;
use std::path::Path;

use crate::als::Factors;
use crate::csr::Csr;
use crate::{Error, Result};

const FACTORS_MAGIC: &[u8; 8] = b"QVRSFAC1";
const CSR_MAGIC: &[u8; 8] = b"QVRSCSR1";
/// Header size of both files.
pub const HEADER: usize = 64;

fn write_atomic(path: &Path, fill: impl FnOnce(&mut Vec<u8>)) -> Result<()> {
    let mut buf = Vec::new();
    fill(&mut buf);
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
    f.write_all(&buf)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("cannot write", path, e))
}

fn header(magic: &[u8; 8], words: &[u64], tail_u32: Option<u32>) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER);
    h.extend_from_slice(magic);
    for w in words {
        h.extend_from_slice(&w.to_le_bytes());
    }
    if let Some(t) = tail_u32 {
        h.extend_from_slice(&t.to_le_bytes());
    }
    h.resize(HEADER, 0);
    h
}

/// Writes factors (see the module docs).
pub fn write_factors(path: &Path, f: &Factors) -> Result<()> {
    write_atomic(path, |buf| {
        buf.extend(header(
            FACTORS_MAGIC,
            &[f.rows as u64, f.dim as u64],
            Some(1),
        ));
        buf.reserve(f.data.len() * 4);
        for v in &f.data {
            buf.extend_from_slice(&v.to_le_bytes());
        }
    })
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io("cannot read", path, e))
}

fn corrupt(path: &Path, message: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect()
}

/// Reads factors written by [`write_factors`].
pub fn read_factors(path: &Path) -> Result<Factors> {
    let b = read(path)?;
    if b.len() < HEADER || &b[..8] != FACTORS_MAGIC {
        return Err(corrupt(path, "not a Quiver factors file"));
    }
    let (rows, dim) = (u64_at(&b, 8) as usize, u64_at(&b, 16) as usize);
    let dtype = u32::from_le_bytes(b[24..28].try_into().expect("4 bytes"));
    if dtype != 1 || b.len() != HEADER + rows * dim * 4 {
        return Err(corrupt(
            path,
            format!(
                "{rows} × {dim} f32 factors do not fit the file's {} bytes",
                b.len()
            ),
        ));
    }
    Ok(Factors {
        rows,
        dim,
        data: f32s(&b[HEADER..]),
    })
}

/// Writes a sparse matrix (see the module docs).
pub fn write_csr(path: &Path, m: &Csr) -> Result<()> {
    write_atomic(path, |buf| {
        buf.extend(header(
            CSR_MAGIC,
            &[m.rows as u64, m.cols as u64, m.nnz() as u64],
            None,
        ));
        for p in &m.indptr {
            buf.extend_from_slice(&(*p as u64).to_le_bytes());
        }
        for i in &m.indices {
            buf.extend_from_slice(&i.to_le_bytes());
        }
        for v in &m.data {
            buf.extend_from_slice(&v.to_le_bytes());
        }
    })
}

/// Reads a matrix written by [`write_csr`].
pub fn read_csr(path: &Path) -> Result<Csr> {
    let b = read(path)?;
    if b.len() < HEADER || &b[..8] != CSR_MAGIC {
        return Err(corrupt(path, "not a Quiver sparse matrix file"));
    }
    let (rows, cols, nnz) = (
        u64_at(&b, 8) as usize,
        u64_at(&b, 16) as usize,
        u64_at(&b, 24) as usize,
    );
    if b.len() != HEADER + (rows + 1) * 8 + nnz * 8 {
        return Err(corrupt(path, "the sizes in the header do not fit the file"));
    }
    let mut at = HEADER;
    let indptr: Vec<usize> = (0..=rows)
        .map(|r| u64_at(&b, at + r * 8) as usize)
        .collect();
    at += (rows + 1) * 8;
    let indices: Vec<u32> = b[at..at + nnz * 4]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    at += nnz * 4;
    let data = f32s(&b[at..]);
    if indptr.first() != Some(&0)
        || indptr.last() != Some(&nnz)
        || indptr.windows(2).any(|w| w[0] > w[1])
        || indices.iter().any(|i| *i as usize >= cols)
    {
        return Err(corrupt(path, "row pointers or column indices out of range"));
    }
    Ok(Csr {
        rows,
        cols,
        indptr,
        indices,
        data,
    })
}

/// Writes ids, one JSON array.
pub fn write_ids(path: &Path, ids: &[String]) -> Result<()> {
    write_atomic(path, |buf| {
        serde_json::to_writer(buf, ids).expect("strings serialize");
    })
}

/// Reads ids written by [`write_ids`].
pub fn read_ids(path: &Path) -> Result<Vec<String>> {
    serde_json::from_slice(&read(path)?).map_err(|e| corrupt(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_and_refuse_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let f = Factors {
            rows: 3,
            dim: 2,
            data: vec![1.0, -2.5, 0.0, 3.25, f32::MIN_POSITIVE, 7.0],
        };
        let p = dir.path().join("u.qvf");
        write_factors(&p, &f).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 64 + 24);
        assert_eq!(read_factors(&p).unwrap(), f);
        let m = Csr::from_triplets(3, 4, &[(0, 1, 2.0), (2, 3, 1.0), (2, 0, 0.5)]);
        let c = dir.path().join("seen.qvc");
        write_csr(&c, &m).unwrap();
        assert_eq!(read_csr(&c).unwrap(), m);
        let ids = vec!["a".to_string(), "b\"c".to_string()];
        write_ids(&dir.path().join("ids.json"), &ids).unwrap();
        assert_eq!(read_ids(&dir.path().join("ids.json")).unwrap(), ids);
        std::fs::write(&p, b"QVRSFAC1 short").unwrap();
        assert!(
            read_factors(&p)
                .unwrap_err()
                .to_string()
                .contains("not a Quiver")
        );
        assert!(
            read_factors(&c)
                .unwrap_err()
                .to_string()
                .contains("not a Quiver")
        );
    }
}
