//! One error type for every call, with a stable [`Error::code`] that the Python, Node and C
//! SDKs map one-to-one to their own error types.

use prost::Message;
use tenure_proto::v1::ErrorDetail;
use tonic::{Code, Status};

/// Everything a tenure call can fail with.
///
/// The server's refusals keep the server's stable code; the client adds `TIMEOUT`, `LEASE_LOST`,
/// `CANCELLED` and `UNAVAILABLE`. Redirects (`NOT_LEADER`) and elections (`NO_LEADER`) are
/// handled inside the client and surface only as `UNAVAILABLE` once the call's deadline passes.
///
/// ```
/// let e = tenure::Error::Timeout("lock \"job\" not granted within 2s".into());
/// assert_eq!(e.code(), "TIMEOUT");
/// assert!(!e.is_retryable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field is missing, malformed or out of bounds. `field` names it; the message names the
    /// limit.
    #[error("{message}")]
    InvalidArgument {
        /// The offending field, e.g. `ttl_ms` or `name`.
        field: String,
        /// What is wrong and what the limit is.
        message: String,
    },
    /// A SHARED request's limit differs from the one the lock already has.
    #[error("{0}")]
    LimitMismatch(String),
    /// An `if_fence` token is not a current hold of its lock: the write was not applied.
    #[error("{0}")]
    FencedOut(String),
    /// An acquire reused a `request_id` that has already finished (released, expired, cancelled).
    #[error("{0}")]
    RequestFinished(String),
    /// A server cap (waiters per lock, number of locks) is reached.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The server requires credentials and none (or bad ones) were given.
    #[error("{0}")]
    Unauthenticated(String),
    /// The credentials do not allow this call.
    #[error("{0}")]
    PermissionDenied(String),
    /// A watch's start index is older than the event history any node still keeps.
    #[error("{0}")]
    Compacted(String),
    /// A membership change was refused: the voters left would not include a quorum of live
    /// members (or none would be left). Bring members back first, or force it.
    #[error("{0}")]
    QuorumAtRisk(String),
    /// The caller's wait ended before the lock was granted. The request has been withdrawn.
    #[error("{0}")]
    Timeout(String),
    /// The lease is gone, or its renewal could not be confirmed in time: stop acting as holder.
    #[error("{0}")]
    LeaseLost(String),
    /// The call was cancelled by the caller, or the client was shut down.
    #[error("{0}")]
    Cancelled(String),
    /// No node gave an answer within the call's deadline (nodes down, no quorum, network).
    #[error("{0}")]
    Unavailable(String),
    /// A bug, in the server or the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable code string of this kind of error, e.g. `"TIMEOUT"`.
    ///
    /// ```
    /// let e = tenure::Error::LeaseLost("gone".into());
    /// assert_eq!(e.code(), "LEASE_LOST");
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Error::LimitMismatch(_) => "LIMIT_MISMATCH",
            Error::FencedOut(_) => "FENCED_OUT",
            Error::RequestFinished(_) => "REQUEST_FINISHED",
            Error::ResourceExhausted(_) => "RESOURCE_EXHAUSTED",
            Error::Unauthenticated(_) => "UNAUTHENTICATED",
            Error::PermissionDenied(_) => "PERMISSION_DENIED",
            Error::Compacted(_) => "COMPACTED",
            Error::QuorumAtRisk(_) => "QUORUM_AT_RISK",
            Error::Timeout(_) => "TIMEOUT",
            Error::LeaseLost(_) => "LEASE_LOST",
            Error::Cancelled(_) => "CANCELLED",
            Error::Unavailable(_) => "UNAVAILABLE",
            Error::Internal(_) => "INTERNAL",
        }
    }

    /// Every code [`Error::code`] can return, for SDKs that build one class per code.
    ///
    /// ```
    /// assert!(tenure::Error::CODES.contains(&"FENCED_OUT"));
    /// ```
    pub const CODES: &'static [&'static str] = &[
        "INVALID_ARGUMENT",
        "LIMIT_MISMATCH",
        "FENCED_OUT",
        "REQUEST_FINISHED",
        "RESOURCE_EXHAUSTED",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "COMPACTED",
        "QUORUM_AT_RISK",
        "TIMEOUT",
        "LEASE_LOST",
        "CANCELLED",
        "UNAVAILABLE",
        "INTERNAL",
    ];

    /// Whether the same call may succeed if tried again later (only `UNAVAILABLE`).
    ///
    /// ```
    /// assert!(tenure::Error::Unavailable("no leader".into()).is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        Error::InvalidArgument { field: field.to_string(), message: message.into() }
    }
}

/// What the retry loop does with a failed attempt.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A definite answer: give it to the caller.
    Final(Error),
    /// The node is a follower and named the leader: go there in one hop.
    Redirect { leader_addr: String, message: String },
    /// The node (or the network) could not answer: back off, rotate, try again.
    Retry(String),
}

/// Classifies a gRPC status from a tenure node (or from the transport) for the retry loop.
pub(crate) fn classify(status: &Status) -> Failure {
    let detail = ErrorDetail::decode(status.details()).ok().filter(|d| !d.code.is_empty());
    let Some(d) = detail else { return classify_without_detail(status) };
    let msg = if d.message.is_empty() { status.message().to_string() } else { d.message.clone() };
    Failure::Final(match d.code.as_str() {
        "NOT_LEADER" if !d.leader_addr.is_empty() => {
            return Failure::Redirect { leader_addr: d.leader_addr, message: msg };
        }
        "NOT_LEADER" | "NO_LEADER" => return Failure::Retry(msg),
        "INVALID_ARGUMENT" => Error::InvalidArgument { field: d.field, message: msg },
        "LIMIT_MISMATCH" => Error::LimitMismatch(msg),
        "LEASE_NOT_FOUND" => Error::LeaseLost(msg),
        "FENCED_OUT" => Error::FencedOut(msg),
        "REQUEST_FINISHED" => Error::RequestFinished(msg),
        "RESOURCE_EXHAUSTED" => Error::ResourceExhausted(msg),
        "UNAUTHENTICATED" => Error::Unauthenticated(msg),
        "PERMISSION_DENIED" => Error::PermissionDenied(msg),
        "COMPACTED" => Error::Compacted(msg),
        "QUORUM_AT_RISK" => Error::QuorumAtRisk(msg),
        "INTERNAL" => Error::Internal(msg),
        other => Error::Internal(format!("unknown error code {other:?} from the server: {msg}")),
    })
}

