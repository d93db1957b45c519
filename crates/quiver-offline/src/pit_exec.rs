//! The point-in-time join as a DataFusion [`ExecutionPlan`] over hash partitions of the join
//! keys: the unit a distributed engine (Ballista) schedules, one task per partition.
//!
//! [`PitJoinExec`] has two children, both hash-partitioned on the join keys into the same
//! number of partitions (it declares them co-partitioned, so DataFusion's planner, or a
//! distributed one, puts a shuffle under each):
//!
//! * the entity side: `__quiver_row` (the entity row's position in the request, `UInt32`), the
//!   key columns (cast to the types the view's frame has) and `__quiver_ts` (UTC µs);
//! * the feature side: the view's prepared frame (keys, event timestamp, created timestamp if
//!   the source has one, values), as [`crate::OfflineEngine`] builds it for its own join, with
//!   `__quiver_part` last: the scan partition each row was read in ([`PartTagExec`], under the
//!   shuffle), so that exact ties resolve as in one sequential scan.
//!
//! Partition `p` of the output is the entity rows of partition `p`, each with its features:
//! `__quiver_row` then one column per value. The operator does one of two things
//! ([`JoinOp`]): the latest feature row per entity row (a plain view, within its TTL), or a
//! view's windowed aggregations as of each entity row (the frame is then one filter group's
//! events, gathered in scan order and aggregated by [`aggregate_events`]). Since every entity row lands in exactly one
//! partition and a key's feature rows in the same one, the partitions' outputs together are the
//! whole answer; the caller puts the rows back in request order by `__quiver_row`. Each
//! partition runs the same join as the engine's own path (the key space, the entity index, the
//! probe and [`PartitionedJoin`]), so the semantics (TTL, ties by created timestamp, nulls,
//! every key type, exact ties to the later row of the scan; windows, empty windows, decay) are
//! one implementation.
//!
//! One exception on a Ballista cluster: its tasks each run a slice of a stage's partitions,
//! renumbered from 0, so `__quiver_part` no longer orders the scan and exact duplicates (same
//! keys, event and created time, which Feast and DuckDB also resolve arbitrarily) may resolve to
//! either row there. Ties on the event time alone are broken by the created time as everywhere.
//! Likewise for windows: events of one key at the same time may be taken in another order
//! there, so `last` may pick another of them and a sum may differ in its last bits.

use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::UInt32Type;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::expressions::Column;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, Distribution, ExecutionPlan,
    ExecutionPlanProperties, InputDistributionRequirements, Partitioning, PhysicalExpr,
    PlanProperties, ReplaceChildrenOptions, SendableRecordBatchStream, apply_expression_roots,
};
use futures::{StreamExt, TryStreamExt};
use quiver_core::Source;
use serde::{Deserialize, Serialize};

use crate::engine::{EntityKeys, Layout, micros};
use crate::error::Error;
use crate::key::encode_keys;
use crate::key_space::KeySpace;
use crate::pit_join::{EntityIndex, PartitionedJoin};
use crate::window_agg::{AggSpec, aggregate_events};

/// The entity side's row-position column.
pub const ROW: &str = "__quiver_row";
/// The entity side's timestamp column.
pub const TS: &str = "__quiver_ts";
/// The feature side's last column: the scan partition a row was read in (see [`PartTagExec`]).
pub const PART: &str = "__quiver_part";

/// What one view's join needs besides its inputs (what a cluster's plan carries of it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PitSpec {
    /// The view's source (named in errors).
    pub source: Source,
    /// Join keys of the view.
    pub nkeys: usize,
    /// Columns of the feature frame that are values, in output order (for windows: the
    /// column of each aggregation, a null column for those without one).
    pub value_idx: Vec<usize>,
    /// What each entity row gets.
    pub op: JoinOp,
}

/// What [`PitJoinExec`] computes for each entity row.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JoinOp {
    /// The latest feature row at or before the row's time (a plain view).
    Latest {
        /// Whether the frame has a created-timestamp column after the event timestamp.
        has_created: bool,
        /// The view's TTL in µs (0: none).
        ttl_micros: i64,
    },
    /// Windowed aggregations of the events as of the row's time (an aggregation view's
    /// filter group): the frame is keys, the event time, then one column per aggregation.
    Windows {
        /// The aggregations, in output order.
        aggs: Vec<AggSpec>,
        /// Whether each aggregates its column (not `count` of rows or `time_since_last`).
        has_values: Vec<bool>,
    },
}

