//! Times the offline engine's point-in-time join alone, phase by phase, without the CLI
//! (no registry database, no output file): for profiling the join.
//!
//!     cargo run --release -p quiver-offline --example historical_profile -- \
//!         REPO ENTITIES.parquet view:feature,... [RUNS]
//!
//! REPO is read as `quiver apply` would read it (its YAML), not from a stored registry.

use std::path::Path;
use std::time::Instant;

use quiver_offline::engine::no_progress;
use quiver_offline::{HistoricalOptions, OfflineEngine};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [repo, entities, features, rest @ ..] = args.as_slice() else {
        return Err("usage: historical_profile REPO ENTITIES view:feature,... [RUNS]".into());
    };
    let runs: usize = rest.first().map(|r| r.parse()).transpose()?.unwrap_or(3);
    let registry = quiver_core::repo::load_registry(Path::new(repo))?;
    let engine = OfflineEngine::new(registry, repo);
    let wanted: Vec<String> = features.split(',').map(str::to_string).collect();
    let refs = engine.registry().resolve_features(&wanted)?;
    for run in 1..=runs {
        let t = Instant::now();
        let table = engine.read_table(Path::new(entities)).await?;
        let read = t.elapsed();
        let out = engine
            .historical(
                &table,
                &refs,
                &HistoricalOptions::default(),
                entities,
                &no_progress(),
            )
            .await?;
        println!(
            "run {run}: {} rows x {} columns; read entities {:.3} s, join {:.3} s",
            out.num_rows(),
            out.num_columns(),
            read.as_secs_f64(),
            (t.elapsed() - read).as_secs_f64()
        );
    }
    Ok(())
}
