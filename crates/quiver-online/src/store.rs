//! The online store's interface, shared by the embedded and Redis backends.

use futures::future::BoxFuture;

use crate::value::Value;

/// Errors of the online store.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    /// The store cannot be reached (Redis down, a timeout): the server answers 503.
    #[error("online store unavailable ({store}): {message}")]
    Unavailable {
        /// Which store.
        store: String,
        /// What happened.
        message: String,
    },
    /// The store answered with something Quiver did not write.
    #[error("online store {store} holds an undecodable value for view '{view}': {message}")]
    Corrupt {
        /// Which store.
        store: String,
        /// The view.
        view: String,
        /// What was wrong.
        message: String,
    },
    /// The embedded store's file could not be opened or written.
    #[error("online store {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What happened.
        message: String,
    },
    /// The embedded store's file is held by another process (a running `quiver serve`): redb
    /// lets one process open it. The CLI then goes through that server's HTTP API.
    #[error(
        "online store {path} is held by another Quiver process (a running `quiver serve`?): stop it, or go through that server's POST /materialize, /materialize-incremental or /online/clear (`quiver materialize` and `quiver online clear` do so themselves when the server announced itself in .quiver/server.json and QUIVER_SERVER_TOKEN is set)"
    )]
    Locked {
        /// The file.
        path: String,
    },
    /// Bad settings in `quiver.yaml`.
    #[error("{0}")]
    Config(String),
}

/// Result of online-store operations.
pub type Result<T, E = OnlineError> = std::result::Result<T, E>;

/// The encoded join-key values of one entity: the same bytes whichever path (materialization
/// from Arrow, a JSON request) produced them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityKey(pub Vec<u8>);

/// One join-key value.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    /// An integer key (int64 and int32 keys both encode as 64-bit).
    Int(i64),
    /// A string key.
    Str(String),
}

impl EntityKey {
    /// Encodes the join-key values of one entity, in the view's join-key order.
    pub fn new(parts: &[KeyValue]) -> EntityKey {
        let mut out = Vec::with_capacity(9 * parts.len());
        for p in parts {
            match p {
                KeyValue::Int(v) => {
                    out.push(b'i');
                    out.extend_from_slice(&v.to_be_bytes());
                }
                KeyValue::Str(s) => {
                    out.push(b's');
                    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
            }
        }
        EntityKey(out)
    }
}

/// What a write needs to know about the view.
#[derive(Debug, Clone)]
pub struct ViewWrite<'a> {
    /// The view's name.
    pub view: &'a str,
    /// The feature names, in the order of each row's values.
    pub features: &'a [String],
    /// The view's TTL in microseconds (`None`: unbounded); Redis derives key expiry from it.
    pub ttl_us: Option<i64>,
}

/// One entity's row for one view.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineRow {
    /// The entity.
    pub key: EntityKey,
    /// The row's event timestamp (microseconds, UTC).
    pub event_ts: i64,
    /// One value per feature of the write.
    pub values: Vec<Value>,
}

/// One view's part of a [`OnlineStore::read_views`] call.
#[derive(Debug, Clone, Copy)]
pub struct ViewRead<'a> {
    /// The view.
    pub view: &'a str,
    /// The entities, in answer order.
    pub keys: &'a [EntityKey],
    /// The features, in value order.
    pub features: &'a [String],
}

/// What a read found for one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    /// The stored row's event timestamp.
    pub event_ts: i64,
    /// One value per requested feature (`Null` where the row has no such feature).
    pub values: Vec<Value>,
}

/// Counts from one write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Rows stored.
    pub written: u64,
    /// Rows skipped because the store already held a newer row for the entity.
    pub skipped_older: u64,
}

impl std::ops::AddAssign for WriteStats {
    fn add_assign(&mut self, o: WriteStats) {
        self.written += o.written;
        self.skipped_older += o.skipped_older;
    }
}

/// An online store: the latest row per entity and view.
///
/// Every backend guarantees:
/// - a row replaces the entity's previous row for the view as a whole (readers see the old
///   row or the new one, never a mix);
/// - a row older than the stored one is skipped, so re-runs and late data cannot move an
///   entity back in time (equal timestamps overwrite, which makes re-runs idempotent);
/// - a batch either is applied or fails as a whole (embedded), or per row (Redis, where
///   each entity's row is still atomic).
pub trait OnlineStore: Send + Sync {
    /// Writes rows of one view.
    fn write_batch<'a>(
        &'a self,
        view: &'a ViewWrite<'a>,
        rows: &'a [OnlineRow],
    ) -> BoxFuture<'a, Result<WriteStats>>;

    /// Writes rows of one view as [`write_batch`](Self::write_batch) does, except that the
    /// store may put off making them durable until [`sync`](Self::sync): a crash before then may
    /// lose whole batches (never part of an entity's row). The materializer writes this way and
    /// syncs before it advances a watermark, so a lost batch is written again by the re-run.
    /// The embedded store saves an fsync per batch; the default is `write_batch`.
    fn write_batch_deferred<'a>(
        &'a self,
        view: &'a ViewWrite<'a>,
        rows: &'a [OnlineRow],
    ) -> BoxFuture<'a, Result<WriteStats>> {
        self.write_batch(view, rows)
    }

    /// Makes every write so far durable (see [`write_batch_deferred`](Self::write_batch_deferred)).
    fn sync(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Reads `features` of `view` for each key, in key order.
    fn read<'a>(
        &'a self,
        view: &'a str,
        keys: &'a [EntityKey],
        features: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Option<StoredRow>>>>;

    /// Reads several views at once: for each `(view, keys, features)`, what [`read`](Self::read)
    /// gives. Backends that can answer in one round trip (Redis: one pipeline) override it.
    fn read_views<'a>(
        &'a self,
        reads: &'a [ViewRead<'a>],
    ) -> BoxFuture<'a, Result<Vec<Vec<Option<StoredRow>>>>> {
        Box::pin(futures::future::try_join_all(
            reads.iter().map(|r| self.read(r.view, r.keys, r.features)),
        ))
    }

    /// Deletes every row of a view; returns how many there were.
    fn delete_view<'a>(&'a self, view: &'a str) -> BoxFuture<'a, Result<u64>>;

    /// Checks that the store is reachable.
    fn health(&self) -> BoxFuture<'_, Result<()>>;

    /// `embedded (.quiver/online)` or `redis (redis://...)`, for messages.
    fn describe(&self) -> String;

    /// Whether writes are cheaper in entity-key order. A B-tree store says yes: the
    /// materializer then sorts a view's rows by key, so that each batch's transaction rewrites
    /// a run of neighbouring pages instead of pages all over the file.
    fn prefers_key_order(&self) -> bool {
        false
    }
}