/// The point-in-time join of hash-partitioned entity rows and feature rows (see the module
/// documentation).
#[derive(Debug)]
pub struct PitJoinExec {
    entities: Arc<dyn ExecutionPlan>,
    features: Arc<dyn ExecutionPlan>,
    spec: PitSpec,
    schema: SchemaRef,
    props: Arc<PlanProperties>,
}

impl PitJoinExec {
    /// The join of `entities` and `features` (see the module documentation for their columns).
    pub fn try_new(
        entities: Arc<dyn ExecutionPlan>,
        features: Arc<dyn ExecutionPlan>,
        spec: PitSpec,
    ) -> DfResult<Self> {
        let fschema = features.schema();
        if let JoinOp::Windows { aggs, has_values } = &spec.op
            && (aggs.len() != spec.value_idx.len() || has_values.len() != aggs.len())
        {
            return Err(DataFusionError::Plan(format!(
                "PitJoinExec: {} aggregations for {} value columns",
                aggs.len(),
                spec.value_idx.len()
            )));
        }
        let mut fields = vec![Field::new(ROW, DataType::UInt32, false)];
        for (n, &i) in spec.value_idx.iter().enumerate() {
            let f = fschema.fields().get(i).ok_or_else(|| {
                DataFusionError::Plan(format!("PitJoinExec: no value column {i}"))
            })?;
            let dt = match &spec.op {
                JoinOp::Latest { .. } => f.data_type().clone(),
                JoinOp::Windows { aggs, .. } => aggs[n].output(),
            };
            fields.push(Field::new(f.name(), dt, true));
        }
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let props = final_properties(&schema, entities.output_partitioning().partition_count());
        Ok(PitJoinExec {
            entities,
            features,
            spec,
            schema,
            props,
        })
    }

    /// The view's join parameters.
    pub fn spec(&self) -> &PitSpec {
        &self.spec
    }

    /// The key columns of each side, as expressions (what both sides are partitioned on).
    fn key_exprs(&self) -> (Exprs, Exprs) {
        key_exprs(
            &self.entities.schema(),
            &self.features.schema(),
            self.spec.nkeys,
        )
    }
}

/// Physical expressions.
pub type Exprs = Vec<Arc<dyn PhysicalExpr>>;

/// The properties of an operator that emits each of its `partitions` once all of that
/// partition's input is in (a join, a fold), in no particular order or partitioning.
pub fn final_properties(schema: &SchemaRef, partitions: usize) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(Arc::clone(schema)),
        Partitioning::UnknownPartitioning(partitions),
        EmissionType::Final,
        Boundedness::Bounded,
    ))
}

/// The key columns of an entity side and a feature frame, as expressions.
pub fn key_exprs(entities: &Schema, features: &Schema, nkeys: usize) -> (Exprs, Exprs) {
    let col = |s: &Schema, i: usize| -> Arc<dyn PhysicalExpr> {
        Arc::new(Column::new(s.field(i).name(), i))
    };
    (
        (1..=nkeys).map(|i| col(entities, i)).collect(),
        (0..nkeys).map(|i| col(features, i)).collect(),
    )
}

impl DisplayAs for PitJoinExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match &self.spec.op {
            JoinOp::Latest { ttl_micros, .. } => write!(
                f,
                "PitJoinExec: source={}, keys={}, latest, ttl_us={ttl_micros}",
                self.spec.source.name, self.spec.nkeys
            ),
            JoinOp::Windows { aggs, .. } => write!(
                f,
                "PitJoinExec: source={}, keys={}, windows={}",
                self.spec.source.name,
                self.spec.nkeys,
                aggs.len()
            ),
        }
    }
}

