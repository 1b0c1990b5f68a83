//! The core's client for Python: every call twice, blocking (`x`) and asyncio (`x_async`), both
//! running the same core future. Arguments arrive checked for type by the Python layer; here
//! they only become core types.

use std::future::Future;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::lease::NativeLease;
use crate::runtime::{awaitable, block_on, runtime};
use crate::types::{ClusterStatus, FenceStatus, KvEntry, LockDescription, LockSummary};
use crate::watch::NativeWatch;

/// Seconds as a `Duration`; negative, NaN or infinite values are INVALID_ARGUMENT naming `field`.
fn seconds(field: &str, value: f64) -> Result<Duration, tenure::Error> {
    Duration::try_from_secs_f64(value).map_err(|_| tenure::Error::InvalidArgument {
        field: field.to_string(),
        message: format!("{field} must be a finite number of seconds >= 0, got {value}"),
    })
}

/// The options of one acquire, as Python passes them.
struct Acquire {
    name: String,
    ttl: f64,
    wait: Option<f64>,
    shared: bool,
    limit: u32,
    lock_delay: f64,
}

impl Acquire {
    fn builder(self, client: &tenure::Client) -> Result<tenure::LockBuilder, tenure::Error> {
        let mut b =
            client.lock(self.name).ttl(seconds("ttl", self.ttl)?).lock_delay(seconds("lock_delay", self.lock_delay)?);
        if self.shared {
            b = b.shared(self.limit);
        } else if self.limit != 0 {
            return Err(tenure::Error::InvalidArgument {
                field: "limit".into(),
                message: format!("limit applies only to shared locks (shared=True), got limit={}", self.limit),
            });
        }
        match self.wait {
            Some(w) => Ok(b.wait(seconds("wait", w)?)),
            None => Ok(b.wait_forever()),
        }
    }
}

fn fence(if_fence: Option<(String, u64)>) -> Option<tenure::Fence> {
    if_fence.map(|(name, token)| tenure::Fence::new(name, token))
}

/// A client of a tenure cluster (the core's `Client`). Thread-safe; share one per process.
#[pyclass(frozen, module = "tenure._native")]
pub struct NativeClient {
    inner: tenure::Client,
}

impl NativeClient {
    fn acquire_fut(&self, a: Acquire) -> impl Future<Output = Result<NativeLease, tenure::Error>> + Send + 'static {
        let client = self.inner.clone();
        async move { Ok(NativeLease::new(a.builder(&client)?.acquire().await?)) }
    }

    fn try_acquire_fut(
        &self,
        a: Acquire,
    ) -> impl Future<Output = Result<Option<NativeLease>, tenure::Error>> + Send + 'static {
        let client = self.inner.clone();
        async move { Ok(a.builder(&client)?.try_acquire().await?.map(NativeLease::new)) }
    }

    fn describe_fut(&self, name: String) -> impl Future<Output = Result<LockDescription, tenure::Error>> + 'static {
        let client = self.inner.clone();
        async move { Ok(client.describe(&name).await?.into()) }
    }

    fn list_fut(&self, prefix: String) -> impl Future<Output = Result<Vec<LockSummary>, tenure::Error>> + 'static {
        let client = self.inner.clone();
        async move { Ok(client.list(&prefix).await?.into_iter().map(LockSummary::from).collect()) }
    }

    fn validate_fence_fut(
        &self,
        name: String,
        token: u64,
    ) -> impl Future<Output = Result<FenceStatus, tenure::Error>> + 'static {
        let client = self.inner.clone();
        async move { Ok(client.validate_fence(&name, token).await?.into()) }
    }

    fn kv_get_fut(&self, key: Vec<u8>) -> impl Future<Output = Result<Option<KvEntry>, tenure::Error>> + 'static {
        let kv = self.inner.kv();
        async move { Ok(kv.get(key).await?.map(KvEntry::from)) }
    }

    fn kv_put_fut(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        if_fence: Option<(String, u64)>,
    ) -> impl Future<Output = Result<u64, tenure::Error>> + 'static {
        let kv = self.inner.kv();
        async move { kv.put(key, value, fence(if_fence)).await }
    }

    fn kv_delete_fut(
        &self,
        key: Vec<u8>,
        if_fence: Option<(String, u64)>,
    ) -> impl Future<Output = Result<bool, tenure::Error>> + 'static {
        let kv = self.inner.kv();
        async move { kv.delete(key, fence(if_fence)).await }
    }

    fn kv_list_fut(&self, prefix: Vec<u8>) -> impl Future<Output = Result<Vec<KvEntry>, tenure::Error>> + 'static {
        let kv = self.inner.kv();
        async move { Ok(kv.list(prefix).await?.into_iter().map(KvEntry::from).collect()) }
    }

    fn cluster_status_fut(&self) -> impl Future<Output = Result<ClusterStatus, tenure::Error>> + 'static {
        let client = self.inner.clone();
        async move { Ok(client.cluster_status().await?.into()) }
    }

    fn watch_fut(
        &self,
        name: String,
        prefix: bool,
        from_index: Option<u64>,
    ) -> impl Future<Output = Result<NativeWatch, tenure::Error>> + Send + 'static {
        let client = self.inner.clone();
        async move {
            let builder = if prefix { client.watch_prefix(name) } else { client.watch(name) };
            let builder = match from_index {
                Some(index) => builder.from_index(index),
                None => builder,
            };
            Ok(NativeWatch::new(builder.start().await?))
        }
    }

    fn close_fut(&self) -> impl Future<Output = Result<(), tenure::Error>> + 'static {
        let client = self.inner.clone();
        async move { client.close().await }
    }
}

