//! The Redis online store: one hash per entity and view (`quiver:{project}:{view}:{key}`), a
//! field per feature plus `_ts`, written by a Lua script so that each entity's row is replaced
//! atomically and only by a row at least as new. Keys expire one TTL (plus a grace period) after
//! their event time, so stale entities do not pile up.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;

use crate::store::{
    EntityKey, OnlineError, OnlineRow, OnlineStore, Result, StoredRow, ViewRead, ViewWrite,
    WriteStats,
};
use crate::value::Value;

/// KEYS: one hash per row. ARGV: feature count F, the F feature names, then per row its event
/// time (µs), its expiry (ms since the epoch, 0 = none) and F encoded values. A row is written
/// only if the stored `_ts` is absent or not newer. Returns the number of rows written.
const WRITE_SCRIPT: &str = r#"
local nf = tonumber(ARGV[1])
local written = 0
for i, key in ipairs(KEYS) do
  local off = 1 + nf + (i - 1) * (nf + 2)
  local ts = ARGV[off + 1]
  local cur = redis.call('HGET', key, '_ts')
  if (not cur) or tonumber(cur) <= tonumber(ts) then
    local args = {'_ts', ts}
    for j = 1, nf do
      args[#args + 1] = ARGV[1 + j]
      args[#args + 1] = ARGV[off + 2 + j]
    end
    redis.call('HSET', key, unpack(args))
    local exp = tonumber(ARGV[off + 2])
    if exp > 0 then redis.call('PEXPIREAT', key, exp) end
    written = written + 1
  end
end
return written
"#;

/// The Redis online store.
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    conn: Arc<Mutex<Option<ConnectionManager>>>,
    url: String,
    prefix: String,
    timeout: Duration,
    grace_us: Option<i64>,
}

impl RedisStore {
    /// A store at `url` for `project`. Connects lazily, so a server can start while Redis is
    /// down (it reports not ready and answers 503 until Redis is back). `grace_us` is how long
    /// keys live past their TTL (`None`: one more TTL); `timeout` bounds every call.
    pub fn new(url: &str, project: &str, grace_us: Option<i64>, timeout: Duration) -> Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| OnlineError::Config(format!("online_store.url '{url}': {e}")))?;
        Ok(RedisStore {
            client,
            conn: Arc::new(Mutex::new(None)),
            url: url.to_string(),
            prefix: format!("quiver:{project}:"),
            timeout,
            grace_us,
        })
    }

    fn unavailable(&self, message: impl std::fmt::Display) -> OnlineError {
        OnlineError::Unavailable {
            store: self.describe(),
            message: message.to_string(),
        }
    }

    async fn connection(&self) -> Result<ConnectionManager> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let c = tokio::time::timeout(
            self.timeout,
            self.client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| self.unavailable(format!("no connection within {:?}", self.timeout)))?
        .map_err(|e| self.unavailable(e))?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// One HMGET reply (`_ts` first, then the features) as a stored row.
    fn decode_row(&self, view: &str, fields: Vec<Option<Vec<u8>>>) -> Result<Option<StoredRow>> {
        let corrupt = |message: String| OnlineError::Corrupt {
            store: self.describe(),
            view: view.to_string(),
            message,
        };
        let mut fields = fields.into_iter();
        let Some(Some(ts)) = fields.next() else {
            return Ok(None);
        };
        let event_ts = std::str::from_utf8(&ts)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| corrupt("bad _ts field".into()))?;
        let values = fields
            .map(|f| match f {
                None => Ok(Value::Null),
                Some(b) => Value::from_bytes(&b).map_err(|e| corrupt(e.to_string())),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(StoredRow { event_ts, values }))
    }

    /// Runs one call with the store's timeout.
    async fn call<T>(
        &self,
        f: impl AsyncFnOnce(ConnectionManager) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let conn = self.connection().await?;
        match tokio::time::timeout(self.timeout, f(conn)).await {
            Err(_) => Err(self.unavailable(format!("no answer within {:?}", self.timeout))),
            Ok(Err(e)) => Err(self.unavailable(e)),
            Ok(Ok(v)) => Ok(v),
        }
    }

    fn key(&self, view: &str, key: &EntityKey) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + view.len() + 1 + key.0.len());
        k.extend_from_slice(self.prefix.as_bytes());
        k.extend_from_slice(view.as_bytes());
        k.push(b':');
        k.extend_from_slice(&key.0);
        k
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

