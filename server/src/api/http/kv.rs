//! `/v1/kv`: the fenced key/value store. The key is the rest of the path (UTF-8, percent-decoded);
//! a value is sent as the raw request body and returned as text (when it is UTF-8) and base64.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Serialize;
use tenure_proto::v1 as pb;
use tenure_proto::v1::kv_server::Kv;

use super::body::Query;
use super::{grpc, Auth, HttpError, Reply, Shared};

pub fn routes() -> Router<Shared> {
    Router::new().route("/v1/kv", get(list)).route("/v1/kv/{*key}", get(get_key).put(put).delete(delete))
}

fn key(path: Result<Path<String>, PathRejection>) -> Result<Vec<u8>, HttpError> {
    path.map(|Path(k)| k.into_bytes()).map_err(|e| HttpError::invalid("key", format!("key: {}", e.body_text())))
}

/// `if_fence_name` and `if_fence_token`: both or neither.
fn fence(q: &mut Query) -> Result<Option<pb::Fence>, HttpError> {
    let name = q.text("if_fence_name");
    let token = q.number::<u64>("if_fence_token")?;
    match (name, token) {
        (None, None) => Ok(None),
        (Some(name), Some(token)) => Ok(Some(pb::Fence { name, token })),
        (Some(_), None) => Err(HttpError::invalid("if_fence_token", "if_fence_name needs if_fence_token")),
        (None, Some(_)) => Err(HttpError::invalid("if_fence_name", "if_fence_token needs if_fence_name")),
    }
}

#[derive(Serialize)]
struct PutJson {
    revision: u64,
}

/// `PUT /v1/kv/{key}?if_fence_name=&if_fence_token=` with the value as the body.
async fn put(
    State(http): State<Shared>,
    auth: Auth,
    path: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
    value: Result<Bytes, BytesRejection>,
) -> Reply<PutJson> {
    let value = value?;
    let key = key(path)?;
    let mut q = Query::parse(q.as_deref())?;
    let if_fence = fence(&mut q)?;
    q.finish()?;
    let req = pb::PutRequest { key, value: value.to_vec(), if_fence };
    let r = grpc(&http.api, http.kv.put(auth.request(req)).await)?;
    Ok(Json(PutJson { revision: r.revision }))
}

#[derive(Serialize)]
struct ValueJson {
    key: String,
    found: bool,
    /// The value as text, when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    value_base64: String,
    revision: u64,
}

/// `GET /v1/kv/{key}?consistency=stale`.
async fn get_key(
    State(http): State<Shared>,
    auth: Auth,
    path: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Reply<ValueJson> {
    let key = key(path)?;
    let mut q = Query::parse(q.as_deref())?;
    let consistency = q.consistency()?;
    q.finish()?;
    let req = pb::GetRequest { key: key.clone(), consistency };
    let r = grpc(&http.api, http.kv.get(auth.request(req)).await)?;
    Ok(Json(ValueJson {
        key: String::from_utf8_lossy(&key).into_owned(),
        found: r.found,
        value_base64: BASE64.encode(&r.value),
        value: String::from_utf8(r.value).ok(),
        revision: r.revision,
    }))
}

#[derive(Serialize)]
struct DeleteJson {
    existed: bool,
}

/// `DELETE /v1/kv/{key}?if_fence_name=&if_fence_token=`.
async fn delete(
    State(http): State<Shared>,
    auth: Auth,
    path: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Reply<DeleteJson> {
    let key = key(path)?;
    let mut q = Query::parse(q.as_deref())?;
    let if_fence = fence(&mut q)?;
    q.finish()?;
    let r = grpc(&http.api, http.kv.delete(auth.request(pb::DeleteRequest { key, if_fence })).await)?;
    Ok(Json(DeleteJson { existed: r.existed }))
}

#[derive(Serialize)]
struct ItemJson {
    /// The key as text (lossy when it is not UTF-8; `key_base64` is exact).
    key: String,
    key_base64: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    value_base64: String,
    revision: u64,
}

#[derive(Serialize)]
struct KeysJson {
    items: Vec<ItemJson>,
    /// base64; empty on the last page.
    next_page_token: String,
}

/// `GET /v1/kv?prefix=&page_size=&page_token=&consistency=`.
async fn list(State(http): State<Shared>, auth: Auth, RawQuery(q): RawQuery) -> Reply<KeysJson> {
    let mut q = Query::parse(q.as_deref())?;
    let page_token = match q.text("page_token") {
        None => Vec::new(),
        Some(t) => BASE64
            .decode(t.as_bytes())
            .map_err(|e| HttpError::invalid("page_token", format!("page_token is not a token from a reply: {e}")))?,
    };
    let req = pb::ListKeysRequest {
        prefix: q.text("prefix").unwrap_or_default().into_bytes(),
        page_size: q.number("page_size")?.unwrap_or(0),
        page_token,
        consistency: q.consistency()?,
    };
    q.finish()?;
    let r = grpc(&http.api, http.kv.list(auth.request(req)).await)?;
    Ok(Json(KeysJson {
        items: r
            .items
            .into_iter()
            .map(|kv| ItemJson {
                key: String::from_utf8_lossy(&kv.key).into_owned(),
                key_base64: BASE64.encode(&kv.key),
                value_base64: BASE64.encode(&kv.value),
                value: String::from_utf8(kv.value).ok(),
                revision: kv.revision,
            })
            .collect(),
        next_page_token: BASE64.encode(&r.next_page_token),
    }))
}
