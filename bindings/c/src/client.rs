//! `tenure_client_t`: making, closing and freeing a client, and the calls that are about the
//! cluster rather than one held lease (describe, list, fences, cluster status, release by id).

use std::ffi::c_char;
use std::time::Duration;

use tenure_core::{blocking, Consistency, Error};

use crate::ffi::{self, call, invalid, non_null, ok, opt_str_arg, out_ptr, str_arg, write_opt};
use crate::json;
use crate::status::TenureStatus;

/// A client of a tenure cluster: its endpoints, the leader it found, one keepalive stream for
/// all its leases. Opaque; made by `tenure_client_new`, freed by `tenure_client_free`.
///
/// Thread safety: a client handle is safe to share between threads and to use from many
/// threads at once (unlike a libcurl handle); calls block only their own thread.
pub struct TenureClient {
    pub(crate) inner: blocking::Client,
}

/// Settings of `tenure_client_new`. Fill it with `tenure_client_options_default` and change
/// what you need; every field is read.
#[repr(C)]
pub struct TenureClientOptions {
    /// Free text recorded with every lease (<= 256 bytes), shown by describe. NULL: the default,
    /// `hostname:pid`. Borrowed: read during `tenure_client_new` only.
    pub owner: *const c_char,
    /// How long one call may take, retries included, in ms (default 5000; 0 is invalid). Lock
    /// waits (`wait_ms`) come on top of it.
    pub timeout_ms: u64,
    /// How long opening a connection to one node may take, in ms (default 2000; 0 is invalid).
    pub connect_timeout_ms: u64,
    /// Path of a PEM file with the CA certificate(s) of the nodes; endpoints without a scheme
    /// then use https. NULL: plain connections. Borrowed: read during `tenure_client_new` only.
    pub tls_ca_file: *const c_char,
    /// A bearer token sent with every call. NULL: none. Borrowed: read during
    /// `tenure_client_new` only.
    pub bearer_token: *const c_char,
}

/// Fills `options` with the defaults: owner NULL (`hostname:pid`), timeout 5000 ms, connect
/// timeout 2000 ms, no TLS CA file, no bearer token. NULL is a no-op.
///
/// Ownership: `options` is the caller's; only written.
#[no_mangle]
pub unsafe extern "C" fn tenure_client_options_default(options: *mut TenureClientOptions) {
    ffi::value((), || unsafe {
        write_opt(
            options,
            TenureClientOptions {
                owner: std::ptr::null(),
                timeout_ms: 5_000,
                connect_timeout_ms: 2_000,
                tls_ca_file: std::ptr::null(),
                bearer_token: std::ptr::null(),
            },
        )
    })
}

/// Makes a client of the cluster at `endpoints`: a comma-separated list of `host:port` or
/// `http(s)://host:port` (one node is enough, all are better). NULL or `""`: the environment
/// variable `TENURE_ENDPOINTS`, else `127.0.0.1:7070`. `options` may be NULL (defaults).
///
/// It checks the settings but contacts no node: a client can be made before the cluster is up;
/// the first call finds the leader.
///
/// Ownership: `endpoints` and `options` (and the strings in it) are borrowed for this call. On
/// `TENURE_OK`, `*out` receives a new client that the caller owns and frees with
/// `tenure_client_free`.
#[no_mangle]
pub unsafe extern "C" fn tenure_client_new(
    endpoints: *const c_char,
    options: *const TenureClientOptions,
    out: *mut *mut TenureClient,
) -> TenureStatus {
    call(|| unsafe {
        let out = out_ptr(out, "out")?;
        let endpoints: Vec<String> = opt_str_arg(endpoints, "endpoints")?
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let mut builder = tenure_core::Client::builder().endpoints(endpoints);
        if let Some(o) = options.as_ref() {
            if o.timeout_ms == 0 {
                return Err(invalid("timeout_ms", "timeout_ms must be > 0"));
            }
            if o.connect_timeout_ms == 0 {
                return Err(invalid("connect_timeout_ms", "connect_timeout_ms must be > 0"));
            }
            builder = builder
                .timeout(Duration::from_millis(o.timeout_ms))
                .connect_timeout(Duration::from_millis(o.connect_timeout_ms));
            if let Some(owner) = opt_str_arg(o.owner, "owner")? {
                builder = builder.owner(owner);
            }
            if let Some(path) = opt_str_arg(o.tls_ca_file, "tls_ca_file")? {
                builder = builder.tls_ca_file(path);
            }
            if let Some(token) = opt_str_arg(o.bearer_token, "bearer_token")? {
                builder = builder.bearer_token(token);
            }
        }
        let client = builder.connect_blocking()?;
        out.write(Box::into_raw(Box::new(TenureClient { inner: client })));
        ok()
    })
}

/// Releases every lease this client still holds or waits for (including leases whose handles
/// were freed without `tenure_release`, whose release otherwise runs in the background) and
/// waits for the server to confirm, each release bounded by the call timeout. Call it before a
/// short-lived process exits, so nothing it held outlives it until a TTL runs out. The client
/// stays usable; its leases report not held.
///
/// Ownership: `client` is borrowed.
#[no_mangle]
pub unsafe extern "C" fn tenure_client_close(client: *const TenureClient) -> TenureStatus {
    call(|| unsafe {
        let client = non_null(client, "client")?.inner.as_async().clone();
        block_on_runtime(async move { client.close().await })?;
        ok()
    })
}

