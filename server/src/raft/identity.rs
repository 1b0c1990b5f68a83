//! Who this node is and which cluster it belongs to: the node id, the data directory's
//! incarnation, the cluster id and the incarnations of peers it has met. Backed by `node.toml`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

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
    /// What every node-to-node message needs from node.toml, readable without waiting on its
    /// lock (held while node.toml is saved, which takes fsyncs). Updated after each save.
    known: Arc<RwLock<Known>>,
    /// Set when a peer knows this node under another incarnation: the node must stop.
    replaced: Arc<watch::Sender<Option<String>>>,
}

struct Known {
    incarnation: String,
    cluster_id: String,
    peers: BTreeMap<String, String>,
    /// The members of the applied membership, once known: incarnations of other nodes are
    /// neither remembered nor kept (see [`Identity::retain_members`]).
    members: Option<BTreeSet<NodeId>>,
}

impl Identity {
    pub fn new(node_id: NodeId, file: Arc<Mutex<NodeFile>>) -> Self {
        let known = {
            let f = file.lock().unwrap_or_else(|p| p.into_inner());
            let s = f.state();
            Known {
                incarnation: s.incarnation.clone(),
                cluster_id: s.cluster_id.clone(),
                peers: s.peers.clone(),
                members: None,
            }
        };
        Self { node_id, file, known: Arc::new(RwLock::new(known)), replaced: Arc::new(watch::Sender::new(None)) }
    }

    /// Resolves with the reason once a peer has shown that this node's data directory was
    /// replaced.
    pub fn replaced(&self) -> watch::Receiver<Option<String>> {
        self.replaced.subscribe()
    }

