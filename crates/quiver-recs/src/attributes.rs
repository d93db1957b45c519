//! Item attributes for `/recommend` filters (`"filter": {"category": "shoes"}`).
//!
//! A recommender that declares `item_attributes: VIEW` (a plain feature view keyed by the item
//! id) gets, at training, each trained item's latest values of that view's text, number and
//! boolean features as of the training time ([`read`]). They are stored with the version
//! (`item_attributes.json`, one column per feature in item-index order), so a version filters on
//! the attributes it was trained with, promotion and rollback move them together, and serving
//! reads nothing but the version's files. Attributes that change between trainings apply from
//! the next version.
//!
//! A filter maps fields to a value or a list of values (any of them); every field must match
//! (AND). It becomes a mask over the items ([`ItemAttributes::mask`]) that serving applies
//! before the top-k cut, together with the seen-item exclusions, so a filtered answer still has
//! `k` items when the catalogue has `k` matching ones. An item without a value never matches.

use std::path::Path;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use quiver_core::Registry;
use quiver_core::recommender::Recommender;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::interactions::IdMap;
use crate::source::{id_strings, offline};
use crate::{Error, Result};

/// The file of a version's attributes.
pub const FILE: &str = "item_attributes.json";

/// One attribute's values, by item index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "values", rename_all = "snake_case")]
pub enum Values {
    /// Strings.
    Text(Vec<Option<String>>),
    /// Numbers (integers and floats).
    Number(Vec<Option<f64>>),
    /// Booleans.
    Bool(Vec<Option<bool>>),
}

impl Values {
    fn type_name(&self) -> &'static str {
        match self {
            Values::Text(_) => "text",
            Values::Number(_) => "a number",
            Values::Bool(_) => "a boolean",
        }
    }
}

/// One attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// The feature's name.
    pub name: String,
    /// Its values by item index.
    #[serde(flatten)]
    pub values: Values,
}

/// The attributes of a version's items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemAttributes {
    /// The view they were read from.
    pub view: String,
    /// Items (the model's item count).
    pub items: usize,
    /// Trained items the view has a row for.
    pub items_with_values: usize,
    /// Filterable features, in the view's order.
    pub columns: Vec<Column>,
    /// The view's features that cannot be filtered on (lists, embeddings), for messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// One accepted filter value.
enum Wanted {
    Text(String),
    Number(f64),
    Bool(bool),
}

impl ItemAttributes {
    /// Writes `item_attributes.json` into a version's directory.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(FILE);
        std::fs::write(
            &path,
            serde_json::to_vec(self).expect("attributes serialize"),
        )
        .map_err(|e| Error::io("cannot write", &path, e))
    }

    /// Reads a version's attributes (`None` when it has none).
    pub fn load(dir: &Path) -> Result<Option<ItemAttributes>> {
        let path = dir.join(FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::io("cannot read", &path, e))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                path,
                message: e.to_string(),
            })
    }

    /// The items `filter` keeps (`None` for an empty filter). An error names the field
    /// (`filter.colour: ...`): one the view does not have, or a value of the wrong type.
    pub fn mask(&self, filter: &serde_json::Map<String, Json>) -> Result<Option<Vec<bool>>> {
        if filter.is_empty() {
            return Ok(None);
        }
        let mut keep = vec![true; self.items];
        for (field, want) in filter {
            let Some(col) = self.columns.iter().find(|c| &c.name == field) else {
                let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
                let why = if self.skipped.contains(field) {
                    format!(
                        "feature '{field}' of view '{}' is not text, a number or a boolean; filterable: {}",
                        self.view,
                        names.join(", ")
                    )
                } else {
                    format!(
                        "view '{}' has no attribute '{field}'{}",
                        self.view,
                        quiver_core::registry::suggest(field, names.iter())
                    )
                };
                return Err(Error::Invalid(format!("filter.{field}: {why}")));
            };
            let wanted = wanted_values(field, want, &col.values)?;
            for (i, k) in keep.iter_mut().enumerate() {
                if *k {
                    *k = matches(&col.values, i, &wanted);
                }
            }
        }
        Ok(Some(keep))
    }
}

