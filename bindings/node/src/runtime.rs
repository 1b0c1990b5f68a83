//! Running the core's futures for JavaScript. Each call is spawned on the core's runtime
//! ([`tenure::runtime`]), where the client's connections and keepalive live; napi's runtime only
//! awaits the task's handle and settles the promise. A [`CancelToken`] (which the JavaScript
//! layer wires to an AbortSignal) ends a call early: the core's future is dropped, and a
//! waiting acquire withdraws its request.

use std::future::Future;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::errors::to_napi;

/// Sets up napi's runtime small: its one worker only relays results from the core's runtime.
#[napi_derive::module_init]
fn init() {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("tenure-napi").enable_all().build();
    // On failure napi makes its default runtime on first use: nothing is lost but threads.
    if let Ok(rt) = rt {
        napi::bindgen_prelude::create_custom_tokio_runtime(rt);
    }
}

/// Aborts the task when dropped (napi drops the future when node's environment goes away).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `fut` on the core's runtime and waits for its result.
pub async fn on_core<T, F>(fut: F) -> Result<T>
where
    F: Future<Output = std::result::Result<T, tenure::Error>> + Send + 'static,
    T: Send + 'static,
{
    let mut task = AbortOnDrop(tenure::runtime().spawn(fut));
    match (&mut task.0).await {
        Ok(result) => result.map_err(to_napi),
        Err(e) if e.is_panic() => Err(to_napi(tenure::Error::Internal("a tenure client task panicked".into()))),
        Err(e) => Err(to_napi(tenure::Error::Cancelled(format!("the tenure client runtime stopped: {e}")))),
    }
}

/// Runs `fut` unless (or until) `cancel` is cancelled; then drops it and fails with CANCELLED.
pub async fn cancellable<T, F>(cancel: Option<watch::Receiver<bool>>, fut: F) -> std::result::Result<T, tenure::Error>
where
    F: Future<Output = std::result::Result<T, tenure::Error>>,
{
    let Some(mut rx) = cancel else { return fut.await };
    tokio::select! {
        biased;
        _ = rx.wait_for(|cancelled| *cancelled) => Err(tenure::Error::Cancelled("the call was cancelled".into())),
        result = fut => result,
    }
}

/// A cancellation handle for one call: `cancel()` ends it (idempotent).
#[napi]
pub struct CancelToken {
    tx: watch::Sender<bool>,
}

#[napi]
impl CancelToken {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        CancelToken { tx: watch::Sender::new(false) }
    }

    /// Cancels the call(s) this token was given to.
    #[napi]
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        *self.tx.borrow()
    }
}

impl CancelToken {
    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }
}
