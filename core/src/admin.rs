//! Admin operations: [`Client::force_release`].
//!
//! On a cluster started with `--auth-config`, these need a token with the `admin` right on the
//! lock's name; the client sends the token given to [`crate::ClientBuilder::bearer_token`].

use tenure_proto::v1 as pb;
use tenure_proto::v1::force_release_request::Target;
use tenure_proto::v1::locks_client::LocksClient;

use crate::client::Client;
use crate::conn::Route;
use crate::types::{Consistency, LeaseInfo};
use crate::Error;

/// Which holds [`Client::force_release`] releases.
///
/// ```
/// let one = tenure::ForceReleaseTarget::Request("01JDQ3M4ZK8Y6V2W3X4Y5Z6A7B".into());
/// let every = tenure::ForceReleaseTarget::All;
/// # let _ = (one, every);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForceReleaseTarget {
    /// The hold of this request id (it must be held, not queued).
    Request(String),
    /// Every current holder of the lock. Waiters stay queued and are granted in order.
    All,
}

/// When the waiters of a force-released lock get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Handover {
    /// After the longest TTL (or lock-delay, if longer) of the released holds, as after an
    /// expiry: by then each old holder's client has found its lease lost, at a renewal or by
    /// its own clock, so nobody else holds the lock while an old holder may still think it does.
    #[default]
    AfterTtl,
    /// At once, in the same log entry. An old holder may still believe it holds the lock until
    /// its next renewal (up to a third of its TTL, longer if its renewals stall); only fencing
    /// tokens then protect the resource.
    Immediate,
}

/// What [`Client::force_release`] did.
///
/// ```no_run
/// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
/// let r = c.force_release("job", tenure::ForceReleaseTarget::All, tenure::Handover::AfterTtl).await?;
/// for l in &r.released {
///     println!("released {} (token {})", l.request_id, l.token);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ForceReleased {
    /// The holds released, as they were (empty: there was nothing to release).
    pub released: Vec<LeaseInfo>,
    /// The waiters granted in their place, with higher fencing tokens: with
    /// [`Handover::Immediate`] only; empty when nobody waited or a lock-delay runs. With
    /// [`Handover::AfterTtl`] they are granted when the delay ends.
    pub granted: Vec<LeaseInfo>,
    /// The Raft log index that applied it; 0 when no call was needed (`All` on a free lock).
    pub log_index: u64,
}

impl ForceReleased {
    /// Whether any hold was released.
    ///
    /// ```
    /// assert!(!tenure::ForceReleased::default().was_held());
    /// ```
    pub fn was_held(&self) -> bool {
        !self.released.is_empty()
    }
}

impl Client {
    /// Admin: releases a hold of lock `name` on its holder's behalf, or every holder's with
    /// [`ForceReleaseTarget::All`]. The old holder's client finds its lease gone at its next
    /// renewal and reports it lost; the next waiters are granted when `handover` says.
    ///
    /// Idempotent: releasing what is already gone answers with nothing released. A request
    /// id that is queued rather than held fails with [`Error::InvalidArgument`]. With `All`,
    /// the client first reads the holders (linearizably) and releases only holds up to the
    /// highest token it saw, so a retry inside the call cannot release a hold that the first
    /// attempt granted; a hold granted after that read is left alone.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// use tenure::ForceReleaseTarget;
    /// use tenure::Handover;
    /// let id = ForceReleaseTarget::Request("01JDQ3M4ZK8Y6V2W3X4Y5Z6A7B".into());
    /// let r = c.force_release("job", id, Handover::Immediate).await?;
    /// if let Some(next) = r.granted.first() {
    ///     println!("now held by {} with token {}", next.owner, next.token);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn force_release(
        &self,
        name: &str,
        target: ForceReleaseTarget,
        handover: Handover,
    ) -> Result<ForceReleased, Error> {
        let (target, max_token) = match target {
            ForceReleaseTarget::Request(id) => (Target::RequestId(id), 0),
            ForceReleaseTarget::All => {
                let holders = self.describe_with(name, Consistency::Linearizable).await?.holders;
                match holders.iter().map(|l| l.token).max() {
                    Some(max) => (Target::All(true), max),
                    None => return Ok(ForceReleased::default()),
                }
            }
        };
        let immediate = handover == Handover::Immediate;
        let req = pb::ForceReleaseRequest { name: name.to_string(), target: Some(target), max_token, immediate };
        let conn = &self.inner.conn;
        let r = conn
            .call("force_release", Route::Leader, self.inner.timeout, |ch| {
                let r = conn.request(req.clone());
                async move { LocksClient::new(ch).force_release(r).await }
            })
            .await?
            .into_inner();
        Ok(ForceReleased {
            released: r.released.into_iter().map(LeaseInfo::from_pb).collect(),
            granted: r.granted.into_iter().map(LeaseInfo::from_pb).collect(),
            log_index: r.log_index,
        })
    }
}