impl ExecutionPlan for PitJoinExec {
    fn name(&self) -> &str {
        "PitJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        let (e, f) = self.key_exprs();
        InputDistributionRequirements::co_partitioned(vec![
            Distribution::KeyPartitioned(e),
            Distribution::KeyPartitioned(f),
        ])
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.entities, &self.features]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        apply_expression_roots(std::iter::empty::<&Arc<dyn PhysicalExpr>>(), _f)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let [entities, features]: [Arc<dyn ExecutionPlan>; 2] = children
            .try_into()
            .map_err(|_| DataFusionError::Plan("PitJoinExec has two children".into()))?;
        Ok(Arc::new(PitJoinExec::try_new(
            entities,
            features,
            self.spec.clone(),
        )?))
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        ctx: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let entities = self.entities.execute(partition, Arc::clone(&ctx))?;
        let features = self.features.execute(partition, ctx)?;
        let (spec, schema) = (self.spec.clone(), Arc::clone(&self.schema));
        let value_schema: SchemaRef = Arc::new(
            self.features
                .schema()
                .project(&spec.value_idx)
                .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))?,
        );
        let out = Arc::clone(&schema);
        let joined = async move {
            match &spec.op {
                JoinOp::Latest { .. } => {
                    join_partition(entities, features, &spec, value_schema, out).await
                }
                JoinOp::Windows { .. } => window_partition(entities, features, &spec, out).await,
            }
            .map_err(|e| DataFusionError::External(Box::new(e)))
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(joined),
        )))
    }
}

/// One partition's join: the entity rows gathered and indexed, the feature rows probed as they
/// stream.
async fn join_partition(
    entities: SendableRecordBatchStream,
    features: SendableRecordBatchStream,
    spec: &PitSpec,
    value_schema: SchemaRef,
    out: SchemaRef,
) -> crate::Result<RecordBatch> {
    let JoinOp::Latest {
        has_created,
        ttl_micros,
    } = spec.op
    else {
        return Err(Error::Internal("join_partition of windows".into()));
    };
    let ents = gather(entities).await?;
    let rows = Arc::clone(ents.column(0));
    let key_cols: Vec<ArrayRef> = ents.columns()[1..=spec.nkeys].to_vec();
    let ts = micros(ents.column(spec.nkeys + 1))?;
    let (space, ids) = KeySpace::build(&key_cols)?;
    let index = Arc::new(EntityIndex::from_ids(
        &ids,
        space.len(),
        &ts,
        space.dense_min().unwrap_or(0),
        |_| 0,
        1,
    ));
    let keys = Arc::new(EntityKeys {
        space,
        index: Arc::clone(&index),
    });
    let mut join = PartitionedJoin::new(Arc::clone(&index), ttl_micros, value_schema);
    let layout = Layout {
        nkeys: spec.nkeys,
        has_created,
        chunk_rows: crate::engine::chunk_rows(&features.schema()),
    };
    // Rows are probed in chunks per scan partition (their `__quiver_part`), in the order each
    // partition sent them, so that an exact tie goes to the later partition and, within one, to
    // the later row: the order of one sequential scan, as in the engine's own join.
    let mut pending: std::collections::BTreeMap<u32, (Vec<RecordBatch>, usize)> =
        Default::default();
    let mut flush = |part: u32, batches: &[RecordBatch]| {
        crate::engine::with_candidates(&keys, batches, layout, &spec.value_idx, |chunk| {
            join.push(chunk, part)
        })
    };
    by_scan_partition(features, &spec.source, |part, slice| {
        let (held, rows) = pending.entry(part).or_default();
        *rows += slice.num_rows();
        held.push(slice);
        if *rows >= layout.chunk_rows {
            let (held, _) = pending.remove(&part).expect("just added");
            flush(part, &held)?;
        }
        Ok(())
    })
    .await?;
    for (part, (held, _)) in pending {
        flush(part, &held)?;
    }
    let mut columns = vec![rows];
    columns.extend(join.finish()?);
    if columns[0].data_type() != &DataType::UInt32 {
        return Err(Error::Internal(format!(
            "PitJoinExec: {ROW} is {}, not UInt32",
            columns[0].data_type()
        )));
    }
    Ok(RecordBatch::try_new(out, columns)?)
}

