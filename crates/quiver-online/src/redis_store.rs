//! The Redis online store: one string per entity and view (`quiver:{project}:{view}:{key}`)
//! holding the whole row: 20 decimal digits of its event time (ordered as the time is), then the
//! row in the embedded store's layout (feature names with their values). A write replaces each row
//! atomically and only by a row at least as new: a row whose key is absent is written with
//! `SET ... NX` (nothing to compare, nothing it can replace); the others go through a Lua script
//! that reads the stored rows of its chunk with one `MGET`, compares each stored time before it
//! writes, and leaves a row that is already stored byte for byte alone (Redis time per row,
//! measured from Python with `INFO commandstats` over a loaded store: 2.5 to 2.9 µs for a script
//! with a `GET` per row, 2.3 to 2.4 µs with one `MGET`, 1.7 to 1.8 µs when identical rows are
//! left alone; a plain `SET` costs 1.3 µs). A read is one `MGET`
//! for every key of every view of a request. Keys expire one TTL (plus a grace period) after
//! their event time, so stale entities do not pile up.
//!
//! The same store runs on a Redis Cluster (`type: redis_cluster`, [`RedisStore::cluster`]): the
//! values, the script and the commands are the same; only the connection and the key differ.
//! The redis crate's cluster connection routes each command to the master of its key's slot,
//! follows `MOVED`/`ASK` redirections (resharding), refreshes the slot map and reconnects when a
//! master fails over. A cluster key wraps the entity in a hash tag,
//! `quiver:{project}:{view}:{<entity key>}`, so every view's row of one entity lands in one slot:
//! a request for one entity is one `MGET` on one node, and a request for many is one `MGET` per
//! slot, all in flight at once on the per-node connections (which pipeline them). A script call and a pipeline carry the rows of one slot. `delete_view` scans
//! every master. With `replica_acks: N` a write returns once N replicas of each master hold it
//! (`WAIT`), so a failover loses nothing acknowledged.
//!
//! (Until stop 10 rows were hashes with a field per feature. A string per row halves the work
//! Redis does per written row and turns a request's reads into one command; a store written in
//! the old layout reads as not found until it is materialized again, which overwrites it.)

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo, Slot};
use tokio::sync::Mutex;

use crate::row_codec::{decode_row, encode_row};
use crate::store::{
    EntityKey, OnlineError, OnlineRow, OnlineStore, Result, StoredRow, ViewRead, ViewWrite,
    WriteStats,
};

/// KEYS: one key per row. ARGV[1]: "1" when the rows expire, else "0"; then per row its stored
/// value (20 decimal digits of the event time, then the row) and, when they expire, its expiry
/// (ms since the epoch). A row is written only if no row is stored or the stored one is not
/// newer: equal-length digit strings order as their numbers under any collation, so one string
/// comparison decides. A row equal byte for byte to the stored one, with the same expiry, is left
/// as it is and counted as written (re-running a job rewrites nothing). A key of another type (a
/// hash of the old layout) reads as absent in `MGET` and is replaced. Returns the number of rows
/// written. One `MGET` for the call, then per row a `SET` or (for an identical row) a
/// `PEXPIRETIME`.
const WRITE_SCRIPT: &str = r#"
local written = 0
local expires = ARGV[1] == '1'
local step = expires and 2 or 1
local sub = string.sub
local stored = redis.call('MGET', unpack(KEYS))
for i, key in ipairs(KEYS) do
  local at = 2 + (i - 1) * step
  local v = ARGV[at]
  local cur = stored[i]
  local write = true
  if cur then
    local new_ts, cur_ts = sub(v, 1, 20), sub(cur, 1, 20)
    if new_ts < cur_ts then
      write = false
    elseif v == cur then
      local exp = redis.call('PEXPIRETIME', key)
      if exp == (expires and tonumber(ARGV[at + 1]) or -1) then
        write = false
        written = written + 1
      end
    end
  end
  if write then
    if expires then
      redis.call('SET', key, v, 'PXAT', ARGV[at + 1])
    else
      redis.call('SET', key, v)
    end
    written = written + 1
  end
end
return written
"#;

/// Length of the time prefix of a stored row.
const TS_DIGITS: usize = 20;

