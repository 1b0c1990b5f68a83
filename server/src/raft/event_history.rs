//! The node's history of committed lock events, kept for `Locks.Watch`.
//!
//! Apply stages each entry's [`HistoryEvent`]s for the current state tree, with the state change
//! and `last_applied` (one sled batch, see [`super::state_writer`]), under keys `~ index seq`
//! that sort after every record. So the history is exactly as durable as the state: after a
//! crash, openraft re-applies the missing entries and rewrites the same keys. Readers see staged
//! events as well as written ones. Events before the `floor` are gone: trimmed to the last `keep`
//! events, or never seen because a snapshot was installed over them.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::codec;
use super::state_writer::{StagedWrites, Write};
use crate::lock::HistoryEvent;

/// First byte of event keys: after the record tags (`k l m t`) and the `!` metadata keys.
pub const EVENT_TAG: u8 = b'~';
/// Metadata key holding the floor, stored with every apply batch.
pub const KEY_FLOOR: &[u8] = b"!events_floor";

/// `~`, index and seq, big-endian so keys sort in log order.
pub fn event_key(index: u64, seq: u32) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = EVENT_TAG;
    k[1..9].copy_from_slice(&index.to_be_bytes());
    k[9..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn parse_key(k: &[u8]) -> Option<(u64, u32)> {
    let (&tag, rest) = k.split_first()?;
    if tag != EVENT_TAG || rest.len() != 12 {
        return None;
    }
    let index = u64::from_be_bytes(rest[..8].try_into().ok()?);
    let seq = u32::from_be_bytes(rest[8..].try_into().ok()?);
    Some((index, seq))
}

/// One stored event with its place in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub index: u64,
    pub seq: u32,
    pub event: HistoryEvent,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("index {from} is compacted: this node's event history starts at index {floor}")]
    Compacted { from: u64, floor: u64 },
    #[error("reading the event history: {0}")]
    Storage(String),
}

/// Where the history lives and how much of it there is.
pub struct EventHistory {
    tree: RwLock<sled::Tree>,
    /// Lowest index whose events are all present. Raised *before* events are deleted, so a reader
    /// that checks it after reading never misses a deleted event silently.
    floor: AtomicU64,
    count: AtomicU64,
    keep: u64,
    /// Events staged by apply and not yet in the tree.
    staged: Arc<StagedWrites>,
}

impl EventHistory {
    /// Takes over the history stored in `tree`. `stored_floor` is the tree's `!events_floor`, if
    /// any; a tree written before the history existed starts after `last_applied`.
    pub fn open(
        tree: sled::Tree,
        stored_floor: Option<u64>,
        last_applied: u64,
        keep: u64,
        staged: Arc<StagedWrites>,
    ) -> std::io::Result<Self> {
        let count = tree.scan_prefix([EVENT_TAG]).count() as u64;
        let floor = stored_floor.unwrap_or(last_applied + 1);
        Ok(Self { tree: RwLock::new(tree), floor: AtomicU64::new(floor), count: AtomicU64::new(count), keep, staged })
    }

    pub fn floor(&self) -> u64 {
        self.floor.load(Ordering::SeqCst)
    }

