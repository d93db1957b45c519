//! The statistics panel of a view and its features, from its offline data.
//!
//! A plain view's rows are read from its source as the offline engine computes them (the
//! features, typed as declared), up to [`MAX_ROWS`] rows; an aggregation view's values are its
//! latest per entity, computed as of now (the first [`MAX_ROWS`] entities). Per feature: rows,
//! null share, and for numbers min / max / mean and a histogram, for strings and booleans the
//! most frequent values, for vectors their length. Results are kept for ten minutes per view
//! content hash, so a page reloaded while exploring costs nothing.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use futures::StreamExt;
use quiver_core::FeatureView;
use quiver_core::registry::ObjectKind;
use quiver_offline::OfflineEngine;
use serde_json::{Value as Json, json};

/// Most rows read for one panel.
pub const MAX_ROWS: usize = 100_000;
/// Histogram bins.
const BINS: usize = 20;
/// Most frequent values shown.
const TOP: usize = 10;
/// How long a computed panel is kept.
const KEEP: Duration = Duration::from_secs(600);

/// One column's running statistics.
#[derive(Default)]
struct Column {
    name: String,
    data_type: String,
    rows: u64,
    nulls: u64,
    numbers: Vec<f64>,
    counts: HashMap<String, u64>,
    vector_len: Option<usize>,
    other: bool,
}

impl Column {
    fn push(&mut self, a: &dyn Array) {
        self.rows += a.len() as u64;
        self.nulls += a.null_count() as u64;
        let dt = a.data_type();
        if dt.is_numeric() {
            if let Ok(f) = cast(a, &DataType::Float64) {
                let f = f.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
                self.numbers
                    .extend(f.iter().flatten().filter(|v| v.is_finite()));
            }
        } else if matches!(
            dt,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean
        ) {
            if let Ok(s) = cast(a, &DataType::Utf8) {
                for v in s.as_string::<i32>().iter().flatten() {
                    // Bounded: a column of unique ids keeps at most this many distinct values.
                    if self.counts.len() < 50_000 || self.counts.contains_key(v) {
                        *self.counts.entry(v.to_string()).or_default() += 1;
                    }
                }
            }
        } else if let Some(l) = a.as_list_opt::<i32>() {
            for i in 0..l.len() {
                if l.is_valid(i) {
                    self.vector_len = Some(l.value_length(i) as usize);
                    break;
                }
            }
        } else if let Some(l) = a.as_fixed_size_list_opt() {
            self.vector_len = Some(l.value_length() as usize);
        } else {
            self.other = true;
        }
    }

    fn finish(mut self) -> Json {
        let null_share = if self.rows == 0 {
            0.0
        } else {
            self.nulls as f64 / self.rows as f64
        };
        let mut out = json!({
            "name": self.name,
            "data_type": self.data_type,
            "rows": self.rows,
            "nulls": self.nulls,
            "null_share": null_share,
        });
        if !self.numbers.is_empty() {
            let min = self.numbers.iter().copied().fold(f64::INFINITY, f64::min);
            let max = self
                .numbers
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
            let mean = self.numbers.iter().sum::<f64>() / self.numbers.len() as f64;
            let mut bins = [0u64; BINS];
            let width = (max - min) / BINS as f64;
            for v in &self.numbers {
                let i = if width > 0.0 {
                    (((v - min) / width) as usize).min(BINS - 1)
                } else {
                    0
                };
                bins[i] += 1;
            }
            let histogram: Vec<Json> = if width > 0.0 {
                bins.iter()
                    .enumerate()
                    .map(|(i, c)| {
                        json!({"lo": min + width * i as f64, "hi": min + width * (i + 1) as f64, "count": c})
                    })
                    .collect()
            } else {
                vec![json!({"lo": min, "hi": max, "count": self.numbers.len()})]
            };
            out["kind"] = json!("numeric");
            out["min"] = json!(min);
            out["max"] = json!(max);
            out["mean"] = json!(mean);
            out["histogram"] = json!(histogram);
        } else if !self.counts.is_empty() {
            let distinct = self.counts.len();
            let mut top: Vec<(String, u64)> = self.counts.drain().collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            top.truncate(TOP);
            out["kind"] = json!("categorical");
            out["distinct"] = json!(distinct);
            out["top"] = top
                .into_iter()
                .map(|(value, count)| json!({"value": value, "count": count}))
                .collect();
        } else if let Some(n) = self.vector_len {
            out["kind"] = json!("vector");
            out["length"] = json!(n);
        } else {
            out["kind"] = json!(if self.other { "other" } else { "empty" });
        }
        out
    }
}

