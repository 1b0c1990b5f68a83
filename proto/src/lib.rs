//! tenure's wire formats: the public API (`tenure.v1`) and the node-to-node protocol
//! (`tenure.raft.v1`), generated from the `.proto` files beside this crate.

#![allow(clippy::all, clippy::pedantic)]

/// The public API: services `Locks`, `KV` and `Cluster`.
pub mod v1 {
    tonic::include_proto!("tenure.v1");
}

/// The node-to-node protocol: Raft RPCs carrying versioned postcard payloads.
pub mod raft {
    /// Version 1 of the node-to-node protocol.
    pub mod v1 {
        tonic::include_proto!("tenure.raft.v1");
    }
}
