//! The prediction log: a sampled record of what `/predict` served, written as Parquet for drift
//! monitoring and retraining.
//!
//! Each logged row has the time, the model, version and arm (`champion`, `challenger` for canary
//! traffic, `shadow` for a shadow challenger's unreturned score), the entity key, every model
//! input as the model saw it (numbers; text for categorical inputs) and the scores. Files go to
//! `DIR/model=NAME/version=N/date=YYYY-MM-DD/part-<ms>-<seq>.parquet` (hive layout, so a
//! Parquet source with `path: .quiver/prediction_log/model=churn` reads a model's log back), one
//! schema per version.
//!
//! Requests never wait on the log: rows go through a bounded channel to a writer task, which
//! buffers them per model version and writes a file every `flush_rows` rows or
//! `flush_interval_ms`, and on shutdown. When the channel is full, rows are dropped and counted
//! (`quiver_prediction_log_dropped_total`), never queued without bound. Sampling is
//! deterministic: with rate r, request i is logged when floor((i+1)r) > floor(ir), so exactly
//! the configured share is logged.
//!
//! The writer is generic ([`ParquetLog`] over [`ParquetRows`]): `/recommend`'s A/B exposures
//! ([`crate::exposure_log`]) go through the same buffering, flushing and file writing, under
//! their own folder and counters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use datafusion::arrow::array::{
    Array, ArrayRef, Float64Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use quiver_core::yaml::RawPredictionLog;
use serde_json::Value as Json;
use tokio::sync::{mpsc, oneshot};

/// Settings, from `server: {prediction_log: ...}` in `quiver.yaml`.
#[derive(Debug, Clone)]
pub struct PredictionLogConfig {
    /// Share of /predict requests logged, 0 to 1 (0 turns the log off).
    pub sample_rate: f64,
    /// Folder of the log: a local path or an `s3://` URL.
    pub dir: PathBuf,
    /// How an `s3://` folder is reached (`storage:` in `quiver.yaml`).
    pub storage: quiver_core::yaml::RawStorage,
    /// Rows per file at most.
    pub flush_rows: usize,
    /// Longest a row waits in memory.
    pub flush_interval: Duration,
}

impl PredictionLogConfig {
    /// From settings; `root` resolves a relative `path`. Default: every request, under
    /// `.quiver/prediction_log`, files of up to 100,000 rows at least every 10 s.
    pub fn from_settings(raw: Option<&RawPredictionLog>, root: &Path) -> PredictionLogConfig {
        let raw = raw.cloned().unwrap_or_default();
        PredictionLogConfig {
            sample_rate: raw.sample_rate.unwrap_or(1.0).clamp(0.0, 1.0),
            dir: quiver_pipeline::prediction_log::dir(Some(&raw), root),
            flush_rows: raw.flush_rows.unwrap_or(100_000).max(1),
            flush_interval: Duration::from_millis(raw.flush_interval_ms.unwrap_or(10_000).max(10)),
            storage: Default::default(),
        }
    }
}

pub use quiver_pipeline::prediction_log::Cell;

/// The columns shared by a model version's rows.
#[derive(Debug)]
pub struct VersionShape {
    /// Model name.
    pub model: String,
    /// Version.
    pub version: i64,
    /// Input column names (`view__feature`).
    pub inputs: Vec<String>,
    /// Which inputs are text.
    pub text: Vec<bool>,
    /// Class names of a multiclass model (empty otherwise).
    pub classes: Vec<String>,
}

/// One logged prediction.
#[derive(Debug)]
pub struct Row {
    /// Which model version.
    pub shape: Arc<VersionShape>,
    /// Microseconds since the epoch.
    pub ts_us: i64,
    /// `champion`, `challenger` or `shadow`.
    pub arm: &'static str,
    /// Join-key names and values.
    pub entity: Vec<(String, Json)>,
    /// Inputs, in the shape's order.
    pub cells: Vec<Cell>,
    /// The model's outputs (one, or one per class).
    pub scores: Vec<f64>,
}

/// Rows a [`ParquetLog`] writes: the prediction log's [`Row`]s, and the A/B exposures of
/// `/recommend` ([`crate::exposure_log`]).
pub trait ParquetRows: Send + Sized + 'static {
    /// The folder under the log's that the row's file goes to (`model=churn/version=3`); rows
    /// of one folder share a schema and are buffered and written together.
    fn folder(&self) -> String;
    /// Microseconds since the epoch: a file goes under `date=` of its first row's day.
    fn ts_us(&self) -> i64;
    /// Rows of one folder as one batch.
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, datafusion::arrow::error::ArrowError>;
}