/// The 20 decimal digits that start a stored row: the event time with its sign bit flipped
/// (as an unsigned number), zero-padded, so that the digits order as the times do.
fn ts_prefix(event_ts: i64, out: &mut Vec<u8>) {
    let biased = (event_ts as u64) ^ (1 << 63);
    out.extend_from_slice(format!("{biased:020}").as_bytes());
}

/// The Redis online store.
///
/// One implementation for a single Redis ([`RedisStore::new`]) and a Redis Cluster
/// ([`RedisStore::cluster`]); see the module docs for what differs.
#[derive(Clone)]
pub struct RedisStore {
    target: Arc<Target>,
    conn: Arc<Mutex<Option<Conn>>>,
    url: String,
    prefix: String,
    timeout: Duration,
    grace_us: Option<i64>,
}

/// What the store connects to.
enum Target {
    Single(redis::Client),
    Cluster {
        client: Box<ClusterClient>,
        /// Replicas of each master that must hold a write before it is acknowledged.
        replica_acks: u32,
    },
}

/// A connection to either target; both are multiplexed and cheap to clone.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl RedisStore {
    /// A store at `url` for `project`. Connects lazily, so a server can start while Redis is
    /// down (it reports not ready and answers 503 until Redis is back). `grace_us` is how long
    /// keys live past their TTL (`None`: one more TTL); `timeout` bounds every call.
    pub fn new(url: &str, project: &str, grace_us: Option<i64>, timeout: Duration) -> Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| OnlineError::Config(format!("online_store.url '{url}': {e}")))?;
        Ok(RedisStore {
            target: Arc::new(Target::Single(client)),
            conn: Arc::new(Mutex::new(None)),
            url: url.to_string(),
            prefix: format!("quiver:{project}:"),
            timeout,
            grace_us,
        })
    }

    /// A store on the Redis Cluster that `nodes` (some of its nodes' URLs) belong to, for
    /// `project`; otherwise as [`new`](Self::new). A write is acknowledged once `replica_acks`
    /// replicas of each master hold it (0: once the master does).
    pub fn cluster(
        nodes: &[String],
        project: &str,
        grace_us: Option<i64>,
        timeout: Duration,
        replica_acks: u32,
    ) -> Result<Self> {
        if nodes.is_empty() {
            return Err(OnlineError::Config(
                "online_store.nodes: a Redis Cluster needs at least one node URL".into(),
            ));
        }
        let client = ClusterClient::builder(nodes.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()
            .map_err(|e| {
                OnlineError::Config(format!("online_store.nodes {}: {e}", nodes.join(", ")))
            })?;
        Ok(RedisStore {
            target: Arc::new(Target::Cluster {
                client: Box::new(client),
                replica_acks,
            }),
            conn: Arc::new(Mutex::new(None)),
            url: nodes.join(", "),
            prefix: format!("quiver:{project}:"),
            timeout,
            grace_us,
        })
    }

    fn is_cluster(&self) -> bool {
        matches!(*self.target, Target::Cluster { .. })
    }

    fn unavailable(&self, message: impl std::fmt::Display) -> OnlineError {
        OnlineError::Unavailable {
            store: self.describe(),
            message: message.to_string(),
        }
    }

    async fn connection(&self) -> Result<Conn> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let connect = async {
            match &*self.target {
                Target::Single(client) => {
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(self.timeout))
                        .set_response_timeout(Some(self.timeout))
                        .set_number_of_retries(1);
                    client
                        .get_connection_manager_with_config(config)
                        .await
                        .map(Conn::Single)
                }
                Target::Cluster { client, .. } => {
                    client.get_async_connection().await.map(Conn::Cluster)
                }
            }
        };
        let c = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| self.unavailable(format!("no connection within {:?}", self.timeout)))?
            .map_err(|e| self.unavailable(e))?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// One stored value (see the module docs) as a row of `features`.
    fn decode_row(
        &self,
        view: &str,
        stored: Option<Vec<u8>>,
        features: &[String],
    ) -> Result<Option<StoredRow>> {
        let Some(bytes) = stored else {
            return Ok(None);
        };
        let corrupt = |message: String| OnlineError::Corrupt {
            store: self.describe(),
            view: view.to_string(),
            message,
        };
        let row = bytes
            .get(TS_DIGITS..)
            .ok_or_else(|| corrupt("a stored row shorter than its time".into()))?;
        decode_row(row, features).map(Some).map_err(corrupt)
    }

    /// Runs one call with the store's timeout.
    async fn call<T, F: Future<Output = redis::RedisResult<T>>>(
        &self,
        f: impl Fn(Conn) -> F,
    ) -> Result<T> {
        self.call_within(self.timeout, f).await
    }

    /// Runs one call that may take up to `limit`. On a cluster a failed call is tried once more
    /// on a fresh connection: every call the store makes is idempotent (reads, `SET`s of rows
    /// no older than what is stored, `WAIT`, `PING`), and during a topology change (a slot
    /// moved, a master failed over) a fresh connection learns the new map from the nodes that
    /// answer, where the old one could keep timing out.
    async fn call_within<T, F: Future<Output = redis::RedisResult<T>>>(
        &self,
        limit: Duration,
        f: impl Fn(Conn) -> F,
    ) -> Result<T> {
        let attempts = if self.is_cluster() { 2 } else { 1 };
        let mut failed = String::new();
        for _ in 0..attempts {
            let conn = self.connection().await?;
            failed = match tokio::time::timeout(limit, f(conn)).await {
                Ok(Ok(v)) => return Ok(v),
                Err(_) => format!("no answer within {limit:?}"),
                Ok(Err(e)) => e.to_string(),
            };
            if self.is_cluster() {
                // The crate follows redirections and refreshes its slot map itself, but after
                // a master died its connection kept timing out (redis 1.8: no answer for 30 s
                // after the replica had taken over, tested), and under load a read right after
                // a slot moved timed out on it too (CI).
                *self.conn.lock().await = None;
            }
        }
        Err(self.unavailable(failed))
    }

    /// `quiver:{project}:{view}:{key}`; on a cluster the entity key is a hash tag
    /// (`...:{view}:{` key `}`), so one entity's rows of every view share a slot. (An entity key
    /// starts with its type byte, so the tag is never empty; a `}` inside the key ends the tag
    /// early, at the same byte for every view.)
    fn key(&self, view: &str, key: &EntityKey) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + view.len() + 3 + key.0.len());
        k.extend_from_slice(self.prefix.as_bytes());
        k.extend_from_slice(view.as_bytes());
        k.push(b':');
        if self.is_cluster() {
            k.push(b'{');
            k.extend_from_slice(&key.0);
            k.push(b'}');
        } else {
            k.extend_from_slice(&key.0);
        }
        k
    }

    /// `rows` in the groups one command carries: runs of at most `size` rows, and on a cluster
    /// only rows of one hash slot together (a script's keys and a cluster pipeline's commands
    /// must share a slot).
    fn groups(
        &self,
        keys: &[Vec<u8>],
        rows: impl Iterator<Item = usize>,
        size: usize,
    ) -> Vec<Vec<usize>> {
        if !self.is_cluster() {
            let rows: Vec<usize> = rows.collect();
            return rows.chunks(size).map(<[usize]>::to_vec).collect();
        }
        let mut by_slot: std::collections::HashMap<Slot, Vec<usize>> = Default::default();
        for i in rows {
            by_slot.entry(Slot::for_key(&keys[i])).or_default().push(i);
        }
        by_slot
            .into_values()
            .flat_map(|g| g.chunks(size).map(<[usize]>::to_vec).collect::<Vec<_>>())
            .collect()
    }

    /// Waits until `replica_acks` replicas of every master hold this connection's writes (a
    /// cluster with `replica_acks` > 0; otherwise nothing to do).
    async fn wait_for_replicas(&self) -> Result<()> {
        let Target::Cluster { replica_acks, .. } = *self.target else {
            return Ok(());
        };
        if replica_acks == 0 {
            return Ok(());
        }
        // Half the timeout, so that WAIT answers (with too few replicas) before the connection's
        // own response timeout fires.
        let ms = (self.timeout.as_millis() / 2).max(1) as u64;
        // WAIT goes to every master; the crate answers with the smallest count.
        let acked: u64 = self
            .call(|mut c| async move {
                redis::cmd("WAIT")
                    .arg(replica_acks)
                    .arg(ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if acked < u64::from(replica_acks) {
            return Err(self.unavailable(format!(
                "writes reached {acked} of the {replica_acks} replicas per master that replica_acks asks for within {ms} ms (a master without a live replica?)"
            )));
        }
        Ok(())
    }

    /// The masters of the cluster (host, port), from `CLUSTER NODES`.
    async fn masters(&self) -> Result<Vec<(String, u16)>> {
        let nodes: String = self
            .call(
                |mut c| async move { redis::cmd("CLUSTER").arg("NODES").query_async(&mut c).await },
            )
            .await?;
        Ok(nodes
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(' ');
                let addr = fields.nth(1)?;
                let flags = fields.next()?;
                let is_master = flags.split(',').any(|f| f == "master")
                    && !flags.split(',').any(|f| f == "fail" || f == "noaddr");
                let (host, port) = addr.split('@').next()?.rsplit_once(':')?;
                is_master
                    .then(|| Some((host.to_string(), port.parse().ok()?)))
                    .flatten()
            })
            .collect())
    }

    /// Expiry (ms since the epoch) of a row, 0 when the view keeps rows forever.
    fn expiry_ms(&self, ttl_us: Option<i64>, event_ts: i64) -> i64 {
        match ttl_us {
            Some(ttl) if ttl > 0 => {
                let grace = self.grace_us.unwrap_or(ttl);
                (event_ts.saturating_add(ttl).saturating_add(grace) / 1000).max(1)
            }
            _ => 0,
        }
    }
}

