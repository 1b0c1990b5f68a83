//! The core's client for JavaScript: one async method per call, each running the core's future
//! on the core's runtime. Arguments arrive checked for type (and defaulted) by sdk-node/index.js;
//! here they only become core types.

use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::errors::{invalid, to_napi};
use crate::lease::NativeLease;
use crate::runtime::{cancellable, on_core, CancelToken};
use crate::types::{ClusterStatus, FenceStatus, KvEntry, LockDescription, LockSummary};
use crate::watch::NativeWatch;

/// Milliseconds as a `Duration`; negative, NaN or infinite values are INVALID_ARGUMENT.
fn millis(field: &str, value: f64) -> std::result::Result<Duration, tenure::Error> {
    Duration::try_from_secs_f64(value / 1000.0)
        .map_err(|_| invalid(field, format!("{field} must be a finite number of milliseconds >= 0, got {value}")))
}

/// A fencing token or log index from a `bigint`: 0..=2^64-1.
fn token(field: &str, value: &BigInt) -> std::result::Result<u64, tenure::Error> {
    let (negative, v, lossless) = value.get_u64();
    if negative && v != 0 || !lossless {
        return Err(invalid(field, format!("{field} must be an integer in 0..=2^64-1")));
    }
    Ok(v)
}

/// The options of one acquire; an absent option takes the core's default.
#[napi(object)]
pub struct AcquireOptions {
    pub ttl_ms: Option<f64>,
    /// Absent: wait until granted. 0: try once.
    pub wait_ms: Option<f64>,
    pub shared: Option<bool>,
    pub limit: Option<u32>,
    pub lock_delay_ms: Option<f64>,
}

impl AcquireOptions {
    fn builder(self, client: &tenure::Client, name: String) -> std::result::Result<tenure::LockBuilder, tenure::Error> {
        let mut b = client.lock(name);
        if let Some(ttl) = self.ttl_ms {
            b = b.ttl(millis("ttlMs", ttl)?);
        }
        if let Some(delay) = self.lock_delay_ms {
            b = b.lock_delay(millis("lockDelayMs", delay)?);
        }
        let limit = self.limit.unwrap_or(0);
        if self.shared.unwrap_or(false) {
            b = b.shared(limit);
        } else if limit != 0 {
            return Err(invalid("limit", format!("limit applies only to shared locks (shared: true), got {limit}")));
        }
        match self.wait_ms {
            Some(w) => Ok(b.wait(millis("waitMs", w)?)),
            None => Ok(b.wait_forever()),
        }
    }
}

/// The options of a watch.
#[napi(object)]
pub struct WatchOptions {
    /// Watch every lock whose name starts with `name` (default false: the lock `name`).
    pub prefix: Option<bool>,
    /// Start at this log index (default: the next committed entry).
    pub from_index: Option<BigInt>,
}

/// `ifFence` of a KV write: the write applies only if `token` is a current hold of `name`.
#[napi(object)]
pub struct Fence {
    pub name: String,
    pub token: BigInt,
}

fn fence(f: Option<Fence>) -> std::result::Result<Option<tenure::Fence>, tenure::Error> {
    f.map(|f| Ok(tenure::Fence::new(f.name, token("ifFence.token", &f.token)?))).transpose()
}

/// A client of a tenure cluster (the core's `Client`). Share one per process.
#[napi]
pub struct NativeClient {
    inner: tenure::Client,
}

#[napi]
impl NativeClient {
    /// Checks the settings (and reads the CA file); contacts no node (connections open on first
    /// use). An empty `endpoints` means `TENURE_ENDPOINTS`, else `127.0.0.1:7070`.
    #[napi(constructor)]
    pub fn new(
        endpoints: Vec<String>,
        owner: Option<String>,
        timeout_ms: Option<f64>,
        tls_ca_file: Option<String>,
        bearer_token: Option<String>,
    ) -> Result<Self> {
        let mut b = tenure::Client::builder().endpoints(endpoints);
        if let Some(t) = timeout_ms {
            b = b.timeout(millis("timeoutMs", t).map_err(to_napi)?);
        }
        if let Some(owner) = owner {
            b = b.owner(owner);
        }
        if let Some(ca) = tls_ca_file {
            b = b.tls_ca_file(ca);
        }
        if let Some(token) = bearer_token {
            b = b.bearer_token(token);
        }
        // Built on the core's runtime, where its keepalive task then runs.
        let client = b.connect_blocking().map_err(to_napi)?;
        Ok(NativeClient { inner: client.as_async().clone() })
    }

    #[napi(getter)]
    pub fn owner(&self) -> String {
        self.inner.owner().to_string()
    }

    #[napi(getter)]
    pub fn timeout_ms(&self) -> f64 {
        self.inner.timeout().as_secs_f64() * 1000.0
    }

