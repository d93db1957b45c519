//! # quiver-py
//!
//! The native half of the `quiver` Python package (`python/`, built into a wheel by maturin):
//! the module `quiver._quiver`, whose `Store` the pure-Python `quiver.FeatureStore` wraps. Like
//! `quiver-cli` and `quiver-server`, it only wires the library crates together: each method
//! calls the function the matching `quiver` command or HTTP endpoint calls
//! (`OfflineEngine::historical`, `quiver_server::online::online_features`,
//! `quiver_monitor::quality::materialize_checked`, `SqlMetadataStore::plan` / `apply_planned`,
//! `quiver_pipeline::train`, `quiver_pipeline::scoring::predict_table`,
//! `quiver_monitor::drift::drift`), so answers are equal to theirs by construction.
//!
//! * **Arrow crosses without copies.** Frames come in through the Arrow C stream interface
//!   (`__arrow_c_stream__`: pyarrow tables, polars and pandas go through pyarrow) and results go
//!   out as a `pyarrow.RecordBatchReader` over the C stream interface (arrow-rs's
//!   `arrow-pyarrow`): pyarrow wraps the very buffers Rust computed. `Store.last_result_buffers`
//!   lists their addresses so a test can check it.
//! * **The GIL is released** while the work runs on a tokio runtime; Python's signal handlers
//!   run every 100 ms, so `Ctrl-C` interrupts a long call (see [`wait`]).
//! * **Errors** are `quiver.QuiverError` subclasses carrying the CLI's messages (see
//!   [`errors`]).
//!
//! Results that are not tables (plans, reports, metrics, definitions) cross as JSON text that
//! the Python side parses: the same documents `quiver --json` prints.
//! * **The allocator is the `quiver` binary's** (`quiver_alloc::SplitAlloc`): the Rust side's
//!   allocations inside the Python process get mimalloc for small blocks and huge pages for the
//!   join's large buffers (the 10M x 1M call into pandas: 0.96 to 0.99 s before, 0.89 to
//!   0.92 s with it, bench/README.md); pyarrow frees Rust-made buffers through their release
//!   callback, so each block returns to the allocator that made it. Unlike the CLI, the
//!   package does not keep freed memory for reuse (`keep_freed_memory`): a notebook's memory
//!   should shrink back after a call.

pub mod errors;
pub mod wait;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[global_allocator]
static ALLOCATOR: quiver_alloc::SplitAlloc = quiver_alloc::SplitAlloc;

use arrow_pyarrow::{FromPyArrow, IntoPyArrow};
use datafusion::arrow::array::{
    Array, ArrayData, RecordBatch, RecordBatchIterator, RecordBatchReader,
};
use datafusion::arrow::compute::concat_batches;
use pyo3::prelude::*;
use quiver_core::repo::{RepoSettings, load_registry};
use quiver_offline::{HistoricalOptions, OfflineEngine};
use quiver_registry::{AppliedRegistry, MetadataStore, SqlMetadataStore};
use serde_json::{Value as Json, json};

use crate::errors::{Failure, Result};
use crate::wait::{Ticker, wait};

/// The metadata store of `repo` and its applied registry, or the CLI's "apply first" error.
async fn applied(repo: &Path) -> Result<(SqlMetadataStore, AppliedRegistry)> {
    let settings = RepoSettings::load(repo)?;
    let store = SqlMetadataStore::open_repo(repo, settings.registry.as_deref()).await?;
    match store.current().await? {
        Some(a) => Ok((store, a)),
        None => Err(Failure::Definition(format!(
            "nothing applied yet in {}: run `quiver --repo {} apply` (or FeatureStore.apply())",
            store.url(),
            repo.display()
        ))),
    }
}

