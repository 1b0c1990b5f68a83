//! Committed lock events as they are kept for `Locks.Watch`: one [`HistoryEvent`] per queue,
//! grant and end of a request, derived from the apply [`Event`]s of one log entry.
//!
//! Persisted with postcard (not self-describing): never reorder or remove fields or variants.

use serde::{Deserialize, Serialize};

use super::{Event, Finish, Mode};

/// What happened to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryKind {
    Queued,
    Granted,
    Released,
    Expired,
    Cancelled,
    /// A hold released by an admin's ForceRelease (a RELEASED event with `forced` on the wire).
    ForceReleased,
}

/// One committed change of one request, at a log index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub kind: HistoryKind,
    pub name: String,
    pub request_id: String,
    /// GRANTED, and RELEASED/FORCE_RELEASED/EXPIRED of a hold: the hold's token; otherwise 0.
    pub token: u64,
    /// QUEUED and GRANTED only (empty otherwise).
    pub owner: String,
    pub mode: Mode,
    /// QUEUED: 1-based queue position; otherwise 0.
    pub position: u64,
    /// Leader wall clock of the entry, Unix ms.
    pub at_ms: u64,
}

impl HistoryEvent {
    /// The history event for an apply event; `None` for events that are not about one request
    /// (lock-delays).
    pub fn from_event(event: &Event, at_ms: u64) -> Option<HistoryEvent> {
        let base = |kind, name: &str, request_id: &str| HistoryEvent {
            kind,
            name: name.to_owned(),
            request_id: request_id.to_owned(),
            token: 0,
            owner: String::new(),
            mode: Mode::Exclusive,
            position: 0,
            at_ms,
        };
        match event {
            Event::Queued { name, request_id, owner, mode, position, .. } => Some(HistoryEvent {
                owner: owner.clone(),
                mode: *mode,
                position: *position,
                ..base(HistoryKind::Queued, name, request_id)
            }),
            Event::Granted { name, request_id, token, owner, mode, .. } => Some(HistoryEvent {
                token: *token,
                owner: owner.clone(),
                mode: *mode,
                ..base(HistoryKind::Granted, name, request_id)
            }),
            Event::Finished { name, request_id, how, token } => {
                let kind = match how {
                    Finish::Released => HistoryKind::Released,
                    Finish::Expired => HistoryKind::Expired,
                    Finish::Cancelled => HistoryKind::Cancelled,
                    Finish::ForceReleased => HistoryKind::ForceReleased,
                };
                Some(HistoryEvent { token: *token, ..base(kind, name, request_id) })
            }
            Event::Delayed { .. } | Event::DelayEnded { .. } => None,
        }
    }
}
