//! A held lease: the core's `LockGuard`, with its lost signal bridged to a JavaScript callback.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use crate::runtime::on_core;
use crate::types::epoch_ms;

/// A callback that does not keep node's event loop alive (a weak threadsafe function): a
/// lease nobody waits on must not stop a process from exiting. It is called with the reason.
type LostCallback = ThreadsafeFunction<String, (), String, Status, false, true>;

/// A lock held by this client (the core's guard). Released by `release()`, or in the
/// background once the object is garbage-collected.
#[napi]
pub struct NativeLease {
    guard: Arc<tenure::LockGuard>,
}

impl NativeLease {
    pub fn new(guard: tenure::LockGuard) -> Self {
        NativeLease { guard: Arc::new(guard) }
    }
}

#[napi]
impl NativeLease {
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.guard.name().to_string()
    }

    #[napi(getter)]
    pub fn token(&self) -> BigInt {
        BigInt::from(self.guard.token())
    }

    #[napi(getter)]
    pub fn request_id(&self) -> String {
        self.guard.request_id().to_string()
    }

    #[napi(getter)]
    pub fn owner(&self) -> String {
        self.guard.lease().owner.clone()
    }

    #[napi(getter)]
    pub fn mode(&self) -> String {
        self.guard.lease().mode.as_str().to_string()
    }

    #[napi(getter)]
    pub fn ttl_ms(&self) -> f64 {
        self.guard.lease().ttl.as_secs_f64() * 1000.0
    }

    #[napi(getter)]
    pub fn granted_at_ms(&self) -> f64 {
        epoch_ms(self.guard.lease().granted_at)
    }

    /// The client's bound: until then the lease is surely held, unless renewed before.
    #[napi(getter)]
    pub fn expires_at_ms(&self) -> f64 {
        epoch_ms(self.guard.expires_at())
    }

    #[napi(getter)]
    pub fn held(&self) -> bool {
        self.guard.is_held()
    }

    #[napi(getter)]
    pub fn lost_reason(&self) -> Option<String> {
        self.guard.lost_reason()
    }

    /// Calls `callback(reason)` once, on the JavaScript thread, when the lease is lost (never
    /// after a clean release). The task holds the guard weakly, so a lease nobody references
    /// is still garbage-collected (and released).
    #[napi(ts_args_type = "callback: (reason: string) => void")]
    pub fn on_lost(&self, callback: LostCallback) {
        let signal = self.guard.lost_signal();
        let guard = Arc::downgrade(&self.guard);
        tenure::runtime().spawn(async move {
            if signal.wait().await {
                let reason =
                    guard.upgrade().and_then(|g| g.lost_reason()).unwrap_or_else(|| "the lease was lost".into());
                callback.call(reason, ThreadsafeFunctionCallMode::NonBlocking);
            }
        });
    }

    #[napi]
    pub async fn renew(&self) -> Result<()> {
        let guard = self.guard.clone();
        on_core(async move { guard.renew().await }).await
    }

    /// Releases the lock; resolves to whether it was still held. Idempotent.
    #[napi]
    pub async fn release(&self) -> Result<bool> {
        let guard = self.guard.clone();
        on_core(async move { guard.release().await }).await
    }
}
