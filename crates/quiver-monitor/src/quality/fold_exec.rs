//! A quality scan's fold as a DataFusion [`ExecutionPlan`]: what a cluster's tasks run when
//! `offline_engine:` names one, so that the target's rows are read and folded on the executors
//! and only each partition's partial state comes back.
//!
//! [`FoldExec`] has one child, the scan's projection (the raw columns the checks read, then one
//! boolean column per row-level check). Each output partition is one row, one `Binary` column:
//! the partition's partial (row counts, the newest event time, each check's state) as
//! [`Partial::to_bytes`] writes it, folded by the same [`fold_batch`] the local scan runs; the
//! client merges the partials with the same [`merge`](super::scan::merge).

use std::sync::Arc;

use datafusion::arrow::array::{BinaryArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    SendableRecordBatchStream,
};
use futures::StreamExt;

use super::scan::{Partial, Spec, fold_batch};

/// The output column: each partition's partial.
pub const PARTIAL: &str = "__quiver_partial";

/// Folds each partition of its input into one partial (see the module documentation).
#[derive(Debug)]
pub struct FoldExec {
    input: Arc<dyn ExecutionPlan>,
    spec: Arc<Spec>,
    schema: SchemaRef,
    props: Arc<PlanProperties>,
}

impl FoldExec {
    /// The fold of `input`'s partitions by `spec`.
    pub(crate) fn new(input: Arc<dyn ExecutionPlan>, spec: Arc<Spec>) -> Self {
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new(
            PARTIAL,
            DataType::Binary,
            false,
        )]));
        let props = quiver_offline::pit_exec::final_properties(
            &schema,
            input.output_partitioning().partition_count(),
        );
        FoldExec {
            input,
            spec,
            schema,
            props,
        }
    }

    /// The fold's parameters as JSON (what a cluster's plan carries).
    pub fn params(&self) -> serde_json::Value {
        serde_json::to_value(self.spec.as_ref()).expect("JSON of plain values")
    }

    /// The fold of `input` by parameters [`params`](Self::params) gave.
    pub fn from_params(
        input: Arc<dyn ExecutionPlan>,
        params: &serde_json::Value,
    ) -> DfResult<Self> {
        let spec: Spec = serde_json::from_value(params.clone()).map_err(|e| {
            DataFusionError::Internal(format!("FoldExec: bad parameters in plan: {e}"))
        })?;
        Ok(FoldExec::new(input, Arc::new(spec)))
    }
}

impl DisplayAs for FoldExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "FoldExec")
    }
}

impl ExecutionPlan for FoldExec {
    quiver_offline::one_child_exec!("FoldExec", |old, input| FoldExec::new(
        input,
        Arc::clone(&old.spec)
    ));

    fn execute(
        &self,
        partition: usize,
        ctx: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let mut input = self.input.execute(partition, ctx)?;
        let (spec, schema) = (Arc::clone(&self.spec), Arc::clone(&self.schema));
        let out = Arc::clone(&schema);
        let ischema = self.input.schema();
        let folded = async move {
            let external = |e: String| DataFusionError::External(e.into());
            let mut part = Partial::new(&spec, &ischema).map_err(|e| external(e.to_string()))?;
            while let Some(batch) = input.next().await {
                fold_batch(&spec, &mut part, &batch?).map_err(|e| external(e.to_string()))?;
            }
            let bytes = part.finish().to_bytes();
            RecordBatch::try_new(
                out,
                vec![Arc::new(BinaryArray::from_vec(vec![bytes.as_slice()]))],
            )
            .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(folded),
        )))
    }
}
