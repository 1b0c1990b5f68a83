//! The state machine adapter: applies committed batches to the in-memory [`LockTable`], stages the
//! changed records and `last_applied` for sled (written as one batch off the apply path, see
//! [`super::state_writer`]), builds snapshot files and installs received ones into a fresh tree
//! generation that is switched to atomically.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;

use super::codec;
use super::event_history::{event_key, EventHistory, EVENT_TAG, KEY_FLOOR};
use super::node_file::{random_id, write_durably};
use super::state_writer::{StagedWrites, WriterThread};
use super::storage::{Storage, TREE_SM_META};
use super::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::lock::{CommandResult, Event, Finish, HistoryEvent, LockTable, Record, RecordKey};
use crate::metrics::metrics;

const KEY_GENERATION: &[u8] = b"generation";
/// State-machine metadata keys inside a generation tree. `!` sorts apart from record keys.
const KEY_APPLIED: &[u8] = b"!applied";
const KEY_MEMBERSHIP: &[u8] = b"!membership";

/// Receives what apply changed. Called after the state lock is released, in log order.
pub trait ApplyObserver: Send + Sync + 'static {
    /// `events` were applied; `last_applied` is the index of the last entry of the batch.
    fn applied(&self, last_applied: u64, events: Vec<Event>);
    /// A snapshot replaced the whole state.
    fn reset(&self);
}

/// The applied state, shared with readers (API handlers, the leader's lease clock).
pub struct Applied {
    pub table: LockTable,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

/// Everything the state machine shares with the rest of the node.
pub struct SharedState {
    state: RwLock<Applied>,
    applied_tx: watch::Sender<u64>,
    /// Committed lock events, for `Locks.Watch`.
    pub events: EventHistory,
}

impl SharedState {
    /// Read access to the applied state. Never held across an await.
    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Watches the last applied log index.
    pub fn applied_index(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }
}

/// What a snapshot file holds.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    records: Vec<(Vec<u8>, Record)>,
}

/// A [`SnapshotFile`] written from the table as it is: the same encoding, without a copy of every
/// record (with a million locks that copy was several hundred MiB).
#[derive(Serialize)]
struct SnapshotFileRef<'a> {
    meta: &'a SnapshotMeta,
    records: RecordsOf<'a>,
}

struct RecordsOf<'a>(&'a LockTable);

impl Serialize for RecordsOf<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let (count, records) = self.0.record_refs();
        let mut seq = serializer.serialize_seq(Some(count))?;
        for (key, record) in records {
            seq.serialize_element(&(key.to_bytes(), record))?;
        }
        seq.end()
    }
}

#[derive(Clone)]
pub struct StateMachine {
    storage: Storage,
    shared: Arc<SharedState>,
    tree: Arc<Mutex<(u64, sled::Tree)>>,
    sm_meta: sled::Tree,
    snapshot_dir: PathBuf,
    current_snapshot: Arc<Mutex<Option<(SnapshotMeta, PathBuf)>>>,
    /// Files snapshots are being received into; deleted once installed.
    incoming: Arc<Mutex<Vec<PathBuf>>>,
    observer: Arc<dyn ApplyObserver>,
    /// Apply's writes on their way to sled.
    writes: Arc<StagedWrites>,
    /// Writes what is still staged and stops the writer when the last clone goes.
    _writer: Arc<WriterThread>,
}

fn sm_err(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::new(ErrorSubject::StateMachine, verb, openraft::AnyError::new(&e)).into()
}

