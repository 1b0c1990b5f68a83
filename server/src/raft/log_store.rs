//! The Raft log on sled (tree `raft_log`, keys are big-endian indexes) and the vote in
//! `node.toml`. An append is acknowledged to openraft only after it is on disk.

// openraft's StorageError is large, and these helpers return it as openraft demands.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError};

use super::codec;
use super::node_file::NodeFile;
use super::storage::{Storage, TREE_LOG, TREE_LOG_META};
use super::{Entry, LogId, StorageError, TypeConfig, Vote};

const KEY_LAST_PURGED: &[u8] = b"last_purged";
const KEY_COMMITTED: &[u8] = b"committed";

/// The log store handed to openraft. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct LogStore {
    storage: Storage,
    log: sled::Tree,
    meta: sled::Tree,
    node_file: Arc<Mutex<NodeFile>>,
}

fn io_err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::new(subject, verb, openraft::AnyError::new(&e)).into()
}

fn read_logs_err(e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Read, e)
}

fn write_logs_err(e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Write, e)
}

impl LogStore {
    pub fn open(storage: Storage, node_file: Arc<Mutex<NodeFile>>) -> std::io::Result<Self> {
        Ok(Self { log: storage.tree(TREE_LOG)?, meta: storage.tree(TREE_LOG_META)?, storage, node_file })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        match self.meta.get(key).map_err(read_logs_err)? {
            None => Ok(None),
            Some(v) => codec::decode(&v).map(Some).map_err(read_logs_err),
        }
    }

    fn write_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> Result<(), StorageError> {
        let bytes = codec::encode(value).map_err(write_logs_err)?;
        self.meta.insert(key, bytes).map_err(write_logs_err)?;
        Ok(())
    }

    /// Last log index on disk (entries or purge marker); checked at start against `node.toml`.
    pub fn last_index(&self) -> Result<u64, StorageError> {
        let last = self.log.last().map_err(read_logs_err)?.map(|(k, _)| index_of(&k)).transpose()?;
        let purged: Option<LogId> = self.read_meta(KEY_LAST_PURGED)?;
        Ok(last.unwrap_or(0).max(purged.map_or(0, |p| p.index)))
    }
}

fn index_of(key: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| read_logs_err(std::io::Error::new(std::io::ErrorKind::InvalidData, "log key is not 8 bytes")))?;
    Ok(u64::from_be_bytes(bytes))
}

fn key_bound(b: Bound<&u64>) -> Bound<[u8; 8]> {
    match b {
        Bound::Included(i) => Bound::Included(i.to_be_bytes()),
        Bound::Excluded(i) => Bound::Excluded(i.to_be_bytes()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let range = (key_bound(range.start_bound()), key_bound(range.end_bound()));
        let mut out = Vec::new();
        for item in self.log.range::<[u8; 8], _>(range) {
            let (_, v) = item.map_err(read_logs_err)?;
            out.push(codec::decode(&v).map_err(read_logs_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_meta(KEY_LAST_PURGED)?;
        let last_entry = match self.log.last().map_err(read_logs_err)? {
            Some((_, v)) => Some(codec::decode::<Entry>(&v).map_err(read_logs_err)?.log_id),
            None => None,
        };
        // An entry below the purge marker can exist only transiently; the marker wins.
        let last = last_entry.max(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        // Committed entries are never truncated, so the committed index is a safe lower bound of
        // what the log must still hold at the next start.
        let last = self.read_committed().await?.map_or(0, |c| c.index);
        let mut file = self.node_file.lock().map_err(|_| poisoned_vote())?;
        file.update(|s| {
            s.vote = Some(*vote);
            s.last_acked_index = s.last_acked_index.max(last);
        })
        .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        let file = self.node_file.lock().map_err(|_| poisoned_vote())?;
        Ok(file.state().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed on its own: the next append's flush covers it, and a committed index that
        // lags after a crash only means openraft re-applies a little less on start.
        self.write_meta(KEY_COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = codec::encode(&entry).map_err(write_logs_err)?;
            batch.insert(&entry.log_id.index.to_be_bytes(), bytes);
        }
        self.log.apply_batch(batch).map_err(write_logs_err)?;
        let synced = self.storage.sync().await;
        let failed = synced.as_ref().err().map(|e| std::io::Error::new(e.kind(), e.to_string()));
        callback.log_io_completed(synced);
        match failed {
            Some(e) => Err(write_logs_err(e)),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for item in self.log.range(log_id.index.to_be_bytes()..) {
            let (k, _) = item.map_err(read_logs_err)?;
            batch.remove(k);
        }
        self.log.apply_batch(batch).map_err(write_logs_err)?;
        // Durable before returning: a truncated suffix must not reappear after a crash.
        self.storage.sync().await.map_err(write_logs_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // The marker goes first, so `get_log_state` never reports a gap. The flush also makes the
        // state machine durable up to the snapshot that allows this purge.
        self.write_meta(KEY_LAST_PURGED, &log_id)?;
        self.storage.sync().await.map_err(write_logs_err)?;
        let mut batch = sled::Batch::default();
        for item in self.log.range(..=log_id.index.to_be_bytes()) {
            let (k, _) = item.map_err(read_logs_err)?;
            batch.remove(k);
        }
        self.log.apply_batch(batch).map_err(write_logs_err)?;
        let mut file = self.node_file.lock().map_err(|_| poisoned_vote())?;
        file.update(|s| s.last_acked_index = s.last_acked_index.max(log_id.index))
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }
}

fn poisoned_vote() -> StorageError {
    io_err(ErrorSubject::Vote, ErrorVerb::Read, std::io::Error::other("node file lock poisoned"))
}
