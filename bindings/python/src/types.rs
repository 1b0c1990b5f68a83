//! The values calls return, as frozen Python classes: times are aware UTC `datetime`s,
//! durations are seconds (`float`), modes and roles are strings.

use std::time::SystemTime;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// `ClassName(field=repr, …)` from the object's own attributes.
fn repr(slf: &Bound<'_, PyAny>, class: &str, fields: &[&str]) -> PyResult<String> {
    let mut parts = Vec::with_capacity(fields.len());
    for f in fields {
        parts.push(format!("{f}={}", slf.getattr(*f)?.repr()?));
    }
    Ok(format!("{class}({})", parts.join(", ")))
}

/// A hold of a lock, as the server reports it.
#[pyclass(frozen, get_all, eq, module = "tenure")]
#[derive(Clone, PartialEq)]
pub struct LeaseInfo {
    pub name: String,
    pub request_id: String,
    pub owner: String,
    pub mode: &'static str,
    pub token: u64,
    pub ttl: f64,
    pub granted_at: SystemTime,
    pub expires_at: SystemTime,
}

impl From<tenure::LeaseInfo> for LeaseInfo {
    fn from(l: tenure::LeaseInfo) -> Self {
        LeaseInfo {
            name: l.name,
            request_id: l.request_id,
            owner: l.owner,
            mode: l.mode.as_str(),
            token: l.token,
            ttl: l.ttl.as_secs_f64(),
            granted_at: l.granted_at,
            expires_at: l.expires_at,
        }
    }
}

#[pymethods]
impl LeaseInfo {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr(slf, "LeaseInfo", &["name", "request_id", "owner", "mode", "token", "ttl", "granted_at", "expires_at"])
    }
}

/// A request waiting in a lock's queue.
#[pyclass(frozen, get_all, eq, module = "tenure")]
#[derive(Clone, PartialEq)]
pub struct WaiterInfo {
    pub request_id: String,
    pub owner: String,
    pub mode: &'static str,
    pub position: u64,
    pub ttl: f64,
    pub enqueued_at: SystemTime,
}

#[pymethods]
impl WaiterInfo {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr(slf, "WaiterInfo", &["request_id", "owner", "mode", "position", "ttl", "enqueued_at"])
    }
}

/// Holders, waiters (in queue order) and limit of one lock.
#[pyclass(frozen, get_all, eq, module = "tenure")]
#[derive(Clone, PartialEq)]
pub struct LockDescription {
    pub exists: bool,
    pub holders: Vec<LeaseInfo>,
    pub waiters: Vec<WaiterInfo>,
    pub limit: u32,
    pub delayed_until: Option<SystemTime>,
}

impl From<tenure::LockDescription> for LockDescription {
    fn from(d: tenure::LockDescription) -> Self {
        LockDescription {
            exists: d.exists,
            holders: d.holders.into_iter().map(LeaseInfo::from).collect(),
            waiters: d
                .waiters
                .into_iter()
                .map(|w| WaiterInfo {
                    request_id: w.request_id,
                    owner: w.owner,
                    mode: w.mode.as_str(),
                    position: w.position,
                    ttl: w.ttl.as_secs_f64(),
                    enqueued_at: w.enqueued_at,
                })
                .collect(),
            limit: d.limit,
            delayed_until: d.delayed_until,
        }
    }
}

#[pymethods]
impl LockDescription {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr(slf, "LockDescription", &["exists", "holders", "waiters", "limit", "delayed_until"])
    }
}

/// One lock in a listing.
#[pyclass(frozen, get_all, eq, module = "tenure")]
#[derive(Clone, PartialEq)]
pub struct LockSummary {
    pub name: String,
    pub holders: u32,
    pub waiters: u32,
    pub mode: &'static str,
    pub limit: u32,
}

impl From<tenure::LockSummary> for LockSummary {
    fn from(l: tenure::LockSummary) -> Self {
        LockSummary { name: l.name, holders: l.holders, waiters: l.waiters, mode: l.mode.as_str(), limit: l.limit }
    }
}

#[pymethods]
impl LockSummary {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr(slf, "LockSummary", &["name", "holders", "waiters", "mode", "limit"])
    }
}

/// Whether a fencing token is a current hold, and the current holders' tokens.
#[pyclass(frozen, get_all, eq, module = "tenure")]
#[derive(Clone, PartialEq)]
pub struct FenceStatus {
    pub current: bool,
    pub current_tokens: Vec<u64>,
}

