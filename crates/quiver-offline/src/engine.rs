//! The offline engine: the registry's views over their sources, as of any point in time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, TimestampMicrosecondArray};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{
    DataType, Field, Int64Type, Schema, SchemaRef, TimestampMicrosecondType,
};
use datafusion::common::DFSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, ExprSchemable, cast as cast_expr, ident, lit};
use datafusion::object_store::ObjectStore;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{
    CsvReadOptions, DataFrame, ParquetReadOptions, SessionConfig, SessionContext,
};
use datafusion::scalar::ScalarValue;
use futures::StreamExt;
use quiver_core::registry::JoinKey;
use quiver_core::{Aggregation, FeatureRef, FeatureView, Registry, Source};

use crate::error::{Error, Result};
use crate::key::{BatchKeys, Key, cast_keys, encode_keys};
use crate::key_space::KeySpace;
use crate::pit_join::{Candidates, EntityIndex, LatestPerKey, PartitionedJoin};
use crate::request_view::CompiledRequestView;
use crate::source::{clean, source_error, source_frame};
use crate::types::{
    arrow_type, compatible, describe, is_string, is_timestamp_like, timestamp_type,
};
use crate::window_agg::{AggSpec, aggregate_events};

/// Options of a historical retrieval.
#[derive(Debug, Clone)]
pub struct HistoricalOptions {
    /// The entity rows' timestamp column.
    pub timestamp_column: String,
    /// Name output columns `view__feature` instead of `feature`.
    pub full_names: bool,
    /// Read a view that declares `offline: {snapshots: daily}` from its finished snapshots for
    /// the entity rows whose time is a snapshot's as-of time (the values are the same; see
    /// [`crate::snapshot`]), instead of recomputing them.
    pub snapshots: bool,
}

impl Default for HistoricalOptions {
    fn default() -> Self {
        HistoricalOptions {
            timestamp_column: "event_timestamp".into(),
            full_names: false,
            snapshots: true,
        }
    }
}

/// Progress of a retrieval, reported per batch of feature rows read.
pub trait Progress: Send + Sync {
    /// `rows` more rows of `view` were read.
    fn rows_read(&self, view: &str, rows: usize);
}

impl Progress for () {
    fn rows_read(&self, _: &str, _: usize) {}
}

/// A [`Progress`] that reports nothing.
pub fn no_progress() -> Arc<dyn Progress> {
    Arc::new(())
}

/// Internal column names of a view's prepared frame.
const TS: &str = "__quiver_ts";
const CREATED: &str = "__quiver_created";

fn key_col(i: usize) -> String {
    format!("__quiver_k{i}")
}

/// The offline engine over one registry and repository.
pub struct OfflineEngine {
    registry: Registry,
    root: PathBuf,
    /// Where offline snapshots live: a folder or an `s3://` URL (`offline_store:`).
    offline_store: String,
    ctx: SessionContext,
    /// Worker threads of a point-in-time join (`None`: one per core).
    threads: Option<usize>,
    /// Hash partitions of the entity keys in a point-in-time join.
    key_partitions: usize,
    /// When set, plain views are joined as a DataFusion plan of [`crate::pit_exec::PitJoinExec`]
    /// over this many hash partitions of the join keys (the plan a cluster runs).
    exchange_partitions: Option<usize>,
    /// Where such plans run when not here: a cluster (`offline_engine:` in `quiver.yaml`), or
    /// why the configured one cannot be used.
    runner: Option<std::result::Result<Arc<dyn PlanRunner>, String>>,
}

/// Runs physical plans somewhere else than the engine's own session: on a cluster
/// (`quiver-cluster`'s Ballista runner).
pub trait PlanRunner: Send + Sync + std::fmt::Debug {
    /// Partitions the plans are built with (hash partitions of the join keys, scan partitions).
    fn partitions(&self) -> usize;
    /// Every output row of `plan`, from all its partitions.
    fn run(
        &self,
        plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    ) -> futures::future::BoxFuture<'static, datafusion::error::Result<Vec<RecordBatch>>>;
}

/// Times a cluster job is tried (see [`run_on_cluster`]).
pub const CLUSTER_ATTEMPTS: usize = 2;

/// Every output row of `plan`, run by `runner`. A job that failed once the cluster had taken it
/// (an executor lost with shuffle data the job needed), or whose rows `whole` rejects (a lost
/// executor can make Ballista send a partition twice or not at all), runs once more, on the
/// executors that are left; a scheduler that cannot be reached is not tried again. The error
/// says what happened and that nothing was written.
pub async fn run_on_cluster(
    runner: &Arc<dyn PlanRunner>,
    plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    mut whole: impl FnMut(&[RecordBatch]) -> std::result::Result<(), String>,
) -> std::result::Result<Vec<RecordBatch>, String> {
    let mut why = String::new();
    for _ in 0..CLUSTER_ATTEMPTS {
        match runner.run(Arc::clone(&plan)).await {
            Ok(batches) => match whole(&batches) {
                Ok(()) => return Ok(batches),
                Err(e) => why = e,
            },
            Err(e) => {
                why = clean(e);
                // A job the scheduler accepted, then failed: "... Job ID failed: ...".
                if !(why.contains("Job ") && why.contains(" failed")) {
                    return Err(why);
                }
            }
        }
    }
    Err(format!(
        "{why} (tried {CLUSTER_ATTEMPTS} times); nothing was written: run it again"
    ))
}

/// Makes a [`PlanRunner`] for `offline_engine: {type: ballista, url, partitions}`.
pub type ClusterConnector =
    fn(url: &str, partitions: usize) -> std::result::Result<Arc<dyn PlanRunner>, String>;

/// How engines reach a cluster, if the process knows (see [`set_cluster_connector`]).
static CLUSTER_CONNECTOR: std::sync::OnceLock<ClusterConnector> = std::sync::OnceLock::new();

/// Lets engines created after this call honour `offline_engine: {type: ballista}` (the `quiver`
/// binary passes `quiver-cluster`'s). Only the first call counts.
pub fn set_cluster_connector(connect: ClusterConnector) -> bool {
    CLUSTER_CONNECTOR.set(connect).is_ok()
}