/// Rows per script call: big enough to amortize the round trip, small enough that Redis is
/// never blocked for long.
const ROWS_PER_CALL: usize = 500;

/// Rows of a batch first written with `SET ... NX` alone. When most of them were new, the rest of
/// the batch is too; when most keys already existed (an incremental run over a loaded store),
/// the rest goes straight to the script.
const NX_PROBE: usize = 500;

/// `SET` commands per pipeline.
const ROWS_PER_PIPELINE: usize = 1_000;

/// A batch's rows as Redis will store them: key, value (time prefix and row) and expiry.
struct Encoded {
    keys: Vec<Vec<u8>>,
    values: Vec<u8>,
    ends: Vec<usize>,
    expiry_ms: Vec<i64>,
    expires: bool,
}

impl Encoded {
    fn value(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.values[start..self.ends[i]]
    }
}

impl RedisStore {
    fn encode(&self, view: &ViewWrite<'_>, rows: &[OnlineRow]) -> Encoded {
        let expires = view.ttl_us.is_some_and(|t| t > 0);
        let mut e = Encoded {
            keys: Vec::with_capacity(rows.len()),
            values: Vec::new(),
            ends: Vec::with_capacity(rows.len()),
            expiry_ms: Vec::with_capacity(if expires { rows.len() } else { 0 }),
            expires,
        };
        for row in rows {
            e.keys.push(self.key(view.view, &row.key));
            ts_prefix(row.event_ts, &mut e.values);
            encode_row(view.features, row, &mut e.values);
            if e.ends.is_empty() {
                // Rows of a view are about the same size: one allocation for the batch.
                e.values
                    .reserve(e.values.len() * (rows.len() + rows.len() / 8));
            }
            e.ends.push(e.values.len());
            if expires {
                e.expiry_ms.push(self.expiry_ms(view.ttl_us, row.event_ts));
            }
        }
        e
    }

