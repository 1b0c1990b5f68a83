//! Prometheus metrics, served as text at `/metrics`.
//!
//! Counters and histograms are process-wide (one process is one node) and are updated where the
//! thing happens; gauges that describe state (lock counts, Raft indexes) are read when scraped.
//! Per-request counters count what this node answered, so a cluster's totals are the sum over
//! its nodes; `lock_expire_total` counts expiries this node applied since it started (entries
//! re-applied after a restart count again; those covered by an installed snapshot do not).

use std::sync::LazyLock;
use std::time::Duration;

use openraft::ServerState;
use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::api::Api;

pub struct Metrics {
    registry: Registry,
    /// `result`: granted, busy, queued or error.
    pub acquire: IntCounterVec,
    pub release: IntCounter,
    /// Leases renewed (Renew calls and each lease of a KeepAlive batch).
    pub renew: IntCounter,
    pub expire: IntCounter,
    pub acquire_seconds: Histogram,
    /// A Release of a lock with waiters: from receipt until the entry that released it and
    /// granted the next waiters is applied.
    pub handoff_seconds: Histogram,
    pub flush_seconds: Histogram,
    pub snapshots: IntCounter,
    pub snapshot_seconds: Histogram,
    pub keepalive_streams: IntGauge,
    pub elections: IntCounter,
    active: IntGauge,
    waiters: IntGauge,
    locks: IntGauge,
    term: IntGauge,
    state: IntGaugeVec,
    commit_index: IntGauge,
    applied_index: IntGauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// 100 µs to ~13 s, doubling.
fn latency_buckets() -> Vec<f64> {
    exponential_buckets(0.0001, 2.0, 18).unwrap_or_default()
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        // The names are fixed and valid, and each is registered once: these cannot fail.
        fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
            r.register(Box::new(m.clone())).expect("a metric registered once");
            m
        }
        let counter = |name: &str, help: &str| reg(&registry, IntCounter::new(name, help).expect("valid metric"));
        let gauge = |name: &str, help: &str| reg(&registry, IntGauge::new(name, help).expect("valid metric"));
        let histogram = |name: &str, help: &str| {
            let opts = HistogramOpts::new(name, help).buckets(latency_buckets());
            reg(&registry, Histogram::with_opts(opts).expect("valid metric"))
        };
        Self {
            acquire: reg(
                &registry,
                IntCounterVec::new(
                    Opts::new("lock_acquire_total", "Acquire calls answered by this node, by result"),
                    &["result"],
                )
                .expect("valid counter vec"),
            ),
            release: counter("lock_release_total", "Release calls answered by this node"),
            renew: counter("lock_renew_total", "Leases renewed by this node (Renew calls and KeepAlive leases)"),
            expire: counter("lock_expire_total", "Lease expiries applied by this node"),
            acquire_seconds: histogram("lock_acquire_duration_seconds", "Acquire calls, receipt to answer"),
            handoff_seconds: histogram(
                "lock_handoff_duration_seconds",
                "Release of a lock with waiters, receipt until the release and the next grant are applied",
            ),
            flush_seconds: histogram("storage_flush_duration_seconds", "One sled flush plus fdatasync"),
            snapshots: counter("raft_snapshot_total", "Snapshots built by this node"),
            snapshot_seconds: histogram("raft_snapshot_duration_seconds", "Building one snapshot"),
            keepalive_streams: gauge("lock_keepalive_streams", "Open KeepAlive streams on this node"),
            elections: counter("raft_election_count", "Elections this node started (became a candidate)"),
            active: gauge("lock_active_count", "Held leases in this node's applied state"),
            waiters: gauge("lock_waiters", "Queued requests in this node's applied state"),
            locks: gauge("lock_count", "Locks with a holder, a waiter or a lock-delay in this node's applied state"),
            term: gauge("raft_term", "Current Raft term"),
            state: reg(
                &registry,
                IntGaugeVec::new(Opts::new("raft_state", "1 for this node's Raft state, 0 for the others"), &["state"])
                    .expect("valid gauge vec"),
            ),
            commit_index: gauge("raft_commit_index", "Last committed log index this node knows of"),
            applied_index: gauge("raft_applied_index", "Last log index applied to this node's state"),
            registry,
        }
    }

    /// Counts one Acquire answer.
    pub fn acquired(&self, result: &str, took: Duration) {
        self.acquire.with_label_values(&[result]).inc();
        self.acquire_seconds.observe(took.as_secs_f64());
    }

    /// The metrics in Prometheus text format, gauges read from `api` now.
    pub fn render(&self, api: &Api, committed: u64) -> String {
        {
            let s = api.state.read();
            self.active.set(s.table.held_count() as i64);
            self.waiters.set(s.table.queued_count() as i64);
            self.locks.set(s.table.lock_count() as i64);
        }
        let m = api.raft.metrics().borrow().clone();
        self.term.set(m.current_term as i64);
        for (state, name) in [
            (ServerState::Leader, "leader"),
            (ServerState::Follower, "follower"),
            (ServerState::Candidate, "candidate"),
            (ServerState::Learner, "learner"),
            (ServerState::Shutdown, "shutdown"),
        ] {
            self.state.with_label_values(&[name]).set(i64::from(m.state == state));
        }
        self.commit_index.set(committed as i64);
        self.applied_index.set(m.last_applied.map_or(0, |l| l.index) as i64);
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Counts the elections this node starts, from Raft's metrics, until Raft stops.
pub async fn count_elections(raft: crate::raft::Raft) {
    let mut rx = raft.metrics();
    // One borrow at a time: a second `borrow()` while the first is held waits behind Raft's
    // next metrics update, which waits for the first to be released (tokio's watch is an
    // RwLock that lets a waiting writer go first): RaftCore and this task then hang for good.
    let state_and_term = |rx: &tokio::sync::watch::Receiver<_>| {
        let m: &openraft::RaftMetrics<_, _> = &rx.borrow();
        (m.state, m.current_term)
    };
    let mut was = state_and_term(&rx);
    while rx.changed().await.is_ok() {
        let now = state_and_term(&rx);
        // A candidate that times out runs again in a new term without leaving the state.
        if now.0 == ServerState::Candidate && now != was {
            metrics().elections.inc();
        }
        was = now;
    }
}