/// Reads a timestamp-like column as UTC microseconds (strings are parsed; naive is UTC).
pub fn micros(array: &ArrayRef) -> Result<Vec<Option<i64>>> {
    let c = cast(array, &timestamp_type())?;
    let a = c.as_primitive::<TimestampMicrosecondType>();
    Ok((0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect())
}

/// The object store for `file://` paths, if the process set one (see [`set_local_file_store`]).
static LOCAL_FILE_STORE: std::sync::OnceLock<Arc<dyn ObjectStore>> = std::sync::OnceLock::new();

/// Makes every engine created after this call read local files through `store` instead of
/// DataFusion's `LocalFileSystem` (the `quiver` binary passes a memory-mapped one). Only the first
/// call counts; returns whether it was this one.
pub fn set_local_file_store(store: Arc<dyn ObjectStore>) -> bool {
    LOCAL_FILE_STORE.set(store).is_ok()
}

impl OfflineEngine {
    /// An engine over `registry`, resolving relative source paths against `root`.
    pub fn new(registry: Registry, root: impl Into<PathBuf>) -> Self {
        let root: PathBuf = root.into();
        // `storage:` and `offline_store:` from quiver.yaml (defaults for a folder without one).
        let settings = quiver_core::repo::RepoSettings::load(&root).unwrap_or_default();
        let config = SessionConfig::new()
            .with_batch_size(65_536)
            .with_information_schema(false);
        let mut config = crate::remote::with_storage(config, &settings.storage);
        config.options_mut().sql_parser.enable_ident_normalization = false;
        let ctx = SessionContext::new_with_config(config);
        quiver_transforms::register(&ctx);
        ctx.register_udf(crate::embed_udf::embed_text());
        if let Some(store) = LOCAL_FILE_STORE.get() {
            ctx.register_object_store(
                ObjectStoreUrl::local_filesystem().as_ref(),
                Arc::clone(store),
            );
        }
        OfflineEngine {
            registry,
            offline_store: crate::snapshot::offline_place(&root, settings.offline_store.as_deref()),
            root,
            ctx,
            threads: None,
            key_partitions: 1,
            exchange_partitions: None,
            runner: settings.offline_engine.as_ref().and_then(cluster_runner),
        }
    }

    /// Runs point-in-time joins on `threads` workers (default: one per core). The answer does
    /// not depend on it.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    /// Splits point-in-time joins into `parts` hash partitions of the entity keys (default 1),
    /// each joined on its own (see [`PartitionedJoin`]). The answer does not depend on it.
    pub fn with_key_partitions(mut self, parts: usize) -> Self {
        self.key_partitions = parts.max(1);
        self
    }

    fn cores(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Joins plain views as a DataFusion plan: both sides hash-partitioned on the join keys
    /// into `partitions`, each partition joined by a [`crate::pit_exec::PitJoinExec`] task, the
    /// way a cluster runs the join. The answer does not depend on it (tested), except that exact
    /// duplicates (same keys, event and created time) may resolve to either row.
    pub fn with_exchange(mut self, partitions: usize) -> Self {
        self.exchange_partitions = Some(partitions.max(1));
        self
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The DataFusion session the engine plans with (Quiver's transform functions registered,
    /// identifiers case-sensitive): for other crates that scan sources the same way, such as
    /// the data-quality checks.
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    /// The repository folder relative source paths are resolved against.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where offline snapshots live: a local folder or an `s3://` URL (`offline_store:` in
    /// `quiver.yaml`, default `.quiver/offline`).
    pub fn offline_store(&self) -> &str {
        &self.offline_store
    }

    /// A plain view's rows as a `DataFrame`: one row per source row, with the join keys (by
    /// name, cast to their declared types), `event_timestamp` (UTC microseconds) and the view's
    /// features, every type checked against the declaration. For checks over a view's values;
    /// aggregation and request-time views have no rows of their own (see [`Self::latest`]).
    pub async fn view_rows(&self, view_name: &str) -> Result<DataFrame> {
        let view = self.registry.views.get(view_name).ok_or_else(|| {
            quiver_core::Error::UnknownFeature {
                reference: format!("{view_name}:*"),
                message: format!(
                    "no feature view '{view_name}'{}",
                    quiver_core::registry::suggest(view_name, self.registry.views.keys())
                ),
            }
        })?;
        if view.is_aggregation() || view.is_request() {
            return Err(Error::Internal(format!(
                "view_rows of '{view_name}': only plain views have rows of their own"
            )));
        }
        let names: Vec<&str> = view.features.iter().map(|f| f.name.as_str()).collect();
        let df = self.view_frame(view, &names).await?;
        let keys = self.registry.view_join_keys(view);
        let first_value = self.first_value_column(view);
        let fields = df.schema().columns();
        let mut exprs: Vec<Expr> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| ident(key_col(i)).alias(k.name.as_str()))
            .collect();
        exprs.push(ident(TS).alias("event_timestamp"));
        exprs.extend(
            fields[first_value..]
                .iter()
                .map(|c| ident(c.name()).alias(c.name())),
        );
        Ok(df.select(exprs)?)
    }

    /// Reads a Parquet or CSV file (by extension; `.tsv` is tab-separated) into one batch.
    pub async fn read_table(&self, path: &Path) -> Result<RecordBatch> {
        let shown = path.display().to_string();
        let err = |message: String| Error::Entities {
            file: format!(" ({shown})"),
            message,
        };
        let p = path.to_string_lossy().to_string();
        if crate::remote::is_url(&p) {
            crate::remote::register(&self.ctx, &p).map_err(err)?;
        } else if !path.is_file() {
            return Err(err("no such file".into()));
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let df = match ext.as_str() {
            "parquet" | "pq" => {
                self.ctx
                    .read_parquet(p, ParquetReadOptions::default())
                    .await
            }
            "csv" | "tsv" => {
                let e = format!(".{ext}");
                let delim = if ext == "tsv" { b'\t' } else { b',' };
                self.ctx
                    .read_csv(p, CsvReadOptions::new().file_extension(&e).delimiter(delim))
                    .await
            }
            _ => return Err(err("unknown format: use a .parquet or .csv file".into())),
        }
        .map_err(|e| err(clean(e)))?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        // The rows in the file's order: one partition. With several, the scan's partitions
        // share out the row groups as they go, so a file of several row groups came back in
        // another order from run to run, and so did `historical`'s output rows (an entity file
        // is small beside the feature rows; 3M rows read in about 0.1 s).
        let (mut state, plan) = df.into_parts();
        state.config_mut().options_mut().execution.target_partitions = 1;
        let batches: Vec<RecordBatch> = DataFrame::new(state, plan)
            .collect()
            .await
            .map_err(|e| err(clean(e)))?;
        Ok(concat_batches(&schema, &batches)?)
    }

    fn source_of(&self, view: &FeatureView) -> &Source {
        &self.registry.sources[&view.source]
    }

    /// Checks a view's keys and timestamps against its source's schema; returns the key
    /// expressions (cast to the declared types), the timestamp and created expressions.
    fn base_exprs(
        &self,
        view: &FeatureView,
        schema: &DFSchema,
    ) -> Result<(Vec<Expr>, Expr, Option<Expr>)> {
        self.base_exprs_with(view, schema, false)
    }

    /// [`base_exprs`](Self::base_exprs); with `raw_strings`, string keys keep the column's own
    /// string representation (a `Utf8View` or dictionary column is not copied into `Utf8`: the
    /// point-in-time join's [`KeySpace`] reads any of them).
    fn base_exprs_with(
        &self,
        view: &FeatureView,
        schema: &DFSchema,
        raw_strings: bool,
    ) -> Result<(Vec<Expr>, Expr, Option<Expr>)> {
        let source = self.source_of(view);
        let find = |col: &str, what: &str| -> Result<DataType> {
            match schema.as_arrow().field_with_name(col) {
                Ok(f) => Ok(f.data_type().clone()),
                Err(_) => Err(source_error(
                    source,
                    format!(
                        "{what} column '{col}' not found (feature view '{}'); columns: {}",
                        view.name,
                        column_list(schema.fields())
                    ),
                )),
            }
        };
        let mut keys = Vec::new();
        for (i, k) in self.registry.view_join_keys(view).iter().enumerate() {
            let dt = find(&k.name, "join key")?;
            if !compatible(&dt, k.value_type) {
                return Err(source_error(
                    source,
                    format!(
                        "join key '{}' is {} but the entity declares {}",
                        k.name,
                        describe(&dt),
                        k.value_type
                    ),
                ));
            }
            let key = if raw_strings && is_string(&dt) {
                ident(&k.name)
            } else {
                cast_expr(ident(&k.name), arrow_type(k.value_type))
            };
            keys.push(key.alias(key_col(i)));
        }
        let ts_type = find(&source.timestamp_field, "timestamp")?;
        if !is_timestamp_like(&ts_type) {
            return Err(source_error(
                source,
                format!(
                    "timestamp column '{}' is {}, not a timestamp",
                    source.timestamp_field,
                    describe(&ts_type)
                ),
            ));
        }
        let ts = cast_expr(ident(&source.timestamp_field), timestamp_type()).alias(TS);
        let created = match &source.created_timestamp_field {
            Some(c) => {
                let dt = find(c, "created timestamp")?;
                if !is_timestamp_like(&dt) {
                    return Err(source_error(
                        source,
                        format!(
                            "created timestamp column '{c}' is {}, not a timestamp",
                            describe(&dt)
                        ),
                    ));
                }
                Some(cast_expr(ident(c), timestamp_type()).alias(CREATED))
            }
            None => None,
        };
        Ok((keys, ts, created))
    }

    /// Parses a SQL expression of a view against its source's schema.
    fn sql_expr(&self, view: &str, field: &str, sql: &str, schema: &DFSchema) -> Result<Expr> {
        let e = self
            .ctx
            .parse_sql_expr(sql, schema)
            .map_err(|e| Error::Expression {
                view: view.to_string(),
                field: field.to_string(),
                message: clean(e),
            })?;
        // Resolve types now so that unknown columns and functions fail here, not mid-scan.
        e.get_type(schema).map_err(|e| Error::Expression {
            view: view.to_string(),
            field: field.to_string(),
            message: clean(e),
        })?;
        Ok(e)
    }

    /// The prepared frame of a plain view: keys, timestamps, then the requested features, with
    /// every type checked against the declaration.
    async fn view_frame(&self, view: &FeatureView, features: &[&str]) -> Result<DataFrame> {
        self.view_frame_with(view, features, false).await
    }

    /// [`view_frame`](Self::view_frame), string keys as read with `raw_strings` (see
    /// [`base_exprs_with`](Self::base_exprs_with)).
    async fn view_frame_with(
        &self,
        view: &FeatureView,
        features: &[&str],
        raw_strings: bool,
    ) -> Result<DataFrame> {
        let source = self.source_of(view);
        let df = source_frame(&self.ctx, &self.root, source).await?;
        let schema = df.schema().clone();
        let (mut exprs, ts, created) = self.base_exprs_with(view, &schema, raw_strings)?;
        exprs.push(ts);
        exprs.extend(created);
        for name in features {
            let f = view
                .features
                .iter()
                .find(|f| f.name == *name)
                .expect("resolved feature");
            let (e, what) = match &f.expr {
                Some(sql) => (
                    self.sql_expr(
                        &view.name,
                        &format!("features.{}.expr", f.name),
                        sql,
                        &schema,
                    )?,
                    format!("expression '{sql}'"),
                ),
                None => {
                    let col = f.source_column();
                    if schema.as_arrow().field_with_name(col).is_err() {
                        return Err(source_error(
                            source,
                            format!(
                                "feature view '{}', feature '{}': column '{col}' not found; columns: {}",
                                view.name,
                                f.name,
                                column_list(schema.fields())
                            ),
                        ));
                    }
                    (ident(col), format!("column '{col}'"))
                }
            };
            let dt = e.get_type(&schema)?;
            if !compatible(&dt, f.value_type) {
                return Err(source_error(
                    source,
                    format!(
                        "feature view '{}', feature '{}': declared {} but {what} is {}",
                        view.name,
                        f.name,
                        f.value_type,
                        describe(&dt)
                    ),
                ));
            }
            exprs.push(cast_expr(e, arrow_type(f.value_type)).alias(f.name.as_str()));
        }
        Ok(df.select(exprs)?)
    }

    /// Checks every view against its source: files readable, columns present, types matching,
    /// expressions valid. `quiver apply` runs this before storing anything.
    pub async fn validate(&self) -> Result<()> {
        crate::request_view::CompiledRequestView::compile_all(&self.registry)?;
        for view in self.registry.views.values() {
            if view.is_request() {
                continue;
            }
            if view.is_aggregation() {
                for (_, aggs) in group_by_filter(view) {
                    self.agg_frame(view, &aggs).await?;
                }
            } else {
                let names: Vec<&str> = view.features.iter().map(|f| f.name.as_str()).collect();
                let df = self.view_frame(view, &names).await?;
                // Reading the schema of files is cheap; a corrupt file fails here.
                df.limit(0, Some(1))?
                    .collect()
                    .await
                    .map_err(|e| source_error(self.source_of(view), clean(e)))?;
            }
        }
        Ok(())
    }

    /// The entity rows' key columns of a view, checked against the declared key types; integer
    /// keys cast to their declared type, string keys as they are.
    fn entity_key_columns(
        &self,
        view: &FeatureView,
        entities: &RecordBatch,
        file: &str,
    ) -> Result<(Vec<JoinKey>, Vec<ArrayRef>)> {
        let keys = self.registry.view_join_keys(view);
        let mut cols = Vec::new();
        for k in &keys {
            let Ok(i) = entities.schema().index_of(&k.name) else {
                return Err(Error::Entities {
                    file: file.to_string(),
                    message: format!(
                        "join key column '{}' (feature view '{}') is missing; columns: {}",
                        k.name,
                        view.name,
                        column_list(entities.schema().fields())
                    ),
                });
            };
            let dt = entities.column(i).data_type();
            if !compatible(dt, k.value_type) {
                return Err(Error::Entities {
                    file: file.to_string(),
                    message: format!(
                        "join key '{}' is {} but entity declares {}",
                        k.name,
                        describe(dt),
                        k.value_type
                    ),
                });
            }
            let col = entities.column(i);
            cols.push(if is_string(dt) {
                col.clone()
            } else {
                cast_keys(std::slice::from_ref(col), &[arrow_type(k.value_type)])?.remove(0)
            });
        }
        Ok((keys, cols))
    }

    /// The entity rows' keys of a view, encoded one [`Key`] per row.
    fn entity_keys(
        &self,
        view: &FeatureView,
        entities: &RecordBatch,
        file: &str,
    ) -> Result<Vec<Option<Key>>> {
        encode_keys(&self.entity_key_arrays(view, entities, file)?)
    }

    /// The entity rows' key columns of a view, each cast to its declared key type (string keys
    /// to `Utf8`): what an aggregation view's events are keyed by.
    fn entity_key_arrays(
        &self,
        view: &FeatureView,
        entities: &RecordBatch,
        file: &str,
    ) -> Result<Vec<ArrayRef>> {
        let (keys, cols) = self.entity_key_columns(view, entities, file)?;
        let types: Vec<DataType> = keys.iter().map(|k| arrow_type(k.value_type)).collect();
        cast_keys(&cols, &types)
    }

    /// A point-in-time correct training set: every entity row (in order, with all its columns)
    /// followed by the requested features as of the row's timestamp. `file` names the entity
    /// rows in error messages.
    pub async fn historical(
        &self,
        entities: &RecordBatch,
        features: &[FeatureRef],
        opts: &HistoricalOptions,
        file: &str,
        progress: &Arc<dyn Progress>,
    ) -> Result<RecordBatch> {
        let is_request = |f: &FeatureRef| {
            self.registry
                .views
                .get(&f.view)
                .is_some_and(|v| v.is_request())
        };
        if !features.iter().any(is_request) {
            return self
                .historical_stored(entities, features, opts, file, progress)
                .await;
        }
        // Request-time features: their inputs are read point in time like any feature, the
        // request fields come from the entity rows, and the compiled expressions run on both.
        let mut views: Vec<CompiledRequestView> = Vec::new();
        for f in features.iter().filter(|f| is_request(f)) {
            if !views.iter().any(|v| v.view == f.view) {
                views.push(CompiledRequestView::compile(
                    &self.registry,
                    &self.registry.views[&f.view],
                )?);
            }
        }
        let mut stored: Vec<FeatureRef> = features
            .iter()
            .filter(|f| !is_request(f))
            .cloned()
            .collect();
        for v in &views {
            for (r, _) in &v.inputs {
                if !stored.contains(r) {
                    stored.push(r.clone());
                }
            }
        }
        let inner = HistoricalOptions {
            full_names: true,
            ..opts.clone()
        };
        let base = self
            .historical_stored(entities, &stored, &inner, file, progress)
            .await?;
        let n = base.num_rows();
        let mut computed: Vec<(FeatureRef, ArrayRef)> = Vec::new();
        for v in &views {
            let request: Vec<Option<ArrayRef>> = v
                .fields
                .iter()
                .map(|f| base.column_by_name(&f.name).cloned())
                .collect();
            if let Some(missing) = v
                .fields
                .iter()
                .find(|f| base.column_by_name(&f.name).is_none())
            {
                return Err(Error::Entities {
                    file: if file.is_empty() {
                        String::new()
                    } else {
                        format!(" ({file})")
                    },
                    message: format!(
                        "request-time view '{}' needs the request field '{}' as a column of the entity rows; columns: {}",
                        v.view,
                        missing.name,
                        column_list(entities.schema().fields())
                    ),
                });
            }
            let inputs: Vec<ArrayRef> = v
                .inputs
                .iter()
                .map(|(r, _)| {
                    base.column_by_name(&r.full_name())
                        .cloned()
                        .ok_or_else(|| Error::Internal(format!("no column {}", r.full_name())))
                })
                .collect::<Result<_>>()?;
            for ((name, _), col) in v.features().zip(v.evaluate(request, inputs, n)?) {
                computed.push((
                    FeatureRef {
                        view: v.view.clone(),
                        feature: name.to_string(),
                    },
                    col,
                ));
            }
        }
        // Entity columns, then the requested features in order, named as asked.
        let mut fields: Vec<Field> = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (i, f) in entities.schema().fields().iter().enumerate() {
            fields.push(f.as_ref().clone());
            columns.push(Arc::clone(base.column(i)));
        }
        for f in features {
            let name = if opts.full_names {
                f.full_name()
            } else {
                f.feature.clone()
            };
            if fields.iter().any(|x| *x.name() == name) {
                return Err(Error::Output(format!(
                    "output column '{name}' (from {f}) collides with another column: use full feature names (--full-names)"
                )));
            }
            let col = match computed.iter().find(|(r, _)| r == f) {
                Some((_, c)) => Arc::clone(c),
                None => base
                    .column_by_name(&f.full_name())
                    .cloned()
                    .ok_or_else(|| Error::Internal(format!("no column {}", f.full_name())))?,
            };
            fields.push(Field::new(name, col.data_type().clone(), true));
            columns.push(col);
        }
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }

    /// `wanted` features of `view` for every entity row, read from the view's finished
    /// snapshots (current version) for the rows whose time is a snapshot's as-of time and whose
    /// entity the snapshot holds, and computed for the others. `None` when no row is in a
    /// snapshot.
    #[allow(clippy::too_many_arguments)]
    async fn read_snapshots(
        &self,
        view: &FeatureView,
        wanted: &[&str],
        entities: &RecordBatch,
        entity_ts: &[Option<i64>],
        opts: &HistoricalOptions,
        file: &str,
        progress: &Arc<dyn Progress>,
    ) -> Result<Option<Vec<ArrayRef>>> {
        use std::collections::{HashMap, HashSet};
        let version = crate::snapshot::view_version(self, &view.name)?;
        let times: HashSet<i64> = entity_ts.iter().flatten().copied().collect();
        let parts: Vec<(i64, String)> =
            crate::snapshot::finished_partitions(self, &view.name, &version)
                .await?
                .into_iter()
                .filter(|(t, _)| times.contains(t))
                .collect();
        if parts.is_empty() {
            return Ok(None);
        }
        // (entity key, as-of) -> (partition, row).
        let mut index: HashMap<(Key, i64), (usize, usize)> = HashMap::new();
        let mut batches = Vec::with_capacity(parts.len());
        for (as_of, path) in &parts {
            let batch = crate::snapshot::read_partition(self, path).await?;
            let keys = self.entity_keys(view, &batch, &format!("{}/{path}", self.offline_store))?;
            for (row, k) in keys.into_iter().enumerate() {
                if let Some(k) = k {
                    index.insert((k, *as_of), (batches.len(), row));
                }
            }
            batches.push(batch);
        }
        let shown = if file.is_empty() {
            String::new()
        } else {
            format!(" ({file})")
        };
        let keys = self.entity_keys(view, entities, &shown)?;
        let hits: Vec<Option<(usize, usize)>> = keys
            .into_iter()
            .zip(entity_ts)
            .map(|(k, t)| Some(*index.get(&(k?, (*t)?))?))
            .collect();
        if hits.iter().all(Option::is_none) {
            return Ok(None);
        }
        // The other rows the usual way (possibly none: that still gives each column's type).
        let rest: Vec<u32> = (0..hits.len() as u32)
            .filter(|i| hits[*i as usize].is_none())
            .collect();
        let rest_idx = datafusion::arrow::array::UInt32Array::from(rest);
        let rest_entities = RecordBatch::try_new(
            entities.schema(),
            entities
                .columns()
                .iter()
                .map(|c| datafusion::arrow::compute::take(c, &rest_idx, None))
                .collect::<std::result::Result<Vec<_>, _>>()?,
        )?;
        let refs: Vec<FeatureRef> = wanted
            .iter()
            .map(|f| FeatureRef {
                view: view.name.clone(),
                feature: f.to_string(),
            })
            .collect();
        let inner = HistoricalOptions {
            full_names: true,
            snapshots: false,
            ..opts.clone()
        };
        let computed =
            Box::pin(self.historical_stored(&rest_entities, &refs, &inner, file, progress)).await?;
        let mut rest_pos = 0usize;
        let picks: Vec<(usize, usize)> = hits
            .iter()
            .map(|h| match h {
                Some((b, r)) => (1 + b, *r),
                None => {
                    rest_pos += 1;
                    (0, rest_pos - 1)
                }
            })
            .collect();
        let mut out = Vec::with_capacity(wanted.len());
        for r in &refs {
            let from_rest = computed
                .column_by_name(&r.full_name())
                .ok_or_else(|| Error::Output(format!("no column {}", r.full_name())))?
                .clone();
            let mut sources: Vec<ArrayRef> = vec![from_rest.clone()];
            for (b, (_, path)) in batches.iter().zip(&parts) {
                let col = b.column_by_name(&r.feature).ok_or_else(|| {
                    Error::Output(format!(
                        "snapshot {}/{path} has no column {}: write it again with quiver snapshot",
                        self.offline_store, r.feature
                    ))
                })?;
                sources.push(cast(col, from_rest.data_type())?);
            }
            let views: Vec<&dyn Array> = sources.iter().map(|a| a.as_ref()).collect();
            out.push(datafusion::arrow::compute::interleave(&views, &picks)?);
        }
        Ok(Some(out))
    }

    async fn historical_stored(
        &self,
        entities: &RecordBatch,
        features: &[FeatureRef],
        opts: &HistoricalOptions,
        file: &str,
        progress: &Arc<dyn Progress>,
    ) -> Result<RecordBatch> {
        let entity_file = file;
        let file = if file.is_empty() {
            String::new()
        } else {
            format!(" ({file})")
        };
        let Ok(ts_idx) = entities.schema().index_of(&opts.timestamp_column) else {
            return Err(Error::Entities {
                file,
                message: format!(
                    "timestamp column '{}' is missing (set it with --timestamp-column); columns: {}",
                    opts.timestamp_column,
                    column_list(entities.schema().fields())
                ),
            });
        };
        let ts_col = entities.column(ts_idx);
        if !is_timestamp_like(ts_col.data_type()) {
            return Err(Error::Entities {
                file,
                message: format!(
                    "column '{}' is {}, not a timestamp",
                    opts.timestamp_column,
                    describe(ts_col.data_type())
                ),
            });
        }
        let entity_ts = micros(ts_col).map_err(|e| Error::Entities {
            file: file.clone(),
            message: e.to_string(),
        })?;

        // Output names, checked for collisions before any work.
        let mut names: Vec<String> = entities
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        for f in features {
            let n = if opts.full_names {
                f.full_name()
            } else {
                f.feature.clone()
            };
            if names.contains(&n) {
                return Err(Error::Output(format!(
                    "output column '{n}' (from {f}) collides with another column: use full feature names (--full-names)"
                )));
            }
            names.push(n);
        }

        // Views in first-requested order, each computed once.
        let mut by_view: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut view_order: Vec<&str> = Vec::new();
        for f in features {
            if !view_order.contains(&f.view.as_str()) {
                view_order.push(&f.view);
            }
            by_view.entry(&f.view).or_default().push(&f.feature);
        }
        let mut computed: BTreeMap<(String, String), ArrayRef> = BTreeMap::new();
        let mut plain: Vec<PlainView<'_>> = Vec::new();
        for view_name in view_order {
            let view = self.registry.views.get(view_name).ok_or_else(|| {
                quiver_core::Error::UnknownFeature {
                    reference: format!("{view_name}:*"),
                    message: format!("no feature view '{view_name}'"),
                }
            })?;
            let wanted = &by_view[view_name];
            if opts.snapshots
                && view.offline.is_some()
                && let Some(arrays) = self
                    .read_snapshots(
                        view,
                        wanted,
                        entities,
                        &entity_ts,
                        opts,
                        entity_file,
                        progress,
                    )
                    .await?
            {
                for (name, array) in wanted.iter().zip(arrays) {
                    computed.insert((view_name.to_string(), name.to_string()), array);
                }
                continue;
            }
            if view.is_aggregation() {
                let keys = self.entity_key_arrays(view, entities, &file)?;
                let arrays = self
                    .aggregate_view(view, wanted, &keys, &entity_ts, progress)
                    .await?;
                for (name, array) in wanted.iter().zip(arrays) {
                    computed.insert((view_name.to_string(), name.to_string()), array);
                }
            } else {
                let (keys, columns) = self.entity_key_columns(view, entities, &file)?;
                plain.push(PlainView {
                    view,
                    wanted: wanted.clone(),
                    keys,
                    columns,
                });
            }
        }
        let joined = self.join_views(&plain, &entity_ts, progress).await?;
        for (p, arrays) in plain.iter().zip(joined) {
            for (name, array) in p.wanted.iter().zip(arrays) {
                computed.insert((p.view.name.clone(), name.to_string()), array);
            }
        }

        let mut fields: Vec<Field> = entities
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut columns: Vec<ArrayRef> = entities.columns().to_vec();
        for (f, name) in features.iter().zip(&names[entities.num_columns()..]) {
            let a = computed[&(f.view.clone(), f.feature.clone())].clone();
            fields.push(Field::new(name, a.data_type().clone(), true));
            columns.push(a);
        }
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }

    /// The point-in-time join of several plain views in one pass over the machine: the entity
    /// side's work (key encoding, sort, index) is done once per distinct list of join keys and
    /// shared by the views that have it, and every view's scan partitions go into one queue from
    /// which one worker per core takes them, so views are joined concurrently and at most one
    /// chunk per worker is in memory at a time (each worker keeps one join state per view).
    ///
    /// Each view's scan is split into several partitions per core (about a row group each),
    /// taken lowest first: with a partition per core, one core finished a tenth of the run
    /// before the other. A worker's joins are merged with the others' at the end; each
    /// remembers the partition of every row it keeps, so that exact ties go to the later
    /// partition as they would in one sequential scan. The scans start before the entity
    /// indexes exist: the first chunks are read and decoded on the workers while this thread
    /// encodes and sorts the entity rows (each index is handed over through a `watch`), and each
    /// join allocates its slots on its own worker.
    async fn join_views(
        &self,
        views: &[PlainView<'_>],
        entity_ts: &[Option<i64>],
        progress: &Arc<dyn Progress>,
    ) -> Result<Vec<Vec<ArrayRef>>> {
        if views.is_empty() {
            return Ok(Vec::new());
        }
        if let Some((parts, runner)) = self.exchange()? {
            // One job per view, submitted together: the cluster runs their tasks side by side.
            let jobs = views
                .iter()
                .map(|p| self.join_view_exchanged(p, entity_ts, parts, runner, progress));
            return futures::future::try_join_all(jobs).await;
        }
        // Distinct join-key lists: views over the same entity share its keys and index.
        let mut key_sets: Vec<(String, usize)> = Vec::new();
        let mut key_set_of = Vec::new();
        for (v, p) in views.iter().enumerate() {
            let sig = p
                .keys
                .iter()
                .map(|k| format!("{}:{}", k.name, k.value_type))
                .collect::<Vec<_>>()
                .join(",");
            let at = match key_sets.iter().position(|(s, _)| *s == sig) {
                Some(at) => at,
                None => {
                    key_sets.push((sig, v));
                    key_sets.len() - 1
                }
            };
            key_set_of.push(at);
        }
        let cores = self.cores();
        let mut jobs = Vec::new();
        let mut queue = Vec::new();
        for (v, p) in views.iter().enumerate() {
            let view = p.view;
            let df = self.view_frame_with(view, &p.wanted, true).await?;
            let first_value = self.first_value_column(view);
            let value_idx: Vec<usize> = (first_value..first_value + p.wanted.len()).collect();
            let frame_schema = df.schema().as_arrow().clone();
            let value_schema: SchemaRef = Arc::new(frame_schema.project(&value_idx)?);
            let source = self.source_of(view).clone();
            let (mut state, logical) = df.into_parts();
            state.config_mut().options_mut().execution.target_partitions = cores * 4;
            let plan = state
                .create_physical_plan(&logical)
                .await
                .map_err(|e| source_error(&source, clean(e)))?;
            let streams = datafusion::physical_plan::execute_stream_partitioned(
                plan,
                Arc::new(datafusion::execution::TaskContext::from(&state)),
            )
            .map_err(|e| source_error(&source, clean(e)))?;
            queue.extend(
                streams
                    .into_iter()
                    .enumerate()
                    .map(|(part, stream)| (v, part, stream)),
            );
            let mut layout = self.layout(view);
            layout.chunk_rows = chunk_rows(&frame_schema);
            jobs.push(ViewJob {
                name: view.name.clone(),
                source,
                layout,
                value_idx,
                schema: value_schema,
                ttl: view.ttl.micros(),
                key_set: key_set_of[v],
            });
        }
        queue.reverse();
        let workers = cores.min(queue.len()).max(1);
        let queue = Arc::new(std::sync::Mutex::new(queue));
        let jobs = Arc::new(jobs);
        let (senders, receivers): (Vec<_>, Vec<_>) = key_sets
            .iter()
            .map(|_| tokio::sync::watch::channel::<Option<Arc<EntityKeys>>>(None))
            .unzip();
        let receivers = Arc::new(receivers);
        let mut tasks = Vec::new();
        for _ in 0..workers {
            let (progress, queue, jobs, receivers) = (
                Arc::clone(progress),
                Arc::clone(&queue),
                Arc::clone(&jobs),
                Arc::clone(&receivers),
            );
            tasks.push(tokio::spawn(async move {
                let mut joins: Vec<Option<PartitionedJoin>> = jobs.iter().map(|_| None).collect();
                loop {
                    let next = queue.lock().expect("the partition queue").pop();
                    let Some((v, part, stream)) = next else { break };
                    let job = &jobs[v];
                    let mut keys_rx = receivers[job.key_set].clone();
                    let ready = async move {
                        let keys = keys_rx.wait_for(Option::is_some).await.map_err(|_| {
                            Error::Internal("the entity index was never built".into())
                        })?;
                        Ok(Arc::clone(keys.as_ref().expect("waited for Some")))
                    };
                    let join = &mut joins[v];
                    probe(
                        stream,
                        &job.source,
                        job.layout,
                        &job.value_idx,
                        |rows| progress.rows_read(&job.name, rows),
                        ready,
                        |keys, c| {
                            join.get_or_insert_with(|| {
                                PartitionedJoin::new(
                                    Arc::clone(&keys.index),
                                    job.ttl,
                                    Arc::clone(&job.schema),
                                )
                            })
                            .push(c, part as u32)
                        },
                    )
                    .await?;
                }
                Ok::<_, Error>(joins)
            }));
        }
        // Meanwhile, the entity side: each key list encoded into its key space and indexed.
        let mut built = Vec::new();
        for ((_, v), sender) in key_sets.iter().zip(senders) {
            let (space, ids) = KeySpace::build(&views[*v].columns)?;
            let parts = self.key_partitions;
            let index = EntityIndex::from_ids(
                &ids,
                space.len(),
                entity_ts,
                space.dense_min().unwrap_or(0),
                |id| space.part_of(id, parts),
                parts,
            );
            let keys = Arc::new(EntityKeys {
                space,
                index: Arc::new(index),
            });
            // The tasks hold receivers until they end, so this cannot fail while one waits.
            let _ = sender.send(Some(Arc::clone(&keys)));
            built.push(keys);
        }
        let mut per_view: Vec<Vec<PartitionedJoin>> = views.iter().map(|_| Vec::new()).collect();
        for t in tasks {
            let joins = t
                .await
                .map_err(|e| Error::Internal(format!("probe task failed: {e}")))??;
            for (v, j) in joins.into_iter().enumerate() {
                per_view[v].extend(j);
            }
        }
        let mut out = Vec::with_capacity(views.len());
        for (v, mut joins) in per_view.into_iter().enumerate() {
            let job = &jobs[v];
            if joins.is_empty() {
                joins.push(PartitionedJoin::new(
                    Arc::clone(&built[job.key_set].index),
                    job.ttl,
                    Arc::clone(&job.schema),
                ));
            }
            out.push(PartitionedJoin::merge(joins).finish()?);
        }
        Ok(out)
    }

    /// The cluster's runner when `offline_engine:` names one (an error for a bad setting):
    /// what other crates' scans submit their own operators' plans to.
    pub fn cluster(&self) -> Result<Option<&Arc<dyn PlanRunner>>> {
        Ok(self.exchange()?.and_then(|(_, runner)| runner))
    }

    /// Where joins run when not in this process's own join: the cluster's runner and its
    /// partitions (`offline_engine: ballista`), or this process over
    /// [`with_exchange`](Self::with_exchange) partitions; `None` for the embedded engine.
    #[allow(clippy::type_complexity)]
    fn exchange(&self) -> Result<Option<(usize, Option<&Arc<dyn PlanRunner>>)>> {
        if let Some(runner) = &self.runner {
            let runner = runner
                .as_ref()
                .map_err(|e| Error::Output(format!("offline_engine: {e}")))?;
            return Ok(Some((runner.partitions(), Some(runner))));
        }
        Ok(self.exchange_partitions.map(|p| (p, None)))
    }

    /// One plain view's point-in-time join over `parts` hash partitions of the join keys (see
    /// [`run_exchanged`](Self::run_exchanged)).
    async fn join_view_exchanged(
        &self,
        p: &PlainView<'_>,
        entity_ts: &[Option<i64>],
        parts: usize,
        runner: Option<&Arc<dyn PlanRunner>>,
        progress: &Arc<dyn Progress>,
    ) -> Result<Vec<ArrayRef>> {
        let view = p.view;
        let df = self.view_frame_with(view, &p.wanted, true).await?;
        let layout = self.layout(view);
        let first_value = self.first_value_column(view);
        let op = crate::pit_exec::JoinOp::Latest {
            has_created: layout.has_created,
            ttl_micros: view.ttl.micros(),
        };
        self.run_exchanged(
            &view.name,
            self.source_of(view),
            df,
            &p.columns,
            entity_ts,
            layout.nkeys,
            (first_value..first_value + p.wanted.len()).collect(),
            op,
            parts,
            runner,
            progress,
        )
        .await
    }

    /// A join of the entity rows (`key_columns`, `entity_ts`) with a view's `frame` as a
    /// DataFusion plan over `parts` hash partitions of the join keys (see [`crate::pit_exec`]):
    /// the entity rows and the frame each repartitioned by key, a
    /// [`crate::pit_exec::PitJoinExec`] doing `op` per partition, the partitions run on the
    /// cluster's `runner` (or concurrently here) and their rows put back in entity order.
    #[allow(clippy::too_many_arguments)]
    async fn run_exchanged(
        &self,
        view_name: &str,
        source: &Source,
        frame: DataFrame,
        key_columns: &[ArrayRef],
        entity_ts: &[Option<i64>],
        nkeys: usize,
        value_idx: Vec<usize>,
        op: crate::pit_exec::JoinOp,
        parts: usize,
        runner: Option<&Arc<dyn PlanRunner>>,
        progress: &Arc<dyn Progress>,
    ) -> Result<Vec<ArrayRef>> {
        use datafusion::datasource::memory::MemorySourceConfig;
        use datafusion::physical_plan::repartition::RepartitionExec;
        use datafusion::physical_plan::{ExecutionPlan, Partitioning};

        use crate::pit_exec::{PartTagExec, PitJoinExec, PitSpec, entity_batch, key_exprs};
        let frame_schema = frame.schema().as_arrow().clone();
        // The entity keys as the frame has them, so that equal keys hash alike on both sides.
        let mut keys = Vec::with_capacity(nkeys);
        for (i, c) in key_columns.iter().enumerate() {
            let want = frame_schema.field(i).data_type();
            keys.push(if c.data_type() == want {
                Arc::clone(c)
            } else {
                cast(c, want)?
            });
        }
        let entities = entity_batch(&keys, entity_ts)?;
        let (state, features) = plan_frame(frame, Some(parts), source).await?;
        let entity_plan: Arc<dyn ExecutionPlan> =
            MemorySourceConfig::try_new_exec(&[vec![entities.clone()]], entities.schema(), None)?;
        let (ekeys, fkeys) = key_exprs(&entities.schema(), &frame_schema, nkeys);
        let entity_plan = Arc::new(RepartitionExec::try_new(
            entity_plan,
            Partitioning::Hash(ekeys, parts),
        )?);
        let features = Arc::new(RepartitionExec::try_new(
            Arc::new(PartTagExec::new(features)),
            Partitioning::Hash(fkeys, parts),
        )?);
        let join = Arc::new(PitJoinExec::try_new(
            entity_plan,
            features,
            PitSpec {
                source: source.clone(),
                nkeys,
                value_idx,
                op,
            },
        )?);
        if let Some(runner) = runner {
            // Every entity row exactly once, or no answer: a job that lost an executor can come
            // back with a partition twice (seen: 35,125 rows for 20,000).
            let n = entity_ts.len();
            let batches = run_on_cluster(runner, join, |batches| {
                let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                if rows == n {
                    Ok(())
                } else {
                    Err(format!(
                        "the job returned {rows} rows for {n} entity rows (an executor lost during the job can make Ballista return a partition twice or not at all)"
                    ))
                }
            })
            .await
            .map_err(|e| source_error(source, format!("on the cluster: {e}")))?;
            progress.rows_read(view_name, 0);
            return crate::pit_exec::in_entity_order(&batches, n);
        }
        let streams = datafusion::physical_plan::execute_stream_partitioned(
            join,
            Arc::new(datafusion::execution::TaskContext::from(&state)),
        )?;
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|s| {
                tokio::spawn(async move {
                    futures::TryStreamExt::try_collect::<Vec<RecordBatch>>(s).await
                })
            })
            .collect();
        let mut batches = Vec::new();
        for t in tasks {
            let got = t
                .await
                .map_err(|e| Error::Internal(format!("join partition failed: {e}")))?
                .map_err(|e| source_error(source, clean(e)))?;
            batches.extend(got);
        }
        progress.rows_read(view_name, 0);
        crate::pit_exec::in_entity_order(&batches, entity_ts.len())
    }

    /// The frame of one filter group of an aggregation view: keys, timestamp, one value column
    /// per aggregation (`NULL` for those without a column).
    async fn agg_frame(&self, view: &FeatureView, aggs: &[&Aggregation]) -> Result<DataFrame> {
        let source = self.source_of(view);
        let df = source_frame(&self.ctx, &self.root, source).await?;
        let schema = df.schema().clone();
        let (mut exprs, ts, _) = self.base_exprs(view, &schema)?;
        exprs.push(ts);
        for (i, a) in aggs.iter().enumerate() {
            let e = match (&a.column, &a.expr) {
                (Some(c), _) => {
                    if schema.as_arrow().field_with_name(c).is_err() {
                        return Err(source_error(
                            source,
                            format!(
                                "feature view '{}', aggregation '{}': column '{c}' not found",
                                view.name, a.name
                            ),
                        ));
                    }
                    ident(c)
                }
                (None, Some(sql)) => self.sql_expr(
                    &view.name,
                    &format!("aggregations.{}.expr", a.name),
                    sql,
                    &schema,
                )?,
                (None, None) => lit(ScalarValue::Null),
            };
            exprs.push(e.alias(format!("__quiver_v{i}")));
        }
        let df = match aggs[0].filter.as_deref() {
            Some(sql) => {
                let f = self.sql_expr(
                    &view.name,
                    &format!("aggregations.{}.filter", aggs[0].name),
                    sql,
                    &schema,
                )?;
                df.filter(f)?
            }
            None => df,
        };
        Ok(df.select(exprs)?)
    }

    /// The `wanted` aggregations of an aggregation view for each entity row (`keys`: its key
    /// columns as the declared key types), one scan per filter group. On a cluster (or with
    /// [`with_exchange`](Self::with_exchange)) each group's events and the entity rows are
    /// shuffled by key and each partition aggregates its share; otherwise the events are
    /// gathered here. Both call [`aggregate_events`].
    async fn aggregate_view(
        &self,
        view: &FeatureView,
        wanted: &[&str],
        keys: &[ArrayRef],
        entity_ts: &[Option<i64>],
        progress: &Arc<dyn Progress>,
    ) -> Result<Vec<ArrayRef>> {
        let nkeys = self.registry.view_join_keys(view).len();
        let source = self.source_of(view);
        let mut out: BTreeMap<&str, ArrayRef> = BTreeMap::new();
        let exchange = self.exchange()?;
        let encoded = match exchange {
            Some(_) => Vec::new(),
            None => encode_keys(keys)?,
        };
        for (_, aggs) in group_by_filter(view) {
            let aggs: Vec<&Aggregation> = aggs
                .into_iter()
                .filter(|a| wanted.contains(&a.name.as_str()))
                .collect();
            if aggs.is_empty() {
                continue;
            }
            let df = self.agg_frame(view, &aggs).await?;
            let specs: Vec<AggSpec> = aggs.iter().map(|a| AggSpec::of(a)).collect();
            let values: Vec<Option<usize>> = aggs
                .iter()
                .enumerate()
                .map(|(i, a)| (a.column.is_some() || a.expr.is_some()).then_some(nkeys + 1 + i))
                .collect();
            let arrays = match exchange {
                Some((parts, runner)) => {
                    let op = crate::pit_exec::JoinOp::Windows {
                        aggs: specs,
                        has_values: values.iter().map(Option::is_some).collect(),
                    };
                    let value_idx = (nkeys + 1..nkeys + 1 + aggs.len()).collect();
                    self.run_exchanged(
                        &view.name, source, df, keys, entity_ts, nkeys, value_idx, op, parts,
                        runner, progress,
                    )
                    .await?
                }
                None => {
                    // The scan's partitions in order (not as they finish), so that events at
                    // the same time are taken in the order of the source, run after run.
                    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
                    let (state, plan) = plan_frame(df, None, source).await?;
                    let parts = datafusion::physical_plan::collect_partitioned(
                        plan,
                        Arc::new(datafusion::execution::TaskContext::from(&state)),
                    )
                    .await
                    .map_err(|e| source_error(source, clean(e)))?;
                    let batches: Vec<RecordBatch> = parts.into_iter().flatten().collect();
                    let events = concat_batches(&schema, &batches)?;
                    progress.rows_read(&view.name, events.num_rows());
                    aggregate_events(&events, nkeys, &values, &specs, &encoded, entity_ts, source)?
                }
            };
            for (a, array) in aggs.iter().zip(arrays) {
                out.insert(a.name.as_str(), array);
            }
        }
        Ok(wanted.iter().map(|w| out[w].clone()).collect())
    }

    /// The latest value of each feature per entity as of `as_of`, considering only rows with an
    /// event timestamp in `(since, as_of]` (all rows up to `as_of` when `since` is `None`).
    /// Columns: the join keys, `event_timestamp`, then the view's features. For aggregation views
    /// every key with an event in the longest window is computed as of `as_of`.
    pub async fn latest(
        &self,
        view_name: &str,
        as_of: i64,
        since: Option<i64>,
    ) -> Result<RecordBatch> {
        let view = self.registry.views.get(view_name).ok_or_else(|| {
            quiver_core::Error::UnknownFeature {
                reference: format!("{view_name}:*"),
                message: format!(
                    "no feature view '{view_name}'{}",
                    quiver_core::registry::suggest(view_name, self.registry.views.keys())
                ),
            }
        })?;
        let join_keys = self.registry.view_join_keys(view);
        let nkeys = join_keys.len();
        let ts_lit = |v: i64| {
            lit(ScalarValue::TimestampMicrosecond(
                Some(v),
                Some("UTC".into()),
            ))
        };
        let outputs = view.outputs();
        let names: Vec<&str> = outputs.iter().map(|(n, _)| *n).collect();
        let (key_arrays, ts, values): (Vec<ArrayRef>, Vec<i64>, Vec<ArrayRef>) =
            if view.is_aggregation() {
                let max_window = view
                    .aggregations
                    .iter()
                    .map(|a| a.window.micros())
                    .max()
                    .unwrap_or(0);
                // Every entity whose aggregates may differ from the previous run's (as of
                // `since`): those with an event in (since - window, as_of]. Entities whose events
                // have all left the windows get their empty-window values (count 0, others
                // null), as `historical` gives them, instead of keeping a stale row.
                let lower = since.map_or(i64::MIN, |s| s.saturating_sub(max_window));
                let df = self.view_frame_keys_only(view).await?;
                let df = df.filter(
                    ident(TS)
                        .gt(ts_lit(lower))
                        .and(ident(TS).lt_eq(ts_lit(as_of))),
                )?;
                let df = df
                    .select((0..nkeys).map(|i| ident(key_col(i))).collect::<Vec<_>>())?
                    .distinct()?;
                let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
                let batches = self.collect_frame(df, self.source_of(view)).await?;
                let keys_batch = concat_batches(&schema, &batches)?;
                let n = keys_batch.num_rows();
                let values = self
                    .aggregate_view(
                        view,
                        &names,
                        keys_batch.columns(),
                        &vec![Some(as_of); n],
                        &no_progress(),
                    )
                    .await?;
                (keys_batch.columns().to_vec(), vec![as_of; n], values)
            } else {
                let df = self.view_frame(view, &names).await?;
                let mut cond = ident(TS).lt_eq(ts_lit(as_of));
                if let Some(s) = since {
                    cond = cond.and(ident(TS).gt(ts_lit(s)));
                }
                let df = df.filter(cond)?;
                let first_value = self.first_value_column(view);
                let keep: Vec<usize> = (0..nkeys)
                    .chain(first_value..first_value + names.len())
                    .collect();
                let source = self.source_of(view);
                let layout = self.layout(view);
                let (mut arrays, ts) = match self.exchange()? {
                    Some((parts, runner)) => {
                        self.latest_exchanged(df, source, layout, keep, parts, runner)
                            .await?
                    }
                    None => {
                        let stream = df
                            .execute_stream()
                            .await
                            .map_err(|e| source_error(source, clean(e)))?;
                        latest_per_key(stream, source, layout, &keep).await?
                    }
                };
                let values = arrays.split_off(nkeys);
                (arrays, ts, values)
            };
        let mut fields: Vec<Field> = join_keys
            .iter()
            .map(|k| Field::new(&k.name, arrow_type(k.value_type), true))
            .collect();
        fields.push(Field::new("event_timestamp", timestamp_type(), false));
        fields.extend(
            outputs
                .iter()
                .map(|(n, t)| Field::new(*n, arrow_type(*t), true)),
        );
        let mut columns = key_arrays;
        columns.push(Arc::new(
            TimestampMicrosecondArray::from(ts).with_timezone("UTC"),
        ));
        columns.extend(values);
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }

    /// All of a frame's rows, in no particular order: planned and run on the cluster when
    /// there is one (a `DISTINCT` of keys over a whole source, say), else here.
    async fn collect_frame(&self, frame: DataFrame, source: &Source) -> Result<Vec<RecordBatch>> {
        let Some((parts, Some(runner))) = self.exchange()? else {
            return frame
                .collect()
                .await
                .map_err(|e| source_error(source, clean(e)));
        };
        let (_, plan) = plan_frame(frame, Some(parts), source).await?;
        run_on_cluster(runner, plan, |_| Ok(()))
            .await
            .map_err(|e| source_error(source, format!("on the cluster: {e}")))
    }

    /// The latest row per key of a plain view's (filtered) frame over `parts` hash partitions of
    /// the keys, on the cluster's `runner` or here: each partition's keys are its own, so the
    /// partitions' rows together are every key once (checked: a partition that came back twice
    /// from a cluster that lost an executor is an error, not duplicate rows).
    async fn latest_exchanged(
        &self,
        frame: DataFrame,
        source: &Source,
        layout: Layout,
        keep: Vec<usize>,
        parts: usize,
        runner: Option<&Arc<dyn PlanRunner>>,
    ) -> Result<(Vec<ArrayRef>, Vec<i64>)> {
        use datafusion::physical_plan::repartition::RepartitionExec;
        use datafusion::physical_plan::{ExecutionPlan, Partitioning};

        use crate::pit_exec::{LatestExec, LatestSpec, key_exprs};
        let frame_schema = frame.schema().as_arrow().clone();
        let (state, rows) = plan_frame(frame, Some(parts), source).await?;
        let (_, keys) = key_exprs(&frame_schema, &frame_schema, layout.nkeys);
        let rows = Arc::new(RepartitionExec::try_new(
            rows,
            Partitioning::Hash(keys, parts),
        )?);
        let plan: Arc<dyn ExecutionPlan> = Arc::new(LatestExec::try_new(
            rows,
            LatestSpec {
                source: source.clone(),
                nkeys: layout.nkeys,
                has_created: layout.has_created,
                keep,
            },
        )?);
        let nkeys = layout.nkeys;
        match runner {
            Some(runner) => {
                // Each key once, or the job runs again (see `run_on_cluster`).
                let mut rows = None;
                run_on_cluster(runner, plan, |batches| {
                    rows = Some(
                        crate::pit_exec::latest_rows(batches, nkeys).map_err(|e| e.to_string())?,
                    );
                    Ok(())
                })
                .await
                .map_err(|e| source_error(source, format!("on the cluster: {e}")))?;
                Ok(rows.expect("set when the job was whole"))
            }
            None => {
                let batches = datafusion::physical_plan::collect(
                    plan,
                    Arc::new(datafusion::execution::TaskContext::from(&state)),
                )
                .await
                .map_err(|e| source_error(source, clean(e)))?;
                crate::pit_exec::latest_rows(&batches, nkeys)
            }
        }
    }

    /// [`latest`](Self::latest) as an Arrow stream of batches of at most `batch_rows` rows: what
    /// the materializer reads.
    pub async fn latest_stream(
        &self,
        view: &str,
        as_of: i64,
        since: Option<i64>,
        batch_rows: usize,
    ) -> Result<SendableRecordBatchStream> {
        let all = self.latest(view, as_of, since).await?;
        let step = batch_rows.max(1);
        let batches: Vec<_> = (0..all.num_rows())
            .step_by(step)
            .map(|o| Ok(all.slice(o, step.min(all.num_rows() - o))))
            .collect();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            all.schema(),
            futures::stream::iter(batches),
        )))
    }

    /// The first feature column of a prepared view frame (after keys, time, created).
    fn first_value_column(&self, view: &FeatureView) -> usize {
        let nkeys = self.registry.view_join_keys(view).len();
        nkeys + 1 + usize::from(self.source_of(view).created_timestamp_field.is_some())
    }

    /// Where keys and timestamps sit in a prepared view frame.
    fn layout(&self, view: &FeatureView) -> Layout {
        Layout {
            nkeys: self.registry.view_join_keys(view).len(),
            has_created: self.source_of(view).created_timestamp_field.is_some(),
            chunk_rows: PROBE_ROWS,
        }
    }

    /// Entity rows from the views' own sources: the join keys (by name, cast to their declared
    /// types) and event time (`event_timestamp`) of every source row of `views` whose time falls
    /// in `[start, end)`, without duplicates, ordered by time then keys. Every view must have the
    /// same join keys (the rows must hold every key a view needs); request-time views have no
    /// source and are refused.
    pub async fn entity_rows_between(
        &self,
        views: &[&str],
        start: i64,
        end: i64,
    ) -> Result<RecordBatch> {
        let mut union: Option<DataFrame> = None;
        let mut names: Option<Vec<String>> = None;
        for &name in views {
            let view =
                self.registry.views.get(name).ok_or_else(|| {
                    Error::Internal(format!("entity_rows_between: no view '{name}'"))
                })?;
            if view.is_request() {
                return Err(Error::Internal(format!(
                    "entity_rows_between: '{name}' is a request-time view (no source rows)"
                )));
            }
            let keys: Vec<String> = self
                .registry
                .view_join_keys(view)
                .into_iter()
                .map(|k| k.name)
                .collect();
            match &names {
                Some(n) if *n != keys => {
                    return Err(Error::Output(format!(
                        "views '{}' and '{name}' have different join keys ({} vs {}): entity rows taken from their sources would lack a key; give the entity rows yourself",
                        views[0],
                        n.join(", "),
                        keys.join(", ")
                    )));
                }
                _ => names = Some(keys.clone()),
            }
            let ts = |v: i64| {
                lit(ScalarValue::TimestampMicrosecond(
                    Some(v),
                    Some("UTC".into()),
                ))
            };
            let mut exprs: Vec<Expr> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| ident(key_col(i)).alias(k.as_str()))
                .collect();
            exprs.push(ident(TS).alias("event_timestamp"));
            let df = self
                .view_frame_keys_only(view)
                .await?
                .filter(ident(TS).gt_eq(ts(start)).and(ident(TS).lt(ts(end))))?
                .select(exprs)?;
            union = Some(match union {
                None => df,
                Some(u) => u.union(df)?,
            });
        }
        let (Some(frame), Some(keys)) = (union, names) else {
            return Err(Error::Internal("entity_rows_between: no views".into()));
        };
        // The distinct rows on the cluster when there is one, ordered here (a cluster returns
        // its partitions in any order).
        let frame = frame.distinct()?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let first = self.source_of(&self.registry.views[views[0]]).clone();
        let batches = self.collect_frame(frame, &first).await?;
        let all = concat_batches(&schema, &batches)?;
        use datafusion::arrow::compute::{SortColumn, SortOptions, lexsort_to_indices, take};
        let by = |name: &str| -> Result<SortColumn> {
            Ok(SortColumn {
                values: Arc::clone(all.column(schema.index_of(name)?)),
                options: Some(SortOptions {
                    descending: false,
                    nulls_first: false,
                }),
            })
        };
        let mut order = vec![by("event_timestamp")?];
        for k in &keys {
            order.push(by(k)?);
        }
        let idx = lexsort_to_indices(&order, None)?;
        let columns = all
            .columns()
            .iter()
            .map(|c| take(c, &idx, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    /// Keys and timestamp of a view's source rows (for aggregation views' key sets).
    async fn view_frame_keys_only(&self, view: &FeatureView) -> Result<DataFrame> {
        let df = source_frame(&self.ctx, &self.root, self.source_of(view)).await?;
        let (mut exprs, ts, _) = self.base_exprs(view, df.schema())?;
        exprs.push(ts);
        Ok(df.select(exprs)?)
    }
}

/// The runner of `offline_engine:`; `None` for the embedded engine.
fn cluster_runner(
    raw: &quiver_core::yaml::RawOfflineEngine,
) -> Option<std::result::Result<Arc<dyn PlanRunner>, String>> {
    match raw.kind.as_deref() {
        None | Some("embedded") => None,
        Some("ballista") => Some(match (&raw.url, CLUSTER_CONNECTOR.get()) {
            (None, _) => Err("type ballista needs url: df://HOST:50050".into()),
            (Some(_), None) => {
                Err("this program cannot reach a Ballista cluster: use the quiver binary".into())
            }
            (Some(url), Some(connect)) => connect(url, raw.partitions.unwrap_or(8)),
        }),
        Some(other) => Some(Err(format!(
            "type '{other}': use embedded (the default) or ballista"
        ))),
    }
}

/// Where keys and timestamps sit in a prepared view frame: `nkeys` key columns, the event
/// timestamp, the created timestamp if any, then values.
#[derive(Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) nkeys: usize,
    pub(crate) has_created: bool,
    /// Rows probed at once (see [`chunk_rows`]).
    pub(crate) chunk_rows: usize,
}

/// A plain view of a retrieval: the features wanted, its join keys and the entity rows' key
/// columns.
struct PlainView<'a> {
    view: &'a FeatureView,
    wanted: Vec<&'a str>,
    keys: Vec<JoinKey>,
    columns: Vec<ArrayRef>,
}

/// What a join worker needs of a view (see [`OfflineEngine::join_views`]).
struct ViewJob {
    name: String,
    source: Source,
    layout: Layout,
    value_idx: Vec<usize>,
    schema: SchemaRef,
    ttl: i64,
    key_set: usize,
}

/// The entity side of a retrieval for one list of join keys: the keys numbered and the rows
/// indexed by them, shared by every view with those keys.
pub(crate) struct EntityKeys {
    pub(crate) space: KeySpace,
    pub(crate) index: Arc<EntityIndex>,
}

/// How [`probe`] encodes the key columns of a feature batch, given what it waited for.
pub(crate) trait EncodeKeys {
    fn batch_keys<'a>(&self, columns: &'a [ArrayRef]) -> Result<BatchKeys<'a>>;
}