    /// Counts `added` new events (already in `batch`, encoded by the caller) and, when the history
    /// has grown a tenth past `keep`, adds removals of the oldest whole log indexes to get back to
    /// `keep`. Returns the floor to store with the batch.
    pub fn trim_into(&self, batch: &mut Vec<Write>, added: u64) -> Result<u64, HistoryError> {
        let count = self.count.fetch_add(added, Ordering::SeqCst) + added;
        let slack = (self.keep / 10).max(1);
        if count <= self.keep + slack {
            return Ok(self.floor());
        }
        let excess = count - self.keep;
        let tree = self.tree();
        let mut last_removed = None;
        let mut first_kept = None;
        let mut removed = Vec::new();
        // From the floor: keys below it are already removed, or staged for removal. The events
        // of earlier applies are in sled or still staged (the writer thread has not reached
        // them): walk both, in key order, or a history whose events are all staged is never
        // trimmed and a watch from before `keep` is not COMPACTED.
        let start = event_key(self.floor(), 0).to_vec();
        let end = vec![EVENT_TAG + 1];
        let _overlay = self.staged.overlay();
        let mut staged = self
            .staged
            .staged_range((Bound::Included(start.clone()), Bound::Excluded(end.clone())))
            .into_iter()
            .peekable();
        let mut written = tree.range(start..end).peekable();
        loop {
            // The smaller key next; where both have it, the staged write (newer) decides.
            if matches!(written.peek(), Some(Err(_))) {
                let e = written.next().and_then(Result::err).map(|e| e.to_string()).unwrap_or_default();
                return Err(HistoryError::Storage(e));
            }
            let from_tree = written.peek().and_then(|r| r.as_ref().ok()).map(|(k, _)| k.to_vec());
            let from_staged = staged.peek().map(|(k, _)| k.clone());
            let (k, live) = match (from_tree, from_staged) {
                (None, None) => break,
                (Some(t), Some(s)) if s <= t => {
                    if s == t {
                        written.next();
                    }
                    let (k, v) = staged.next().unwrap_or_default();
                    (k, v.is_some())
                }
                (Some(t), _) => {
                    written.next();
                    (t, true)
                }
                (None, Some(_)) => {
                    let (k, v) = staged.next().unwrap_or_default();
                    (k, v.is_some())
                }
            };
            if !live {
                continue;
            }
            let Some((index, _)) = parse_key(&k) else { continue };
            // Enough removed, and this key starts a new index: keep it and everything after.
            if removed.len() as u64 >= excess && last_removed != Some(index) {
                first_kept = Some(index);
                break;
            }
            last_removed = Some(index);
            removed.push(k);
        }
        let Some(new_floor) = first_kept.or(last_removed.map(|i| i + 1)) else { return Ok(self.floor()) };
        let new_floor = new_floor.max(self.floor());
        self.floor.fetch_max(new_floor, Ordering::SeqCst);
        self.count.fetch_sub(removed.len() as u64, Ordering::SeqCst);
        batch.extend(removed.into_iter().map(|k| (k.to_vec(), None)));
        Ok(new_floor)
    }

    /// A snapshot replaced the state: the history continues after `snapshot_index` in `tree`.
    pub fn reset(&self, tree: sled::Tree, snapshot_index: u64) {
        self.floor.fetch_max(snapshot_index + 1, Ordering::SeqCst);
        *self.tree.write().unwrap_or_else(|p| p.into_inner()) = tree;
        self.count.store(0, Ordering::SeqCst);
    }

