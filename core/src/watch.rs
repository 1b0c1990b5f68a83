//! `Locks.Watch` from the client side: a resumable stream of committed lock events.
//!
//! The stream is served by any node. When its node fails, stalls or ends the stream, [`Watch`]
//! reopens it (on the same or another node) from the index after the last one it delivered, so
//! no event is lost or repeated. A node whose history no longer reaches that index answers
//! COMPACTED; the watch tries each endpoint once before giving [`Error::Compacted`] to the caller.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tenure_proto::v1 as pb;
use tenure_proto::v1::locks_client::LocksClient;
use tonic::Streaming;

use crate::client::ClientInner;
use crate::conn::Route;
use crate::error::{classify, Failure};
use crate::types::{unix_ms, Mode};
use crate::Error;

/// A node sends a progress message at least every 2 s; three missed ones mean it is gone.
const STALL: Duration = Duration::from_secs(6);
/// Largest watch message accepted. Servers send about 1 MiB per message, more only when the
/// events of one log index alone are larger.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// What happened to a request, in a [`LockEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockEventKind {
    /// The request joined the lock's queue.
    Queued,
    /// The request was granted.
    Granted,
    /// The hold ended by a release: its holder's, or an admin's force-release
    /// ([`LockEvent::forced`]).
    Released,
    /// The lease ran out on the leader's clock (held, or still queued if `token` is 0).
    Expired,
    /// A queued request was given up before its grant, or a release arrived for a request
    /// not seen yet (its Acquire, if it comes, will be refused).
    Cancelled,
}

impl LockEventKind {
    /// `"QUEUED"`, `"GRANTED"`, `"RELEASED"`, `"EXPIRED"` or `"CANCELLED"`.
    ///
    /// ```
    /// assert_eq!(tenure::LockEventKind::Granted.as_str(), "GRANTED");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            LockEventKind::Queued => "QUEUED",
            LockEventKind::Granted => "GRANTED",
            LockEventKind::Released => "RELEASED",
            LockEventKind::Expired => "EXPIRED",
            LockEventKind::Cancelled => "CANCELLED",
        }
    }

    fn from_pb(kind: i32) -> Option<LockEventKind> {
        Some(match pb::WatchEventKind::try_from(kind).ok()? {
            pb::WatchEventKind::Queued => LockEventKind::Queued,
            pb::WatchEventKind::Granted => LockEventKind::Granted,
            pb::WatchEventKind::Released => LockEventKind::Released,
            pb::WatchEventKind::Expired => LockEventKind::Expired,
            pb::WatchEventKind::Cancelled => LockEventKind::Cancelled,
            pb::WatchEventKind::Unspecified => return None,
        })
    }
}

/// One committed change of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEvent {
    /// Log index of the entry that made the change (several events can share one).
    pub index: u64,
    /// What happened.
    pub kind: LockEventKind,
    /// The lock's name.
    pub name: String,
    /// The request's id (its lease handle).
    pub request_id: String,
    /// GRANTED, and RELEASED/EXPIRED of a hold: the hold's fencing token; otherwise 0.
    pub token: u64,
    /// QUEUED and GRANTED: who asked (empty otherwise).
    pub owner: String,
    /// QUEUED and GRANTED: the requested mode (EXCLUSIVE otherwise).
    pub mode: Mode,
    /// QUEUED: 1-based place in the queue; otherwise 0.
    pub position: u64,
    /// The leader's wall-clock time of the entry (for display).
    pub at: SystemTime,
    /// RELEASED only: an admin's force-release ended the hold, not its holder.
    pub forced: bool,
}

impl LockEvent {
    fn from_pb(e: pb::WatchEvent) -> Option<LockEvent> {
        Some(LockEvent {
            index: e.index,
            kind: LockEventKind::from_pb(e.kind)?,
            name: e.name,
            request_id: e.request_id,
            token: e.token,
            owner: e.owner,
            mode: Mode::from_pb(e.mode),
            position: e.position,
            at: unix_ms(e.at_ms),
            forced: e.forced,
        })
    }
}

#[derive(Clone)]
pub(crate) enum Selector {
    Name(String),
    Prefix(String),
}

/// Options of a watch; made by [`Client::watch`](crate::Client::watch) or
/// [`Client::watch_prefix`](crate::Client::watch_prefix).
#[must_use = "a WatchBuilder does nothing until `start` is called"]
pub struct WatchBuilder {
    inner: Arc<ClientInner>,
    selector: Selector,
    start_index: u64,
}

