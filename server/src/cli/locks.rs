//! `tenure acquire`, `release`, `force-release`, `describe` and `list`, and taking a lock as
//! `run` and `acquire` both do it.

use std::time::Duration;

use tenure::{Client, ForceReleaseTarget, Handover, LockGuard};

use crate::args::{AcquireArgs, ForceReleaseArgs, LockOptions};
use crate::exit::{Failure, LEASE_LOST, TIMEOUT};
use crate::output::Output;
use crate::signals::Interrupts;
use crate::{duration, view};

/// Takes lock `name` as `opts` say, waiting as long as `--wait` allows. A SIGINT, SIGTERM or
/// SIGHUP while waiting withdraws the request and fails with exit code 128+N.
pub async fn obtain(
    client: &Client,
    name: &str,
    opts: &LockOptions,
    interrupts: &mut Interrupts,
) -> Result<LockGuard, Failure> {
    // Fail fast (UNAVAILABLE) on a wrong endpoint or a cluster that is down: an acquire that
    // waits retries unseen until a node answers, forever without --wait.
    client.cluster_status().await?;
    let mut lock = client.lock(name).ttl(opts.ttl).lock_delay(opts.lock_delay);
    if let Some(wait) = opts.wait {
        lock = lock.wait(wait);
    }
    if opts.shared {
        lock = lock.shared(opts.limit);
    }
    tokio::select! {
        result = lock.acquire() => result.map_err(|e| match e {
            tenure::Error::Timeout(why) => not_obtained(name, opts.wait, &why),
            e => e.into(),
        }),
        interrupt = interrupts.recv() => {
            // The acquire future is dropped by now, which started the withdrawal; wait for it,
            // so the request is not left queued (or granted to a process that is gone).
            let _ = client.close().await;
            Err(Failure::new(
                "CANCELLED",
                format!("{} received while waiting for lock {name:?}; the request was withdrawn", interrupt.name()),
                128 + interrupt.number(),
            ))
        }
    }
}

fn not_obtained(name: &str, wait: Option<Duration>, why: &str) -> Failure {
    let message = match wait {
        Some(w) if w.is_zero() => format!("lock {name:?} is busy (--wait 0s tries once)"),
        Some(w) => format!("lock {name:?} was not obtained within --wait {}", duration::format(w)),
        None => format!("lock {name:?} was not obtained: {why}"),
    };
    Failure::new("TIMEOUT", message, TIMEOUT)
}

/// `tenure acquire`: prints the lease, then leaves it to its TTL, or holds it until a signal.
pub async fn acquire(
    client: &Client,
    out: &Output,
    args: &AcquireArgs,
    interrupts: &mut Interrupts,
) -> Result<u8, Failure> {
    let guard = obtain(client, &args.name, &args.lock, interrupts).await?;
    if !args.hold {
        let lease = guard.detach();
        out.print(&view::lease_json(&lease), || view::lease_text(&lease));
        return Ok(0);
    }
    out.print(&view::lease_json(guard.lease()), || view::lease_text(guard.lease()));
    tokio::select! {
        () = guard.lost() => {
            let why = guard.lost_reason().unwrap_or_default();
            Err(Failure::new("LEASE_LOST", format!("lease on {:?} lost ({why})", args.name), LEASE_LOST))
        }
        _ = interrupts.recv() => {
            guard.release().await?;
            Ok(0)
        }
    }
}

/// `tenure release NAME REQUEST_ID`.
pub async fn release(client: &Client, out: &Output, name: &str, request_id: &str) -> Result<u8, Failure> {
    let was_held = client.release(name, request_id).await?;
    let json = serde_json::json!({ "name": name, "request_id": request_id, "was_held": was_held });
    out.print(&json, || {
        if was_held {
            format!("released lock {name:?} (request {request_id})")
        } else {
            format!("lock {name:?} was not held by request {request_id} (already released or expired, never granted, or unknown); nothing of it is left")
        }
    });
    Ok(0)
}

/// `tenure force-release NAME (--request-id ID | --all)`.
pub async fn force_release(client: &Client, out: &Output, args: &ForceReleaseArgs) -> Result<u8, Failure> {
    let name = &args.name;
    let target = match &args.target.request_id {
        Some(id) => ForceReleaseTarget::Request(id.clone()),
        None => ForceReleaseTarget::All,
    };
    let handover = if args.immediate { Handover::Immediate } else { Handover::AfterTtl };
    let r = client.force_release(name, target, handover).await?;
    let json = serde_json::json!({
        "name": name,
        "was_held": r.was_held(),
        "released": r.released.iter().map(view::lease_json).collect::<Vec<_>>(),
        "granted": r.granted.iter().map(view::lease_json).collect::<Vec<_>>(),
    });
    out.print(&json, || {
        if !r.was_held() {
            return match &args.target.request_id {
                Some(id) => format!(
                    "lock {name:?} is not held by request {id} (already released or expired, or unknown); nothing released"
                ),
                None => format!("lock {name:?} has no holders; nothing released"),
            };
        }
        let mut lines = vec![format!("force-released lock {name:?}:")];
        for l in &r.released {
            lines.push(format!("  released  request {} token {} owner {}", l.request_id, l.token, l.owner));
        }
        for l in &r.granted {
            lines.push(format!("  granted   request {} token {} owner {}", l.request_id, l.token, l.owner));
        }
        if r.granted.is_empty() {
            lines.push(if args.immediate {
                "  granted   nobody (no waiter fits yet, or a lock-delay runs)".to_owned()
            } else {
                "  granted   the next waiters once the released holds' TTL has passed".to_owned()
            });
        }
        lines.join("\n")
    });
    Ok(0)
}

/// `tenure describe NAME`.
pub async fn describe(client: &Client, out: &Output, name: &str) -> Result<u8, Failure> {
    let d = client.describe(name).await?;
    out.print(&view::description_json(name, &d), || view::description_text(name, &d));
    Ok(0)
}

/// `tenure list [PREFIX]`.
pub async fn list(client: &Client, out: &Output, prefix: &str) -> Result<u8, Failure> {
    let locks = client.list(prefix).await?;
    out.print(&view::summaries_json(&locks), || view::summaries_text(&locks));
    Ok(0)
}
