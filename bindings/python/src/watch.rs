//! A running watch: the core's `Watch`, shared by the calls that take its next event and by
//! `close()`, which ends a pending `next` at once (from any thread) and drops the stream.

use pyo3::prelude::*;

use crate::runtime::{awaitable, block_on};
use crate::types::LockEvent;

#[pyclass(frozen, module = "tenure._native")]
pub struct NativeWatch {
    shared: tenure::SharedWatch,
}

impl NativeWatch {
    pub fn new(watch: tenure::Watch) -> Self {
        NativeWatch { shared: tenure::SharedWatch::new(watch) }
    }
}

#[pymethods]
impl NativeWatch {
    /// The next event, waiting for it with the GIL released; None once the watch has ended.
    fn next(&self, py: Python<'_>) -> PyResult<Option<LockEvent>> {
        let shared = self.shared.clone();
        block_on(py, async move { shared.next().await.map(|e| e.map(LockEvent::from)) })
    }

    fn next_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let shared = self.shared.clone();
        awaitable(py, async move { shared.next().await.map(|e| e.map(LockEvent::from)) })
    }

    /// Ends the watch: a pending `next` returns None, and the stream is dropped. Idempotent.
    fn close(&self) {
        self.shared.close();
    }

    #[getter]
    fn closed(&self) -> bool {
        self.shared.is_closed()
    }
}
