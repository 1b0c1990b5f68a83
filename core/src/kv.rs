//! The KV store: small replicated values whose writes can be fenced by a lock.

use tenure_proto::v1 as pb;
use tenure_proto::v1::kv_client::KvClient;

use crate::client::{route, Client};
use crate::conn::Route;
use crate::types::{Consistency, Fence, KvEntry};
use crate::Error;

/// The KV store of a cluster (keys ≤ 1 KiB, values ≤ 64 KiB). Made by [`Client::kv`].
///
/// A write with a [`Fence`] applies only if the fence's token is a current hold of its lock at
/// the write's place in the log, so a holder that lost its lock cannot overwrite its successor.
///
/// ```no_run
/// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
/// let guard = c.lock("leader-election").acquire().await?;
/// c.kv().put("leader", "node-a", Some(guard.fence())).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Kv {
    client: Client,
}

impl Kv {
    pub(crate) fn new(client: Client) -> Kv {
        Kv { client }
    }

    /// Writes `value` at `key`, if `fence` (when given) is current. Returns the write's
    /// revision (its log index). A retried write may be applied twice; the value is the same.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// let revision = c.kv().put("config/mode", "active", None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        fence: Option<Fence>,
    ) -> Result<u64, Error> {
        let req = pb::PutRequest {
            key: key.as_ref().to_vec(),
            value: value.as_ref().to_vec(),
            if_fence: fence.as_ref().map(Fence::to_pb),
        };
        let conn = &self.client.inner.conn;
        let r = conn
            .call("kv put", Route::Leader, self.client.inner.timeout, |ch| {
                let r = conn.request(req.clone());
                async move { KvClient::new(ch).put(r).await }
            })
            .await?;
        Ok(r.into_inner().revision)
    }

    /// The entry at `key`, read linearizably; `None` if there is none.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// let mode = c.kv().get("config/mode").await?.map(|e| e.value);
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<KvEntry>, Error> {
        self.get_with(key, Consistency::Linearizable).await
    }

    /// [`Kv::get`] with a chosen consistency.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// let e = c.kv().get_with("config/mode", tenure::Consistency::Stale).await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_with(&self, key: impl AsRef<[u8]>, consistency: Consistency) -> Result<Option<KvEntry>, Error> {
        let req = pb::GetRequest { key: key.as_ref().to_vec(), consistency: consistency.to_pb() };
        let conn = &self.client.inner.conn;
        let r = conn
            .call("kv get", route(consistency), self.client.inner.timeout, |ch| {
                let r = conn.request(req.clone());
                async move { KvClient::new(ch).get(r).await }
            })
            .await?
            .into_inner();
        Ok(r.found.then(|| KvEntry { key: req.key.clone(), value: r.value, revision: r.revision }))
    }

    /// Deletes `key`, if `fence` (when given) is current. Returns whether it existed.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// let existed = c.kv().delete("config/mode", None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, key: impl AsRef<[u8]>, fence: Option<Fence>) -> Result<bool, Error> {
        let req = pb::DeleteRequest { key: key.as_ref().to_vec(), if_fence: fence.as_ref().map(Fence::to_pb) };
        let conn = &self.client.inner.conn;
        let r = conn
            .call("kv delete", Route::Leader, self.client.inner.timeout, |ch| {
                let r = conn.request(req.clone());
                async move { KvClient::new(ch).delete(r).await }
            })
            .await?;
        Ok(r.into_inner().existed)
    }

    /// Every entry whose key starts with `prefix` (all pages), in byte order, read
    /// linearizably.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// for e in c.kv().list("config/").await? {
    ///     println!("{}", String::from_utf8_lossy(&e.key));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list(&self, prefix: impl AsRef<[u8]>) -> Result<Vec<KvEntry>, Error> {
        self.list_with(prefix, Consistency::Linearizable).await
    }

    /// [`Kv::list`] with a chosen consistency.
    ///
    /// ```no_run
    /// # async fn f(c: tenure::Client) -> Result<(), tenure::Error> {
    /// let all = c.kv().list_with("", tenure::Consistency::Stale).await?;
    /// # Ok(()) }
    /// ```
    pub async fn list_with(&self, prefix: impl AsRef<[u8]>, consistency: Consistency) -> Result<Vec<KvEntry>, Error> {
        let conn = &self.client.inner.conn;
        let mut all = Vec::new();
        let mut page_token = Vec::new();
        loop {
            let req = pb::ListKeysRequest {
                prefix: prefix.as_ref().to_vec(),
                page_size: 1000,
                page_token: page_token.clone(),
                consistency: consistency.to_pb(),
            };
            let r = conn
                .call("kv list", route(consistency), self.client.inner.timeout, |ch| {
                    let r = conn.request(req.clone());
                    async move { KvClient::new(ch).list(r).await }
                })
                .await?
                .into_inner();
            all.extend(r.items.into_iter().map(|i| KvEntry { key: i.key, value: i.value, revision: i.revision }));
            if r.next_page_token.is_empty() {
                return Ok(all);
            }
            page_token = r.next_page_token;
        }
    }
}
