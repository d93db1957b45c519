//! # quiver-cluster
//!
//! Quiver's offline engine on an Apache DataFusion Ballista cluster (issue 28), with the stock
//! Ballista scheduler and executors, not a cluster of our own making:
//!
//! * [`QuiverCodec`] serializes Quiver's operators ([`PitJoinExec`], [`LatestExec`],
//!   [`PartTagExec`], the quality checks' [`FoldExec`]) inside Ballista's physical plans (a tag byte Ballista's own protobuf
//!   messages never start with, then the operator's parameters as JSON); everything else goes
//!   to Ballista's codec.
//! * [`session_state`] is the session every process plans and decodes with: DataFusion's
//!   functions plus Quiver's transforms and `embed_text`, so executors run view frames that call
//!   them.
//! * [`run_scheduler`] and [`run_executor`] are `quiver cluster scheduler` and `quiver cluster
//!   executor`: Ballista's own processes, given that codec and those functions.
//! * [`BallistaRunner`] is the engine's [`PlanRunner`] for `offline_engine: {type: ballista}`:
//!   it submits physical plans to the scheduler, which cuts them into stages at the shuffles,
//!   and collects their rows: the point-in-time join and the windowed aggregations (both sides
//!   shuffled by the join keys, a `PitJoinExec` per partition), and the latest row per key that
//!   materialization and snapshots read (a `LatestExec` per partition).

use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::SessionConfigExt;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::BallistaPhysicalExtensionCodec;
use datafusion::arrow::array::RecordBatch;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SessionState, SessionStateBuilder, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use futures::future::BoxFuture;
use quiver_monitor::quality::fold_exec::FoldExec;
use quiver_offline::engine::PlanRunner;
use quiver_offline::pit_exec::{LatestExec, LatestSpec, PartTagExec, PitJoinExec, PitSpec};

/// The first byte of a Quiver operator's encoding: protobuf field number 0 is invalid, so no
/// message of Ballista's codec starts with it.
const TAG: u8 = 0;

/// Quiver's operators in Ballista's physical plans (see the crate documentation).
#[derive(Debug, Default)]
pub struct QuiverCodec {
    inner: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for QuiverCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let Some((&TAG, rest)) = buf.split_first() else {
            return self.inner.try_decode(buf, inputs, ctx, proto_converter);
        };
        let v: serde_json::Value = serde_json::from_slice(rest)
            .map_err(|e| DataFusionError::Internal(format!("Quiver operator in plan: {e}")))?;
        match (v["op"].as_str(), inputs) {
            (Some("pit_join"), [entities, features]) => {
                let spec: PitSpec = serde_json::from_value(v["spec"].clone()).map_err(|e| {
                    DataFusionError::Internal(format!("PitJoinExec: bad parameters in plan: {e}"))
                })?;
                Ok(Arc::new(PitJoinExec::try_new(
                    Arc::clone(entities),
                    Arc::clone(features),
                    spec,
                )?))
            }
            (Some("latest"), [input]) => {
                let spec: LatestSpec = serde_json::from_value(v["spec"].clone()).map_err(|e| {
                    DataFusionError::Internal(format!("LatestExec: bad parameters in plan: {e}"))
                })?;
                Ok(Arc::new(LatestExec::try_new(Arc::clone(input), spec)?))
            }
            (Some("part_tag"), [input]) => Ok(Arc::new(PartTagExec::new(Arc::clone(input)))),
            (Some("quality_fold"), [input]) => Ok(Arc::new(FoldExec::from_params(
                Arc::clone(input),
                &v["spec"],
            )?)),
            (op, _) => Err(DataFusionError::Internal(format!(
                "unknown Quiver operator {op:?} with {} inputs: are the scheduler and executors the same quiver version?",
                inputs.len()
            ))),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        let v = if let Some(j) = node.downcast_ref::<PitJoinExec>() {
            serde_json::json!({"op": "pit_join", "spec": j.spec()})
        } else if let Some(l) = node.downcast_ref::<LatestExec>() {
            serde_json::json!({"op": "latest", "spec": l.spec()})
        } else if let Some(f) = node.downcast_ref::<FoldExec>() {
            serde_json::json!({"op": "quality_fold", "spec": f.params()})
        } else if node.downcast_ref::<PartTagExec>().is_some() {
            serde_json::json!({"op": "part_tag"})
        } else {
            return self.inner.try_encode(node, buf, proto_converter);
        };
        buf.push(TAG);
        serde_json::to_writer(&mut *buf, &v).map_err(|e| DataFusionError::Internal(e.to_string()))
    }
}

