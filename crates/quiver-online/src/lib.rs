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
mod row_codec;
pub mod store;
pub mod value;

pub use config::open_store;
pub use store::{
    EntityKey, KeyValue, OnlineError, OnlineRow, OnlineStore, StoredRow, ViewRead, ViewWrite,
    WriteStats,
};
pub use value::Value;

/// Parses a point in time: RFC 3339 (`2025-01-01T00:00:00Z`, with any offset), a naive
/// `2025-01-01 12:00:00[.ffffff]` or `2025-01-01T12:00:00` (read as UTC), a date `2025-01-01`
/// (midnight UTC), or `now`. Returns microseconds since the epoch.
pub fn parse_time(text: &str) -> Result<i64, String> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    let t = text.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(chrono::Utc::now().timestamp_micros());
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.timestamp_micros());
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(d.and_utc().timestamp_micros());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_micros());
    }
    Err(format!(
        "'{t}' is not a time: use 2025-01-31T12:00:00Z, '2025-01-31 12:00:00' (UTC), 2025-01-31 or now"
    ))
}

/// Formats microseconds since the epoch as RFC 3339 UTC with Feast's precision rule: no
/// fraction for whole seconds, else milliseconds or microseconds as needed.
pub fn format_time(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let base = chrono::DateTime::from_timestamp(secs, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_else(|| "1970-01-01T00:00:00".into());
    if frac == 0 {
        format!("{base}Z")
    } else if frac % 1000 == 0 {
        format!("{base}.{:03}Z", frac / 1000)
    } else {
        format!("{base}.{frac:06}Z")
    }
}
