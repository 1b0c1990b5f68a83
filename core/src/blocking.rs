//! A blocking facade over the async client, for plain threads, scripts, and the C and Python
//! bindings. Calls run on one process-wide runtime owned by this crate ([`crate::runtime`]);
//! they may be made from any thread, including many at once.
//!
//! ```no_run
//! # fn main() -> Result<(), tenure::Error> {
//! use std::time::Duration;
//! let client = tenure::blocking::Client::connect(["127.0.0.1:7070"])?;
//! let guard = client.lock("job").wait(Duration::from_secs(10)).acquire()?;
//! println!("token {}", guard.token());
//! guard.release()?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use crate::types::{ClusterStatus, Consistency, Fence, FenceStatus, KvEntry, LeaseInfo, LockDescription, LockSummary};
use crate::{ClientBuilder, Error, ForceReleaseTarget, ForceReleased, Handover, LostSignal, MembershipChange, Mode};

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// The process-wide tokio runtime the blocking facade (and the C, Python and Node bindings)
/// run the client on: two worker threads named `tenure-client`, made on first use.
///
/// ```
/// let answer = tenure::runtime().block_on(async { 6 * 7 });
/// assert_eq!(answer, 42);
/// ```
pub fn runtime() -> &'static tokio::runtime::Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(RUNTIME_THREAD_NAME)
            .enable_all()
            .build()
            // Only fails when the OS refuses threads or an epoll instance: nothing to recover.
            .expect("cannot start the tenure client runtime")
    })
}

/// Whether this thread is one of the client runtime's own workers, where blocking would stop
/// the very runtime the call waits for.
fn on_client_runtime() -> bool {
    std::thread::current().name() == Some(RUNTIME_THREAD_NAME)
}

const RUNTIME_THREAD_NAME: &str = "tenure-client";

fn refuse_on_client_runtime() -> Error {
    Error::Internal(
        "a blocking tenure call was made on the client runtime's own thread (e.g. from a lost-lease \
         callback), where it would deadlock; use the async API there"
            .into(),
    )
}

/// Runs `f` on the client runtime and blocks this thread until it finishes. Works from any
/// thread except the runtime's own workers, including threads inside another tokio runtime.
fn block<T, F>(f: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    if on_client_runtime() {
        return Err(refuse_on_client_runtime());
    }
    let handle = runtime().spawn(f);
    match futures::executor::block_on(handle) {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::Cancelled(format!("the client runtime stopped: {e}"))),
    }
}

impl ClientBuilder {
    /// Makes a blocking client with these settings.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), tenure::Error> {
    /// let client = tenure::Client::builder().owner("cron@host").connect_blocking()?;
    /// # Ok(()) }
    /// ```
    pub fn connect_blocking(self) -> Result<Client, Error> {
        let inner = crate::Client::build(self, runtime().handle().clone())?;
        Ok(Client { inner })
    }
}

/// The blocking twin of [`crate::Client`]. Cheap to clone; share it between threads.
///
/// ```no_run
/// # fn main() -> Result<(), tenure::Error> {
/// let client = tenure::blocking::Client::connect(Vec::<String>::new())?; // TENURE_ENDPOINTS or 127.0.0.1:7070
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    inner: crate::Client,
}