fn snap_err(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::new(ErrorSubject::Snapshot(None), verb, openraft::AnyError::new(&e)).into()
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

fn tree_name(generation: u64) -> String {
    format!("sm.{generation}")
}

impl StateMachine {
    /// Opens the current generation of the state, dropping leftovers of an interrupted snapshot
    /// install, and loads the latest snapshot file's metadata.
    pub fn open(
        storage: Storage,
        snapshot_dir: &Path,
        observer: Arc<dyn ApplyObserver>,
        watch_history: u64,
    ) -> std::io::Result<Self> {
        let sm_meta = storage.tree(TREE_SM_META)?;
        let generation = match sm_meta.get(KEY_GENERATION).map_err(std::io::Error::other)? {
            None => 0,
            Some(v) => u64::from_be_bytes(
                v.as_ref().try_into().map_err(|_| invalid("sm_meta/generation is not 8 bytes".into()))?,
            ),
        };
        let current = tree_name(generation);
        for name in storage.db.tree_names() {
            let name = String::from_utf8_lossy(&name).into_owned();
            if name.starts_with("sm.") && name != current {
                storage.db.drop_tree(name.as_bytes()).map_err(std::io::Error::other)?;
            }
        }
        let tree = storage.tree(&current)?;
        let (applied, floor) = load_tree(&tree).map_err(|e| invalid(format!("state tree {current}: {e}")))?;
        let last = applied.last_applied.map_or(0, |l| l.index);
        let (writes, writer) = StagedWrites::start()?;
        let events = EventHistory::open(tree.clone(), floor, last, watch_history, writes.clone())?;
        std::fs::create_dir_all(snapshot_dir)?;
        let current_snapshot = latest_snapshot(snapshot_dir)?;
        Ok(Self {
            storage,
            shared: Arc::new(SharedState { state: RwLock::new(applied), applied_tx: watch::Sender::new(last), events }),
            tree: Arc::new(Mutex::new((generation, tree))),
            sm_meta,
            snapshot_dir: snapshot_dir.to_path_buf(),
            current_snapshot: Arc::new(Mutex::new(current_snapshot)),
            incoming: Arc::default(),
            observer,
            writes,
            _writer: Arc::new(writer),
        })
    }

    pub fn shared(&self) -> Arc<SharedState> {
        self.shared.clone()
    }

    /// Apply's staged writes, which a purge of the log must write first.
    pub fn staged_writes(&self) -> Arc<StagedWrites> {
        self.writes.clone()
    }

    fn tree(&self) -> sled::Tree {
        self.tree.lock().unwrap_or_else(|p| p.into_inner()).1.clone()
    }
}

/// Loads the state and the stored event-history floor of a generation tree.
fn load_tree(tree: &sled::Tree) -> Result<(Applied, Option<u64>), String> {
    let mut last_applied = None;
    let mut membership = StoredMembership::default();
    let mut floor = None;
    let mut records = Vec::new();
    // Event keys sort last and are not state.
    for item in tree.range(..[EVENT_TAG]) {
        let (k, v) = item.map_err(|e| e.to_string())?;
        match k.as_ref() {
            KEY_APPLIED => last_applied = codec::decode(&v).map_err(|e| format!("!applied: {e}"))?,
            KEY_MEMBERSHIP => membership = codec::decode(&v).map_err(|e| format!("!membership: {e}"))?,
            KEY_FLOOR => {
                let bytes = v.as_ref().try_into().map_err(|_| format!("{}: not 8 bytes", KEY_FLOOR.escape_ascii()))?;
                floor = Some(u64::from_be_bytes(bytes));
            }
            _ => {
                let key = RecordKey::from_bytes(&k).map_err(|e| e.to_string())?;
                let record: Record = codec::decode(&v).map_err(|e| format!("record {key:?}: {e}"))?;
                records.push((key, record));
            }
        }
    }
    let table = LockTable::from_records(records).map_err(|e| e.to_string())?;
    Ok((Applied { table, last_applied, membership }, floor))
}

/// Finds the newest complete snapshot file (`snap-*.bin`) and reads its metadata.
fn latest_snapshot(dir: &Path) -> std::io::Result<Option<(SnapshotMeta, PathBuf)>> {
    let mut best: Option<(SnapshotMeta, PathBuf)> = None;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with("incoming-") || name.ends_with(".tmp") {
            std::fs::remove_file(&path)?;
            continue;
        }
        if !name.starts_with("snap-") {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        let file: SnapshotFile = codec::decode(&bytes).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        if best.as_ref().is_none_or(|(m, _)| m.last_log_id < file.meta.last_log_id) {
            best = Some((file.meta, path));
        }
    }
    Ok(best)
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let s = self.shared.read();
        Ok((s.last_applied, s.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<CommandResult>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut results = Vec::new();
        let mut events = Vec::new();
        let mut history = Vec::new();
        let (last, mut batch) = {
            let mut guard = self.shared.state.write().unwrap_or_else(|p| p.into_inner());
            let s = &mut *guard;
            for entry in entries {
                match entry.payload {
                    EntryPayload::Blank => results.push(Vec::new()),
                    EntryPayload::Normal(batch) => {
                        let first = events.len();
                        let index = entry.log_id.index;
                        results.push(s.table.apply(index, &batch, &mut events));
                        let new = events[first..].iter().filter_map(|e| HistoryEvent::from_event(e, batch.now_ms));
                        history.extend(new.enumerate().map(|(seq, e)| (event_key(index, seq as u32), e)));
                    }
                    EntryPayload::Membership(m) => {
                        s.membership = StoredMembership::new(Some(entry.log_id), m);
                        results.push(Vec::new());
                    }
                }
                s.last_applied = Some(entry.log_id);
            }
            let mut batch = Vec::new();
            for key in s.table.take_dirty() {
                let value = match s.table.record(&key) {
                    Some(r) => Some(codec::encode(&r).map_err(|e| sm_err(ErrorVerb::Write, e))?),
                    None => None,
                };
                batch.push((key.to_bytes(), value));
            }
            let applied = codec::encode(&s.last_applied).map_err(|e| sm_err(ErrorVerb::Write, e))?;
            batch.push((KEY_APPLIED.to_vec(), Some(applied)));
            let membership = codec::encode(&s.membership).map_err(|e| sm_err(ErrorVerb::Write, e))?;
            batch.push((KEY_MEMBERSHIP.to_vec(), Some(membership)));
            (s.last_applied.map_or(0, |l| l.index), batch)
        };
        for (key, event) in &history {
            batch.push((key.to_vec(), Some(codec::encode(event).map_err(|e| sm_err(ErrorVerb::Write, e))?)));
        }
        let floor =
            self.shared.events.trim_into(&mut batch, history.len() as u64).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        batch.push((KEY_FLOOR.to_vec(), Some(floor.to_be_bytes().to_vec())));
        // Staged, not written: the writer thread writes it (with later applies) as one sled
        // batch, and after a crash openraft re-applies from the log what did not reach sled.
        self.writes.stage(&self.tree(), batch).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let expired = events.iter().filter(|e| matches!(e, Event::Finished { how: Finish::Expired, .. })).count();
        metrics().expire.inc_by(expired as u64);
        self.observer.applied(last, events);
        self.shared.applied_tx.send_replace(last);
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        tracing::info!("receiving a snapshot from the leader");
        let path = self.snapshot_dir.join(format!("incoming-{}.part", random_id()));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.incoming.lock().unwrap_or_else(|p| p.into_inner()).push(path);
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        mut snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let mut bytes = Vec::new();
        snapshot.seek(SeekFrom::Start(0)).await.map_err(|e| snap_err(ErrorVerb::Read, e))?;
        snapshot.read_to_end(&mut bytes).await.map_err(|e| snap_err(ErrorVerb::Read, e))?;
        let file: SnapshotFile = codec::decode(&bytes).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        let mut records = Vec::with_capacity(file.records.len());
        for (k, r) in file.records {
            let key = RecordKey::from_bytes(&k).map_err(|e| snap_err(ErrorVerb::Read, invalid(e.to_string())))?;
            records.push((key, r));
        }
        // What apply staged belongs to the current generation: written there before the switch.
        self.writes.write_now().map_err(|e| snap_err(ErrorVerb::Write, e))?;

        // Load into a fresh generation; the old one stays current until the switch below, so a
        // crash anywhere before it leaves the old state whole (and the new tree is dropped at
        // the next start).
        let generation = self.tree.lock().unwrap_or_else(|p| p.into_inner()).0 + 1;
        let name = tree_name(generation);
        self.storage.db.drop_tree(name.as_bytes()).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let tree = self.storage.tree(&name).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let mut batch = sled::Batch::default();
        for (key, record) in &records {
            batch.insert(key.to_bytes(), codec::encode(record).map_err(|e| snap_err(ErrorVerb::Write, e))?);
        }
        batch.insert(KEY_APPLIED, codec::encode(&meta.last_log_id).map_err(|e| snap_err(ErrorVerb::Write, e))?);
        batch.insert(KEY_MEMBERSHIP, codec::encode(&meta.last_membership).map_err(|e| snap_err(ErrorVerb::Write, e))?);
        let last = meta.last_log_id.map_or(0, |l| l.index);
        // The events before the snapshot were never seen here: the history starts after it.
        batch.insert(KEY_FLOOR, &(last + 1).to_be_bytes());
        // Built after the batch, from the records themselves rather than a copy of them.
        let table = LockTable::from_records(records).map_err(|e| snap_err(ErrorVerb::Read, invalid(e.to_string())))?;
        tree.apply_batch(batch).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.storage.sync().await.map_err(|e| snap_err(ErrorVerb::Write, e))?;

        let path = self.write_snapshot_file(meta, &bytes).await?;

        // The switch: one key, made durable.
        self.sm_meta.insert(KEY_GENERATION, &generation.to_be_bytes()).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.storage.sync().await.map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let old = {
            let mut t = self.tree.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *t, (generation, tree.clone())).0
        };
        self.shared.events.reset(tree, last);
        {
            let mut s = self.shared.state.write().unwrap_or_else(|p| p.into_inner());
            *s = Applied { table, last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
        }
        self.storage.db.drop_tree(tree_name(old).as_bytes()).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.set_current_snapshot(meta, path);
        // openraft receives one snapshot at a time, so every incoming file is done with.
        for part in self.incoming.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            let _ = std::fs::remove_file(part);
        }
        tracing::info!(last_log_id = %meta.last_log_id.map(|l| l.to_string()).unwrap_or_default(), "installed snapshot");
        self.observer.reset();
        self.shared.applied_tx.send_replace(last);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = self.current_snapshot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match current {
            None => Ok(None),
            Some((meta, path)) => {
                let file = tokio::fs::File::open(&path).await.map_err(|e| snap_err(ErrorVerb::Read, e))?;
                Ok(Some(Snapshot { meta, snapshot: Box::new(file) }))
            }
        }
    }
}

impl StateMachine {
    async fn write_snapshot_file(&self, meta: &SnapshotMeta, bytes: &[u8]) -> Result<PathBuf, StorageError> {
        let index = meta.last_log_id.map_or(0, |l| l.index);
        let path = self.snapshot_dir.join(format!("snap-{index:020}-{}.bin", meta.snapshot_id));
        let (p, b) = (path.clone(), bytes.to_vec());
        tokio::task::spawn_blocking(move || write_durably(&p, &b))
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, std::io::Error::other(e)))?
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        Ok(path)
    }

    /// Makes `path` the current snapshot if it is newer than the current one, then deletes
    /// snapshot files older than the current one. Building and installing can run at the same
    /// time, so neither may replace a newer snapshot or delete the other's file.
    fn set_current_snapshot(&self, meta: &SnapshotMeta, path: PathBuf) {
        let mut current = self.current_snapshot.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_none_or(|(m, _)| m.last_log_id <= meta.last_log_id) {
            *current = Some((meta.clone(), path));
        }
        let Some((m, keep)) = current.as_ref() else { return };
        let keep_index = m.last_log_id.map_or(0, |l| l.index);
        let Ok(dir) = std::fs::read_dir(&self.snapshot_dir) else { return };
        for entry in dir.flatten() {
            let p = entry.path();
            let older = snapshot_index(&p).is_some_and(|i| i < keep_index);
            if older && &p != keep {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

/// The log index in a snapshot file name (`snap-<index>-<id>.bin`).
fn snapshot_index(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("snap-")?.split('-').next()?.parse().ok()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let started = std::time::Instant::now();
        // Encoded under the read lock, straight from the table: apply waits for it, as it did for
        // the copy this replaces.
        let (meta, records, bytes) = {
            let s = self.shared.read();
            let last_log_id = s.last_applied;
            let snapshot_id = format!(
                "{}-{}-{}",
                last_log_id.map_or(0, |l| l.leader_id.term),
                last_log_id.map_or(0, |l| l.index),
                &random_id()[..8]
            );
            let meta = SnapshotMeta { last_log_id, last_membership: s.membership.clone(), snapshot_id };
            let file = SnapshotFileRef { meta: &meta, records: RecordsOf(&s.table) };
            let bytes = codec::encode(&file).map_err(|e| snap_err(ErrorVerb::Write, e))?;
            let records = s.table.record_refs().0;
            (meta, records, bytes)
        };
        let path = self.write_snapshot_file(&meta, &bytes).await?;
        // Opened before it can be replaced: an open file stays readable after its deletion.
        let f = tokio::fs::File::open(&path).await.map_err(|e| snap_err(ErrorVerb::Read, e))?;
        self.set_current_snapshot(&meta, path);
        metrics().snapshots.inc();
        metrics().snapshot_seconds.observe(started.elapsed().as_secs_f64());
        tracing::info!(
            snapshot_id = %meta.snapshot_id,
            records,
            bytes = bytes.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "built snapshot"
        );
        Ok(Snapshot { meta, snapshot: Box::new(f) })
    }
}