    fn tree(&self) -> sled::Tree {
        self.tree.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The events of log indexes `from..=to`, in log order, or `Compacted` if some of them are
    /// no longer kept.
    pub fn read(&self, from: u64, to: u64) -> Result<Vec<StoredEvent>, HistoryError> {
        let mut out = Vec::new();
        if from <= to {
            // A snapshot install may drop the tree under this reader: that is COMPACTED.
            let compacted_or = |e: HistoryError| match self.floor() {
                floor if from < floor => HistoryError::Compacted { from, floor },
                _ => e,
            };
            let start = event_key(from, 0).to_vec();
            let end = if to == u64::MAX { vec![EVENT_TAG + 1] } else { event_key(to + 1, 0).to_vec() };
            let mut found: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
            {
                // Staged events, then the tree, with no write to sled in between: each event is
                // in one or the other (a staged write is the newer where both have the key).
                let _overlay = self.staged.overlay();
                let staged = self.staged.staged_range((Bound::Included(start.clone()), Bound::Excluded(end.clone())));
                for item in self.tree().range(start..end) {
                    let (k, v) = item.map_err(|e| compacted_or(HistoryError::Storage(e.to_string())))?;
                    found.insert(k.to_vec(), Some(v.to_vec()));
                }
                found.extend(staged);
            }
            for (k, v) in found {
                let (Some((index, seq)), Some(v)) = (parse_key(&k), v) else { continue };
                let event = codec::decode(&v)
                    .map_err(|e| compacted_or(HistoryError::Storage(format!("event {index}/{seq}: {e}"))))?;
                out.push(StoredEvent { index, seq, event });
            }
        }
        // Checked after reading: the floor is raised before anything is deleted.
        let floor = self.floor();
        if from < floor {
            return Err(HistoryError::Compacted { from, floor });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{HistoryKind, Mode};

    fn event(name: &str) -> HistoryEvent {
        HistoryEvent {
            kind: HistoryKind::Granted,
            name: name.into(),
            request_id: "r".into(),
            token: 1,
            owner: String::new(),
            mode: Mode::Exclusive,
            position: 0,
            at_ms: 0,
        }
    }

    fn append(h: &EventHistory, tree: &sled::Tree, index: u64, n: u32) {
        let mut batch = Vec::new();
        for seq in 0..n {
            let key = event_key(index, seq).to_vec();
            batch.push((key, Some(codec::encode(&event(&format!("{index}.{seq}"))).unwrap())));
        }
        let floor = h.trim_into(&mut batch, u64::from(n)).unwrap();
        batch.push((KEY_FLOOR.to_vec(), Some(floor.to_be_bytes().to_vec())));
        h.staged.stage(tree, batch).unwrap();
    }

    fn history(tree: &sled::Tree, stored_floor: Option<u64>, last_applied: u64, keep: u64) -> EventHistory {
        let (staged, writer) = StagedWrites::start().unwrap();
        // The writer thread runs as long as the test process; the tests also write explicitly.
        std::mem::forget(writer);
        EventHistory::open(tree.clone(), stored_floor, last_applied, keep, staged).unwrap()
    }

    #[test]
    fn keys_sort_in_log_order_after_every_record_key() {
        assert!(event_key(1, 0) < event_key(1, 1));
        assert!(event_key(1, u32::MAX) < event_key(2, 0));
        assert!(event_key(255, 0) < event_key(256, 0));
        for tag in [b'k', b'l', b'm', b't', b'!'] {
            assert!([tag, 0xff].as_slice() < event_key(0, 0).as_slice());
        }
        assert_eq!(parse_key(&event_key(7, 3)), Some((7, 3)));
    }

    #[test]
    fn trimming_keeps_whole_indexes_and_reports_compaction() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        let h = history(&tree, None, 0, 10);
        assert_eq!(h.floor(), 1);
        for index in 1..=8 {
            append(&h, &tree, index, 3);
            // Trimming looks at the tree: write each index as apply's writer would, by then.
            h.staged.write_now().unwrap();
        }
        // 24 events, at most 11 kept (keep 10 + slack 1); trimmed by whole indexes of 3, so at
        // least 10 - 2 remain.
        let floor = h.floor();
        assert!(floor > 1);
        let kept = h.read(floor, 8).unwrap();
        assert_eq!(kept.first().map(|e| (e.index, e.seq)), Some((floor, 0)));
        assert_eq!(kept.last().map(|e| (e.index, e.seq)), Some((8, 2)));
        assert!((8..=11).contains(&kept.len()), "kept {}", kept.len());
        match h.read(floor - 1, 8) {
            Err(HistoryError::Compacted { from, floor: f }) => assert_eq!((from, f), (floor - 1, floor)),
            other => panic!("expected Compacted, got {other:?}"),
        }
        // Reopening finds the same count and the stored floor.
        let stored = tree.get(KEY_FLOOR).unwrap().map(|v| u64::from_be_bytes(v.as_ref().try_into().unwrap()));
        let reopened = history(&tree, stored, 8, 10);
        assert_eq!(reopened.floor(), floor);
        assert_eq!(reopened.read(floor, u64::MAX).unwrap(), kept);
    }

    #[test]
    fn events_still_staged_are_trimmed_too() {
        // The writer thread writes every 20 ms; these appends take microseconds, so they are
        // (nearly always) all still staged when trimming runs. Written or not, the result must
        // be the same.
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("s").unwrap();
        let h = history(&tree, None, 0, 10);
        for index in 1..=8 {
            append(&h, &tree, index, 3);
        }
        let floor = h.floor();
        assert!(floor >= 4, "24 events with keep 10 must trim at least 3 indexes, floor {floor}");
        assert!(matches!(h.read(1, 8), Err(HistoryError::Compacted { from: 1, .. })));
        let kept = h.read(floor, 8).unwrap();
        assert!((8..=11).contains(&kept.len()), "kept {}", kept.len());
        h.staged.write_now().unwrap();
        assert_eq!(h.read(floor, 8).unwrap(), kept, "the same once written");
    }

    #[test]
    fn a_snapshot_reset_compacts_everything_before_it() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("a").unwrap();
        let h = history(&tree, None, 0, 100);
        append(&h, &tree, 1, 2);
        // Staged events are read like written ones.
        assert_eq!(h.read(1, 1).unwrap().len(), 2);
        let fresh = db.open_tree("b").unwrap();
        h.staged.write_now().unwrap();
        h.reset(fresh.clone(), 50);
        assert!(matches!(h.read(1, 60), Err(HistoryError::Compacted { floor: 51, .. })));
        append(&h, &fresh, 51, 1);
        assert_eq!(h.read(51, 51).unwrap().len(), 1);
    }
}