    /// `SET key value [PXAT expiry] NX` for each row in `rows`, pipelined: a row whose key is
    /// absent is written in one command, atomically, and can replace nothing. Returns the rows
    /// whose key exists: they need the script's comparison.
    async fn write_absent(&self, e: &Encoded, rows: std::ops::Range<usize>) -> Result<Vec<usize>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        // Pipelines of a bounded size, in flight at once on the multiplexed connection(s): one
        // pipeline for a whole batch would be a buffer of megabytes, grown by copying.
        let parts = self
            .groups(&e.keys, rows, ROWS_PER_PIPELINE)
            .into_iter()
            .map(|part| {
                let mut pipe = redis::pipe();
                for &i in &part {
                    let cmd = pipe.cmd("SET").arg(&e.keys[i]).arg(e.value(i));
                    if e.expires {
                        cmd.arg("PXAT").arg(e.expiry_ms[i]);
                    }
                    cmd.arg("NX");
                }
                async move {
                    let pipe = &pipe;
                    let replies: Vec<redis::Value> = self
                        .call(move |mut c| async move { pipe.query_async(&mut c).await })
                        .await?;
                    Ok::<_, OnlineError>(
                        part.into_iter()
                            .zip(replies)
                            .filter(|(_, reply)| *reply == redis::Value::Nil)
                            .map(|(i, _)| i)
                            .collect::<Vec<usize>>(),
                    )
                }
            });
        let existing: Vec<Vec<usize>> = futures::stream::iter(parts)
            .buffer_unordered(IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(existing.concat())
    }

