//! The data sets of a drift run, named as `quiver drift --reference/--current` and the Python
//! package's `FeatureStore.drift` name them, and the run itself ([`compare`]): one
//! implementation for every caller.
//!
//! A spec is one of:
//!
//! * a Parquet or CSV file, a folder of Parquet files, or a glob;
//! * `FILE@START..END`: the rows of FILE whose `event_timestamp` falls in `[START, END)`;
//! * `model:NAME[:VERSION|@ALIAS]`: the sample of the training split the version was trained
//!   on, stored with its artifacts ([`quiver_pipeline::reference`]);
//! * `log:NAME[:VERSION]@START..END`: the prediction log of a time range, the inputs as the
//!   model saw them and its scores ([`quiver_pipeline::prediction_log`]);
//! * `service:S@START..END`: the point-in-time features of feature service S (`view__feature`
//!   columns, as `quiver historical --service S --full-names` computes them) for the entity
//!   rows of the range. Services declare no label table, so the entity rows are the join keys
//!   and event times of the rows of the service's views' sources that fall in `[START, END)`,
//!   without duplicates (`OfflineEngine::entity_rows_between`); request-time features are left
//!   out (reported as not compared).
//!
//! Against a `model:` reference, a current set holding a `score` column (a log) is compared
//! as inputs, and its scores (and classes) as prediction drift against the version's
//! test-split predictions. Tests declared on features in the registry (`drift:`) apply to the
//! columns `feature` and `view__feature` unless the options name another.

use std::path::{Path, PathBuf};

use datafusion::logical_expr::{Expr, col, lit};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use datafusion::scalar::ScalarValue;
use quiver_core::repo::RepoSettings;
use quiver_registry::{AppliedRegistry, MetadataStore, SqlMetadataStore};
use serde_json::Value;

use super::{Dataset, DriftOptions, DriftReport, Error, Result};
use crate::spec::{LogTarget, time_range};

/// Opens data sets by spec for one repository.
pub struct Opener {
    repo: PathBuf,
    files: PathBuf,
    ctx: SessionContext,
}

fn input(e: impl std::fmt::Display) -> Error {
    Error::Input(e.to_string())
}

fn ts(micros: i64) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(micros),
        Some("UTC".into()),
    ))
}

fn in_range(column: &str, start: i64, end: i64) -> Expr {
    col(column).gt_eq(ts(start)).and(col(column).lt(ts(end)))
}

/// The model a data set belongs to: `model:NAME[...]` or `log:NAME[...]@...`.
pub fn model_of(spec: &str) -> Option<String> {
    let rest = spec
        .strip_prefix("model:")
        .or_else(|| spec.strip_prefix("log:"))?;
    let name = rest.split(['@', ':']).next()?;
    (!name.is_empty()).then(|| name.to_string())
}

impl Opener {
    /// An opener for the repository `repo`; relative file paths are read from `files` (the
    /// CLI: the working directory, `""`; the Python package: the repository).
    pub fn new(repo: &Path, files: &Path) -> Opener {
        Opener {
            repo: repo.to_path_buf(),
            files: files.to_path_buf(),
            ctx: super::read::session(),
        }
    }

    /// The session sets are read in (for frames a caller brings).
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    async fn metadata(&self) -> Result<SqlMetadataStore> {
        let settings = RepoSettings::load(&self.repo).map_err(input)?;
        SqlMetadataStore::open_repo(&self.repo, settings.registry.as_deref())
            .await
            .map_err(|e| Error::Read(e.to_string()))
    }

    /// The applied registry, `None` when nothing is applied yet.
    async fn applied(&self) -> Result<Option<AppliedRegistry>> {
        self.metadata()
            .await?
            .current()
            .await
            .map_err(|e| Error::Read(e.to_string()))
    }

