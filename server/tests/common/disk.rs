//! Helpers for the disk tests (tests/disk.rs): starting a node with an environment of its own (fail
//! points), waiting for a node to exit, starting one that must refuse, copying and reading data
//! directories, and a small mounted filesystem that is unmounted even when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tenure_server::raft::node_file::NodeFile;

use super::Cluster;

impl Cluster {
    /// Starts node `id` like [`Cluster::spawn`], with `env` added to its environment.
    pub fn spawn_with_env(&mut self, id: u64, env: &[(&str, &str)]) {
        let node = &self.nodes[(id - 1) as usize];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log).expect("log file");
        let mut cmd = self.command(id, &node.data_dir.clone());
        cmd.envs(env.iter().copied()).stdout(log.try_clone().expect("log")).stderr(log);
        let child = cmd.spawn().expect("spawn tenured");
        self.node(id).child = Some(child);
    }

    /// Waits (bounded) for node `id` to exit by itself; its exit status, or `None` if it was still
    /// running after `timeout` (it is left running) or was not started.
    pub async fn wait_exit(&mut self, id: u64, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.node(id).child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.node(id).child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Runs `cmd` and waits (bounded) for it to exit; returns (exited unsuccessfully, its output). A
/// process still running after 15 s is killed and counts as not refused.
pub fn start_expecting_refusal(mut cmd: Command) -> (bool, String) {
    let out = tempfile::NamedTempFile::new().expect("tmp");
    cmd.stdout(out.reopen().expect("out")).stderr(out.reopen().expect("out"));
    let mut child = cmd.spawn().expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(15);
    let refused = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break !status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (refused, std::fs::read_to_string(out.path()).unwrap_or_default())
}

/// The last line tenured printed before exiting (its error), for reports.
pub fn last_line(output: &str) -> String {
    output.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default().to_string()
}

/// Copies a directory tree (files, directories, permissions).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// `last_acked_index` in a data directory's node.toml.
pub fn acked_mark(data_dir: &Path) -> u64 {
    NodeFile::open(data_dir).ok().flatten().map_or(0, |f| f.state().last_acked_index)
}

/// Whether this process runs as root, for whom permission bits do not stop reads.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs `program args` and returns its output, or why it failed.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`{program}` cannot be run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A small filesystem mounted for one test: a loop-mounted ext4 image (real fsync, real ENOSPC),
/// else a tmpfs. Unmounted when dropped, even when the test fails.
pub struct SmallDisk {
    pub path: PathBuf,
    pub kind: &'static str,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a filesystem of `mib` MiB; `Err` says why neither kind could be mounted.
    pub fn mount(mib: u64) -> Result<SmallDisk, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).map_err(|e| e.to_string())?;
        let image = dir.path().join("disk.img");
        let (mnt, img) = (path.to_string_lossy().into_owned(), image.to_string_lossy().into_owned());
        let ext4 = std::fs::File::create(&image)
            .and_then(|f| f.set_len(mib << 20))
            .map_err(|e| format!("image file: {e}"))
            // -m 0: no blocks reserved for root, so the filler really fills it.
            .and_then(|()| run("mkfs.ext4", &["-q", "-F", "-m", "0", &img]))
            .and_then(|()| run("mount", &["-o", "loop", &img, &mnt]));
        let kind = match ext4 {
            Ok(()) => "ext4 on a loop device",
            Err(ext4_err) => {
                let size = format!("size={mib}m");
                run("mount", &["-t", "tmpfs", "-o", &size, "tmpfs", &mnt])
                    .map_err(|tmpfs_err| format!("{ext4_err}; {tmpfs_err}"))?;
                "tmpfs"
            }
        };
        Ok(SmallDisk { path, kind, _dir: dir })
    }

    /// Fills the filesystem with a file named `name`, writing until it reports no space (bounded
    /// by the filesystem's size); returns the bytes written.
    pub fn fill(&self, name: &str) -> u64 {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path.join(name)).expect("filler");
        let chunk = vec![0xa5u8; 64 << 10];
        let mut written = 0u64;
        // More rounds than the filesystem can hold, so the loop ends on ENOSPC.
        for _ in 0..(1 << 14) {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(28), "filling the disk: {e}");
                    break;
                }
            }
        }
        // Blocks only appear used once written back; a failure here is ENOSPC again.
        let _ = f.sync_all();
        written
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let mnt = self.path.to_string_lossy().into_owned();
        if run("umount", &[&mnt]).is_err() {
            // Still busy (a process of a failed test): detach it now, it goes once unused.
            let _ = run("umount", &["-l", &mnt]);
        }
    }
}
