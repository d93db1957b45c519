//! `quiver init`: a new repository with commented examples.

use std::path::Path;

use anyhow::{Context, bail};

use crate::output::Output;

const MAIN: &str = r#"# Quiver repository. Definitions live here and in any *.yaml under features/.
# Check them with `quiver plan`, store them with `quiver apply`.
project: PROJECT

# Metadata store (default: SQLite at .quiver/registry.db). For a team, share one PostgreSQL:
# registry: postgresql://user@host:5432/quiver

entities:
  - name: user
    join_keys: [user_id]          # several keys make a composite key
    value_type: int64             # int64 | int32 | string
    description: A customer.

sources:
  - name: user_stats
    type: parquet                 # parquet | csv | postgres
    path: data/user_stats.parquet # file, directory or glob, relative to this folder
    timestamp_field: event_timestamp
    # created_timestamp_field: created   # breaks ties between rows with equal timestamps
  # - name: orders
  #   type: postgres
  #   connection: $ORDERS_DB_URL  # a URL, or $VAR to read it from the environment
  #   table: orders               # or: query: "select ... from ..."
  #   timestamp_field: ordered_at
"#;

const FEATURES: &str = r#"# Feature views: features read from a source, as of any point in time.
feature_views:
  - name: user_stats
    entities: [user]
    source: user_stats
    ttl: 30d                      # s, m, h, d, w; 0 or absent = values never expire
    description: Daily user statistics.
    features:
      - {name: orders_7d, type: int64}
      - {name: spend_7d, type: float64}
      - {name: log_spend_7d, type: float64, expr: "log1p(spend_7d)"}   # SQL over source columns

  # Windowed aggregations over raw events, computed as of each entity timestamp over
  # (t - window, t] -- no daily snapshot tables needed:
  # - name: user_purchases
  #   entities: [user]
  #   source: events
  #   aggregations:
  #     - {name: purchase_count_30d, function: count, column: amount, window: 30d, filter: "event_type = 'purchase'"}
  #     - {name: avg_purchase_30d, function: mean, column: amount, window: 30d, filter: "event_type = 'purchase'"}
  #     - {name: days_since_last_purchase, function: time_since_last, window: 365d}
  #   functions: count sum mean min max stddev count_distinct last time_since_last

# Feature services: the named feature sets models are trained and served on.
feature_services:
  - name: user_model_v1
    features: ["user_stats:*"]
"#;

pub fn init(dir: &Path, project: Option<&str>, out: &Output) -> anyhow::Result<()> {
    if dir.join("quiver.yaml").exists() {
        bail!(
            "{} already holds a quiver.yaml: not overwriting it",
            dir.display()
        );
    }
    let name = match project {
        Some(p) => p.to_string(),
        None => {
            let abs = std::path::absolute(dir)?;
            abs.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| "project".into())
        }
    };
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("p_{name}")
    } else {
        name
    };
    std::fs::create_dir_all(dir.join("features"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::create_dir_all(dir.join("data"))?;
    std::fs::write(dir.join("quiver.yaml"), MAIN.replace("PROJECT", &name))?;
    std::fs::write(dir.join("features/user_stats.yaml"), FEATURES)?;
    let gi = dir.join(".gitignore");
    if !gi.exists() {
        std::fs::write(gi, ".quiver/\n")?;
    }
    out.say(format!(
        "Created Quiver repository '{name}' in {}:\n  quiver.yaml                entities and sources\n  features/user_stats.yaml   feature views and services (commented examples)\n  data/                      put data/user_stats.parquet here\nNext: quiver --repo {} plan",
        dir.display(),
        dir.display()
    ));
    Ok(())
}
