//! `tenure.v1.KV`.

use std::sync::Arc;

use prost::Message;
use tenure_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::auth::Right;
use super::error::ApiError;
use super::locks::page_size;
use super::Api;
use crate::lock::{limits, Command, CommandResult, Fence};

/// A List page stops short of `page_size` rather than grow past this many bytes: 1000 values of
/// 64 KiB would be 64 MiB, far beyond a default gRPC client's 4 MiB message limit. One item
/// (at most 1 KiB of key and 64 KiB of value) always fits.
const MAX_PAGE_BYTES: usize = 1024 * 1024;

pub struct KvService {
    api: Arc<Api>,
}

impl KvService {
    pub fn new(api: Arc<Api>) -> Self {
        Self { api }
    }

    async fn write(&self, cmd: Command) -> Result<CommandResult, ApiError> {
        self.api.require_leader()?;
        match self.api.proposer.propose(cmd).await? {
            (CommandResult::Refused(r), _) => Err(r.into()),
            (r, _) => Ok(r),
        }
    }

    /// A write needs `kv` on the key and, when fenced, `read` on the fencing lock (the answer
    /// tells whether a token of that lock is current).
    fn check_write<T>(&self, request: &Request<T>, key: &[u8], fence: Option<&pb::Fence>) -> Result<(), ApiError> {
        let caller = self.api.access.caller(request.metadata())?;
        caller.may(Right::Kv, key)?;
        if let Some(f) = fence {
            caller.may(Right::Read, f.name.as_bytes())?;
        }
        Ok(())
    }
}

fn fence(f: Option<pb::Fence>) -> Result<Option<Fence>, ApiError> {
    match f {
        None => Ok(None),
        Some(f) => {
            limits::check_name("if_fence.name", &f.name)?;
            Ok(Some(Fence { name: f.name, token: f.token }))
        }
    }
}

#[tonic::async_trait]
impl pb::kv_server::Kv for KvService {
    async fn put(&self, request: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        self.check_write(&request, &request.get_ref().key, request.get_ref().if_fence.as_ref())?;
        let r = request.into_inner();
        limits::check_key(&r.key).map_err(ApiError::from)?;
        limits::check_value(&r.value).map_err(ApiError::from)?;
        let cmd = Command::KvPut { key: r.key, value: r.value, if_fence: fence(r.if_fence)? };
        match self.write(cmd).await? {
            CommandResult::KvPut { revision } => Ok(Response::new(pb::PutResponse { revision })),
            other => Err(ApiError::Internal(format!("unexpected result {other:?}")).into()),
        }
    }

    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        self.api.access.check(request.metadata(), Right::Read, &request.get_ref().key)?;
        let r = request.into_inner();
        limits::check_key(&r.key).map_err(ApiError::from)?;
        self.api.read_barrier(r.consistency).await?;
        let state = self.api.state.read();
        Ok(Response::new(match state.table.kv_get(&r.key) {
            Some(e) => pb::GetResponse { found: true, value: e.value.clone(), revision: e.revision },
            None => pb::GetResponse::default(),
        }))
    }

    async fn delete(&self, request: Request<pb::DeleteRequest>) -> Result<Response<pb::DeleteResponse>, Status> {
        self.check_write(&request, &request.get_ref().key, request.get_ref().if_fence.as_ref())?;
        let r = request.into_inner();
        limits::check_key(&r.key).map_err(ApiError::from)?;
        let cmd = Command::KvDelete { key: r.key, if_fence: fence(r.if_fence)? };
        match self.write(cmd).await? {
            CommandResult::KvDelete { existed } => Ok(Response::new(pb::DeleteResponse { existed })),
            other => Err(ApiError::Internal(format!("unexpected result {other:?}")).into()),
        }
    }

    async fn list(&self, request: Request<pb::ListKeysRequest>) -> Result<Response<pb::ListKeysResponse>, Status> {
        self.api.access.check(request.metadata(), Right::Read, &request.get_ref().prefix)?;
        let r = request.into_inner();
        let page_size = page_size(r.page_size)?;
        if r.prefix.len() > limits::MAX_KEY_BYTES {
            return Err(
                ApiError::invalid("prefix", format!("prefix must be <= {} bytes", limits::MAX_KEY_BYTES)).into()
            );
        }
        self.api.read_barrier(r.consistency).await?;
        let state = self.api.state.read();
        let after = (!r.page_token.is_empty()).then_some(r.page_token.as_slice());
        let (page, mut next) = state.table.kv_list(&r.prefix, after, page_size);
        let mut items: Vec<pb::KeyValue> = Vec::with_capacity(page.len());
        let mut bytes = 0;
        for (k, e) in page {
            let item = pb::KeyValue { key: k.to_vec(), value: e.value.clone(), revision: e.revision };
            // Each item costs its own length plus a tag and a length prefix of at most 4 bytes.
            let len = item.encoded_len() + 4;
            if let Some(last) = items.last().filter(|_| bytes + len > MAX_PAGE_BYTES) {
                next = Some(last.key.clone());
                break;
            }
            bytes += len;
            items.push(item);
        }
        Ok(Response::new(pb::ListKeysResponse { items, next_page_token: next.unwrap_or_default() }))
    }
}
