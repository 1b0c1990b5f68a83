//! `Locks.Watch`: streams committed lock events from this node's applied state.
//!
//! Any node serves it. The stream follows the applied index: after each advance it reads the
//! new entries' events from the event history (a few hundred indexes at a time, whole indexes per
//! message) and sends those that match. A quiet stream still gets a progress message every
//! [`PROGRESS_EVERY`], so a client can tell a live node from a dead connection.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tenure_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::Status;

use super::error::ApiError;
use super::Api;
use crate::lock::{limits, HistoryKind, Mode};
use crate::raft::event_history::{HistoryError, StoredEvent};

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

/// Longest a watch stays silent.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Log indexes read per step, so one message stays small.
const INDEXES_PER_READ: u64 = 256;

/// Which locks a watch follows.
enum Selector {
    Name(String),
    Prefix(String),
}

impl Selector {
    fn matches(&self, name: &str) -> bool {
        match self {
            Selector::Name(n) => n == name,
            Selector::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

fn selector(r: &pb::WatchRequest) -> Result<Selector, ApiError> {
    match &r.selector {
        Some(pb::watch_request::Selector::Name(name)) => {
            limits::check_name("name", name)?;
            Ok(Selector::Name(name.clone()))
        }
        Some(pb::watch_request::Selector::Prefix(prefix)) => {
            if prefix.len() > limits::MAX_NAME_BYTES {
                return Err(ApiError::invalid(
                    "prefix",
                    format!("prefix is {} bytes; the limit is {}", prefix.len(), limits::MAX_NAME_BYTES),
                ));
            }
            Ok(Selector::Prefix(prefix.clone()))
        }
        None => Err(ApiError::invalid("selector", "set either name or prefix (an empty prefix watches every lock)")),
    }
}

fn history_error(e: HistoryError) -> ApiError {
    match e {
        HistoryError::Compacted { .. } => ApiError::Compacted(e.to_string()),
        HistoryError::Storage(m) => ApiError::Internal(m),
    }
}

fn kind_to_pb(kind: HistoryKind) -> pb::WatchEventKind {
    match kind {
        HistoryKind::Queued => pb::WatchEventKind::Queued,
        HistoryKind::Granted => pb::WatchEventKind::Granted,
        HistoryKind::Released => pb::WatchEventKind::Released,
        HistoryKind::Expired => pb::WatchEventKind::Expired,
        HistoryKind::Cancelled => pb::WatchEventKind::Cancelled,
    }
}

fn event_to_pb(e: StoredEvent) -> pb::WatchEvent {
    let mode = match e.event.mode {
        Mode::Exclusive => pb::LockMode::Exclusive,
        Mode::Shared => pb::LockMode::Shared,
    };
    pb::WatchEvent {
        index: e.index,
        kind: kind_to_pb(e.event.kind) as i32,
        name: e.event.name,
        request_id: e.event.request_id,
        token: e.event.token,
        owner: e.event.owner,
        mode: mode as i32,
        position: e.event.position,
        at_ms: e.event.at_ms,
    }
}

/// Validates the request and starts the stream. A start index that is already compacted fails
/// here, before the stream opens.
pub fn start(api: Arc<Api>, r: pb::WatchRequest) -> Result<WatchStream, ApiError> {
    let selector = selector(&r)?;
    let mut applied = api.state.applied_index();
    let from = if r.start_index == 0 { *applied.borrow_and_update() + 1 } else { r.start_index };
    let floor = api.state.events.floor();
    if from < floor {
        return Err(history_error(HistoryError::Compacted { from, floor }));
    }
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut next = from;
        let mut last_sent = Instant::now();
        loop {
            let to = *applied.borrow_and_update();
            while next <= to {
                let upto = to.min(next.saturating_add(INDEXES_PER_READ - 1));
                let events = match api.state.events.read(next, upto) {
                    Ok(events) => events,
                    Err(e) => {
                        let _ = tx.send(Err(history_error(e).into())).await;
                        return;
                    }
                };
                next = upto + 1;
                let events: Vec<_> =
                    events.into_iter().filter(|e| selector.matches(&e.event.name)).map(event_to_pb).collect();
                if !events.is_empty() {
                    if tx.send(Ok(pb::WatchResponse { events, applied_index: upto })).await.is_err() {
                        return;
                    }
                    last_sent = Instant::now();
                }
            }
            if last_sent.elapsed() >= PROGRESS_EVERY {
                let progress = pb::WatchResponse { events: Vec::new(), applied_index: next - 1 };
                if tx.send(Ok(progress)).await.is_err() {
                    return;
                }
                last_sent = Instant::now();
            }
            tokio::select! {
                changed = applied.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(last_sent + PROGRESS_EVERY) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}
