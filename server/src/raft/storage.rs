//! The node's sled database: opened once, behind a wrapper that makes writes durable.
//!
//! sled 0.34's `flush_async` ends in `sync_file_range`, which neither persists the file size nor
//! flushes the drive cache, so [`Storage::sync`] also `fdatasync`s sled's data file. Any storage
//! error is fatal: callers hand it to openraft as a `StorageError`, which stops the node, and the
//! error names the operation and the file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use tokio::sync::oneshot;

/// Trees of the node's sled Db.
pub const TREE_LOG: &str = "raft_log";
pub const TREE_LOG_META: &str = "raft_meta";
pub const TREE_SM_META: &str = "sm_meta";
/// sled's data file inside the Db directory.
pub const DATA_FILE: &str = "db";

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: cannot open the database: {reason}; if it is damaged, wipe the data directory and re-add this node as a new member")]
    Damaged { path: PathBuf, reason: String },
    // Not a `#[source]`: the message already carries it, and `{:#}` would print it twice.
    #[error("{path}: cannot {action}: {error}")]
    Io { path: PathBuf, action: &'static str, error: std::io::Error },
    #[error("{path} is missing, but node.toml shows this node has stored Raft state; the data directory was damaged: wipe it and re-add this node as a new member")]
    Missing { path: PathBuf },
}

/// A node's sled Db plus the handle used to fdatasync its data file.
#[derive(Clone)]
pub struct Storage {
    pub db: sled::Db,
    data_path: Arc<PathBuf>,
    flusher: Arc<Flusher>,
}

/// The flush thread's handle. Dropped with the last [`Storage`]: it closes the channel and joins
/// the thread, so sled's final flush and its file lock are done with when the Db goes.
struct Flusher {
    requests: Mutex<Option<mpsc::Sender<FlushWaiter>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.requests.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

/// Answered with the failed step and its error, if the flush failed.
type FlushWaiter = oneshot::Sender<Result<(), (&'static str, std::io::ErrorKind, String)>>;

/// The thread that makes writes durable: it takes every waiting request, runs one sled flush
/// and one fdatasync for all of them, and answers each. One thread hop per flush (instead of
/// sled's pool, then a blocking task) and one flush for callers that arrive together.
///
/// A failure is final: Linux reports a failed writeback to fdatasync once, so a later fdatasync
/// could succeed over pages that were lost. Every later request gets the first error.
fn run_flusher(db: sled::Db, data_file: File, requests: mpsc::Receiver<FlushWaiter>) {
    let mut failed: Option<(&'static str, std::io::ErrorKind, String)> = None;
    while let Ok(first) = requests.recv() {
        let mut waiting = vec![first];
        waiting.extend(requests.try_iter());
        if failed.is_none() {
            let started = std::time::Instant::now();
            let result = match db.flush() {
                Err(e) => Err(("flushing", sled_io(e))),
                Ok(_) => data_file.sync_data().map_err(|e| ("fdatasync of", e)),
            };
            crate::metrics::metrics().flush_seconds.observe(started.elapsed().as_secs_f64());
            failed = result.err().map(|(op, e)| (op, e.kind(), e.to_string()));
        }
        for w in waiting {
            let _ = w.send(failed.clone().map_or(Ok(()), Err));
        }
    }
}

impl Storage {
    /// Opens (or creates) the sled Db in `dir`. sled can panic on a corrupt directory; that is
    /// caught and reported as [`OpenError::Damaged`], never turned into an empty start.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, OpenError> {
        // sled's own errors do not say which file failed: try its files first.
        for name in [DATA_FILE, "conf"] {
            let path = dir.join(name);
            match std::fs::OpenOptions::new().read(true).write(true).open(&path) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(OpenError::Io { path, action: "open it for reading and writing", error }),
            }
        }
        let config = sled::Config::new().path(dir).cache_capacity(cache_bytes).flush_every_ms(Some(500));
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || config.open()));
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(OpenError::Damaged { path: dir.to_path_buf(), reason: e.to_string() }),
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                    .unwrap_or_else(|| "sled panicked while opening".into());
                return Err(OpenError::Damaged { path: dir.to_path_buf(), reason });
            }
        };
        let data_path = dir.join(DATA_FILE);
        let data_file = File::open(&data_path).map_err(|error| OpenError::Io {
            path: data_path.clone(),
            action: "open it",
            error,
        })?;
        let (tx, rx) = mpsc::channel();
        let flush_db = db.clone();
        let thread = std::thread::Builder::new()
            .name("storage-flush".into())
            .spawn(move || run_flusher(flush_db, data_file, rx))
            .map_err(|error| OpenError::Io { path: data_path.clone(), action: "start its flush thread for", error })?;
        let flusher = Flusher { requests: Mutex::new(Some(tx)), thread: Mutex::new(Some(thread)) };
        Ok(Self { db, data_path: Arc::new(data_path), flusher: Arc::new(flusher) })
    }

    /// For a node that has stored Raft state before: refuses a Db directory or data file that
    /// has gone missing, which sled would otherwise silently recreate empty.
    pub fn check_present(dir: &Path) -> Result<(), OpenError> {
        for path in [dir.to_path_buf(), dir.join(DATA_FILE)] {
            match std::fs::symlink_metadata(&path) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(OpenError::Missing { path }),
                Err(error) => return Err(OpenError::Io { path, action: "look it up", error }),
            }
        }
        Ok(())
    }

    /// sled's data file.
    pub fn data_path(&self) -> &Path {
        &self.data_path
    }

    /// Makes every write so far durable: sled flush, then fdatasync of the data file. The error
    /// names the step and the file.
    pub async fn sync(&self) -> std::io::Result<()> {
        fail_point("storage-sync").map_err(|e| self.failed("flushing", e))?;
        let (tx, rx) = oneshot::channel();
        let sent = match &*self.flusher.requests.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(requests) => requests.send(tx).is_ok(),
            None => false,
        };
        if !sent {
            return Err(self.failed("flushing", std::io::Error::other("the flush thread has stopped")));
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err((operation, kind, error))) => {
                Err(std::io::Error::new(kind, format!("{operation} {}: {error}", self.data_path.display())))
            }
            Err(_) => Err(self.failed("flushing", std::io::Error::other("the flush thread has stopped"))),
        }
    }

    /// `e` with the operation and sled's data file in its message; the kind is kept.
    pub fn failed(&self, operation: &str, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(e.kind(), format!("{operation} {}: {e}", self.data_path.display()))
    }

    pub fn tree(&self, name: &str) -> std::io::Result<sled::Tree> {
        self.db.open_tree(name).map_err(std::io::Error::other)
    }
}

