//! Status codes, the thread-local error message, and the library-wide small functions
//! (version, freeing strings).

use std::ffi::{c_char, c_void};

use crate::ffi;

/// What a function returned: `TENURE_OK` (0), an error (1..=13, one per stable error code of
/// the core, in the order of `tenure::Error::CODES`), or an outcome that is not an error
/// (`TENURE_BUSY`, `TENURE_NOT_FOUND`, from 100). Never passed *to* the library, so a value
/// outside this list can only come from a newer library: treat it as an error.
pub type TenureStatus = i32;

/// Success.
pub const TENURE_OK: TenureStatus = 0;
/// An argument is missing, malformed or out of bounds (NULL, an empty name, a zero TTL, ...);
/// the message names it and the limit. Nothing was changed.
pub const TENURE_INVALID_ARGUMENT: TenureStatus = 1;
/// A SHARED acquire's limit differs from the limit the lock already has.
pub const TENURE_LIMIT_MISMATCH: TenureStatus = 2;
/// A fenced KV write was refused: its token is not a current hold of the lock.
pub const TENURE_FENCED_OUT: TenureStatus = 3;
/// An acquire reused a request id that has already finished.
pub const TENURE_REQUEST_FINISHED: TenureStatus = 4;
/// A server cap (waiters per lock, number of locks) is reached.
pub const TENURE_RESOURCE_EXHAUSTED: TenureStatus = 5;
/// The server requires credentials and none, or bad ones, were given.
pub const TENURE_UNAUTHENTICATED: TenureStatus = 6;
/// The credentials do not allow this call.
pub const TENURE_PERMISSION_DENIED: TenureStatus = 7;
/// A watch's start index is older than any node's event history (not used by this API yet).
pub const TENURE_COMPACTED: TenureStatus = 8;
/// The acquire's wait ended before the lock was granted; the request has been withdrawn.
pub const TENURE_TIMEOUT: TenureStatus = 9;
/// The lease is gone (expired, released, or its renewal could not be confirmed in time): stop
/// acting as its holder.
pub const TENURE_LEASE_LOST: TenureStatus = 10;
/// The call was cancelled, or the client was shut down.
pub const TENURE_CANCELLED: TenureStatus = 11;
/// No node answered within the call's deadline (nodes down, no quorum, network). The only
/// status worth retrying as is.
pub const TENURE_UNAVAILABLE: TenureStatus = 12;
/// A bug in the server or the library (including a caught panic, or a blocking call made from
/// a lost-lease callback).
pub const TENURE_INTERNAL: TenureStatus = 13;
/// A membership change was refused: the voters left would not include a quorum of live members
/// (not used by this API: membership changes are made with the `tenure` CLI or the Rust crate).
pub const TENURE_QUORUM_AT_RISK: TenureStatus = 14;
/// Not an error: `tenure_try_acquire` found the lock busy. No lease was made.
pub const TENURE_BUSY: TenureStatus = 100;
/// Not an error: `tenure_kv_get` found no such key.
pub const TENURE_NOT_FOUND: TenureStatus = 101;

/// The error statuses by the core's stable code (`tenure::Error::code()`).
pub(crate) const ERROR_CODES: [(&str, TenureStatus); 14] = [
    ("INVALID_ARGUMENT", TENURE_INVALID_ARGUMENT),
    ("LIMIT_MISMATCH", TENURE_LIMIT_MISMATCH),
    ("FENCED_OUT", TENURE_FENCED_OUT),
    ("REQUEST_FINISHED", TENURE_REQUEST_FINISHED),
    ("RESOURCE_EXHAUSTED", TENURE_RESOURCE_EXHAUSTED),
    ("UNAUTHENTICATED", TENURE_UNAUTHENTICATED),
    ("PERMISSION_DENIED", TENURE_PERMISSION_DENIED),
    ("COMPACTED", TENURE_COMPACTED),
    ("QUORUM_AT_RISK", TENURE_QUORUM_AT_RISK),
    ("TIMEOUT", TENURE_TIMEOUT),
    ("LEASE_LOST", TENURE_LEASE_LOST),
    ("CANCELLED", TENURE_CANCELLED),
    ("UNAVAILABLE", TENURE_UNAVAILABLE),
    ("INTERNAL", TENURE_INTERNAL),
];

/// The status of a core error: by its stable code, `TENURE_INTERNAL` for a code this library
/// does not know (a unit test keeps the table complete).
pub(crate) fn status_of(e: &tenure_core::Error) -> TenureStatus {
    let code = e.code();
    ERROR_CODES.iter().find(|(c, _)| *c == code).map_or(TENURE_INTERNAL, |(_, s)| *s)
}

