//! `/v1/locks`: acquire, renew, release, validate-fence, describe and list.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tenure_proto::v1 as pb;
use tenure_proto::v1::locks_server::Locks;

use super::body::{self, Query};
use super::{grpc, Auth, HttpError, Reply, Shared};

pub fn routes() -> Router<Shared> {
    // A lock may be called `acquire`: GET on the action paths describes it, as on any other name.
    Router::new()
        .route("/v1/locks", get(list))
        .route("/v1/locks/acquire", post(acquire).get(|s, a, q| describe_named(s, a, "acquire", q)))
        .route("/v1/locks/renew", post(renew).get(|s, a, q| describe_named(s, a, "renew", q)))
        .route("/v1/locks/release", post(release).get(|s, a, q| describe_named(s, a, "release", q)))
        .route(
            "/v1/locks/validate-fence",
            post(validate_fence).get(|s, a, q| describe_named(s, a, "validate-fence", q)),
        )
        .route("/v1/locks/force-release", post(force_release).get(|s, a, q| describe_named(s, a, "force-release", q)))
        .route("/v1/locks/{*name}", get(describe))
}

fn mode_from_text(mode: Option<&str>) -> Result<i32, HttpError> {
    match mode.map(str::to_ascii_lowercase).as_deref() {
        None | Some("exclusive") => Ok(pb::LockMode::Exclusive as i32),
        Some("shared") => Ok(pb::LockMode::Shared as i32),
        Some(other) => Err(HttpError::invalid("mode", format!("mode must be exclusive or shared, got {other:?}"))),
    }
}

fn mode_text(mode: i32) -> &'static str {
    match pb::LockMode::try_from(mode) {
        Ok(pb::LockMode::Shared) => "SHARED",
        _ => "EXCLUSIVE",
    }
}

/// `POST /v1/locks/acquire`. Defaults differ from the SDKs' in one place: without `wait` the call
/// does not wait (an HTTP client rarely wants a request held open); give `wait` to queue.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcquireBody {
    name: String,
    #[serde(default)]
    owner: String,
    /// Generated when absent; send your own to make retries safe.
    request_id: Option<String>,
    ttl: Option<String>,
    ttl_ms: Option<u64>,
    wait: Option<String>,
    wait_ms: Option<u64>,
    mode: Option<String>,
    #[serde(default)]
    limit: u32,
    lock_delay: Option<String>,
    lock_delay_ms: Option<u64>,
}

/// The TTL when none is given, as in every SDK.
const DEFAULT_TTL_MS: u64 = 30_000;

#[derive(Serialize)]
struct LeaseJson {
    name: String,
    request_id: String,
    owner: String,
    mode: &'static str,
    token: u64,
    ttl_ms: u64,
    granted_at_ms: u64,
    expires_at_ms: u64,
}

impl From<pb::Lease> for LeaseJson {
    fn from(l: pb::Lease) -> Self {
        Self {
            mode: mode_text(l.mode),
            name: l.name,
            request_id: l.request_id,
            owner: l.owner,
            token: l.token,
            ttl_ms: l.ttl_ms,
            granted_at_ms: l.granted_at_ms,
            expires_at_ms: l.expires_at_ms,
        }
    }
}

#[derive(Serialize)]
struct AcquireJson {
    /// GRANTED, BUSY or QUEUED.
    outcome: &'static str,
    request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease: Option<LeaseJson>,
    holders: Vec<LeaseJson>,
    queue_length: u64,
    position: u64,
    log_index: u64,
}

/// A request id for an acquire that came without one: `http-` and 16 random hex digits.
fn new_request_id() -> String {
    format!("http-{:016x}", rand::thread_rng().gen::<u64>())
}

