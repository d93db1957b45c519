//! A/B experiments over a recommender (`experiments:`, see `quiver_core::experiment`): who is
//! in which arm, what an exposure is, and the report of an experiment.
//!
//! **Assignment.** A user's arm is fixed by the project's one hashing rule for rollouts,
//! [`quiver_registry::canary_point`] (SHA-256 of a salt and length-prefixed key texts, scaled to
//! [0, 1)), over the key parts (the experiment's salt, the user id): the arms take consecutive
//! stretches of [0, 1) in declaration order, each as wide as its share ([`assign`]). The same
//! user gets the same arm on every request and server; a new salt reshuffles everyone.
//!
//! **Exposures.** Every answer `/recommend` gives a user of an experiment is logged as an
//! [`Exposure`] (time, experiment, arm, recommender version, user, the items shown, their
//! source) to Parquet under `.quiver/exposures/experiment=NAME/date=YYYY-MM-DD/`
//! ([`exposures_batch`] is the schema; the server writes it with the prediction log's writer).
//!
//! **Outcomes.** An exposure is *clicked* (*converted*) when the user has an event of type
//! `outcomes.click` (`outcomes.conversion`) on one of the exposed items at or after the exposure
//! and at most `outcomes.window` later, in `outcomes.source` (read through the offline engine
//! with the recommender's user, item and event type columns and the source's timestamp).
//!
//! **Report** ([`report`]). Per arm: users, exposures, CTR = clicked exposures / exposures and
//! CVR = converted exposures / exposures, each with a 95% Wilson score interval. A user is the
//! unit of randomization and may be exposed many times, and a user's exposures are not
//! independent trials, so each rate's sample size is its *effective* number of exposures: the
//! exposures divided by the design effect, the ratio of the rate's variance clustered by user
//! (delta method: Σᵤ (cᵤ − p·nᵤ)² / N²) to the binomial p(1 − p) / N, never below 1. Each later
//! arm is compared with the first (the control): relative lift p₁ / p₀ − 1 with a 95% interval
//! (Katz's log method), and the pooled two-proportion z-test on the effective sizes, two-sided.
//! With one exposure per user the design effect is 1 and these are the textbook Wilson interval
//! and pooled z-test (statsmodels' `proportion_confint(method="wilson")` and
//! `proportions_ztest`). The sample-ratio-mismatch check compares the users per arm with the
//! declared shares by Pearson's chi-square (k − 1 degrees of freedom); a p-value below
//! [`SRM_THRESHOLD`] means the split is broken and the lifts are not to be trusted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::prelude::{ParquetReadOptions, SessionContext, ident, lit};
use quiver_core::Registry;
use quiver_core::experiment::Experiment;
use quiver_core::registry::suggest;
use quiver_monitor::drift::special::{chi2_sf, erfc};
use serde::Serialize;

use crate::source::{frame_and_columns, id_strings, offline};
use crate::{Error, Result};

/// Where exposures are written, relative to the repository.
pub const EXPOSURES_DIR: &str = ".quiver/exposures";

/// A sample-ratio-mismatch p-value below this flags the split as broken.
pub const SRM_THRESHOLD: f64 = 0.001;

/// The confidence of the intervals.
pub const CONFIDENCE: f64 = 0.95;

/// The standard normal quantile of 0.975.
const Z: f64 = 1.959_963_984_540_054;

/// The folder of one experiment's exposures.
pub fn exposures_dir(root: &Path, experiment: &str) -> PathBuf {
    root.join(EXPOSURES_DIR)
        .join(format!("experiment={experiment}"))
}

/// The declared experiment `name`, or an error naming it and the closest declared one.
pub fn experiment<'a>(registry: &'a Registry, name: &str) -> Result<&'a Experiment> {
    registry.experiments.get(name).ok_or_else(|| {
        Error::Invalid(format!(
            "no experiment '{name}' in the applied registry{}{}",
            suggest(name, registry.experiments.keys()),
            if registry.experiments.is_empty() {
                "; declare it under `experiments:` and run `quiver apply`"
            } else {
                ""
            }
        ))
    })
}

/// The experiment that splits the users of `recommender`, if any (at most one does).
pub fn experiment_of<'a>(registry: &'a Registry, recommender: &str) -> Option<&'a Experiment> {
    registry
        .experiments
        .values()
        .find(|e| e.recommender == recommender)
}

/// The index of `user`'s arm in `e.arms` (see the module's documentation).
pub fn assign(e: &Experiment, user: &str) -> usize {
    let x = quiver_registry::canary_point(0, [e.salt.as_bytes(), user.as_bytes()]);
    let mut upper = 0.0;
    for (i, a) in e.arms.iter().enumerate() {
        upper += a.share;
        if x < upper {
            return i;
        }
    }
    e.arms.len() - 1
}

/// One answer shown to a user of an experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Exposure {
    /// Microseconds since the epoch.
    pub ts_us: i64,
    /// Experiment name.
    pub experiment: Arc<str>,
    /// The user's arm.
    pub arm: Arc<str>,
    /// Recommender name.
    pub recommender: Arc<str>,
    /// The recommender version that answered.
    pub version: i64,
    /// User id.
    pub user: String,
    /// The items shown, best first.
    pub items: Vec<String>,
    /// Where their scores came from (`cf`, `popularity`, `blend`).
    pub source: &'static str,
}