#[pymethods]
impl NativeClient {
    /// Checks the settings (and reads the CA file); contacts no node (connections open on first
    /// use). An empty `endpoints` means `TENURE_ENDPOINTS`, else `127.0.0.1:7070`.
    #[new]
    #[pyo3(signature = (endpoints, owner, timeout, tls_ca_file=None, bearer_token=None))]
    fn new(
        py: Python<'_>,
        endpoints: Vec<String>,
        owner: Option<String>,
        timeout: f64,
        tls_ca_file: Option<std::path::PathBuf>,
        bearer_token: Option<String>,
    ) -> PyResult<Self> {
        runtime()?;
        let built = seconds("timeout", timeout).and_then(|timeout| {
            let mut b = tenure::Client::builder().endpoints(endpoints).timeout(timeout);
            if let Some(owner) = owner {
                b = b.owner(owner);
            }
            if let Some(ca) = tls_ca_file {
                b = b.tls_ca_file(ca);
            }
            if let Some(token) = bearer_token {
                b = b.bearer_token(token);
            }
            b.connect_blocking()
        });
        match built {
            Ok(c) => Ok(NativeClient { inner: c.as_async().clone() }),
            Err(e) => Err(crate::errors::to_pyerr(py, e)),
        }
    }

    #[getter]
    fn owner(&self) -> &str {
        self.inner.owner()
    }

    #[getter]
    fn timeout(&self) -> f64 {
        self.inner.timeout().as_secs_f64()
    }

    // One argument per option of the Python call it serves.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (name, ttl, wait, shared, limit, lock_delay))]
    fn acquire(
        &self,
        py: Python<'_>,
        name: String,
        ttl: f64,
        wait: Option<f64>,
        shared: bool,
        limit: u32,
        lock_delay: f64,
    ) -> PyResult<NativeLease> {
        block_on(py, self.acquire_fut(Acquire { name, ttl, wait, shared, limit, lock_delay }))
    }

