//! The Raft log on sled (tree `raft_log`, keys are big-endian indexes) and the vote in
//! `node.toml`. An append is acknowledged to openraft only after it is on disk.
//!
//! `node.toml` also carries `last_acked_index`, a lower bound of how far the log on disk reaches
//! (see [`AckedMark`]). sled recovers silently to an earlier state when its data file is
//! truncated or damaged; the start-up check against this mark turns that into a refusal.

// openraft's StorageError is large, and these helpers return it as openraft demands.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError};
use tokio::sync::watch;

use super::codec;
use super::node_file::NodeFile;
use super::state_writer::StagedWrites;
use super::storage::{fail_point, sled_io, Storage, TREE_LOG, TREE_LOG_META};
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
    mark: Arc<AckedMark>,
    /// The state machine's last applied index and its writes not yet in sled (see
    /// [`LogStore::purge_behind`]).
    sm_applied: Option<(watch::Receiver<u64>, Arc<StagedWrites>)>,
    /// The last committed index openraft told this node (0 before any), for `/readyz`.
    committed: Arc<AtomicU64>,
}

/// How long a purge waits for the state machine to install the snapshot behind it before the
/// node gives up (fail-stop) rather than hang.
const PURGE_WAIT: Duration = Duration::from_secs(60);

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
        let mark = AckedMark::start(node_file.clone())?;
        Ok(Self {
            log: storage.tree(TREE_LOG)?,
            meta: storage.tree(TREE_LOG_META)?,
            storage,
            node_file,
            mark,
            sm_applied: None,
            committed: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The last committed index this node knows of, kept current as openraft saves it.
    pub fn committed_index(&self) -> Arc<AtomicU64> {
        self.committed.clone()
    }

    /// Makes every purge wait until the state machine has reached the purged index.
    ///
    /// openraft 0.9 purges the log behind a snapshot received from the leader while the state
    /// machine is still installing it (the purge has no condition on that install). A purge
    /// marker made durable first leaves, after a crash, a state machine behind a log that can no
    /// longer fill the gap: openraft panics at the next start. `applied` is the state machine's
    /// last applied index, which a snapshot install raises only once the snapshot is durable.
    /// `staged` are apply's writes not yet in sled: a purge writes them first, so the sync before
    /// it makes the state durable up to the purged index.
    pub fn purge_behind(&mut self, applied: watch::Receiver<u64>, staged: Arc<StagedWrites>) {
        self.sm_applied = Some((applied, staged));
    }

    async fn wait_until_applied(&self, index: u64) -> Result<(), StorageError> {
        let Some((mut applied, staged)) = self.sm_applied.clone() else { return Ok(()) };
        let reached = tokio::time::timeout(PURGE_WAIT, applied.wait_for(|&a| a >= index)).await;
        let why = match reached {
            Ok(Ok(_)) => return staged.write_now().map_err(write_logs_err),
            Ok(Err(_)) => "the state machine has stopped".to_string(),
            Err(_) => format!("the state machine did not reach index {index} within {PURGE_WAIT:?}"),
        };
        Err(write_logs_err(std::io::Error::other(format!("cannot purge the log up to {index}: {why}"))))
    }

    /// The index of the last purged entry (0 if none), for the start-up checks.
    pub fn last_purged_index(&self) -> Result<u64, StorageError> {
        Ok(self.read_meta::<LogId>(KEY_LAST_PURGED)?.map_or(0, |p| p.index))
    }

    /// A write error of sled's data file, naming the operation and the file.
    fn write_failed(&self, operation: &str, e: std::io::Error) -> StorageError {
        write_logs_err(self.storage.failed(operation, e))
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
        self.mark.check()?;
        let mut file = self.node_file.lock().map_err(|_| poisoned_vote())?;
        file.update(|s| s.vote = Some(*vote)).map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    /// The stored vote, except that a node's own committed vote comes back uncommitted. openraft
    /// 0.9 reads the vote only at start, and restarts a node whose vote is its own committed one
    /// as leader of that term at once, with the commit index it last saved (not synced on its
    /// own) as the floor of its read index: a linearizable read could then miss an entry it had
    /// acknowledged just before a crash. Uncommitted, the node starts as a follower and a leader
    /// must be elected, whose first entry, in a new term, covers everything acknowledged.
    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        let file = self.node_file.lock().map_err(|_| poisoned_vote())?;
        let me = file.state().node_id;
        Ok(file.state().vote.map(|v| {
            let leader = v.leader_id();
            if v.is_committed() && leader.voted_for() == Some(me) {
                Vote::new(leader.get_term(), me)
            } else {
                v
            }
        }))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed on its own: the next append's flush covers it, and a committed index that
        // lags after a crash only means openraft re-applies a little less on start.
        self.mark.check()?;
        self.write_meta(KEY_COMMITTED, &committed)?;
        self.committed.fetch_max(committed.map_or(0, |c| c.index), Ordering::Relaxed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.mark.check()?;
        // Plain inserts, not a sled batch: every batch makes sled write out its current buffer
        // synchronously (pwrite + sync_file_range), twice per append. The entries need no
        // atomicity of their own: none is acknowledged before the sync below, and a crash before
        // it leaves a prefix of sled's log, so a prefix of these entries.
        let mut last = None;
        for entry in entries {
            let bytes = codec::encode(&entry).map_err(write_logs_err)?;
            self.log
                .insert(entry.log_id.index.to_be_bytes(), bytes)
                .map_err(|e| self.write_failed("appending log entries to", sled_io(e)))?;
            last = Some(entry.log_id.index);
        }
        let synced = match fail_point("log-append-fsync") {
            Ok(()) => self.storage.sync().await,
            Err(e) => Err(self.storage.failed("fdatasync of", e)),
        };
        let failed = synced.as_ref().err().map(|e| std::io::Error::new(e.kind(), e.to_string()));
        // Never acknowledged unless durable: on error openraft gets the error and stops.
        callback.log_io_completed(synced);
        if let Some(e) = failed {
            return Err(write_logs_err(e));
        }
        if let Some(last) = last {
            self.mark.advance(last);
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // The mark goes down first: it must never claim entries that are about to go.
        self.mark.lower(log_id.index.saturating_sub(1))?;
        let mut batch = sled::Batch::default();
        for item in self.log.range(log_id.index.to_be_bytes()..) {
            let (k, _) = item.map_err(read_logs_err)?;
            batch.remove(k);
        }
        self.log.apply_batch(batch).map_err(|e| self.write_failed("truncating the log in", sled_io(e)))?;
        // Durable before returning: a truncated suffix must not reappear after a crash.
        self.storage.sync().await.map_err(write_logs_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.wait_until_applied(log_id.index).await?;
        // The marker goes first, so `get_log_state` never reports a gap. The flush also makes the
        // state machine durable up to the snapshot that allows this purge.
        self.write_meta(KEY_LAST_PURGED, &log_id)?;
        self.storage.sync().await.map_err(write_logs_err)?;
        let mut batch = sled::Batch::default();
        for item in self.log.range(..=log_id.index.to_be_bytes()) {
            let (k, _) = item.map_err(read_logs_err)?;
            batch.remove(k);
        }
        self.log.apply_batch(batch).map_err(|e| self.write_failed("purging the log in", sled_io(e)))?;
        // The purge marker is durable, so the log reaches at least this far.
        self.mark.advance(log_id.index);
        Ok(())
    }
}

fn poisoned_vote() -> StorageError {
    io_err(ErrorSubject::Vote, ErrorVerb::Read, std::io::Error::other("node file lock poisoned"))
}

/// Keeps `last_acked_index` in `node.toml` just behind the durable end of the log.
///
/// Raised after every durable append (and purge), lowered before a truncation, so it is always a
/// lower bound of what the log on disk holds, and a start that finds less knows the directory lost
/// acknowledged entries. Raising is done by a thread of its own, at most every
/// [`AckedMark::PACE`], so the Raft path never waits on node.toml's fsyncs; the mark trails the
/// log by the entries of the last moments, which a start cannot tell from a torn tail.
pub struct AckedMark {
    shared: Arc<MarkShared>,
}

struct MarkShared {
    node_file: Arc<Mutex<NodeFile>>,
    state: Mutex<MarkState>,
    wake: Condvar,
}

struct MarkState {
    /// What the file should say.
    wanted: u64,
    /// What the file says.
    written: u64,
    closed: bool,
    /// Why saving node.toml failed; the next storage call returns it, which stops the node.
    failed: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AckedMark {
    /// Pause between two saves of node.toml, to keep its fsyncs off the log's.
    const PACE: Duration = Duration::from_millis(100);

    fn start(node_file: Arc<Mutex<NodeFile>>) -> std::io::Result<Arc<Self>> {
        let written = lock(&node_file).state().last_acked_index;
        let shared = Arc::new(MarkShared {
            node_file,
            state: Mutex::new(MarkState { wanted: written, written, closed: false, failed: None }),
            wake: Condvar::new(),
        });
        let worker = shared.clone();
        std::thread::Builder::new().name("acked-mark".into()).spawn(move || worker.run())?;
        Ok(Arc::new(Self { shared }))
    }

    /// The log is durable up to `index`.
    fn advance(&self, index: u64) {
        let mut st = lock(&self.shared.state);
        if index > st.wanted {
            st.wanted = index;
            self.shared.wake.notify_all();
        }
    }

    /// Entries after `index` are about to be removed: the mark is at most `index` when this
    /// returns.
    fn lower(&self, index: u64) -> Result<(), StorageError> {
        // node.toml's lock first (as the worker takes it): the worker cannot save a higher value
        // between the two steps.
        let mut file = lock(&self.shared.node_file);
        let mut st = lock(&self.shared.state);
        st.wanted = st.wanted.min(index);
        if file.state().last_acked_index <= index {
            return Ok(());
        }
        let saved = file.update(|s| s.last_acked_index = index);
        match saved {
            Ok(()) => {
                st.written = index;
                Ok(())
            }
            Err(e) => {
                st.failed = Some(e.to_string());
                Err(io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
            }
        }
    }

    /// Fails once saving the mark has failed.
    fn check(&self) -> Result<(), StorageError> {
        match &lock(&self.shared.state).failed {
            None => Ok(()),
            Some(e) => Err(io_err(ErrorSubject::Vote, ErrorVerb::Write, std::io::Error::other(e.clone()))),
        }
    }
}

impl Drop for AckedMark {
    fn drop(&mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.wake.notify_all();
    }
}

impl MarkShared {
    fn run(&self) {
        loop {
            {
                let mut st = lock(&self.state);
                while st.wanted == st.written && !st.closed {
                    st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                if st.wanted == st.written || st.failed.is_some() {
                    return; // closed, nothing left to save
                }
            }
            let mut file = lock(&self.node_file);
            let wanted = lock(&self.state).wanted;
            let saved = file.update(|s| s.last_acked_index = wanted);
            // Recorded before node.toml's lock is let go, so a `lower` cannot come in between.
            let mut st = lock(&self.state);
            drop(file);
            match saved {
                Ok(()) => st.written = wanted,
                Err(e) => {
                    tracing::error!(error = %e, "cannot save the acknowledged log index; the node stops");
                    st.failed = Some(e.to_string());
                    return;
                }
            }
            // Paced: advances meanwhile are coalesced into the next save; closing cuts it short.
            let until = Instant::now() + AckedMark::PACE;
            while !st.closed {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                st = self.wake.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(dir: &std::path::Path) -> u64 {
        NodeFile::open(dir).unwrap().unwrap().state().last_acked_index
    }

    #[test]
    fn the_acked_mark_follows_the_log_and_is_lowered_before_a_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(Mutex::new(NodeFile::create(dir.path(), 1).unwrap()));
        let mark = AckedMark::start(file).unwrap();
        mark.advance(7);
        mark.advance(10);
        let deadline = Instant::now() + Duration::from_secs(10);
        while saved(dir.path()) != 10 {
            assert!(Instant::now() < deadline, "the mark was not saved");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Lowering is durable when it returns; a lower advance does not raise it again.
        mark.lower(4).unwrap();
        assert_eq!(saved(dir.path()), 4);
        mark.advance(3);
        mark.check().unwrap();
        drop(mark);
        assert_eq!(saved(dir.path()), 4);
    }

    #[tokio::test]
    async fn a_purge_waits_until_the_state_machine_has_reached_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("db"), 8 << 20).unwrap();
        let file = Arc::new(Mutex::new(NodeFile::create(dir.path(), 1).unwrap()));
        let mut log = LogStore::open(storage, file).unwrap();
        let (applied, rx) = watch::channel(3);
        let (staged, _writer) = StagedWrites::start().unwrap();
        log.purge_behind(rx, staged);
        let upto = LogId::new(openraft::CommittedLeaderId::new(1, 1), 10);
        // As behind a snapshot still being installed: the purge must not go first.
        let mut purge = std::pin::pin!({
            let mut log = log.clone();
            async move { log.purge(upto).await }
        });
        assert!(tokio::time::timeout(Duration::from_millis(200), &mut purge).await.is_err(), "purged too early");
        assert_eq!(log.last_purged_index().unwrap(), 0);
        applied.send_replace(10);
        purge.await.unwrap();
        assert_eq!(log.last_purged_index().unwrap(), 10);
    }
}
