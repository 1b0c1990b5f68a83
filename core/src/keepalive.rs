//! One KeepAlive stream per client renews every held and waiting lease at ttl/3, and a watchdog
//! reports a held lease lost as soon as its renewal cannot be confirmed in time.
//!
//! Each message carries a sequence number; the leader's answer repeats it, so the client knows
//! the send time each acknowledgement refers to, and extends the lease from that time only.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tenure_proto::v1 as pb;
use tenure_proto::v1::locks_client::LocksClient;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::clock::BootInstant;
use crate::conn::{lock, Backoff, Conn};
use crate::error::{classify, Failure};
use crate::lease::{LeaseState, Phase};

/// The watchdog looks at least this often, so a suspended machine notices lost leases quickly
/// after it wakes (tokio's timers stop during suspend; the boot clock does not).
const MAX_NAP: Duration = Duration::from_millis(250);

/// The client's leases, by request id.
#[derive(Default)]
pub(crate) struct Registry {
    leases: Mutex<HashMap<String, Arc<LeaseState>>>,
    changed: Notify,
}

impl Registry {
    pub(crate) fn add(&self, lease: Arc<LeaseState>) {
        lock(&self.leases).insert(lease.request_id.clone(), lease);
        self.changed.notify_one();
    }

    pub(crate) fn remove(&self, request_id: &str) {
        lock(&self.leases).remove(request_id);
    }

    pub(crate) fn take_all(&self) -> Vec<Arc<LeaseState>> {
        lock(&self.leases).drain().map(|(_, l)| l).collect()
    }

    fn all(&self) -> Vec<Arc<LeaseState>> {
        lock(&self.leases).values().cloned().collect()
    }

    fn is_empty(&self) -> bool {
        lock(&self.leases).is_empty()
    }
}

/// The keepalive task of one client; stops when dropped.
pub(crate) struct KeepAlive {
    pub registry: Arc<Registry>,
    task: JoinHandle<()>,
}

