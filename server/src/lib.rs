//! tenure-server: the `tenured` node. See `DESIGN.md` for the model this implements.

pub mod api;
pub mod buggy;
pub mod config;
pub mod lease_clock;
pub mod lock;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod propose;
pub mod raft;
pub mod tls;
