//! Interactions, from rows to the confidence matrix.
//!
//! Each row is a (user, item, weight, time): `weight` is the event type's weight times the
//! row's `weight` column (see [`crate::source`]). [`aggregate`] applies the time rules and sums
//! per (user, item):
//!
//! * rows after `as_of` are left out (training as of a past time sees only its past), and so
//!   are rows at or before `as_of − window`;
//! * each weight is multiplied by `0.5^(age / half_life)`, age = `as_of − time`;
//! * users with fewer than `min_user_interactions` distinct items are left out, then items no
//!   remaining user touched; ids are numbered in order of first appearance.

use std::collections::HashMap;

use crate::csr::Csr;
use crate::{Error, Result};

/// Ids numbered in order of first appearance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdMap {
    ids: Vec<String>,
    index: HashMap<String, u32>,
}

impl IdMap {
    /// From ids in index order (no duplicates).
    pub fn from_ids(ids: Vec<String>) -> Result<IdMap> {
        let mut index = HashMap::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            if index.insert(id.clone(), i as u32).is_some() {
                return Err(Error::Invalid(format!("id '{id}' is listed twice")));
            }
        }
        Ok(IdMap { ids, index })
    }

    /// The index of `id`, adding it if new.
    pub fn intern(&mut self, id: &str) -> u32 {
        if let Some(i) = self.index.get(id) {
            return *i;
        }
        let i = self.ids.len() as u32;
        self.ids.push(id.to_string());
        self.index.insert(id.to_string(), i);
        i
    }

    /// The index of `id`.
    pub fn get(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The id at `index`.
    pub fn id(&self, index: u32) -> &str {
        &self.ids[index as usize]
    }

    /// Every id, in index order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// One interaction row, ids interned in an [`InteractionLog`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interaction {
    /// User index.
    pub user: u32,
    /// Item index.
    pub item: u32,
    /// Weight (event type's times the row's).
    pub weight: f32,
    /// Microseconds since the epoch (none: timeless, never decayed or windowed out).
    pub time_us: Option<i64>,
}

/// Interaction rows with their id maps, as read.
#[derive(Debug, Clone, Default)]
pub struct InteractionLog {
    /// User ids.
    pub users: IdMap,
    /// Item ids.
    pub items: IdMap,
    /// Rows.
    pub rows: Vec<Interaction>,
}

impl InteractionLog {
    /// Adds a row.
    pub fn push(&mut self, user: &str, item: &str, weight: f32, time_us: Option<i64>) {
        let user = self.users.intern(user);
        let item = self.items.intern(item);
        self.rows.push(Interaction {
            user,
            item,
            weight,
            time_us,
        });
    }

    /// The latest time of any row.
    pub fn latest_time(&self) -> Option<i64> {
        self.rows.iter().filter_map(|r| r.time_us).max()
    }
}

/// The time rules of [`aggregate`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WeightRule {
    /// The training time (none: the latest row's time).
    pub as_of_us: Option<i64>,
    /// Half-life of a weight (none: no decay).
    pub half_life_us: Option<i64>,
    /// Only rows younger than this (none: all).
    pub window_us: Option<i64>,
    /// Fewest distinct items per user.
    pub min_user_interactions: u32,
}

impl WeightRule {
    /// The multiplier of a row at `time_us` as of `as_of` (0 when the row is outside).
    #[inline]
    pub fn factor(&self, as_of: Option<i64>, time_us: Option<i64>) -> f64 {
        let (Some(now), Some(t)) = (as_of, time_us) else {
            return 1.0;
        };
        if t > now {
            return 0.0;
        }
        if let Some(w) = self.window_us
            && t <= now - w
        {
            return 0.0;
        }
        match self.half_life_us {
            Some(h) => 0.5f64.powf((now - t) as f64 / h as f64),
            None => 1.0,
        }
    }
}

/// The aggregated users × items matrix and its ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Interactions {
    /// Users (rows).
    pub users: IdMap,
    /// Items (columns).
    pub items: IdMap,
    /// Summed, decayed weights.
    pub matrix: Csr,
    /// The time the rules were applied as of.
    pub as_of_us: Option<i64>,
    /// Rows read.
    pub rows_read: usize,
    /// Rows that counted (inside the window, positive weight, kept users).
    pub rows_used: usize,
}