impl WatchBuilder {
    pub(crate) fn new(inner: Arc<ClientInner>, selector: Selector) -> Self {
        Self { inner, selector, start_index: 0 }
    }

    /// Starts at log index `index` (events of earlier entries are skipped) instead of at the
    /// next committed entry. Resume a watch with the index after the last event you handled.
    ///
    /// ```no_run
    /// # async fn f(client: tenure::Client) -> Result<(), tenure::Error> {
    /// let mut watch = client.watch("job").from_index(1).start().await?;
    /// # Ok(()) }
    /// ```
    pub fn from_index(mut self, index: u64) -> Self {
        self.start_index = index;
        self
    }

    /// Opens the stream; fails with [`Error::Compacted`] if no node still has `from_index`.
    ///
    /// ```no_run
    /// # async fn f(client: tenure::Client) -> Result<(), tenure::Error> {
    /// let mut watch = client.watch_prefix("jobs/").start().await?;
    /// while let Some(event) = watch.next().await {
    ///     let e = event?;
    ///     println!("{} {} {} token {}", e.index, e.kind.as_str(), e.name, e.token);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn start(self) -> Result<Watch, Error> {
        let mut watch = Watch {
            inner: self.inner,
            selector: self.selector,
            next_index: self.start_index,
            applied_index: 0,
            stream: None,
            buffer: VecDeque::new(),
            finished: false,
        };
        watch.open().await?;
        watch.pin_start().await?;
        Ok(watch)
    }
}

/// A running watch: call [`Watch::next`] for each event.
pub struct Watch {
    inner: Arc<ClientInner>,
    selector: Selector,
    /// The first index not yet delivered (0 before the first message: "from now").
    next_index: u64,
    applied_index: u64,
    stream: Option<(String, Streaming<pb::WatchResponse>)>,
    buffer: VecDeque<Result<LockEvent, Error>>,
    finished: bool,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("next_index", &self.next_index).finish_non_exhaustive()
    }
}

