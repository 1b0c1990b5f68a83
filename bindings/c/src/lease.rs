//! `tenure_lease_t`: taking a lock, the held lease, its lost-lease callback, renew and release.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use tenure_core::{blocking, Error};

use crate::client::TenureClient;
use crate::ffi::{self, call, invalid, non_null, ok, opt_str_arg, out_ptr, str_arg, write_opt};
use crate::status::{TenureStatus, TENURE_BUSY};

/// `wait_ms` value that waits until the lock is granted, however long it takes.
pub const TENURE_WAIT_FOREVER: i64 = -1;

/// Options of `tenure_acquire` and `tenure_try_acquire`. Fill it with
/// `tenure_acquire_options_default` and change what you need; every field is read.
#[repr(C)]
pub struct TenureAcquireOptions {
    /// The lease's time to live in ms (default 30000). The library renews it every ttl/3 while
    /// it is held or waiting. 0 is invalid; the server refuses TTLs below its minimum (1 s by
    /// default) and above its maximum (1 h).
    pub ttl_ms: u64,
    /// How long to wait for the lock, in ms: `TENURE_WAIT_FOREVER` (-1, the default) waits until
    /// granted, 0 tries once, N > 0 waits up to N ms. When the wait ends the request is withdrawn
    /// and the call returns `TENURE_TIMEOUT`. Other negative values are invalid.
    /// `tenure_try_acquire` ignores it.
    pub wait_ms: i64,
    /// Nonzero: take the lock SHARED, with up to `limit` holders at once (a read lock, or a
    /// counting semaphore). 0 (the default): EXCLUSIVE.
    pub shared: i32,
    /// The SHARED limit (0 = unlimited). The first SHARED request on a free lock sets it; a later
    /// one with another limit fails with `TENURE_LIMIT_MISMATCH`. Must be 0 when not shared.
    pub limit: u32,
    /// After this lease *expires* (not after a release), nobody gets the lock for this many ms
    /// (<= 60000; default 0).
    pub lock_delay_ms: u64,
    /// Owner text for this lease only. NULL (the default): the client's. Borrowed: read during
    /// the call only.
    pub owner: *const c_char,
}

/// A held lease. Opaque; made by `tenure_acquire` / `tenure_try_acquire`, freed by
/// `tenure_lease_free`. While it exists (and is not released or lost) the library renews it in
/// the background.
///
/// Thread safety: a lease handle may be used from several threads at once; free it once, when
/// no other thread uses it any more. It stays usable after its client is freed.
pub struct TenureLease {
    guard: blocking::LockGuard,
    name: CString,
    request_id: CString,
    on_lost: Arc<LostCallback>,
}

/// Called once, on a library thread, when a lease is lost (see `tenure_lease_on_lost`).
pub type TenureLostFn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// Fills `options` with the defaults: ttl 30000 ms, wait forever, exclusive, limit 0, no
/// lock-delay, the client's owner. NULL is a no-op.
///
/// Ownership: `options` is the caller's; only written.
#[no_mangle]
pub unsafe extern "C" fn tenure_acquire_options_default(options: *mut TenureAcquireOptions) {
    ffi::value((), || unsafe {
        write_opt(
            options,
            TenureAcquireOptions {
                ttl_ms: 30_000,
                wait_ms: TENURE_WAIT_FOREVER,
                shared: 0,
                limit: 0,
                lock_delay_ms: 0,
                owner: std::ptr::null(),
            },
        )
    })
}

/// Takes lock `name` (1..=512 bytes of UTF-8), waiting as `options->wait_ms` says (`options`
/// may be NULL: the defaults, which wait until granted). While it waits, the request keeps its
/// place in the FIFO queue across leader changes. Returns `TENURE_OK` with the lease,
/// `TENURE_TIMEOUT` when the wait ended first (the request is withdrawn; a wait of 0 on a busy
/// lock ends at once), or an error.
///
/// Ownership: `client`, `name` and `options` are borrowed for this call. On `TENURE_OK`,
/// `*lease_out` receives a new lease the caller owns and frees with `tenure_lease_free`.
#[no_mangle]
pub unsafe extern "C" fn tenure_acquire(
    client: *const TenureClient,
    name: *const c_char,
    options: *const TenureAcquireOptions,
    lease_out: *mut *mut TenureLease,
) -> TenureStatus {
    call(|| unsafe {
        let out = out_ptr(lease_out, "lease_out")?;
        let builder = builder(client, name, options, false)?;
        let guard = builder.acquire()?;
        out.write(TenureLease::new(guard));
        ok()
    })
}

