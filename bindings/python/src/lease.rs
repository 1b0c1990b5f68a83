//! A held lease: the core's `LockGuard`, with its lost signal bridged to a Python callable.

use std::sync::Arc;
use std::time::SystemTime;

use pyo3::prelude::*;

use crate::runtime::{awaitable, block_on, exiting, runtime, InFlight};

/// A lock held by this client (the core's guard). Released when `release()` is confirmed, or in
/// the background when the object is garbage-collected.
#[pyclass(frozen, module = "tenure._native")]
pub struct NativeLease {
    guard: Arc<tenure::LockGuard>,
}

impl NativeLease {
    pub fn new(guard: tenure::LockGuard) -> Self {
        NativeLease { guard: Arc::new(guard) }
    }
}

#[pymethods]
impl NativeLease {
    #[getter]
    fn name(&self) -> &str {
        self.guard.name()
    }

    #[getter]
    fn token(&self) -> u64 {
        self.guard.token()
    }

    #[getter]
    fn request_id(&self) -> &str {
        self.guard.request_id()
    }

    #[getter]
    fn owner(&self) -> &str {
        &self.guard.lease().owner
    }

    #[getter]
    fn mode(&self) -> &'static str {
        self.guard.lease().mode.as_str()
    }

    #[getter]
    fn ttl(&self) -> f64 {
        self.guard.lease().ttl.as_secs_f64()
    }

    #[getter]
    fn granted_at(&self) -> SystemTime {
        self.guard.lease().granted_at
    }

    /// The client's bound: until then the lease is surely held, unless renewed before.
    #[getter]
    fn expires_at(&self) -> SystemTime {
        self.guard.expires_at()
    }

    #[getter]
    fn held(&self) -> bool {
        self.guard.is_held()
    }

    #[getter]
    fn lost_reason(&self) -> Option<String> {
        self.guard.lost_reason()
    }

    /// Calls `callback()` once, from a background thread, when the lease is lost (never after a
    /// clean release).
    fn on_lost(&self, callback: Py<PyAny>) -> PyResult<()> {
        let signal = self.guard.lost_signal();
        runtime()?.spawn(async move {
            if signal.wait().await && !exiting() {
                let in_flight = InFlight::start();
                // Off the runtime's workers: waiting for the GIL must not stall keepalives.
                tokio::task::spawn_blocking(move || {
                    let _in_flight = in_flight;
                    if exiting() {
                        return;
                    }
                    Python::try_attach(|py| {
                        if let Err(e) = callback.call0(py) {
                            e.write_unraisable(py, None);
                        }
                    });
                });
            }
        });
        Ok(())
    }

    /// Resolves to True when the lease is lost, False once it is released.
    fn wait_lost_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let signal = self.guard.lost_signal();
        awaitable(py, async move { Ok(signal.wait().await) })
    }

    fn renew(&self, py: Python<'_>) -> PyResult<()> {
        let guard = self.guard.clone();
        block_on(py, async move { guard.renew().await })
    }

    fn renew_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let guard = self.guard.clone();
        awaitable(py, async move { guard.renew().await })
    }

    fn release(&self, py: Python<'_>) -> PyResult<bool> {
        let guard = self.guard.clone();
        block_on(py, async move { guard.release().await })
    }

    fn release_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let guard = self.guard.clone();
        awaitable(py, async move { guard.release().await })
    }
}
