//! tenure's fault-injection harness: real `tenured` clusters, recording clients, one fault at a
//! time, and a checker for the lock-safety criteria L1–L7 (docs/RELIABILITY.md).

pub mod check;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod proxy;
pub mod run;
#[cfg(feature = "buggy")]
pub mod seeded;
pub mod workload;
