//! `Locks.Watch`: streams committed lock events from this node's applied state.
//!
//! Any node serves it. The first message, sent at once, is an empty one whose `applied_index`
//! is the index the stream starts after, so a client that asked for "from now" learns where that
//! is before anything can be missed. The stream then follows the applied index: after each
//! advance it reads the new entries' events from the event history (a few hundred indexes at a
//! time) and sends those that match, whole indexes per message and about
//! [`MESSAGE_BYTES`] at most (one index alone may exceed it). A quiet stream still gets a
//! progress message every [`PROGRESS_EVERY`], so a client can tell a live node from a dead
//! connection.

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
/// How long a node may be without a leader before it ends its watches.
const LEADERLESS_GRACE: Duration = Duration::from_secs(4);
/// Log indexes read per step.
const INDEXES_PER_READ: u64 = 256;
/// A message is sent once its events pass this size, at the next index boundary. Clients
/// accept messages up to [`tenure`]'s 64 MiB, which one index cannot reach: an entry is at most
/// 96 KiB of commands, and a release that grants many SHARED waiters at once is bounded by the
/// queue cap.
pub const MESSAGE_BYTES: usize = 1 << 20;

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
        // A RELEASED event with `forced` set, so that a watcher that predates ForceRelease still
        // sees the hold end.
        HistoryKind::ForceReleased => pb::WatchEventKind::Released,
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
        forced: e.event.kind == HistoryKind::ForceReleased,
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
        if tx.send(Ok(pb::WatchResponse { events: Vec::new(), applied_index: from - 1 })).await.is_err() {
            return;
        }
        let mut last_sent = Instant::now();
        let mut leaderless_since: Option<Instant> = None;
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
                for message in messages(events, &selector, upto) {
                    if tx.send(Ok(message)).await.is_err() {
                        return;
                    }
                    last_sent = Instant::now();
                }
                // A long backlog that matches nothing must not hold a runtime thread.
                tokio::task::yield_now().await;
            }
            // A node cut off from the cluster would keep the stream alive with progress while it
            // falls behind: past a grace, end it so the client resumes on another node.
            if api.raft.metrics().borrow().current_leader.is_some() {
                leaderless_since = None;
            } else if leaderless_since.get_or_insert_with(Instant::now).elapsed() >= LEADERLESS_GRACE {
                let why =
                    format!("this node has had no leader for {LEADERLESS_GRACE:?}; resume the watch on another node");
                let _ = tx.send(Err(ApiError::NoLeader(why).into())).await;
                return;
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

/// The matching events of indexes `..=upto` as messages of about [`MESSAGE_BYTES`], split only
/// between indexes; the last message carries `upto`. No message when nothing matches.
fn messages(events: Vec<StoredEvent>, selector: &Selector, upto: u64) -> Vec<pb::WatchResponse> {
    use prost::Message;
    let mut out = Vec::new();
    let mut batch: Vec<pb::WatchEvent> = Vec::new();
    let mut bytes = 0;
    for e in events.into_iter().filter(|e| selector.matches(&e.event.name)) {
        if bytes >= MESSAGE_BYTES && batch.last().is_some_and(|last| last.index != e.index) {
            let applied_index = batch.last().map_or(0, |last| last.index);
            out.push(pb::WatchResponse { events: std::mem::take(&mut batch), applied_index });
            bytes = 0;
        }
        let e = event_to_pb(e);
        bytes += e.encoded_len();
        batch.push(e);
    }
    if !batch.is_empty() {
        out.push(pb::WatchResponse { events: batch, applied_index: upto });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::HistoryEvent;

    fn stored(index: u64, seq: u32, name: &str, owner_bytes: usize) -> StoredEvent {
        StoredEvent {
            index,
            seq,
            event: HistoryEvent {
                kind: HistoryKind::Granted,
                name: name.into(),
                request_id: format!("r{index}.{seq}"),
                token: index,
                owner: "o".repeat(owner_bytes),
                mode: Mode::Exclusive,
                position: 0,
                at_ms: 0,
            },
        }
    }

    #[test]
    fn messages_split_by_size_only_between_indexes_and_the_last_carries_the_chunk_end() {
        // Three indexes of two 400 KiB events each: 800 KiB, then past the cap.
        let big = 400 << 10;
        let events: Vec<_> = (10..13).flat_map(|i| [stored(i, 0, "a", big), stored(i, 1, "a", big)]).collect();
        let out = messages(events, &Selector::Prefix(String::new()), 20);
        let shape: Vec<(Vec<u64>, u64)> =
            out.iter().map(|m| (m.events.iter().map(|e| e.index).collect(), m.applied_index)).collect();
        assert_eq!(shape, vec![(vec![10, 10, 11, 11], 11), (vec![12, 12], 20)]);

        let none = messages(vec![stored(5, 0, "b", 1)], &Selector::Name("a".into()), 9);
        assert!(none.is_empty(), "nothing matches, nothing sent");
    }
}