/// The session every cluster process plans and decodes with: `config`, DataFusion's default
/// functions, Quiver's transforms and `embed_text`, and `s3://` buckets opened on demand.
pub fn session_state(config: SessionConfig) -> DfResult<SessionState> {
    // The scheduler decodes plans that scan s3:// sources: it needs a store for each bucket
    // (it reads no data; the executors open theirs with their own settings).
    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(quiver_offline::remote::BucketsOnDemand::new(
            Default::default(),
        )))
        .build_arc()?;
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
        .build();
    let ctx = SessionContext::new_with_state(state);
    quiver_transforms::register(&ctx);
    ctx.register_udf(quiver_offline::embed_udf::embed_text());
    Ok(ctx.state())
}

/// The largest gRPC message between the client, the scheduler and the executors (Ballista's
/// default is 16 MiB): a join's entity rows travel inside its plan, 20 bytes per row for one
/// integer key (1M rows: 20 MB).
pub const MAX_MESSAGE_BYTES: u32 = 1 << 30;

/// How long (seconds) the scheduler waits for an executor's heartbeat before it takes the
/// executor as lost and runs its tasks elsewhere (Ballista's default is 180).
pub const EXECUTOR_TIMEOUT_SECONDS: u64 = 20;

/// Runs a Ballista scheduler on `host:port` that knows Quiver's operators and functions, until
/// the process ends.
pub async fn run_scheduler(host: &str, port: u16) -> Result<(), String> {
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    let config = SchedulerConfig {
        bind_host: host.to_string(),
        external_host: host.to_string(),
        bind_port: port,
        scheduling_policy: TaskSchedulingPolicy::PullStaged,
        override_session_builder: Some(Arc::new(session_state)),
        override_physical_codec: Some(Arc::new(QuiverCodec::default())),
        executor_timeout_seconds: EXECUTOR_TIMEOUT_SECONDS,
        expire_dead_executor_interval_seconds: 2,
        no_executors_grace_period_seconds: EXECUTOR_TIMEOUT_SECONDS,
        grpc_server_max_decoding_message_size: MAX_MESSAGE_BYTES,
        grpc_server_max_encoding_message_size: MAX_MESSAGE_BYTES,
        grpc_client_max_message_size: MAX_MESSAGE_BYTES,
        ..Default::default()
    };
    let addr: std::net::SocketAddr = format!("{host}:{port}")
        .parse()
        .map_err(|e| format!("{host}:{port}: {e}"))?;
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| e.to_string())?;
    ballista_scheduler::scheduler_process::start_server(cluster, addr, Arc::new(config))
        .await
        .map_err(|e| e.to_string())
}

/// Where an executor listens and what it connects to.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's host and port.
    pub scheduler: (String, u16),
    /// The address it binds and tells the scheduler (the clients fetch results from it).
    pub host: String,
    /// Its Arrow Flight port (shuffle data and results); the next port is its gRPC port.
    pub port: u16,
    /// Where it keeps shuffle files.
    pub work_dir: String,
    /// Tasks at once (0: one per core).
    pub slots: usize,
    /// How it opens `s3://` buckets (the endpoint of an S3-compatible store; credentials come
    /// from its environment).
    pub storage: quiver_core::yaml::RawStorage,
}

