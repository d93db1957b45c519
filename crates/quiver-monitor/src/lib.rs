//! # quiver-monitor
//!
//! Watches the data Quiver builds and serves: data-quality checks declared in the registry,
//! drift between a reference and a current data set (Evidently's DataDriftPreset semantics),
//! and online/offline consistency. Computed on `quiver-offline`'s engine.
pub mod alerts;
pub mod consistency;
pub mod drift;
pub mod quality;
pub mod report;
pub mod results;
pub mod spec;