async fn acquire(State(http): State<Shared>, auth: Auth, body: Result<Bytes, BytesRejection>) -> Reply<AcquireJson> {
    let b: AcquireBody = body::json(&body?)?;
    let ttl_ms = body::duration_ms("ttl", b.ttl.as_deref(), "ttl_ms", b.ttl_ms)?.unwrap_or(DEFAULT_TTL_MS);
    let wait_ms = body::duration_ms("wait", b.wait.as_deref(), "wait_ms", b.wait_ms)?.unwrap_or(0);
    let lock_delay_ms =
        body::duration_ms("lock_delay", b.lock_delay.as_deref(), "lock_delay_ms", b.lock_delay_ms)?.unwrap_or(0);
    let request_id = b.request_id.unwrap_or_else(new_request_id);
    let req = pb::AcquireRequest {
        name: b.name,
        owner: b.owner,
        request_id: request_id.clone(),
        ttl_ms,
        wait_ms,
        mode: mode_from_text(b.mode.as_deref())?,
        limit: b.limit,
        lock_delay_ms,
    };
    let r = grpc(&http.api, http.locks.acquire(auth.request(req)).await)?;
    let outcome = match pb::AcquireOutcome::try_from(r.outcome) {
        Ok(pb::AcquireOutcome::Granted) => "GRANTED",
        Ok(pb::AcquireOutcome::Busy) => "BUSY",
        Ok(pb::AcquireOutcome::Queued) => "QUEUED",
        _ => "UNSPECIFIED",
    };
    Ok(Json(AcquireJson {
        outcome,
        request_id,
        lease: r.lease.map(LeaseJson::from),
        holders: r.holders.into_iter().map(LeaseJson::from).collect(),
        queue_length: r.queue_length,
        position: r.position,
        log_index: r.log_index,
    }))
}

/// `{name, request_id}`: the body of renew and release.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseBody {
    name: String,
    request_id: String,
}

#[derive(Serialize)]
struct RenewJson {
    ttl_ms: u64,
    held: bool,
}

async fn renew(State(http): State<Shared>, auth: Auth, body: Result<Bytes, BytesRejection>) -> Reply<RenewJson> {
    let b: LeaseBody = body::json(&body?)?;
    let req = pb::RenewRequest { name: b.name, request_id: b.request_id };
    let r = grpc(&http.api, http.locks.renew(auth.request(req)).await)?;
    Ok(Json(RenewJson { ttl_ms: r.ttl_ms, held: r.held }))
}

#[derive(Serialize)]
struct ReleaseJson {
    was_held: bool,
    was_queued: bool,
}