/// Without an entity side (latest per key): one [`Key`] per row.
impl EncodeKeys for () {
    fn batch_keys<'a>(&self, columns: &'a [ArrayRef]) -> Result<BatchKeys<'a>> {
        BatchKeys::new(columns)
    }
}

impl EncodeKeys for Arc<EntityKeys> {
    /// The keys of a feature batch, in this key space: a dense integer key column is read
    /// as it is, any other key is looked up into ids.
    fn batch_keys<'a>(&self, columns: &'a [ArrayRef]) -> Result<BatchKeys<'a>> {
        if self.space.dense_min().is_some()
            && let [c] = columns
            && c.data_type() == &DataType::Int64
        {
            return Ok(BatchKeys::Int(c.as_primitive::<Int64Type>()));
        }
        let mut ids = Vec::new();
        self.space.lookup(columns, &mut ids)?;
        Ok(BatchKeys::Ids(ids))
    }
}

/// Rows probed at once for a frame of this schema: [`PROBE_ROWS`], fewer for wide rows, so that
/// a chunk stays near 64 MiB (a 200-feature view would otherwise hold 1.6 GB per worker), but
/// never under one scan batch.
pub(crate) fn chunk_rows(schema: &Schema) -> usize {
    let row_bytes: usize = schema
        .fields()
        .iter()
        .map(|f| f.data_type().primitive_width().unwrap_or(16))
        .sum();
    ((64 << 20) / row_bytes.max(1)).clamp(65_536, PROBE_ROWS)
}

