//! # quiver-core
//!
//! The domain model every other Quiver crate builds on, with no storage or engine code in it.
//!
//! * [`repo`] finds and reads a Quiver repository: `quiver.yaml` plus every `*.yaml` under
//!   `features/`, into raw, located definitions ([`yaml`]).
//! * [`registry`] validates those definitions into an immutable [`Registry`] snapshot: entities,
//!   sources, feature views (plain features, SQL-derived features, windowed aggregations) and
//!   feature services, each with a content hash. Every reference is checked and every error names
//!   the file, line, column, object and field at fault ([`Error`]).
//! * [`plan`] diffs two registries into typed changes (added / changed field by field / removed)
//!   and marks the changes that break consumers.
//! * [`duration`] and [`value_type`] hold the small value vocabularies of the YAML.
//!
//! Data flows one way: files → [`yaml`] → [`Registry::from_files`] → ([`plan::plan`], the
//! metadata store, the offline engine).

pub mod duration;
pub mod error;
pub mod experiment;
pub mod job;
pub mod plan;
pub mod quality;
pub mod recommender;
pub mod registry;
pub mod repo;
pub mod value_type;
pub mod yaml;

pub use duration::Duration;
pub use error::{Error, Located, Result};
pub use job::{Approval, Catchup, Deploy, DeployRollout, Gate, Job, JobTask, Schedule};
pub use quality::{Check, CheckKind, OnFailure, QualitySet, QualityTarget, Severity};
pub use registry::{
    AggFunction, Aggregation, DriftSettings, Entity, Feature, FeatureRef, FeatureService,
    FeatureView, Registry, Source, SourceKind,
};
pub use value_type::ValueType;