impl OnlineStore for RedisStore {
    fn write_batch<'a>(
        &'a self,
        view: &'a ViewWrite<'a>,
        rows: &'a [OnlineRow],
    ) -> BoxFuture<'a, Result<WriteStats>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            let mut buf = Vec::new();
            for chunk in rows.chunks(ROWS_PER_CALL) {
                let cmd = pipe.cmd("EVAL").arg(WRITE_SCRIPT).arg(chunk.len());
                for row in chunk {
                    cmd.arg(self.key(view.view, &row.key));
                }
                cmd.arg(view.features.len());
                for f in view.features {
                    cmd.arg(f.as_str());
                }
                for row in chunk {
                    cmd.arg(row.event_ts);
                    cmd.arg(self.expiry_ms(view.ttl_us, row.event_ts));
                    for v in &row.values {
                        buf.clear();
                        v.encode(&mut buf);
                        cmd.arg(buf.as_slice());
                    }
                }
            }
            // One pipelined round trip for the whole batch; EVAL (not EVALSHA) so that a
            // restarted Redis with an empty script cache needs no retry.
            let counts: Vec<u64> = self
                .call(async |mut c| pipe.query_async(&mut c).await)
                .await?;
            let written: u64 = counts.iter().sum();
            Ok(WriteStats {
                written,
                skipped_older: rows.len() as u64 - written,
            })
        })
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

    /// Every view's HMGETs go in one pipeline: one round trip whatever the number of views.
    fn read_views<'a>(
        &'a self,
        reads: &'a [ViewRead<'a>],
    ) -> BoxFuture<'a, Result<Vec<Vec<Option<StoredRow>>>>> {
        Box::pin(async move {
            if reads.iter().all(|r| r.keys.is_empty()) {
                return Ok(reads.iter().map(|_| Vec::new()).collect());
            }
            let mut pipe = redis::pipe();
            for r in reads {
                for key in r.keys {
                    let cmd = pipe.cmd("HMGET").arg(self.key(r.view, key)).arg("_ts");
                    for f in r.features {
                        cmd.arg(f.as_str());
                    }
                }
            }
            let replies: Vec<Vec<Option<Vec<u8>>>> = self
                .call(async |mut c| pipe.query_async(&mut c).await)
                .await?;
            let mut replies = replies.into_iter();
            reads
                .iter()
                .map(|r| {
                    replies
                        .by_ref()
                        .take(r.keys.len())
                        .map(|fields| self.decode_row(r.view, fields))
                        .collect()
                })
                .collect()
        })
    }

    fn delete_view<'a>(&'a self, view: &'a str) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let pattern = format!("{}{}:*", self.prefix, view);
            let mut deleted = 0u64;
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) = self
                    .call(async |mut c| {
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(1000)
                            .query_async(&mut c)
                            .await
                    })
                    .await?;
                if !keys.is_empty() {
                    let n: u64 = self
                        .call(async |mut c| {
                            redis::cmd("UNLINK").arg(&keys).query_async(&mut c).await
                        })
                        .await?;
                    deleted += n;
                }
                if next == 0 {
                    return Ok(deleted);
                }
                cursor = next;
            }
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let pong: String = self
                .call(async |mut c| redis::cmd("PING").query_async(&mut c).await)
                .await?;
            if pong == "PONG" {
                Ok(())
            } else {
                Err(self.unavailable(format!("PING answered {pong}")))
            }
        })
    }

    fn describe(&self) -> String {
        format!("redis ({})", redact(&self.url))
    }
}

/// `redis://:secret@host` → `redis://:***@host`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_string(),
    }
}