    /// The write script over the rows `which`: each is written only if its key holds no row
    /// newer than it. Returns how many were written.
    async fn write_newer(&self, e: &Encoded, which: &[usize]) -> Result<u64> {
        if which.is_empty() {
            return Ok(0);
        }
        // One call per chunk, all in flight at once on the multiplexed connection; EVAL (not
        // EVALSHA) so that a restarted Redis with an empty script cache needs no retry.
        let groups = self.groups(&e.keys, which.iter().copied(), ROWS_PER_CALL);
        let calls = groups.into_iter().map(|chunk| {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(WRITE_SCRIPT).arg(chunk.len());
            for &i in &chunk {
                cmd.arg(&e.keys[i]);
            }
            cmd.arg(if e.expires { "1" } else { "0" });
            for &i in &chunk {
                cmd.arg(e.value(i));
                if e.expires {
                    cmd.arg(e.expiry_ms[i]);
                }
            }
            async move {
                let cmd = &cmd;
                self.call(move |mut c| async move { cmd.query_async::<u64>(&mut c).await })
                    .await
            }
        });
        let written: Vec<u64> = futures::stream::iter(calls)
            .buffer_unordered(IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(written.iter().sum())
    }

    /// The write itself (see [`OnlineStore::write_batch`]), without waiting for replicas.
    async fn write_rows(&self, view: &ViewWrite<'_>, rows: &[OnlineRow]) -> Result<WriteStats> {
        let e = self.encode(view, rows);
        let n = rows.len();
        let probe = n.min(NX_PROBE);
        let mut existing = self.write_absent(&e, 0..probe).await?;
        if existing.len() * 2 <= probe {
            existing.extend(self.write_absent(&e, probe..n).await?);
        } else {
            existing.extend(probe..n);
        }
        let absent = (n - existing.len()) as u64;
        let newer = self.write_newer(&e, &existing).await?;
        Ok(WriteStats {
            written: absent + newer,
            skipped_older: existing.len() as u64 - newer,
        })
    }

    /// `MGET` of `keys`, the values in key order. On a cluster, one `MGET` per slot, all in
    /// flight at once: the crate's own split of a multi-slot `MGET` did not follow a `MOVED`
    /// within the timeout (redis 1.8, tested), single-slot commands do.
    async fn mget(&self, keys: &[Vec<u8>]) -> Result<Stored> {
        let groups = self.groups(keys, 0..keys.len(), usize::MAX);
        let calls = groups.into_iter().map(|group| {
            let mut cmd = redis::cmd("MGET");
            for &i in &group {
                cmd.arg(&keys[i]);
            }
            async move {
                let cmd = &cmd;
                let got: Vec<Option<Vec<u8>>> = self
                    .call(move |mut c| async move { cmd.query_async(&mut c).await })
                    .await?;
                Ok::<_, OnlineError>((group, got))
            }
        });
        let parts: Vec<(Vec<usize>, Stored)> = futures::stream::iter(calls)
            .buffer_unordered(IN_FLIGHT)
            .try_collect()
            .await?;
        let mut out = vec![None; keys.len()];
        for (group, got) in parts {
            for (i, v) in group.into_iter().zip(got) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// Deletes the keys matching `pattern` on one node (`at`: a cluster master) or the single
    /// Redis (`None`).
    async fn delete_matching(&self, pattern: &str, at: Option<(&str, u16)>) -> Result<u64> {
        let mut deleted = 0u64;
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let scan = &scan;
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .call(move |c| async move {
                    match (c, at) {
                        (Conn::Cluster(mut c), Some((host, port))) => {
                            let routing =
                                RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                                    host: host.to_string(),
                                    port,
                                });
                            Ok(redis::from_redis_value(
                                c.route_command(scan.clone(), routing).await?,
                            )?)
                        }
                        (mut c, _) => scan.query_async(&mut c).await,
                    }
                })
                .await?;
            // On a cluster, one UNLINK per slot (as `mget` does).
            for group in self.groups(&keys, 0..keys.len(), usize::MAX) {
                let mut unlink = redis::cmd("UNLINK");
                for i in group {
                    unlink.arg(&keys[i]);
                }
                let unlink = &unlink;
                let n: u64 = self
                    .call(move |mut c| async move { unlink.query_async(&mut c).await })
                    .await?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

/// What `MGET` answers: each key's stored value, if any.
type Stored = Vec<Option<Vec<u8>>>;

/// Commands (pipelines, script calls) of one write in flight at once: on a cluster a batch's
/// rows spread over thousands of slots, each its own command.
const IN_FLIGHT: usize = 256;

impl OnlineStore for RedisStore {
    /// Rows whose key is absent are written with a plain `SET ... NX` (about a third of the
    /// script's cost in Redis); the others, and every row of a batch whose first rows mostly
    /// existed, go through the script, which compares event times.
    fn write_batch<'a>(
        &'a self,
        view: &'a ViewWrite<'a>,
        rows: &'a [OnlineRow],
    ) -> BoxFuture<'a, Result<WriteStats>> {
        Box::pin(async move {
            let stats = self.write_rows(view, rows).await?;
            self.wait_for_replicas().await?;
            Ok(stats)
        })
    }

    /// As `write_batch`, without waiting for replicas (`replica_acks`) until [`sync`].
    ///
    /// [`sync`]: OnlineStore::sync
    fn write_batch_deferred<'a>(
        &'a self,
        view: &'a ViewWrite<'a>,
        rows: &'a [OnlineRow],
    ) -> BoxFuture<'a, Result<WriteStats>> {
        Box::pin(self.write_rows(view, rows))
    }

