//! A running watch: the core's `Watch`, shared by the calls that take its next event and by
//! `close()`, which ends a pending `next` at once and drops the stream.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tokio::sync::{watch, Mutex};

use crate::runtime::{cancellable, on_core, CancelToken};
use crate::types::LockEvent;

/// The core's watch and its closed flag, shared with the tasks running `next`.
struct Shared {
    watch: Mutex<Option<tenure::Watch>>,
    closed: watch::Sender<bool>,
}

impl Shared {
    /// The next event; `None` once the watch is closed or the core ended it.
    async fn next(self: Arc<Self>) -> std::result::Result<Option<LockEvent>, tenure::Error> {
        let mut closed = self.closed.subscribe();
        let mut slot = tokio::select! {
            biased;
            _ = closed.wait_for(|c| *c) => return Ok(None),
            slot = self.watch.lock() => slot,
        };
        let Some(w) = slot.as_mut() else { return Ok(None) };
        // `Watch::next` is cancel-safe: an event not returned yet stays buffered in the core.
        let next = tokio::select! {
            biased;
            _ = closed.wait_for(|c| *c) => None,
            next = w.next() => next,
        };
        match next {
            Some(Ok(e)) => Ok(Some(e.into())),
            // The watch stays open: the next call keeps trying (the core's retryable errors).
            Some(Err(e)) => Err(e),
            None => {
                *slot = None;
                Ok(None)
            }
        }
    }

    fn close(&self) {
        self.closed.send_replace(true);
        // A pending `next` holds the lock: it sees the flag and ends itself.
        if let Ok(mut slot) = self.watch.try_lock() {
            slot.take();
        }
    }
}

/// A running watch (the core's `Watch`).
#[napi]
pub struct NativeWatch {
    shared: Arc<Shared>,
}

impl NativeWatch {
    pub fn new(watch: tenure::Watch) -> Self {
        NativeWatch { shared: Arc::new(Shared { watch: Mutex::new(Some(watch)), closed: watch::Sender::new(false) }) }
    }
}

#[napi]
impl NativeWatch {
    /// The next event; `null` once the watch has ended. `cancel` ends the wait with CANCELLED
    /// (an event that arrives meanwhile is kept for the next call).
    #[napi]
    pub async fn next(&self, cancel: Option<&CancelToken>) -> Result<Option<LockEvent>> {
        let shared = self.shared.clone();
        let cancel = cancel.map(CancelToken::receiver);
        on_core(async move { cancellable(cancel, shared.next()).await }).await
    }

    /// Ends the watch: a pending `next` resolves to `null`, and the stream is dropped. Idempotent.
    #[napi]
    pub fn close(&self) {
        self.shared.close();
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        *self.shared.closed.borrow()
    }
}
