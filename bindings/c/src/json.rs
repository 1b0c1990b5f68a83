//! The JSON documents of `tenure_describe_json`, `tenure_list_json` and
//! `tenure_cluster_status_json`: the same shapes as the CLI's `--output json`
//! (server/src/cli/view.rs), so a C program and a shell script read the same fields. Times are
//! RFC 3339 strings in UTC with milliseconds; durations are `*_ms` integers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tenure_core::{ClusterStatus, LeaseInfo, LockDescription, LockSummary};

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn lease(l: &LeaseInfo) -> Value {
    json!({
        "name": l.name,
        "token": l.token,
        "request_id": l.request_id,
        "owner": l.owner,
        "mode": l.mode.as_str(),
        "ttl_ms": ms(l.ttl),
        "granted_at": rfc3339(l.granted_at),
        "expires_at": rfc3339(l.expires_at),
    })
}

pub(crate) fn description(name: &str, d: &LockDescription) -> String {
    json!({
        "name": name,
        "exists": d.exists,
        "limit": d.limit,
        "delayed_until": d.delayed_until.map(rfc3339),
        "holders": d.holders.iter().map(lease).collect::<Vec<_>>(),
        "waiters": d.waiters.iter().map(|w| json!({
            "position": w.position,
            "request_id": w.request_id,
            "owner": w.owner,
            "mode": w.mode.as_str(),
            "ttl_ms": ms(w.ttl),
            "enqueued_at": rfc3339(w.enqueued_at),
        })).collect::<Vec<_>>(),
    })
    .to_string()
}

pub(crate) fn summaries(locks: &[LockSummary]) -> String {
    let locks: Vec<Value> = locks
        .iter()
        .map(|l| {
            json!({
                "name": l.name,
                "holders": l.holders,
                "waiters": l.waiters,
                "mode": l.mode.as_str(),
                "limit": l.limit,
            })
        })
        .collect();
    json!({ "locks": locks }).to_string()
}

pub(crate) fn cluster(s: &ClusterStatus) -> String {
    json!({
        "node_id": s.node_id,
        "role": s.role.as_str(),
        "leader_id": s.leader_id,
        "leader_addr": s.leader_addr,
        "term": s.term,
        "cluster_id": s.cluster_id,
        "quorum_size": s.quorum_size,
        "has_quorum": s.has_quorum,
        "commit_index": s.commit_index,
        "applied_index": s.applied_index,
        "last_log_index": s.last_log_index,
        "snapshot_index": s.snapshot_index,
        "purged_index": s.purged_index,
        "members": s.members.iter().map(|m| json!({
            "id": m.id,
            "role": m.role.as_str(),
            "grpc_addr": m.grpc_addr,
            "http_addr": m.http_addr,
            "matched_index": m.matched_index,
        })).collect::<Vec<_>>(),
    })
    .to_string()
}

/// `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ`, as the CLI prints it; times before 1970 as the epoch.
fn rfc3339(t: SystemTime) -> String {
    let ms = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let (days, ms_of_day) = ((ms / 86_400_000) as i64, ms % 86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, milli) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60, ms_of_day / 1_000 % 60, ms_of_day % 1_000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_like_the_cli() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_millis(951_782_400_000)), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn an_empty_lock_describes_as_not_existing() {
        let v: Value = serde_json::from_str(&description("job", &LockDescription::default())).unwrap_or_default();
        assert_eq!(v["name"], "job");
        assert_eq!(v["exists"], false);
        assert_eq!(v["holders"], json!([]));
        assert_eq!(summaries(&[]), r#"{"locks":[]}"#);
    }
}