type Cache = Mutex<HashMap<(std::path::PathBuf, String, String), (Instant, Json)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The statistics of every feature of `view`: `{"view", "source", "rows_read", "capped",
/// "computed_at", "columns": [...]}`. A request-time view has no data of its own (an error).
pub async fn view_stats(
    engine: &OfflineEngine,
    view: &FeatureView,
    now_us: i64,
) -> Result<Json, String> {
    if view.is_request() {
        return Err(format!(
            "'{}' is computed at request time from request data: it has no offline data of its own",
            view.name
        ));
    }
    let hash = engine
        .registry()
        .object_hash(ObjectKind::FeatureView, &view.name)
        .unwrap_or_default();
    let key = (engine.root().to_path_buf(), view.name.clone(), hash);
    if let Some((at, v)) = cache().lock().unwrap_or_else(|e| e.into_inner()).get(&key)
        && at.elapsed() < KEEP
    {
        return Ok(v.clone());
    }
    let outputs: Vec<(String, String)> = view
        .outputs()
        .into_iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    let mut columns: Vec<Column> = outputs
        .iter()
        .map(|(n, t)| Column {
            name: n.clone(),
            data_type: t.clone(),
            ..Default::default()
        })
        .collect();
    let mut rows = 0usize;
    let add = |batch: &RecordBatch, columns: &mut Vec<Column>, rows: &mut usize| {
        let take = batch.num_rows().min(MAX_ROWS - *rows);
        let batch = batch.slice(0, take);
        for c in columns.iter_mut() {
            if let Some(a) = batch.column_by_name(&c.name) {
                c.push(a.as_ref());
            }
        }
        *rows += take;
    };
    let what;
    if view.is_aggregation() {
        what = "latest value per entity, as of now";
        let batch = engine
            .latest(&view.name, now_us, None)
            .await
            .map_err(|e| e.to_string())?;
        add(&batch, &mut columns, &mut rows);
    } else {
        what = "source rows";
        let df = engine
            .view_rows(&view.name)
            .await
            .map_err(|e| e.to_string())?
            .limit(0, Some(MAX_ROWS))
            .map_err(|e| e.to_string())?;
        let mut stream = df.execute_stream().await.map_err(|e| e.to_string())?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| e.to_string())?;
            add(&batch, &mut columns, &mut rows);
            if rows >= MAX_ROWS {
                break;
            }
        }
    }
    let out = json!({
        "view": view.name,
        "source": view.source,
        "read": what,
        "rows_read": rows,
        "capped": rows >= MAX_ROWS,
        "computed_at": crate::time_text(now_us),
        "columns": columns.into_iter().map(Column::finish).collect::<Vec<_>>(),
    });
    cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, (Instant::now(), out.clone()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, StringArray};

    #[test]
    fn numbers_and_strings() {
        let mut c = Column {
            name: "x".into(),
            ..Default::default()
        };
        c.push(&Float64Array::from(vec![
            Some(1.0),
            None,
            Some(3.0),
            Some(2.0),
        ]));
        let v = c.finish();
        assert_eq!(v["kind"], "numeric");
        assert_eq!(
            (v["min"].as_f64(), v["max"].as_f64()),
            (Some(1.0), Some(3.0))
        );
        assert_eq!(v["mean"].as_f64(), Some(2.0));
        assert_eq!(v["null_share"].as_f64(), Some(0.25));
        let total: u64 = v["histogram"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum();
        assert_eq!(total, 3);
        let mut s = Column::default();
        s.push(&StringArray::from(vec![
            Some("a"),
            Some("b"),
            Some("a"),
            None,
        ]));
        let v = s.finish();
        assert_eq!(v["kind"], "categorical");
        assert_eq!(v["top"][0], json!({"value": "a", "count": 2}));
        assert_eq!(v["distinct"], 2);
    }
}
