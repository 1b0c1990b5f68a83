//! `tenure.v1.Locks`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use tenure_proto::v1 as pb;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::auth::{Caller, Right};
use super::error::ApiError;
use super::{Api, MAX_WAIT_MS_ACCEPTED};
use crate::lease_clock::Renewal;
use crate::lock::{self, limits, AcquireOutcome, Command, CommandResult, Mode, Refusal, RequestState};
use crate::metrics::metrics;

pub struct LocksService {
    api: Arc<Api>,
}

impl LocksService {
    pub fn new(api: Arc<Api>) -> Self {
        Self { api }
    }
}

fn mode_from_pb(mode: i32) -> Result<Mode, ApiError> {
    match pb::LockMode::try_from(mode) {
        Ok(pb::LockMode::Exclusive) => Ok(Mode::Exclusive),
        Ok(pb::LockMode::Shared) => Ok(Mode::Shared),
        Err(_) => Err(ApiError::invalid("mode", format!("mode must be EXCLUSIVE (0) or SHARED (1), got {mode}"))),
    }
}

fn mode_to_pb(mode: Mode) -> i32 {
    match mode {
        Mode::Exclusive => pb::LockMode::Exclusive as i32,
        Mode::Shared => pb::LockMode::Shared as i32,
    }
}

pub fn lease_to_pb(l: &lock::Lease) -> pb::Lease {
    pb::Lease {
        name: l.name.clone(),
        request_id: l.request_id.clone(),
        owner: l.owner.clone(),
        mode: mode_to_pb(l.mode),
        token: l.token,
        ttl_ms: l.ttl_ms,
        granted_at_ms: l.granted_at_ms,
        expires_at_ms: l.expires_at_ms,
    }
}

fn granted(lease: &lock::Lease, index: u64) -> pb::AcquireResponse {
    pb::AcquireResponse {
        outcome: pb::AcquireOutcome::Granted as i32,
        lease: Some(lease_to_pb(lease)),
        log_index: index,
        ..Default::default()
    }
}

fn queued(position: u64, index: u64) -> pb::AcquireResponse {
    pb::AcquireResponse { outcome: pb::AcquireOutcome::Queued as i32, position, log_index: index, ..Default::default() }
}

fn unexpected(r: CommandResult) -> ApiError {
    ApiError::Internal(format!("unexpected command result {r:?}"))
}

impl LocksService {
    fn validate_acquire(&self, r: &pb::AcquireRequest) -> Result<lock::Acquire, ApiError> {
        let l = &self.api.limits;
        let acquire = lock::Acquire {
            name: r.name.clone(),
            request_id: r.request_id.clone(),
            owner: r.owner.clone(),
            mode: mode_from_pb(r.mode)?,
            limit: r.limit,
            ttl_ms: r.ttl_ms,
            lock_delay_ms: r.lock_delay_ms,
            wait: r.wait_ms > 0,
        };
        limits::check_acquire_shape(&acquire)?;
        if r.ttl_ms < l.min_ttl_ms || r.ttl_ms > l.max_ttl_ms {
            return Err(ApiError::invalid(
                "ttl_ms",
                format!("ttl_ms must be in {}..={} ms, got {}", l.min_ttl_ms, l.max_ttl_ms, r.ttl_ms),
            ));
        }
        if r.wait_ms > MAX_WAIT_MS_ACCEPTED {
            return Err(ApiError::invalid(
                "wait_ms",
                format!(
                    "wait_ms must be <= {MAX_WAIT_MS_ACCEPTED} ms (calls are held at most {} ms, then answer QUEUED), got {}",
                    l.max_wait_ms, r.wait_ms
                ),
            ));
        }
        Ok(acquire)
    }

    async fn acquire(&self, r: pb::AcquireRequest) -> Result<pb::AcquireResponse, ApiError> {
        let receipt = Instant::now();
        let acquire = self.validate_acquire(&r)?;
        self.api.require_leader()?;
        let wait = Duration::from_millis(r.wait_ms.min(self.api.limits.max_wait_ms));
        let request_id = acquire.request_id.clone();

        // A repeat of a held or queued request is a renewal: answered after a quorum round, not
        // logged. Anything else (including a parameter mismatch) goes through the log.
        let known = matches!(
            self.api.state.read().table.request(&request_id),
            Some(RequestState::Held(_) | RequestState::Queued { .. })
        );
        let (outcome, index) = if known && self.same_parameters(&acquire) {
            let renewed = self.renew_one(&acquire.name, &request_id, receipt).await?;
            if renewed == Renewal::Lost {
                return Err(ApiError::LeaseNotFound { name: acquire.name, request_id });
            }
            self.current_outcome(&request_id)?
        } else {
            let note = self.api.clock.note_receipt(&request_id, receipt);
            let proposed = self.api.proposer.propose(Command::Acquire(acquire.clone())).await;
            drop(note);
            match proposed? {
                (CommandResult::Acquire(o), index) => (o, index),
                (CommandResult::Refused(refusal), _) => return Err(refusal.into()),
                (other, _) => return Err(unexpected(other)),
            }
        };
        match outcome {
            AcquireOutcome::Granted(lease) => Ok(granted(&lease, index)),
            AcquireOutcome::Busy { holders, queue_length } => Ok(pb::AcquireResponse {
                outcome: pb::AcquireOutcome::Busy as i32,
                holders: holders.iter().map(lease_to_pb).collect(),
                queue_length,
                log_index: index,
                ..Default::default()
            }),
            AcquireOutcome::Queued { position } if wait.is_zero() => Ok(queued(position, index)),
            AcquireOutcome::Queued { .. } => self.wait_for_grant(&request_id, receipt + wait).await,
        }
    }

