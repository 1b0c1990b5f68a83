//! Writes what apply changed to the state tree in sled, off the apply path.
//!
//! Every sled batch makes sled write out its current buffer and the batch's manifest
//! synchronously (`pwrite` + `sync_file_range` each, in the calling thread). Done inside apply,
//! that was two disk waits on every node for every entry, one of them on the leader's path to
//! answering the client. Apply now only *stages* its writes here; a thread of its own writes
//! everything staged as one sled batch every [`PACE`], so one batch still carries the changed
//! records together with the `!applied` index they belong to, and sled recovers it whole or not
//! at all.
//!
//! Nothing is lost by writing later: the Raft log holds every applied entry until a purge, and
//! after a crash openraft re-applies the entries after the stored `!applied`. The one place that
//! needs the state on disk is a purge of the log behind it, which calls [`StagedWrites::write_now`]
//! before it syncs. Readers of the tree that must see every applied change (the watch history)
//! read through [`StagedWrites::overlay`].

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

/// How long staged writes wait to be joined by more before they go to sled.
pub const PACE: Duration = Duration::from_millis(20);
/// Staged keys past which apply writes them itself rather than let them pile up. A sled batch
/// holds sled's global write lock while it is applied, stalling log appends and their flush, so
/// batches stay small even when apply runs far ahead (a restart re-applying, a follower catching
/// up).
const MAX_STAGED: usize = 8 * 1024;

/// One staged write: `None` removes the key.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// Writes staged by apply and not yet in sled, shared by apply, the writer thread, the log's
/// purge and the readers of the tree.
pub struct StagedWrites {
    staged: Mutex<Staged>,
    /// Held for writing while a batch goes to sled, for reading by [`StagedWrites::overlay`]
    /// users: a reader sees every write either staged or in the tree, never in between.
    moving: RwLock<()>,
    wake: Condvar,
}