    /// Opens REF or CUR (see the module documentation).
    pub async fn open(&self, spec: &str) -> Result<Dataset> {
        if let Some(rest) = spec.strip_prefix("log:") {
            return self.open_log(spec, rest).await;
        }
        if let Some(model) = spec.strip_prefix("model:") {
            let path = self
                .model_file(spec, model, quiver_pipeline::reference::reference_file)
                .await?;
            return Ok(Dataset::from_frame(
                Dataset::open_file(&self.ctx, &path).await?.frame().clone(),
                spec.to_string(),
                true,
            ));
        }
        if let Some(rest) = spec.strip_prefix("service:") {
            return self.open_service(spec, rest).await;
        }
        // FILE@START..END: the rows of FILE with `event_timestamp` in [START, END).
        let whole = self.files.join(spec);
        let (file, range) = match spec.rsplit_once('@') {
            Some((f, r)) if r.contains("..") && !whole.exists() => (f, Some(r)),
            _ => (spec, None),
        };
        let path = self.files.join(file);
        if !path.exists() && !file.contains(['*', '?']) {
            return Err(Error::Input(format!("{spec}: no such file or folder")));
        }
        let set = Dataset::open_file(&self.ctx, &path).await?;
        let Some(range) = range else { return Ok(set) };
        let (start, end) = time_range(spec, range).map_err(Error::Input)?;
        if set.schema().field_with_name("event_timestamp").is_err() {
            return Err(Error::Input(format!(
                "{spec}: a time range needs an event_timestamp column in {file}"
            )));
        }
        let frame = set
            .frame()
            .clone()
            .filter(in_range("event_timestamp", start, end))
            .map_err(input)?;
        Ok(Dataset::from_frame(frame, spec.to_string(), set.columnar())
            .with_time("event_timestamp"))
    }

    /// A file of the artifact directory of the version `model` (NAME, NAME:VERSION or
    /// NAME@ALIAS) names, written at training ([`quiver_pipeline::reference`]).
    async fn model_file(
        &self,
        spec: &str,
        model: &str,
        file: fn(&Path) -> PathBuf,
    ) -> Result<PathBuf> {
        let store = self.metadata().await?;
        let v = quiver_pipeline::versions::resolve(&store, model)
            .await
            .map_err(|e| Error::Input(format!("{spec}: {e}")))?;
        let path = file(&quiver_pipeline::artifacts::version_dir(&self.repo, &v));
        if !path.is_file() {
            return Err(Error::Input(format!(
                "{spec}: model {} version {} has no drift reference ({} is missing): it was trained or imported before Quiver stored one; retrain it",
                v.name,
                v.version,
                path.display()
            )));
        }
        Ok(path)
    }

