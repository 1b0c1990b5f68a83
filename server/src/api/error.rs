//! Maps tenure's errors to gRPC statuses carrying a `tenure.v1.ErrorDetail` (DESIGN §5).

use prost::Message;
use tenure_proto::v1::ErrorDetail;
use tonic::{Code, Status};

use crate::lock::Refusal;
use crate::propose::RaftCallError;
use crate::raft::{NodeId, TenureNode};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Refused(Refusal),
    #[error("lease {request_id:?} on lock {name:?} is gone (expired, released or unknown)")]
    LeaseNotFound { name: String, request_id: String },
    #[error("this node is not the leader; the leader is node {leader_id} at {leader_addr}")]
    NotLeader { leader_id: NodeId, leader_addr: String },
    #[error("no leader: {0}")]
    NoLeader(String),
    #[error("{0}")]
    Compacted(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// A membership change that would leave the voters without a quorum of live members.
    #[error("{0}")]
    QuorumAtRisk(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Refused(Refusal::InvalidArgument { field: field.to_string(), message: message.into() })
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Refused(r) => match r {
                Refusal::InvalidArgument { .. } => "INVALID_ARGUMENT",
                Refusal::LimitMismatch { .. } => "LIMIT_MISMATCH",
                Refusal::RequestFinished { .. } => "REQUEST_FINISHED",
                Refusal::ResourceExhausted(_) => "RESOURCE_EXHAUSTED",
                Refusal::FencedOut { .. } => "FENCED_OUT",
            },
            ApiError::LeaseNotFound { .. } => "LEASE_NOT_FOUND",
            ApiError::NotLeader { .. } => "NOT_LEADER",
            ApiError::NoLeader(_) => "NO_LEADER",
            ApiError::Compacted(_) => "COMPACTED",
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::PermissionDenied(_) => "PERMISSION_DENIED",
            ApiError::QuorumAtRisk(_) => "QUORUM_AT_RISK",
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            ApiError::Refused(r) => match r {
                Refusal::InvalidArgument { .. } => Code::InvalidArgument,
                Refusal::LimitMismatch { .. } | Refusal::RequestFinished { .. } | Refusal::FencedOut { .. } => {
                    Code::FailedPrecondition
                }
                Refusal::ResourceExhausted(_) => Code::ResourceExhausted,
            },
            ApiError::LeaseNotFound { .. } => Code::NotFound,
            ApiError::NotLeader { .. } | ApiError::NoLeader(_) => Code::Unavailable,
            ApiError::Compacted(_) => Code::OutOfRange,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::QuorumAtRisk(_) => Code::FailedPrecondition,
            ApiError::Internal(_) => Code::Internal,
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        ApiError::Refused(r)
    }
}

impl From<RaftCallError> for ApiError {
    fn from(e: RaftCallError) -> Self {
        match e {
            RaftCallError::NotLeader { leader: Some((id, node)) } => leader_error(id, &node),
            RaftCallError::NotLeader { leader: None } => ApiError::NoLeader("election in progress".into()),
            RaftCallError::NoQuorum(m) => ApiError::NoLeader(m),
            RaftCallError::Stopped(m) => ApiError::NoLeader(format!("this node is stopping: {m}")),
        }
    }
}

pub fn leader_error(id: NodeId, node: &TenureNode) -> ApiError {
    ApiError::NotLeader { leader_id: id, leader_addr: node.grpc_addr.clone() }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let mut detail = ErrorDetail { code: e.code().to_string(), message: e.to_string(), ..Default::default() };
        match &e {
            ApiError::NotLeader { leader_id, leader_addr } => {
                detail.leader_id = *leader_id;
                detail.leader_addr = leader_addr.clone();
            }
            ApiError::Refused(Refusal::InvalidArgument { field, .. }) => detail.field = field.clone(),
            _ => {}
        }
        Status::with_details(e.grpc_code(), e.to_string(), detail.encode_to_vec().into())
    }
}
