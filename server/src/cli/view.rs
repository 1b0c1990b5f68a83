//! How each result of the client looks, as text for humans and as JSON for programs. Times are
//! RFC 3339 strings (UTC, milliseconds), durations are `*_ms` integers in JSON and `1m30s` in
//! text, tokens are numbers.

use serde_json::{json, Value};
use tenure::{ClusterStatus, KvEntry, LeaseInfo, LockDescription, LockSummary, Member, MembershipChange};

use crate::duration;
use crate::output::{fields, table};
use crate::timestamp::rfc3339;

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub fn lease_json(l: &LeaseInfo) -> Value {
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

pub fn lease_text(l: &LeaseInfo) -> String {
    fields(&[
        ("name", l.name.clone()),
        ("token", l.token.to_string()),
        ("request_id", l.request_id.clone()),
        ("owner", l.owner.clone()),
        ("mode", l.mode.as_str().to_string()),
        ("ttl", duration::format(l.ttl)),
        ("granted_at", rfc3339(l.granted_at)),
        ("expires_at", rfc3339(l.expires_at)),
    ])
}

pub fn description_json(name: &str, d: &LockDescription) -> Value {
    json!({
        "name": name,
        "exists": d.exists,
        "limit": d.limit,
        "delayed_until": d.delayed_until.map(rfc3339),
        "holders": d.holders.iter().map(lease_json).collect::<Vec<_>>(),
        "waiters": d.waiters.iter().map(|w| json!({
            "position": w.position,
            "request_id": w.request_id,
            "owner": w.owner,
            "mode": w.mode.as_str(),
            "ttl_ms": ms(w.ttl),
            "enqueued_at": rfc3339(w.enqueued_at),
        })).collect::<Vec<_>>(),
    })
}

pub fn description_text(name: &str, d: &LockDescription) -> String {
    let limit = if d.limit == 0 { "unlimited".to_string() } else { d.limit.to_string() };
    let state = match (d.holders.is_empty(), d.delayed_until.is_some(), d.waiters.is_empty()) {
        (false, _, _) => "held",
        (true, true, _) => "delayed (lock-delay after an expiry)",
        (true, false, false) => "free, waiters being granted",
        (true, false, true) => "free",
    };
    let mut rows = vec![("name", name.to_string()), ("state", state.to_string()), ("limit", limit)];
    if let Some(until) = d.delayed_until {
        rows.push(("delayed_until", rfc3339(until)));
    }
    rows.push(("holders", d.holders.len().to_string()));
    rows.push(("waiters", d.waiters.len().to_string()));
    let mut out = fields(&rows);
    if !d.holders.is_empty() {
        let holders: Vec<Vec<String>> = d
            .holders
            .iter()
            .map(|h| {
                vec![
                    h.token.to_string(),
                    h.mode.as_str().to_string(),
                    h.owner.clone(),
                    h.request_id.clone(),
                    duration::format(h.ttl),
                    rfc3339(h.granted_at),
                    rfc3339(h.expires_at),
                ]
            })
            .collect();
        out.push_str("\nholders:\n");
        out.push_str(&table(
            "  ",
            &["TOKEN", "MODE", "OWNER", "REQUEST_ID", "TTL", "GRANTED_AT", "EXPIRES_AT"],
            &holders,
        ));
    }
    if !d.waiters.is_empty() {
        let waiters: Vec<Vec<String>> = d
            .waiters
            .iter()
            .map(|w| {
                vec![
                    w.position.to_string(),
                    w.mode.as_str().to_string(),
                    w.owner.clone(),
                    w.request_id.clone(),
                    duration::format(w.ttl),
                    rfc3339(w.enqueued_at),
                ]
            })
            .collect();
        out.push_str("\nwaiters:\n");
        out.push_str(&table("  ", &["POSITION", "MODE", "OWNER", "REQUEST_ID", "TTL", "ENQUEUED_AT"], &waiters));
    }
    out
}

pub fn summaries_json(locks: &[LockSummary]) -> Value {
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
    json!({ "locks": locks })
}

pub fn summaries_text(locks: &[LockSummary]) -> String {
    if locks.is_empty() {
        return "no locks\n".into();
    }
    let rows: Vec<Vec<String>> = locks
        .iter()
        .map(|l| {
            let mode = if l.holders == 0 { "-" } else { l.mode.as_str() };
            vec![l.name.clone(), l.holders.to_string(), l.waiters.to_string(), mode.to_string(), l.limit.to_string()]
        })
        .collect();
    table("", &["NAME", "HOLDERS", "WAITERS", "MODE", "LIMIT"], &rows)
}

/// Keys and values are bytes; JSON shows them as UTF-8 (invalid sequences replaced by U+FFFD).
pub fn kv_entry_json(e: &KvEntry) -> Value {
    json!({
        "key": String::from_utf8_lossy(&e.key),
        "value": String::from_utf8_lossy(&e.value),
        "revision": e.revision,
    })
}

pub fn kv_entries_json(entries: &[KvEntry]) -> Value {
    json!({ "entries": entries.iter().map(kv_entry_json).collect::<Vec<_>>() })
}

pub fn kv_entries_text(entries: &[KvEntry]) -> String {
    if entries.is_empty() {
        return "no keys\n".into();
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                String::from_utf8_lossy(&e.key).into_owned(),
                e.revision.to_string(),
                String::from_utf8_lossy(&e.value).into_owned(),
            ]
        })
        .collect();
    table("", &["KEY", "REVISION", "VALUE"], &rows)
}

fn members_json(members: &[Member]) -> Vec<Value> {
    members
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "role": m.role.as_str(),
                "grpc_addr": m.grpc_addr,
                "http_addr": m.http_addr,
                "matched_index": m.matched_index,
            })
        })
        .collect()
}

fn members_table(members: &[Member]) -> String {
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                m.role.as_str().to_string(),
                m.grpc_addr.clone(),
                m.http_addr.clone(),
                m.matched_index.to_string(),
            ]
        })
        .collect();
    table("  ", &["ID", "ROLE", "GRPC", "HTTP", "MATCHED"], &rows)
}

/// `tenure cluster add|remove`.
pub fn membership_json(r: &MembershipChange) -> Value {
    json!({ "changed": r.changed, "members": members_json(&r.members) })
}

pub fn membership_text(headline: &str, r: &MembershipChange) -> String {
    format!("{headline}\n{}", members_table(&r.members))
}

pub fn cluster_json(s: &ClusterStatus) -> Value {
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
        "members": members_json(&s.members),
    })
}

pub fn cluster_text(s: &ClusterStatus) -> String {
    let leader = match s.leader_id {
        Some(id) => format!("{id} at {}", s.leader_addr),
        None => "none known".to_string(),
    };
    let mut out = fields(&[
        ("node", format!("{} ({})", s.node_id, s.role.as_str())),
        ("leader", leader),
        ("term", s.term.to_string()),
        ("cluster_id", s.cluster_id.clone()),
        ("quorum", format!("{} votes, {}", s.quorum_size, if s.has_quorum { "reached" } else { "NOT reached" })),
        ("commit_index", s.commit_index.to_string()),
        ("applied_index", s.applied_index.to_string()),
        ("last_log_index", s.last_log_index.to_string()),
        ("snapshot_index", s.snapshot_index.to_string()),
        ("members", s.members.len().to_string()),
    ]);
    out.push('\n');
    out.push_str(&members_table(&s.members));
    out
}
