//! The small replicated KV store, with fenced writes.

use std::ffi::c_char;

use tenure_core::{Error, Fence};

use crate::client::TenureClient;
use crate::ffi::{self, bytes_arg, call, non_null, ok, out_ptr, str_arg, write_opt};
use crate::status::{TenureStatus, TENURE_NOT_FOUND};

/// A fence condition on a KV write: the write applies only if `token` is a current hold of lock
/// `name` at the write's place in the log; otherwise it fails with `TENURE_FENCED_OUT` and
/// changes nothing. Fill it from a lease: `{tenure_lease_name(l), tenure_lease_token(l)}`.
#[repr(C)]
pub struct TenureFence {
    /// The lock's name. Borrowed: read during the call only.
    pub name: *const c_char,
    /// A fencing token of that lock.
    pub token: u64,
}

unsafe fn fence_arg(fence: *const TenureFence) -> Result<Option<Fence>, Error> {
    let Some(f) = (unsafe { fence.as_ref() }) else { return Ok(None) };
    let name = unsafe { str_arg(f.name, "fence.name") }?;
    Ok(Some(Fence::new(name, f.token)))
}

/// Writes `value` (`value_len` bytes; `value` may be NULL when `value_len` is 0) at `key`
/// (<= 1 KiB; values <= 64 KiB). With a `fence` (may be NULL), only if the fence holds: else
/// `TENURE_FENCED_OUT`. `*revision` (may be NULL) receives the write's log index.
///
/// Ownership: every argument is borrowed for this call; `*revision` is written only on
/// `TENURE_OK`.
#[no_mangle]
pub unsafe extern "C" fn tenure_kv_put(
    client: *const TenureClient,
    key: *const c_char,
    value: *const u8,
    value_len: usize,
    fence: *const TenureFence,
    revision: *mut u64,
) -> TenureStatus {
    call(|| unsafe {
        let client = non_null(client, "client")?;
        let key = bytes_arg(key, "key")?;
        let value = ffi::buf_arg(value, value_len, "value")?;
        let fence = fence_arg(fence)?;
        let rev = client.inner.kv().put(key, value, fence)?;
        write_opt(revision, rev);
        ok()
    })
}

/// Reads `key`, linearizably. Returns `TENURE_OK` with the value, or `TENURE_NOT_FOUND` (not
/// an error; nothing written) when there is no such key. `*value_out` receives a buffer of
/// `*value_len` bytes followed by a NUL (so a text value can be used as a C string);
/// `value_len` and `revision` may be NULL.
///
/// Ownership: `client` and `key` are borrowed. On `TENURE_OK`, `*value_out` receives a buffer
/// the caller frees with `tenure_string_free`; out-parameters are written only then.
#[no_mangle]
pub unsafe extern "C" fn tenure_kv_get(
    client: *const TenureClient,
    key: *const c_char,
    value_out: *mut *mut c_char,
    value_len: *mut usize,
    revision: *mut u64,
) -> TenureStatus {
    call(|| unsafe {
        let client = non_null(client, "client")?;
        let key = bytes_arg(key, "key")?;
        let out = out_ptr(value_out, "value_out")?;
        let Some(entry) = client.inner.kv().get(key)? else {
            return ffi::outcome(TENURE_NOT_FOUND, format!("no key {:?}", String::from_utf8_lossy(key)));
        };
        out.write(ffi::malloc_bytes(&entry.value)?);
        write_opt(value_len, entry.value.len());
        write_opt(revision, entry.revision);
        ok()
    })
}

/// Deletes `key`; with a `fence` (may be NULL), only if the fence holds: else
/// `TENURE_FENCED_OUT`. `*existed` (may be NULL) tells whether the key was there. Deleting a
/// missing key is `TENURE_OK`.
///
/// Ownership: every argument is borrowed for this call; `*existed` is written only on
/// `TENURE_OK`.
#[no_mangle]
pub unsafe extern "C" fn tenure_kv_delete(
    client: *const TenureClient,
    key: *const c_char,
    fence: *const TenureFence,
    existed: *mut bool,
) -> TenureStatus {
    call(|| unsafe {
        let client = non_null(client, "client")?;
        let key = bytes_arg(key, "key")?;
        let fence = fence_arg(fence)?;
        let was = client.inner.kv().delete(key, fence)?;
        write_opt(existed, was);
        ok()
    })
}
