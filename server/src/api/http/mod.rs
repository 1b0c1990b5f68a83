//! The HTTP/JSON API (DESIGN §5), on `--http`: Locks, KV and Cluster as JSON, plus `/healthz`,
//! `/readyz`, `/metrics` and the OpenAPI document.
//!
//! Every call runs the gRPC service's own handler in-process, so validation, leadership checks,
//! waiting and error codes are the same code as gRPC's; this module only translates JSON, query
//! strings and paths in, and JSON out. An error is `{code, message, field?, leader?}` with the
//! stable code of the gRPC `ErrorDetail` and the HTTP status of DESIGN §5's table.

mod body;
mod cluster;
mod kv;
mod locks;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prost::Message;
use serde::Serialize;
use tenure_proto::v1::ErrorDetail;
use tokio::net::TcpListener;

use crate::api::cluster::ClusterService;
use crate::api::kv::KvService;
use crate::api::locks::LocksService;
use crate::api::Api;

/// The OpenAPI 3 document of this API, served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// How far apply may lag the committed index it has to reach before `/readyz` says not ready.
const APPLY_LAG: std::time::Duration = std::time::Duration::from_secs(1);

/// What the handlers share: the three gRPC services and what health and metrics read.
pub struct Http {
    api: Arc<Api>,
    locks: LocksService,
    kv: KvService,
    cluster: ClusterService,
    /// The last committed index this node knows of (from the log store).
    committed: Arc<AtomicU64>,
}

type Shared = Arc<Http>;

impl Http {
    pub fn new(api: Arc<Api>, committed: Arc<AtomicU64>) -> Self {
        Self {
            locks: LocksService::new(api.clone()),
            kv: KvService::new(api.clone()),
            cluster: ClusterService::new(api.clone()),
            api,
            committed,
        }
    }
}

/// Serves the API on `listener` (over TLS with `tls`) until `stop` completes.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    http: Http,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let app = router(Arc::new(http));
    let served = match tls {
        None => axum::serve(listener, app).with_graceful_shutdown(stop).await,
        Some(acceptor) => match crate::tls::TlsListener::new(listener, acceptor) {
            Ok(listener) => axum::serve(listener, app).with_graceful_shutdown(stop).await,
            Err(e) => Err(e),
        },
    };
    if let Err(e) = served {
        tracing::error!(error = %e, "the HTTP API stopped");
    }
}

fn router(http: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .route("/v1/openapi.json", get(openapi))
        .merge(locks::routes())
        .merge(kv::routes())
        .merge(cluster::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(http)
}

async fn prometheus(axum::extract::State(http): axum::extract::State<Shared>) -> Response {
    let text = crate::metrics::metrics().render(&http.api, http.committed.load(Ordering::Relaxed));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

fn health(ok: Result<(), String>) -> Response {
    match ok {
        Ok(()) => (StatusCode::OK, axum::Json(Health { status: "ok", reason: None })).into_response(),
        Err(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(Health { status: "unavailable", reason: Some(reason) }))
                .into_response()
        }
    }
}

/// Alive: the process answers and Raft has not stopped.
async fn healthz(axum::extract::State(http): axum::extract::State<Shared>) -> Response {
    let m = http.api.raft.metrics().borrow().clone();
    health(m.running_state.as_ref().map(|_| ()).map_err(|e| format!("raft stopped: {e}")))
}

/// Ready: this node knows a leader (the leader itself: a quorum confirms it within an election
/// timeout) and has applied everything it knows is committed.
async fn readyz(axum::extract::State(http): axum::extract::State<Shared>) -> Response {
    health(ready(&http).await)
}

async fn ready(http: &Http) -> Result<(), String> {
    let m = http.api.raft.metrics().borrow().clone();
    m.running_state.as_ref().map_err(|e| format!("raft stopped: {e}"))?;
    let Some(leader) = m.current_leader else {
        return Err("no leader known: an election is in progress or this node is cut off".to_string());
    };
    if leader == http.api.node_id {
        // Raft's metrics change only on events, so a leader's last quorum contact in them can be
        // old news: ask a quorum now, as a linearizable read does.
        let timeout = std::time::Duration::from_millis(http.api.election_timeout_ms);
        match tokio::time::timeout(timeout, http.api.rounds.round()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("this leader cannot confirm it still leads: {e}")),
            Err(_) => return Err(format!("this leader heard from no quorum within {timeout:?}")),
        }
    }
    // Under load an entry is nearly always committed and not yet applied: wait (bounded) for
    // apply to reach what was committed when the probe came, rather than compare two moving
    // numbers.
    let committed = http.committed.load(Ordering::Relaxed);
    let mut applied = http.api.state.applied_index();
    let caught_up = tokio::time::timeout(APPLY_LAG, applied.wait_for(|&a| a >= committed)).await.map(|r| r.is_ok());
    match caught_up {
        Ok(true) => Ok(()),
        Ok(false) => Err("the state machine has stopped".to_string()),
        Err(_) => Err(format!(
            "applied index {} is behind the committed index {committed} for more than {APPLY_LAG:?}",
            *applied.borrow()
        )),
    }
}

