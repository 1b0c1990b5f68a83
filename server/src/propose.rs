//! Group commit and read rounds: the two ways API calls reach Raft.
//!
//! [`Proposer`] coalesces concurrent commands into one `Batch` entry (openraft 0.9 flushes once
//! per `client_write`, so one command per entry would cap throughput at one fsync each).
//! [`ReadRounds`] shares one quorum round (`ensure_linearizable`) among every caller that arrived
//! before it started; callers arriving during a round wait for the next one.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::lock::{Batch, Caps, Command, CommandResult};
use crate::raft::{NodeId, Raft, TenureNode};

/// Most commands in one entry.
const MAX_BATCH: usize = 4096;
/// Most payload bytes in one entry (roughly): keeps every entry far below the node-to-node
/// message limit and below sled's blob threshold, above which sled writes a separate file.
const MAX_BATCH_BYTES: usize = 96 * 1024;
/// Entries in flight at once. openraft 0.9 appends one entry at a time and waits for its flush
/// inside its core loop, so a second entry in flight would not overlap the first's I/O; it would
/// only split the waiting commands into smaller entries. With one, every command that arrives
/// while an entry is out joins the next (docs/BENCHMARKS.md: 64 workers need 0.06 entries per
/// acquire+release pair with one, 0.19 with four).
const IN_FLIGHT: usize = 1;

/// Why a proposal or read round did not complete.
#[derive(Clone, Debug, thiserror::Error)]
pub enum RaftCallError {
    #[error("this node is not the leader")]
    NotLeader { leader: Option<(NodeId, TenureNode)> },
    #[error("no quorum: {0}")]
    NoQuorum(String),
    #[error("raft stopped: {0}")]
    Stopped(String),
}

impl RaftCallError {
    fn from_forward(leader_id: Option<NodeId>, node: Option<TenureNode>) -> Self {
        RaftCallError::NotLeader { leader: leader_id.zip(node) }
    }
}

/// The outcome of one proposed command: its result and the log index of its entry.
pub type Proposed = Result<(CommandResult, u64), RaftCallError>;

struct Proposal {
    command: Command,
    reply: oneshot::Sender<Proposed>,
}

#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::UnboundedSender<Proposal>,
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Proposer {
    pub fn start(raft: Raft, caps: Caps) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run_proposer(raft, caps, rx));
        Self { tx }
    }

    /// Proposes `command` and waits until its entry is applied.
    pub async fn propose(&self, command: Command) -> Proposed {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Proposal { command, reply }).map_err(|_| RaftCallError::Stopped("proposer stopped".into()))?;
        rx.await.map_err(|_| RaftCallError::Stopped("proposer dropped the proposal".into()))?
    }
}

async fn run_proposer(raft: Raft, caps: Caps, mut rx: mpsc::UnboundedReceiver<Proposal>) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut next: Option<Proposal> = None;
    loop {
        let first = match next.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        // Take everything that queued up while we waited for a permit.
        let mut bytes = first.command.approx_size();
        let mut proposals = vec![first];
        let mut carry = None;
        while proposals.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) if bytes + p.command.approx_size() > MAX_BATCH_BYTES => {
                    carry = Some(p);
                    break;
                }
                Ok(p) => {
                    bytes += p.command.approx_size();
                    proposals.push(p);
                }
                Err(_) => break,
            }
        }
        next = carry;
        let raft = raft.clone();
        tokio::spawn(async move {
            let (commands, replies): (Vec<_>, Vec<_>) = proposals.into_iter().map(|p| (p.command, p.reply)).unzip();
            let batch = Batch { now_ms: now_ms(), caps, commands };
            match raft.client_write(batch).await {
                Ok(resp) => {
                    let index = resp.log_id.index;
                    let mut results = resp.data.into_iter();
                    for reply in replies {
                        let r = results
                            .next()
                            .map(|r| (r, index))
                            .ok_or_else(|| RaftCallError::Stopped("batch returned too few results".into()));
                        let _ = reply.send(r);
                    }
                }
                Err(e) => {
                    let err = match e {
                        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                            RaftCallError::from_forward(f.leader_id, f.leader_node)
                        }
                        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                            RaftCallError::NoQuorum(e.to_string())
                        }
                        RaftError::Fatal(f) => RaftCallError::Stopped(f.to_string()),
                    };
                    for reply in replies {
                        let _ = reply.send(Err(err.clone()));
                    }
                }
            }
            drop(permit);
        });
    }
}

/// Shares quorum rounds among concurrent linearizable reads and renewals.
#[derive(Clone)]
pub struct ReadRounds {
    tx: mpsc::UnboundedSender<oneshot::Sender<Result<u64, RaftCallError>>>,
    /// When the last successful round started (for the seeded bug that reuses it).
    last_success: Arc<Mutex<Option<Instant>>>,
}

impl ReadRounds {
    pub fn start(raft: Raft) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<Result<u64, RaftCallError>>>();
        let last_success = Arc::new(Mutex::new(None));
        let last = Arc::clone(&last_success);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiting = vec![first];
                while let Ok(w) = rx.try_recv() {
                    waiting.push(w);
                }
                // Every caller in `waiting` arrived before this round started.
                let started = Instant::now();
                let result = match raft.ensure_linearizable().await {
                    Ok(read) => Ok(read.map_or(0, |l| l.index)),
                    Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                        Err(RaftCallError::from_forward(f.leader_id, f.leader_node))
                    }
                    Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q))) => {
                        Err(RaftCallError::NoQuorum(q.to_string()))
                    }
                    Err(RaftError::Fatal(f)) => Err(RaftCallError::Stopped(f.to_string())),
                };
                if result.is_ok() {
                    *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(started);
                }
                for w in waiting {
                    let _ = w.send(result.clone());
                }
            }
        });
        Self { tx, last_success }
    }

    /// When the last successful round started. Only a seeded bug may answer from it: a round
    /// that started before a request arrived proves nothing about leadership at its arrival.
    pub fn last_success_started(&self) -> Option<Instant> {
        *self.last_success.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a quorum round that started after this call, and for the state machine to
    /// apply up to that round's read index. Returns the read index.
    pub async fn round(&self) -> Result<u64, RaftCallError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(tx).map_err(|_| RaftCallError::Stopped("read rounds stopped".into()))?;
        rx.await.map_err(|_| RaftCallError::Stopped("read round dropped".into()))?
    }
}