impl Client {
    /// Connects with default settings; see [`crate::Client::connect`].
    ///
    /// ```no_run
    /// # fn main() -> Result<(), tenure::Error> {
    /// let client = tenure::blocking::Client::connect(["127.0.0.1:7071", "127.0.0.1:7072"])?;
    /// # Ok(()) }
    /// ```
    pub fn connect<I, S>(endpoints: I) -> Result<Client, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        crate::Client::builder().endpoints(endpoints).connect_blocking()
    }

    /// The async client underneath (same connections and keepalive).
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) {
    /// let async_client: &tenure::Client = c.as_async();
    /// # }
    /// ```
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }

    /// Starts an acquire of lock `name`; see [`crate::Client::lock`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) -> Result<(), tenure::Error> {
    /// let g = c.lock("job").ttl(std::time::Duration::from_secs(10)).acquire()?;
    /// # Ok(()) }
    /// ```
    pub fn lock(&self, name: impl Into<String>) -> LockBuilder {
        LockBuilder { inner: self.inner.lock(name) }
    }

    /// Takes lock `name` only if it is free now.
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) -> Result<(), tenure::Error> {
    /// if let Some(g) = c.try_lock("job")? {
    ///     println!("token {}", g.token());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn try_lock(&self, name: impl Into<String>) -> Result<Option<LockGuard>, Error> {
        self.lock(name).try_acquire()
    }

    /// Releases lease `request_id` of lock `name`; see [`crate::Client::release`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) -> Result<(), tenure::Error> {
    /// c.release("job", "01JDQ3M4ZK8Y6V2W3X4Y5Z6A7B")?;
    /// # Ok(()) }
    /// ```
    pub fn release(&self, name: &str, request_id: &str) -> Result<bool, Error> {
        let (c, name, id) = (self.inner.clone(), name.to_string(), request_id.to_string());
        block(async move { c.release(&name, &id).await })
    }

    /// Admin: releases a hold (or every holder) of lock `name` on the holders' behalf; see
    /// [`crate::Client::force_release`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) -> Result<(), tenure::Error> {
    /// let r = c.force_release("job", tenure::ForceReleaseTarget::All, tenure::Handover::AfterTtl)?;
    /// println!("released {} holds", r.released.len());
    /// # Ok(()) }
    /// ```
    pub fn force_release(
        &self,
        name: &str,
        target: ForceReleaseTarget,
        handover: Handover,
    ) -> Result<ForceReleased, Error> {
        let (c, name) = (self.inner.clone(), name.to_string());
        block(async move { c.force_release(&name, target, handover).await })
    }

    /// Holders and waiters of lock `name`; see [`crate::Client::describe_with`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) -> Result<(), tenure::Error> {
    /// let d = c.describe("job", tenure::Consistency::Linearizable)?;
    /// # Ok(()) }
    /// ```
    pub fn describe(&self, name: &str, consistency: Consistency) -> Result<LockDescription, Error> {
        let (c, name) = (self.inner.clone(), name.to_string());
        block(async move { c.describe_with(&name, consistency).await })
    }

    /// Every lock under `prefix`; see [`crate::Client::list`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) -> Result<(), tenure::Error> {
    /// let locks = c.list("jobs/")?;
    /// # Ok(()) }
    /// ```
    pub fn list(&self, prefix: &str) -> Result<Vec<LockSummary>, Error> {
        let (c, prefix) = (self.inner.clone(), prefix.to_string());
        block(async move { c.list(&prefix).await })
    }

    /// Whether `token` currently holds `name`; see [`crate::Client::validate_fence`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) -> Result<(), tenure::Error> {
    /// let current = c.validate_fence("job", 12)?.current;
    /// # Ok(()) }
    /// ```
    pub fn validate_fence(&self, name: &str, token: u64) -> Result<FenceStatus, Error> {
        let (c, name) = (self.inner.clone(), name.to_string());
        block(async move { c.validate_fence(&name, token).await })
    }

    /// The KV store.
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) -> Result<(), tenure::Error> {
    /// c.kv().put("k", "v", None)?;
    /// # Ok(()) }
    /// ```
    pub fn kv(&self) -> Kv {
        Kv { inner: self.inner.kv() }
    }

    /// The cluster as one node sees it; see [`crate::Client::cluster_status`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) -> Result<(), tenure::Error> {
    /// println!("term {}", c.cluster_status()?.term);
    /// # Ok(()) }
    /// ```
    pub fn cluster_status(&self) -> Result<ClusterStatus, Error> {
        let c = self.inner.clone();
        block(async move { c.cluster_status().await })
    }

    /// Admin: adds a node; see [`crate::Client::add_member`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) -> Result<(), tenure::Error> {
    /// c.add_member(4, "10.0.0.4:7070", "")?;
    /// # Ok(()) }
    /// ```
    pub fn add_member(&self, id: u64, grpc_addr: &str, http_addr: &str) -> Result<MembershipChange, Error> {
        let (c, grpc_addr, http_addr) = (self.inner.clone(), grpc_addr.to_string(), http_addr.to_string());
        block(async move { c.add_member(id, &grpc_addr, &http_addr).await })
    }

    /// Admin: removes a node; see [`crate::Client::remove_member`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) -> Result<(), tenure::Error> {
    /// c.remove_member(4, false)?;
    /// # Ok(()) }
    /// ```
    pub fn remove_member(&self, id: u64, force: bool) -> Result<MembershipChange, Error> {
        let c = self.inner.clone();
        block(async move { c.remove_member(id, force).await })
    }
}

/// The blocking twin of [`crate::LockBuilder`].
///
/// ```no_run
/// # fn f(c: tenure::blocking::Client) -> Result<(), tenure::Error> {
/// let g = c.lock("gpu").shared(2).wait(std::time::Duration::from_secs(5)).acquire()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a LockBuilder does nothing until .acquire() or .try_acquire() is called"]
pub struct LockBuilder {
    inner: crate::LockBuilder,
}

impl LockBuilder {
    /// See [`crate::LockBuilder::ttl`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) { let b = c.lock("j").ttl(std::time::Duration::from_secs(5)); }
    /// ```
    pub fn ttl(self, ttl: Duration) -> Self {
        LockBuilder { inner: self.inner.ttl(ttl) }
    }