fn wanted_values(field: &str, want: &Json, values: &Values) -> Result<Vec<Wanted>> {
    let list: Vec<&Json> = match want {
        Json::Array(a) if a.is_empty() => {
            return Err(Error::Invalid(format!(
                "filter.{field}: an empty list matches nothing: give a value or a list of values"
            )));
        }
        Json::Array(a) => a.iter().collect(),
        one => vec![one],
    };
    list.into_iter()
        .map(|v| {
            let w = match (values, v) {
                (Values::Text(_), Json::String(s)) => Some(Wanted::Text(s.clone())),
                // An integer against text ids or codes: its decimal text.
                (Values::Text(_), Json::Number(n)) if n.is_i64() || n.is_u64() => {
                    Some(Wanted::Text(n.to_string()))
                }
                (Values::Number(_), Json::Number(n)) => n.as_f64().map(Wanted::Number),
                (Values::Bool(_), Json::Bool(b)) => Some(Wanted::Bool(*b)),
                _ => None,
            };
            w.ok_or_else(|| {
                Error::Invalid(format!(
                    "filter.{field}: {v} is not {} (the attribute's type); give a value or a list of values",
                    values.type_name()
                ))
            })
        })
        .collect()
}

fn matches(values: &Values, i: usize, wanted: &[Wanted]) -> bool {
    match values {
        Values::Text(v) => v[i].as_deref().is_some_and(|x| {
            wanted
                .iter()
                .any(|w| matches!(w, Wanted::Text(t) if t == x))
        }),
        Values::Number(v) => v[i].is_some_and(|x| {
            wanted
                .iter()
                .any(|w| matches!(w, Wanted::Number(t) if *t == x))
        }),
        Values::Bool(v) => v[i].is_some_and(|x| {
            wanted
                .iter()
                .any(|w| matches!(w, Wanted::Bool(t) if *t == x))
        }),
    }
}

/// The rows of `view_name`, a view keyed by the item id alone (`field` names the recommender's
/// field in messages), and each wanted id's latest row at or before `as_of_us` (all rows when
/// `None`): `slot_of(id)` gives the id's slot (`None`: not wanted), the answer holds
/// `(time, batch, row)` per slot (later rows win ties). Item attributes and content vectors
/// read their views so.
pub(crate) async fn item_rows(
    registry: &Registry,
    root: &Path,
    rec: &Recommender,
    view_name: &str,
    field: &str,
    as_of_us: Option<i64>,
    mut slot_of: impl FnMut(&str) -> Option<usize>,
) -> Result<(
    quiver_core::FeatureView,
    Vec<RecordBatch>,
    Vec<Option<(i64, usize, usize)>>,
)> {
    let view = registry.views.get(view_name).ok_or_else(|| {
        Error::Invalid(format!(
            "recommender '{}', field '{field}': no feature view '{view_name}'",
            rec.name
        ))
    })?;
    let keys = registry.view_join_keys(view);
    let [key] = keys.as_slice() else {
        return Err(Error::Invalid(format!(
            "recommender '{}', field '{field}': view '{view_name}' must be keyed by the item id alone",
            rec.name
        )));
    };
    let engine = quiver_offline::OfflineEngine::new(registry.clone(), root);
    let batches = engine
        .view_rows(view_name)
        .await
        .map_err(offline)?
        .collect()
        .await
        .map_err(offline)?;
    let what = format!("view '{view_name}'");
    let mut latest: Vec<Option<(i64, usize, usize)>> = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        let ids = id_strings(
            batch
                .column_by_name(&key.name)
                .expect("view_rows names keys"),
            &key.name,
            &what,
        )?;
        let times = quiver_offline::engine::micros(
            batch
                .column_by_name("event_timestamp")
                .expect("view_rows has event_timestamp"),
        )
        .map_err(offline)?;
        for (r, id) in ids.iter().enumerate() {
            let (Some(id), Some(t)) = (id, times[r]) else {
                continue;
            };
            if as_of_us.is_some_and(|a| t > a) {
                continue;
            }
            if let Some(i) = slot_of(id) {
                if latest.len() <= i {
                    latest.resize(i + 1, None);
                }
                let slot = &mut latest[i];
                if slot.is_none_or(|(t0, ..)| t >= t0) {
                    *slot = Some((t, b, r));
                }
            }
        }
    }
    Ok((view.clone(), batches, latest))
}