/// Takes lock `name` only if it is free now; never waits (`options->wait_ms` is ignored).
/// Returns `TENURE_OK` with the lease, `TENURE_BUSY` (not an error; nothing to free) when the
/// lock is held or has waiters, or an error.
///
/// Ownership: as `tenure_acquire`; `*lease_out` is written only on `TENURE_OK`.
#[no_mangle]
pub unsafe extern "C" fn tenure_try_acquire(
    client: *const TenureClient,
    name: *const c_char,
    options: *const TenureAcquireOptions,
    lease_out: *mut *mut TenureLease,
) -> TenureStatus {
    call(|| unsafe {
        let out = out_ptr(lease_out, "lease_out")?;
        let builder = builder(client, name, options, true)?;
        match builder.try_acquire()? {
            Some(guard) => {
                out.write(TenureLease::new(guard));
                ok()
            }
            None => ffi::outcome(TENURE_BUSY, "the lock is held or has waiters".into()),
        }
    })
}

unsafe fn builder(
    client: *const TenureClient,
    name: *const c_char,
    options: *const TenureAcquireOptions,
    is_try: bool,
) -> Result<blocking::LockBuilder, Error> {
    let client = unsafe { non_null(client, "client") }?;
    let name = unsafe { str_arg(name, "name") }?;
    let mut b = client.inner.lock(name);
    let Some(o) = (unsafe { options.as_ref() }) else { return Ok(b) };
    b = b.ttl(Duration::from_millis(o.ttl_ms)).lock_delay(Duration::from_millis(o.lock_delay_ms));
    if !is_try {
        b = match o.wait_ms {
            TENURE_WAIT_FOREVER => b.wait_forever(),
            ms if ms >= 0 => b.wait(Duration::from_millis(ms.unsigned_abs())),
            ms => return Err(invalid("wait_ms", format!("wait_ms must be >= 0, or -1 to wait forever; got {ms}"))),
        };
    }
    if o.shared != 0 {
        b = b.shared(o.limit);
    } else if o.limit != 0 {
        return Err(invalid(
            "limit",
            format!("limit applies to shared acquires only; got {} with shared = 0", o.limit),
        ));
    }
    if let Some(owner) = unsafe { opt_str_arg(o.owner, "owner") }? {
        b = b.owner(owner);
    }
    Ok(b)
}

impl TenureLease {
    fn new(guard: blocking::LockGuard) -> *mut TenureLease {
        // Names and ids come from C strings (and ULIDs), so they have no NUL inside.
        let name = CString::new(guard.name()).unwrap_or_default();
        let request_id = CString::new(guard.request_id()).unwrap_or_default();
        let lease = TenureLease { guard, name, request_id, on_lost: Arc::new(LostCallback::default()) };
        Box::into_raw(Box::new(lease))
    }
}

/// The fencing token of this grant: unique, and higher than every earlier grant's in the
/// cluster. Pass it to whatever the lock protects, so it can refuse a stale holder. 0 if
/// `lease` is NULL (no grant has token 0).
///
/// Ownership: `lease` is borrowed.
#[no_mangle]
pub unsafe extern "C" fn tenure_lease_token(lease: *const TenureLease) -> u64 {
    ffi::value(0, || unsafe { lease.as_ref() }.map_or(0, |l| l.guard.token()))
}

/// The lock's name. NULL if `lease` is NULL.
///
/// Ownership: borrowed from `lease`; valid until `tenure_lease_free(lease)`. Never free it.
#[no_mangle]
pub unsafe extern "C" fn tenure_lease_name(lease: *const TenureLease) -> *const c_char {
    ffi::value(std::ptr::null(), || unsafe { lease.as_ref() }.map_or(std::ptr::null(), |l| l.name.as_ptr()))
}

