//! Users' rows in the online store: what `/recommend` reads per request when a recommender
//! serves with `serving: {user_factors: online}` (the default).
//!
//! A served version's per-user state (the user's factors, the items they interacted with in
//! training and those interactions' weights) is written to the online store as one row per
//! user of a view private to the version, `recs.{recommender}.v{version}` (a name no feature
//! view can have: view names hold no dot), keyed by the user id as a string. The row's event
//! time is when it was written; a reader treats a row older than `serving.ttl` as absent (the
//! user is then served as one the model does not know), and Redis expires the key after the
//! TTL plus the store's grace. Rows are per version, so a rollback serves the older version's
//! rows, written again when the server loads it.
//!
//! The same [`UserRow`] serves both paths: [`crate::serve::Serving::recommend_for`] takes it
//! from the loaded version ([`crate::serve::Serving::user_in_memory`]) or from here ([`read`]),
//! so the two cannot answer differently.

use quiver_online::{EntityKey, KeyValue, OnlineRow, OnlineStore, Value, ViewRead, ViewWrite};

use crate::model::RecModel;
use crate::{Error, Result};

/// The features of a user's row, in value order.
pub const FEATURES: [&str; 3] = ["factors", "items", "weights"];

/// Rows per write.
const BATCH: usize = 2_000;

/// The online-store view holding version `version` of `recommender`'s users.
pub fn view_name(recommender: &str, version: i64) -> String {
    format!("recs.{recommender}.v{version}")
}

/// One user's state: their factors and the items of their training row (sorted item indices
/// of the version) with the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    /// The user's factors (the version's `factors` long).
    pub factors: Vec<f32>,
    /// Sorted item indices the user interacted with.
    pub items: Vec<u32>,
    /// Each item's training weight.
    pub weights: Vec<f32>,
}

impl UserRow {
    /// The row as [`crate::serve::Serving::recommend_for`] takes it.
    pub fn as_user(&self) -> crate::serve::UserRef<'_> {
        crate::serve::UserRef {
            factors: &self.factors,
            items: &self.items,
            weights: &self.weights,
        }
    }
}

fn key(user: &str) -> EntityKey {
    EntityKey::new(&[KeyValue::Str(user.to_string())])
}

fn features() -> Vec<String> {
    FEATURES.map(String::from).to_vec()
}

/// The online-store row of `model`'s user `u` (factors, training items, weights), keyed as
/// user `user_id` (the user's own id when publishing), written at `event_ts`; [`read`] decodes
/// it.
pub fn online_row(model: &RecModel, u: usize, user_id: &str, event_ts: i64) -> OnlineRow {
    let (items, weights) = model.seen.row(u);
    OnlineRow {
        key: key(user_id),
        event_ts,
        values: vec![
            Value::Float32List(model.user_factors.row(u).to_vec()),
            Value::Int64List(items.iter().map(|&i| i64::from(i)).collect()),
            Value::Float32List(weights.to_vec()),
        ],
    }
}

/// Writes every user of `model` (version `version`) to `store` with event time `now_us`, in
/// batches, then makes them durable; `progress(done, total)` after each batch. Returns the rows
/// written.
pub async fn publish(
    store: &dyn OnlineStore,
    model: &RecModel,
    version: i64,
    ttl_us: i64,
    now_us: i64,
    mut progress: impl FnMut(usize, usize),
) -> Result<u64> {
    let view = view_name(&model.info.recommender, version);
    let features = features();
    let write = ViewWrite {
        view: &view,
        features: &features,
        ttl_us: Some(ttl_us),
    };
    let users = model.users.len();
    let mut written = 0;
    let mut rows = Vec::with_capacity(BATCH.min(users));
    for start in (0..users).step_by(BATCH) {
        rows.clear();
        for u in start..(start + BATCH).min(users) {
            rows.push(online_row(model, u, model.users.id(u as u32), now_us));
        }
        written += store.write_batch_deferred(&write, &rows).await?.written;
        progress(start + rows.len(), users);
    }
    store.sync().await?;
    Ok(written)
}

/// Reads users' rows of version `version` of `model`'s recommender, in order: `None` for a user
/// with no row, or one written more than `ttl_us` before `now_us`. A row that does not fit the
/// version (factor count, item indices) is an error.
pub async fn read(
    store: &dyn OnlineStore,
    model: &RecModel,
    version: i64,
    users: &[&str],
    ttl_us: i64,
    now_us: i64,
) -> Result<Vec<Option<UserRow>>> {
    let view = view_name(&model.info.recommender, version);
    let keys: Vec<EntityKey> = users.iter().map(|u| key(u)).collect();
    let features = features();
    let mut found = store
        .read_views(&[ViewRead {
            view: &view,
            keys: &keys,
            features: &features,
        }])
        .await?;
    let rows = found.pop().unwrap_or_default();
    rows.into_iter()
        .zip(users)
        .map(|(row, user)| match row {
            Some(r) if now_us.saturating_sub(r.event_ts) <= ttl_us => {
                decode(model, user, r.values).map(Some).map_err(|message| {
                    Error::Online(quiver_online::OnlineError::Corrupt {
                        store: store.describe(),
                        view: view.clone(),
                        message,
                    })
                })
            }
            _ => Ok(None),
        })
        .collect()
}

fn decode(model: &RecModel, user: &str, values: Vec<Value>) -> Result<UserRow, String> {
    let bad = |m: String| format!("user '{user}': {m}");
    let mut v = values.into_iter();
    let (Some(Value::Float32List(factors)), Some(Value::Int64List(items)), Some(weights)) =
        (v.next(), v.next(), v.next())
    else {
        return Err(bad(
            "not a user row (factors, items, weights): written by something else".into(),
        ));
    };
    let weights = match weights {
        Value::Float32List(w) => w,
        _ => return Err(bad("weights: not a list<float32>".into())),
    };
    if factors.len() != model.item_factors.dim {
        return Err(bad(format!(
            "{} factors where the version has {}",
            factors.len(),
            model.item_factors.dim
        )));
    }
    if items.len() != weights.len() {
        return Err(bad(format!(
            "{} items but {} weights",
            items.len(),
            weights.len()
        )));
    }
    let n = model.items.len() as i64;
    let mut out = Vec::with_capacity(items.len());
    for (j, &i) in items.iter().enumerate() {
        if !(0..n).contains(&i) || (j > 0 && i <= items[j - 1]) {
            return Err(bad(format!(
                "items[{j}] = {i}: not a sorted index of the version's {n} items"
            )));
        }
        out.push(i as u32);
    }
    Ok(UserRow {
        factors,
        items: out,
        weights,
    })
}