    async fn open_log(&self, spec: &str, rest: &str) -> Result<Dataset> {
        let target = LogTarget::parse(spec, rest).map_err(Error::Input)?;
        let settings = RepoSettings::load(&self.repo).map_err(input)?;
        let log = quiver_pipeline::prediction_log::dir(
            settings.server.prediction_log.as_ref(),
            &self.repo,
        );
        let dir = quiver_pipeline::prediction_log::model_dir(&log, &target.model, target.version);
        let place = dir.to_string_lossy();
        if quiver_offline::remote::is_url(&place) {
            quiver_offline::remote::register_with(&self.ctx, &place, &settings.storage)
                .map_err(|e| Error::Input(format!("{spec}: {e}")))?;
        }
        let logged = quiver_offline::remote::has_files(&place, &settings.storage)
            .await
            .map_err(|e| Error::Input(format!("{spec}: {e}")))?;
        if !logged {
            return Err(Error::Input(format!(
                "{spec}: no prediction log at {} (does the server log model {}?)",
                dir.display(),
                target.model
            )));
        }
        let read = |e: datafusion::error::DataFusionError| {
            Error::Read(format!("{spec}: cannot read {}: {e}", dir.display()))
        };
        let frame = self
            .ctx
            .read_parquet(
                format!("{}/", dir.display()),
                ParquetReadOptions::default().table_partition_cols(Vec::new()),
            )
            .await
            .map_err(read)?
            .filter(in_range("event_timestamp", target.start, target.end))
            .map_err(read)?;
        // The request's description is not compared; its time is the set's time.
        let keep: Vec<String> = frame
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| {
                n == "event_timestamp"
                    || !(quiver_pipeline::prediction_log::META_COLUMNS.contains(&n.as_str())
                        || n == "scores")
            })
            .collect();
        let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
        let frame = frame.select_columns(&keep).map_err(read)?;
        Ok(Dataset::from_frame(frame, spec.to_string(), true).with_time("event_timestamp"))
    }

    /// `service:S@START..END`: the point-in-time features of service S (columns
    /// `view__feature`) for entity rows taken from the service's views' sources: the join keys
    /// and event time of every source row in `[START, END)`, without duplicates (services
    /// declare no label table). Features of request-time views are left out (their inputs come
    /// with each request); the rows' time is the set's time.
    async fn open_service(&self, spec: &str, rest: &str) -> Result<Dataset> {
        let (name, range) = rest
            .split_once('@')
            .ok_or_else(|| Error::Input(format!("{spec}: expected service:NAME@START..END")))?;
        let (start, end) = time_range(spec, range).map_err(Error::Input)?;
        let applied = self.applied().await?.ok_or_else(|| {
            Error::Input(format!(
                "{spec}: nothing applied yet in {}: run `quiver apply` first",
                self.repo.display()
            ))
        })?;
        let engine = quiver_offline::OfflineEngine::new(applied.registry, &self.repo);
        let registry = engine.registry();
        let features = registry
            .service_features(name)
            .map_err(|e| Error::Input(format!("{spec}: {e}")))?;
        let mut set_aside = Vec::new();
        let mut stored = Vec::new();
        for f in features {
            if registry.views[&f.view].is_request() {
                set_aside.push(f.full_name());
            } else {
                stored.push(f.clone());
            }
        }
        if stored.is_empty() {
            return Err(Error::Input(format!(
                "{spec}: every feature of service '{name}' is computed at request time; there is nothing to read offline"
            )));
        }
        let mut views: Vec<&str> = Vec::new();
        for f in &stored {
            if !views.contains(&f.view.as_str()) {
                views.push(&f.view);
            }
        }
        let entities = engine
            .entity_rows_between(&views, start, end)
            .await
            .map_err(|e| Error::Input(format!("{spec}: {e}")))?;
        if entities.num_rows() == 0 {
            return Err(Error::Input(format!(
                "{spec}: no rows of the sources of service '{name}' (views {}) fall in [{}, {})",
                views.join(", "),
                quiver_online::format_time(start),
                quiver_online::format_time(end)
            )));
        }
        let opts = quiver_offline::HistoricalOptions {
            full_names: true,
            ..quiver_offline::HistoricalOptions::default()
        };
        let progress: std::sync::Arc<dyn quiver_offline::engine::Progress> =
            std::sync::Arc::new(());
        let batch = engine
            .historical(&entities, &stored, &opts, spec, &progress)
            .await
            .map_err(|e| Error::Input(format!("{spec}: {e}")))?;
        // The features and the rows' time; the join keys are not compared.
        let mut keep: Vec<String> = stored.iter().map(|f| f.full_name()).collect();
        keep.push("event_timestamp".into());
        let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
        let frame = self
            .ctx
            .read_batch(batch)
            .and_then(|f| f.select_columns(&keep))
            .map_err(input)?;
        let mut set =
            Dataset::from_frame(frame, spec.to_string(), true).with_time("event_timestamp");
        for column in set_aside {
            set = set.leaving_out(
                column,
                "a request-time feature: its inputs come with each request, not from the sources",
            );
        }
        Ok(set)
    }

    /// Prediction drift: the `score` (and `class`) of `current` (a prediction log) against the
    /// test-split predictions of the version `reference` (`model:...`) names; `None` when the
    /// reference is not a model's or the current set holds no scores.
    pub async fn prediction_drift(
        &self,
        reference: &str,
        current: &Dataset,
        options: &DriftOptions,
    ) -> Result<Option<DriftReport>> {
        let Some(model) = reference.strip_prefix("model:") else {
            return Ok(None);
        };
        let columns = current.columns();
        if !columns.iter().any(|c| c == "score") {
            return Ok(None);
        }
        let path = self
            .model_file(
                reference,
                model,
                quiver_pipeline::reference::predictions_file,
            )
            .await?;
        let reference = Dataset::open_file(&self.ctx, &path).await?;
        // A binary or regression model logs no class: compare the score alone.
        let class_logged = reference.columns().iter().any(|c| c == "class")
            && columns.iter().any(|c| c == "class");
        let keep: Vec<&str> = if class_logged {
            vec!["score", "class"]
        } else {
            vec!["score"]
        };
        let pick = |d: &Dataset, label: String| -> Result<Dataset> {
            Ok(Dataset::from_frame(
                d.frame().clone().select_columns(&keep).map_err(input)?,
                label,
                true,
            ))
        };
        let r = pick(&reference, format!("{model} test predictions"))?;
        let c = pick(current, "current predictions".into())?;
        // Features name inputs; the predictions are compared whole (overrides of score or
        // class still apply).
        let options = DriftOptions {
            features: None,
            overrides: options
                .overrides
                .iter()
                .filter(|(k, _)| keep.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..DriftOptions::default()
        };
        Ok(Some(super::drift(&r, &c, &options).await?))
    }
}