/// Applies `rule` to the rows and sums them per (user, item); see the module docs. Errors when
/// nothing or too little is left (fewer than 2 users or 2 items).
pub fn aggregate(log: &InteractionLog, rule: &WeightRule) -> Result<Interactions> {
    if log.rows.is_empty() {
        return Err(Error::Invalid(
            "no interactions: the source or file has no rows (with a known event type)".into(),
        ));
    }
    let as_of = rule.as_of_us.or_else(|| log.latest_time());
    let mut triplets = Vec::with_capacity(log.rows.len());
    for r in &log.rows {
        let w = f64::from(r.weight) * rule.factor(as_of, r.time_us);
        if w > 0.0 {
            triplets.push((r.user, r.item, w as f32));
        }
    }
    if triplets.is_empty() {
        return Err(Error::Invalid(format!(
            "no interactions left: all {} rows are outside the window, after the as-of time or weigh 0",
            log.rows.len()
        )));
    }
    let full = Csr::from_triplets(log.users.len(), log.items.len(), &triplets);
    // Keep users with enough distinct items, then the items they touched; renumber both.
    let min = rule.min_user_interactions.max(1) as usize;
    let mut user_map = vec![u32::MAX; full.rows];
    let mut users = Vec::new();
    let mut item_map = vec![u32::MAX; full.cols];
    let mut items = Vec::new();
    let mut kept = Vec::with_capacity(full.nnz());
    let mut rows_used = 0;
    #[allow(clippy::needless_range_loop)] // u indexes the matrix rows and user_map alike
    for u in 0..full.rows {
        if full.row_len(u) < min {
            continue;
        }
        let nu = users.len() as u32;
        user_map[u] = nu;
        users.push(log.users.id(u as u32).to_string());
        let (cols, vals) = full.row(u);
        for (&c, &v) in cols.iter().zip(vals) {
            if item_map[c as usize] == u32::MAX {
                item_map[c as usize] = items.len() as u32;
                items.push(log.items.id(c).to_string());
            }
            kept.push((nu, item_map[c as usize], v));
        }
    }
    for r in &log.rows {
        if user_map[r.user as usize] != u32::MAX
            && f64::from(r.weight) * rule.factor(as_of, r.time_us) > 0.0
        {
            rows_used += 1;
        }
    }
    if users.len() < 2 || items.len() < 2 {
        return Err(Error::Invalid(format!(
            "too few interactions: {} user(s) and {} item(s) left after the window, the as-of time and min_user_interactions = {min} (of {} rows); a recommender needs at least 2 of each",
            users.len(),
            items.len(),
            log.rows.len()
        )));
    }
    let matrix = Csr::from_triplets(users.len(), items.len(), &kept);
    Ok(Interactions {
        users: IdMap::from_ids(users)?,
        items: IdMap::from_ids(items)?,
        matrix,
        as_of_us: as_of,
        rows_read: log.rows.len(),
        rows_used,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    #[test]
    fn weights_decay_sum_and_respect_the_window_and_as_of() {
        let mut log = InteractionLog::default();
        log.push("u1", "a", 3.0, Some(10 * DAY)); // purchase, now
        log.push("u1", "a", 1.0, Some(0)); // view 10 days ago: half
        log.push("u1", "b", 1.0, Some(-30 * DAY)); // outside the 30-day window
        log.push("u1", "c", 2.0, Some(11 * DAY)); // after as-of
        log.push("u2", "b", 1.0, Some(10 * DAY));
        log.push("u2", "a", 1.0, None);
        let rule = WeightRule {
            as_of_us: Some(10 * DAY),
            half_life_us: Some(10 * DAY),
            window_us: Some(30 * DAY),
            min_user_interactions: 1,
        };
        let m = aggregate(&log, &rule).unwrap();
        assert_eq!(m.users.ids(), ["u1", "u2"]);
        assert_eq!(m.items.ids(), ["a", "b"]);
        assert_eq!(m.matrix.row(0), (&[0u32][..], &[3.5f32][..]));
        assert_eq!(m.matrix.row(1), (&[0u32, 1][..], &[1.0f32, 1.0][..]));
        assert_eq!((m.rows_read, m.rows_used), (6, 4));
        // min_user_interactions drops u1 (one item) and then too little is left.
        let e = aggregate(
            &log,
            &WeightRule {
                min_user_interactions: 2,
                ..rule
            },
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("too few interactions: 1 user(s) and 2 item(s)"),
            "{e}"
        );
        let e = aggregate(&InteractionLog::default(), &rule).unwrap_err();
        assert!(e.to_string().contains("no interactions"), "{e}");
        // As of long ago only the timeless row counts.
        let e = aggregate(
            &log,
            &WeightRule {
                as_of_us: Some(-40 * DAY),
                ..rule
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("1 user(s) and 1 item(s)"), "{e}");
        let mut old = InteractionLog::default();
        old.push("u1", "a", 1.0, Some(0));
        let e = aggregate(
            &old,
            &WeightRule {
                as_of_us: Some(-DAY),
                ..rule
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("no interactions left"), "{e}");
    }
}