impl Watch {
    /// The next event, in log order. Reconnects by itself when a node fails; returns an error
    /// when no node answers within the client's timeout (call `next` again to keep trying), and
    /// `None` after a final error such as [`Error::Compacted`].
    ///
    /// ```no_run
    /// # async fn f(mut watch: tenure::Watch) {
    /// while let Some(Ok(event)) = watch.next().await {
    ///     println!("{event:?}");
    /// }
    /// # }
    /// ```
    pub async fn next(&mut self) -> Option<Result<LockEvent, Error>> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                return Some(e);
            }
            if self.finished {
                return None;
            }
            if self.stream.is_none() {
                if let Err(e) = self.open().await {
                    self.finished = !e.is_retryable();
                    return Some(Err(e));
                }
            }
            let Some((uri, stream)) = self.stream.as_mut() else { continue };
            let uri = uri.clone();
            match tokio::time::timeout(STALL, stream.message()).await {
                Ok(Ok(Some(msg))) => self.take(msg),
                Ok(Ok(None)) => self.stream = None,
                Ok(Err(status)) => {
                    self.stream = None;
                    self.inner.conn.forget(&uri);
                    match classify(&status) {
                        // Another node may still have the history: `open` tries each once.
                        Failure::Final(Error::Compacted(_)) => {}
                        Failure::Final(e) => {
                            self.finished = true;
                            return Some(Err(e));
                        }
                        _ => {}
                    }
                }
                Err(_) => {
                    tracing::debug!(%uri, "watch stalled; reconnecting");
                    self.stream = None;
                    self.inner.conn.forget(&uri);
                }
            }
        }
    }

    /// Waits for the stream's first message, which names the index it starts after. Until
    /// then a watch "from now" has no index to resume from, and a reconnect would start from a
    /// later "now" and skip events.
    async fn pin_start(&mut self) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + self.inner.timeout.max(STALL);
        while self.next_index == 0 {
            if self.stream.is_none() {
                self.open().await?;
            }
            let Some((uri, stream)) = self.stream.as_mut() else { continue };
            let uri = uri.clone();
            match tokio::time::timeout_at(deadline, stream.message()).await {
                Ok(Ok(Some(msg))) => self.take(msg),
                Ok(Ok(None)) => self.stream = None,
                Ok(Err(status)) => {
                    self.stream = None;
                    self.inner.conn.forget(&uri);
                    if let Failure::Final(e) = classify(&status) {
                        return Err(e);
                    }
                }
                Err(_) => {
                    self.stream = None;
                    self.inner.conn.forget(&uri);
                    return Err(Error::Unavailable(format!("{uri} opened the watch but sent nothing")));
                }
            }
        }
        Ok(())
    }

    /// The highest log index this watch has seen applied: every matching event up to it has
    /// been received (though maybe not yet returned by [`Watch::next`]).
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    fn take(&mut self, msg: pb::WatchResponse) {
        for e in msg.events {
            if e.index >= self.next_index {
                let (index, kind) = (e.index, e.kind);
                self.buffer.push_back(LockEvent::from_pb(e).ok_or_else(|| {
                    Error::Internal(format!(
                        "event of unknown kind {kind} at index {index}: the server is newer than this client"
                    ))
                }));
            }
        }
        self.applied_index = self.applied_index.max(msg.applied_index);
        self.next_index = self.next_index.max(msg.applied_index + 1);
    }

    /// Opens the stream from `next_index`, trying every endpoint once when nodes answer
    /// COMPACTED (a node that installed a snapshot may lack history another still has).
    async fn open(&mut self) -> Result<(), Error> {
        let conn = self.inner.conn.clone();
        let selector = match &self.selector {
            Selector::Name(n) => pb::watch_request::Selector::Name(n.clone()),
            Selector::Prefix(p) => pb::watch_request::Selector::Prefix(p.clone()),
        };
        let req = pb::WatchRequest { selector: Some(selector), start_index: self.next_index };
        let mut compacted = 0;
        let answered = std::sync::Mutex::new(String::new());
        loop {
            let result = conn
                .call("watch", Route::Any, self.inner.timeout, |ch| {
                    let r = conn.request(req.clone());
                    let uri = conn.target();
                    *answered.lock().unwrap_or_else(|p| p.into_inner()) = uri.clone();
                    async move {
                        let mut client = LocksClient::new(ch).max_decoding_message_size(MAX_MESSAGE_BYTES);
                        client.watch(r).await.map(|s| (uri, s.into_inner()))
                    }
                })
                .await;
            match result {
                Ok(stream) => {
                    self.stream = Some(stream);
                    return Ok(());
                }
                Err(Error::Compacted(m)) if compacted + 1 < conn.endpoints().len() => {
                    compacted += 1;
                    tracing::debug!("watch: {m}; trying another node");
                    conn.forget(&answered.lock().unwrap_or_else(|p| p.into_inner()));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A [`Watch`] shared between the callers that take its next event and one that closes it, as
/// the SDKs need: [`SharedWatch::close`] ends a pending [`SharedWatch::next`] at once (from any
/// thread) and drops the stream. Clones share the same watch.
///
/// ```no_run
/// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
/// let w = tenure::SharedWatch::new(c.watch("job").start().await?);
/// let closer = w.clone();
/// tokio::spawn(async move { closer.close() });
/// while let Some(event) = w.next().await? {
///     println!("{:?} {}", event.kind, event.request_id);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SharedWatch {
    watch: Arc<tokio::sync::Mutex<Option<Watch>>>,
    closed: Arc<tokio::sync::watch::Sender<bool>>,
}

impl SharedWatch {
    /// Shares `watch`.
    pub fn new(watch: Watch) -> Self {
        Self {
            watch: Arc::new(tokio::sync::Mutex::new(Some(watch))),
            closed: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// The next event; `None` once the watch is closed or has ended. An error leaves the watch
    /// open (the next call keeps trying), as [`Watch::next`] does.
    pub async fn next(&self) -> Result<Option<LockEvent>, Error> {
        let mut closed = self.closed.subscribe();
        let mut slot = tokio::select! {
            biased;
            _ = closed.wait_for(|c| *c) => return Ok(None),
            slot = self.watch.lock() => slot,
        };
        let Some(w) = slot.as_mut() else { return Ok(None) };
        // `Watch::next` is cancel-safe: an event not returned yet stays buffered.
        let next = tokio::select! {
            biased;
            _ = closed.wait_for(|c| *c) => None,
            next = w.next() => next,
        };
        match next {
            Some(Ok(e)) => Ok(Some(e)),
            Some(Err(e)) => Err(e),
            None => {
                *slot = None;
                Ok(None)
            }
        }
    }

    /// Ends the watch: a pending [`SharedWatch::next`] returns `None`, and the stream is
    /// dropped. Idempotent.
    pub fn close(&self) {
        self.closed.send_replace(true);
        // A pending `next` holds the lock: it sees the flag and ends itself.
        if let Ok(mut slot) = self.watch.try_lock() {
            slot.take();
        }
    }

    /// Whether [`SharedWatch::close`] was called.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}