    /// See [`crate::LockBuilder::wait`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) { let b = c.lock("j").wait(std::time::Duration::from_secs(5)); }
    /// ```
    pub fn wait(self, wait: Duration) -> Self {
        LockBuilder { inner: self.inner.wait(wait) }
    }

    /// See [`crate::LockBuilder::wait_forever`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) { let b = c.lock("j").wait_forever(); }
    /// ```
    pub fn wait_forever(self) -> Self {
        LockBuilder { inner: self.inner.wait_forever() }
    }

    /// See [`crate::LockBuilder::shared`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) { let b = c.lock("j").shared(3); }
    /// ```
    pub fn shared(self, limit: u32) -> Self {
        LockBuilder { inner: self.inner.shared(limit) }
    }

    /// See [`crate::LockBuilder::mode`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) { let b = c.lock("j").mode(tenure::Mode::Exclusive); }
    /// ```
    pub fn mode(self, mode: Mode) -> Self {
        LockBuilder { inner: self.inner.mode(mode) }
    }

    /// See [`crate::LockBuilder::lock_delay`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) { let b = c.lock("j").lock_delay(std::time::Duration::from_secs(1)); }
    /// ```
    pub fn lock_delay(self, delay: Duration) -> Self {
        LockBuilder { inner: self.inner.lock_delay(delay) }
    }

    /// See [`crate::LockBuilder::owner`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) { let b = c.lock("j").owner("me"); }
    /// ```
    pub fn owner(self, owner: impl Into<String>) -> Self {
        LockBuilder { inner: self.inner.owner(owner) }
    }

    /// Takes the lock, blocking while it waits; see [`crate::LockBuilder::acquire`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) -> Result<(), tenure::Error> {
    /// let g = c.lock("job").acquire()?;
    /// # Ok(()) }
    /// ```
    pub fn acquire(self) -> Result<LockGuard, Error> {
        let b = self.inner;
        block(async move { b.acquire().await.map(LockGuard::new) })
    }

    /// Takes the lock only if it is free now; see [`crate::LockBuilder::try_acquire`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::blocking::Client) -> Result<(), tenure::Error> {
    /// let maybe = c.lock("job").try_acquire()?;
    /// # Ok(()) }
    /// ```
    pub fn try_acquire(self) -> Result<Option<LockGuard>, Error> {
        let b = self.inner;
        block(async move { b.try_acquire().await.map(|g| g.map(LockGuard::new)) })
    }
}

/// The blocking twin of [`crate::LockGuard`]. Dropping it releases the lock (best effort).
///
/// ```no_run
/// # fn f(c: tenure::blocking::Client) -> Result<(), tenure::Error> {
/// let g = c.lock("job").acquire()?;
/// if g.wait_lost(Some(std::time::Duration::from_secs(1))) {
///     eprintln!("lost it");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LockGuard {
    inner: Arc<crate::LockGuard>,
}

impl LockGuard {
    fn new(inner: crate::LockGuard) -> Self {
        LockGuard { inner: Arc::new(inner) }
    }

    /// The async guard underneath.
    ///
    /// ```no_run
    /// # fn f(g: tenure::blocking::LockGuard) { let a: &tenure::LockGuard = g.as_async(); }
    /// ```
    pub fn as_async(&self) -> &crate::LockGuard {
        &self.inner
    }

    /// See [`crate::LockGuard::token`].
    ///
    /// ```no_run
    /// # fn f(g: tenure::blocking::LockGuard) { println!("{}", g.token()); }
    /// ```
    pub fn token(&self) -> u64 {
        self.inner.token()
    }

    /// See [`crate::LockGuard::name`].
    ///
    /// ```no_run
    /// # fn f(g: tenure::blocking::LockGuard) { println!("{}", g.name()); }
    /// ```
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// See [`crate::LockGuard::request_id`].
    ///
    /// ```no_run
    /// # fn f(g: tenure::blocking::LockGuard) { println!("{}", g.request_id()); }
    /// ```
    pub fn request_id(&self) -> &str {
        self.inner.request_id()
    }

    /// See [`crate::LockGuard::lease`].
    ///
    /// ```no_run
    /// # fn f(g: tenure::blocking::LockGuard) { println!("{:?}", g.lease().granted_at); }
    /// ```
    pub fn lease(&self) -> &LeaseInfo {
        self.inner.lease()
    }

    /// See [`crate::LockGuard::fence`].
    ///
    /// ```no_run
    /// # fn f(g: tenure::blocking::LockGuard) { let fence = g.fence(); }
    /// ```
    pub fn fence(&self) -> Fence {
        self.inner.fence()
    }