/// The names one log reports under.
#[derive(Debug)]
pub struct LogCounters {
    /// Rows written (counter).
    pub written: &'static str,
    /// Rows dropped: channel full or write failed (counter).
    pub dropped: &'static str,
    /// What the log is, for messages.
    pub what: &'static str,
}

/// The prediction log's counters.
pub const PREDICTION_COUNTERS: LogCounters = LogCounters {
    written: "quiver_prediction_log_rows_total",
    dropped: "quiver_prediction_log_dropped_total",
    what: "prediction log",
};

impl ParquetRows for Row {
    fn folder(&self) -> String {
        format!("model={}/version={}", self.shape.model, self.shape.version)
    }

    fn ts_us(&self) -> i64 {
        self.ts_us
    }

    fn to_batch(rows: &[Row]) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
        to_batch(rows)
    }
}

enum Message<R> {
    Rows(Vec<R>),
    Flush(oneshot::Sender<()>),
}

/// A buffered, crash-safe Parquet log (see the module's documentation): requests hand it rows,
/// a writer task writes them.
pub struct ParquetLog<R: ParquetRows> {
    config: PredictionLogConfig,
    tx: Option<mpsc::Sender<Message<R>>>,
    requests: AtomicU64,
    counters: &'static LogCounters,
}

/// The handle /predict logs through.
pub type PredictionLog = ParquetLog<Row>;

/// Requests' worth of rows the channel holds before dropping.
const CHANNEL_REQUESTS: usize = 4096;

impl ParquetLog<Row> {
    /// Starts the prediction log's writer task (none when the rate is 0). Needs a Tokio
    /// runtime.
    pub fn start(config: PredictionLogConfig) -> PredictionLog {
        ParquetLog::start_with(config, &PREDICTION_COUNTERS)
    }
}

impl<R: ParquetRows> ParquetLog<R> {
    /// Starts a writer task for `R` rows (none when the rate is 0), counted under `counters`.
    /// Needs a Tokio runtime.
    pub fn start_with(config: PredictionLogConfig, counters: &'static LogCounters) -> Self {
        let tx = (config.sample_rate > 0.0).then(|| {
            let (tx, rx) = mpsc::channel(CHANNEL_REQUESTS);
            tokio::spawn(writer(config.clone(), counters, rx));
            tx
        });
        ParquetLog {
            config,
            tx,
            requests: AtomicU64::new(0),
            counters,
        }
    }

    /// Whether this request is logged (deterministic sampling at the configured rate).
    pub fn sample(&self) -> bool {
        if self.tx.is_none() {
            return false;
        }
        let r = self.config.sample_rate;
        if r >= 1.0 {
            return true;
        }
        let i = self.requests.fetch_add(1, Ordering::Relaxed) as f64;
        ((i + 1.0) * r).floor() > (i * r).floor()
    }

    /// Hands a request's rows to the writer; drops them (counted) when it is behind.
    pub fn log(&self, rows: Vec<R>) {
        let Some(tx) = &self.tx else { return };
        let n = rows.len() as u64;
        if tx.try_send(Message::Rows(rows)).is_err() {
            metrics::counter!(self.counters.dropped).increment(n);
        }
    }

    /// Writes every buffered row now and waits for it (shutdown, tests).
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// The log's folder.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }
}

