//! openraft glue: type config, sled log store, state-machine adapter over [`crate::lock`],
//! gRPC network, snapshot format. Nothing here knows lock semantics.

pub mod codec;
pub mod event_history;
pub mod identity;
pub mod log_store;
pub mod network;
pub mod node_file;
pub mod service;
pub mod state_machine;
pub mod state_writer;
pub mod storage;

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::lock::{Batch, CommandResult};

openraft::declare_raft_types!(
    /// tenure's Raft types: entries carry a group-committed [`Batch`], and applying one yields one
    /// result per command.
    pub TypeConfig:
        D = Batch,
        R = Vec<CommandResult>,
        NodeId = u64,
        Node = TenureNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, TenureNode>;
pub type StoredMembership = openraft::StoredMembership<NodeId, TenureNode>;

/// A member's addresses, as stored in the replicated membership.
///
/// Persisted inside log entries and snapshots, so it is versioned: it serializes as bytes
/// `[version] + postcard(fields)`, and a later version can add fields without breaking old logs.
/// Dial overrides (test proxies) are node-local configuration and never live here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenureNode {
    /// gRPC address (`host:port`) used by clients and by other nodes.
    pub grpc_addr: String,
    /// HTTP address (`host:port`).
    pub http_addr: String,
}

const TENURE_NODE_V1: u8 = 1;

#[derive(Serialize, Deserialize)]
struct TenureNodeV1 {
    grpc_addr: String,
    http_addr: String,
}

impl Serialize for TenureNode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let v1 = TenureNodeV1 { grpc_addr: self.grpc_addr.clone(), http_addr: self.http_addr.clone() };
        let bytes = postcard::to_extend(&v1, vec![TENURE_NODE_V1]).map_err(serde::ser::Error::custom)?;
        serializer.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for TenureNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = serde_bytes_vec(deserializer)?;
        match bytes.split_first() {
            Some((&TENURE_NODE_V1, rest)) => {
                let v1: TenureNodeV1 = postcard::from_bytes(rest).map_err(serde::de::Error::custom)?;
                Ok(TenureNode { grpc_addr: v1.grpc_addr, http_addr: v1.http_addr })
            }
            Some((v, _)) => Err(serde::de::Error::custom(format!(
                "node record has format version {v}, this build reads version {TENURE_NODE_V1}"
            ))),
            None => Err(serde::de::Error::custom("empty node record")),
        }
    }
}

/// Reads a byte string whether the format encodes it as bytes (postcard) or a sequence (JSON).
fn serde_bytes_vec<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    struct BytesVisitor;
    impl<'de> serde::de::Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a byte string")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_bytes(BytesVisitor)
}

impl fmt::Display for TenureNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "grpc={} http={}", self.grpc_addr, self.http_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_record_round_trips_and_starts_with_its_version() {
        let node = TenureNode { grpc_addr: "127.0.0.1:7070".into(), http_addr: "127.0.0.1:7080".into() };
        let bytes = postcard::to_stdvec(&node).unwrap();
        // postcard writes a length prefix, then our version byte.
        assert_eq!(bytes[1], TENURE_NODE_V1);
        assert_eq!(postcard::from_bytes::<TenureNode>(&bytes).unwrap(), node);
    }

    #[test]
    fn node_record_of_unknown_version_is_refused() {
        let bytes = postcard::to_stdvec(&serde_bytes_helper(&[9, 0, 0])).unwrap();
        let err = postcard::from_bytes::<TenureNode>(&bytes).unwrap_err();
        assert!(matches!(err, postcard::Error::SerdeDeCustom));
    }

    fn serde_bytes_helper(b: &[u8]) -> impl Serialize + '_ {
        struct B<'a>(&'a [u8]);
        impl Serialize for B<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        B(b)
    }
}
