//! The values calls return, as plain JavaScript objects. Times are milliseconds since the Unix
//! epoch and durations are milliseconds (the JavaScript layer makes `Date`s of the times);
//! fencing tokens and KV revisions are `bigint`s, keys and values `Buffer`s.

use std::time::{SystemTime, UNIX_EPOCH};

use napi::bindgen_prelude::{BigInt, Buffer};
use napi_derive::napi;

/// Milliseconds since the Unix epoch (negative before it).
pub fn epoch_ms(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -(e.duration().as_secs_f64() * 1000.0),
    }
}

#[napi(object)]
pub struct LeaseInfo {
    pub name: String,
    pub request_id: String,
    pub owner: String,
    pub mode: String,
    pub token: BigInt,
    pub ttl_ms: f64,
    pub granted_at_ms: f64,
    pub expires_at_ms: f64,
}

impl From<tenure::LeaseInfo> for LeaseInfo {
    fn from(l: tenure::LeaseInfo) -> Self {
        LeaseInfo {
            name: l.name,
            request_id: l.request_id,
            owner: l.owner,
            mode: l.mode.as_str().to_string(),
            token: BigInt::from(l.token),
            ttl_ms: l.ttl.as_secs_f64() * 1000.0,
            granted_at_ms: epoch_ms(l.granted_at),
            expires_at_ms: epoch_ms(l.expires_at),
        }
    }
}

#[napi(object)]
pub struct WaiterInfo {
    pub request_id: String,
    pub owner: String,
    pub mode: String,
    pub position: f64,
    pub ttl_ms: f64,
    pub enqueued_at_ms: f64,
}

#[napi(object)]
pub struct LockDescription {
    pub name: String,
    pub exists: bool,
    pub holders: Vec<LeaseInfo>,
    pub waiters: Vec<WaiterInfo>,
    pub limit: u32,
    pub delayed_until_ms: Option<f64>,
}

impl LockDescription {
    pub fn new(name: String, d: tenure::LockDescription) -> Self {
        LockDescription {
            name,
            exists: d.exists,
            holders: d.holders.into_iter().map(LeaseInfo::from).collect(),
            waiters: d
                .waiters
                .into_iter()
                .map(|w| WaiterInfo {
                    request_id: w.request_id,
                    owner: w.owner,
                    mode: w.mode.as_str().to_string(),
                    position: w.position as f64,
                    ttl_ms: w.ttl.as_secs_f64() * 1000.0,
                    enqueued_at_ms: epoch_ms(w.enqueued_at),
                })
                .collect(),
            limit: d.limit,
            delayed_until_ms: d.delayed_until.map(epoch_ms),
        }
    }
}

#[napi(object)]
pub struct LockSummary {
    pub name: String,
    pub holders: u32,
    pub waiters: u32,
    pub mode: String,
    pub limit: u32,
}

impl From<tenure::LockSummary> for LockSummary {
    fn from(l: tenure::LockSummary) -> Self {
        LockSummary {
            name: l.name,
            holders: l.holders,
            waiters: l.waiters,
            mode: l.mode.as_str().to_string(),
            limit: l.limit,
        }
    }
}

#[napi(object)]
pub struct FenceStatus {
    pub current: bool,
    pub current_tokens: Vec<BigInt>,
}

impl From<tenure::FenceStatus> for FenceStatus {
    fn from(f: tenure::FenceStatus) -> Self {
        FenceStatus { current: f.current, current_tokens: f.current_tokens.into_iter().map(BigInt::from).collect() }
    }
}

#[napi(object)]
pub struct KvEntry {
    pub key: Buffer,
    pub value: Buffer,
    pub revision: BigInt,
}

impl From<tenure::KvEntry> for KvEntry {
    fn from(e: tenure::KvEntry) -> Self {
        KvEntry { key: e.key.into(), value: e.value.into(), revision: BigInt::from(e.revision) }
    }
}

#[napi(object)]
pub struct Member {
    pub id: f64,
    pub grpc_addr: String,
    pub http_addr: String,
    pub role: String,
    pub matched_index: f64,
}

#[napi(object)]
pub struct ClusterStatus {
    pub node_id: f64,
    pub role: String,
    pub leader_id: Option<f64>,
    pub leader_addr: String,
    pub term: f64,
    pub members: Vec<Member>,
    pub commit_index: f64,
    pub applied_index: f64,
    pub last_log_index: f64,
    pub quorum_size: u32,
    pub has_quorum: bool,
    pub cluster_id: String,
    pub snapshot_index: f64,
    pub purged_index: f64,
}

impl From<tenure::ClusterStatus> for ClusterStatus {
    fn from(s: tenure::ClusterStatus) -> Self {
        ClusterStatus {
            node_id: s.node_id as f64,
            role: s.role.as_str().to_string(),
            leader_id: s.leader_id.map(|id| id as f64),
            leader_addr: s.leader_addr,
            term: s.term as f64,
            members: s
                .members
                .into_iter()
                .map(|m| Member {
                    id: m.id as f64,
                    grpc_addr: m.grpc_addr,
                    http_addr: m.http_addr,
                    role: m.role.as_str().to_string(),
                    matched_index: m.matched_index as f64,
                })
                .collect(),
            commit_index: s.commit_index as f64,
            applied_index: s.applied_index as f64,
            last_log_index: s.last_log_index as f64,
            quorum_size: s.quorum_size,
            has_quorum: s.has_quorum,
            cluster_id: s.cluster_id,
            snapshot_index: s.snapshot_index as f64,
            purged_index: s.purged_index as f64,
        }
    }
}

/// One committed change of one request, from a watch.
#[napi(object)]
pub struct LockEvent {
    pub index: BigInt,
    pub kind: String,
    pub name: String,
    pub request_id: String,
    pub token: BigInt,
    pub owner: String,
    pub mode: String,
    pub position: f64,
    pub forced: bool,
    pub at_ms: f64,
}

impl From<tenure::LockEvent> for LockEvent {
    fn from(e: tenure::LockEvent) -> Self {
        LockEvent {
            index: BigInt::from(e.index),
            kind: e.kind.as_str().to_string(),
            name: e.name,
            request_id: e.request_id,
            token: BigInt::from(e.token),
            owner: e.owner,
            mode: e.mode.as_str().to_string(),
            position: e.position as f64,
            forced: e.forced,
            at_ms: epoch_ms(e.at),
        }
    }
}