/// One partition's windowed aggregations: the entity rows and the events gathered, the events
/// in the order of one sequential scan (by scan partition, then as each partition sent them),
/// then [`aggregate_events`] as the engine's own path runs it.
async fn window_partition(
    entities: SendableRecordBatchStream,
    features: SendableRecordBatchStream,
    spec: &PitSpec,
    out: SchemaRef,
) -> crate::Result<RecordBatch> {
    let JoinOp::Windows { aggs, has_values } = &spec.op else {
        return Err(Error::Internal("window_partition of a latest join".into()));
    };
    let ents = gather(entities).await?;
    let keys = encode_keys(&ents.columns()[1..=spec.nkeys])?;
    let ts = micros(ents.column(spec.nkeys + 1))?;
    let fschema = features.schema();
    let mut by_part: std::collections::BTreeMap<u32, Vec<RecordBatch>> = Default::default();
    by_scan_partition(features, &spec.source, |part, slice| {
        by_part.entry(part).or_default().push(slice);
        Ok(())
    })
    .await?;
    let ordered: Vec<RecordBatch> = by_part.into_values().flatten().collect();
    let events = concat_batches(&fschema, &ordered)?;
    let values: Vec<Option<usize>> = spec
        .value_idx
        .iter()
        .zip(has_values)
        .map(|(i, has)| has.then_some(*i))
        .collect();
    let mut columns = vec![Arc::clone(ents.column(0))];
    columns.extend(aggregate_events(
        &events,
        spec.nkeys,
        &values,
        aggs,
        &keys,
        &ts,
        &spec.source,
    )?);
    Ok(RecordBatch::try_new(out, columns)?)
}

/// All of a stream's batches as one.
async fn gather(stream: SendableRecordBatchStream) -> crate::Result<RecordBatch> {
    let schema = stream.schema();
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    Ok(concat_batches(&schema, &batches)?)
}

/// Hands each run of rows of the feature side that share a scan partition (its last column,
/// `__quiver_part`) to `each`, in the order they arrive; stream errors name `source`.
async fn by_scan_partition(
    mut features: SendableRecordBatchStream,
    source: &Source,
    mut each: impl FnMut(u32, RecordBatch) -> crate::Result<()>,
) -> crate::Result<()> {
    let tag = features.schema().fields().len() - 1;
    while let Some(batch) = features.next().await {
        let batch =
            batch.map_err(|e| crate::source::source_error(source, crate::source::clean(e)))?;
        let parts = batch.column(tag).as_primitive::<UInt32Type>().clone();
        let mut start = 0;
        while start < batch.num_rows() {
            let part = parts.value(start);
            let mut end = start + 1;
            while end < batch.num_rows() && parts.value(end) == part {
                end += 1;
            }
            each(part, batch.slice(start, end - start))?;
            start = end;
        }
    }
    Ok(())
}

/// The entity side of one view's join: each entity row's position, its key columns and time.
pub fn entity_batch(key_columns: &[ArrayRef], ts: &[Option<i64>]) -> crate::Result<RecordBatch> {
    let n = ts.len();
    let mut fields = vec![Field::new(ROW, DataType::UInt32, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(UInt32Array::from_iter_values(0..n as u32))];
    for (i, c) in key_columns.iter().enumerate() {
        fields.push(Field::new(
            format!("__quiver_k{i}"),
            c.data_type().clone(),
            true,
        ));
        columns.push(Arc::clone(c));
    }
    fields.push(Field::new(TS, crate::types::timestamp_type(), true));
    columns.push(Arc::new(
        datafusion::arrow::array::TimestampMicrosecondArray::from(ts.to_vec()).with_timezone("UTC"),
    ));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// The value columns of [`PitJoinExec`]'s output batches (from every partition, in any order)
/// as columns of `n` rows in entity order, by `__quiver_row`.
pub fn in_entity_order(batches: &[RecordBatch], n: usize) -> crate::Result<Vec<ArrayRef>> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::UInt32Type;
    let Some(first) = batches.first() else {
        return Err(Error::Internal("PitJoinExec returned no batch".into()));
    };
    let all = concat_batches(&first.schema(), batches)?;
    if all.num_rows() != n {
        return Err(Error::Internal(format!(
            "PitJoinExec returned {} rows for {n} entity rows",
            all.num_rows()
        )));
    }
    // Where each entity row is in `all`.
    let mut at = vec![u32::MAX; n];
    for (i, r) in all
        .column(0)
        .as_primitive::<UInt32Type>()
        .values()
        .iter()
        .enumerate()
    {
        at[*r as usize] = i as u32;
    }
    if at.contains(&u32::MAX) {
        return Err(Error::Internal("PitJoinExec lost an entity row".into()));
    }
    let take = UInt32Array::from(at);
    all.columns()[1..]
        .iter()
        .map(|c| Ok(datafusion::arrow::compute::take(c, &take, None)?))
        .collect()
}

/// Appends `__quiver_part` (`UInt32`, the partition number) to every row of its input: what
/// [`PitJoinExec`] orders exact ties by after a shuffle has interleaved the partitions.
#[derive(Debug)]
pub struct PartTagExec {
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    props: Arc<PlanProperties>,
}

impl PartTagExec {
    /// `input` with its partition number as a last column.
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        let mut fields: Vec<Field> = input
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(PART, DataType::UInt32, false));
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let props = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            input.output_partitioning().clone(),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        PartTagExec {
            input,
            schema,
            props,
        }
    }
}