    /// Every incarnation this node knows, itself included.
    pub fn known_incarnations(&self) -> HashMap<NodeId, String> {
        let k = self.known();
        let mut known: HashMap<NodeId, String> =
            k.peers.iter().filter_map(|(id, inc)| Some((id.parse().ok()?, inc.clone()))).collect();
        known.insert(self.node_id, k.incarnation.clone());
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

    fn known(&self) -> RwLockReadGuard<'_, Known> {
        self.known.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Saves `change` to node.toml, then shows the saved state to readers.
    fn save(&self, change: impl FnOnce(&mut super::node_file::NodeState)) -> Result<(), IdentityError> {
        let mut file = self.lock();
        file.update(change)?;
        let s = file.state();
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        known.cluster_id.clone_from(&s.cluster_id);
        known.peers.clone_from(&s.peers);
        Ok(())
    }

    pub fn cluster_id(&self) -> String {
        self.known().cluster_id.clone()
    }

    pub fn incarnation(&self) -> String {
        self.known().incarnation.clone()
    }

    /// The incarnation remembered for `peer`, or empty.
    pub fn peer_incarnation(&self, peer: NodeId) -> String {
        self.known().peers.get(&peer.to_string()).cloned().unwrap_or_default()
    }

    pub fn set_cluster_id(&self, cluster_id: &str) -> Result<(), IdentityError> {
        self.save(|s| s.cluster_id = cluster_id.to_string())
    }

    /// Forgets the incarnation of every node that is not in `members` (the applied membership)
    /// and from now on remembers only members' incarnations.
    ///
    /// A removed node may come back as a new member with a new data directory (DESIGN §9): the
    /// cluster must then not expect its old incarnation. Only the applied (committed) membership
    /// counts, so a wiped member is still refused until its removal has committed; and a
    /// removed node that keeps sending vote requests until it is stopped does not teach the
    /// cluster its old incarnation again.
    pub fn retain_members(&self, members: BTreeSet<NodeId>) -> Result<(), IdentityError> {
        let stale: Vec<String> = {
            let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
            let stale = known
                .peers
                .keys()
                .filter(|id| id.parse::<NodeId>().is_ok_and(|id| !members.contains(&id)))
                .cloned()
                .collect();
            known.members = Some(members);
            stale
        };
        if stale.is_empty() {
            return Ok(());
        }
        tracing::info!(nodes = ?stale, "forgetting the data directories of removed members");
        self.save(|s| {
            for id in &stale {
                s.peers.remove(id);
            }
        })
    }

    /// Forgets `peer`'s incarnation (a node about to be added as a new member).
    pub fn forget_peer(&self, peer: NodeId) -> Result<(), IdentityError> {
        if self.peer_incarnation(peer).is_empty() {
            return Ok(());
        }
        self.save(|s| {
            s.peers.remove(&peer.to_string());
        })
    }

    fn is_member(&self, peer: NodeId) -> bool {
        self.known().members.as_ref().is_none_or(|m| m.contains(&peer))
    }

    /// Remembers `peer`'s incarnation the first time it is seen (members only, once the
    /// membership is known).
    pub fn remember_peer(&self, peer: NodeId, incarnation: &str) -> Result<(), IdentityError> {
        if incarnation.is_empty() || !self.is_member(peer) {
            return Ok(());
        }
        let known = self.peer_incarnation(peer);
        if known.is_empty() {
            self.save(|s| {
                // Checked again under node.toml's lock: the first incarnation seen wins.
                s.peers.entry(peer.to_string()).or_insert_with(|| incarnation.to_string());
            })?;
            match self.peer_incarnation(peer) {
                known if known == incarnation => Ok(()),
                known => Err(IdentityError::Replaced { node: peer, found: incarnation.to_string(), expected: known }),
            }
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
        let ours = self.cluster_id();
        // A message from another cluster (a peer address that now reaches some other cluster's
        // node, e.g. after a port was reused) says nothing about this node's own directory:
        // refuse it before judging the incarnation it expects.
        if !ours.is_empty() && !cluster_id.is_empty() && ours != cluster_id {
            return Err(IdentityError::ClusterMismatch { ours, theirs: cluster_id.to_string() });
        }
        let mine = self.incarnation();
        let expected = known.get(&self.node_id).map(String::as_str).filter(|e| !e.is_empty()).unwrap_or(to_incarnation);
        if !expected.is_empty() && expected != mine {
            let err = IdentityError::Replaced { node: self.node_id, found: mine, expected: expected.to_string() };
            tracing::error!(from, error = %err, "this node's data directory was replaced; stopping");
            self.replaced.send_replace(Some(err.to_string()));
            return Err(err);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(dir: &std::path::Path, node_id: NodeId, cluster_id: &str) -> Identity {
        let file = NodeFile::create(dir, node_id).expect("node file");
        let id = Identity::new(node_id, Arc::new(Mutex::new(file)));
        if !cluster_id.is_empty() {
            id.set_cluster_id(cluster_id).expect("cluster id");
        }
        id
    }

    #[test]
    fn a_message_from_another_cluster_is_refused_without_stopping_this_node() {
        // Found by the chaos harness: a port freed by another cluster's node was reused by this
        // one, and that cluster's node 2 still dialled it, expecting its own node 1.
        let dir = tempfile::tempdir().expect("tmp");
        let me = identity(dir.path(), 1, "ours");
        let theirs = HashMap::from([(1, "their-node-1".to_string())]);
        let r = me.check_incoming("theirs", 2, 1, "their-node-2", "their-node-1", &theirs);
        assert!(matches!(r, Err(IdentityError::ClusterMismatch { .. })), "{r:?}");
        assert!(me.replaced().borrow().is_none(), "this node's directory was not replaced");

        // From its own cluster, a different expected incarnation does mean a replaced directory.
        let r = me.check_incoming("ours", 2, 1, "node-2", "an-older-node-1", &HashMap::new());
        assert!(matches!(r, Err(IdentityError::Replaced { .. })), "{r:?}");
        assert!(me.replaced().borrow().is_some());
    }

    #[test]
    fn a_removed_member_is_forgotten_so_it_can_come_back_with_a_new_data_directory() {
        let dir = tempfile::tempdir().expect("tmp");
        let me = identity(dir.path(), 1, "ours");
        me.remember_peer(2, "node-2").expect("2");
        me.remember_peer(3, "old-node-3").expect("3");
        // While 3 is a member, a new directory of it is refused.
        assert!(matches!(me.remember_peer(3, "new-node-3"), Err(IdentityError::Replaced { .. })));

        // 3 is removed: forgotten (also in node.toml), and a removed node still sending
        // messages does not teach its old incarnation again.
        me.retain_members(BTreeSet::from([1, 2])).expect("retain");
        assert_eq!(me.peer_incarnation(3), "");
        assert_eq!(me.peer_incarnation(2), "node-2");
        me.remember_peer(3, "old-node-3").expect("ignored");
        assert_eq!(me.peer_incarnation(3), "");
        let reopened = NodeFile::open(dir.path()).expect("open").expect("node.toml");
        assert!(!reopened.state().peers.contains_key("3"));

        // Added back: its new incarnation is learned, and the old one is refused from then on.
        me.retain_members(BTreeSet::from([1, 2, 3])).expect("retain");
        me.remember_peer(3, "new-node-3").expect("new 3");
        assert!(matches!(me.remember_peer(3, "old-node-3"), Err(IdentityError::Replaced { .. })));
    }
}