    // One argument per option of the Python call it serves.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (name, ttl, wait, shared, limit, lock_delay))]
    fn acquire_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
        ttl: f64,
        wait: Option<f64>,
        shared: bool,
        limit: u32,
        lock_delay: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.acquire_fut(Acquire { name, ttl, wait, shared, limit, lock_delay }))
    }

    #[pyo3(signature = (name, ttl, shared, limit, lock_delay))]
    fn try_acquire(
        &self,
        py: Python<'_>,
        name: String,
        ttl: f64,
        shared: bool,
        limit: u32,
        lock_delay: f64,
    ) -> PyResult<Option<NativeLease>> {
        block_on(py, self.try_acquire_fut(Acquire { name, ttl, wait: Some(0.0), shared, limit, lock_delay }))
    }

    #[pyo3(signature = (name, ttl, shared, limit, lock_delay))]
    fn try_acquire_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
        ttl: f64,
        shared: bool,
        limit: u32,
        lock_delay: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.try_acquire_fut(Acquire { name, ttl, wait: Some(0.0), shared, limit, lock_delay }))
    }

    fn describe(&self, py: Python<'_>, name: String) -> PyResult<LockDescription> {
        block_on(py, self.describe_fut(name))
    }

    fn describe_async<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.describe_fut(name))
    }

    fn list(&self, py: Python<'_>, prefix: String) -> PyResult<Vec<LockSummary>> {
        block_on(py, self.list_fut(prefix))
    }

    fn list_async<'py>(&self, py: Python<'py>, prefix: String) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.list_fut(prefix))
    }

    fn validate_fence(&self, py: Python<'_>, name: String, token: u64) -> PyResult<FenceStatus> {
        block_on(py, self.validate_fence_fut(name, token))
    }

    fn validate_fence_async<'py>(&self, py: Python<'py>, name: String, token: u64) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.validate_fence_fut(name, token))
    }

    fn kv_get(&self, py: Python<'_>, key: &Bound<'_, PyBytes>) -> PyResult<Option<KvEntry>> {
        block_on(py, self.kv_get_fut(key.as_bytes().to_vec()))
    }

    fn kv_get_async<'py>(&self, py: Python<'py>, key: &Bound<'_, PyBytes>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.kv_get_fut(key.as_bytes().to_vec()))
    }

    #[pyo3(signature = (key, value, if_fence))]
    fn kv_put(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyBytes>,
        value: &Bound<'_, PyBytes>,
        if_fence: Option<(String, u64)>,
    ) -> PyResult<u64> {
        block_on(py, self.kv_put_fut(key.as_bytes().to_vec(), value.as_bytes().to_vec(), if_fence))
    }

    #[pyo3(signature = (key, value, if_fence))]
    fn kv_put_async<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'_, PyBytes>,
        value: &Bound<'_, PyBytes>,
        if_fence: Option<(String, u64)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.kv_put_fut(key.as_bytes().to_vec(), value.as_bytes().to_vec(), if_fence))
    }

    #[pyo3(signature = (key, if_fence))]
    fn kv_delete(&self, py: Python<'_>, key: &Bound<'_, PyBytes>, if_fence: Option<(String, u64)>) -> PyResult<bool> {
        block_on(py, self.kv_delete_fut(key.as_bytes().to_vec(), if_fence))
    }

    #[pyo3(signature = (key, if_fence))]
    fn kv_delete_async<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'_, PyBytes>,
        if_fence: Option<(String, u64)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.kv_delete_fut(key.as_bytes().to_vec(), if_fence))
    }

    fn kv_list(&self, py: Python<'_>, prefix: &Bound<'_, PyBytes>) -> PyResult<Vec<KvEntry>> {
        block_on(py, self.kv_list_fut(prefix.as_bytes().to_vec()))
    }

    fn kv_list_async<'py>(&self, py: Python<'py>, prefix: &Bound<'_, PyBytes>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.kv_list_fut(prefix.as_bytes().to_vec()))
    }

    fn cluster_status(&self, py: Python<'_>) -> PyResult<ClusterStatus> {
        block_on(py, self.cluster_status_fut())
    }

    fn cluster_status_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.cluster_status_fut())
    }

    /// Opens a watch of lock `name` (or of every lock under the prefix `name`), from the next
    /// committed entry or from `from_index`; returns once the stream's start is pinned.
    #[pyo3(signature = (name, prefix, from_index))]
    fn watch(&self, py: Python<'_>, name: String, prefix: bool, from_index: Option<u64>) -> PyResult<NativeWatch> {
        block_on(py, self.watch_fut(name, prefix, from_index))
    }

    #[pyo3(signature = (name, prefix, from_index))]
    fn watch_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
        prefix: bool,
        from_index: Option<u64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.watch_fut(name, prefix, from_index))
    }

    /// Releases every lease this client holds or waits for, and waits for background releases.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        block_on(py, self.close_fut())
    }

    fn close_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, self.close_fut())
    }
}
