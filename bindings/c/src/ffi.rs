//! The plumbing every entry point shares: catching panics, the thread-local error message,
//! reading C arguments, and allocating what is handed back to C.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use tenure_core::Error;

use crate::status::{status_of, TenureStatus, TENURE_INTERNAL, TENURE_OK};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Sets this thread's message (interior NULs, which no message should have, are dropped).
pub(crate) fn set_last_error(message: &str) {
    let message = CString::new(message.replace('\0', "")).unwrap_or_default();
    // `try_with`: during thread teardown the slot may be gone; the message is then moot.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = message);
}

pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.try_with(|slot| slot.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

/// Sets the message for a non-error outcome (`TENURE_BUSY`, `TENURE_NOT_FOUND`) and returns it.
pub(crate) fn outcome(status: TenureStatus, message: String) -> Result<TenureStatus, Error> {
    let name = unsafe { CStr::from_ptr(crate::status::tenure_status_name(status)) };
    set_last_error(&format!("{}: {message}", name.to_string_lossy()));
    Ok(status)
}

/// Runs the body of a status-returning entry point: clears the message, catches panics, and
/// turns an error into its status and message. The body returns `Ok(TENURE_OK)` (or another
/// non-error outcome it has set the message for) and writes its out-parameters only then.
pub(crate) fn call(body: impl FnOnce() -> Result<TenureStatus, Error>) -> TenureStatus {
    set_last_error("");
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            set_last_error(&format!("{}: {e}", e.code()));
            status_of(&e)
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("INTERNAL: the tenure library panicked (a bug): {what}"));
            TENURE_INTERNAL
        }
    }
}

/// Runs the body of an entry point that returns a plain value, with `fallback` on a panic.
pub(crate) fn value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::InvalidArgument { field: field.to_string(), message: message.into() }
}

/// A required pointer argument.
pub(crate) unsafe fn non_null<'a, T>(p: *const T, field: &str) -> Result<&'a T, Error> {
    unsafe { p.as_ref() }.ok_or_else(|| invalid(field, format!("{field} must not be NULL")))
}

/// A required out-parameter.
pub(crate) fn out_ptr<T>(p: *mut T, field: &str) -> Result<*mut T, Error> {
    if p.is_null() {
        return Err(invalid(field, format!("{field} (an out-parameter) must not be NULL")));
    }
    Ok(p)
}

/// A required NUL-terminated UTF-8 string.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, field: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(invalid(field, format!("{field} must not be NULL")));
    }
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|e| invalid(field, format!("{field} is not valid UTF-8: {e}")))
}

/// An optional NUL-terminated UTF-8 string (NULL = not given).
pub(crate) unsafe fn opt_str_arg<'a>(p: *const c_char, field: &str) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        return Ok(None);
    }
    unsafe { str_arg(p, field) }.map(Some)
}

/// A required NUL-terminated byte string (KV keys are bytes, not necessarily UTF-8).
pub(crate) unsafe fn bytes_arg<'a>(p: *const c_char, field: &str) -> Result<&'a [u8], Error> {
    if p.is_null() {
        return Err(invalid(field, format!("{field} must not be NULL")));
    }
    Ok(unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// A buffer given as pointer and length; NULL is allowed only with length 0.
pub(crate) unsafe fn buf_arg<'a>(p: *const u8, len: usize, field: &str) -> Result<&'a [u8], Error> {
    if p.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(invalid(field, format!("{field} is NULL but its length is {len}")));
    }
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Copies `bytes` into a malloc'd buffer with a NUL after them, for the caller to free with
/// `tenure_string_free` (which is `free`).
pub(crate) fn malloc_bytes(bytes: &[u8]) -> Result<*mut c_char, Error> {
    let len = bytes.len();
    let p = unsafe { libc::malloc(len + 1) }.cast::<u8>();
    if p.is_null() {
        return Err(Error::Internal(format!("out of memory allocating {} bytes", len + 1)));
    }
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, len);
        *p.add(len) = 0;
    }
    Ok(p.cast())
}

/// Writes `v` through an out-parameter that the caller may leave NULL.
pub(crate) unsafe fn write_opt<T>(p: *mut T, v: T) {
    if !p.is_null() {
        unsafe { p.write(v) };
    }
}

pub(crate) fn ok() -> Result<TenureStatus, Error> {
    Ok(TENURE_OK)
}
