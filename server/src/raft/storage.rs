//! The node's sled database: opened once, behind a wrapper that makes writes durable.
//!
//! sled 0.34's `flush_async` ends in `sync_file_range`, which neither persists the file size nor
//! flushes the drive cache, so [`Storage::sync`] also `fdatasync`s sled's data file. Any storage
//! error is fatal: callers hand it to openraft as a `StorageError`, which stops the node.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Trees of the node's sled Db.
pub const TREE_LOG: &str = "raft_log";
pub const TREE_LOG_META: &str = "raft_meta";
pub const TREE_SM_META: &str = "sm_meta";

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: cannot open the database: {reason}; if it is damaged, wipe the data directory and re-add this node as a new member")]
    Damaged { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// A node's sled Db plus the handle used to fdatasync its data file.
#[derive(Clone)]
pub struct Storage {
    pub db: sled::Db,
    data_file: Arc<File>,
}

impl Storage {
    /// Opens (or creates) the sled Db in `dir`. sled can panic on a corrupt directory; that is
    /// caught and reported as [`OpenError::Damaged`], never turned into an empty start.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, OpenError> {
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
        let data_path = dir.join("db");
        let data_file = File::open(&data_path).map_err(|source| OpenError::Io { path: data_path, source })?;
        Ok(Self { db, data_file: Arc::new(data_file) })
    }

    /// Makes every write so far durable: sled flush, then fdatasync of the data file.
    pub async fn sync(&self) -> std::io::Result<()> {
        self.db.flush_async().await.map_err(std::io::Error::other)?;
        let file = self.data_file.clone();
        tokio::task::spawn_blocking(move || file.sync_data()).await.map_err(std::io::Error::other)?
    }

    pub fn tree(&self, name: &str) -> std::io::Result<sled::Tree> {
        self.db.open_tree(name).map_err(std::io::Error::other)
    }
}