async fn writer<R: ParquetRows>(
    config: PredictionLogConfig,
    counters: &'static LogCounters,
    mut rx: mpsc::Receiver<Message<R>>,
) {
    let mut buffers: BTreeMap<String, Vec<R>> = BTreeMap::new();
    let mut tick = tokio::time::interval(config.flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: u64 = 0;
    let files = file_writer(counters.what);
    // Local folders and object storage alike, through one object store (a local `put` writes a
    // temporary file and renames it; an object appears only once uploaded).
    let store =
        match quiver_offline::remote::store_at(&config.dir.to_string_lossy(), &config.storage) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("quiver serve: {}: {e}", counters.what);
                None
            }
        };
    let runtime = tokio::runtime::Handle::current();
    loop {
        let flush_all = tokio::select! {
            m = rx.recv() => match m {
                Some(Message::Rows(rows)) => {
                    for r in rows {
                        buffers.entry(r.folder()).or_default().push(r);
                    }
                    None
                }
                Some(Message::Flush(done)) => Some(Some(done)),
                None => Some(None),
            },
            _ = tick.tick() => Some(None),
        };
        let closed = rx.is_closed() && rx.is_empty();
        let full: Vec<String> = buffers
            .iter()
            .filter(|(_, rows)| flush_all.is_some() || rows.len() >= config.flush_rows)
            .map(|(k, _)| k.clone())
            .collect();
        for key in full {
            let rows = buffers.remove(&key).unwrap_or_default();
            if rows.is_empty() {
                continue;
            }
            seq += 1;
            let n = rows.len() as u64;
            let what = counters.what;
            let Some(store) = store.clone() else {
                metrics::counter!(counters.dropped).increment(n);
                continue;
            };
            let place = config.dir.display().to_string();
            let runtime = runtime.clone();
            let job: FileJob = Box::new(move || {
                match write_file(&runtime, store.as_ref(), &place, &key, &rows, seq) {
                    Ok(()) => metrics::counter!(counters.written).increment(n),
                    Err(e) => {
                        metrics::counter!(counters.dropped).increment(n);
                        eprintln!("quiver serve: {what}: {e}");
                    }
                }
            });
            if !submit(&files, job).await {
                metrics::counter!(counters.dropped).increment(n);
                eprintln!("quiver serve: {what} file writer stopped");
            }
        }
        if let Some(Some(done)) = flush_all {
            drain(&files).await;
            let _ = done.send(());
        }
        if closed {
            drain(&files).await;
            return;
        }
    }
}

/// Hands a job to the file writer thread; waits (off the async threads) while its queue is
/// full, so that a writer behind holds up this task and requests' rows are dropped (counted) at
/// the channel instead of piling up. `false` when the thread is gone.
async fn submit(files: &std::sync::mpsc::SyncSender<FileJob>, job: FileJob) -> bool {
    let files = files.clone();
    tokio::task::spawn_blocking(move || files.send(job).is_ok())
        .await
        .unwrap_or(false)
}

/// Waits until the file writer thread has done every job handed to it before.
async fn drain(files: &std::sync::mpsc::SyncSender<FileJob>) {
    let (done, wait) = oneshot::channel();
    if submit(
        files,
        Box::new(move || {
            let _ = done.send(());
        }),
    )
    .await
    {
        let _ = wait.await;
    }
}

/// A file to encode and write, on the [`file_writer`] thread.
type FileJob = Box<dyn FnOnce() + Send>;

/// Nice value of the file writer thread: requests (nice 0) get about ten times its share of a
/// busy core, so encoding a file never holds a core a request is waiting for (the prediction
/// log's encoding was /predict's p99 with Redis: 5.2 ms with the log, 2.5 ms without, issue 22),
/// while the writer still keeps up (it only yields, it is not starved as `SCHED_IDLE` would be).
const WRITER_NICE: i32 = 10;

/// Files handed to the writer thread and not yet written, at most (the writer yields the CPU to
/// requests, so under load it lags and catches up after; the writer task goes on taking rows).
const FILES_QUEUED: usize = 4;

/// Starts the thread that encodes and writes a log's files, at a lower priority than the
/// request threads (nice [`WRITER_NICE`]; Linux keeps a nice value per thread). It ends when the
/// returned sender is dropped (the writer task ends). Files wait in a queue of
/// [`FILES_QUEUED`].
fn file_writer(what: &str) -> std::sync::mpsc::SyncSender<FileJob> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<FileJob>(FILES_QUEUED);
    let spawned = std::thread::Builder::new()
        .name(format!("quiver-{}-writer", what.replace(' ', "-")))
        .spawn(move || {
            lower_priority();
            for job in rx {
                job();
            }
        });
    if let Err(e) = spawned {
        // The sender's receiver is gone with the closure: every write reports the writer
        // stopped (counted as dropped).
        eprintln!("quiver serve: cannot start the {what} file writer: {e}");
    }
    tx
}

/// Lowers the calling thread to nice [`WRITER_NICE`]; on failure it keeps its priority (the
/// log is written all the same).
fn lower_priority() {
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    // The crate maps a cross-platform priority p in 0..=99 onto niceness
    // ⌊39·(1 − p/99)⌋ − 20, so nice 10 is p = 22 (a test checks the thread's nice value).
    let p = (99.0 * (1.0 - (WRITER_NICE + 20) as f32 / 39.0)) as u8;
    if let Ok(v) = ThreadPriorityValue::try_from(p) {
        let _ = thread_priority::set_current_thread_priority(ThreadPriority::Crossplatform(v));
    }
}

