//! The napi glue between the `tenure` npm package (sdk-node/) and the client core (the `tenure`
//! crate). It converts types and errors, nothing more: retries, redirects, waiting, keepalive
//! and lost leases stay in the core, and the idiomatic API (`withLock`, AbortSignal, Dates,
//! error classes) is the hand-written JavaScript in sdk-node/index.js.
//!
//! Every call runs on the core's process-wide runtime ([`tenure::runtime`]); napi's own tokio
//! runtime only relays the results to JavaScript (see `runtime.rs`).

mod client;
mod errors;
mod lease;
mod runtime;
mod types;
mod watch;

use napi_derive::napi;

/// Every stable error code of the core; sdk-node/index.js has one error class per code.
#[napi]
pub fn error_codes() -> Vec<&'static str> {
    tenure::Error::CODES.to_vec()
}

/// The endpoint a client uses when none is given and `TENURE_ENDPOINTS` is unset.
#[napi]
pub const DEFAULT_ENDPOINT: &str = tenure::DEFAULT_ENDPOINT;