/// One side of a comparison: a spec, or a set the caller built (a data frame from Python).
pub enum Side {
    /// A spec (see the module documentation).
    Spec(String),
    /// A set as it is.
    Set(Box<Dataset>),
}

/// The result of [`compare`].
pub struct Comparison {
    /// The drift of the current set's columns (the inputs, for a log against a model).
    pub report: DriftReport,
    /// The scores' drift, for a log against a model's reference.
    pub predictions: Option<DriftReport>,
}

impl Comparison {
    /// The JSON report (`quiver drift --json`): the report, plus `prediction_drift`.
    pub fn to_json(&self) -> Value {
        let mut json = self.report.to_json();
        if let Some(p) = &self.predictions {
            json["prediction_drift"] = p.to_json();
        }
        json
    }
}

/// Compares `current` with `reference`: opens specs, splits a log's scores off as prediction
/// drift against a model's reference, applies the tests declared in the registry to the
/// compared columns the options leave unset, and runs [`super::drift`].
pub async fn compare(
    opener: &Opener,
    reference: Side,
    current: Side,
    mut options: DriftOptions,
) -> Result<Comparison> {
    let (reference, reference_spec) = match reference {
        Side::Spec(s) => (
            opener
                .open(&s)
                .await
                .map_err(|e| Error::Input(format!("--reference: {e}")))?,
            Some(s),
        ),
        Side::Set(d) => (*d, None),
    };
    let current = match current {
        Side::Spec(s) => opener
            .open(&s)
            .await
            .map_err(|e| Error::Input(format!("--current: {e}")))?,
        Side::Set(d) => *d,
    };
    let predictions = match &reference_spec {
        Some(r) => opener.prediction_drift(r, &current, &options).await?,
        None => None,
    };
    // Against a model's reference, the scores are compared as prediction drift, not as inputs.
    let current = if predictions.is_some() {
        let inputs: Vec<String> = current
            .columns()
            .into_iter()
            .filter(|c| c != "score" && c != "class")
            .collect();
        let mut inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let time = current.time_column();
        if let Some(t) = &time {
            inputs.push(t);
        }
        let set = Dataset::from_frame(
            current
                .frame()
                .clone()
                .select_columns(&inputs)
                .map_err(input)?,
            current.label().to_string(),
            current.columnar(),
        );
        match time {
            Some(t) => set.with_time(t),
            None => set,
        }
    } else {
        current
    };
    options
        .overrides
        .retain(|k, _| predictions.is_none() || (k != "score" && k != "class"));
    // Tests declared on features (`drift:` in the registry) for the columns compared, where
    // the options name none.
    if let Ok(Some(applied)) = opener.applied().await {
        let (rc, cc) = (reference.columns(), current.columns());
        for (column, declared) in super::declared::overrides(&applied.registry) {
            let selected = options
                .features
                .as_ref()
                .is_none_or(|f| f.contains(&column));
            if !(selected && rc.contains(&column) && cc.contains(&column)) {
                continue;
            }
            let o = options.overrides.entry(column).or_default();
            o.stattest = o.stattest.or(declared.stattest);
            o.threshold = o.threshold.or(declared.threshold);
        }
    }
    let report = super::drift(&reference, &current, &options).await?;
    Ok(Comparison {
        report,
        predictions,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_model_of_a_data_set() {
        use super::model_of;
        assert_eq!(
            model_of("log:churn@2025-01-01..2025-02-01").as_deref(),
            Some("churn")
        );
        assert_eq!(
            model_of("log:churn:3@2025-01-01..2025-02-01").as_deref(),
            Some("churn")
        );
        assert_eq!(model_of("model:churn:2").as_deref(), Some("churn"));
        assert_eq!(model_of("model:churn").as_deref(), Some("churn"));
        assert_eq!(model_of("data/x.parquet"), None);
    }
}