    fn sync(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.wait_for_replicas())
    }

    fn read<'a>(
        &'a self,
        view: &'a str,
        keys: &'a [EntityKey],
        features: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Option<StoredRow>>>> {
        Box::pin(async move {
            let reads = [ViewRead {
                view,
                keys,
                features,
            }];
            Ok(self.read_views(&reads).await?.pop().unwrap_or_default())
        })
    }

    /// Every key of every view in one `MGET`: one command and one round trip per request (on a
    /// cluster one `MGET` per slot, to every node at once, the replies put back in key order).
    fn read_views<'a>(
        &'a self,
        reads: &'a [ViewRead<'a>],
    ) -> BoxFuture<'a, Result<Vec<Vec<Option<StoredRow>>>>> {
        Box::pin(async move {
            if reads.iter().all(|r| r.keys.is_empty()) {
                return Ok(reads.iter().map(|_| Vec::new()).collect());
            }
            let keys: Vec<Vec<u8>> = reads
                .iter()
                .flat_map(|r| r.keys.iter().map(|k| self.key(r.view, k)))
                .collect();
            let replies = self.mget(&keys).await?;
            let mut replies = replies.into_iter();
            reads
                .iter()
                .map(|r| {
                    replies
                        .by_ref()
                        .take(r.keys.len())
                        .map(|stored| self.decode_row(r.view, stored, r.features))
                        .collect()
                })
                .collect()
        })
    }

    fn delete_view<'a>(&'a self, view: &'a str) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let pattern = format!("{}{}:*", self.prefix, view);
            if !self.is_cluster() {
                return self.delete_matching(&pattern, None).await;
            }
            let mut deleted = 0;
            for (host, port) in self.masters().await? {
                deleted += self.delete_matching(&pattern, Some((&host, port))).await?;
            }
            Ok(deleted)
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let pong: String = self
                .call(|mut c| async move { redis::cmd("PING").query_async(&mut c).await })
                .await?;
            if pong == "PONG" {
                Ok(())
            } else {
                Err(self.unavailable(format!("PING answered {pong}")))
            }
        })
    }

    fn describe(&self) -> String {
        let kind = if self.is_cluster() {
            "redis_cluster"
        } else {
            "redis"
        };
        format!("{kind} ({})", redact(&self.url))
    }
}

/// `redis://:secret@host` → `redis://:***@host`, each URL of a comma-separated list.
fn redact(urls: &str) -> String {
    let one = |url: &str| match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_string(),
    };
    urls.split(", ").map(one).collect::<Vec<_>>().join(", ")
}
