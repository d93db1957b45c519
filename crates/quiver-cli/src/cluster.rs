//! `quiver cluster scheduler` and `quiver cluster executor`: Ballista's own processes, with
//! Quiver's operators and functions (`quiver-cluster`).

use clap::Subcommand;

use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Run a Ballista scheduler that knows Quiver's operators, in the foreground.
    ///
    /// Point `offline_engine: {type: ballista, url: df://HOST:PORT}` in quiver.yaml at it, and
    /// start executors with `quiver cluster executor --scheduler HOST:PORT`. `historical` then
    /// shuffles each view's point-in-time join by the join keys across the executors. An
    /// executor that stops answering for 20 s is taken as lost and its tasks run again on the
    /// others.
    Scheduler {
        /// Address to bind (and give executors).
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port (gRPC and Arrow Flight).
        #[arg(long, default_value_t = 50050)]
        port: u16,
    },
    /// Run a Ballista executor that knows Quiver's operators and functions, in the foreground.
    ///
    /// It reads the sources itself: local paths must be the same on every executor as on the
    /// machine that runs `historical` (a shared filesystem); `s3://` sources are read with the
    /// executor's own AWS_* credentials, and its endpoint from `--storage-endpoint` (else
    /// AWS_ENDPOINT_URL), like `storage:` in quiver.yaml.
    ///
    /// Example: quiver cluster executor --scheduler 10.0.0.5:50050 --port 50051
    Executor {
        /// The scheduler, HOST:PORT.
        #[arg(long, value_name = "HOST:PORT")]
        scheduler: String,
        /// Address to bind and tell the scheduler (clients fetch results from it).
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Arrow Flight port (shuffle data and results); the next port is its gRPC port.
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// Folder for shuffle files (default: a temporary folder).
        #[arg(long, value_name = "DIR")]
        work_dir: Option<std::path::PathBuf>,
        /// Tasks at once (default: one per core).
        #[arg(long, default_value_t = 0)]
        slots: usize,
        /// Endpoint of an S3-compatible store for `s3://` sources (default: AWS_ENDPOINT_URL,
        /// else AWS).
        #[arg(long, value_name = "URL")]
        storage_endpoint: Option<String>,
        /// Region of the `s3://` buckets (default: AWS_REGION).
        #[arg(long, value_name = "REGION")]
        storage_region: Option<String>,
    },
}

pub async fn run(cmd: ClusterCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Scheduler { host, port } => {
            out.say(format!("Ballista scheduler for Quiver on {host}:{port}"));
            quiver_cluster::run_scheduler(&host, port)
                .await
                .map_err(|e| anyhow::anyhow!("scheduler: {e}"))
        }
        ClusterCommand::Executor {
            scheduler,
            host,
            port,
            work_dir,
            slots,
            storage_endpoint,
            storage_region,
        } => {
            let (shost, sport) = scheduler
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| anyhow::anyhow!("--scheduler {scheduler}: use HOST:PORT"))?;
            let tmp;
            let work_dir = match work_dir {
                Some(d) => {
                    std::fs::create_dir_all(&d)?;
                    d
                }
                None => {
                    tmp = tempfile::tempdir()?;
                    tmp.path().to_path_buf()
                }
            };
            out.say(format!(
                "Ballista executor for Quiver on {host}:{port}, scheduler {shost}:{sport}"
            ));
            quiver_cluster::run_executor(quiver_cluster::ExecutorOptions {
                scheduler: (shost, sport),
                host,
                port,
                work_dir: work_dir.display().to_string(),
                slots,
                storage: quiver_core::yaml::RawStorage {
                    endpoint: storage_endpoint,
                    region: storage_region,
                },
            })
            .await
            .map_err(|e| anyhow::anyhow!("executor: {e}"))
        }
    }
}