    fn same_parameters(&self, a: &lock::Acquire) -> bool {
        let state = self.api.state.read();
        match state.table.request(&a.request_id) {
            Some(RequestState::Held(l)) => {
                l.name == a.name
                    && l.owner == a.owner
                    && l.mode == a.mode
                    && l.ttl_ms == a.ttl_ms
                    && l.lock_delay_ms == a.lock_delay_ms
                    && state.table.lock(&a.name).is_some_and(|r| a.mode == Mode::Exclusive || r.limit == Some(a.limit))
            }
            Some(RequestState::Queued { name, waiter, .. }) => {
                name == a.name
                    && waiter.owner == a.owner
                    && waiter.mode == a.mode
                    && waiter.limit == a.limit
                    && waiter.ttl_ms == a.ttl_ms
                    && waiter.lock_delay_ms == a.lock_delay_ms
            }
            _ => false,
        }
    }

    /// GRANTED or QUEUED for a request known to the table, from applied state.
    fn current_outcome(&self, request_id: &str) -> Result<(AcquireOutcome, u64), ApiError> {
        let state = self.api.state.read();
        let index = state.last_applied.map_or(0, |l| l.index);
        match state.table.request(request_id) {
            Some(RequestState::Held(l)) => Ok((AcquireOutcome::Granted(l.clone()), index)),
            Some(RequestState::Queued { position, .. }) => Ok((AcquireOutcome::Queued { position }, index)),
            Some(RequestState::Finished(t)) => {
                Err(Refusal::RequestFinished { request_id: request_id.to_string(), finish: t.finish }.into())
            }
            None => Err(ApiError::LeaseNotFound { name: String::new(), request_id: request_id.to_string() }),
        }
    }

    /// Holds the call until the request is granted or `until`; then GRANTED or QUEUED.
    async fn wait_for_grant(&self, request_id: &str, until: Instant) -> Result<pb::AcquireResponse, ApiError> {
        let watch = self.api.clock.watch(request_id);
        loop {
            let notified = watch.notify().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.current_outcome(request_id) {
                Ok((AcquireOutcome::Granted(lease), index)) => return Ok(granted(&lease, index)),
                Ok((AcquireOutcome::Queued { position }, index)) => {
                    // Past the wait, or leadership moved: answer QUEUED. The request keeps its
                    // place in the replicated queue, and the client re-sends to the leader.
                    if Instant::now() >= until || self.api.require_leader().is_err() {
                        return Ok(queued(position, index));
                    }
                }
                Ok((other, _)) => return Err(ApiError::Internal(format!("unexpected outcome {other:?}"))),
                Err(e) => return Err(e),
            }
            // Grants and finishes wake us; the short cap re-checks leadership without events.
            let wake_by = until.min(Instant::now() + Duration::from_millis(250));
            let _ = tokio::time::timeout_at(wake_by.into(), notified).await;
        }
    }

    async fn renew_one(&self, name: &str, request_id: &str, receipt: Instant) -> Result<Renewal, ApiError> {
        let leases = [(name.to_string(), request_id.to_string())];
        let api = &self.api;
        let mut out = api.clock.renew(&api.state, &api.rounds, &api.proposer, &leases, receipt).await?;
        Ok(out.pop().unwrap_or(Renewal::Lost))
    }
}

fn check_name_and_id(name: &str, request_id: &str) -> Result<(), ApiError> {
    limits::check_name("name", name)?;
    limits::check_request_id(request_id)?;
    Ok(())
}

/// Runs a closure when dropped.
struct Defer<F: FnMut()>(F);

impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<pb::KeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::locks_server::Locks for LocksService {
    async fn acquire(&self, request: Request<pb::AcquireRequest>) -> Result<Response<pb::AcquireResponse>, Status> {
        let receipt = Instant::now();
        self.api.access.check(request.metadata(), Right::Lock, request.get_ref().name.as_bytes())?;
        let r = LocksService::acquire(self, request.into_inner()).await;
        let result = match r.as_ref().map(|r| pb::AcquireOutcome::try_from(r.outcome)) {
            Ok(Ok(pb::AcquireOutcome::Granted)) => "granted",
            Ok(Ok(pb::AcquireOutcome::Busy)) => "busy",
            Ok(Ok(pb::AcquireOutcome::Queued)) => "queued",
            _ => "error",
        };
        metrics().acquired(result, receipt.elapsed());
        Ok(Response::new(r?))
    }

    async fn renew(&self, request: Request<pb::RenewRequest>) -> Result<Response<pb::RenewResponse>, Status> {
        let receipt = Instant::now();
        self.api.access.check(request.metadata(), Right::Lock, request.get_ref().name.as_bytes())?;
        let r = request.into_inner();
        check_name_and_id(&r.name, &r.request_id)?;
        self.api.require_leader()?;
        match self.renew_one(&r.name, &r.request_id, receipt).await? {
            Renewal::Alive { held, ttl_ms } => {
                metrics().renew.inc();
                Ok(Response::new(pb::RenewResponse { ttl_ms, held }))
            }
            Renewal::Lost => Err(ApiError::LeaseNotFound { name: r.name, request_id: r.request_id }.into()),
        }
    }

    type KeepAliveStream = KeepAliveStream;

    async fn keep_alive(
        &self,
        request: Request<Streaming<pb::KeepAliveRequest>>,
    ) -> Result<Response<Self::KeepAliveStream>, Status> {
        // The token is checked once, here; each lease's name in every message.
        let caller = self.api.access.caller(request.metadata())?;
        let mut incoming = request.into_inner();
        let api = self.api.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let streams = &metrics().keepalive_streams;
            streams.inc();
            let _open = Defer(|| streams.dec());
            while let Some(msg) = incoming.next().await {
                let msg = match msg {
                    Ok(msg) => msg,
                    Err(status) => {
                        // A message that does not decode ends the stream with its error, so
                        // the client learns why rather than seeing a clean end.
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                };
                let receipt = Instant::now();
                let reply = keep_alive_once(&api, &caller, msg, receipt).await;
                if tx.send(Ok(reply)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    type WatchStream = super::watch::WatchStream;

    async fn watch(&self, request: Request<pb::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let caller = self.api.access.caller(request.metadata())?;
        let r = request.into_inner();
        match &r.selector {
            Some(pb::watch_request::Selector::Name(name)) => caller.may(Right::Read, name.as_bytes())?,
            Some(pb::watch_request::Selector::Prefix(prefix)) => caller.may(Right::Read, prefix.as_bytes())?,
            None => {} // refused by validation
        }
        Ok(Response::new(super::watch::start(self.api.clone(), r)?))
    }

    async fn release(&self, request: Request<pb::ReleaseRequest>) -> Result<Response<pb::ReleaseResponse>, Status> {
        let receipt = Instant::now();
        self.api.access.check(request.metadata(), Right::Lock, request.get_ref().name.as_bytes())?;
        let r = request.into_inner();
        check_name_and_id(&r.name, &r.request_id)?;
        self.api.require_leader()?;
        let has_waiters = self.api.state.read().table.lock(&r.name).is_some_and(|l| !l.waiters.is_empty());
        let cmd = Command::Release { name: r.name, request_id: r.request_id };
        match self.api.proposer.propose(cmd).await.map_err(ApiError::from)? {
            (CommandResult::Release { was_held, was_queued }, _) => {
                metrics().release.inc();
                if was_held && has_waiters {
                    metrics().handoff_seconds.observe(receipt.elapsed().as_secs_f64());
                }
                Ok(Response::new(pb::ReleaseResponse { was_held, was_queued }))
            }
            (CommandResult::Refused(r), _) => Err(ApiError::from(r).into()),
            (other, _) => Err(unexpected(other).into()),
        }
    }

    async fn force_release(
        &self,
        request: Request<pb::ForceReleaseRequest>,
    ) -> Result<Response<pb::ForceReleaseResponse>, Status> {
        self.api.access.check(request.metadata(), Right::Admin, request.get_ref().name.as_bytes())?;
        let peer = request.remote_addr();
        let reply = super::force_release::force_release(&self.api, request.into_inner(), peer).await?;
        Ok(Response::new(reply))
    }

    async fn describe(&self, request: Request<pb::DescribeRequest>) -> Result<Response<pb::DescribeResponse>, Status> {
        self.api.access.check(request.metadata(), Right::Read, request.get_ref().name.as_bytes())?;
        let r = request.into_inner();
        limits::check_name("name", &r.name).map_err(ApiError::from)?;
        self.api.read_barrier(r.consistency).await?;
        let state = self.api.state.read();
        let Some(rec) = state.table.lock(&r.name) else {
            return Ok(Response::new(pb::DescribeResponse::default()));
        };
        Ok(Response::new(pb::DescribeResponse {
            exists: true,
            holders: rec.holders.iter().map(lease_to_pb).collect(),
            waiters: rec
                .waiters
                .iter()
                .enumerate()
                .map(|(i, w)| pb::Waiter {
                    request_id: w.request_id.clone(),
                    owner: w.owner.clone(),
                    mode: mode_to_pb(w.mode),
                    position: i as u64 + 1,
                    ttl_ms: w.ttl_ms,
                    enqueued_at_ms: w.enqueued_at_ms,
                })
                .collect(),
            limit: rec.limit.unwrap_or(0),
            delayed_until_ms: rec.delay.as_ref().map_or(0, |d| d.until_ms),
        }))
    }

    async fn list(&self, request: Request<pb::ListLocksRequest>) -> Result<Response<pb::ListLocksResponse>, Status> {
        self.api.access.check(request.metadata(), Right::Read, request.get_ref().prefix.as_bytes())?;
        let r = request.into_inner();
        let page_size = page_size(r.page_size)?;
        if r.prefix.len() > limits::MAX_NAME_BYTES {
            return Err(
                ApiError::invalid("prefix", format!("prefix must be <= {} bytes", limits::MAX_NAME_BYTES)).into()
            );
        }
        self.api.read_barrier(r.consistency).await?;
        let state = self.api.state.read();
        let after = (!r.page_token.is_empty()).then_some(r.page_token.as_str());
        let (locks, next) = state.table.list(&r.prefix, after, page_size);
        Ok(Response::new(pb::ListLocksResponse {
            locks: locks
                .iter()
                .map(|rec| pb::LockSummary {
                    name: rec.name.clone(),
                    holders: rec.holders.len() as u32,
                    waiters: rec.waiters.len() as u32,
                    mode: rec.holders.first().map_or(0, |h| mode_to_pb(h.mode)),
                    limit: rec.limit.unwrap_or(0),
                })
                .collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn validate_fence(
        &self,
        request: Request<pb::ValidateFenceRequest>,
    ) -> Result<Response<pb::ValidateFenceResponse>, Status> {
        self.api.access.check(request.metadata(), Right::Read, request.get_ref().name.as_bytes())?;
        let r = request.into_inner();
        limits::check_name("name", &r.name).map_err(ApiError::from)?;
        self.api.read_barrier(r.consistency).await?;
        let (current, current_tokens) = self.api.state.read().table.validate_fence(&r.name, r.token);
        Ok(Response::new(pb::ValidateFenceResponse { current, current_tokens }))
    }
}

/// 0 means 100; at most 1000.
pub fn page_size(requested: u32) -> Result<usize, ApiError> {
    match requested {
        0 => Ok(100),
        1..=1000 => Ok(requested as usize),
        n => Err(ApiError::invalid("page_size", format!("page_size must be 0..=1000, got {n}"))),
    }
}

async fn keep_alive_once(
    api: &Api,
    caller: &Caller,
    msg: pb::KeepAliveRequest,
    receipt: Instant,
) -> pb::KeepAliveResponse {
    let mut reply = pb::KeepAliveResponse { seq: msg.seq, ..Default::default() };
    let fail = |reply: &mut pb::KeepAliveResponse, e: ApiError| {
        let status = Status::from(e);
        let detail = <pb::ErrorDetail as prost::Message>::decode(status.details()).unwrap_or_default();
        reply.error = Some(detail);
    };
    let mut leases = Vec::with_capacity(msg.leases.len());
    for l in &msg.leases {
        if let Err(e) =
            check_name_and_id(&l.name, &l.request_id).and_then(|()| caller.may(Right::Lock, l.name.as_bytes()))
        {
            fail(&mut reply, e);
            return reply;
        }
        leases.push((l.name.clone(), l.request_id.clone()));
    }
    if let Err(e) = api.require_leader() {
        fail(&mut reply, e);
        return reply;
    }
    match api.clock.renew(&api.state, &api.rounds, &api.proposer, &leases, receipt).await {
        Ok(outcomes) => {
            for (l, o) in msg.leases.into_iter().zip(outcomes) {
                match o {
                    Renewal::Alive { .. } => {
                        metrics().renew.inc();
                        reply.alive.push(l)
                    }
                    Renewal::Lost => reply.lost.push(l),
                }
            }
        }
        Err(e) => fail(&mut reply, e.into()),
    }
    reply
}
