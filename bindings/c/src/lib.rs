//! The C ABI of the tenure client: `libtenure.so` and `libtenure.a`, described by
//! `sdk-c/include/tenure.h` (generated from this crate by cbindgen; see `tests/header.rs`).
//!
//! A thin translation layer over the core's blocking facade ([`tenure_core::blocking`]): it
//! checks and converts arguments, maps [`tenure_core::Error::code`] to `tenure_status_t`, and
//! keeps the thread-local error message. Retries, redirects, keepalive and timeouts all live in
//! the core.
//!
//! Rules every entry point follows:
//! - it catches panics ([`ffi::call`]) and turns them into `TENURE_INTERNAL`;
//! - it never reads a C enum or `bool` (a C caller can put any bit pattern there): flags are
//!   integers compared with zero;
//! - pointers are checked for NULL; out-parameters are written only on `TENURE_OK`;
//! - its doc comment says who owns every pointer it takes or returns.

// The entry points are `unsafe extern "C"` because they dereference the caller's pointers; the
// header states the contract once (valid or NULL, NUL-terminated strings) and each function's
// doc says who owns what, so a `# Safety` section per function would only repeat it.
#![allow(clippy::missing_safety_doc)]

// The header lists items in this order (cbindgen follows the modules); blank lines keep
// rustfmt from sorting them.
mod status;

mod client;

mod lease;

mod kv;

mod ffi;
mod json;

pub use client::*;
pub use kv::*;
pub use lease::*;
pub use status::*;
