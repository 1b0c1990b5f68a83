//! The lock table: tenure's semantics, pure and deterministic.
//!
//! Commands go in, results and events come out. No clock, no I/O, no async, no openraft types:
//! the Raft state machine calls [`LockTable::apply`] with each committed batch, and everything
//! time-related arrives inside the commands (the leader's `now_ms`, `Expire`, `EndDelay`).

pub mod command;
pub mod history;
pub mod limits;
pub mod table;

pub use command::*;
pub use history::*;
pub use limits::*;
pub use table::*;

#[cfg(test)]
mod force_release_tests;
#[cfg(test)]
mod model_tests;
