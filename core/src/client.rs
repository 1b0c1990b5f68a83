//! The client: its builder, and the calls that are not about holding a lock (describe, list,
//! fences, cluster status).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tenure_proto::v1 as pb;
use tenure_proto::v1::cluster_client::ClusterClient;
use tenure_proto::v1::locks_client::LocksClient;

use crate::conn::{Conn, ConnConfig, RetryPolicy, Route};
use crate::keepalive::KeepAlive;
use crate::kv::Kv;
use crate::lease::{LeaseState, DEFAULT_SAFETY_MARGIN_PERCENT};
use crate::lock::LockBuilder;
use crate::releases::BackgroundReleases;
use crate::types::{ClusterStatus, Consistency, FenceStatus, LockDescription, LockSummary, Mode};
use crate::watch::{Selector, WatchBuilder};
use crate::{Error, LockGuard};

/// The endpoint used when none is given and `TENURE_ENDPOINTS` is unset.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7070";

/// Settings of a [`Client`]. Every setting has a default; [`ClientBuilder::connect`] makes the
/// client.
///
/// ```no_run
/// # async fn f() -> Result<(), tenure::Error> {
/// use std::time::Duration;
/// let client = tenure::Client::builder()
///     .endpoints(["127.0.0.1:7071", "127.0.0.1:7072", "127.0.0.1:7073"])
///     .owner("billing-worker-3")
///     .timeout(Duration::from_secs(5))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoints: Vec<String>,
    owner: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    tls_ca_file: Option<PathBuf>,
    bearer_token: Option<String>,
    safety_margin_percent: u32,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            endpoints: Vec::new(),
            owner: None,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            retry: RetryPolicy::default(),
            tls_ca_file: None,
            bearer_token: None,
            safety_margin_percent: DEFAULT_SAFETY_MARGIN_PERCENT,
        }
    }
}

impl ClientBuilder {
    /// The nodes to talk to, as `host:port` or `http(s)://host:port`. One is enough (the
    /// client follows the leader), all are better (it rotates when one is down). When none are
    /// given: the comma-separated `TENURE_ENDPOINTS`, else `http://127.0.0.1:7070`.
    ///
    /// ```
    /// let b = tenure::Client::builder().endpoints(["10.0.0.1:7070", "10.0.0.2:7070"]);
    /// # drop(b);
    /// ```
    pub fn endpoints<I, S>(mut self, endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.endpoints = endpoints.into_iter().map(Into::into).collect();
        self
    }

    /// Free text recorded with every lease this client takes (≤ 256 bytes), shown by
    /// `describe`. Default: `hostname:pid`.
    ///
    /// ```
    /// let b = tenure::Client::builder().owner("worker-42@host-a");
    /// # drop(b);
    /// ```
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// How long one call may take, retries included (default 5 s). Lock waits are set per
    /// acquire and come on top of it.
    ///
    /// ```
    /// let b = tenure::Client::builder().timeout(std::time::Duration::from_secs(2));
    /// # drop(b);
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long opening a TCP connection to one node may take (default 2 s).
    ///
    /// ```
    /// let b = tenure::Client::builder().connect_timeout(std::time::Duration::from_millis(500));
    /// # drop(b);
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The backoff between attempts when no node can answer.
    ///
    /// ```
    /// let b = tenure::Client::builder().retry(tenure::RetryPolicy::default());
    /// # drop(b);
    /// ```
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// A PEM file with the CA certificate(s) that signed the nodes' certificates. Endpoints
    /// without a scheme then use `https://`.
    ///
    /// ```
    /// let b = tenure::Client::builder().tls_ca_file("/etc/tenure/ca.pem");
    /// # drop(b);
    /// ```
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// A bearer token sent with every call (`authorization: Bearer …`).
    ///
    /// ```
    /// let b = tenure::Client::builder().bearer_token("s3cret");
    /// # drop(b);
    /// ```
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// The share of each lease's TTL, in percent (1..=50, default 10), that the client keeps
    /// back: a lease counts as lost once `ttl × (100 − margin)%` has passed since the send time
    /// of its last confirmed renewal. A larger margin tolerates more clock-rate difference and
    /// delivery delay between client and leader.
    ///
    /// ```
    /// let b = tenure::Client::builder().safety_margin_percent(20);
    /// # drop(b);
    /// ```
    pub fn safety_margin_percent(mut self, percent: u32) -> Self {
        self.safety_margin_percent = percent;
        self
    }

    /// Makes the client. It checks the settings but does not contact any node: connections
    /// open on first use, so a client can be made before the cluster is up. Must be called
    /// inside a tokio runtime (the client's keepalive task runs on it).
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), tenure::Error> {
    /// let client = tenure::Client::builder().connect().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(self) -> Result<Client, Error> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Internal("Client::connect must run inside a tokio runtime".into()))?;
        Client::build(self, runtime)
    }
}

