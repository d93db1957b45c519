//! Splitting interaction rows into training and validation: by time (the latest share of rows
//! is held out, as a model trained today is judged on tomorrow) or at random by (user, item)
//! pair (seeded; every row of a pair lands on the same side).

use crate::interactions::InteractionLog;
use crate::{Error, Result};

/// How rows are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitBy {
    /// The latest rows (by time; rows without a time stay in training).
    Time,
    /// (user, item) pairs at random, seeded.
    Random(u64),
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `(training, validation)` with about `share` of the rows in validation; both keep the
/// log's id maps.
pub fn split(
    log: &InteractionLog,
    by: SplitBy,
    share: f64,
) -> Result<(InteractionLog, InteractionLog)> {
    if !(share > 0.0 && share < 1.0) {
        return Err(Error::Invalid(format!(
            "validation share {share}: use a number between 0 and 1"
        )));
    }
    let held: Vec<bool> = match by {
        SplitBy::Time => {
            let mut times: Vec<i64> = log.rows.iter().filter_map(|r| r.time_us).collect();
            if times.is_empty() {
                return Err(Error::Invalid(
                    "a time split needs timestamps: the interactions have none (use a random split)"
                        .into(),
                ));
            }
            times.sort_unstable();
            let cut = times[((times.len() as f64) * (1.0 - share)).floor() as usize % times.len()];
            log.rows
                .iter()
                .map(|r| r.time_us.is_some_and(|t| t >= cut))
                .collect()
        }
        SplitBy::Random(seed) => log
            .rows
            .iter()
            .map(|r| {
                let h = mix(seed ^ mix((u64::from(r.user) << 32) | u64::from(r.item)));
                ((h >> 11) as f64 / (1u64 << 53) as f64) < share
            })
            .collect(),
    };
    let mut train = InteractionLog {
        users: log.users.clone(),
        items: log.items.clone(),
        rows: Vec::new(),
    };
    let mut valid = train.clone();
    for (r, h) in log.rows.iter().zip(held) {
        if h { &mut valid } else { &mut train }.rows.push(*r);
    }
    if train.rows.is_empty() || valid.rows.is_empty() {
        return Err(Error::Invalid(format!(
            "the split left {} training and {} validation rows: use more data or another share",
            train.rows.len(),
            valid.rows.len()
        )));
    }
    Ok((train, valid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_by_time_and_by_pair() {
        let mut log = InteractionLog::default();
        for t in 0..100i64 {
            log.push(
                &format!("u{}", t % 7),
                &format!("i{}", t % 13),
                1.0,
                Some(t),
            );
        }
        let (tr, va) = split(&log, SplitBy::Time, 0.2).unwrap();
        assert_eq!((tr.rows.len(), va.rows.len()), (80, 20));
        assert!(va.rows.iter().all(|r| r.time_us.unwrap() >= 80));
        let (tr, va) = split(&log, SplitBy::Random(7), 0.3).unwrap();
        assert_eq!(tr.rows.len() + va.rows.len(), 100);
        assert!((15..45).contains(&va.rows.len()), "{}", va.rows.len());
        let pair = |r: &crate::interactions::Interaction| (r.user, r.item);
        assert!(
            va.rows
                .iter()
                .all(|v| tr.rows.iter().all(|t| pair(t) != pair(v)))
        );
        assert!(split(&log, SplitBy::Time, 1.0).is_err());
    }
}