/// Writes one folder's rows as one Parquet file under `key/date=YYYY-MM-DD/` in the log's
/// store (`place` names it in errors). Readers never see half a file: a local file is written
/// under a temporary name and renamed, an object appears once uploaded. A failed upload is
/// tried three more times (0.5, 1, 2 s apart) before its rows are dropped (counted).
fn write_file<R: ParquetRows>(
    runtime: &tokio::runtime::Handle,
    store: &dyn object_store::ObjectStore,
    place: &str,
    key: &str,
    rows: &[R],
    seq: u64,
) -> Result<(), String> {
    use object_store::ObjectStoreExt;
    let date = chrono::DateTime::from_timestamp_micros(rows[0].ts_us())
        .unwrap_or_default()
        .format("%Y-%m-%d");
    let batch = R::to_batch(rows).map_err(|e| format!("building a batch: {e}"))?;
    let name = format!(
        "{key}/date={date}/part-{}-{seq:06}.parquet",
        chrono::Utc::now().timestamp_millis()
    );
    let mut bytes = Vec::new();
    let mut w =
        ArrowWriter::try_new(&mut bytes, batch.schema(), None).map_err(|e| e.to_string())?;
    w.write(&batch).map_err(|e| e.to_string())?;
    w.close().map_err(|e| e.to_string())?;
    let payload = object_store::PutPayload::from(bytes);
    let path = object_store::path::Path::from(name.as_str());
    let mut wait = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        match runtime.block_on(store.put(&path, payload.clone())) {
            Ok(_) => return Ok(()),
            Err(e) if attempt >= 4 => return Err(format!("{place}/{name}: {e}")),
            Err(_) => {
                std::thread::sleep(wait);
                wait *= 2;
                attempt += 1;
            }
        }
    }
}