/// The name of a status, as a static string: `"OK"`, `"BUSY"`, `"NOT_FOUND"`, or the core's
/// stable error code (`"TIMEOUT"`, `"FENCED_OUT"`, ...); `"UNKNOWN"` for any other value.
///
/// Ownership: the returned string is static; never free it.
#[no_mangle]
pub extern "C" fn tenure_status_name(status: TenureStatus) -> *const c_char {
    let name: &'static std::ffi::CStr = match status {
        TENURE_OK => c"OK",
        TENURE_BUSY => c"BUSY",
        TENURE_NOT_FOUND => c"NOT_FOUND",
        TENURE_INVALID_ARGUMENT => c"INVALID_ARGUMENT",
        TENURE_LIMIT_MISMATCH => c"LIMIT_MISMATCH",
        TENURE_FENCED_OUT => c"FENCED_OUT",
        TENURE_REQUEST_FINISHED => c"REQUEST_FINISHED",
        TENURE_RESOURCE_EXHAUSTED => c"RESOURCE_EXHAUSTED",
        TENURE_UNAUTHENTICATED => c"UNAUTHENTICATED",
        TENURE_PERMISSION_DENIED => c"PERMISSION_DENIED",
        TENURE_COMPACTED => c"COMPACTED",
        TENURE_QUORUM_AT_RISK => c"QUORUM_AT_RISK",
        TENURE_TIMEOUT => c"TIMEOUT",
        TENURE_LEASE_LOST => c"LEASE_LOST",
        TENURE_CANCELLED => c"CANCELLED",
        TENURE_UNAVAILABLE => c"UNAVAILABLE",
        TENURE_INTERNAL => c"INTERNAL",
        _ => c"UNKNOWN",
    };
    name.as_ptr()
}

/// The message of the last call on this thread that returned a `tenure_status_t`: `""` after
/// `TENURE_OK`, else `"CODE: what happened"` (for `TENURE_BUSY` and `TENURE_NOT_FOUND` too).
/// Each thread has its own message, so threads sharing a client never see each other's.
///
/// Ownership: borrowed from the library. Valid until the next call on this thread of a function
/// returning `tenure_status_t`; copy it to keep it. Never NULL; never free it.
#[no_mangle]
pub extern "C" fn tenure_last_error() -> *const c_char {
    ffi::last_error_ptr()
}

/// The library's version, e.g. `"0.1.0"` (the same as `TENURE_VERSION` in this header, unless
/// the program was built against another header than the library it runs with).
///
/// Ownership: static; never free it.
#[no_mangle]
pub extern "C" fn tenure_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Frees a string or buffer the library returned (JSON documents, KV values). NULL is a no-op.
///
/// Ownership: takes back ownership of `s`, which must come from this library and must not be
/// used afterwards.
#[no_mangle]
pub unsafe extern "C" fn tenure_string_free(s: *mut c_char) {
    // Returned strings are allocated with malloc (see `ffi::malloc_bytes`), so freeing needs
    // no length, and a C caller holding binary data with NULs inside frees it all the same.
    let _ = std::panic::catch_unwind(|| unsafe { libc::free(s.cast::<c_void>()) });
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::ffi::CStr;

    use super::*;

    #[test]
    fn every_core_error_code_has_its_own_status_named_after_it() {
        let mut seen = HashSet::new();
        for code in tenure_core::Error::CODES {
            let status = ERROR_CODES.iter().find(|(c, _)| c == code).map(|(_, s)| *s);
            let status = status.unwrap_or_else(|| panic!("core code {code} has no tenure_status_t"));
            assert!(seen.insert(status), "{code} shares status {status}");
            let name = unsafe { CStr::from_ptr(tenure_status_name(status)) };
            assert_eq!(name.to_str().ok(), Some(*code));
        }
        assert_eq!(seen.len(), ERROR_CODES.len());
        assert!(!seen.contains(&TENURE_OK) && !seen.contains(&TENURE_BUSY) && !seen.contains(&TENURE_NOT_FOUND));
    }

    #[test]
    fn core_errors_map_by_their_code() {
        assert_eq!(status_of(&tenure_core::Error::Timeout("t".into())), TENURE_TIMEOUT);
        assert_eq!(status_of(&tenure_core::Error::FencedOut("f".into())), TENURE_FENCED_OUT);
        let invalid = tenure_core::Error::InvalidArgument { field: "ttl".into(), message: "m".into() };
        assert_eq!(status_of(&invalid), TENURE_INVALID_ARGUMENT);
    }

    #[test]
    fn unknown_statuses_are_named_unknown_and_the_version_is_the_crates() {
        let name = unsafe { CStr::from_ptr(tenure_status_name(-7)) };
        assert_eq!(name.to_str().ok(), Some("UNKNOWN"));
        let version = unsafe { CStr::from_ptr(tenure_version()) };
        assert_eq!(version.to_str().ok(), Some(env!("CARGO_PKG_VERSION")));
    }
}
