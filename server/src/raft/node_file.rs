//! `node.toml`: the node's identity and its Raft vote, kept outside sled in a small file written
//! with fsync + rename, so a vote is never lost to sled's lazy flushing and a data directory can be
//! checked against the configuration before anything else is opened.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::storage::fail_point;
use super::{NodeId, Vote};

pub const NODE_FILE: &str = "node.toml";
const FORMAT: u32 = 1;

/// Contents of `node.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub format: u32,
    pub node_id: NodeId,
    /// Random id of this data directory, made when it was created. Peers remember it, so a node
    /// whose directory was wiped cannot rejoin as if nothing happened.
    pub incarnation: String,
    /// The cluster this node belongs to; empty until it is bootstrapped or joins.
    #[serde(default)]
    pub cluster_id: String,
    #[serde(default)]
    pub vote: Option<Vote>,
    /// A lower bound of the last log index this node acknowledged as durable; at start the log
    /// must reach at least this far.
    #[serde(default)]
    pub last_acked_index: u64,
    /// Incarnations of peers this node has talked to, by node id.
    #[serde(default)]
    pub peers: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeFileError {
    // Not a `#[source]`: the message already carries it, and `{:#}` would print it twice.
    #[error("{path}: cannot {action}: {error}")]
    Io { path: PathBuf, action: &'static str, error: std::io::Error },
    #[error("{path} is damaged ({reason}); to recover, wipe the data directory and re-add this node as a new member")]
    Damaged { path: PathBuf, reason: String },
    #[error("{path} has format {found}, this build reads format {FORMAT}")]
    Format { path: PathBuf, found: u32 },
}

/// Owns `node.toml` in a data directory.
#[derive(Debug)]
pub struct NodeFile {
    dir: PathBuf,
    state: NodeState,
}

impl NodeFile {
    /// Reads `node.toml` from `dir`, or returns `Ok(None)` if the directory has none.
    pub fn open(dir: &Path) -> Result<Option<Self>, NodeFileError> {
        let path = dir.join(NODE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(NodeFileError::Damaged { path, reason: "not UTF-8".into() })
            }
            Err(error) => return Err(NodeFileError::Io { path, action: "read it", error }),
        };
        if text.trim().is_empty() {
            return Err(NodeFileError::Damaged { path, reason: "the file is empty".into() });
        }
        let state: NodeState =
            toml::from_str(&text).map_err(|e| NodeFileError::Damaged { path: path.clone(), reason: e.to_string() })?;
        if state.format != FORMAT {
            return Err(NodeFileError::Format { path, found: state.format });
        }
        Ok(Some(Self { dir: dir.to_path_buf(), state }))
    }

    /// Creates `node.toml` for a fresh data directory.
    pub fn create(dir: &Path, node_id: NodeId) -> Result<Self, NodeFileError> {
        let state = NodeState {
            format: FORMAT,
            node_id,
            incarnation: random_id(),
            cluster_id: String::new(),
            vote: None,
            last_acked_index: 0,
            peers: BTreeMap::new(),
        };
        let file = Self { dir: dir.to_path_buf(), state };
        file.write()?;
        Ok(file)
    }

    pub fn state(&self) -> &NodeState {
        &self.state
    }

    /// Changes the state and makes it durable (fsync + rename + fsync of the directory) before
    /// returning. On error the in-memory state is left as it was.
    pub fn update(&mut self, change: impl FnOnce(&mut NodeState)) -> Result<(), NodeFileError> {
        let before = self.state.clone();
        change(&mut self.state);
        if self.state == before {
            return Ok(());
        }
        if let Err(e) = self.write() {
            self.state = before;
            return Err(e);
        }
        Ok(())
    }

    fn write(&self) -> Result<(), NodeFileError> {
        let path = self.dir.join(NODE_FILE);
        let text = toml::to_string(&self.state)
            .map_err(|e| NodeFileError::Damaged { path: path.clone(), reason: e.to_string() })?;
        fail_point("node-file-save")
            .and_then(|()| write_durably(&path, text.as_bytes()))
            .map_err(|error| NodeFileError::Io { path, action: "save it (write, fsync, rename)", error })
    }
}

/// Writes `bytes` to `path` atomically and durably: temp file, fsync, rename, fsync the directory.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// A random 128-bit id in hex.
pub fn random_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_file_round_trips_vote_and_peers() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = NodeFile::create(dir.path(), 3).unwrap();
        f.update(|s| {
            s.vote = Some(Vote::new(7, 2));
            s.cluster_id = "abc".into();
            s.peers.insert("1".into(), "inc-1".into());
        })
        .unwrap();
        let back = NodeFile::open(dir.path()).unwrap().unwrap();
        assert_eq!(back.state(), f.state());
        assert_eq!(back.state().vote, Some(Vote::new(7, 2)));
    }

    #[test]
    fn damaged_node_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(NODE_FILE), b"node_id = [garbage").unwrap();
        let err = NodeFile::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("node.toml") && err.contains("damaged"), "{err}");
    }

    #[test]
    fn empty_node_file_is_reported_as_damaged() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(NODE_FILE), b"").unwrap();
        let err = NodeFile::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("node.toml is damaged (the file is empty)"), "{err}");
    }
}
