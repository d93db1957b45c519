//! # quiver-online
//!
//! The online store: the latest feature row per entity and view, for serving.
//!
//! * [`store::OnlineStore`] is the interface; [`embedded::EmbeddedStore`] (a redb file, the
//!   default) and [`redis_store::RedisStore`] implement it and pass one conformance suite.
//! * [`value::Value`] is a feature value and its binary encoding (both backends use it).
//! * [`materialize`] loads the offline engine's latest rows into a store and advances
//!   watermarks.
//! * [`config::open_store`] opens the store `quiver.yaml` names.

pub mod config;
pub mod embedded;
pub mod materialize;
pub mod redis_store;
pub mod store;
pub mod value;

pub use config::open_store;
pub use store::{
    EntityKey, KeyValue, OnlineError, OnlineRow, OnlineStore, StoredRow, ViewWrite, WriteStats,
};
pub use value::Value;