/// Frees a client. NULL is a no-op. It does not release anything: leases made by this client
/// stay valid (and renewed) until they are released or freed themselves.
///
/// Ownership: takes back `client`, which must not be used afterwards (by any thread).
#[no_mangle]
pub unsafe extern "C" fn tenure_client_free(client: *mut TenureClient) {
    ffi::value((), || {
        if !client.is_null() {
            drop(unsafe { Box::from_raw(client) });
        }
    })
}

/// Releases lease `request_id` of lock `name` by its ids, e.g. a lease another process took
/// and handed over. Idempotent. `*was_held` (may be NULL) tells whether it was still held.
///
/// Ownership: every argument is borrowed; `*was_held` is written only on `TENURE_OK`.
#[no_mangle]
pub unsafe extern "C" fn tenure_release_request(
    client: *const TenureClient,
    name: *const c_char,
    request_id: *const c_char,
    was_held: *mut bool,
) -> TenureStatus {
    call(|| unsafe {
        let client = non_null(client, "client")?;
        let name = str_arg(name, "name")?;
        let request_id = str_arg(request_id, "request_id")?;
        let held = client.inner.release(name, request_id)?;
        write_opt(was_held, held);
        ok()
    })
}

/// Holders, waiters and limit of lock `name`, read linearizably, as a JSON object (the shape of
/// `tenure --output json describe NAME`): `{"name", "exists", "limit", "delayed_until",
/// "holders": [{"name", "token", "request_id", "owner", "mode", "ttl_ms", "granted_at",
/// "expires_at"}], "waiters": [{"position", "request_id", "owner", "mode", "ttl_ms",
/// "enqueued_at"}]}`; times are RFC 3339 strings in UTC.
///
/// Ownership: `client` and `name` are borrowed. On `TENURE_OK`, `*json_out` receives a
/// NUL-terminated string the caller frees with `tenure_string_free`.
#[no_mangle]
pub unsafe extern "C" fn tenure_describe_json(
    client: *const TenureClient,
    name: *const c_char,
    json_out: *mut *mut c_char,
) -> TenureStatus {
    call(|| unsafe {
        let client = non_null(client, "client")?;
        let name = str_arg(name, "name")?;
        let out = out_ptr(json_out, "json_out")?;
        let d = client.inner.describe(name, Consistency::Linearizable)?;
        out.write(ffi::malloc_bytes(json::description(name, &d).as_bytes())?);
        ok()
    })
}

/// Every lock whose name starts with `prefix` (`""` or NULL: all), as JSON:
/// `{"locks": [{"name", "holders", "waiters", "mode", "limit"}]}`.
///
/// Ownership: `client` and `prefix` are borrowed. On `TENURE_OK`, `*json_out` receives a
/// NUL-terminated string the caller frees with `tenure_string_free`.
#[no_mangle]
pub unsafe extern "C" fn tenure_list_json(
    client: *const TenureClient,
    prefix: *const c_char,
    json_out: *mut *mut c_char,
) -> TenureStatus {
    call(|| unsafe {
        let client = non_null(client, "client")?;
        let prefix = opt_str_arg(prefix, "prefix")?.unwrap_or("");
        let out = out_ptr(json_out, "json_out")?;
        let locks = client.inner.list(prefix)?;
        out.write(ffi::malloc_bytes(json::summaries(&locks).as_bytes())?);
        ok()
    })
}

/// Whether `token` is a current hold of lock `name`: `*current` is true if so. A resource that
/// receives work stamped with a token can ask this before accepting it.
///
/// Ownership: `client` and `name` are borrowed; `*current` is written only on `TENURE_OK`.
#[no_mangle]
pub unsafe extern "C" fn tenure_validate_fence(
    client: *const TenureClient,
    name: *const c_char,
    token: u64,
    current: *mut bool,
) -> TenureStatus {
    call(|| unsafe {
        let client = non_null(client, "client")?;
        let name = str_arg(name, "name")?;
        let out = out_ptr(current, "current")?;
        let status = client.inner.validate_fence(name, token)?;
        out.write(status.current);
        ok()
    })
}

/// The cluster as the answering node sees it, as JSON (the shape of `tenure --output json
/// cluster status`): `{"node_id", "role", "leader_id", "leader_addr", "term", "cluster_id",
/// "quorum_size", "has_quorum", "commit_index", "applied_index", "last_log_index",
/// "snapshot_index", "purged_index", "members": [{"id", "role", "grpc_addr", "http_addr",
/// "matched_index"}]}`.
///
/// Ownership: `client` is borrowed. On `TENURE_OK`, `*json_out` receives a NUL-terminated
/// string the caller frees with `tenure_string_free`.
#[no_mangle]
pub unsafe extern "C" fn tenure_cluster_status_json(
    client: *const TenureClient,
    json_out: *mut *mut c_char,
) -> TenureStatus {
    call(|| unsafe {
        let client = non_null(client, "client")?;
        let out = out_ptr(json_out, "json_out")?;
        let s = client.inner.cluster_status()?;
        out.write(ffi::malloc_bytes(json::cluster(&s).as_bytes())?);
        ok()
    })
}

/// Runs `f` on the client runtime and blocks this thread until it is done, like the core's
/// blocking facade (which has no `close`). Refused on the runtime's own threads (a lost-lease
/// callback), where it would deadlock.
fn block_on_runtime<T: Send + 'static>(
    f: impl std::future::Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    if std::thread::current().name() == Some("tenure-client") {
        return Err(Error::Internal(
            "a blocking tenure call was made on the library's own thread (from a lost-lease callback), where it \
             would deadlock"
                .into(),
        ));
    }
    let handle = tenure_core::runtime().spawn(f);
    match futures::executor::block_on(handle) {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::Cancelled(format!("the client runtime stopped: {e}"))),
    }
}