/// Rows probed at once: enough that a probe's accesses to a 1M-row entity index are nearly
/// sequential (each chunk walks the whole index once), small enough to stay under 100 MB per
/// scan partition for a handful of numeric columns (peak RSS at 10M x 1M: 790 MiB with 1M rows,
/// 580 MiB with 512k rows).
pub(crate) const PROBE_ROWS: usize = 1 << 20;

/// Hands `batches` of a prepared view frame to `sink` as one chunk of candidates: keys
/// encoded by `ready`, the values the columns `value_idx`.
pub(crate) fn with_candidates<T: EncodeKeys>(
    ready: &T,
    batches: &[RecordBatch],
    layout: Layout,
    value_idx: &[usize],
    sink: impl FnOnce(&[Candidates<'_>]) -> Result<()>,
) -> Result<()> {
    let n = layout.nkeys;
    let keys = batches
        .iter()
        .map(|b| ready.batch_keys(&b.columns()[..n]))
        .collect::<Result<Vec<_>>>()?;
    let values = batches
        .iter()
        .map(|b| b.project(value_idx))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let chunk: Vec<Candidates<'_>> = batches
        .iter()
        .zip(&keys)
        .zip(&values)
        .map(|((batch, keys), values)| Candidates {
            keys,
            ts: batch.column(n).as_primitive::<TimestampMicrosecondType>(),
            created: layout.has_created.then(|| {
                batch
                    .column(n + 1)
                    .as_primitive::<TimestampMicrosecondType>()
            }),
            values,
        })
        .collect();
    sink(&chunk)
}

/// Reads one stream of a prepared view frame, handing its batches to `sink` in chunks of about
/// `layout.chunk_rows` rows, as candidates whose keys are `encode`d and whose values are the
/// columns `value_idx`, and telling `rows_read` how many rows each chunk had. `sink` is first
/// called once `ready` is.
pub(crate) async fn probe<T: EncodeKeys>(
    mut stream: SendableRecordBatchStream,
    source: &Source,
    layout: Layout,
    value_idx: &[usize],
    rows_read: impl Fn(usize),
    ready: impl Future<Output = Result<T>>,
    mut sink: impl FnMut(&T, &[Candidates<'_>]) -> Result<()>,
) -> Result<()> {
    let mut flush = |ready: &T, batches: &[RecordBatch]| -> Result<()> {
        with_candidates(ready, batches, layout, value_idx, |chunk| {
            sink(ready, chunk)
        })?;
        rows_read(batches.iter().map(RecordBatch::num_rows).sum());
        Ok(())
    };
    // Probing many rows at once lets the join walk its index in memory order (see pit_join).
    // The scan's batches are probed where they are: only the rows a join keeps are copied.
    // The first chunk is read before `ready` is awaited, so reading overlaps its preparation.
    let (mut pending, mut pending_rows) = (Vec::new(), 0usize);
    let mut ready = std::pin::pin!(ready);
    let mut value: Option<T> = None;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| source_error(source, clean(e)))?;
        pending_rows += batch.num_rows();
        pending.push(batch);
        if pending_rows >= layout.chunk_rows {
            if value.is_none() {
                value = Some(ready.as_mut().await?);
            }
            flush(value.as_ref().expect("set above"), &pending)?;
            pending.clear();
            pending_rows = 0;
        }
    }
    if pending_rows > 0 {
        if value.is_none() {
            value = Some(ready.as_mut().await?);
        }
        flush(value.as_ref().expect("set above"), &pending)?;
    }
    Ok(())
}

/// The latest row per key of a prepared frame's stream (`keep`: the key and value columns
/// kept) and each chosen row's event time, keys in first-seen order: what `latest` computes for
/// a plain view, here or in a cluster's partition ([`crate::pit_exec::LatestExec`]).
pub(crate) async fn latest_per_key(
    stream: SendableRecordBatchStream,
    source: &Source,
    layout: Layout,
    keep: &[usize],
) -> Result<(Vec<ArrayRef>, Vec<i64>)> {
    let schema = Arc::new(stream.schema().project(keep)?);
    let mut latest = LatestPerKey::new(schema);
    probe(
        stream,
        source,
        layout,
        keep,
        |_| {},
        std::future::ready(Ok(())),
        |_, c| latest.push(c),
    )
    .await?;
    latest.finish()
}

/// `a, b, c`: the column names of a schema, for error messages.
fn column_list(fields: &datafusion::arrow::datatypes::Fields) -> String {
    fields
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `frame`'s physical plan (over `parts` partitions, else the session's) and the session it
/// was planned in; planning errors name `source`. Its partitions are the scan's (contiguous
/// ranges of the source, in order), with no round-robin repartition dealing batches out under
/// a filter: partition by partition, the rows come in the source's order, which is how events
/// at the same time are ordered ([`crate::window_agg`]) and exact ties resolved.
async fn plan_frame(
    frame: DataFrame,
    parts: Option<usize>,
    source: &Source,
) -> Result<(
    datafusion::execution::SessionState,
    Arc<dyn datafusion::physical_plan::ExecutionPlan>,
)> {
    let (mut state, logical) = frame.into_parts();
    let options = state.config_mut().options_mut();
    if let Some(parts) = parts {
        options.execution.target_partitions = parts;
    }
    options.optimizer.enable_round_robin_repartition = false;
    let plan = state
        .create_physical_plan(&logical)
        .await
        .map_err(|e| source_error(source, clean(e)))?;
    Ok((state, plan))
}

/// A view's aggregations grouped by filter (one scan per distinct filter).
fn group_by_filter(view: &FeatureView) -> Vec<(Option<String>, Vec<&Aggregation>)> {
    let mut groups: Vec<(Option<String>, Vec<&Aggregation>)> = Vec::new();
    for a in &view.aggregations {
        match groups.iter_mut().find(|(f, _)| *f == a.filter) {
            Some((_, v)) => v.push(a),
            None => groups.push((a.filter.clone(), vec![a])),
        }
    }
    groups
}
