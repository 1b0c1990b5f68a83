//! Taking a lock: the acquire builder, the FIFO-fair wait loop, and the guard that holds the
//! lease.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tenure_proto::v1 as pb;
use tenure_proto::v1::locks_client::LocksClient;
use tokio::time::Instant;

use crate::client::{release_request, Client};
use crate::clock::BootInstant;
use crate::conn::Route;
use crate::lease::{LeaseState, LostSignal, Phase};
use crate::request_id::new_request_id;
use crate::types::{Fence, LeaseInfo, Mode};
use crate::Error;

/// The default lease TTL.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// One Acquire call is held open by the leader at most this long; then the client asks again
/// with the same request id (servers cap it too, at `--max-wait-ms`).
const MAX_WAIT_PER_CALL: Duration = Duration::from_secs(30);

/// Options of one acquire. Made by [`Client::lock`]; finished by [`LockBuilder::acquire`] or
/// [`LockBuilder::try_acquire`].
///
/// ```no_run
/// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
/// use std::time::Duration;
/// // A counting semaphore: at most 3 holders of "gpu".
/// let g = c.lock("gpu").shared(3).ttl(Duration::from_secs(60)).wait(Duration::from_secs(30)).acquire().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a LockBuilder does nothing until .acquire() or .try_acquire() is awaited"]
pub struct LockBuilder {
    client: Client,
    name: String,
    owner: Option<String>,
    ttl: Duration,
    wait: Option<Duration>,
    mode: Mode,
    limit: u32,
    lock_delay: Duration,
}

impl LockBuilder {
    pub(crate) fn new(client: Client, name: String) -> Self {
        LockBuilder {
            client,
            name,
            owner: None,
            ttl: DEFAULT_TTL,
            wait: None,
            mode: Mode::Exclusive,
            limit: 0,
            lock_delay: Duration::ZERO,
        }
    }

