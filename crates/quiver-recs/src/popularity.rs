//! Popularity: each item's time-decayed sum of interaction weights, the cold-start answer and
//! the baseline every model is evaluated against.

use crate::interactions::{IdMap, InteractionLog, WeightRule};

/// Each of `items`' popularity: the sum over the log's rows of weight × `rule`'s time factor
/// (window, half-life, as of). Items of the log absent from `items` are ignored.
pub fn popularity(log: &InteractionLog, items: &IdMap, rule: &WeightRule) -> Vec<f32> {
    let as_of = rule.as_of_us.or_else(|| log.latest_time());
    // Log item index -> model item index.
    let to_model: Vec<Option<u32>> = log.items.ids().iter().map(|id| items.get(id)).collect();
    let mut pop = vec![0f64; items.len()];
    for r in &log.rows {
        if let Some(i) = to_model[r.item as usize] {
            pop[i as usize] += f64::from(r.weight) * rule.factor(as_of, r.time_us);
        }
    }
    pop.into_iter().map(|p| p as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_interactions_count_more() {
        const DAY: i64 = 86_400_000_000;
        let mut log = InteractionLog::default();
        log.push("u1", "old", 1.0, Some(0));
        log.push("u2", "old", 1.0, Some(0));
        log.push("u1", "new", 1.0, Some(14 * DAY));
        log.push("u1", "gone", 1.0, Some(14 * DAY));
        let items = IdMap::from_ids(vec!["new".into(), "old".into()]).unwrap();
        let rule = WeightRule {
            half_life_us: Some(7 * DAY),
            ..WeightRule::default()
        };
        assert_eq!(popularity(&log, &items, &rule), vec![1.0, 0.5]);
        let windowed = WeightRule {
            window_us: Some(7 * DAY),
            ..rule
        };
        assert_eq!(popularity(&log, &items, &windowed), vec![1.0, 0.0]);
    }
}