/// The columns of an exposure file.
pub fn exposure_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("experiment", DataType::Utf8, false),
        Field::new("arm", DataType::Utf8, false),
        Field::new("recommender", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("user_id", DataType::Utf8, false),
        Field::new(
            "items",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
        Field::new("source", DataType::Utf8, false),
    ]))
}

/// Exposures as one batch of [`exposure_schema`].
pub fn exposures_batch(rows: &[Exposure]) -> std::result::Result<RecordBatch, ArrowError> {
    let mut ts = TimestampMicrosecondBuilder::with_capacity(rows.len()).with_timezone("UTC");
    let (mut experiment, mut arm, mut recommender, mut user, mut source) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut version = Int64Builder::with_capacity(rows.len());
    let mut items = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
        "item",
        DataType::Utf8,
        true,
    )));
    for r in rows {
        ts.append_value(r.ts_us);
        experiment.append_value(&r.experiment);
        arm.append_value(&r.arm);
        recommender.append_value(&r.recommender);
        version.append_value(r.version);
        user.append_value(&r.user);
        for i in &r.items {
            items.values().append_value(i);
        }
        items.append(true);
        source.append_value(r.source);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ts.finish()),
        Arc::new(experiment.finish()),
        Arc::new(arm.finish()),
        Arc::new(recommender.finish()),
        Arc::new(version.finish()),
        Arc::new(user.finish()),
        Arc::new(items.finish()),
        Arc::new(source.finish()),
    ];
    RecordBatch::try_new(exposure_schema(), columns)
}

// ---------------------------------------------------------------------------------------------
// Statistics.

/// The Wilson score interval of a proportion `p` observed on `n` trials (`n` may be an
/// effective, fractional size); NaNs when `n` is 0.
pub fn wilson(p: f64, n: f64) -> [f64; 2] {
    if n <= 0.0 || !p.is_finite() {
        return [f64::NAN, f64::NAN];
    }
    let z2 = Z * Z;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = Z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    [(center - half).max(0.0), (center + half).min(1.0)]
}

/// The pooled two-proportion z-test of `p1` on `n1` against `p0` on `n0` (effective sizes):
/// `(z, two-sided p-value)`; NaNs when undefined (no trials, or every rate 0 or 1).
pub fn two_proportion_z(p0: f64, n0: f64, p1: f64, n1: f64) -> (f64, f64) {
    if n0 <= 0.0 || n1 <= 0.0 {
        return (f64::NAN, f64::NAN);
    }
    let pooled = (p0 * n0 + p1 * n1) / (n0 + n1);
    let se = (pooled * (1.0 - pooled) * (1.0 / n0 + 1.0 / n1)).sqrt();
    if se == 0.0 || !se.is_finite() {
        return (f64::NAN, f64::NAN);
    }
    let z = (p1 - p0) / se;
    (z, erfc(z.abs() / std::f64::consts::SQRT_2))
}

/// The relative lift `p1 / p0 − 1` and its 95% interval by Katz's log method (the interval of a
/// ratio of two proportions on effective sizes `n1`, `n0`); NaNs where undefined (a rate of 0).
pub fn relative_lift(p0: f64, n0: f64, p1: f64, n1: f64) -> (f64, [f64; 2]) {
    if p0.is_nan() || p0 <= 0.0 || n0 <= 0.0 || n1 <= 0.0 {
        return (f64::NAN, [f64::NAN, f64::NAN]);
    }
    let lift = p1 / p0 - 1.0;
    if p1.is_nan() || p1 <= 0.0 {
        return (lift, [f64::NAN, f64::NAN]);
    }
    let se = ((1.0 - p1) / (p1 * n1) + (1.0 - p0) / (p0 * n0)).sqrt();
    let log_ratio = (p1 / p0).ln();
    (
        lift,
        [
            (log_ratio - Z * se).exp() - 1.0,
            (log_ratio + Z * se).exp() - 1.0,
        ],
    )
}

/// Pearson's chi-square of `observed` counts against `shares` of their total: `(statistic,
/// p-value)` with `shares.len() − 1` degrees of freedom.
pub fn sample_ratio_chi2(observed: &[u64], shares: &[f64]) -> (f64, f64) {
    let total: u64 = observed.iter().sum();
    if total == 0 || observed.len() < 2 {
        return (f64::NAN, f64::NAN);
    }
    let stat: f64 = observed
        .iter()
        .zip(shares)
        .map(|(&o, &s)| {
            let e = s * total as f64;
            let d = o as f64 - e;
            d * d / e
        })
        .sum();
    (stat, chi2_sf(stat, (observed.len() - 1) as f64))
}