async fn release(State(http): State<Shared>, auth: Auth, body: Result<Bytes, BytesRejection>) -> Reply<ReleaseJson> {
    let b: LeaseBody = body::json(&body?)?;
    let req = pb::ReleaseRequest { name: b.name, request_id: b.request_id };
    let r = grpc(&http.api, http.locks.release(auth.request(req)).await)?;
    Ok(Json(ReleaseJson { was_held: r.was_held, was_queued: r.was_queued }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FenceBody {
    name: String,
    token: u64,
    consistency: Option<String>,
}

#[derive(Serialize)]
struct FenceJson {
    current: bool,
    current_tokens: Vec<u64>,
}

async fn validate_fence(
    State(http): State<Shared>,
    auth: Auth,
    body: Result<Bytes, BytesRejection>,
) -> Reply<FenceJson> {
    let b: FenceBody = body::json(&body?)?;
    let req = pb::ValidateFenceRequest {
        name: b.name,
        token: b.token,
        consistency: body::consistency(b.consistency.as_deref())?,
    };
    let r = grpc(&http.api, http.locks.validate_fence(auth.request(req)).await)?;
    Ok(Json(FenceJson { current: r.current, current_tokens: r.current_tokens }))
}

/// `POST /v1/locks/force-release` (admin): `{name, request_id}` or `{name, all: true,
/// max_token?}`, as `Locks.ForceRelease`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForceBody {
    name: String,
    request_id: Option<String>,
    all: Option<bool>,
    #[serde(default)]
    max_token: u64,
    /// Grant the next waiters at once rather than after the released holds' TTL.
    #[serde(default)]
    immediate: bool,
}

#[derive(Serialize)]
struct ForceJson {
    was_held: bool,
    released: Vec<LeaseJson>,
    granted: Vec<LeaseJson>,
    log_index: u64,
}

async fn force_release(
    State(http): State<Shared>,
    auth: Auth,
    body: Result<Bytes, BytesRejection>,
) -> Reply<ForceJson> {
    use pb::force_release_request::Target;
    let b: ForceBody = body::json(&body?)?;
    let target = match (b.request_id, b.all) {
        (Some(id), None) => Some(Target::RequestId(id)),
        (None, Some(all)) => Some(Target::All(all)),
        (None, None) => return Err(HttpError::invalid("request_id", "give request_id (one hold) or all: true")),
        (Some(_), Some(_)) => return Err(HttpError::invalid("all", "give request_id or all, not both")),
    };
    let req = pb::ForceReleaseRequest { name: b.name, target, max_token: b.max_token, immediate: b.immediate };
    let r = grpc(&http.api, http.locks.force_release(auth.request(req)).await)?;
    Ok(Json(ForceJson {
        was_held: r.was_held,
        released: r.released.into_iter().map(LeaseJson::from).collect(),
        granted: r.granted.into_iter().map(LeaseJson::from).collect(),
        log_index: r.log_index,
    }))
}

#[derive(Serialize)]
struct WaiterJson {
    request_id: String,
    owner: String,
    mode: &'static str,
    position: u64,
    ttl_ms: u64,
    enqueued_at_ms: u64,
}

#[derive(Serialize)]
struct DescribeJson {
    name: String,
    exists: bool,
    holders: Vec<LeaseJson>,
    waiters: Vec<WaiterJson>,
    limit: u32,
    delayed_until_ms: u64,
}

async fn describe(
    State(http): State<Shared>,
    auth: Auth,
    name: Result<Path<String>, axum::extract::rejection::PathRejection>,
    RawQuery(q): RawQuery,
) -> Reply<DescribeJson> {
    let Path(name) = name.map_err(|e| HttpError::invalid("name", format!("name: {}", e.body_text())))?;
    describe_named(State(http), auth, &name, RawQuery(q)).await
}

/// `GET /v1/locks/{name}?consistency=stale`.
async fn describe_named(
    State(http): State<Shared>,
    auth: Auth,
    name: &str,
    RawQuery(q): RawQuery,
) -> Reply<DescribeJson> {
    let mut q = Query::parse(q.as_deref())?;
    let consistency = q.consistency()?;
    q.finish()?;
    let req = pb::DescribeRequest { name: name.to_string(), consistency };
    let r = grpc(&http.api, http.locks.describe(auth.request(req)).await)?;
    Ok(Json(DescribeJson {
        name: name.to_string(),
        exists: r.exists,
        holders: r.holders.into_iter().map(LeaseJson::from).collect(),
        waiters: r
            .waiters
            .into_iter()
            .map(|w| WaiterJson {
                mode: mode_text(w.mode),
                request_id: w.request_id,
                owner: w.owner,
                position: w.position,
                ttl_ms: w.ttl_ms,
                enqueued_at_ms: w.enqueued_at_ms,
            })
            .collect(),
        limit: r.limit,
        delayed_until_ms: r.delayed_until_ms,
    }))
}

#[derive(Serialize)]
struct SummaryJson {
    name: String,
    holders: u32,
    waiters: u32,
    mode: &'static str,
    limit: u32,
}

#[derive(Serialize)]
struct ListJson {
    locks: Vec<SummaryJson>,
    /// Empty on the last page.
    next_page_token: String,
}

/// `GET /v1/locks?prefix=&page_size=&page_token=&consistency=`.
async fn list(State(http): State<Shared>, auth: Auth, RawQuery(q): RawQuery) -> Reply<ListJson> {
    let mut q = Query::parse(q.as_deref())?;
    let req = pb::ListLocksRequest {
        prefix: q.text("prefix").unwrap_or_default(),
        page_size: q.number("page_size")?.unwrap_or(0),
        page_token: q.text("page_token").unwrap_or_default(),
        consistency: q.consistency()?,
    };
    q.finish()?;
    let r = grpc(&http.api, http.locks.list(auth.request(req)).await)?;
    Ok(Json(ListJson {
        locks: r
            .locks
            .into_iter()
            .map(|l| SummaryJson {
                mode: mode_text(l.mode),
                name: l.name,
                holders: l.holders,
                waiters: l.waiters,
                limit: l.limit,
            })
            .collect(),
        next_page_token: r.next_page_token,
    }))
}
