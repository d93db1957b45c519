//! A compressed sparse row matrix of `f32` values: users × items confidences, and its
//! transpose. Rows hold their column indices sorted and without duplicates.

/// A sparse matrix in CSR form.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Csr {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row `r`'s entries are `indptr[r]..indptr[r + 1]`.
    pub indptr: Vec<usize>,
    /// Column of each entry.
    pub indices: Vec<u32>,
    /// Value of each entry.
    pub data: Vec<f32>,
}

impl Csr {
    /// Builds from `(row, col, value)` triplets; duplicates are summed.
    pub fn from_triplets(rows: usize, cols: usize, triplets: &[(u32, u32, f32)]) -> Csr {
        // Counting sort by row, then sort each row by column and merge duplicates.
        let mut counts = vec![0usize; rows + 1];
        for &(r, _, _) in triplets {
            counts[r as usize + 1] += 1;
        }
        for r in 0..rows {
            counts[r + 1] += counts[r];
        }
        let mut next = counts.clone();
        let mut entries = vec![(0u32, 0f32); triplets.len()];
        for &(r, c, v) in triplets {
            let at = &mut next[r as usize];
            entries[*at] = (c, v);
            *at += 1;
        }
        let mut indptr = Vec::with_capacity(rows + 1);
        let mut indices = Vec::with_capacity(triplets.len());
        let mut data = Vec::with_capacity(triplets.len());
        indptr.push(0);
        for r in 0..rows {
            let row = &mut entries[counts[r]..counts[r + 1]];
            row.sort_unstable_by_key(|e| e.0);
            for &(c, v) in row.iter() {
                if indices.len() > indptr[r] && *indices.last().expect("non-empty") == c {
                    *data.last_mut().expect("non-empty") += v;
                } else {
                    indices.push(c);
                    data.push(v);
                }
            }
            indptr.push(indices.len());
        }
        Csr {
            rows,
            cols,
            indptr,
            indices,
            data,
        }
    }

    /// Stored entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Row `r`: its columns and values.
    #[inline]
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[r], self.indptr[r + 1]);
        (&self.indices[a..b], &self.data[a..b])
    }

    /// Entries of row `r`.
    #[inline]
    pub fn row_len(&self, r: usize) -> usize {
        self.indptr[r + 1] - self.indptr[r]
    }

    /// The transpose (columns become rows), with sorted rows.
    pub fn transpose(&self) -> Csr {
        let mut counts = vec![0usize; self.cols + 1];
        for &c in &self.indices {
            counts[c as usize + 1] += 1;
        }
        for c in 0..self.cols {
            counts[c + 1] += counts[c];
        }
        let mut next = counts.clone();
        let mut indices = vec![0u32; self.nnz()];
        let mut data = vec![0f32; self.nnz()];
        for r in 0..self.rows {
            let (cols, vals) = self.row(r);
            for (&c, &v) in cols.iter().zip(vals) {
                let at = &mut next[c as usize];
                indices[*at] = r as u32;
                data[*at] = v;
                *at += 1;
            }
        }
        Csr {
            rows: self.cols,
            cols: self.rows,
            indptr: counts,
            indices,
            data,
        }
    }

    /// Every value multiplied by `k`.
    pub fn scaled(&self, k: f32) -> Csr {
        Csr {
            data: self.data.iter().map(|v| v * k).collect(),
            ..self.clone()
        }
    }

    /// True when row `r` holds column `c` (binary search).
    pub fn contains(&self, r: usize, c: u32) -> bool {
        self.row(r).0.binary_search(&c).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::Csr;

    #[test]
    fn triplets_are_summed_sorted_and_transposed() {
        let m = Csr::from_triplets(
            3,
            4,
            &[
                (2, 3, 1.0),
                (0, 1, 2.0),
                (2, 0, 1.5),
                (0, 1, 0.5),
                (0, 0, 1.0),
            ],
        );
        assert_eq!(m.indptr, vec![0, 2, 2, 4]);
        assert_eq!(m.indices, vec![0, 1, 0, 3]);
        assert_eq!(m.data, vec![1.0, 2.5, 1.5, 1.0]);
        let t = m.transpose();
        assert_eq!((t.rows, t.cols), (4, 3));
        assert_eq!(t.indptr, vec![0, 2, 3, 3, 4]);
        assert_eq!(t.indices, vec![0, 2, 0, 2]);
        assert_eq!(t.data, vec![1.0, 1.5, 2.5, 1.0]);
        assert_eq!(t.transpose(), m);
        assert!(m.contains(2, 3) && !m.contains(1, 3));
    }
}