fn classify_without_detail(status: &Status) -> Failure {
    let msg = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        // Transport failures: refused or reset connections, a node that died mid-call, a stream
        // cut by a proxy. The request may not have been processed; every tenure call is safe to
        // repeat (acquire and release are idempotent by request_id).
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded | Code::Aborted => {
            Failure::Retry(msg)
        }
        // Without tenure's detail this is not a server cap (those always carry one) but the
        // transport: HTTP/2 ENHANCE_YOUR_CALM, a GOAWAY that closed the connection under every
        // call on it. Treated as final, it failed waiting acquires that the leader had queued.
        Code::ResourceExhausted => Failure::Retry(msg),
        Code::InvalidArgument => Failure::Final(Error::invalid("", msg)),
        Code::Unauthenticated => Failure::Final(Error::Unauthenticated(msg)),
        Code::PermissionDenied => Failure::Final(Error::PermissionDenied(msg)),
        Code::NotFound => Failure::Final(Error::LeaseLost(msg)),
        // What plain HTTP/2 makes of a TLS handshake's bytes: say what is most likely wrong.
        Code::Internal if status.message().contains("h2 protocol error") => Failure::Final(Error::Internal(format!(
            "{msg} (if the cluster serves TLS, use https:// endpoints or give its CA certificate with tls_ca_file)"
        ))),
        _ => Failure::Final(Error::Internal(msg)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_with(code: Code, detail: ErrorDetail) -> Status {
        Status::with_details(code, detail.message.clone(), detail.encode_to_vec().into())
    }

    #[test]
    fn not_leader_with_an_address_redirects_and_without_one_retries() {
        let d = ErrorDetail {
            code: "NOT_LEADER".into(),
            message: "not the leader".into(),
            leader_id: 2,
            leader_addr: "127.0.0.1:7072".into(),
            field: String::new(),
        };
        match classify(&status_with(Code::Unavailable, d.clone())) {
            Failure::Redirect { leader_addr, .. } => assert_eq!(leader_addr, "127.0.0.1:7072"),
            other => panic!("expected a redirect, got {other:?}"),
        }
        let no_addr = ErrorDetail { leader_addr: String::new(), ..d };
        assert!(matches!(classify(&status_with(Code::Unavailable, no_addr)), Failure::Retry(_)));
    }

    #[test]
    fn server_codes_map_to_the_client_kinds() {
        let d = |code: &str| ErrorDetail {
            code: code.into(),
            message: "m".into(),
            field: "ttl_ms".into(),
            ..Default::default()
        };
        let cases = [
            ("INVALID_ARGUMENT", "INVALID_ARGUMENT"),
            ("LIMIT_MISMATCH", "LIMIT_MISMATCH"),
            ("LEASE_NOT_FOUND", "LEASE_LOST"),
            ("FENCED_OUT", "FENCED_OUT"),
            ("REQUEST_FINISHED", "REQUEST_FINISHED"),
            ("RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED"),
            ("INTERNAL", "INTERNAL"),
        ];
        for (server, client) in cases {
            match classify(&status_with(Code::FailedPrecondition, d(server))) {
                Failure::Final(e) => assert_eq!(e.code(), client, "server code {server}"),
                other => panic!("{server}: expected a final error, got {other:?}"),
            }
        }
        match classify(&status_with(Code::InvalidArgument, d("INVALID_ARGUMENT"))) {
            Failure::Final(Error::InvalidArgument { field, .. }) => assert_eq!(field, "ttl_ms"),
            other => panic!("expected the field to be kept, got {other:?}"),
        }
        assert!(matches!(classify(&status_with(Code::Unavailable, d("NO_LEADER"))), Failure::Retry(_)));
    }

    #[test]
    fn transport_failures_are_retried_and_every_code_is_listed() {
        assert!(matches!(classify(&Status::unavailable("tcp connect error")), Failure::Retry(_)));
        assert!(matches!(classify(&Status::unknown("h2 protocol error")), Failure::Retry(_)));
        let goaway = Status::resource_exhausted("h2 protocol error: http2 error");
        assert!(matches!(classify(&goaway), Failure::Retry(_)), "a GOAWAY is not a server cap");
        for e in [
            Error::invalid("f", "m"),
            Error::LimitMismatch(String::new()),
            Error::FencedOut(String::new()),
            Error::RequestFinished(String::new()),
            Error::ResourceExhausted(String::new()),
            Error::Unauthenticated(String::new()),
            Error::PermissionDenied(String::new()),
            Error::Compacted(String::new()),
            Error::QuorumAtRisk(String::new()),
            Error::Timeout(String::new()),
            Error::LeaseLost(String::new()),
            Error::Cancelled(String::new()),
            Error::Unavailable(String::new()),
            Error::Internal(String::new()),
        ] {
            assert!(Error::CODES.contains(&e.code()), "{} missing from CODES", e.code());
        }
        assert_eq!(Error::CODES.len(), 14);
    }
}
