//! `tenure._native`: the pyo3 glue between the `tenure` Python package (sdk-python/) and the
//! client core (the `tenure` crate). It converts types and errors and releases the GIL; all
//! logic (retries, redirects, waiting, keepalive, lost leases) stays in the core, and the
//! idiomatic API (context managers, durations, asyncio classes) is the Python package's.

mod client;
mod errors;
mod lease;
mod runtime;
mod types;
mod watch;

use pyo3::prelude::*;

#[pymodule]
mod _native {
    use pyo3::prelude::*;

    #[pymodule_export]
    use crate::client::NativeClient;
    #[pymodule_export]
    use crate::lease::NativeLease;
    #[pymodule_export]
    use crate::runtime::_quiesce;
    #[pymodule_export]
    use crate::types::{
        ClusterStatus, FenceStatus, KvEntry, LeaseInfo, LockDescription, LockEvent, LockSummary, Member, WaiterInfo,
    };
    #[pymodule_export]
    use crate::watch::NativeWatch;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        // Every stable code of the core, plus the SDK's own; tenure.errors has a class per code.
        let mut codes: Vec<&str> = tenure::Error::CODES.to_vec();
        codes.push(crate::errors::USED_AFTER_FORK);
        m.add("ERROR_CODES", codes)?;
        m.add("DEFAULT_ENDPOINT", tenure::DEFAULT_ENDPOINT)?;
        Ok(())
    }
}
