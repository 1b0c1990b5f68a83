//! Connections to the cluster: endpoints, one channel per node, the leader cache, and the retry
//! loop every call goes through (one-hop redirects, rotation, backoff with jitter, deadline).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

use crate::error::{classify, Error, Failure};

/// How the client backs off between attempts when no node can answer (nodes down, an election,
/// a partition). The n-th pause is a random duration between zero and
/// `min(initial × 2ⁿ, max)` ("full jitter"), and every pause ends at the call's deadline.
///
/// ```
/// use std::time::Duration;
/// let policy = tenure::RetryPolicy { initial_backoff: Duration::from_millis(20), max_backoff: Duration::from_millis(500) };
/// let c = tenure::Client::builder().retry(policy);
/// # drop(c);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first pause's upper bound.
    pub initial_backoff: Duration,
    /// The largest upper bound a pause can reach.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 20 ms, doubling up to 250 ms: an election takes 750–1000 ms with the server's default timings,
    /// and a longer pause would add up to itself to every failover the client sees
    /// (docs/BENCHMARKS.md, failover).
    fn default() -> Self {
        RetryPolicy { initial_backoff: Duration::from_millis(20), max_backoff: Duration::from_millis(250) }
    }
}

pub(crate) struct Backoff {
    policy: RetryPolicy,
    ceiling: Duration,
}

impl Backoff {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        // A zero backoff would make the retry loops spin.
        let initial_backoff = policy.initial_backoff.max(Duration::from_millis(1));
        let policy = RetryPolicy { initial_backoff, max_backoff: policy.max_backoff.max(initial_backoff) };
        Backoff { policy, ceiling: policy.initial_backoff }
    }

    /// The next pause, with full jitter.
    pub(crate) fn next_pause(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (self.ceiling * 2).min(self.policy.max_backoff);
        let ms = ceiling.as_millis().min(u64::MAX as u128) as u64;
        Duration::from_millis(rand::thread_rng().gen_range(0..=ms))
    }

    pub(crate) fn reset(&mut self) {
        self.ceiling = self.policy.initial_backoff;
    }
}

/// HTTP/2 receive window of each connection. h2 drops a connection (GOAWAY ENHANCE_YOUR_CALM)
/// once the small DATA frames it holds unread would cost more than half this window at 256
/// bytes apiece; thousands of waiters answered QUEUED at once are thousands of small replies,
/// and hyper's default (5 MiB) allows about 10,000 of them. Matches the server's window.
const CONNECTION_WINDOW_BYTES: u32 = 16 * 1024 * 1024;

/// Which nodes can answer a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Writes, renewals and linearizable reads: only the leader. A success confirms the leader.
    Leader,
    /// Stale reads and status: any node.
    Any,
}

/// The connection state shared by a client, its guards and its keepalive task.
pub(crate) struct Conn {
    /// Endpoint URIs as given, each `http(s)://host:port`.
    endpoints: Vec<String>,
    channels: Mutex<HashMap<String, Channel>>,
    leader: Mutex<Option<String>>,
    cursor: AtomicUsize,
    tls: Option<ClientTlsConfig>,
    auth: Option<MetadataValue<Ascii>>,
    connect_timeout: Duration,
    pub(crate) retry: RetryPolicy,
}

pub(crate) struct ConnConfig {
    pub endpoints: Vec<String>,
    pub tls_ca_pem: Option<Vec<u8>>,
    pub bearer_token: Option<String>,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
}

/// `host:port` → `http://host:port` (`https` when TLS is configured); URIs are kept.
pub(crate) fn normalize_endpoint(endpoint: &str, tls: bool) -> Result<String, Error> {
    let e = endpoint.trim().trim_end_matches('/');
    if e.is_empty() {
        return Err(Error::invalid("endpoints", "an endpoint is empty (expected host:port or http(s)://host:port)"));
    }
    let uri = if e.starts_with("http://") || e.starts_with("https://") {
        e.to_string()
    } else if e.contains("://") {
        return Err(Error::invalid("endpoints", format!("endpoint {e:?}: only http:// and https:// are supported")));
    } else if tls {
        format!("https://{e}")
    } else {
        format!("http://{e}")
    };
    Endpoint::from_shared(uri.clone())
        .map_err(|err| Error::invalid("endpoints", format!("endpoint {endpoint:?} is not a valid address: {err}")))?;
    Ok(uri)
}