/// A rate with its per-user parts: `N` exposures, `C` successes, and `Σᵤ (cᵤ − p·nᵤ)²`.
fn clustered(per_user: &[(u64, u64)]) -> (f64, f64) {
    let n: u64 = per_user.iter().map(|u| u.0).sum();
    let c: u64 = per_user.iter().map(|u| u.1).sum();
    if n == 0 {
        return (f64::NAN, 1.0);
    }
    let p = c as f64 / n as f64;
    let binomial = p * (1.0 - p) / n as f64;
    let sum_sq: f64 = per_user
        .iter()
        .map(|&(ni, ci)| {
            let d = ci as f64 - p * ni as f64;
            d * d
        })
        .sum();
    let var = sum_sq / (n as f64 * n as f64);
    let deff = if binomial > 0.0 {
        (var / binomial).max(1.0)
    } else {
        1.0
    };
    (p, deff)
}

// ---------------------------------------------------------------------------------------------
// The report.

/// A rate of one arm.
#[derive(Debug, Clone, Serialize)]
pub struct Rate {
    /// Exposures clicked (or converted).
    pub count: u64,
    /// `count / exposures`.
    pub rate: f64,
    /// The 95% Wilson interval on the effective number of exposures.
    pub ci: [f64; 2],
    /// Variance clustered by user over the binomial variance, at least 1.
    pub design_effect: f64,
    /// Exposures / design effect: the sample size the interval and the test use.
    pub effective_exposures: f64,
}