async fn not_found(uri: axum::http::Uri) -> Response {
    HttpError::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("no endpoint {uri}; the API is in /v1/openapi.json"))
        .into_response()
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{method} is not allowed on {}; the API is in /v1/openapi.json", uri.path()),
    )
    .into_response()
}

/// The leader, in a NOT_LEADER error: where to send the request instead.
#[derive(Serialize, Debug)]
pub struct LeaderRef {
    pub id: u64,
    pub grpc_addr: String,
    pub http_addr: String,
}

/// An error reply: `{code, message, field?, leader?}`.
#[derive(Serialize, Debug)]
pub struct HttpError {
    #[serde(skip)]
    status: StatusCode,
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<Box<LeaderRef>>,
}

impl HttpError {
    fn new(status: StatusCode, code: &str, message: String) -> Self {
        Self { status, code: code.to_string(), message, field: None, leader: None }
    }

    /// INVALID_ARGUMENT naming `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message.into());
        e.field = Some(field.to_string());
        e
    }

    /// The HTTP form of a gRPC handler's error; a NOT_LEADER names the leader's HTTP address.
    fn from_status(status: tonic::Status, api: &Api) -> Self {
        let detail = ErrorDetail::decode(status.details()).ok().filter(|d| !d.code.is_empty());
        let Some(detail) = detail else {
            // Only tonic's own errors come without a detail.
            let code = format!("{:?}", status.code()).to_uppercase();
            return Self::new(http_status_of_grpc(status.code()), &code, status.message().to_string());
        };
        let mut e = Self::new(http_status(&detail.code), &detail.code, detail.message);
        if !detail.field.is_empty() {
            e.field = Some(detail.field);
        }
        if detail.code == "NOT_LEADER" {
            let m = api.raft.metrics().borrow().clone();
            let http_addr = m
                .membership_config
                .membership()
                .get_node(&detail.leader_id)
                .map(|n| n.http_addr.clone())
                .unwrap_or_default();
            e.message = format!("this node is not the leader; the leader is node {} at {http_addr}", detail.leader_id);
            e.leader = Some(Box::new(LeaderRef { id: detail.leader_id, grpc_addr: detail.leader_addr, http_addr }));
        }
        e
    }
}

/// DESIGN §5's table: stable code → HTTP status.
fn http_status(code: &str) -> StatusCode {
    match code {
        "INVALID_ARGUMENT" => StatusCode::BAD_REQUEST,
        "LIMIT_MISMATCH" | "FENCED_OUT" | "REQUEST_FINISHED" => StatusCode::CONFLICT,
        "LEASE_NOT_FOUND" => StatusCode::NOT_FOUND,
        "RESOURCE_EXHAUSTED" => StatusCode::TOO_MANY_REQUESTS,
        "NOT_LEADER" | "NO_LEADER" => StatusCode::SERVICE_UNAVAILABLE,
        "UNAUTHENTICATED" => StatusCode::UNAUTHORIZED,
        "PERMISSION_DENIED" => StatusCode::FORBIDDEN,
        "COMPACTED" => StatusCode::GONE,
        "QUORUM_AT_RISK" => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn http_status_of_grpc(code: tonic::Code) -> StatusCode {
    use tonic::Code;
    match code {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(&self)).into_response()
    }
}

/// The caller's `Authorization` header, handed on to the gRPC handler as its request metadata,
/// so the HTTP API enforces `--auth-config` exactly as gRPC does.
pub struct Auth(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Auth {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        // A header that is not ASCII is no token at all: the handler answers UNAUTHENTICATED.
        let value = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        Ok(Auth(value))
    }
}

impl Auth {
    /// A gRPC request carrying the caller's credentials.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        if let Some(v) = &self.0 {
            r.metadata_mut().insert("authorization", v.clone());
        }
        r
    }
}

/// A handler's result: JSON on success.
pub type Reply<T> = Result<axum::Json<T>, HttpError>;

/// Runs a gRPC handler's result through the error translation.
fn grpc<T>(api: &Api, r: Result<tonic::Response<T>, tonic::Status>) -> Result<T, HttpError> {
    r.map(tonic::Response::into_inner).map_err(|s| HttpError::from_status(s, api))
}