    /// Takes lock `name`, waiting as `options` say; `cancel` withdraws a waiting request.
    #[napi]
    pub async fn acquire(
        &self,
        name: String,
        options: Option<AcquireOptions>,
        cancel: Option<&CancelToken>,
    ) -> Result<NativeLease> {
        let client = self.inner.clone();
        let cancel = cancel.map(CancelToken::receiver);
        let opts = options.unwrap_or(AcquireOptions {
            ttl_ms: None,
            wait_ms: None,
            shared: None,
            limit: None,
            lock_delay_ms: None,
        });
        on_core(async move {
            let b = opts.builder(&client, name)?;
            Ok(NativeLease::new(cancellable(cancel, b.acquire()).await?))
        })
        .await
    }

    /// Takes lock `name` only if it is free now; `null` when it is not.
    #[napi]
    pub async fn try_acquire(
        &self,
        name: String,
        options: Option<AcquireOptions>,
        cancel: Option<&CancelToken>,
    ) -> Result<Option<NativeLease>> {
        let client = self.inner.clone();
        let cancel = cancel.map(CancelToken::receiver);
        let opts = options.unwrap_or(AcquireOptions {
            ttl_ms: None,
            wait_ms: None,
            shared: None,
            limit: None,
            lock_delay_ms: None,
        });
        on_core(async move {
            let b = opts.builder(&client, name)?;
            Ok(cancellable(cancel, b.try_acquire()).await?.map(NativeLease::new))
        })
        .await
    }

    #[napi]
    pub async fn describe(&self, name: String) -> Result<LockDescription> {
        let client = self.inner.clone();
        on_core(async move { Ok(LockDescription::new(name.clone(), client.describe(&name).await?)) }).await
    }

    #[napi]
    pub async fn list(&self, prefix: String) -> Result<Vec<LockSummary>> {
        let client = self.inner.clone();
        on_core(async move { Ok(client.list(&prefix).await?.into_iter().map(LockSummary::from).collect()) }).await
    }

    #[napi]
    pub async fn validate_fence(&self, name: String, token: BigInt) -> Result<FenceStatus> {
        let client = self.inner.clone();
        let token = self::token("token", &token).map_err(to_napi)?;
        on_core(async move { Ok(client.validate_fence(&name, token).await?.into()) }).await
    }

    #[napi]
    pub async fn kv_get(&self, key: Buffer) -> Result<Option<KvEntry>> {
        let kv = self.inner.kv();
        let key = key.to_vec();
        on_core(async move { Ok(kv.get(key).await?.map(KvEntry::from)) }).await
    }

    /// Writes `value` at `key` (if `if_fence` is current); resolves to the write's revision.
    #[napi]
    pub async fn kv_put(&self, key: Buffer, value: Buffer, if_fence: Option<Fence>) -> Result<BigInt> {
        let kv = self.inner.kv();
        let (key, value) = (key.to_vec(), value.to_vec());
        let fence = fence(if_fence).map_err(to_napi)?;
        on_core(async move { Ok(BigInt::from(kv.put(key, value, fence).await?)) }).await
    }

    /// Deletes `key` (if `if_fence` is current); resolves to whether it existed.
    #[napi]
    pub async fn kv_delete(&self, key: Buffer, if_fence: Option<Fence>) -> Result<bool> {
        let kv = self.inner.kv();
        let key = key.to_vec();
        let fence = fence(if_fence).map_err(to_napi)?;
        on_core(async move { kv.delete(key, fence).await }).await
    }

    #[napi]
    pub async fn kv_list(&self, prefix: Buffer) -> Result<Vec<KvEntry>> {
        let kv = self.inner.kv();
        let prefix = prefix.to_vec();
        on_core(async move { Ok(kv.list(prefix).await?.into_iter().map(KvEntry::from).collect()) }).await
    }

    #[napi]
    pub async fn cluster_status(&self) -> Result<ClusterStatus> {
        let client = self.inner.clone();
        on_core(async move { Ok(client.cluster_status().await?.into()) }).await
    }

    /// Opens a watch of lock `name` (or of every lock under the prefix `name`); resolves once
    /// the stream's start is pinned. `cancel` abandons the opening.
    #[napi]
    pub async fn watch(
        &self,
        name: String,
        options: Option<WatchOptions>,
        cancel: Option<&CancelToken>,
    ) -> Result<NativeWatch> {
        let client = self.inner.clone();
        let cancel = cancel.map(CancelToken::receiver);
        let (prefix, from_index) = match options {
            Some(o) => (o.prefix.unwrap_or(false), o.from_index),
            None => (false, None),
        };
        let from_index = from_index.map(|i| token("fromIndex", &i)).transpose().map_err(to_napi)?;
        on_core(async move {
            let builder = if prefix { client.watch_prefix(name) } else { client.watch(name) };
            let builder = match from_index {
                Some(index) => builder.from_index(index),
                None => builder,
            };
            Ok(NativeWatch::new(cancellable(cancel, builder.start()).await?))
        })
        .await
    }

    /// Releases every lease this client holds or waits for, and waits for background releases.
    #[napi]
    pub async fn close(&self) -> Result<()> {
        let client = self.inner.clone();
        on_core(async move { client.close().await }).await
    }
}