/// A later arm against the control, for one rate.
#[derive(Debug, Clone, Serialize)]
pub struct Lift {
    /// `rate / control rate − 1`.
    pub lift: f64,
    /// Its 95% interval (Katz's log method).
    pub ci: [f64; 2],
    /// The pooled two-proportion z statistic (positive: this arm is higher).
    pub z: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// One arm's row.
#[derive(Debug, Clone, Serialize)]
pub struct ArmReport {
    /// `cf`, `popularity` or `blend`.
    pub arm: String,
    /// Declared share of users.
    pub share: f64,
    /// Distinct exposed users.
    pub users: u64,
    /// Exposures (answers shown).
    pub exposures: u64,
    /// Clicked exposures.
    pub ctr: Rate,
    /// Converted exposures.
    pub cvr: Rate,
    /// CTR against the control (none for the control).
    pub ctr_lift: Option<Lift>,
    /// CVR against the control.
    pub cvr_lift: Option<Lift>,
}

/// The sample-ratio-mismatch check.
#[derive(Debug, Clone, Serialize)]
pub struct Srm {
    /// Pearson's chi-square of users per arm against the declared shares.
    pub chi2: f64,
    /// Degrees of freedom (arms − 1).
    pub df: usize,
    /// Its p-value.
    pub p_value: f64,
    /// Mismatch when the p-value is below this.
    pub threshold: f64,
    /// Whether the split does not match the shares.
    pub mismatch: bool,
    /// Users each arm should have under the declared shares.
    pub expected_users: Vec<f64>,
}

/// The report of an experiment ([`report`]).
#[derive(Debug, Clone, Serialize)]
pub struct AbReport {
    /// Experiment name.
    pub experiment: String,
    /// Its recommender.
    pub recommender: String,
    /// The salt of the assignment.
    pub salt: String,
    /// Source of outcomes.
    pub outcome_source: String,
    /// Click event type.
    pub click: String,
    /// Conversion event type.
    pub conversion: String,
    /// Outcome window.
    pub window: String,
    /// Exposures and outcomes up to this time (RFC 3339).
    pub as_of: String,
    /// The first and last exposure counted (RFC 3339), if any.
    pub first_exposure: Option<String>,
    /// The last exposure counted.
    pub last_exposure: Option<String>,
    /// `0.95`.
    pub confidence: f64,
    /// How intervals are computed.
    pub interval: String,
    /// How lifts are tested.
    pub test: String,
    /// Per arm, in declaration order (the first is the control).
    pub arms: Vec<ArmReport>,
    /// Sample-ratio mismatch.
    pub srm: Srm,
    /// Exposures whose outcome window was still open at `as_of` (their outcomes may still come).
    pub open_window_exposures: u64,
    /// Users exposed in more than one arm (a salt or shares changed mid-experiment); each of
    /// their exposures counts in its own arm.
    pub users_in_several_arms: u64,
    /// Exposures logged under arms the experiment no longer declares (left out).
    pub undeclared_arm_exposures: u64,
}

/// One exposure as read back.
struct Read {
    ts: i64,
    user: u32,
    arm: usize,
    items: Vec<u32>,
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Interns ids to dense indices.
#[derive(Default)]
struct Intern {
    map: HashMap<String, u32>,
}

impl Intern {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.map.get(s) {
            return i;
        }
        let i = self.map.len() as u32;
        self.map.insert(s.to_string(), i);
        i
    }
}

/// The report of experiment `name`: its exposures (under [`exposures_dir`]) up to `as_of_us`
/// (default: now) and the outcomes in its outcome source up to the same time.
pub async fn report(
    registry: &Registry,
    root: &Path,
    name: &str,
    as_of_us: Option<i64>,
) -> Result<AbReport> {
    let e = experiment(registry, name)?;
    let as_of = as_of_us.unwrap_or_else(now_us);
    let dir = exposures_dir(root, name);
    if !dir.is_dir() {
        return Err(Error::NotFound(format!(
            "experiment '{name}': no exposures logged yet (looked in {}): `quiver serve` logs one for every /recommend answer to a user of recommender '{}' while the experiment is applied",
            dir.display(),
            e.recommender
        )));
    }
    let engine = quiver_offline::OfflineEngine::new(registry.clone(), root);
    let ctx = engine.session();
    let mut users = Intern::default();
    let mut items = Intern::default();
    let (exposures, undeclared) =
        read_exposures(ctx, &dir, e, as_of, &mut users, &mut items).await?;
    let outcomes = read_outcomes(ctx, registry, root, e, as_of, &users, &items).await?;
    Ok(summarize(e, as_of, &exposures, undeclared, &outcomes))
}

async fn read_exposures(
    ctx: &SessionContext,
    dir: &Path,
    e: &Experiment,
    as_of: i64,
    users: &mut Intern,
    items: &mut Intern,
) -> Result<(Vec<Read>, u64)> {
    let what = format!(
        "the exposures of experiment '{}' ({})",
        e.name,
        dir.display()
    );
    let frame = ctx
        .read_parquet(
            format!("{}/", dir.display()),
            ParquetReadOptions::default().table_partition_cols(Vec::new()),
        )
        .await
        .map_err(|err| Error::Invalid(format!("{what}: {}", quiver_offline::source::clean(err))))?;
    let batches = frame
        .select(vec![
            ident("event_timestamp"),
            ident("user_id"),
            ident("arm"),
            ident("items"),
        ])
        .map_err(offline)?
        .collect()
        .await
        .map_err(offline)?;
    let mut out = Vec::new();
    let mut undeclared = 0;
    for b in &batches {
        let ts = quiver_offline::engine::micros(b.column(0)).map_err(offline)?;
        let user_ids = id_strings(b.column(1), "user_id", &what)?;
        let arms = id_strings(b.column(2), "arm", &what)?;
        let lists = b.column(3).as_list::<i32>();
        let values = cast(lists.values(), &DataType::Utf8).map_err(offline)?;
        let values = values.as_string::<i32>();
        let offsets = lists.value_offsets();
        for r in 0..b.num_rows() {
            let (Some(t), Some(u), Some(arm)) = (ts[r], &user_ids[r], &arms[r]) else {
                continue;
            };
            if t > as_of {
                continue;
            }
            let Some(arm) = e.arms.iter().position(|a| &a.arm == arm) else {
                undeclared += 1;
                continue;
            };
            let (lo, hi) = (offsets[r] as usize, offsets[r + 1] as usize);
            let shown = (lo..hi)
                .filter(|&j| values.is_valid(j))
                .map(|j| items.id(values.value(j)))
                .collect();
            out.push(Read {
                ts: t,
                user: users.id(u),
                arm,
                items: shown,
            });
        }
    }
    Ok((out, undeclared))
}

/// Outcome events by (user, item): `(time, is_click, is_conversion)`, sorted by time.
type Outcomes = HashMap<(u32, u32), Vec<(i64, bool, bool)>>;

async fn read_outcomes(
    ctx: &SessionContext,
    registry: &Registry,
    root: &Path,
    e: &Experiment,
    as_of: i64,
    users: &Intern,
    items: &Intern,
) -> Result<Outcomes> {
    let (rec, source) = outcome_columns(registry, e)?;
    let what = format!("source '{}'", source.name);
    let (frame, columns) = frame_and_columns(ctx, root, source).await?;
    check_outcome_columns(e, &rec, &source.timestamp_field, &columns, &what)?;
    let types = [e.outcomes.click.as_str(), e.outcomes.conversion.as_str()];
    let batches = frame
        .select(vec![
            ident(&rec.user),
            ident(&rec.item),
            datafusion::logical_expr::cast(ident(&rec.event_type), DataType::Utf8).alias("t"),
            ident(&source.timestamp_field),
        ])
        .map_err(offline)?
        .filter(ident("t").in_list(types.iter().map(|t| lit(*t)).collect(), false))
        .map_err(offline)?
        .collect()
        .await
        .map_err(offline)?;
    let mut out: Outcomes = HashMap::new();
    for b in &batches {
        let u = id_strings(b.column(0), &rec.user, &what)?;
        let i = id_strings(b.column(1), &rec.item, &what)?;
        let t = id_strings(b.column(2), &rec.event_type, &what)?;
        let ts = quiver_offline::engine::micros(b.column(3)).map_err(|err| {
            Error::Invalid(format!(
                "{what}: column '{}' is not a timestamp: {err}",
                source.timestamp_field
            ))
        })?;
        for r in 0..b.num_rows() {
            let (Some(u), Some(i), Some(t), Some(ts)) = (&u[r], &i[r], &t[r], ts[r]) else {
                continue;
            };
            if ts > as_of {
                continue;
            }
            let (Some(&u), Some(&i)) = (users.map.get(u), items.map.get(i)) else {
                continue;
            };
            out.entry((u, i)).or_default().push((
                ts,
                t == &e.outcomes.click,
                t == &e.outcomes.conversion,
            ));
        }
    }
    for v in out.values_mut() {
        v.sort_unstable_by_key(|o| o.0);
    }
    Ok(out)
}

/// The column names outcomes are read with: the recommender's.
struct OutcomeColumns {
    user: String,
    item: String,
    event_type: String,
}

fn outcome_columns<'a>(
    registry: &'a Registry,
    e: &Experiment,
) -> Result<(OutcomeColumns, &'a quiver_core::Source)> {
    let rec = registry.recommenders.get(&e.recommender).ok_or_else(|| {
        Error::Invalid(format!(
            "experiment '{}': no recommender '{}'",
            e.name, e.recommender
        ))
    })?;
    let source = registry.sources.get(&e.outcomes.source).ok_or_else(|| {
        Error::Invalid(format!(
            "experiment '{}': no source '{}'",
            e.name, e.outcomes.source
        ))
    })?;
    let i = &rec.interactions;
    let event_type = i.event_type.clone().ok_or_else(|| {
        Error::Invalid(format!(
            "experiment '{}': recommender '{}' declares no interactions.event_type",
            e.name, e.recommender
        ))
    })?;
    Ok((
        OutcomeColumns {
            user: i.user.clone(),
            item: i.item.clone(),
            event_type,
        },
        source,
    ))
}