impl From<tenure::FenceStatus> for FenceStatus {
    fn from(f: tenure::FenceStatus) -> Self {
        FenceStatus { current: f.current, current_tokens: f.current_tokens }
    }
}

#[pymethods]
impl FenceStatus {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr(slf, "FenceStatus", &["current", "current_tokens"])
    }
}

/// A key, its value and the revision of its last write.
#[pyclass(frozen, eq, module = "tenure")]
#[derive(Clone, PartialEq)]
pub struct KvEntry {
    key: Vec<u8>,
    value: Vec<u8>,
    #[pyo3(get)]
    revision: u64,
}

impl From<tenure::KvEntry> for KvEntry {
    fn from(e: tenure::KvEntry) -> Self {
        KvEntry { key: e.key, value: e.value, revision: e.revision }
    }
}

#[pymethods]
impl KvEntry {
    #[getter]
    fn key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.key)
    }

    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.value)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr(slf, "KvEntry", &["key", "value", "revision"])
    }
}

/// A member of the cluster.
#[pyclass(frozen, get_all, eq, module = "tenure")]
#[derive(Clone, PartialEq)]
pub struct Member {
    pub id: u64,
    pub grpc_addr: String,
    pub http_addr: String,
    pub role: &'static str,
    pub matched_index: u64,
}

#[pymethods]
impl Member {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr(slf, "Member", &["id", "grpc_addr", "http_addr", "role", "matched_index"])
    }
}

/// The cluster as the answering node sees it.
#[pyclass(frozen, get_all, eq, module = "tenure")]
#[derive(Clone, PartialEq)]
pub struct ClusterStatus {
    pub node_id: u64,
    pub role: &'static str,
    pub leader_id: Option<u64>,
    pub leader_addr: String,
    pub term: u64,
    pub members: Vec<Member>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub quorum_size: u32,
    pub has_quorum: bool,
    pub cluster_id: String,
    pub snapshot_index: u64,
    pub purged_index: u64,
}

impl From<tenure::ClusterStatus> for ClusterStatus {
    fn from(s: tenure::ClusterStatus) -> Self {
        ClusterStatus {
            node_id: s.node_id,
            role: s.role.as_str(),
            leader_id: s.leader_id,
            leader_addr: s.leader_addr,
            term: s.term,
            members: s
                .members
                .into_iter()
                .map(|m| Member {
                    id: m.id,
                    grpc_addr: m.grpc_addr,
                    http_addr: m.http_addr,
                    role: m.role.as_str(),
                    matched_index: m.matched_index,
                })
                .collect(),
            commit_index: s.commit_index,
            applied_index: s.applied_index,
            last_log_index: s.last_log_index,
            quorum_size: s.quorum_size,
            has_quorum: s.has_quorum,
            cluster_id: s.cluster_id,
            snapshot_index: s.snapshot_index,
            purged_index: s.purged_index,
        }
    }
}

#[pymethods]
impl ClusterStatus {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr(
            slf,
            "ClusterStatus",
            &["node_id", "role", "leader_id", "leader_addr", "term", "members", "has_quorum", "commit_index"],
        )
    }
}

/// One committed change of one request, from a watch.
#[pyclass(frozen, get_all, eq, module = "tenure")]
#[derive(Clone, PartialEq)]
pub struct LockEvent {
    pub index: u64,
    pub kind: &'static str,
    pub name: String,
    pub request_id: String,
    pub token: u64,
    pub owner: String,
    pub mode: &'static str,
    pub position: u64,
    /// RELEASED by an administrator's ForceRelease rather than by the holder.
    pub forced: bool,
    pub at: SystemTime,
}

impl From<tenure::LockEvent> for LockEvent {
    fn from(e: tenure::LockEvent) -> Self {
        LockEvent {
            index: e.index,
            kind: e.kind.as_str(),
            name: e.name,
            request_id: e.request_id,
            token: e.token,
            owner: e.owner,
            mode: e.mode.as_str(),
            position: e.position,
            forced: e.forced,
            at: e.at,
        }
    }
}

#[pymethods]
impl LockEvent {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr(
            slf,
            "LockEvent",
            &["index", "kind", "name", "request_id", "token", "owner", "mode", "position", "forced", "at"],
        )
    }
}