/// A client of a tenure cluster. Cheap to clone; clones share connections, the leader cache and
/// one keepalive stream. Use it from many tasks at once.
///
/// ```no_run
/// # async fn f() -> Result<(), tenure::Error> {
/// use std::time::Duration;
/// let client = tenure::Client::connect(["http://127.0.0.1:7070"]).await?;
/// let guard = client.lock("job-123").ttl(Duration::from_secs(30)).wait(Duration::from_secs(10)).acquire().await?;
/// println!("holding job-123 with fencing token {}", guard.token());
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
}

pub(crate) struct ClientInner {
    pub conn: Arc<Conn>,
    pub owner: String,
    pub timeout: Duration,
    pub safety_margin_percent: u32,
    pub keepalive: Arc<KeepAlive>,
    pub releases: Arc<BackgroundReleases>,
    pub runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.inner.conn.endpoints())
            .field("owner", &self.inner.owner)
            .finish_non_exhaustive()
    }
}

/// `TENURE_ENDPOINTS` split on commas, else the default endpoint.
fn endpoints_from_env() -> Vec<String> {
    let from_env: Vec<String> = std::env::var("TENURE_ENDPOINTS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if from_env.is_empty() {
        vec![DEFAULT_ENDPOINT.to_string()]
    } else {
        from_env
    }
}

fn default_owner() -> String {
    let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
    format!("{host}:{}", std::process::id())
}