fn check_outcome_columns(
    e: &Experiment,
    c: &OutcomeColumns,
    timestamp: &str,
    columns: &[String],
    what: &str,
) -> Result<()> {
    for (role, col) in [
        ("user", c.user.as_str()),
        ("item", c.item.as_str()),
        ("event type", c.event_type.as_str()),
        ("timestamp", timestamp),
    ] {
        if !columns.iter().any(|k| k == col) {
            let at = if e.at.file.as_os_str().is_empty() {
                String::new()
            } else {
                format!("{}: ", e.at)
            };
            return Err(Error::Invalid(format!(
                "{at}experiment '{}', field 'outcomes.source': {what} has no {role} column '{col}' (outcomes are read with recommender '{}''s column names){}",
                e.name,
                e.recommender,
                suggest(col, columns.iter())
            )));
        }
    }
    Ok(())
}

/// Checks every experiment's outcome source against its data (for `quiver apply`): the
/// recommender's user, item and event type columns and the timestamp are there, and the click
/// and conversion event types occur in it (when it has rows).
pub async fn validate(registry: &Registry, root: &Path) -> Result<()> {
    for e in registry.experiments.values() {
        let (c, source) = outcome_columns(registry, e)?;
        let (frame, columns) = frame_and_columns(&SessionContext::new(), root, source).await?;
        let what = format!("source '{}'", source.name);
        check_outcome_columns(e, &c, &source.timestamp_field, &columns, &what)?;
        let batches = frame
            .select(vec![
                datafusion::logical_expr::cast(ident(&c.event_type), DataType::Utf8).alias("t"),
            ])
            .map_err(offline)?
            .distinct()
            .map_err(offline)?
            .collect()
            .await
            .map_err(offline)?;
        let mut seen: Vec<String> = Vec::new();
        for b in &batches {
            seen.extend(
                id_strings(b.column(0), &c.event_type, &what)?
                    .into_iter()
                    .flatten(),
            );
        }
        if seen.is_empty() {
            continue;
        }
        seen.sort();
        for (field, t) in [
            ("outcomes.click", &e.outcomes.click),
            ("outcomes.conversion", &e.outcomes.conversion),
        ] {
            if !seen.contains(t) {
                return Err(Error::Invalid(format!(
                    "{}: experiment '{}', field '{field}': {what} has no event type '{t}' in column '{}'{}",
                    e.at,
                    e.name,
                    c.event_type,
                    suggest(t, seen.iter()),
                )));
            }
        }
    }
    Ok(())
}

/// Whether an outcome of the wanted kind falls in `[t, t + window]`.
fn hit(list: &[(i64, bool, bool)], t: i64, window: i64, click: bool) -> bool {
    let start = list.partition_point(|o| o.0 < t);
    list[start..]
        .iter()
        .take_while(|o| o.0 <= t + window)
        .any(|o| if click { o.1 } else { o.2 })
}

