//! A running watch: the core's `Watch`, shared by the calls that take its next event and by
//! `close()`, which ends a pending `next` at once and drops the stream.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::runtime::{cancellable, on_core, CancelToken};
use crate::types::LockEvent;

/// A running watch (the core's `Watch`).
#[napi]
pub struct NativeWatch {
    shared: tenure::SharedWatch,
}

impl NativeWatch {
    pub fn new(watch: tenure::Watch) -> Self {
        NativeWatch { shared: tenure::SharedWatch::new(watch) }
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
        on_core(async move { cancellable(cancel, async move { shared.next().await.map(|e| e.map(LockEvent::from)) }).await })
            .await
    }

    /// Ends the watch: a pending `next` resolves to `null`, and the stream is dropped. Idempotent.
    #[napi]
    pub fn close(&self) {
        self.shared.close();
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.shared.is_closed()
    }
}
