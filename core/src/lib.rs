//! The client of [tenure](https://example.invalid/tenure), a distributed lock service: leased
//! locks with fencing tokens, FIFO-fair waiting that survives leader failover, and prompt
//! lost-lease detection. This crate is the Rust SDK and the core that the Python, Node and C
//! SDKs wrap.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), tenure::Error> {
//! let client = tenure::Client::connect(["http://127.0.0.1:7070"]).await?;
//! let guard = client.lock("job-123").ttl(Duration::from_secs(30)).wait(Duration::from_secs(10)).acquire().await?;
//! // Hand the fencing token to what the lock protects, so it can refuse a stale holder.
//! client.kv().put("job-123/state", "running", Some(guard.fence())).await?;
//! tokio::select! {
//!     _ = guard.lost() => eprintln!("lost the lock: stop"),
//!     _ = tokio::time::sleep(Duration::from_secs(1)) => println!("done with token {}", guard.token()),
//! }
//! guard.release().await?;
//! # Ok(()) }
//! ```
//!
//! What the client does for you:
//! - finds the leader and follows its redirects in one hop; rotates endpoints and backs off
//!   (with jitter) when nodes are down, within each call's deadline;
//! - gives every acquire a unique request id (a ULID) and re-sends the same one while waiting,
//!   so a waiter keeps its place in the queue across leader changes;
//! - renews every held and waiting lease on one KeepAlive stream at ttl/3, and reports a lease
//!   lost ([`LockGuard::lost`]) once its renewal cannot be confirmed within 90% of the TTL,
//!   before the server can grant the lock to anyone else;
//! - withdraws a waiting request whose wait ran out, or whose future was dropped, so no ghost
//!   holder or waiter stays behind.
//!
//! For code without an async runtime, [`blocking`] has the same API on plain threads.

#![warn(missing_docs)]

mod admin;
mod buggy;
mod client;
mod clock;
mod conn;
mod error;
mod keepalive;
mod kv;
mod lease;
mod lock;
mod releases;
mod request_id;
mod types;
mod watch;

pub mod blocking;
pub mod duration;

pub use admin::{ForceReleaseTarget, ForceReleased, Handover, MembershipChange, ADD_MEMBER_CATCH_UP};
pub use blocking::runtime;
#[cfg(feature = "buggy")]
#[doc(hidden)]
pub use buggy::set_bound_from_receipt;
pub use client::{Client, ClientBuilder, DEFAULT_ENDPOINT};
pub use conn::RetryPolicy;
pub use error::Error;
pub use kv::Kv;
pub use lease::LostSignal;
pub use lock::{LockBuilder, LockGuard, DEFAULT_TTL};
pub use types::{
    ClusterStatus, Consistency, Fence, FenceStatus, KvEntry, LeaseInfo, LockDescription, LockSummary, Member, Mode,
    Role, WaiterInfo,
};
pub use watch::{LockEvent, LockEventKind, SharedWatch, Watch, WatchBuilder};
