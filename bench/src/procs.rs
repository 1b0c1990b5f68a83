//! The two clusters under test, as real processes on loopback: three `tenured` nodes and three
//! etcd members, each with its own data directory and log file under the run's work directory.
//! Also what the benchmark reads of a process from /proc: CPU time and resident memory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rustix::process::{kill_process, Pid, Signal};

/// One server process of either kind.
pub struct Member {
    /// The client address, `127.0.0.1:port`.
    pub addr: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Member {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// Which server a [`Cluster`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tenure,
    Etcd,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tenure => "tenure",
            Kind::Etcd => "etcd",
        }
    }
}

pub struct Cluster {
    pub kind: Kind,
    pub members: Vec<Member>,
    binary: PathBuf,
}

/// A free loopback port not handed out before in this process: the OS may give a port just
/// released to the next `bind(0)`, and two nodes must not be given the same one.
pub fn free_port() -> anyhow::Result<u16> {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if GIVEN.lock().unwrap_or_else(|p| p.into_inner()).insert(port) {
            return Ok(port);
        }
    }
    anyhow::bail!("no free loopback port that was not handed out already")
}

impl Cluster {
    /// Three `tenured` nodes with default timings; `extra` flags go to every node.
    pub fn tenure(binary: &Path, dir: &Path, extra: &[String]) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let addrs: Vec<String> =
            (0..3).map(|_| free_port().map(|p| format!("127.0.0.1:{p}"))).collect::<Result<_, _>>()?;
        let peers = addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect::<Vec<_>>().join(",");
        let mut members = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let id = i as u64 + 1;
            let data_dir = dir.join(format!("tenure{id}"));
            let mut args: Vec<String> = vec![
                "--id".into(),
                id.to_string(),
                "--listen".into(),
                addr.clone(),
                "--http".into(),
                format!("127.0.0.1:{}", free_port()?),
                "--peers".into(),
                peers.clone(),
                "--data-dir".into(),
                data_dir.display().to_string(),
            ];
            args.extend(extra.iter().cloned());
            members.push(Member {
                addr: addr.clone(),
                data_dir,
                log: dir.join(format!("tenure{id}.log")),
                args,
                child: None,
            });
        }
        let mut c = Cluster { kind: Kind::Tenure, members, binary: binary.to_path_buf() };
        c.start_all()?;
        Ok(c)
    }

    /// Three etcd members with default settings, except a backend quota large enough for the
    /// million-lock run.
    pub fn etcd(binary: &Path, dir: &Path) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ports: Vec<(u16, u16)> = (0..3).map(|_| Ok((free_port()?, free_port()?))).collect::<anyhow::Result<_>>()?;
        let initial = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("e{}=http://127.0.0.1:{peer}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let data_dir = dir.join(format!("etcd{id}"));
            let args: Vec<String> = vec![
                format!("--name=e{id}"),
                format!("--data-dir={}", data_dir.display()),
                format!("--listen-client-urls=http://127.0.0.1:{client}"),
                format!("--advertise-client-urls=http://127.0.0.1:{client}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                format!("--initial-cluster={initial}"),
                "--initial-cluster-state=new".into(),
                "--initial-cluster-token=tenure-bench".into(),
                "--quota-backend-bytes=8589934592".into(),
                "--log-level=warn".into(),
            ];
            members.push(Member {
                addr: format!("127.0.0.1:{client}"),
                data_dir,
                log: dir.join(format!("etcd{id}.log")),
                args,
                child: None,
            });
        }
        let mut c = Cluster { kind: Kind::Etcd, members, binary: binary.to_path_buf() };
        c.start_all()?;
        Ok(c)
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| format!("http://{}", m.addr)).collect()
    }

    fn start_all(&mut self) -> anyhow::Result<()> {
        for id in 1..=self.members.len() as u64 {
            self.start(id)?;
        }
        Ok(())
    }

    /// Starts member `id` again on its data directory, appending to its log.
    pub fn start(&mut self, id: u64) -> anyhow::Result<()> {
        let m = &mut self.members[(id - 1) as usize];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&m.log)?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(&m.args).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        if self.kind == Kind::Tenure {
            cmd.env("RUST_LOG", "info,openraft=warn");
        }
        m.child = Some(cmd.spawn().with_context(|| format!("starting {}", self.binary.display()))?);
        Ok(())
    }

    /// SIGKILL.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.members[(id - 1) as usize].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM every member and wait (bounded) for them to exit; SIGKILL what is left.
    pub fn stop_all(&mut self) {
        for m in &mut self.members {
            if let Some(p) = m.child.as_ref().and_then(|c| Pid::from_raw(c.id() as i32)) {
                let _ = kill_process(p, Signal::TERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = c.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// The sum over running members of CPU seconds used so far.
    pub fn cpu_seconds(&self) -> Vec<f64> {
        self.members.iter().map(|m| m.pid().map(cpu_seconds).unwrap_or(0.0)).collect()
    }

    /// Resident memory of every member, MiB.
    pub fn rss_mib(&self) -> Vec<f64> {
        self.members.iter().map(|m| m.pid().map(rss_mib).unwrap_or(0.0)).collect()
    }

    /// Bytes on disk of every member's data directory.
    pub fn disk_bytes(&self) -> Vec<u64> {
        self.members.iter().map(|m| dir_bytes(&m.data_dir)).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// User + system CPU seconds of a process, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // The command name (field 2) may hold spaces; fields after its closing parenthesis are plain.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    ticks as f64 / rustix::param::clock_ticks_per_second() as f64
}

/// Resident set size of a process in MiB, from /proc/PID/status.
pub fn rss_mib(pid: u32) -> f64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return 0.0 };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Total size of the regular files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `timeout`.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
