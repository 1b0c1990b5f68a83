//! Versioned postcard encoding for everything tenure persists or sends between nodes: log
//! entries, snapshots and Raft RPC payloads. postcard is compact but not self-describing, so every
//! blob starts with a format-version byte.

use serde::{de::DeserializeOwned, Serialize};

/// Current format version of persisted and node-to-node payloads.
pub const FORMAT_V1: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty payload")]
    Empty,
    #[error("payload has format version {0}, this build reads version {FORMAT_V1}")]
    Version(u8),
    #[error("payload does not encode: {0}")]
    Encode(postcard::Error),
    #[error("payload does not decode: {0}")]
    Decode(#[from] postcard::Error),
}

pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_extend(value, vec![FORMAT_V1]).map_err(CodecError::Encode)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&FORMAT_V1, rest)) => Ok(postcard::from_bytes(rest)?),
        Some((&v, _)) => Err(CodecError::Version(v)),
    }
}
