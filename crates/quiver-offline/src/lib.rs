//! # quiver-offline
//!
//! The offline engine: reads sources into Arrow, computes features as of any point in time.
//!
//! * [`source`] turns a registry [`Source`](quiver_core::Source) (Parquet or CSV files, a
//!   PostgreSQL table or query) into a DataFusion `DataFrame`; DataFusion pushes projections and
//!   filters into the scan and evaluates the SQL of derived features and aggregation filters.
//! * [`pit_join`] is Quiver's own point-in-time join: for each entity row, the latest feature row
//!   with the same keys and a timestamp in `[t - ttl, t]`, ties broken by the created timestamp.
//!   It streams the feature table once, probing a hash index of the entity rows, and keeps only
//!   rows that are still the best match for some entity row, so memory follows the entity table,
//!   not the feature table.
//! * [`window_agg`] computes windowed aggregations (count, sum, mean, ... over `(t - window, t]`)
//!   as of each entity timestamp, from raw events.
//! * [`engine::OfflineEngine`] ties these to the registry: `historical` (training sets),
//!   `latest` (what the materializer loads online), `validate` (schema checks at apply time).
//!
//! Timestamps are UTC microseconds; naive timestamps are read as UTC.

pub mod embed_udf;
pub mod engine;
pub mod error;
pub mod key;
pub mod key_space;
pub mod parquet_out;
pub mod pit_exec;
pub mod pit_join;
pub mod remote;
pub mod request_view;
pub mod snapshot;
pub mod source;
pub mod types;
pub mod window_agg;

pub use engine::{HistoricalOptions, OfflineEngine, set_local_file_store};
pub use error::{Error, Result};
pub use request_view::CompiledRequestView;