impl KeepAlive {
    pub(crate) fn start(
        conn: Arc<Conn>,
        runtime: &tokio::runtime::Handle,
        timeout: Duration,
        on_lost: Arc<dyn Fn(Arc<LeaseState>) + Send + Sync>,
    ) -> KeepAlive {
        let registry = Arc::new(Registry::default());
        let task = runtime.spawn(Renewer::new(conn, registry.clone(), timeout, on_lost).run());
        KeepAlive { registry, task }
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Stream {
    uri: String,
    tx: mpsc::Sender<pb::KeepAliveRequest>,
    rx: Streaming<pb::KeepAliveResponse>,
    /// seq → (send time, the leases in that message)
    in_flight: HashMap<u64, (BootInstant, Vec<Arc<LeaseState>>)>,
}

type Opening = Pin<Box<dyn Future<Output = Result<Stream, (String, Failure)>> + Send>>;

struct Renewer {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    timeout: Duration,
    on_lost: Arc<dyn Fn(Arc<LeaseState>) + Send + Sync>,
    stream: Option<Stream>,
    opening: Option<Opening>,
    retry_at: Option<BootInstant>,
    backoff: Backoff,
    seq: u64,
}

enum Event {
    Tick,
    Opened(Result<Stream, (String, Failure)>),
    Message(Result<Option<pb::KeepAliveResponse>, tonic::Status>),
}

impl Renewer {
    fn new(
        conn: Arc<Conn>,
        registry: Arc<Registry>,
        timeout: Duration,
        on_lost: Arc<dyn Fn(Arc<LeaseState>) + Send + Sync>,
    ) -> Self {
        let backoff = Backoff::new(conn.retry);
        Renewer { conn, registry, timeout, on_lost, stream: None, opening: None, retry_at: None, backoff, seq: 0 }
    }

    async fn run(mut self) {
        loop {
            let now = BootInstant::now();
            // One snapshot per turn: with many leases, copying the registry is the loop's cost.
            let leases = self.registry.all();
            self.check_deadlines(&leases, now);
            if self.stream.is_none()
                && self.opening.is_none()
                && !self.registry.is_empty()
                && self.retry_at.is_none_or(|t| now >= t)
            {
                self.retry_at = None;
                self.opening = Some(Box::pin(open(self.conn.clone(), self.timeout)));
            }
            self.send_due(&leases, now);
            let nap = self.next_wake(&leases, now).saturating_until().min(MAX_NAP);
            drop(leases);
            let event = {
                let opening = self.opening.as_mut();
                let stream = self.stream.as_mut();
                tokio::select! {
                    _ = tokio::time::sleep(nap) => Event::Tick,
                    _ = self.registry.changed.notified() => Event::Tick,
                    r = maybe(opening) => Event::Opened(r),
                    m = next_message(stream) => Event::Message(m),
                }
            };
            match event {
                Event::Tick => {}
                Event::Opened(r) => {
                    self.opening = None;
                    match r {
                        Ok(stream) => self.stream = Some(stream),
                        Err((uri, failure)) => self.failed(&uri, failure),
                    }
                }
                Event::Message(Ok(Some(reply))) => self.handle(reply),
                Event::Message(Ok(None)) => self.broken(Failure::Retry("the keepalive stream ended".into())),
                Event::Message(Err(status)) => {
                    self.broken(Failure::Retry(format!("keepalive stream failed: {status}")))
                }
            }
        }
    }

    /// Reports held leases whose renewal could not be confirmed in time.
    fn check_deadlines(&mut self, leases: &[Arc<LeaseState>], now: BootInstant) {
        for l in leases {
            if l.phase() == Phase::Held && l.alive_until().is_none_or(|u| u <= now) {
                let why = format!(
                    "no renewal of the lease on {:?} was confirmed within its TTL ({:?}) less the safety margin",
                    l.name, l.ttl
                );
                if l.mark_lost(why) {
                    tracing::warn!(lock = %l.name, request_id = %l.request_id, "lease lost: renewal not confirmed in time");
                    self.registry.remove(&l.request_id);
                    (self.on_lost)(Arc::clone(l));
                }
            }
        }
        // A renewal unanswered for a third of its lease's TTL (or the call timeout, if
        // shorter) means a dead or stuck node: try another while the lease can still be saved.
        if let Some(s) = &self.stream {
            let stuck = s.in_flight.values().any(|(sent, leases)| {
                let patience = leases.iter().map(|l| l.ttl / 3).min().unwrap_or(self.timeout).min(self.timeout);
                now >= *sent + patience
            });
            if stuck {
                let uri = s.uri.clone();
                self.broken(Failure::Retry(format!("no keepalive answer from {uri} in time")));
            }
        }
    }

    fn send_due(&mut self, leases: &[Arc<LeaseState>], now: BootInstant) {
        let Some(stream) = &mut self.stream else { return };
        if !leases.iter().any(|l| l.renewal_due(now)) {
            return;
        }
        // Leases falling due within a twelfth of their TTL go along in the same message.
        let due: Vec<Arc<LeaseState>> = leases.iter().filter(|l| l.renewal_due(now + l.ttl / 12)).cloned().collect();
        self.seq += 1;
        let msg = pb::KeepAliveRequest {
            seq: self.seq,
            leases: due
                .iter()
                .map(|l| pb::LeaseRef { name: l.name.clone(), request_id: l.request_id.clone() })
                .collect(),
        };
        match stream.tx.try_send(msg) {
            Ok(()) => {
                for l in &due {
                    l.mark_sent(now);
                }
                stream.in_flight.insert(self.seq, (now, due));
            }
            // A full buffer means the node stopped reading.
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.broken(Failure::Retry("the node stopped reading the keepalive stream".into()))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.broken(Failure::Retry("the keepalive stream closed".into()))
            }
        }
    }

    fn next_wake(&self, leases: &[Arc<LeaseState>], now: BootInstant) -> BootInstant {
        let mut wake = now + MAX_NAP;
        for l in leases {
            if let (Some(due), Some(_)) = (l.next_renewal(), &self.stream) {
                wake = wake.min(due);
            }
            if l.phase() == Phase::Held {
                if let Some(u) = l.alive_until() {
                    wake = wake.min(u);
                }
            }
        }
        if let (Some(t), None, None) = (self.retry_at, &self.stream, &self.opening) {
            wake = wake.min(t);
        }
        wake
    }

    fn handle(&mut self, reply: pb::KeepAliveResponse) {
        let Some(stream) = &mut self.stream else { return };
        let Some((sent, leases)) = stream.in_flight.remove(&reply.seq) else { return };
        if let Some(err) = reply.error.filter(|e| !e.code.is_empty()) {
            for l in &leases {
                l.forget_sent();
            }
            let uri = stream.uri.clone();
            let failure = match (err.code.as_str(), self.conn.leader_uri(&err.leader_addr)) {
                ("NOT_LEADER", Some(leader)) if leader != uri => {
                    Failure::Redirect { leader_addr: err.leader_addr, message: err.message }
                }
                _ => Failure::Retry(format!("{}: {}", err.code, err.message)),
            };
            self.broken(failure);
            return;
        }
        self.backoff.reset();
        let by_id: HashMap<&str, &Arc<LeaseState>> = leases.iter().map(|l| (l.request_id.as_str(), l)).collect();
        for alive in &reply.alive {
            if let Some(l) = by_id.get(alive.request_id.as_str()) {
                l.acknowledged(sent);
            }
        }
        for lost in &reply.lost {
            // A waiting request the leader has never confirmed may be one whose Acquire is still
            // on its way: `server_lost` ignores those, and the acquire call reports the outcome.
            if let Some(l) = by_id.get(lost.request_id.as_str()) {
                let why = format!("the leader reports the lease on {:?} gone (expired or released)", l.name);
                if l.server_lost(why) {
                    tracing::warn!(lock = %l.name, request_id = %l.request_id, "lease lost: the leader no longer has it");
                    self.registry.remove(&l.request_id);
                    (self.on_lost)(Arc::clone(l));
                }
            }
        }
    }

    /// The stream is unusable: renew everything in flight again on a new one.
    fn broken(&mut self, failure: Failure) {
        if let Some(s) = self.stream.take() {
            for (_, leases) in s.in_flight.into_values() {
                for l in leases {
                    l.forget_sent();
                }
            }
            self.failed(&s.uri, failure);
        }
    }

    fn failed(&mut self, uri: &str, failure: Failure) {
        match failure {
            Failure::Redirect { leader_addr, .. } => {
                if let Some(leader) = self.conn.leader_uri(&leader_addr) {
                    self.conn.set_leader(leader);
                }
                self.retry_at = None;
            }
            Failure::Retry(why) | Failure::Final(crate::Error::Unavailable(why)) => {
                tracing::debug!(%uri, %why, "keepalive: retrying on another node");
                self.conn.forget(uri);
                self.retry_at = Some(BootInstant::now() + self.backoff.next_pause());
            }
            Failure::Final(e) => {
                tracing::warn!(%uri, error = %e, "keepalive refused");
                self.retry_at = Some(BootInstant::now() + self.backoff.next_pause());
            }
        }
    }
}

async fn open(conn: Arc<Conn>, timeout: Duration) -> Result<Stream, (String, Failure)> {
    let uri = conn.target();
    let channel = conn.channel(&uri).map_err(|e| (uri.clone(), Failure::Final(e)))?;
    let (tx, rx) = mpsc::channel(16);
    let request = conn.request(ReceiverStream::new(rx));
    match tokio::time::timeout(timeout, LocksClient::new(channel).keep_alive(request)).await {
        Ok(Ok(response)) => Ok(Stream { uri, tx, rx: response.into_inner(), in_flight: HashMap::new() }),
        Ok(Err(status)) => Err((uri, classify(&status))),
        Err(_) => Err((uri, Failure::Retry(format!("no answer opening a keepalive stream within {timeout:?}")))),
    }
}

async fn maybe<F: Future + Unpin>(f: Option<&mut F>) -> F::Output {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn next_message(stream: Option<&mut Stream>) -> Result<Option<pb::KeepAliveResponse>, tonic::Status> {
    match stream {
        Some(s) => s.rx.message().await,
        None => std::future::pending().await,
    }
}
