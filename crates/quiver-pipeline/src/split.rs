//! Train / validation / test rows: by time (oldest 70% train, next 15% validation, newest 15%
//! test) or stratified at random (70/15/15, seeded).

use std::collections::BTreeMap;

use quiver_ml::Objective;

/// How rows are split into train / validation / test.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Split {
    /// Oldest 70% train, next 15% validation, newest 15% test (by label time).
    Time,
    /// Stratified random 70/15/15 (seeded).
    Random,
}

impl Split {
    /// The split's name in a version's lineage (`time`, `random`).
    pub fn name(self) -> &'static str {
        match self {
            Split::Time => "time",
            Split::Random => "random",
        }
    }
}

/// Train / validation / test row indices (each sorted), from the rows' label times `ts`, labels
/// `y` (random splits are stratified by class) and a seed.
pub fn split_rows(
    kind: Split,
    ts: &[i64],
    y: &[f64],
    objective: Objective,
    seed: u64,
) -> [Vec<usize>; 3] {
    let n = ts.len();
    match kind {
        Split::Time => {
            let mut idx: Vec<usize> = (0..n).collect();
            idx.sort_by_key(|&i| (ts[i], i));
            let a = n * 70 / 100;
            let b = n * 85 / 100;
            [idx[..a].to_vec(), idx[a..b].to_vec(), idx[b..].to_vec()]
        }
        Split::Random => {
            // Stratified by class (one group for regression), shuffled with a seeded SplitMix64.
            let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
            let mut next = move || {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^ (z >> 31)
            };
            let mut groups: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
            for (i, label) in y.iter().enumerate() {
                let g = if matches!(objective, Objective::Regression) {
                    0
                } else {
                    *label as i64
                };
                groups.entry(g).or_default().push(i);
            }
            let mut out = [Vec::new(), Vec::new(), Vec::new()];
            for (_, mut g) in groups {
                for i in (1..g.len()).rev() {
                    let j = (next() % (i as u64 + 1)) as usize;
                    g.swap(i, j);
                }
                let a = g.len() * 70 / 100;
                let b = g.len() * 85 / 100;
                out[0].extend_from_slice(&g[..a]);
                out[1].extend_from_slice(&g[a..b]);
                out[2].extend_from_slice(&g[b..]);
            }
            for part in &mut out {
                part.sort_unstable();
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_split_takes_the_newest_rows_for_test() {
        let ts: Vec<i64> = (0..20).rev().collect();
        let [train, valid, test] =
            split_rows(Split::Time, &ts, &[0.0; 20], Objective::Regression, 7);
        assert_eq!((train.len(), valid.len(), test.len()), (14, 3, 3));
        assert!(test.iter().all(|&i| ts[i] >= 17));
    }
}