fn summarize(
    e: &Experiment,
    as_of: i64,
    exposures: &[Read],
    undeclared: u64,
    outcomes: &Outcomes,
) -> AbReport {
    let window = e.outcomes.window.micros();
    let k = e.arms.len();
    // Per (arm, user): exposures, clicked, converted.
    let mut per_user: Vec<HashMap<u32, (u64, u64, u64)>> = vec![HashMap::new(); k];
    let mut open = 0;
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    for x in exposures {
        first = first.min(x.ts);
        last = last.max(x.ts);
        if x.ts + window > as_of {
            open += 1;
        }
        let look = |click| {
            x.items.iter().any(|&i| {
                outcomes
                    .get(&(x.user, i))
                    .is_some_and(|l| hit(l, x.ts, window, click))
            })
        };
        let s = per_user[x.arm].entry(x.user).or_default();
        s.0 += 1;
        s.1 += u64::from(look(true));
        s.2 += u64::from(look(false));
    }
    let mut arms_of_user: HashMap<u32, usize> = HashMap::new();
    for m in &per_user {
        for u in m.keys() {
            *arms_of_user.entry(*u).or_default() += 1;
        }
    }
    let rate = |mut parts: Vec<(u64, u64)>| {
        // A canonical order, so that the float sums (and the report) are the same on every
        // run whatever order users were read and hashed in.
        parts.sort_unstable();
        let count: u64 = parts.iter().map(|p| p.1).sum();
        let n: u64 = parts.iter().map(|p| p.0).sum();
        let (p, deff) = clustered(&parts);
        let n_eff = n as f64 / deff;
        Rate {
            count,
            rate: p,
            ci: wilson(p, n_eff),
            design_effect: deff,
            effective_exposures: n_eff,
        }
    };
    let mut arms: Vec<ArmReport> = e
        .arms
        .iter()
        .zip(&per_user)
        .map(|(a, m)| ArmReport {
            arm: a.arm.clone(),
            share: a.share,
            users: m.len() as u64,
            exposures: m.values().map(|s| s.0).sum(),
            ctr: rate(m.values().map(|s| (s.0, s.1)).collect()),
            cvr: rate(m.values().map(|s| (s.0, s.2)).collect()),
            ctr_lift: None,
            cvr_lift: None,
        })
        .collect();
    let lift = |c: &Rate, t: &Rate| {
        let (z, p_value) =
            two_proportion_z(c.rate, c.effective_exposures, t.rate, t.effective_exposures);
        let (lift, ci) =
            relative_lift(c.rate, c.effective_exposures, t.rate, t.effective_exposures);
        Lift {
            lift,
            ci,
            z,
            p_value,
        }
    };
    let (control, rest) = arms.split_first_mut().expect("two or more arms");
    for a in rest {
        a.ctr_lift = Some(lift(&control.ctr, &a.ctr));
        a.cvr_lift = Some(lift(&control.cvr, &a.cvr));
    }
    let observed: Vec<u64> = arms.iter().map(|a| a.users).collect();
    let shares: Vec<f64> = e.arms.iter().map(|a| a.share).collect();
    let (chi2, p_value) = sample_ratio_chi2(&observed, &shares);
    let total: u64 = observed.iter().sum();
    AbReport {
        experiment: e.name.clone(),
        recommender: e.recommender.clone(),
        salt: e.salt.clone(),
        outcome_source: e.outcomes.source.clone(),
        click: e.outcomes.click.clone(),
        conversion: e.outcomes.conversion.clone(),
        window: e.outcomes.window.to_string(),
        as_of: rfc3339(as_of),
        first_exposure: (!exposures.is_empty()).then(|| rfc3339(first)),
        last_exposure: (!exposures.is_empty()).then(|| rfc3339(last)),
        confidence: CONFIDENCE,
        interval: "wilson score interval on effective exposures (exposures / design effect clustered by user)".into(),
        test: "pooled two-proportion z-test on effective exposures, two-sided; lift interval by Katz's log method".into(),
        arms,
        srm: Srm {
            chi2,
            df: k - 1,
            p_value,
            threshold: SRM_THRESHOLD,
            mismatch: p_value < SRM_THRESHOLD,
            expected_users: shares.iter().map(|s| s * total as f64).collect(),
        },
        open_window_exposures: open,
        users_in_several_arms: arms_of_user.values().filter(|&&n| n > 1).count() as u64,
        undeclared_arm_exposures: undeclared,
    }
}

// ---------------------------------------------------------------------------------------------
// HTML.

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.2}%", x * 100.0)
    } else {
        "–".into()
    }
}

fn interval(ci: [f64; 2]) -> String {
    if ci[0].is_finite() && ci[1].is_finite() {
        format!("[{}, {}]", pct(ci[0]), pct(ci[1]))
    } else {
        "–".into()
    }
}

/// A lift as the table shows it: `+12.3% [+1.0%, +25.0%] p=0.012`.
pub fn lift_text(l: Option<&Lift>) -> String {
    let Some(l) = l else {
        return "control".into();
    };
    let signed = |x: f64| {
        if x.is_finite() {
            format!("{:+.1}%", x * 100.0)
        } else {
            "–".into()
        }
    };
    let ci = if l.ci[0].is_finite() {
        format!(" [{}, {}]", signed(l.ci[0]), signed(l.ci[1]))
    } else {
        String::new()
    };
    let p = if l.p_value.is_finite() {
        format!(" p={}", quiver_monitor::report::fmt(l.p_value))
    } else {
        String::new()
    };
    format!("{}{ci}{p}", signed(l.lift))
}

/// A rate as the table shows it: `5.12% [4.80%, 5.46%]`.
pub fn rate_text(r: &Rate) -> String {
    format!("{} {}", pct(r.rate), interval(r.ci))
}