impl DisplayAs for PartTagExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "PartTagExec")
    }
}

impl ExecutionPlan for PartTagExec {
    crate::one_child_exec!("PartTagExec", |_old, input| PartTagExec::new(input));

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn execute(
        &self,
        partition: usize,
        ctx: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, ctx)?;
        let schema = Arc::clone(&self.schema);
        let out = Arc::clone(&schema);
        let tagged = input.map(move |b| {
            let b = b?;
            let mut columns = b.columns().to_vec();
            columns.push(Arc::new(UInt32Array::from(vec![
                partition as u32;
                b.num_rows()
            ])));
            Ok(RecordBatch::try_new(Arc::clone(&out), columns)?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, tagged)))
    }
}

/// What [`LatestExec`] needs besides its input (what a cluster's plan carries of it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatestSpec {
    /// The view's source (named in errors).
    pub source: Source,
    /// Join keys of the view (the input's first columns).
    pub nkeys: usize,
    /// Whether the input has a created-timestamp column after the event timestamp.
    pub has_created: bool,
    /// The input's columns kept: the keys, then the values.
    pub keep: Vec<usize>,
}

/// The latest row per key of a plain view's prepared frame, hash-partitioned on its keys: what
/// `latest` (materialization, snapshots, checks) computes, one task per partition on a cluster.
/// Partition `p` of the output is one row per key of input partition `p`: the kept key and
/// value columns, then the chosen row's event time as `__quiver_ts`. The rule (latest event
/// time, then created time) is the engine's own ([`crate::engine`]'s `latest_per_key`).
#[derive(Debug)]
pub struct LatestExec {
    input: Arc<dyn ExecutionPlan>,
    spec: LatestSpec,
    schema: SchemaRef,
    props: Arc<PlanProperties>,
}

impl LatestExec {
    /// The latest rows of `input` (see the type's documentation).
    pub fn try_new(input: Arc<dyn ExecutionPlan>, spec: LatestSpec) -> DfResult<Self> {
        let ischema = input.schema();
        let mut fields = Vec::with_capacity(spec.keep.len() + 1);
        for &i in &spec.keep {
            let f = ischema
                .fields()
                .get(i)
                .ok_or_else(|| DataFusionError::Plan(format!("LatestExec: no column {i}")))?;
            fields.push(f.as_ref().clone().with_nullable(true));
        }
        fields.push(Field::new(TS, crate::types::timestamp_type(), false));
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let props = final_properties(&schema, input.output_partitioning().partition_count());
        Ok(LatestExec {
            input,
            spec,
            schema,
            props,
        })
    }

    /// The view's parameters.
    pub fn spec(&self) -> &LatestSpec {
        &self.spec
    }
}

impl DisplayAs for LatestExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "LatestExec: source={}, keys={}",
            self.spec.source.name, self.spec.nkeys
        )
    }
}