/// Runs a Ballista executor that knows Quiver's operators and functions, until the process
/// ends.
pub async fn run_executor(o: ExecutorOptions) -> Result<(), String> {
    use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
    let state = session_state(SessionConfig::new_with_ballista()).map_err(|e| e.to_string())?;
    let (work_dir, storage) = (o.work_dir.clone(), o.storage.clone());
    let config = ExecutorProcessConfig {
        bind_host: o.host.clone(),
        external_host: Some(o.host.clone()),
        port: o.port,
        grpc_port: o.port + 1,
        scheduler_host: o.scheduler.0.clone(),
        scheduler_port: o.scheduler.1,
        scheduler_connect_timeout_seconds: 30,
        vcores: o.slots,
        work_dir: Some(o.work_dir.clone()),
        task_scheduling_policy: TaskSchedulingPolicy::PullStaged,
        override_function_registry: Some(Arc::new(BallistaFunctionRegistry::from(&state))),
        override_physical_codec: Some(Arc::new(QuiverCodec::default())),
        // Sources in s3:// buckets, opened when a task first reads them, with the executor's
        // own credentials and endpoint (its environment, or `--storage-endpoint`).
        override_runtime_producer: Some(Arc::new(move |_| {
            Ok(Arc::new(
                datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
                    .with_temp_file_path(work_dir.clone())
                    .with_object_store_registry(Arc::new(
                        quiver_offline::remote::BucketsOnDemand::new(storage.clone()),
                    ))
                    .build()?,
            ))
        })),
        grpc_max_decoding_message_size: MAX_MESSAGE_BYTES,
        grpc_max_encoding_message_size: MAX_MESSAGE_BYTES,
        ..Default::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| e.to_string())
}

/// The engine's connector to a cluster (see [`quiver_offline::engine::set_cluster_connector`]).
pub fn connect(url: &str, partitions: usize) -> Result<Arc<dyn PlanRunner>, String> {
    Ok(Arc::new(BallistaRunner::new(url, partitions)?))
}

/// Runs point-in-time joins on a Ballista cluster: `offline_engine: {type: ballista, url:
/// df://HOST:PORT}`.
#[derive(Debug, Clone)]
pub struct BallistaRunner {
    url: String,
    partitions: usize,
}

impl BallistaRunner {
    /// The runner for the scheduler at `url` (`df://HOST:PORT`), shuffling joins into
    /// `partitions` hash partitions of the keys.
    pub fn new(url: &str, partitions: usize) -> Result<Self, String> {
        let rest = url.strip_prefix("df://").ok_or_else(|| {
            format!("offline_engine.url: {url}: use df://HOST:PORT (the Ballista scheduler)")
        })?;
        Ok(BallistaRunner {
            url: format!("http://{}", rest.trim_end_matches('/')),
            partitions: partitions.max(1),
        })
    }
}

impl PlanRunner for BallistaRunner {
    fn partitions(&self) -> usize {
        self.partitions
    }

    fn run(&self, plan: Arc<dyn ExecutionPlan>) -> BoxFuture<'static, DfResult<Vec<RecordBatch>>> {
        let url = self.url.clone();
        Box::pin(async move {
            use datafusion_proto::protobuf::PhysicalPlanNode;
            let mut config = SessionConfig::new_with_ballista();
            config.options_mut().set(
                "ballista.client.grpc_max_message_size",
                &MAX_MESSAGE_BYTES.to_string(),
            )?;
            let session_id = format!(
                "quiver-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            );
            let stream = ballista_core::execution_plans::execute_physical_plan::<PhysicalPlanNode>(
                url.clone(),
                &config.ballista_config(),
                plan,
                &QuiverCodec::default(),
                session_id,
                config,
            )
            .await
            .map_err(|e| DataFusionError::Execution(format!("Ballista scheduler {url}: {e}")))?;
            datafusion::physical_plan::common::collect(stream).await
        })
    }
}