impl Conn {
    pub(crate) fn new(config: ConnConfig) -> Result<Conn, Error> {
        let tls = config
            .tls_ca_pem
            .as_ref()
            .map(|pem| ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(pem.clone())));
        let endpoints =
            config.endpoints.iter().map(|e| normalize_endpoint(e, tls.is_some())).collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(Error::invalid("endpoints", "no endpoints given"));
        }
        let auth = match config.bearer_token {
            Some(token) => Some(
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| Error::invalid("bearer_token", "the bearer token must be printable ASCII"))?,
            ),
            None => None,
        };
        Ok(Conn {
            endpoints,
            channels: Mutex::new(HashMap::new()),
            leader: Mutex::new(None),
            cursor: AtomicUsize::new(0),
            tls,
            auth,
            connect_timeout: config.connect_timeout,
            retry: config.retry,
        })
    }

    pub(crate) fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The node to try next: the cached leader, else the endpoint under the cursor.
    pub(crate) fn target(&self) -> String {
        if let Some(l) = lock(&self.leader).clone() {
            return l;
        }
        let i = self.cursor.load(Ordering::Relaxed) % self.endpoints.len();
        self.endpoints[i].clone()
    }

    /// The channel to `uri`, created on first use. Channels connect lazily and reconnect by
    /// themselves; HTTP/2 pings find connections that went silent.
    pub(crate) fn channel(&self, uri: &str) -> Result<Channel, Error> {
        let mut channels = lock(&self.channels);
        if let Some(c) = channels.get(uri) {
            return Ok(c.clone());
        }
        let mut endpoint = Endpoint::from_shared(uri.to_string())
            .map_err(|e| Error::invalid("endpoints", format!("{uri:?} is not a valid address: {e}")))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(2))
            .keep_alive_while_idle(true);
        if uri.starts_with("https://") {
            let tls = self.tls.clone().ok_or_else(|| {
                Error::invalid("tls_ca_file", format!("{uri} uses https; give the cluster's CA certificate"))
            })?;
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| Error::invalid("tls_ca_file", format!("TLS setup for {uri} failed: {e}")))?;
        }
        let channel = endpoint.connect_lazy();
        channels.insert(uri.to_string(), channel.clone());
        Ok(channel)
    }

    /// Wraps a message, adding the bearer token when one is configured.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        let mut r = Request::new(message);
        if let Some(auth) = &self.auth {
            r.metadata_mut().insert("authorization", auth.clone());
        }
        r
    }

    pub(crate) fn set_leader(&self, uri: String) {
        *lock(&self.leader) = Some(uri);
    }

    /// `uri` answered a leader-only call: remember it as the leader.
    fn confirm_leader(&self, uri: &str) {
        let mut leader = lock(&self.leader);
        if leader.as_deref() != Some(uri) {
            *leader = Some(uri.to_string());
        }
    }

    /// `uri` could not answer: forget it as leader, and move the cursor past it if it points
    /// there (once, however many calls fail on it at the same time).
    pub(crate) fn forget(&self, uri: &str) {
        let mut leader = lock(&self.leader);
        if leader.as_deref() == Some(uri) {
            *leader = None;
        }
        drop(leader);
        let cursor = self.cursor.load(Ordering::Relaxed);
        if self.endpoints[cursor % self.endpoints.len()] == uri {
            let _ = self.cursor.compare_exchange(cursor, cursor.wrapping_add(1), Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// The address a NOT_LEADER answer names, as a URI with this client's scheme.
    pub(crate) fn leader_uri(&self, leader_addr: &str) -> Option<String> {
        normalize_endpoint(leader_addr, self.tls.is_some()).ok()
    }

    /// Runs `attempt` against the right node until it gives a definite answer or `timeout`
    /// passes: follows a NOT_LEADER redirect in one hop, rotates endpoints and backs off (with
    /// jitter) when a node cannot answer. Each attempt gets a fresh channel clone, and every
    /// retry repeats the same request, so calls must be idempotent (tenure's are: acquire and
    /// release by request_id, the rest are reads or last-writer-wins KV writes).
    pub(crate) async fn call<T, F, Fut>(
        &self,
        what: &str,
        route: Route,
        timeout: Duration,
        mut attempt: F,
    ) -> Result<T, Error>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let deadline = Instant::now() + timeout;
        let mut backoff = Backoff::new(self.retry);
        let mut redirects = 0;
        let mut last = String::from("no attempt finished");
        loop {
            let uri = self.target();
            let channel = self.channel(&uri)?;
            let failure = match tokio::time::timeout_at(deadline, attempt(channel)).await {
                Err(_) => {
                    // The node took the whole deadline: the next call should try another.
                    self.forget(&uri);
                    return Err(Error::Unavailable(format!(
                        "{what}: no answer within {timeout:?} (waiting for {uri}; before that: {last})"
                    )));
                }
                Ok(Ok(value)) => {
                    if route == Route::Leader {
                        self.confirm_leader(&uri);
                    }
                    return Ok(value);
                }
                Ok(Err(status)) => classify(&status),
            };
            match failure {
                Failure::Final(e) => return Err(e),
                Failure::Redirect { leader_addr, message } => {
                    last = format!("{uri}: {message}");
                    match self.leader_uri(&leader_addr) {
                        Some(leader) if leader != uri && redirects < 2 => {
                            redirects += 1;
                            self.set_leader(leader);
                            continue;
                        }
                        _ => self.forget(&uri),
                    }
                }
                Failure::Retry(message) => {
                    last = format!("{uri}: {message}");
                    self.forget(&uri);
                }
            }
            redirects = 0;
            let pause = backoff.next_pause();
            if Instant::now() + pause >= deadline {
                tokio::time::sleep_until(deadline).await;
                return Err(Error::Unavailable(format!("{what}: no node answered within {timeout:?}; last: {last}")));
            }
            tokio::time::sleep(pause).await;
        }
    }
}

/// Locks a mutex, recovering the data if a thread panicked while holding it (the data here is
/// always left consistent: plain assignments).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_a_scheme_and_bad_ones_name_the_field() {
        assert_eq!(normalize_endpoint("127.0.0.1:7070", false).ok(), Some("http://127.0.0.1:7070".into()));
        assert_eq!(normalize_endpoint("node1:7070", true).ok(), Some("https://node1:7070".into()));
        assert_eq!(normalize_endpoint("http://[::1]:7070/", false).ok(), Some("http://[::1]:7070".into()));
        for bad in ["", "  ", "ftp://x:1", "http://exa mple:1"] {
            match normalize_endpoint(bad, false) {
                Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "endpoints", "{bad:?}"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn backoff_grows_to_its_ceiling_with_jitter_below_it() {
        let policy = RetryPolicy { initial_backoff: Duration::from_millis(10), max_backoff: Duration::from_millis(40) };
        let mut b = Backoff::new(policy);
        let bounds = [10, 20, 40, 40, 40];
        for bound in bounds {
            let p = b.next_pause();
            assert!(p <= Duration::from_millis(bound), "{p:?} > {bound} ms");
        }
        b.reset();
        assert!(b.next_pause() <= Duration::from_millis(10));
        let zero = RetryPolicy { initial_backoff: Duration::ZERO, max_backoff: Duration::ZERO };
        let b = Backoff::new(zero);
        assert_eq!(b.ceiling, Duration::from_millis(1), "a zero policy cannot make a loop spin");
    }

    #[test]
    fn the_leader_is_tried_first_and_forgotten_when_it_fails() {
        let conn = Conn::new(ConnConfig {
            endpoints: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
            tls_ca_pem: None,
            bearer_token: Some("secret".into()),
            connect_timeout: Duration::from_secs(1),
            retry: RetryPolicy::default(),
        })
        .expect("conn");
        assert_eq!(conn.target(), "http://127.0.0.1:1");
        conn.set_leader("http://127.0.0.1:3".into());
        assert_eq!(conn.target(), "http://127.0.0.1:3");
        conn.forget("http://127.0.0.1:3");
        assert_eq!(conn.target(), "http://127.0.0.1:1", "without a leader, the endpoints in turn");
        conn.forget("http://127.0.0.1:1");
        conn.forget("http://127.0.0.1:1");
        assert_eq!(conn.target(), "http://127.0.0.1:2", "two failures of one node move the cursor once");
        conn.forget("http://127.0.0.1:2");
        assert_eq!(conn.target(), "http://127.0.0.1:1");
        let r = conn.request(());
        assert_eq!(r.metadata().get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer secret"));
    }
}