impl Client {
    /// Connects to the cluster at `endpoints` with default settings (see [`ClientBuilder`]).
    /// An empty list means `TENURE_ENDPOINTS`, else `http://127.0.0.1:7070`.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), tenure::Error> {
    /// let client = tenure::Client::connect(["127.0.0.1:7071", "127.0.0.1:7072"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect<I, S>(endpoints: I) -> Result<Client, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Client::builder().endpoints(endpoints).connect().await
    }

    /// A builder with every setting at its default.
    ///
    /// ```
    /// let builder = tenure::Client::builder();
    /// # drop(builder);
    /// ```
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    pub(crate) fn build(b: ClientBuilder, runtime: tokio::runtime::Handle) -> Result<Client, Error> {
        let owner = b.owner.unwrap_or_else(default_owner);
        if owner.len() > 256 {
            return Err(Error::invalid("owner", format!("owner must be <= 256 bytes, got {}", owner.len())));
        }
        if b.timeout.is_zero() {
            return Err(Error::invalid("timeout", "the call timeout must be > 0"));
        }
        if !(1..=50).contains(&b.safety_margin_percent) {
            return Err(Error::invalid(
                "safety_margin_percent",
                format!("the safety margin must be 1..=50 percent, got {}", b.safety_margin_percent),
            ));
        }
        let tls_ca_pem = match &b.tls_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                Error::invalid("tls_ca_file", format!("cannot read the CA file {}: {e}", path.display()))
            })?),
            None => None,
        };
        let endpoints = if b.endpoints.is_empty() { endpoints_from_env() } else { b.endpoints };
        let conn = Arc::new(Conn::new(ConnConfig {
            endpoints,
            tls_ca_pem,
            bearer_token: b.bearer_token,
            connect_timeout: b.connect_timeout,
            retry: b.retry,
        })?);
        let releases = Arc::new(BackgroundReleases::new(conn.clone(), runtime.clone(), b.timeout));
        let on_lost = {
            let releases = releases.clone();
            // A lost lease is released at once, so that if the leader still has it, the next
            // waiter does not wait for the TTL.
            Arc::new(move |l: Arc<LeaseState>| releases.spawn(l.name.clone(), l.request_id.clone()))
        };
        let keepalive = Arc::new(KeepAlive::start(conn.clone(), &runtime, b.timeout, on_lost));
        let inner = ClientInner {
            conn,
            owner,
            timeout: b.timeout,
            safety_margin_percent: b.safety_margin_percent,
            keepalive,
            releases,
            runtime,
        };
        Ok(Client { inner: Arc::new(inner) })
    }

    /// The owner text this client records with its leases.
    ///
    /// ```no_run
    /// # fn f(c: tenure::Client) {
    /// println!("I am {}", c.owner());
    /// # }
    /// ```
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// The default deadline of one call.
    ///
    /// ```no_run
    /// # fn f(c: tenure::Client) {
    /// assert!(c.timeout() > std::time::Duration::ZERO);
    /// # }
    /// ```
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// This client with another default call deadline. The two share connections, the leader
    /// cache and the keepalive stream.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// let quick = c.with_timeout(std::time::Duration::from_millis(500));
    /// let d = quick.describe("job").await?;
    /// # Ok(()) }
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        let i = &self.inner;
        Client {
            inner: Arc::new(ClientInner {
                conn: i.conn.clone(),
                owner: i.owner.clone(),
                timeout: timeout.max(Duration::from_millis(1)),
                safety_margin_percent: i.safety_margin_percent,
                keepalive: i.keepalive.clone(),
                releases: i.releases.clone(),
                runtime: i.runtime.clone(),
            }),
        }
    }

    /// Starts an acquire of lock `name`; set options on the builder, then call
    /// [`LockBuilder::acquire`] or [`LockBuilder::try_acquire`].
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// use std::time::Duration;
    /// let g = c.lock("reports/daily").ttl(Duration::from_secs(10)).acquire().await?;
    /// # Ok(()) }
    /// ```
    pub fn lock(&self, name: impl Into<String>) -> LockBuilder {
        LockBuilder::new(self.clone(), name.into())
    }

    /// Takes lock `name` (exclusive, default TTL) only if it is free now; `None` when it is not.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// match c.try_lock("cron/cleanup").await? {
    ///     Some(guard) => println!("running cleanup with token {}", guard.token()),
    ///     None => println!("another node runs cleanup"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn try_lock(&self, name: impl Into<String>) -> Result<Option<LockGuard>, Error> {
        self.lock(name).try_acquire().await
    }

    /// Releases lease `request_id` of lock `name`, or withdraws it from the queue. Idempotent;
    /// returns whether it was held. For leases taken elsewhere (e.g. `tenure acquire`); a
    /// [`LockGuard`] releases its own.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// let was_held = c.release("job", "01JDQ3M4ZK8Y6V2W3X4Y5Z6A7B").await?;
    /// # Ok(()) }
    /// ```
    pub async fn release(&self, name: &str, request_id: &str) -> Result<bool, Error> {
        release_request(&self.inner.conn, name, request_id, self.inner.timeout).await
    }

    /// Releases every lease this client still holds or waits for, and waits for the releases
    /// that dropped guards and cancelled acquires sent in the background, each bounded by the
    /// call timeout. Call it before a short-lived process exits, so nothing it held or queued
    /// outlives it until a TTL runs out. Guards of released leases report `is_held() == false`.
    /// The client stays usable. Fails with the first release that could not be confirmed.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// c.close().await?;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) -> Result<(), Error> {
        let inner = &self.inner;
        let leases = inner.keepalive.registry.take_all();
        for l in &leases {
            l.end();
        }
        let releases = leases.iter().map(|l| release_request(&inner.conn, &l.name, &l.request_id, inner.timeout));
        let results = futures::future::join_all(releases).await;
        let _ = tokio::time::timeout(inner.timeout, inner.releases.idle()).await;
        results.into_iter().find_map(Result::err).map_or(Ok(()), Err)
    }

    /// Holders, waiters and limit of lock `name`, read linearizably.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// let d = c.describe("job").await?;
    /// println!("{} holders, {} waiters", d.holders.len(), d.waiters.len());
    /// # Ok(()) }
    /// ```
    pub async fn describe(&self, name: &str) -> Result<LockDescription, Error> {
        self.describe_with(name, Consistency::Linearizable).await
    }

    /// [`Client::describe`] with a chosen consistency.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// let d = c.describe_with("job", tenure::Consistency::Stale).await?;
    /// # Ok(()) }
    /// ```
    pub async fn describe_with(&self, name: &str, consistency: Consistency) -> Result<LockDescription, Error> {
        let req = pb::DescribeRequest { name: name.to_string(), consistency: consistency.to_pb() };
        let conn = &self.inner.conn;
        let d = conn
            .call("describe", route(consistency), self.inner.timeout, |ch| {
                let r = conn.request(req.clone());
                async move { LocksClient::new(ch).describe(r).await }
            })
            .await?;
        Ok(LockDescription::from_pb(d.into_inner()))
    }

    /// Every lock whose name starts with `prefix` (all pages), in byte order.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// for l in c.list("jobs/").await? {
    ///     println!("{}", l.name);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list(&self, prefix: &str) -> Result<Vec<LockSummary>, Error> {
        let mut all = Vec::new();
        let mut token = None;
        loop {
            let (page, next) = self.list_page(prefix, 1000, token, Consistency::Linearizable).await?;
            all.extend(page);
            match next {
                Some(t) => token = Some(t),
                None => return Ok(all),
            }
        }
    }

    /// One page of [`Client::list`]: up to `page_size` locks (1..=1000) after `page_token`,
    /// and the token of the next page if there is one.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// let (first, next) = c.list_page("", 10, None, tenure::Consistency::Stale).await?;
    /// # Ok(()) }
    /// ```
    pub async fn list_page(
        &self,
        prefix: &str,
        page_size: u32,
        page_token: Option<String>,
        consistency: Consistency,
    ) -> Result<(Vec<LockSummary>, Option<String>), Error> {
        let req = pb::ListLocksRequest {
            prefix: prefix.to_string(),
            page_size,
            page_token: page_token.unwrap_or_default(),
            consistency: consistency.to_pb(),
        };
        let conn = &self.inner.conn;
        let r = conn
            .call("list", route(consistency), self.inner.timeout, |ch| {
                let r = conn.request(req.clone());
                async move { LocksClient::new(ch).list(r).await }
            })
            .await?
            .into_inner();
        let locks = r
            .locks
            .into_iter()
            .map(|l| LockSummary {
                name: l.name,
                holders: l.holders,
                waiters: l.waiters,
                mode: Mode::from_pb(l.mode),
                limit: l.limit,
            })
            .collect();
        Ok((locks, (!r.next_page_token.is_empty()).then_some(r.next_page_token)))
    }

    /// Whether `token` is a current hold of lock `name` (read linearizably).
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// let status = c.validate_fence("job", 17).await?;
    /// println!("current: {}, holders' tokens: {:?}", status.current, status.current_tokens);
    /// # Ok(()) }
    /// ```
    pub async fn validate_fence(&self, name: &str, token: u64) -> Result<FenceStatus, Error> {
        self.validate_fence_with(name, token, Consistency::Linearizable).await
    }

    /// [`Client::validate_fence`] with a chosen consistency.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// let status = c.validate_fence_with("job", 17, tenure::Consistency::Stale).await?;
    /// # Ok(()) }
    /// ```
    pub async fn validate_fence_with(
        &self,
        name: &str,
        token: u64,
        consistency: Consistency,
    ) -> Result<FenceStatus, Error> {
        let req = pb::ValidateFenceRequest { name: name.to_string(), token, consistency: consistency.to_pb() };
        let conn = &self.inner.conn;
        let r = conn
            .call("validate_fence", route(consistency), self.inner.timeout, |ch| {
                let r = conn.request(req.clone());
                async move { LocksClient::new(ch).validate_fence(r).await }
            })
            .await?
            .into_inner();
        Ok(FenceStatus { current: r.current, current_tokens: r.current_tokens })
    }

    /// The small replicated key/value store, whose writes can be fenced by a lock.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// c.kv().put("greeting", "hello", None).await?;
    /// # Ok(()) }
    /// ```
    pub fn kv(&self) -> Kv {
        Kv::new(self.clone())
    }

    /// Watches the committed events (queued, granted, released, expired, cancelled) of lock
    /// `name`, from the next committed entry or from [`WatchBuilder::from_index`].
    ///
    /// ```no_run
    /// # async fn f(client: tenure::Client) -> Result<(), tenure::Error> {
    /// let mut watch = client.watch("job").start().await?;
    /// if let Some(event) = watch.next().await {
    ///     println!("{:?}", event?);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn watch(&self, name: impl Into<String>) -> WatchBuilder {
        WatchBuilder::new(self.inner.clone(), Selector::Name(name.into()))
    }

    /// Watches every lock whose name starts with `prefix` (an empty prefix: every lock).
    ///
    /// ```no_run
    /// # async fn f(client: tenure::Client) -> Result<(), tenure::Error> {
    /// let mut watch = client.watch_prefix("jobs/").start().await?;
    /// # Ok(()) }
    /// ```
    pub fn watch_prefix(&self, prefix: impl Into<String>) -> WatchBuilder {
        WatchBuilder::new(self.inner.clone(), Selector::Prefix(prefix.into()))
    }

    /// The cluster as the first node that answers sees it (any node answers).
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// let s = c.cluster_status().await?;
    /// println!("leader: {:?}", s.leader_id);
    /// # Ok(()) }
    /// ```
    pub async fn cluster_status(&self) -> Result<ClusterStatus, Error> {
        let conn = &self.inner.conn;
        let r = conn
            .call("cluster_status", Route::Any, self.inner.timeout, |ch| {
                let r = conn.request(pb::StatusRequest {});
                async move { ClusterClient::new(ch).status(r).await }
            })
            .await?;
        Ok(ClusterStatus::from_pb(r.into_inner()))
    }
}

pub(crate) fn route(consistency: Consistency) -> Route {
    match consistency {
        Consistency::Linearizable => Route::Leader,
        Consistency::Stale => Route::Any,
    }
}

/// Sends Release for a request id (idempotent); returns whether it was held.
pub(crate) async fn release_request(
    conn: &Conn,
    name: &str,
    request_id: &str,
    timeout: Duration,
) -> Result<bool, Error> {
    let req = pb::ReleaseRequest { name: name.to_string(), request_id: request_id.to_string() };
    let r = conn
        .call("release", Route::Leader, timeout, |ch| {
            let r = conn.request(req.clone());
            async move { LocksClient::new(ch).release(r).await }
        })
        .await?;
    Ok(r.into_inner().was_held)
}