#[derive(Default)]
struct Staged {
    /// The tree the writes belong to (the state tree of the current generation).
    tree: Option<sled::Tree>,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// When the oldest staged write was staged.
    since: Option<Instant>,
    /// Why writing to sled failed; every later call returns it (the node stops).
    failed: Option<String>,
    closed: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StagedWrites {
    /// Starts the writer thread. It ends, writing what is left, when the returned handle drops.
    pub fn start() -> std::io::Result<(Arc<Self>, WriterThread)> {
        let writes =
            Arc::new(Self { staged: Mutex::new(Staged::default()), moving: RwLock::new(()), wake: Condvar::new() });
        let worker = writes.clone();
        let thread = std::thread::Builder::new().name("state-writer".into()).spawn(move || worker.run())?;
        Ok((writes.clone(), WriterThread { writes, thread: Some(thread) }))
    }

    /// Stages `writes` for `tree`, after every write staged before. Fails once a write to sled
    /// has failed.
    pub fn stage(&self, tree: &sled::Tree, writes: Vec<Write>) -> std::io::Result<()> {
        let mut st = lock(&self.staged);
        if let Some(e) = &st.failed {
            return Err(std::io::Error::other(e.clone()));
        }
        if st.tree.as_ref().is_some_and(|t| t.name() != tree.name()) && !st.writes.is_empty() {
            // Another generation's writes are still staged: they go first, to their own tree.
            drop(st);
            self.write_now()?;
            st = lock(&self.staged);
        }
        st.tree = Some(tree.clone());
        st.since.get_or_insert_with(Instant::now);
        st.writes.extend(writes);
        let full = st.writes.len() >= MAX_STAGED;
        drop(st);
        self.wake.notify_all();
        if full {
            self.write_now()?;
        }
        Ok(())
    }

    /// Writes everything staged so far to sled as one batch (not synced: the caller's
    /// `Storage::sync` makes it durable).
    pub fn write_now(&self) -> std::io::Result<()> {
        let _moving = self.moving.write().unwrap_or_else(|p| p.into_inner());
        let (tree, writes) = {
            let mut st = lock(&self.staged);
            if let Some(e) = &st.failed {
                return Err(std::io::Error::other(e.clone()));
            }
            st.since = None;
            (st.tree.clone(), std::mem::take(&mut st.writes))
        };
        let Some(tree) = tree.filter(|_| !writes.is_empty()) else { return Ok(()) };
        let mut batch = sled::Batch::default();
        for (k, v) in writes {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        tree.apply_batch(batch).map_err(|e| {
            let e = std::io::Error::other(format!("writing the state machine to sled: {e}"));
            lock(&self.staged).failed = Some(e.to_string());
            e
        })
    }

    /// Holds off writes to sled while the caller reads the tree; with
    /// [`StagedWrites::staged_range`] taken under it, staged writes and the tree together hold
    /// every staged write exactly once.
    pub fn overlay(&self) -> RwLockReadGuard<'_, ()> {
        self.moving.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The staged writes with keys in `range`, in key order.
    pub fn staged_range(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Vec<Write> {
        lock(&self.staged).writes.range(range).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    fn run(&self) {
        loop {
            {
                let mut st = lock(&self.staged);
                // Wait for something staged, then for PACE after it (closing cuts that short).
                loop {
                    if st.failed.is_some() {
                        return;
                    }
                    match st.since {
                        Some(since) if st.closed || since.elapsed() >= PACE => break,
                        Some(since) => {
                            let left = PACE.saturating_sub(since.elapsed());
                            st = self.wake.wait_timeout(st, left).unwrap_or_else(|p| p.into_inner()).0;
                        }
                        None if st.closed => return,
                        None => st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner()),
                    }
                }
            }
            if let Err(e) = self.write_now() {
                tracing::error!(error = %e, "cannot write the state machine; the node stops at its next apply");
                return;
            }
        }
    }
}

/// The writer thread's handle: dropping it writes what is still staged and joins the thread.
pub struct WriterThread {
    writes: Arc<StagedWrites>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        lock(&self.writes.staged).closed = true;
        self.writes.wake.notify_all();
        if let Some(t) = self.thread.take() {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> Write {
        (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()))
    }

    #[test]
    fn staged_writes_reach_the_tree_in_order_and_are_readable_before() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("sm.0").unwrap();
        let (writes, thread) = StagedWrites::start().unwrap();
        writes.stage(&tree, vec![put("a", "1"), put("b", "1")]).unwrap();
        writes.stage(&tree, vec![put("a", "2"), (b"b".to_vec(), None)]).unwrap();
        // Before the writer has run, the staged view has the latest value of each key.
        {
            let _g = writes.overlay();
            let staged = writes.staged_range((Bound::Unbounded, Bound::Unbounded));
            let in_tree = tree.get("a").unwrap();
            assert!(
                staged == vec![put("a", "2"), (b"b".to_vec(), None)] || in_tree.as_deref() == Some(b"2".as_slice()),
                "a write is neither staged nor in the tree"
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while tree.get("a").unwrap().as_deref() != Some(b"2".as_slice()) {
            assert!(Instant::now() < deadline, "the writer thread did not write within 10 s");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(tree.get("b").unwrap(), None);
        // What is staged at the end is written when the handle drops.
        writes.stage(&tree, vec![put("c", "3")]).unwrap();
        drop(thread);
        assert_eq!(tree.get("c").unwrap().as_deref(), Some(b"3".as_slice()));
    }

    #[test]
    fn writes_of_an_old_generation_go_to_its_own_tree_first() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let (old, new) = (db.open_tree("sm.0").unwrap(), db.open_tree("sm.1").unwrap());
        let (writes, _thread) = StagedWrites::start().unwrap();
        writes.stage(&old, vec![put("k", "old")]).unwrap();
        writes.stage(&new, vec![put("k", "new")]).unwrap();
        assert_eq!(old.get("k").unwrap().as_deref(), Some(b"old".as_slice()));
        writes.write_now().unwrap();
        assert_eq!(new.get("k").unwrap().as_deref(), Some(b"new".as_slice()));
    }
}