/// The lease's request id (a ULID): with the name, its handle on the server, for
/// `tenure_release_request` and the CLI's `tenure release NAME REQUEST_ID`. NULL if `lease` is
/// NULL.
///
/// Ownership: borrowed from `lease`; valid until `tenure_lease_free(lease)`. Never free it.
#[no_mangle]
pub unsafe extern "C" fn tenure_lease_request_id(lease: *const TenureLease) -> *const c_char {
    ffi::value(std::ptr::null(), || unsafe { lease.as_ref() }.map_or(std::ptr::null(), |l| l.request_id.as_ptr()))
}

/// Until when the library is sure the lease is held, unless a renewal is confirmed before: the
/// send time of its last confirmed renewal plus 90% of the TTL, in ms since the Unix epoch
/// (wall clock). It moves forward with every renewal. 0 if `lease` is NULL.
///
/// Ownership: `lease` is borrowed.
#[no_mangle]
pub unsafe extern "C" fn tenure_lease_expires_at_ms(lease: *const TenureLease) -> u64 {
    ffi::value(0, || {
        let Some(l) = (unsafe { lease.as_ref() }) else { return 0 };
        let since_epoch = l.guard.expires_at().duration_since(UNIX_EPOCH).unwrap_or_default();
        u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
    })
}

/// Whether the lease is held: granted, not released, not lost, and its last confirmed renewal
/// is recent enough. Check it before acting as the holder. False if `lease` is NULL.
///
/// Ownership: `lease` is borrowed.
#[no_mangle]
pub unsafe extern "C" fn tenure_lease_is_held(lease: *const TenureLease) -> bool {
    ffi::value(false, || unsafe { lease.as_ref() }.is_some_and(|l| l.guard.is_held()))
}

/// Sets the function called when the lease is lost or in doubt (the leader reported it gone, or
/// no renewal was confirmed within 90% of the TTL), before the server can grant the lock to
/// anyone else. It is called at most once, on a library thread, with `user_data`; at once (on a
/// library thread) if the lease is lost already. It is never called after a clean release, or
/// once `tenure_lease_free` has returned. A later call replaces the function (and may call the
/// new one, once, if the lease is lost); NULL removes it.
///
/// The callback must be quick and must not block, throw or longjmp. It must not call the
/// blocking functions (acquire, release, renew, KV, ...): they return `TENURE_INTERNAL` there.
/// Signalling another thread (a pipe, a condition variable, `kill`) is the intended use;
/// `tenure_lease_is_held`, `tenure_lease_token` and `tenure_lease_free` are allowed.
///
/// Ownership: `lease` is borrowed. `user_data` is the caller's and must stay valid until the
/// callback has run or `tenure_lease_free(lease)` has returned.
#[no_mangle]
pub unsafe extern "C" fn tenure_lease_on_lost(
    lease: *const TenureLease,
    callback: TenureLostFn,
    user_data: *mut c_void,
) -> TenureStatus {
    call(|| unsafe {
        let lease = non_null(lease, "lease")?;
        *lease.on_lost.slot() = callback.map(|f| (f, UserData(user_data)));
        if callback.is_some() {
            // One waiter per registration: the slot, emptied by the first to fire, keeps the
            // call to one per registration, and a registration after the loss fires at once.
            let signal = lease.guard.lost_signal();
            let on_lost = lease.on_lost.clone();
            tenure_core::runtime().spawn(async move {
                if signal.wait().await {
                    // Off the runtime's workers: a slow callback must not stall the keepalives
                    // of every other lease in the process.
                    let _ = tenure_core::runtime().spawn_blocking(move || on_lost.fire()).await;
                }
            });
        }
        ok()
    })
}

/// Renews the lease now, on top of the background renewals. Returns `TENURE_LEASE_LOST` if the
/// lease is gone.
///
/// Ownership: `lease` is borrowed.
#[no_mangle]
pub unsafe extern "C" fn tenure_renew(lease: *const TenureLease) -> TenureStatus {
    call(|| unsafe {
        non_null(lease, "lease")?.guard.renew()?;
        ok()
    })
}

/// Releases the lock and waits for the leader to confirm. `*was_held` (may be NULL) is false
/// when the lease had already expired. Idempotent: after a confirmed release, later calls return
/// `TENURE_OK` with `*was_held` false; after an error, calling again retries. The lease is no
/// longer renewed either way. The handle still needs `tenure_lease_free`.
///
/// Ownership: `lease` is borrowed; `*was_held` is written only on `TENURE_OK`.
#[no_mangle]
pub unsafe extern "C" fn tenure_release(lease: *const TenureLease, was_held: *mut bool) -> TenureStatus {
    call(|| unsafe {
        let held = non_null(lease, "lease")?.guard.release()?;
        write_opt(was_held, held);
        ok()
    })
}

