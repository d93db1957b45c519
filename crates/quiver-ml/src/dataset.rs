//! A feature matrix for training and batch scoring.

/// Column-major features: `columns[j][i]` is feature `j` of row `i`; NaN means missing.
/// Categorical features hold non-negative integer codes (as f64).
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub names: Vec<String>,
    pub categorical: Vec<bool>,
    pub columns: Vec<Vec<f64>>,
}

impl Dataset {
    pub fn new(names: Vec<String>, categorical: Vec<bool>, columns: Vec<Vec<f64>>) -> Self {
        assert_eq!(names.len(), columns.len());
        assert_eq!(names.len(), categorical.len());
        Dataset {
            names,
            categorical,
            columns,
        }
    }
    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, Vec::len)
    }
    pub fn n_features(&self) -> usize {
        self.columns.len()
    }
    /// Row `i` as a dense vector (for scoring).
    pub fn row(&self, i: usize, out: &mut Vec<f64>) {
        out.clear();
        out.extend(self.columns.iter().map(|c| c[i]));
    }
    /// The rows at `idx`, in that order.
    pub fn take(&self, idx: &[usize]) -> Dataset {
        Dataset {
            names: self.names.clone(),
            categorical: self.categorical.clone(),
            columns: self
                .columns
                .iter()
                .map(|c| idx.iter().map(|&i| c[i]).collect())
                .collect(),
        }
    }
}