impl ExecutionPlan for LatestExec {
    crate::one_child_exec!("LatestExec", |old, input| LatestExec::try_new(
        input,
        old.spec.clone()
    )?);

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        let s = self.input.schema();
        let (_, keys) = key_exprs(&s, &s, self.spec.nkeys);
        InputDistributionRequirements::new(vec![Distribution::KeyPartitioned(keys)])
    }

    fn execute(
        &self,
        partition: usize,
        ctx: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, ctx)?;
        let (spec, schema) = (self.spec.clone(), Arc::clone(&self.schema));
        let out = Arc::clone(&schema);
        let latest = async move {
            let layout = Layout {
                nkeys: spec.nkeys,
                has_created: spec.has_created,
                chunk_rows: crate::engine::PROBE_ROWS,
            };
            let (mut columns, ts) =
                crate::engine::latest_per_key(input, &spec.source, layout, &spec.keep).await?;
            columns.push(Arc::new(
                datafusion::arrow::array::TimestampMicrosecondArray::from(ts).with_timezone("UTC"),
            ));
            Ok::<_, Error>(RecordBatch::try_new(out, columns)?)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(async move {
                latest
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))
            }),
        )))
    }
}

/// [`LatestExec`]'s output batches (from every partition) as the kept columns and event times,
/// each key once: a key twice (a partition a cluster sent twice) is an error.
pub fn latest_rows(
    batches: &[RecordBatch],
    nkeys: usize,
) -> crate::Result<(Vec<ArrayRef>, Vec<i64>)> {
    let Some(first) = batches.first() else {
        return Err(Error::Internal("LatestExec returned no batch".into()));
    };
    let all = concat_batches(&first.schema(), batches)?;
    let keys = encode_keys(&all.columns()[..nkeys])?;
    let distinct: std::collections::HashSet<_> = keys.iter().flatten().collect();
    if distinct.len() != all.num_rows() {
        return Err(Error::Output(format!(
            "the job returned {} rows for {} keys (an executor lost during the job can make Ballista return a partition twice); nothing was written: run it again",
            all.num_rows(),
            distinct.len()
        )));
    }
    let mut columns = all.columns().to_vec();
    let ts = columns.pop().expect("the time column");
    let ts = micros(&ts)?.into_iter().map(|t| t.unwrap_or(0)).collect();
    Ok((columns, ts))
}

/// The members every one-child Quiver operator implements alike (`name`, `properties`,
/// `schema`, `children`, `apply_expressions`, `replace_children`, `with_new_children`), for
/// a struct with fields `input`, `schema` and `props`: `$rebuild` makes the operator again
/// over a new input `$input` (with `$this` the old one). Used inside `impl ExecutionPlan`.
#[macro_export]
macro_rules! one_child_exec {
    ($name:literal, |$this:ident, $input:ident| $rebuild:expr) => {
        fn name(&self) -> &str {
            $name
        }

        fn properties(&self) -> &::std::sync::Arc<::datafusion::physical_plan::PlanProperties> {
            &self.props
        }

        fn schema(&self) -> ::datafusion::arrow::datatypes::SchemaRef {
            ::std::sync::Arc::clone(&self.schema)
        }

        fn children(
            &self,
        ) -> ::std::vec::Vec<&::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>> {
            vec![&self.input]
        }

        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(
                &::std::sync::Arc<dyn ::datafusion::physical_plan::PhysicalExpr>,
            ) -> ::datafusion::error::Result<
                ::datafusion::common::tree_node::TreeNodeRecursion,
            >,
        ) -> ::datafusion::error::Result<::datafusion::common::tree_node::TreeNodeRecursion> {
            Ok(::datafusion::common::tree_node::TreeNodeRecursion::Continue)
        }

        fn replace_children(
            self: ::std::sync::Arc<Self>,
            mut children: ::std::vec::Vec<
                ::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>,
            >,
            _options: ::datafusion::physical_plan::ReplaceChildrenOptions,
        ) -> ::datafusion::error::Result<
            ::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>,
        > {
            let $input = children.pop().ok_or_else(|| {
                ::datafusion::error::DataFusionError::Plan(format!("{} has one child", $name))
            })?;
            let $this = self;
            Ok(::std::sync::Arc::new($rebuild))
        }

        #[allow(deprecated)]
        fn with_new_children(
            self: ::std::sync::Arc<Self>,
            children: ::std::vec::Vec<
                ::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>,
            >,
        ) -> ::datafusion::error::Result<
            ::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>,
        > {
            self.replace_children(
                children,
                ::datafusion::physical_plan::ReplaceChildrenOptions::new(
                    ::datafusion::physical_plan::ChildrenPropertiesMode::Recompute,
                ),
            )
        }
    };
}