/// A frame from Python (anything with `__arrow_c_stream__`, or a `pyarrow.RecordBatchReader`)
/// as one batch; `what` names it in errors.
fn read_frame(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<RecordBatch> {
    let table = arrow_pyarrow::Table::from_pyarrow_bound(obj).map_err(|e| {
        errors::DataError::new_err(format!(
            "{what}: not an Arrow table (give a pandas, polars or pyarrow data frame): {e}"
        ))
    })?;
    let (batches, schema) = table.into_inner();
    if batches.len() == 1 {
        return Ok(batches.into_iter().next().expect("one batch"));
    }
    concat_batches(&schema, &batches)
        .map_err(|e| errors::DataError::new_err(format!("{what}: {e}")))
}

/// Every buffer address of an array (values, offsets, validity, children), for the zero-copy
/// check.
fn buffer_addresses(data: &ArrayData, out: &mut Vec<usize>) {
    for b in data.buffers() {
        out.push(b.as_ptr() as usize);
    }
    if let Some(n) = data.nulls() {
        out.push(n.buffer().as_ptr() as usize);
    }
    for c in data.child_data() {
        buffer_addresses(c, out);
    }
}

/// Parses a JSON document the work produced (for Python's `json.loads`).
fn text(v: &Json) -> String {
    v.to_string()
}

/// A data set argument of `drift`: a spec (a file, `model:...`, `log:...`, ...) or a frame.
enum DataArg {
    Spec(String),
    Table(RecordBatch),
}

fn data_arg(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<DataArg> {
    if let Ok(p) = obj.extract::<PathBuf>() {
        return Ok(DataArg::Spec(p.to_string_lossy().into_owned()));
    }
    Ok(DataArg::Table(read_frame(obj, what)?))
}

/// A Quiver repository, opened as the `quiver` command opens it (`quiver.yaml`, its registry,
/// its stores). Wrapped by `quiver.FeatureStore`; see the package's docstrings.
#[pyclass(module = "quiver._quiver", frozen)]
pub struct Store {
    repo: PathBuf,
    last_buffers: Mutex<Vec<usize>>,
}

impl Store {
    fn result(&self, py: Python<'_>, batch: RecordBatch) -> PyResult<Py<PyAny>> {
        let mut addresses = Vec::new();
        for c in batch.columns() {
            buffer_addresses(&c.to_data(), &mut addresses);
        }
        *self.last_buffers.lock().unwrap_or_else(|e| e.into_inner()) = addresses;
        let schema = batch.schema();
        let reader: Box<dyn RecordBatchReader + Send> =
            Box::new(RecordBatchIterator::new(vec![Ok(batch)], schema));
        Ok(reader.into_pyarrow(py)?.unbind())
    }
}

#[pymethods]
impl Store {
    #[new]
    fn new(repo: PathBuf) -> PyResult<Self> {
        if !repo.join("quiver.yaml").is_file() {
            return Err(errors::DefinitionError::new_err(format!(
                "{}: no quiver.yaml here (create a repository with `quiver init DIR`)",
                repo.display()
            )));
        }
        Ok(Store {
            repo,
            last_buffers: Mutex::new(Vec::new()),
        })
    }

    /// The repository folder.
    #[getter]
    fn repo(&self) -> PathBuf {
        self.repo.clone()
    }

    /// Addresses of the Arrow buffers of the last table returned (historical, predict), as
    /// Rust allocated them.
    fn last_result_buffers(&self) -> Vec<usize> {
        self.last_buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Point-in-time features for the rows of `entities` (`quiver historical`).
    #[pyo3(signature = (entities, features=None, service=None, timestamp_column="event_timestamp".to_string(), full_names=false, snapshots=true, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn historical(
        &self,
        py: Python<'_>,
        entities: &Bound<'_, PyAny>,
        features: Option<Vec<String>>,
        service: Option<String>,
        timestamp_column: String,
        full_names: bool,
        snapshots: bool,
        progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let table = read_frame(entities, "entity_df")?;
        let repo = self.repo.clone();
        let ticker = Arc::new(Ticker::default());
        let t = Arc::clone(&ticker);
        let batch = wait(py, &ticker, progress, async move {
            let (_, applied) = applied(&repo).await?;
            let engine = OfflineEngine::new(applied.registry, &repo);
            let refs = match (&service, features) {
                (Some(s), None) => engine.registry().service_features(s)?.to_vec(),
                (None, Some(f)) => engine.registry().resolve_features(&f)?,
                _ => {
                    return Err(Failure::Definition(
                        "give either features=[\"view:feature\", ...] or service=\"name\", not both or neither".into(),
                    ));
                }
            };
            t.add_total(table.num_rows() as u64);
            let opts = HistoricalOptions {
                timestamp_column,
                full_names,
                snapshots,
            };
            let progress: Arc<dyn quiver_offline::engine::Progress> = t;
            Ok(engine
                .historical(&table, &refs, &opts, "entity_df", &progress)
                .await?)
        })?;
        self.result(py, batch)
    }

    /// `POST /get-online-features` with the JSON `request`; returns the answer's JSON.
    fn online(&self, py: Python<'_>, request: String) -> PyResult<String> {
        let repo = self.repo.clone();
        let ticker = Arc::new(Ticker::default());
        wait(py, &ticker, None, async move {
            let (meta, applied) = applied(&repo).await?;
            let settings = RepoSettings::load(&repo)?;
            let store =
                quiver_online::open_store(&settings, &repo, &applied.registry.project.clone())?;
            let config = quiver_server::ServerConfig::from_settings(&settings);
            let served = quiver_server::Served::new(applied.registry, applied.version, &repo);
            let answer = quiver_server::online::online_features(
                &*store,
                &served,
                config.max_entities,
                request.as_bytes(),
            )
            .await;
            drop(store);
            meta.close().await;
            let answer = answer?;
            String::from_utf8(answer).map_err(|e| Failure::Other(e.to_string()))
        })
    }

    /// `quiver materialize` (or `materialize-incremental` when `start` is None); returns the
    /// report's JSON.
    #[pyo3(signature = (start, end, views=Vec::new(), batch_rows=10_000, progress=None))]
    fn materialize(
        &self,
        py: Python<'_>,
        start: Option<String>,
        end: String,
        views: Vec<String>,
        batch_rows: usize,
        progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let repo = self.repo.clone();
        let ticker = Arc::new(Ticker::default());
        let t = Arc::clone(&ticker);
        wait(py, &ticker, progress, async move {
            let opts = quiver_online::materialize::MaterializeOptions::from_args(
                start.as_deref(),
                &end,
                views,
                batch_rows,
                quiver_online::materialize::ArgNames {
                    start: "start",
                    end: "end",
                    batch_rows: "batch_rows",
                },
            )
            .map_err(Failure::Data)?;
            let (meta, applied) = applied(&repo).await?;
            let settings = RepoSettings::load(&repo)?;
            let store = quiver_online::open_store(&settings, &repo, &applied.registry.project)?;
            let version = applied.version;
            let engine = OfflineEngine::new(applied.registry, &repo);
            let alerter =
                quiver_jobs::Alerter::from_settings_or_off(&settings.alerts, Some(meta.clone()));
            let (gate, reports) = quiver_monitor::quality::materialize_checked(
                &engine, &*store, &meta, &opts, t, version, &alerter,
            )
            .await?;
            let mut report = quiver_server::materialize_report(&reports, &store.describe());
            report["quality_warnings"] = json!(gate.warnings);
            drop(store);
            meta.close().await;
            Ok(text(&report))
        })
    }

    /// `quiver plan`: `{"base_version", "plan", "text"}`.
    fn plan(&self, py: Python<'_>) -> PyResult<String> {
        let repo = self.repo.clone();
        let ticker = Arc::new(Ticker::default());
        wait(py, &ticker, None, async move {
            let defs = load_registry(&repo)?;
            let settings = RepoSettings::load(&repo)?;
            let store = SqlMetadataStore::open_repo(&repo, settings.registry.as_deref()).await?;
            let planned = store.plan(&defs).await?;
            store.close().await;
            Ok(text(&json!({
                "base_version": planned.base_version,
                "plan": planned.plan,
                "text": planned.plan.to_string().trim_end(),
            })))
        })
    }

    /// `quiver apply`: validates the definitions (against the sources' data unless
    /// `check_sources` is false), then stores them; `{"version", "plan", "text"}`.
    #[pyo3(signature = (allow_breaking=false, check_sources=true))]
    fn apply(&self, py: Python<'_>, allow_breaking: bool, check_sources: bool) -> PyResult<String> {
        let repo = self.repo.clone();
        let ticker = Arc::new(Ticker::default());
        wait(py, &ticker, None, async move {
            let defs = load_registry(&repo)?;
            if check_sources {
                // The checks `quiver apply` runs.
                quiver_recs::check_against_data(&defs, &repo).await?;
            }
            let settings = RepoSettings::load(&repo)?;
            let store = SqlMetadataStore::open_repo(&repo, settings.registry.as_deref()).await?;
            let planned = store.plan(&defs).await?;
            let version = store.apply_planned(&defs, &planned, allow_breaking).await;
            store.close().await;
            Ok(text(&json!({
                "version": version?,
                "plan": planned.plan,
                "text": planned.plan.to_string().trim_end(),
            })))
        })
    }

    /// The applied registry: `{"version", "views": {...}, "services": {...}, ...}`.
    fn registry(&self, py: Python<'_>) -> PyResult<String> {
        let repo = self.repo.clone();
        let ticker = Arc::new(Ticker::default());
        wait(py, &ticker, None, async move {
            let (meta, a) = applied(&repo).await?;
            meta.close().await;
            let r = &a.registry;
            Ok(text(&json!({
                "version": a.version,
                "applied_at": a.applied_at,
                "project": r.project,
                "entities": r.entities,
                "sources": r.sources,
                "views": r.views,
                "services": r.services,
            })))
        })
    }

    /// The features of a service (`view:feature`), or the registry's "unknown service" error.
    fn service_features(&self, py: Python<'_>, name: String) -> PyResult<Vec<String>> {
        let repo = self.repo.clone();
        let ticker = Arc::new(Ticker::default());
        wait(py, &ticker, None, async move {
            let (meta, a) = applied(&repo).await?;
            meta.close().await;
            Ok(a.registry
                .service_features(&name)?
                .iter()
                .map(|f| f.to_string())
                .collect())
        })
    }

    /// `quiver train` with the label table `labels` (a Parquet or CSV file); returns
    /// `{"name", "version", "metrics", "importance", "train_rows", "train_seconds"}`.
    #[pyo3(signature = (service, labels, label, model="gbdt".to_string(), task=None, params=Vec::new(), split="time".to_string(), name=None, promote=None, timestamp_column="event_timestamp".to_string(), frequency_encode=Vec::new(), allow_unknown_entities=false, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn train(
        &self,
        py: Python<'_>,
        service: String,
        labels: PathBuf,
        label: String,
        model: String,
        task: Option<String>,
        params: Vec<String>,
        split: String,
        name: Option<String>,
        promote: Option<String>,
        timestamp_column: String,
        frequency_encode: Vec<String>,
        allow_unknown_entities: bool,
        progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let mut req = quiver_pipeline::TrainRequest::new(&service, labels, &label);
        req.algorithm = match model.as_str() {
            "gbdt" => quiver_pipeline::Algorithm::Gbdt,
            "logistic" => quiver_pipeline::Algorithm::Logistic,
            other => {
                return Err(errors::DataError::new_err(format!(
                    "model={other:?}: use \"gbdt\" or \"logistic\""
                )));
            }
        };
        req.task = match task.as_deref() {
            None => None,
            Some("binary") => Some(quiver_pipeline::Task::Binary),
            Some("multiclass") => Some(quiver_pipeline::Task::Multiclass),
            Some("regression") => Some(quiver_pipeline::Task::Regression),
            Some(other) => {
                return Err(errors::DataError::new_err(format!(
                    "task={other:?}: use \"binary\", \"multiclass\" or \"regression\""
                )));
            }
        };
        req.split = match split.as_str() {
            "time" => quiver_pipeline::Split::Time,
            "random" => quiver_pipeline::Split::Random,
            other => {
                return Err(errors::DataError::new_err(format!(
                    "split={other:?}: use \"time\" or \"random\""
                )));
            }
        };
        req.params = params;
        req.name = name;
        req.promote = promote;
        req.timestamp_column = timestamp_column;
        req.frequency_encode = frequency_encode;
        req.allow_unknown_entities = allow_unknown_entities;
        let repo = self.repo.clone();
        let ticker = Arc::new(Ticker::default());
        let t = Arc::clone(&ticker);
        wait(py, &ticker, progress, async move {
            let (store, applied) = applied(&repo).await?;
            let progress: Arc<dyn quiver_pipeline::Progress> = t;
            let trained = quiver_pipeline::train(&repo, &store, &applied, &req, &progress).await;
            store.close().await;
            let trained = trained?;
            Ok(text(&json!({
                "name": trained.name,
                "version": trained.version,
                "metrics": quiver_pipeline::evaluation::headline(&trained.evaluation),
                "importance": trained.importance.iter().map(|(f, g, s)| json!({"feature": f, "gain": g, "splits": s})).collect::<Vec<_>>(),
                "train_rows": trained.train_rows,
                "train_seconds": trained.train_seconds,
            })))
        })
    }

    /// `quiver models predict MODEL` on the rows of `entities` (point-in-time features,
    /// encoded as in training): the rows with `score` (or `class` and `p_*`) columns.
    #[pyo3(signature = (model, entities, timestamp_column="event_timestamp".to_string(), progress=None))]
    fn predict(
        &self,
        py: Python<'_>,
        model: String,
        entities: &Bound<'_, PyAny>,
        timestamp_column: String,
        progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let table = read_frame(entities, "entity_df")?;
        let repo = self.repo.clone();
        let ticker = Arc::new(Ticker::default());
        let t = Arc::clone(&ticker);
        let batch = wait(py, &ticker, progress, async move {
            let (store, applied) = applied(&repo).await?;
            let v = quiver_pipeline::versions::resolve(&store, &model).await;
            store.close().await;
            // An unknown model, version or alias is a model error, not bad input data.
            let v = v.map_err(|e| match Failure::from(e) {
                Failure::Data(m) => Failure::Model(m),
                f => f,
            })?;
            t.add_total(table.num_rows() as u64);
            let progress: Arc<dyn quiver_pipeline::Progress> = t;
            Ok(quiver_pipeline::scoring::predict_table(
                &repo,
                applied,
                &v,
                &table,
                &timestamp_column,
                "entity_df",
                &progress,
            )
            .await?)
        })?;
        self.result(py, batch)
    }

    /// `quiver models import FILE --format lightgbm --service S`: `{"name", "version", "task"}`.
    #[pyo3(signature = (file, service, name=None, promote=None))]
    fn import_lightgbm(
        &self,
        py: Python<'_>,
        file: PathBuf,
        service: String,
        name: Option<String>,
        promote: Option<String>,
    ) -> PyResult<String> {
        let repo = self.repo.clone();
        let ticker = Arc::new(Ticker::default());
        wait(py, &ticker, None, async move {
            let (store, applied) = applied(&repo).await?;
            let imported = quiver_pipeline::import::import_lightgbm(
                &repo,
                &store,
                &applied,
                &file,
                &service,
                name,
                promote.as_deref(),
            )
            .await;
            store.close().await;
            let i = imported?;
            Ok(text(
                &json!({"name": i.name, "version": i.version, "task": i.task}),
            ))
        })
    }

    /// `quiver drift --json`: `reference` and `current` are specs (a file or folder relative to
    /// the repository, `FILE@START..END`, `model:NAME[:VERSION]`,
    /// `log:NAME[:VERSION]@START..END`, `service:S@START..END`) or frames; the CLI's one
    /// implementation (`quiver_monitor::drift::sets::compare`) opens and compares them.
    #[pyo3(signature = (reference, current, features=None, drift_share=0.5))]
    fn drift(
        &self,
        py: Python<'_>,
        reference: &Bound<'_, PyAny>,
        current: &Bound<'_, PyAny>,
        features: Option<Vec<String>>,
        drift_share: f64,
    ) -> PyResult<String> {
        let reference = data_arg(reference, "reference")?;
        let current = data_arg(current, "current")?;
        if !(0.0..=1.0).contains(&drift_share) {
            return Err(errors::DataError::new_err(format!(
                "drift_share {drift_share}: expected a share from 0 to 1"
            )));
        }
        let repo = self.repo.clone();
        let ticker = Arc::new(Ticker::default());
        wait(py, &ticker, None, async move {
            use quiver_monitor::drift::sets::{Opener, Side, compare};
            use quiver_monitor::drift::{Dataset, DriftOptions};
            // Relative paths are the repository's.
            let opener = Opener::new(&repo, &repo);
            let side = |arg: DataArg, label: &str| -> Result<Side> {
                Ok(match arg {
                    DataArg::Spec(s) => Side::Spec(s),
                    DataArg::Table(t) => Side::Set(Box::new(Dataset::from_frame(
                        opener.session().read_batch(t)?,
                        format!("{label} (data frame)"),
                        true,
                    ))),
                })
            };
            let reference = side(reference, "reference")?;
            let current = side(current, "current")?;
            let options = DriftOptions {
                drift_share,
                features,
                ..DriftOptions::default()
            };
            let comparison = compare(&opener, reference, current, options).await?;
            Ok(text(&comparison.to_json()))
        })
    }
}

/// The module `quiver._quiver`.
#[pymodule]
fn _quiver(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // `offline_engine: {type: ballista}` in quiver.yaml works here as in the CLI.
    quiver_offline::engine::set_cluster_connector(quiver_cluster::connect);
    m.add_class::<Store>()?;
    m.add("QuiverError", py.get_type::<errors::QuiverError>())?;
    m.add("DefinitionError", py.get_type::<errors::DefinitionError>())?;
    m.add("DataError", py.get_type::<errors::DataError>())?;
    m.add("StoreError", py.get_type::<errors::StoreError>())?;
    m.add("ModelError", py.get_type::<errors::ModelError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