fn to_batch(rows: &[Row]) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let shape = &rows[0].shape;
    let mut fields = vec![
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("arm", DataType::Utf8, false),
    ];
    let mut columns: Vec<ArrayRef> = Vec::new();
    let mut ts = TimestampMicrosecondBuilder::with_capacity(rows.len()).with_timezone("UTC");
    let mut model = StringBuilder::new();
    let mut version = Int64Builder::new();
    let mut arm = StringBuilder::new();
    for r in rows {
        ts.append_value(r.ts_us);
        model.append_value(&shape.model);
        version.append_value(shape.version);
        arm.append_value(r.arm);
    }
    columns.push(Arc::new(ts.finish()));
    columns.push(Arc::new(model.finish()));
    columns.push(Arc::new(version.finish()));
    columns.push(Arc::new(arm.finish()));

    // Entity keys: the union of names in first-seen order; integers stay Int64, anything else
    // is text (strings as themselves, other JSON as its text).
    let mut keys: Vec<&str> = Vec::new();
    for r in rows {
        for (k, _) in &r.entity {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
    }
    for key in keys {
        let values: Vec<Option<&Json>> = rows
            .iter()
            .map(|r| r.entity.iter().find(|(k, _)| k == key).map(|(_, v)| v))
            .collect();
        let integral = values.iter().flatten().all(|v| v.is_i64());
        if integral {
            let mut b = Int64Builder::with_capacity(rows.len());
            for v in &values {
                b.append_option(v.and_then(Json::as_i64));
            }
            fields.push(Field::new(key, DataType::Int64, true));
            columns.push(Arc::new(b.finish()));
        } else {
            let mut b = StringBuilder::new();
            for v in &values {
                b.append_option(v.map(|v| match v {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                }));
            }
            fields.push(Field::new(key, DataType::Utf8, true));
            columns.push(Arc::new(b.finish()));
        }
    }
    for (j, name) in shape.inputs.iter().enumerate() {
        if shape.text[j] {
            let mut b = StringBuilder::new();
            for r in rows {
                match &r.cells[j] {
                    Cell::Text(t) => b.append_option(t.as_deref()),
                    Cell::Number(_) => b.append_null(),
                }
            }
            fields.push(Field::new(name, DataType::Utf8, true));
            columns.push(Arc::new(b.finish()));
        } else {
            let mut b = Float64Builder::with_capacity(rows.len());
            for r in rows {
                match &r.cells[j] {
                    Cell::Number(x) if !x.is_nan() => b.append_value(*x),
                    _ => b.append_null(),
                }
            }
            fields.push(Field::new(name, DataType::Float64, true));
            columns.push(Arc::new(b.finish()));
        }
    }
    let multiclass = !shape.classes.is_empty();
    let mut score = Float64Builder::with_capacity(rows.len());
    let mut class = StringBuilder::new();
    let mut scores = ListBuilder::new(Float64Builder::new());
    for r in rows {
        if multiclass {
            let best = quiver_ml::top_class(&r.scores);
            score.append_value(r.scores.get(best).copied().unwrap_or(f64::NAN));
            class.append_option(shape.classes.get(best));
        } else {
            score.append_value(r.scores.first().copied().unwrap_or(f64::NAN));
            class.append_null();
        }
        scores.values().append_slice(&r.scores);
        scores.append(true);
    }
    fields.push(Field::new("score", DataType::Float64, false));
    columns.push(Arc::new(score.finish()));
    fields.push(Field::new("class", DataType::Utf8, true));
    columns.push(Arc::new(class.finish()));
    let scores = scores.finish();
    fields.push(Field::new("scores", scores.data_type().clone(), false));
    columns.push(Arc::new(scores));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// The first batch of the one Parquet file in `folder` (which must hold exactly one): what the
/// log tests read back.
#[cfg(test)]
pub(crate) fn only_file_batch(folder: &std::path::Path) -> datafusion::arrow::array::RecordBatch {
    let files: Vec<_> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&files[0]).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap()
    .next()
    .unwrap()
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread's nice value, field 19 of `/proc/thread-self/stat` (after the `(name)`).
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn files_are_written_on_a_thread_at_nice_10_and_requests_keep_theirs() {
        let before = own_nice();
        let files = file_writer("test log");
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        files
            .send(Box::new(move || {
                let name = std::thread::current().name().map(str::to_string);
                tx.send((own_nice(), name)).unwrap();
            }))
            .unwrap();
        let (nice, name) = rx.recv().unwrap();
        assert_eq!(nice, WRITER_NICE);
        assert_eq!(name.as_deref(), Some("quiver-test-log-writer"));
        // Only the writer thread was lowered.
        assert_eq!(own_nice(), before);
    }

    #[test]
    fn sampling_logs_exactly_the_configured_share() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let dir = tempfile::tempdir().unwrap();
        for (rate, expect) in [(0.25, 250), (0.1, 100), (1.0, 1000), (0.0, 0)] {
            let log = PredictionLog::start(PredictionLogConfig {
                sample_rate: rate,
                dir: dir.path().into(),
                storage: Default::default(),
                flush_rows: 10,
                flush_interval: Duration::from_secs(60),
            });
            let n = (0..1000).filter(|_| log.sample()).count();
            assert_eq!(n, expect, "rate {rate}");
        }
    }

    #[test]
    fn rows_become_one_parquet_file_per_version() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        rt.block_on(async {
            let log = PredictionLog::start(PredictionLogConfig {
                sample_rate: 1.0,
                dir: dir.path().into(),
                storage: Default::default(),
                flush_rows: 1000,
                flush_interval: Duration::from_secs(60),
            });
            let shape = Arc::new(VersionShape {
                model: "m".into(),
                version: 2,
                inputs: vec!["v__x".into(), "v__c".into()],
                text: vec![false, true],
                classes: vec![],
            });
            let rows = (0..3)
                .map(|i| Row {
                    shape: Arc::clone(&shape),
                    ts_us: 1_700_000_000_000_000 + i,
                    arm: if i == 2 { "shadow" } else { "champion" },
                    entity: vec![("user_id".into(), serde_json::json!(i))],
                    cells: vec![
                        Cell::Number(if i == 1 { f64::NAN } else { i as f64 }),
                        Cell::Text(Some(format!("c{i}"))),
                    ],
                    scores: vec![0.5 + i as f64 / 10.0],
                })
                .collect();
            log.log(rows);
            log.flush().await;
        });
        let batch = only_file_batch(&dir.path().join("model=m/version=2/date=2023-11-14"));
        assert_eq!(batch.num_rows(), 3);
        let names: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            [
                "event_timestamp",
                "model",
                "version",
                "arm",
                "user_id",
                "v__x",
                "v__c",
                "score",
                "class",
                "scores"
            ]
        );
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::Float64Type;
        let x = batch.column(5).as_primitive::<Float64Type>();
        assert!(x.is_null(1) && x.value(2) == 2.0);
        assert_eq!(batch.column(3).as_string::<i32>().value(2), "shadow");
        assert_eq!(batch.column(7).as_primitive::<Float64Type>().value(2), 0.7);
    }
}
