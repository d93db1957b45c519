//! Running a call's work off the GIL, interruptibly, with progress.
//!
//! Every call spawns its future on one process-wide tokio runtime and waits for it with the GIL
//! released, waking every 100 ms to run Python's signal handlers (`Ctrl-C` raises
//! `KeyboardInterrupt`: the task is aborted at its next await point and the call returns at
//! once) and to hand the progress counters to the caller's Python callback (the package draws a
//! tqdm bar with it). The work never touches Python objects, so other Python threads run
//! meanwhile.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pyo3::prelude::*;

use crate::errors::{Failure, QuiverError};

/// The runtime every call runs on (one worker per core, like the `quiver` command's).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("quiver")
            .build()
            .expect("a tokio runtime")
    })
}

/// Progress of a call, as counters the work bumps and the waiting thread reads: what is being
/// done, how many units are done and (0 when unknown) how many there are.
#[derive(Default)]
pub struct Ticker {
    message: Mutex<String>,
    done: AtomicU64,
    total: AtomicU64,
}

impl Ticker {
    /// Sets what is being done.
    pub fn say(&self, message: impl Into<String>) {
        *self.message.lock().unwrap_or_else(|e| e.into_inner()) = message.into();
    }
    /// `n` more units done.
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
    /// `n` more units to do.
    pub fn add_total(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
    }
    fn snapshot(&self) -> (String, u64, u64) {
        (
            self.message
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

impl quiver_offline::engine::Progress for Ticker {
    fn rows_read(&self, view: &str, rows: usize) {
        self.say(format!("reading {view}"));
        self.add(rows as u64);
    }
}

impl quiver_online::materialize::MaterializeProgress for Ticker {
    fn view_started(&self, view: &str, rows: u64) {
        self.say(format!("materializing {view}"));
        self.add_total(rows);
    }
    fn rows_written(&self, _view: &str, rows: u64) {
        self.add(rows);
    }
}

impl quiver_pipeline::Progress for Ticker {
    fn step(&self, step: &quiver_pipeline::Step<'_>) {
        match step {
            quiver_pipeline::Step::TrainingSet { service, .. } => {
                self.say(format!("training set of {service}"))
            }
            quiver_pipeline::Step::Training { algorithm, .. } => {
                self.say(format!("training {}", algorithm.name()))
            }
            _ => {}
        }
    }
    fn rows_read(&self, view: &str, rows: usize) {
        self.say(format!("reading {view}"));
        self.add(rows as u64);
    }
}

/// Runs `work` on the runtime with the GIL released and returns its result; see the module
/// docs. `progress(message, done, total)` is called about every 100 ms while it runs.
pub fn wait<T: Send + 'static>(
    py: Python<'_>,
    ticker: &Arc<Ticker>,
    progress: Option<&Bound<'_, PyAny>>,
    work: impl Future<Output = Result<T, Failure>> + Send + 'static,
) -> PyResult<T> {
    let rt = runtime();
    let mut handle = rt.spawn(work);
    let mut shown = (String::new(), u64::MAX, u64::MAX);
    loop {
        let joined = py.detach(|| {
            rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(100), &mut handle).await
            })
        });
        match joined {
            Ok(Ok(result)) => {
                if let Some(cb) = progress {
                    let (m, d, t) = ticker.snapshot();
                    cb.call1((m, d, t))?;
                }
                return result.map_err(PyErr::from);
            }
            Ok(Err(e)) => {
                return Err(QuiverError::new_err(format!(
                    "internal error (likely a bug): the call's task failed: {e}"
                )));
            }
            Err(_) => {
                if let Err(interrupted) = py.check_signals() {
                    handle.abort();
                    return Err(interrupted);
                }
                if let Some(cb) = progress {
                    let now = ticker.snapshot();
                    if now != shown {
                        if let Err(e) = cb.call1((now.0.clone(), now.1, now.2)) {
                            handle.abort();
                            return Err(e);
                        }
                        shown = now;
                    }
                }
            }
        }
    }
}
