//! The embedded online store: one redb file (ACID, copy-on-write B-trees) under `.quiver/`.
//!
//! Key: `view \0 entity-key`. Value: the row's event timestamp, then `(feature name, value)`
//! pairs, so that adding a feature to a view does not invalidate stored rows. A batch is one
//! write transaction: a crash leaves the file as of the last durable commit. A batch written by
//! `write_batch` is durable when it returns; the materializer's batches (`write_batch_deferred`)
//! are committed without an fsync and made durable together by `sync` before the view's
//! watermark moves (an fsync costs 5 to 10 ms on this machine's disk: a tenth of a second per
//! 100,000 rows in 10,000-row batches).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::row_codec::{decode_row, encode_row, row_ts};
use crate::store::{
    EntityKey, OnlineError, OnlineRow, OnlineStore, Result, StoredRow, ViewWrite, WriteStats,
};

const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");

/// The embedded online store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    path: PathBuf,
}

fn row_key(view: &str, key: &EntityKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(view.len() + 1 + key.0.len());
    k.extend_from_slice(view.as_bytes());
    k.push(0);
    k.extend_from_slice(&key.0);
    k
}

impl EmbeddedStore {
    /// Opens (or creates) the store file. Only one process may hold it at a time.
    pub fn open(path: &Path) -> Result<Self> {
        let file_err = |message: String| OnlineError::File {
            path: path.display().to_string(),
            message,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| file_err(e.to_string()))?;
        }
        let db = Database::create(path).map_err(|e| {
            let m = e.to_string();
            if matches!(e, redb::DatabaseError::DatabaseAlreadyOpen)
                || m.contains("already open")
                || m.contains("lock")
            {
                OnlineError::Locked {
                    path: path.display().to_string(),
                }
            } else {
                file_err(m)
            }
        })?;
        let store = EmbeddedStore {
            db: Arc::new(db),
            path: path.to_path_buf(),
        };
        // Create the table so that readers never see "table does not exist".
        let tx = store.db.begin_write().map_err(|e| store.err(e))?;
        tx.open_table(ROWS).map_err(|e| store.err(e))?;
        tx.commit().map_err(|e| store.err(e))?;
        Ok(store)
    }

    fn err(&self, e: impl std::fmt::Display) -> OnlineError {
        OnlineError::File {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    fn write_sync(
        &self,
        view: &ViewWrite<'_>,
        rows: &[OnlineRow],
        durable: bool,
    ) -> Result<WriteStats> {
        let mut tx = self.db.begin_write().map_err(|e| self.err(e))?;
        if !durable {
            tx.set_durability(Durability::None)
                .map_err(|e| self.err(e))?;
        }
        let mut stats = WriteStats::default();
        {
            let mut table = tx.open_table(ROWS).map_err(|e| self.err(e))?;
            for row in rows {
                let k = row_key(view.view, &row.key);
                let newer_stored = table
                    .get(k.as_slice())
                    .map_err(|e| self.err(e))?
                    .and_then(|v| row_ts(v.value()))
                    .is_some_and(|ts| ts > row.event_ts);
                if newer_stored {
                    stats.skipped_older += 1;
                    continue;
                }
                let mut v = Vec::new();
                encode_row(view.features, row, &mut v);
                table
                    .insert(k.as_slice(), v.as_slice())
                    .map_err(|e| self.err(e))?;
                stats.written += 1;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(stats)
    }

    /// An empty durable commit: it persists every non-durable commit before it.
    fn sync_sync(&self) -> Result<()> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    fn read_sync(
        &self,
        view: &str,
        keys: &[EntityKey],
        features: &[String],
    ) -> Result<Vec<Option<StoredRow>>> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = tx.open_table(ROWS).map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let k = row_key(view, key);
            let got = table.get(k.as_slice()).map_err(|e| self.err(e))?;
            out.push(match got {
                None => None,
                Some(v) => Some(decode_row(v.value(), features).map_err(|message| {
                    OnlineError::Corrupt {
                        store: self.describe(),
                        view: view.to_string(),
                        message,
                    }
                })?),
            });
        }
        Ok(out)
    }

    fn delete_sync(&self, view: &str) -> Result<u64> {
        let mut lo = view.as_bytes().to_vec();
        lo.push(0);
        let mut hi = view.as_bytes().to_vec();
        hi.push(1);
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut n = 0;
        {
            let mut table = tx.open_table(ROWS).map_err(|e| self.err(e))?;
            let keys: Vec<Vec<u8>> = table
                .range(lo.as_slice()..hi.as_slice())
                .map_err(|e| self.err(e))?
                .map(|r| r.map(|(k, _)| k.value().to_vec()))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| self.err(e))?;
            for k in keys {
                table.remove(k.as_slice()).map_err(|e| self.err(e))?;
                n += 1;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }
}

/// Runs a blocking write (it waits for fsync) without stalling other tasks on a multi-threaded
/// runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl OnlineStore for EmbeddedStore {
    fn write_batch<'a>(
        &'a self,
        view: &'a ViewWrite<'a>,
        rows: &'a [OnlineRow],
    ) -> BoxFuture<'a, Result<WriteStats>> {
        Box::pin(async move { blocking(|| self.write_sync(view, rows, true)) })
    }

    fn write_batch_deferred<'a>(
        &'a self,
        view: &'a ViewWrite<'a>,
        rows: &'a [OnlineRow],
    ) -> BoxFuture<'a, Result<WriteStats>> {
        Box::pin(async move { blocking(|| self.write_sync(view, rows, false)) })
    }

    fn sync(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { blocking(|| self.sync_sync()) })
    }

    fn read<'a>(
        &'a self,
        view: &'a str,
        keys: &'a [EntityKey],
        features: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Option<StoredRow>>>> {
        // Reads are a few B-tree lookups in memory-mapped pages: cheaper inline than a hop
        // to the blocking pool.
        Box::pin(async move { self.read_sync(view, keys, features) })
    }

    fn delete_view<'a>(&'a self, view: &'a str) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move { blocking(|| self.delete_sync(view)) })
    }

    fn health(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.db.begin_read().map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    fn prefers_key_order(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("embedded ({})", self.path.display())
    }
}