    /// The lease's time to live (default 30 s; the server's minimum is 1 s by default). The
    /// client renews it every ttl/3 while it is held or waiting.
    ///
    /// ```no_run
    /// # fn f(c: tenure::Client) {
    /// let b = c.lock("job").ttl(std::time::Duration::from_secs(10));
    /// # }
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long to wait for the lock; when it passes, the request is withdrawn and
    /// [`LockBuilder::acquire`] fails with [`Error::Timeout`]. Default: wait until granted.
    /// `Duration::ZERO` does not wait at all.
    ///
    /// ```no_run
    /// # fn f(c: tenure::Client) {
    /// let b = c.lock("job").wait(std::time::Duration::from_secs(5));
    /// # }
    /// ```
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = Some(wait);
        self
    }

    /// Waits until granted, however long it takes (the default).
    ///
    /// ```no_run
    /// # fn f(c: tenure::Client) {
    /// let b = c.lock("job").wait_forever();
    /// # }
    /// ```
    pub fn wait_forever(mut self) -> Self {
        self.wait = None;
        self
    }

    /// Takes the lock SHARED: up to `limit` holders at once (0 = unlimited). The first SHARED
    /// request on a free lock sets the limit; a later one with another limit fails with
    /// [`Error::LimitMismatch`].
    ///
    /// ```no_run
    /// # fn f(c: tenure::Client) {
    /// let reader = c.lock("table/users").shared(0);
    /// # }
    /// ```
    pub fn shared(mut self, limit: u32) -> Self {
        self.mode = Mode::Shared;
        self.limit = limit;
        self
    }

    /// Sets the mode directly ([`LockBuilder::shared`] also sets the limit).
    ///
    /// ```no_run
    /// # fn f(c: tenure::Client) {
    /// let writer = c.lock("table/users").mode(tenure::Mode::Exclusive);
    /// # }
    /// ```
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// After this lease *expires* (not after a release), nobody gets the lock for `delay`
    /// (≤ 60 s): time for a crashed holder's writes to drain.
    ///
    /// ```no_run
    /// # fn f(c: tenure::Client) {
    /// let b = c.lock("job").lock_delay(std::time::Duration::from_secs(5));
    /// # }
    /// ```
    pub fn lock_delay(mut self, delay: Duration) -> Self {
        self.lock_delay = delay;
        self
    }

    /// Owner text for this lease only (default: the client's).
    ///
    /// ```no_run
    /// # fn f(c: tenure::Client) {
    /// let b = c.lock("job").owner("batch-7");
    /// # }
    /// ```
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// Takes the lock, waiting as configured. While it waits, the request keeps its place in
    /// the queue across leader changes and server-side caps (the same request id is re-sent).
    /// When the wait runs out the request is withdrawn (a grant that raced it is released), and
    /// only then does this fail with [`Error::Timeout`]. Dropping the future withdraws the
    /// request too (best effort).
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// match c.lock("job").wait(std::time::Duration::from_secs(2)).acquire().await {
    ///     Ok(guard) => println!("token {}", guard.token()),
    ///     Err(e) if e.code() == "TIMEOUT" => println!("busy"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn acquire(self) -> Result<LockGuard, Error> {
        let name = self.name.clone();
        let wait = self.wait;
        match self.run().await? {
            Some(guard) => Ok(guard),
            None => {
                Err(Error::Timeout(format!("lock {name:?} is busy (allowed wait: {:?})", wait.unwrap_or_default())))
            }
        }
    }

    /// Takes the lock only if it is free now; `None` when it is not. Never waits.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// if let Some(guard) = c.lock("job").try_acquire().await? {
    ///     println!("got it: {}", guard.token());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn try_acquire(mut self) -> Result<Option<LockGuard>, Error> {
        self.wait = Some(Duration::ZERO);
        self.run().await
    }

    fn check(&self) -> Result<(), Error> {
        if self.name.is_empty() {
            return Err(Error::invalid("name", "the lock name must be 1..=512 bytes, got 0"));
        }
        if self.ttl.is_zero() || self.ttl > Duration::from_millis(u64::MAX) {
            return Err(Error::invalid(
                "ttl",
                format!("ttl must be > 0 (and at least the server's minimum, 1 s by default), got {:?}", self.ttl),
            ));
        }
        Ok(())
    }

    fn request(&self, request_id: &str, wait: Duration) -> pb::AcquireRequest {
        pb::AcquireRequest {
            name: self.name.clone(),
            owner: self.owner.clone().unwrap_or_else(|| self.client.inner.owner.clone()),
            request_id: request_id.to_string(),
            ttl_ms: millis(self.ttl),
            wait_ms: millis(wait),
            mode: self.mode.to_pb(),
            limit: self.limit,
            lock_delay_ms: millis(self.lock_delay),
        }
    }

    /// The wait loop. `Ok(None)`: busy, and the wait was zero.
    async fn run(self) -> Result<Option<LockGuard>, Error> {
        self.check()?;
        let until = self.wait.map(|w| Instant::now() + w);
        loop {
            // On every way out but a guard or a clean refusal, dropping `pending` withdraws the
            // request with a best-effort Release (idempotent, so harmless if nothing is there).
            let pending = Pending::start(&self);
            match self.wait_as(&pending, until).await? {
                Attempt::Granted(lease) => return Ok(Some(pending.into_guard(lease))),
                Attempt::Busy => {
                    pending.forget();
                    return Ok(None);
                }
                Attempt::Lost(why) => {
                    // The request left the queue without us (its lease expired while this
                    // client could not reach the leader, or someone released it). Start over.
                    tracing::warn!(lock = %self.name, request_id = %pending.state.request_id, %why, "waiting request lost; re-queueing");
                    if until.is_some_and(|u| Instant::now() >= u) {
                        return Err(Error::Timeout(format!(
                            "{} (the request was lost: {why})",
                            self.timeout_message()
                        )));
                    }
                }
            }
        }
    }

    /// Sends the Acquire for `pending` until it is granted, refused, lost or out of time.
    async fn wait_as(&self, pending: &Pending, until: Option<Instant>) -> Result<Attempt, Error> {
        let conn = &self.client.inner.conn;
        let timeout = self.client.inner.timeout;
        // Whether any node has answered this request: until one has, the cluster is not
        // reachable, and running out of time is UNAVAILABLE rather than TIMEOUT.
        let mut answered = false;
        loop {
            let left = until.map(|u| u.saturating_duration_since(Instant::now()));
            if answered && left == Some(Duration::ZERO) {
                return Err(pending.cancel(self.timeout_message()).await);
            }
            let mut sent = BootInstant::now();
            let call_deadline = left.unwrap_or(MAX_WAIT_PER_CALL).min(MAX_WAIT_PER_CALL) + timeout;
            let result = conn
                .call("acquire", Route::Leader, call_deadline, |ch| {
                    sent = BootInstant::now();
                    // The wait is measured again on every attempt, so retries never overshoot
                    // it. A zero wait on a request the leader does not know yet is a try-lock;
                    // on a known one it only renews it and reports where it stands.
                    let left = until.map(|u| u.saturating_duration_since(Instant::now()));
                    let wait = left.unwrap_or(MAX_WAIT_PER_CALL).min(MAX_WAIT_PER_CALL);
                    let r = conn.request(self.request(&pending.state.request_id, wait));
                    async move { LocksClient::new(ch).acquire(r).await }
                })
                .await;
            let reply = match result {
                Ok(r) => r.into_inner(),
                Err(Error::Unavailable(why)) => {
                    if until.is_some_and(|u| Instant::now() >= u) {
                        if !answered {
                            return Err(Error::Unavailable(why));
                        }
                        return Err(pending.cancel(format!("{} ({why})", self.timeout_message())).await);
                    }
                    // At most once per call deadline, so a wait without end is not silent.
                    tracing::warn!(lock = %self.name, %why, "no node answered the acquire; still trying");
                    continue;
                }
                Err(e @ (Error::RequestFinished(_) | Error::LeaseLost(_))) if answered => {
                    return Ok(Attempt::Lost(e.to_string()));
                }
                Err(e) => {
                    // A refusal of a request the leader never accepted changed nothing.
                    if !answered && is_refusal(&e) {
                        pending.forget();
                    }
                    return Err(e);
                }
            };
            answered = true;
            match pb::AcquireOutcome::try_from(reply.outcome) {
                Ok(pb::AcquireOutcome::Granted) => {
                    pending.state.acknowledged(sent);
                    let lease = reply.lease.ok_or_else(|| Error::Internal("GRANTED without a lease".into()))?;
                    if pending.state.grant() || self.renew_late_grant(pending).await? {
                        return Ok(Attempt::Granted(LeaseInfo::from_pb(lease)));
                    }
                    return Ok(Attempt::Lost("the grant could not be confirmed within the lease's safe window".into()));
                }
                Ok(pb::AcquireOutcome::Busy) => return Ok(Attempt::Busy),
                Ok(pb::AcquireOutcome::Queued) => pending.state.acknowledged(sent),
                _ => return Err(Error::Internal(format!("unknown acquire outcome {}", reply.outcome))),
            }
        }
    }

    /// A grant whose answer took so long that the lease's safe window has passed: renew it
    /// once; if the leader confirms in time, the grant stands.
    async fn renew_late_grant(&self, pending: &Pending) -> Result<bool, Error> {
        if pending.state.phase() != Phase::Waiting {
            return Ok(false);
        }
        match renew(&self.client, &pending.state).await {
            Ok(()) => Ok(pending.state.grant()),
            Err(Error::LeaseLost(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn timeout_message(&self) -> String {
        format!("lock {:?} was not granted within {:?}", self.name, self.wait.unwrap_or_default())
    }
}

/// Errors by which the server refuses an Acquire without changing anything.
fn is_refusal(e: &Error) -> bool {
    matches!(
        e,
        Error::InvalidArgument { .. }
            | Error::LimitMismatch(_)
            | Error::ResourceExhausted(_)
            | Error::RequestFinished(_)
            | Error::Unauthenticated(_)
            | Error::PermissionDenied(_)
    )
}

enum Attempt {
    Granted(LeaseInfo),
    Busy,
    Lost(String),
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

/// A request that is waiting (or being granted). Registered for keepalive; if dropped before it
/// becomes a guard, it withdraws itself with a best-effort Release unless it was withdrawn or
/// forgotten already.
struct Pending {
    client: Client,
    state: Arc<LeaseState>,
    armed: AtomicBool,
}

impl Pending {
    fn start(b: &LockBuilder) -> Pending {
        let inner = &b.client.inner;
        let id = new_request_id();
        let state = LeaseState::new(b.name.clone(), id, b.ttl, inner.safety_margin_percent, BootInstant::now());
        let state = Arc::new(state);
        inner.keepalive.registry.add(state.clone());
        Pending { client: b.client.clone(), state, armed: AtomicBool::new(true) }
    }

    /// Stops renewing, without a Release: the server holds nothing for it.
    fn forget(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.client.inner.keepalive.registry.remove(&self.state.request_id);
            self.state.end();
        }
    }

    /// Withdraws the request (releasing a grant that raced it), then returns the timeout. If
    /// the Release cannot be confirmed, dropping `self` sends another in the background.
    async fn cancel(&self, message: String) -> Error {
        self.client.inner.keepalive.registry.remove(&self.state.request_id);
        let inner = &self.client.inner;
        let released = release_request(&inner.conn, &self.state.name, &self.state.request_id, inner.timeout).await;
        if released.is_ok() {
            self.forget();
        }
        Error::Timeout(message)
    }

    fn into_guard(self, lease: LeaseInfo) -> LockGuard {
        self.armed.store(false, Ordering::SeqCst);
        LockGuard { client: self.client.clone(), state: self.state.clone(), lease, finished: AtomicBool::new(false) }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.client.inner.keepalive.registry.remove(&self.state.request_id);
            self.state.end();
            spawn_release(&self.client, &self.state);
        }
    }
}

fn spawn_release(client: &Client, state: &LeaseState) {
    client.inner.releases.spawn(state.name.clone(), state.request_id.clone());
}

pub(crate) async fn renew(client: &Client, state: &LeaseState) -> Result<(), Error> {
    let conn = &client.inner.conn;
    let req = pb::RenewRequest { name: state.name.clone(), request_id: state.request_id.clone() };
    let mut sent = BootInstant::now();
    conn.call("renew", Route::Leader, client.inner.timeout, |ch| {
        sent = BootInstant::now();
        let r = conn.request(req.clone());
        async move { LocksClient::new(ch).renew(r).await }
    })
    .await?;
    state.acknowledged(sent);
    Ok(())
}

/// A held lease. The client keeps it alive in the background; it is released when the guard is
/// dropped (best effort) or by [`LockGuard::release`].
///
/// Check [`LockGuard::is_held`] before acting as holder, or race your work against
/// [`LockGuard::lost`], and pass [`LockGuard::token`] (or [`LockGuard::fence`]) to whatever the
/// lock protects so it can reject a stale holder.
///
/// ```no_run
/// # async fn write_report(_token: u64) {}
/// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
/// let guard = c.lock("reports").acquire().await?;
/// tokio::select! {
///     _ = guard.lost() => eprintln!("lost the lock; stopping"),
///     _ = write_report(guard.token()) => {}
/// }
/// guard.release().await?;
/// # Ok(()) }
/// ```
pub struct LockGuard {
    client: Client,
    state: Arc<LeaseState>,
    lease: LeaseInfo,
    finished: AtomicBool,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard").field("lease", &self.lease).field("held", &self.is_held()).finish()
    }
}

impl LockGuard {
    /// The fencing token of this grant: unique, and higher than every earlier grant's.
    ///
    /// ```no_run
    /// # fn f(g: tenure::LockGuard) {
    /// println!("token {}", g.token());
    /// # }
    /// ```
    pub fn token(&self) -> u64 {
        self.lease.token
    }

    /// The lock's name.
    ///
    /// ```no_run
    /// # fn f(g: tenure::LockGuard) {
    /// println!("holding {}", g.name());
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        &self.lease.name
    }

    /// The request id of this lease (its handle for renew/release).
    ///
    /// ```no_run
    /// # fn f(g: tenure::LockGuard) {
    /// println!("request {}", g.request_id());
    /// # }
    /// ```
    pub fn request_id(&self) -> &str {
        &self.lease.request_id
    }

    /// The lease as the server granted it.
    ///
    /// ```no_run
    /// # fn f(g: tenure::LockGuard) {
    /// println!("granted at {:?} to {}", g.lease().granted_at, g.lease().owner);
    /// # }
    /// ```
    pub fn lease(&self) -> &LeaseInfo {
        &self.lease
    }

    /// A fence on this grant, for fenced KV writes.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client, g: tenure::LockGuard) -> Result<(), tenure::Error> {
    /// c.kv().put("state", "v2", Some(g.fence())).await?;
    /// # Ok(()) }
    /// ```
    pub fn fence(&self) -> Fence {
        Fence { name: self.lease.name.clone(), token: self.lease.token }
    }

    /// Until when the client is sure the lease is held, unless a renewal is confirmed before:
    /// the send time of the last confirmed renewal plus 90% of the TTL, as wall-clock time.
    ///
    /// ```no_run
    /// # fn f(g: tenure::LockGuard) {
    /// println!("good until at least {:?}", g.expires_at());
    /// # }
    /// ```
    pub fn expires_at(&self) -> SystemTime {
        let left = self.state.alive_until().map_or(Duration::ZERO, BootInstant::saturating_until);
        SystemTime::now() + left
    }

    /// The moment (on the monotonic clock) until which the client is sure the lease is held,
    /// unless a renewal is confirmed before: the [`LockGuard::expires_at`] bound as an
    /// `Instant`, for timing work against it. It says nothing about a lease the leader reported
    /// gone early: check [`LockGuard::is_held`] too.
    ///
    /// ```no_run
    /// # fn f(g: tenure::LockGuard) {
    /// let left = g.valid_until().saturating_duration_since(std::time::Instant::now());
    /// println!("at least {left:?} left");
    /// # }
    /// ```
    pub fn valid_until(&self) -> std::time::Instant {
        self.state.alive_until().map_or_else(std::time::Instant::now, BootInstant::to_instant)
    }

    /// Whether the lease is held: granted, not released, not lost, and its last confirmed
    /// renewal is recent enough.
    ///
    /// ```no_run
    /// # fn f(g: tenure::LockGuard) {
    /// if !g.is_held() {
    ///     return;
    /// }
    /// # }
    /// ```
    pub fn is_held(&self) -> bool {
        self.state.is_held()
    }

    /// Resolves when the lease is lost or in doubt: the leader reported it gone, or no renewal
    /// was confirmed within 90% of the TTL. It resolves before the leader can grant the lock to
    /// anyone else. Never resolves after a clean release.
    ///
    /// ```no_run
    /// # async fn f(g: tenure::LockGuard) {
    /// g.lost().await;
    /// eprintln!("lease lost");
    /// # }
    /// ```
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let signal = self.state.lost_signal();
        async move {
            if !signal.wait().await {
                std::future::pending::<()>().await;
            }
        }
    }

    /// A handle on the lost event that outlives the guard (for callbacks and other threads).
    ///
    /// ```no_run
    /// # fn f(g: tenure::LockGuard) {
    /// let signal = g.lost_signal();
    /// # }
    /// ```
    pub fn lost_signal(&self) -> LostSignal {
        self.state.lost_signal()
    }

    /// Why the lease was lost, once it has been.
    ///
    /// ```no_run
    /// # async fn f(g: tenure::LockGuard) {
    /// g.lost().await;
    /// eprintln!("{}", g.lost_reason().unwrap_or_default());
    /// # }
    /// ```
    pub fn lost_reason(&self) -> Option<String> {
        (self.state.phase() == Phase::Lost).then(|| self.state.why_lost())
    }

    /// Renews the lease now, on top of the background keepalive. Fails with
    /// [`Error::LeaseLost`] if the leader no longer has it.
    ///
    /// ```no_run
    /// # async fn f(g: tenure::LockGuard) -> Result<(), tenure::Error> {
    /// g.renew().await?;
    /// # Ok(()) }
    /// ```
    pub async fn renew(&self) -> Result<(), Error> {
        if self.finished.load(Ordering::SeqCst) {
            return Err(Error::LeaseLost(format!("the lease on {:?} was released", self.lease.name)));
        }
        if self.state.phase() == Phase::Lost {
            return Err(Error::LeaseLost(self.state.why_lost()));
        }
        match renew(&self.client, &self.state).await {
            Err(Error::LeaseLost(why)) => {
                if self.state.mark_lost(why.clone()) {
                    self.client.inner.keepalive.registry.remove(&self.lease.request_id);
                }
                Err(Error::LeaseLost(why))
            }
            other => other,
        }
    }

    /// Releases the lock and waits for the leader to confirm; returns whether it was still held
    /// (false when it had already expired). Idempotent: once confirmed, later calls return
    /// `Ok(false)`; after an error, calling again (or dropping the guard) retries. Either way
    /// the lease is no longer renewed.
    ///
    /// ```no_run
    /// # async fn f(g: tenure::LockGuard) -> Result<(), tenure::Error> {
    /// let was_held = g.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn release(&self) -> Result<bool, Error> {
        if self.finished.swap(true, Ordering::SeqCst) {
            return Ok(false);
        }
        self.client.inner.keepalive.registry.remove(&self.lease.request_id);
        self.state.end();
        // Until the leader confirms, a later call (or the guard's drop) tries again: after an
        // error, and also when this future is dropped mid-call (a cancelled task, Ctrl-C).
        let mut unconfirmed = Unconfirmed { finished: &self.finished, confirmed: false };
        let inner = &self.client.inner;
        let released = release_request(&inner.conn, &self.lease.name, &self.lease.request_id, inner.timeout).await;
        unconfirmed.confirmed = released.is_ok();
        released
    }

    /// Stops renewing and forgets the lease without releasing it: it stays held until its TTL
    /// runs out or someone releases it by request id. Returns the lease.
    ///
    /// ```no_run
    /// # fn f(g: tenure::LockGuard) {
    /// let lease = g.detach();
    /// println!("release later with: tenure release {} {}", lease.name, lease.request_id);
    /// # }
    /// ```
    pub fn detach(self) -> LeaseInfo {
        self.finished.store(true, Ordering::SeqCst);
        self.client.inner.keepalive.registry.remove(&self.lease.request_id);
        self.state.end();
        self.lease.clone()
    }
}

/// Marks a release as not done when it is dropped unconfirmed.
struct Unconfirmed<'a> {
    finished: &'a AtomicBool,
    confirmed: bool,
}

impl Drop for Unconfirmed<'_> {
    fn drop(&mut self) {
        if !self.confirmed {
            self.finished.store(false, Ordering::SeqCst);
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.finished.swap(true, Ordering::SeqCst) {
            self.client.inner.keepalive.registry.remove(&self.lease.request_id);
            self.state.end();
            spawn_release(&self.client, &self.state);
        }
    }
}
