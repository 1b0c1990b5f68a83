//! `Locks.ForceRelease`: an admin releases holds on their holders' behalf.
//!
//! The lock table decides what is released and who is granted next (`Command::ForceRelease`);
//! this handler validates the request, proposes the command and writes the audit line. The
//! audit line is written here, by the node that served the call (the leader), once per call,
//! not by every node's apply.
//!
//! Auth: step 8 puts this RPC behind the bearer token's `admin` right. Until then it is open to
//! whoever can reach the port, like every other RPC.

use std::net::SocketAddr;

use tenure_proto::v1 as pb;
use tenure_proto::v1::force_release_request::Target;

use super::error::ApiError;
use super::locks::lease_to_pb;
use super::Api;
use crate::lock::{limits, Command, CommandResult, ForceTarget};

/// Log target of audit lines, so operators can route them apart (`TENURE_LOG=tenure::audit=info`).
pub const AUDIT_TARGET: &str = "tenure::audit";

/// Checks a request as Release does (name and request_id bounds) plus the target's shape.
fn validate(r: &pb::ForceReleaseRequest) -> Result<ForceTarget, ApiError> {
    limits::check_name("name", &r.name)?;
    match &r.target {
        None => Err(ApiError::invalid("target", "set either request_id (one hold) or all = true (every holder)")),
        Some(Target::RequestId(id)) => {
            limits::check_request_id(id)?;
            if r.max_token != 0 {
                return Err(ApiError::invalid(
                    "max_token",
                    format!("max_token applies to all only; it must be 0 with request_id, got {}", r.max_token),
                ));
            }
            Ok(ForceTarget::Request(id.clone()))
        }
        Some(Target::All(true)) => Ok(ForceTarget::All { max_token: r.max_token }),
        Some(Target::All(false)) => {
            Err(ApiError::invalid("all", "all must be true to release every holder (or set request_id instead)"))
        }
    }
}

fn describe_target(target: &ForceTarget) -> String {
    match target {
        ForceTarget::Request(id) => format!("request_id={id}"),
        ForceTarget::All { max_token: 0 } => "all".to_owned(),
        ForceTarget::All { max_token } => format!("all (tokens <= {max_token})"),
    }
}

/// Serves one ForceRelease; `peer` is the caller's address when the transport knows it.
pub async fn force_release(
    api: &Api,
    r: pb::ForceReleaseRequest,
    peer: Option<SocketAddr>,
) -> Result<pb::ForceReleaseResponse, ApiError> {
    let target = validate(&r)?;
    api.require_leader()?;
    let cmd = Command::ForceRelease { name: r.name.clone(), target: target.clone(), immediate: r.immediate };
    let (result, log_index) = api.proposer.propose(cmd).await?;
    let peer = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
    let target = describe_target(&target);
    match result {
        CommandResult::ForceRelease { released, granted } => {
            let request_ids: Vec<&str> = released.iter().map(|l| l.request_id.as_str()).collect();
            let tokens: Vec<u64> = released.iter().map(|l| l.token).collect();
            let granted_to: Vec<String> = granted.iter().map(|l| format!("{}:{}", l.request_id, l.token)).collect();
            tracing::info!(
                target: AUDIT_TARGET,
                lock = %r.name,
                %target,
                released = ?request_ids,
                tokens = ?tokens,
                granted = ?granted_to,
                immediate = r.immediate,
                log_index,
                peer = %peer,
                "admin force-release"
            );
            Ok(pb::ForceReleaseResponse {
                was_held: !released.is_empty(),
                released: released.iter().map(lease_to_pb).collect(),
                granted: granted.iter().map(lease_to_pb).collect(),
                log_index,
            })
        }
        CommandResult::Refused(refusal) => {
            tracing::info!(
                target: AUDIT_TARGET,
                lock = %r.name,
                %target,
                refused = %refusal,
                log_index,
                peer = %peer,
                "admin force-release refused"
            );
            Err(refusal.into())
        }
        other => Err(ApiError::Internal(format!("unexpected command result {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str, target: Option<Target>, max_token: u64) -> pb::ForceReleaseRequest {
        pb::ForceReleaseRequest { name: name.into(), target, max_token, immediate: false }
    }

    fn field(r: pb::ForceReleaseRequest) -> String {
        match validate(&r) {
            Err(ApiError::Refused(crate::lock::Refusal::InvalidArgument { field, .. })) => field,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn bad_requests_are_refused_naming_the_field() {
        let id = || Some(Target::RequestId("r".into()));
        assert_eq!(field(req("", id(), 0)), "name");
        assert_eq!(field(req(&"n".repeat(513), id(), 0)), "name");
        assert_eq!(field(req("x", None, 0)), "target");
        assert_eq!(field(req("x", Some(Target::RequestId(String::new())), 0)), "request_id");
        assert_eq!(field(req("x", Some(Target::RequestId("r".repeat(65))), 0)), "request_id");
        assert_eq!(field(req("x", id(), 3)), "max_token");
        assert_eq!(field(req("x", Some(Target::All(false)), 0)), "all");
    }

    #[test]
    fn good_requests_become_their_targets() {
        let one = validate(&req("x", Some(Target::RequestId("r".into())), 0));
        assert_eq!(one.ok(), Some(ForceTarget::Request("r".into())));
        let all = validate(&req("x", Some(Target::All(true)), 7));
        assert_eq!(all.ok(), Some(ForceTarget::All { max_token: 7 }));
    }
}
