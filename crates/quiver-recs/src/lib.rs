//! # quiver-recs
//!
//! Recommenders declared in the registry: interactions aggregated into a sparse confidence
//! matrix, implicit-feedback ALS (Hu, Koren, Volinsky) as the `implicit` library computes it,
//! ranking metrics, popularity and cold start.