/// An SVG of one rate per arm: a bar to the rate, a whisker across its interval.
fn rate_svg(title: &str, arms: &[ArmReport], rate: impl Fn(&ArmReport) -> &Rate) -> String {
    use quiver_monitor::report::esc;
    let (w, row, pad) = (480.0, 26.0, 110.0);
    let max = arms
        .iter()
        .map(|a| rate(a).ci[1])
        .chain(arms.iter().map(|a| rate(a).rate))
        .filter(|x| x.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let h = row * arms.len() as f64 + 30.0;
    let sx = |x: f64| pad + x / max * (w - pad - 20.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\"><title>{}</title>",
        esc(title)
    );
    for (i, a) in arms.iter().enumerate() {
        let r = rate(a);
        let y = 10.0 + row * i as f64;
        s.push_str(&format!(
            "<text x=\"4\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            y + 14.0,
            esc(&a.arm)
        ));
        if r.rate.is_finite() {
            s.push_str(&format!(
                "<rect x=\"{pad}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"18\" fill=\"{}\" fill-opacity=\"0.6\"><title>{}: {}</title></rect>",
                sx(r.rate) - pad,
                if i == 0 { "#4c78a8" } else { "#f58518" },
                esc(&a.arm),
                esc(&rate_text(r))
            ));
        }
        if r.ci[0].is_finite() {
            let (x0, x1, ym) = (sx(r.ci[0]), sx(r.ci[1]), y + 9.0);
            s.push_str(&format!(
                "<line x1=\"{x0:.1}\" y1=\"{ym:.1}\" x2=\"{x1:.1}\" y2=\"{ym:.1}\" stroke=\"#222\"/><line x1=\"{x0:.1}\" y1=\"{:.1}\" x2=\"{x0:.1}\" y2=\"{:.1}\" stroke=\"#222\"/><line x1=\"{x1:.1}\" y1=\"{:.1}\" x2=\"{x1:.1}\" y2=\"{:.1}\" stroke=\"#222\"/>",
                ym - 5.0,
                ym + 5.0,
                ym - 5.0,
                ym + 5.0
            ));
        }
    }
    s.push_str(&format!(
        "<text x=\"{pad}\" y=\"{:.1}\" font-size=\"10\">0</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text></svg>",
        h - 4.0,
        w - 20.0,
        h - 4.0,
        pct(max)
    ));
    s
}

/// The report as one self-contained HTML page (no scripts, no network).
pub fn html(r: &AbReport) -> String {
    use quiver_monitor::report::{esc, fmt, page};
    let rows: String = r
        .arms
        .iter()
        .map(|a| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&a.arm),
                fmt(a.share),
                a.users,
                a.exposures,
                esc(&rate_text(&a.ctr)),
                esc(&lift_text(a.ctr_lift.as_ref())),
                esc(&rate_text(&a.cvr)),
                esc(&lift_text(a.cvr_lift.as_ref())),
            )
        })
        .collect();
    let srm = &r.srm;
    let mut notes = String::new();
    if r.open_window_exposures > 0 {
        notes.push_str(&format!(
            "<li>{} exposures are younger than the {} window at the report's time: their outcomes may still come.</li>",
            r.open_window_exposures,
            esc(&r.window)
        ));
    }
    if r.users_in_several_arms > 0 {
        notes.push_str(&format!(
            "<li>{} users were exposed in more than one arm (the salt or the shares changed mid-experiment).</li>",
            r.users_in_several_arms
        ));
    }
    if r.undeclared_arm_exposures > 0 {
        notes.push_str(&format!(
            "<li>{} exposures under arms no longer declared were left out.</li>",
            r.undeclared_arm_exposures
        ));
    }
    let body = format!(
        r#"<section id="summary"><h2>Summary</h2>
<p>Recommender <b>{rec}</b>, salt <code>{salt}</code>; outcomes from source <b>{source}</b>: click = <code>{click}</code>, conversion = <code>{conv}</code>, within {window} of an exposure. Exposures and outcomes up to {as_of}{range}.</p>
<p class="{srm_class}"><b>{srm_verdict}</b>: users per arm against the declared shares, chi-square {chi2} (df {df}), p = {srm_p} (mismatch below {threshold}).</p>
{notes}</section>
<section id="arms"><h2>Arms</h2>
<table><tr><th>arm</th><th>share</th><th>users</th><th>exposures</th><th>CTR [95% CI]</th><th>CTR lift vs control</th><th>CVR [95% CI]</th><th>CVR lift vs control</th></tr>
{rows}</table>
<p><small>Intervals: {interval}. Lifts: {test}. The first arm is the control.</small></p></section>
<section id="plots"><h2>CTR</h2>{ctr_svg}<h2>CVR</h2>{cvr_svg}</section>"#,
        rec = esc(&r.recommender),
        salt = esc(&r.salt),
        source = esc(&r.outcome_source),
        click = esc(&r.click),
        conv = esc(&r.conversion),
        window = esc(&r.window),
        as_of = esc(&r.as_of),
        range = match (&r.first_exposure, &r.last_exposure) {
            (Some(a), Some(b)) => format!(" (exposures from {} to {})", esc(a), esc(b)),
            _ => " (no exposures)".into(),
        },
        srm_class = if srm.mismatch { "fail" } else { "" },
        srm_verdict = if srm.mismatch {
            "Sample ratio mismatch: the split is broken, do not trust the lifts"
        } else {
            "No sample ratio mismatch"
        },
        chi2 = fmt(srm.chi2),
        df = srm.df,
        srm_p = fmt(srm.p_value),
        threshold = fmt(srm.threshold),
        notes = if notes.is_empty() {
            String::new()
        } else {
            format!("<ul>{notes}</ul>")
        },
        interval = esc(&r.interval),
        test = esc(&r.test),
        ctr_svg = rate_svg("CTR by arm", &r.arms, |a| &a.ctr),
        cvr_svg = rate_svg("CVR by arm", &r.arms, |a| &a.cvr),
    );
    page(&format!("A/B report: {}", r.experiment), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// The textbook formulas (those of statsmodels' `proportion_confint(x, n, method="wilson")`
    /// and `proportions_ztest([x1, x0], [n1, n0])`, pooled, and scipy's `chisquare`), evaluated
    /// independently in double precision.
    #[test]
    fn statistics_match_the_textbook() {
        // Wilson, 8 of 100: (0.0410935, 0.1499811).
        let [lo, hi] = wilson(0.08, 100.0);
        assert!(
            close(lo, 0.041_093_5, 1e-6) && close(hi, 0.149_981_1, 1e-6),
            "{lo} {hi}"
        );
        assert!(wilson(0.0, 0.0)[0].is_nan());
        let [lo, hi] = wilson(0.0, 50.0);
        assert!(
            close(lo, 0.0, 1e-12) && close(hi, 0.071_347_6, 1e-6),
            "{lo} {hi}"
        );
        // Pooled z-test, 80 of 1000 against 50 of 1000: z = 2.7210954, p = 0.0065066.
        let (z, p) = two_proportion_z(0.05, 1000.0, 0.08, 1000.0);
        assert!(
            close(z, 2.721_095_4, 1e-6) && close(p, 0.006_506_6, 1e-7),
            "{z} {p}"
        );
        let (z, p) = two_proportion_z(0.0, 10.0, 0.0, 10.0);
        assert!(z.is_nan() && p.is_nan());
        // chisquare([5200, 4800], f_exp=[5000, 5000]) = (16.0, 6.334e-05)
        let (c, p) = sample_ratio_chi2(&[5200, 4800], &[0.5, 0.5]);
        assert!(
            close(c, 16.0, 1e-12) && close(p, 6.334_248e-5, 1e-9),
            "{c} {p}"
        );
        let (lift, ci) = relative_lift(0.05, 1000.0, 0.08, 1000.0);
        assert!(close(lift, 0.6, 1e-12));
        // exp(ln 1.6 ± 1.96 sqrt(0.92/80 + 0.95/50)) - 1 = (0.1362242, 1.2530765).
        assert!(
            close(ci[0], 0.136_224_2, 1e-6) && close(ci[1], 1.253_076_5, 1e-6),
            "{ci:?}"
        );
        // One exposure per user: no design effect; a user's repeated exposures with the same
        // outcome inflate the variance.
        assert_eq!(clustered(&[(1, 1), (1, 0), (1, 0), (1, 0)]), (0.25, 1.0));
        let (p, deff) = clustered(&[(4, 4), (4, 0), (4, 0), (4, 0)]);
        assert!(p == 0.25 && close(deff, 4.0, 1e-12), "{deff}");
    }

    #[test]
    fn assignment_is_stable_and_follows_the_shares() {
        let mut e = Experiment {
            name: "x".into(),
            recommender: "r".into(),
            arms: vec![
                quiver_core::experiment::ArmShare {
                    arm: "cf".into(),
                    share: 0.3,
                },
                quiver_core::experiment::ArmShare {
                    arm: "popularity".into(),
                    share: 0.7,
                },
            ],
            salt: "s1".into(),
            outcomes: quiver_core::experiment::Outcomes {
                source: "events".into(),
                click: "view".into(),
                conversion: "purchase".into(),
                window: quiver_core::Duration::from_seconds(86_400),
            },
            description: None,
            owner: None,
            tags: Default::default(),
            at: Default::default(),
        };
        let arms: Vec<usize> = (0..20_000).map(|u| assign(&e, &u.to_string())).collect();
        let cf = arms.iter().filter(|&&a| a == 0).count() as f64 / 20_000.0;
        assert!((cf - 0.3).abs() < 0.015, "{cf}");
        assert_eq!(
            arms[..50],
            (0..50)
                .map(|u| assign(&e, &u.to_string()))
                .collect::<Vec<_>>()[..]
        );
        // The rule is the rollouts' one: canary_point over (salt, user).
        let x = quiver_registry::canary_point(0, [b"s1".as_slice(), b"42".as_slice()]);
        assert_eq!(assign(&e, "42"), usize::from(x >= 0.3));
        // Another salt reshuffles.
        e.salt = "s2".into();
        let moved = (0..1000)
            .filter(|&u| assign(&e, &u.to_string()) != arms[u as usize])
            .count();
        assert!(moved > 300, "{moved}");
    }

    #[test]
    fn exposure_batches_have_the_schema() {
        let rows = vec![Exposure {
            ts_us: 1_700_000_000_000_000,
            experiment: "x".into(),
            arm: "cf".into(),
            recommender: "r".into(),
            version: 3,
            user: "42".into(),
            items: vec!["a".into(), "b".into()],
            source: "cf",
        }];
        let b = exposures_batch(&rows).unwrap();
        assert_eq!(b.schema(), exposure_schema());
        assert_eq!(b.column(6).as_list::<i32>().value(0).len(), 2);
    }
}
