//! The core's errors as Python exceptions. The classes live in `tenure/errors.py` (one per
//! stable code, so they can also subclass `ValueError`, `TimeoutError`, …); this file only
//! hands each error's code, message and field to `tenure.errors._from_native`.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// The code of the error raised when a client is used in a process forked after the client
/// runtime started. Not a core code: the core never sees this.
pub const USED_AFTER_FORK: &str = "USED_AFTER_FORK";

/// `e` as an instance of its `tenure` exception class.
pub fn to_pyerr(py: Python<'_>, e: tenure::Error) -> PyErr {
    let field = match &e {
        tenure::Error::InvalidArgument { field, .. } => field.clone(),
        _ => String::new(),
    };
    exception(py, e.code(), &e.to_string(), &field)
}

/// The error for a call made in a child process after fork().
pub fn used_after_fork(owner: u32, pid: u32) -> PyErr {
    let message = format!(
        "a tenure client cannot be used in a process forked from one that already used tenure \
         (this is pid {pid}, forked from pid {owner}): the client's background threads do not \
         survive fork(). Create clients in processes started with multiprocessing's 'spawn' or \
         'forkserver' method, or fork before the first use of tenure."
    );
    Python::attach(|py| exception(py, USED_AFTER_FORK, &message, ""))
}

fn exception(py: Python<'_>, code: &str, message: &str, field: &str) -> PyErr {
    let made = py.import("tenure.errors").and_then(|m| m.call_method1("_from_native", (code, message, field)));
    match made {
        Ok(instance) => PyErr::from_value(instance),
        // Only if the pure-Python package is missing (the native module loaded on its own).
        Err(_) => PyRuntimeError::new_err(format!("{code}: {message}")),
    }
}