/// Reads the attributes `rec` declares (`item_attributes:`) for the items of `items`: each
/// item's latest row of the view at or before `as_of_us` (all rows when `None`). `None` when
/// the recommender declares none.
pub async fn read(
    registry: &Registry,
    root: &Path,
    rec: &Recommender,
    items: &IdMap,
    as_of_us: Option<i64>,
) -> Result<Option<ItemAttributes>> {
    let Some(view_name) = &rec.item_attributes else {
        return Ok(None);
    };
    let (view, batches, latest) = item_rows(
        registry,
        root,
        rec,
        view_name,
        "item_attributes",
        as_of_us,
        |id| items.get(id).map(|i| i as usize),
    )
    .await?;
    let n = items.len();
    let mut latest = latest;
    latest.resize(n, None);
    let mut columns = Vec::new();
    let mut skipped = Vec::new();
    for f in &view.features {
        let kind = batches
            .first()
            .and_then(|b| b.column_by_name(&f.name))
            .map(|c| c.data_type().clone());
        let numeric = |t: &DataType| t.is_integer() || t.is_floating() || t.is_null();
        let target = match &kind {
            Some(
                DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Dictionary(..),
            ) => DataType::Utf8,
            Some(DataType::Boolean) => DataType::Boolean,
            Some(t) if numeric(t) => DataType::Float64,
            None if batches.is_empty() => DataType::Utf8,
            _ => {
                skipped.push(f.name.clone());
                continue;
            }
        };
        // Each batch's column, cast once.
        let cast_cols = batches
            .iter()
            .map(|b| {
                let c = b.column_by_name(&f.name).expect("a feature column");
                cast(c, &target).map_err(offline)
            })
            .collect::<Result<Vec<_>>>()?;
        let at = |i: usize| latest[i].map(|(_, b, r)| (&cast_cols[b], r));
        let values = match target {
            DataType::Utf8 => Values::Text(
                (0..n)
                    .map(|i| {
                        at(i).and_then(|(c, r)| {
                            let a = c.as_string::<i32>();
                            a.is_valid(r).then(|| a.value(r).to_string())
                        })
                    })
                    .collect(),
            ),
            DataType::Boolean => Values::Bool(
                (0..n)
                    .map(|i| {
                        at(i).and_then(|(c, r)| {
                            let a = c.as_boolean();
                            a.is_valid(r).then(|| a.value(r))
                        })
                    })
                    .collect(),
            ),
            _ => Values::Number(
                (0..n)
                    .map(|i| {
                        at(i).and_then(|(c, r)| {
                            let a = c.as_primitive::<Float64Type>();
                            a.is_valid(r).then(|| a.value(r))
                        })
                    })
                    .collect(),
            ),
        };
        columns.push(Column {
            name: f.name.clone(),
            values,
        });
    }
    Ok(Some(ItemAttributes {
        view: view_name.clone(),
        items: n,
        items_with_values: latest.iter().filter(|l| l.is_some()).count(),
        columns,
        skipped,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> ItemAttributes {
        ItemAttributes {
            view: "products".into(),
            items: 4,
            items_with_values: 3,
            columns: vec![
                Column {
                    name: "category".into(),
                    values: Values::Text(vec![
                        Some("shoes".into()),
                        Some("books".into()),
                        Some("shoes".into()),
                        None,
                    ]),
                },
                Column {
                    name: "price".into(),
                    values: Values::Number(vec![Some(10.0), Some(5.0), Some(20.0), None]),
                },
                Column {
                    name: "in_stock".into(),
                    values: Values::Bool(vec![Some(true), Some(true), Some(false), None]),
                },
            ],
            skipped: vec!["embedding".into()],
        }
    }

    fn filter(v: Json) -> serde_json::Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn filters_are_masks_and_bad_fields_are_named() {
        let a = attrs();
        assert_eq!(a.mask(&filter(serde_json::json!({}))).unwrap(), None);
        let m = |v| a.mask(&filter(v)).unwrap().unwrap();
        assert_eq!(
            m(serde_json::json!({"category": "shoes"})),
            [true, false, true, false]
        );
        assert_eq!(
            m(serde_json::json!({"category": ["shoes", "books"], "in_stock": true})),
            [true, true, false, false]
        );
        assert_eq!(
            m(serde_json::json!({"price": 5})),
            [false, true, false, false]
        );
        let e = |v| a.mask(&filter(v)).unwrap_err().to_string();
        let msg = e(serde_json::json!({"colour": "red"}));
        assert_eq!(
            msg,
            "filter.colour: view 'products' has no attribute 'colour'; known: category, price, in_stock"
        );
        assert!(e(serde_json::json!({"categry": "x"})).contains("did you mean 'category'?"));
        assert!(e(serde_json::json!({"embedding": 1})).contains("is not text, a number"));
        assert!(
            e(serde_json::json!({"price": "cheap"}))
                .starts_with("filter.price: \"cheap\" is not a number")
        );
        assert!(e(serde_json::json!({"category": []})).contains("empty list"));
        let dir = tempfile::tempdir().unwrap();
        a.save(dir.path()).unwrap();
        assert_eq!(ItemAttributes::load(dir.path()).unwrap(), Some(a));
        assert_eq!(
            ItemAttributes::load(&dir.path().join("none")).unwrap(),
            None
        );
    }
}