    /// See [`crate::LockGuard::expires_at`].
    ///
    /// ```no_run
    /// # fn f(g: tenure::blocking::LockGuard) { println!("{:?}", g.expires_at()); }
    /// ```
    pub fn expires_at(&self) -> SystemTime {
        self.inner.expires_at()
    }

    /// See [`crate::LockGuard::is_held`].
    ///
    /// ```no_run
    /// # fn f(g: tenure::blocking::LockGuard) { assert!(g.is_held()); }
    /// ```
    pub fn is_held(&self) -> bool {
        self.inner.is_held()
    }

    /// See [`crate::LockGuard::lost_signal`].
    ///
    /// ```no_run
    /// # fn f(g: tenure::blocking::LockGuard) { let s = g.lost_signal(); }
    /// ```
    pub fn lost_signal(&self) -> LostSignal {
        self.inner.lost_signal()
    }

    /// Blocks until the lease is lost (`true`), or `timeout` passes or the lease is released
    /// (`false`). `None` waits without limit. On the client runtime's own threads it does not
    /// block and answers whether the lease is lost now.
    ///
    /// ```no_run
    /// # fn f(g: tenure::blocking::LockGuard) {
    /// let lost = g.wait_lost(Some(std::time::Duration::from_millis(100)));
    /// # }
    /// ```
    pub fn wait_lost(&self, timeout: Option<Duration>) -> bool {
        let signal = self.inner.lost_signal();
        if on_client_runtime() {
            return signal.is_lost();
        }
        let wait = async move {
            match timeout {
                Some(t) => tokio::time::timeout(t, signal.wait()).await.unwrap_or(false),
                None => signal.wait().await,
            }
        };
        let handle = runtime().spawn(wait);
        futures::executor::block_on(handle).unwrap_or(false)
    }

    /// See [`crate::LockGuard::renew`].
    ///
    /// ```no_run
    /// # fn f(g: tenure::blocking::LockGuard) -> Result<(), tenure::Error> { g.renew()?; Ok(()) }
    /// ```
    pub fn renew(&self) -> Result<(), Error> {
        let g = self.inner.clone();
        block(async move { g.renew().await })
    }

    /// See [`crate::LockGuard::release`].
    ///
    /// ```no_run
    /// # fn f(g: tenure::blocking::LockGuard) -> Result<(), tenure::Error> { g.release()?; Ok(()) }
    /// ```
    pub fn release(&self) -> Result<bool, Error> {
        let g = self.inner.clone();
        block(async move { g.release().await })
    }
}

/// The blocking twin of [`crate::Kv`].
///
/// ```no_run
/// # fn f(c: tenure::blocking::Client) -> Result<(), tenure::Error> {
/// let kv = c.kv();
/// kv.put("k", "v", None)?;
/// assert_eq!(kv.get("k")?.map(|e| e.value), Some(b"v".to_vec()));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Kv {
    inner: crate::Kv,
}

impl Kv {
    /// See [`crate::Kv::put`].
    ///
    /// ```no_run
    /// # fn f(kv: tenure::blocking::Kv) -> Result<(), tenure::Error> { kv.put("k", "v", None)?; Ok(()) }
    /// ```
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>, fence: Option<Fence>) -> Result<u64, Error> {
        let (kv, key, value) = (self.inner.clone(), key.as_ref().to_vec(), value.as_ref().to_vec());
        block(async move { kv.put(key, value, fence).await })
    }

    /// See [`crate::Kv::get_with`].
    ///
    /// ```no_run
    /// # fn f(kv: tenure::blocking::Kv) -> Result<(), tenure::Error> { let e = kv.get("k")?; Ok(()) }
    /// ```
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<KvEntry>, Error> {
        let (kv, key) = (self.inner.clone(), key.as_ref().to_vec());
        block(async move { kv.get(key).await })
    }

    /// See [`crate::Kv::delete`].
    ///
    /// ```no_run
    /// # fn f(kv: tenure::blocking::Kv) -> Result<(), tenure::Error> { kv.delete("k", None)?; Ok(()) }
    /// ```
    pub fn delete(&self, key: impl AsRef<[u8]>, fence: Option<Fence>) -> Result<bool, Error> {
        let (kv, key) = (self.inner.clone(), key.as_ref().to_vec());
        block(async move { kv.delete(key, fence).await })
    }

    /// See [`crate::Kv::list`].
    ///
    /// ```no_run
    /// # fn f(kv: tenure::blocking::Kv) -> Result<(), tenure::Error> { let all = kv.list("")?; Ok(()) }
    /// ```
    pub fn list(&self, prefix: impl AsRef<[u8]>) -> Result<Vec<KvEntry>, Error> {
        let (kv, prefix) = (self.inner.clone(), prefix.as_ref().to_vec());
        block(async move { kv.list(prefix).await })
    }
}