/// A sled error as an `io::Error`, keeping the kind of an I/O failure (e.g. no space left).
pub fn sled_io(e: sled::Error) -> std::io::Error {
    match e {
        sled::Error::Io(io) => os_error_of(&io).unwrap_or(io),
        other => std::io::Error::other(other),
    }
}

/// sled re-wraps OS errors as text (`Os { code: 28, kind: StorageFull, .. }`); recovers the OS
/// error, so the message reads "No space left on device (os error 28)".
fn os_error_of(io: &std::io::Error) -> Option<std::io::Error> {
    if io.raw_os_error().is_some() {
        return None;
    }
    let text = io.to_string();
    let rest = text.strip_prefix("Os { code: ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().map(std::io::Error::from_raw_os_error)
}

/// Fail point `name` (feature `buggy` only, configured by the `FAILPOINTS` environment variable):
/// with the action `return` the storage operation fails with an injected I/O error. Normal builds
/// compile this to `Ok(())`.
#[cfg(feature = "buggy")]
pub(crate) fn fail_point(name: &str) -> std::io::Result<()> {
    fail::fail_point!(name, |arg: Option<String>| Err(std::io::Error::other(format!(
        "injected I/O error (fail point {name}{})",
        arg.map(|a| format!(": {a}")).unwrap_or_default()
    ))));
    Ok(())
}

#[cfg(not(feature = "buggy"))]
#[inline(always)]
pub(crate) fn fail_point(_name: &str) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_os_error_rewrapped_by_sled_reads_as_the_os_error() {
        let wrapped = std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!("{:?}", std::io::Error::from_raw_os_error(28)),
        );
        let e = sled_io(sled::Error::Io(wrapped));
        assert_eq!(e.raw_os_error(), Some(28));
        assert!(e.to_string().contains("(os error 28)"), "{e}");
    }
}
