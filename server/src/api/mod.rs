//! gRPC handlers (and the HTTP/JSON API over them, in [`http`]): validate input, turn it into a
//! command or a read, map results and errors to the wire. No lock logic lives here.

pub mod auth;
pub mod cluster;
pub mod error;
pub mod force_release;
pub mod http;
pub mod kv;
pub mod locks;
pub mod watch;

use std::sync::Arc;

use openraft::ServerState;
use tenure_proto::v1::Consistency;

use crate::lease_clock::LeaseClock;
use crate::propose::{Proposer, ReadRounds};
use crate::raft::state_machine::SharedState;
use crate::raft::{NodeId, Raft};
use auth::Access;
use error::{leader_error, ApiError};

/// Bounds the API enforces on top of the lock table's fixed limits (node configuration).
#[derive(Clone, Debug)]
pub struct ApiLimits {
    pub min_ttl_ms: u64,
    pub max_ttl_ms: u64,
    /// A call waits at most this long before answering QUEUED.
    pub max_wait_ms: u64,
}

/// A `wait_ms` above this is refused as nonsense rather than capped.
pub const MAX_WAIT_MS_ACCEPTED: u64 = 24 * 60 * 60 * 1000;

/// What every handler needs.
pub struct Api {
    pub node_id: NodeId,
    pub raft: Raft,
    pub state: Arc<SharedState>,
    pub proposer: Proposer,
    pub rounds: ReadRounds,
    pub clock: Arc<LeaseClock>,
    pub limits: ApiLimits,
    pub cluster_id: Arc<dyn Fn() -> String + Send + Sync>,
    /// Election timeout (max), for `has_quorum` on the leader.
    pub election_timeout_ms: u64,
    /// Who may do what (`--auth-config`); open without one.
    pub access: Arc<Access>,
    /// AddMember and RemoveMember.
    pub membership: crate::membership::MembershipChanges,
}

impl Api {
    /// Fails with NOT_LEADER (naming the leader) or NO_LEADER unless this node is the leader.
    pub fn require_leader(&self) -> Result<(), ApiError> {
        let m = self.raft.metrics().borrow().clone();
        if m.state == ServerState::Leader && m.current_leader == Some(self.node_id) {
            return Ok(());
        }
        match m.current_leader {
            Some(id) if id != self.node_id => match m.membership_config.membership().get_node(&id) {
                Some(node) => Err(leader_error(id, node)),
                None => Err(ApiError::NoLeader(format!("leader {id} is not in this node's membership"))),
            },
            _ => Err(ApiError::NoLeader("election in progress".into())),
        }
    }

    /// Before a read: a quorum round for LINEARIZABLE (leader only), nothing for STALE. Any
    /// other value is refused, as an unknown lock mode is: it is not silently linearizable.
    pub async fn read_barrier(&self, consistency: i32) -> Result<(), ApiError> {
        match Consistency::try_from(consistency) {
            Ok(Consistency::Stale) => return Ok(()),
            Ok(Consistency::Linearizable) => {}
            Err(_) => {
                return Err(ApiError::invalid(
                    "consistency",
                    format!("consistency must be LINEARIZABLE (0) or STALE (1), got {consistency}"),
                ))
            }
        }
        self.require_leader()?;
        self.rounds.round().await?;
        Ok(())
    }
}
