//! Who this node is and which cluster it belongs to: the node id, the data directory's
//! incarnation, the cluster id and the incarnations of peers it has met. Backed by `node.toml`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::node_file::{NodeFile, NodeFileError};
use super::NodeId;

/// Why a node-to-node message was refused.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("message for cluster {theirs:?} reached a node of cluster {ours:?}")]
    ClusterMismatch { ours: String, theirs: String },
    #[error("message for node {to} reached node {me}; check --peers")]
    WrongNode { me: NodeId, to: NodeId },
    #[error("node {node}'s data directory was replaced (incarnation {found:?}, expected {expected:?}); remove it from the cluster and add it back as a new member")]
    Replaced { node: NodeId, found: String, expected: String },
    #[error(transparent)]
    File(#[from] NodeFileError),
}

#[derive(Clone)]
pub struct Identity {
    node_id: NodeId,
    file: Arc<Mutex<NodeFile>>,
    /// Set when a peer knows this node under another incarnation: the node must stop.
    replaced: Arc<watch::Sender<Option<String>>>,
}

impl Identity {
    pub fn new(node_id: NodeId, file: Arc<Mutex<NodeFile>>) -> Self {
        Self { node_id, file, replaced: Arc::new(watch::Sender::new(None)) }
    }

    /// Resolves with the reason once a peer has shown that this node's data directory was
    /// replaced.
    pub fn replaced(&self) -> watch::Receiver<Option<String>> {
        self.replaced.subscribe()
    }

    /// Every incarnation this node knows, itself included.
    pub fn known_incarnations(&self) -> HashMap<NodeId, String> {
        let file = self.lock();
        let mut known: HashMap<NodeId, String> =
            file.state().peers.iter().filter_map(|(id, inc)| Some((id.parse().ok()?, inc.clone()))).collect();
        known.insert(self.node_id, file.state().incarnation.clone());
        known
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    pub fn file(&self) -> Arc<Mutex<NodeFile>> {
        self.file.clone()
    }

    fn lock(&self) -> MutexGuard<'_, NodeFile> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn cluster_id(&self) -> String {
        self.lock().state().cluster_id.clone()
    }

    pub fn incarnation(&self) -> String {
        self.lock().state().incarnation.clone()
    }

    /// The incarnation remembered for `peer`, or empty.
    pub fn peer_incarnation(&self, peer: NodeId) -> String {
        self.lock().state().peers.get(&peer.to_string()).cloned().unwrap_or_default()
    }

    pub fn set_cluster_id(&self, cluster_id: &str) -> Result<(), IdentityError> {
        Ok(self.lock().update(|s| s.cluster_id = cluster_id.to_string())?)
    }

    /// Remembers `peer`'s incarnation the first time it is seen.
    pub fn remember_peer(&self, peer: NodeId, incarnation: &str) -> Result<(), IdentityError> {
        if incarnation.is_empty() {
            return Ok(());
        }
        let mut file = self.lock();
        let known = file.state().peers.get(&peer.to_string()).cloned().unwrap_or_default();
        if known.is_empty() {
            file.update(|s| {
                s.peers.insert(peer.to_string(), incarnation.to_string());
            })?;
            Ok(())
        } else if known == incarnation {
            Ok(())
        } else {
            Err(IdentityError::Replaced { node: peer, found: incarnation.to_string(), expected: known })
        }
    }

    /// Checks an incoming node-to-node message; adopts the cluster id if this node has none yet
    /// and learns the incarnations the sender knows.
    pub fn check_incoming(
        &self,
        cluster_id: &str,
        from: NodeId,
        to: NodeId,
        from_incarnation: &str,
        to_incarnation: &str,
        known: &HashMap<NodeId, String>,
    ) -> Result<(), IdentityError> {
        if to != self.node_id {
            return Err(IdentityError::WrongNode { me: self.node_id, to });
        }
        let mine = self.incarnation();
        let expected = known.get(&self.node_id).map(String::as_str).filter(|e| !e.is_empty()).unwrap_or(to_incarnation);
        if !expected.is_empty() && expected != mine {
            let err = IdentityError::Replaced { node: self.node_id, found: mine, expected: expected.to_string() };
            tracing::error!(from, error = %err, "this node's data directory was replaced; stopping");
            self.replaced.send_replace(Some(err.to_string()));
            return Err(err);
        }
        let ours = self.cluster_id();
        if ours.is_empty() {
            if !cluster_id.is_empty() {
                tracing::info!(cluster_id, from, "joined cluster");
                self.set_cluster_id(cluster_id)?;
            }
        } else if ours != cluster_id {
            return Err(IdentityError::ClusterMismatch { ours, theirs: cluster_id.to_string() });
        }
        self.remember_peer(from, from_incarnation)?;
        for (&id, inc) in known {
            if id != self.node_id && id != from {
                if let Err(e) = self.remember_peer(id, inc) {
                    tracing::warn!(from, error = %e, "a peer knows another incarnation of a member");
                }
            }
        }
        Ok(())
    }
}