/// Frees a lease. NULL is a no-op. If it was not released, the release is sent in the
/// background (best effort, not waited for; `tenure_client_close` waits for it), and the lease
/// is no longer renewed. After it returns, its lost-lease callback is not running and will not
/// run (unless it is freed from inside its own callback).
///
/// Ownership: takes back `lease`, which must not be used afterwards (by any thread); strings
/// borrowed from it become invalid.
#[no_mangle]
pub unsafe extern "C" fn tenure_lease_free(lease: *mut TenureLease) {
    ffi::value((), || {
        if lease.is_null() {
            return;
        }
        let lease = unsafe { Box::from_raw(lease) };
        lease.on_lost.disarm();
        drop(lease);
    })
}

/// The caller's `user_data`. The caller promises it may be used from the library's thread.
struct UserData(*mut c_void);

// SAFETY: the pointer is only handed back to the caller's callback, as its documentation says.
unsafe impl Send for UserData {}

type Slot = Option<(unsafe extern "C" fn(*mut c_void), UserData)>;

/// A lease's lost-lease callback. The slot's mutex is held while the callback runs, so freeing
/// the lease (which empties the slot) waits for a running callback to return.
#[derive(Default)]
struct LostCallback {
    slot: Mutex<Slot>,
}

thread_local! {
    /// Set while this thread runs a lost-lease callback.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

impl LostCallback {
    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fire(&self) {
        let mut slot = self.slot();
        if let Some((f, data)) = slot.take() {
            IN_CALLBACK.with(|c| c.set(true));
            unsafe { f(data.0) };
            IN_CALLBACK.with(|c| c.set(false));
        }
    }

    /// Empties the slot, waiting for a running callback, except from inside a callback (which
    /// may be this very one, holding the lock).
    fn disarm(&self) {
        if IN_CALLBACK.with(Cell::get) {
            if let Ok(mut slot) = self.slot.try_lock() {
                *slot = None;
            }
        } else {
            *self.slot() = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ptr;

    use super::*;
    use crate::status::*;

    fn assert_invalid(status: TenureStatus, field: &str) {
        assert_eq!(status, TENURE_INVALID_ARGUMENT, "{field}");
        let message = unsafe { std::ffi::CStr::from_ptr(crate::tenure_last_error()) }.to_string_lossy();
        assert!(message.starts_with("INVALID_ARGUMENT: ") && message.contains(field), "{field}: {message}");
    }

    #[test]
    fn bad_arguments_are_refused_without_touching_the_network() {
        let mut client = ptr::null_mut();
        let endpoints = c"127.0.0.1:1";
        assert_eq!(unsafe { crate::tenure_client_new(endpoints.as_ptr(), ptr::null(), &mut client) }, TENURE_OK);
        let mut lease = ptr::null_mut();
        let mut opts = std::mem::MaybeUninit::uninit();
        unsafe { tenure_acquire_options_default(opts.as_mut_ptr()) };
        let mut opts = unsafe { opts.assume_init() };
        let name = c"job".as_ptr();
        unsafe {
            assert_invalid(tenure_acquire(ptr::null(), name, &opts, &mut lease), "client");
            assert_invalid(tenure_acquire(client, ptr::null(), &opts, &mut lease), "name");
            assert_invalid(tenure_acquire(client, c"".as_ptr(), &opts, &mut lease), "name");
            assert_invalid(tenure_acquire(client, name, &opts, ptr::null_mut()), "lease_out");
            opts.ttl_ms = 0;
            assert_invalid(tenure_acquire(client, name, &opts, &mut lease), "ttl");
            opts.ttl_ms = 30_000;
            opts.wait_ms = -2;
            assert_invalid(tenure_acquire(client, name, &opts, &mut lease), "wait_ms");
            opts.wait_ms = 0;
            opts.limit = 3;
            assert_invalid(tenure_try_acquire(client, name, &opts, &mut lease), "limit");
        }
        assert!(lease.is_null(), "no out-parameter is written on failure");
        unsafe { crate::tenure_client_free(client) };
    }
}
