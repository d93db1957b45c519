//! Drift between a reference and a current data set, with Evidently's DataDriftPreset defaults.

pub mod ks;
pub mod special;
pub mod stattests;
