//! Disk faults and damaged data directories (DESIGN §6): a damaged directory is refused with the
//! file named, or only a torn tail is repaired (by sled, when it opens its file); a full disk and
//! injected write/fsync errors stop the node (fail-stop) without losing an acknowledged write, and
//! it serves again once restarted. Another node's data directory is refused too: see
//! `a_node_refuses_another_nodes_data_directory_and_a_wiped_one` in tests/failover.rs.
//!
//! The fail point tests need `--features buggy`:
//! `cargo test -p tenure-server --features buggy --test disk`.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::disk::*;
use common::*;
use tenure_proto::v1 as pb;

/// A client of every node of `cluster`.
async fn client_of(cluster: &Cluster, timeout: Duration) -> tenure::Client {
    let endpoints: Vec<String> = cluster.nodes.iter().map(|n| n.addr.clone()).collect();
    tenure::Client::builder().endpoints(endpoints).timeout(timeout).connect().await.unwrap()
}

/// The value written at `key`: the key, padded to `len` bytes.
fn value_of(key: &str, len: usize) -> Vec<u8> {
    let mut v = key.as_bytes().to_vec();
    v.resize(len.max(v.len()), b'.');
    v
}

/// Puts `n` keys `prefix-i` one after another; returns them, all acknowledged.
async fn put_keys(client: &tenure::Client, prefix: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    let mut acked = Vec::new();
    for i in 0..n {
        let key = format!("{prefix}-{i}");
        let value = value_of(&key, 64);
        client.kv().put(&key, &value, None).await.unwrap_or_else(|e| panic!("put {key}: {e}"));
        acked.push((key, value));
    }
    acked
}

/// Every acknowledged write reads back, linearizably.
async fn assert_all_readable(client: &tenure::Client, acked: &[(String, Vec<u8>)]) {
    for (key, value) in acked {
        let got = client.kv().get(key).await.unwrap_or_else(|e| panic!("get {key}: {e}")).map(|e| e.value);
        assert_eq!(got.as_ref(), Some(value), "acknowledged write {key} was lost");
    }
}

/// `key` as node `id` has applied it (a stale read of its own state).
async fn local_value(cluster: &Cluster, id: u64, key: &str) -> Option<Vec<u8>> {
    let mut kv = cluster.kv(id).await;
    let req = pb::GetRequest { key: key.as_bytes().to_vec(), consistency: pb::Consistency::Stale as i32 };
    let r = kv.get(req).await.ok()?.into_inner();
    r.found.then_some(r.value)
}

/// Waits until node `id` has applied `key` (it rejoined and caught up).
async fn wait_caught_up(cluster: &Cluster, id: u64, key: &str, value: &[u8]) {
    let what = format!("node {id} to rejoin and apply {key}");
    eventually(&what, Duration::from_secs(20), || async {
        (local_value(cluster, id, key).await.as_deref() == Some(value)).then_some(())
    })
    .await;
}

/// Stops node `id` (SIGTERM) once it has every entry of the leader's log and node.toml's
/// acknowledged mark has caught up with them, so damage to its files hits acknowledged entries.
async fn stop_caught_up(cluster: &mut Cluster, id: u64) {
    let leader = cluster.leader().await;
    let dir = cluster.node(id).data_dir.clone();
    let what = format!("node {id} to have the leader's log and mark it acknowledged");
    eventually(&what, Duration::from_secs(20), || async {
        let last = cluster.status(leader).await?.last_log_index;
        let mine = cluster.status(id).await?.last_log_index;
        (mine == last && acked_mark(&dir) >= last).then_some(())
    })
    .await;
    assert!(cluster.terminate(id), "SIGTERM ends tenured with exit status 0:\n{}", cluster.log_of(id));
}

/// The `tenured: error: ...` line a node printed when it stopped.
fn exit_error(log: &str) -> String {
    log.lines().rev().find(|l| l.starts_with("tenured: error")).unwrap_or_default().to_string()
}

// ---- damage ---------------------------------------------------------------------------------

const SLED_FILE: &str = "db/db";

fn cut_tail(dir: &Path) {
    let f = std::fs::OpenOptions::new().write(true).open(dir.join(SLED_FILE)).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len * 2 / 3).unwrap();
}

fn flip_middle(dir: &Path) {
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(dir.join(SLED_FILE)).unwrap();
    let middle = f.metadata().unwrap().len() / 2;
    let mut bytes = [0u8; 64];
    f.seek(SeekFrom::Start(middle)).unwrap();
    f.read_exact(&mut bytes).unwrap();
    bytes.iter_mut().for_each(|b| *b ^= 0xff);
    f.seek(SeekFrom::Start(middle)).unwrap();
    f.write_all(&bytes).unwrap();
}

fn empty_sled_file(dir: &Path) {
    std::fs::File::create(dir.join(SLED_FILE)).unwrap();
}

fn remove_sled_file(dir: &Path) {
    std::fs::remove_file(dir.join(SLED_FILE)).unwrap();
}

fn remove_db_dir(dir: &Path) {
    std::fs::remove_dir_all(dir.join("db")).unwrap();
}

fn sled_file_is_a_directory(dir: &Path) {
    remove_sled_file(dir);
    std::fs::create_dir(dir.join(SLED_FILE)).unwrap();
}

fn empty_node_toml(dir: &Path) {
    std::fs::File::create(dir.join("node.toml")).unwrap();
}

fn remove_node_toml(dir: &Path) {
    std::fs::remove_file(dir.join("node.toml")).unwrap();
}

fn node_toml_is_a_directory(dir: &Path) {
    remove_node_toml(dir);
    std::fs::create_dir(dir.join("node.toml")).unwrap();
}

fn unreadable_node_toml(dir: &Path) {
    chmod(&dir.join("node.toml"), 0o000);
}

fn unreadable_sled_file(dir: &Path) {
    chmod(&dir.join(SLED_FILE), 0o000);
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// What a crash in the middle of a snapshot install left behind before `LogStore::purge_behind`:
/// the log purged past the state machine (openraft 0.9 then panicked at start).
fn purge_past_the_state_machine(dir: &Path) {
    use openraft::storage::RaftLogStorage;
    use std::sync::{Arc, Mutex};
    use tenure_server::raft::log_store::LogStore;
    use tenure_server::raft::node_file::NodeFile;
    use tenure_server::raft::storage::Storage;

    let dir = dir.to_path_buf();
    let upto = acked_mark(&dir) + 50;
    // Its own thread and runtime: the test's runtime must not block on storage.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let storage = Storage::open(&dir.join("db"), 8 << 20).unwrap();
            let file = Arc::new(Mutex::new(NodeFile::open(&dir).unwrap().unwrap()));
            let mut log = LogStore::open(storage, file).unwrap();
            log.purge(openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), upto)).await.unwrap();
        });
    })
    .join()
    .unwrap();
}

/// A torn write at the end of sled's file: bytes of a message that never completed.
fn append_garbage(dir: &Path) {
    let mut f = std::fs::OpenOptions::new().append(true).open(dir.join(SLED_FILE)).unwrap();
    let garbage: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    f.write_all(&garbage).unwrap();
}

/// The file grew but the data never reached it (as after a crash with delayed allocation).
fn append_zeros(dir: &Path) {
    let mut f = std::fs::OpenOptions::new().append(true).open(dir.join(SLED_FILE)).unwrap();
    f.write_all(&[0u8; 4096]).unwrap();
}

/// A damaged data directory that must be refused: the exit message names `file` (relative to the
/// data directory; "" for the directory itself) and says `says`.
struct Refused {
    name: &'static str,
    damage: fn(&Path),
    file: &'static str,
    says: &'static str,
    /// Permission bits: as root they stop nothing, so the node runs as another user.
    unprivileged: bool,
}

const REFUSED: &[Refused] = &[
    Refused {
        name: "tail of sled's data file cut off (last third)",
        damage: cut_tail,
        file: SLED_FILE,
        says: "lost acknowledged entries",
        unprivileged: false,
    },
    Refused {
        name: "64 bytes flipped in the middle of sled's data file",
        damage: flip_middle,
        file: SLED_FILE,
        says: "lost acknowledged entries",
        unprivileged: false,
    },
    Refused {
        name: "sled's data file zero-length",
        damage: empty_sled_file,
        file: SLED_FILE,
        says: "lost acknowledged entries",
        unprivileged: false,
    },
    Refused {
        name: "sled's data file missing",
        damage: remove_sled_file,
        file: SLED_FILE,
        says: "is missing",
        unprivileged: false,
    },
    Refused {
        name: "db directory missing",
        damage: remove_db_dir,
        file: "db",
        says: "is missing",
        unprivileged: false,
    },
    Refused {
        name: "sled's data file is a directory",
        damage: sled_file_is_a_directory,
        file: SLED_FILE,
        says: "Is a directory",
        unprivileged: false,
    },
    Refused {
        name: "log purged past the state machine (left by a crash during a snapshot install)",
        damage: purge_past_the_state_machine,
        file: SLED_FILE,
        says: "but the log is purged up to",
        unprivileged: false,
    },
    Refused {
        name: "node.toml zero-length",
        damage: empty_node_toml,
        file: "node.toml",
        says: "is damaged (the file is empty)",
        unprivileged: false,
    },
    Refused {
        name: "node.toml missing, db present",
        damage: remove_node_toml,
        file: "",
        says: "has files but no node.toml",
        unprivileged: false,
    },
    Refused {
        name: "node.toml is a directory",
        damage: node_toml_is_a_directory,
        file: "node.toml",
        says: "Is a directory",
        unprivileged: false,
    },
    Refused {
        name: "node.toml unreadable (mode 000)",
        damage: unreadable_node_toml,
        file: "node.toml",
        says: "Permission denied",
        unprivileged: true,
    },
    Refused {
        name: "sled's data file unreadable (mode 000)",
        damage: unreadable_sled_file,
        file: SLED_FILE,
        says: "Permission denied",
        unprivileged: true,
    },
];

/// Damage sled repairs when it opens its file: it stops reading at the first incomplete message.
struct Repaired {
    name: &'static str,
    damage: fn(&Path),
}

const REPAIRED: &[Repaired] = &[
    Repaired {
        name: "torn tail: 300 bytes of an unfinished message after the end of sled's data file",
        damage: append_garbage,
    },
    Repaired { name: "torn tail: 4 KiB of zeros after the end of sled's data file", damage: append_zeros },
];

/// `cmd` made to run as user nobody with `dir` handed to it, when this test runs as root (for whom
/// permission bits stop nothing); unchanged otherwise. `Err` says why that is impossible here.
fn unprivileged(cmd: Command, dir: &Path) -> Result<Command, String> {
    if !is_root() {
        return Ok(cmd);
    }
    let as_nobody = || {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(cmd.get_program());
        c
    };
    // setpriv is there and user nobody can run tenured where it was built.
    match as_nobody().arg("--version").stdin(Stdio::null()).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Err(format!("as root, and user nobody cannot run tenured: {}", String::from_utf8_lossy(&o.stderr)))
        }
        Err(e) => return Err(format!("as root, and setpriv(1) cannot be run: {e}")),
    }
    chown_tree(dir, 65534, 65534);
    let mut wrapped = as_nobody();
    wrapped.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            wrapped.env(k, v);
        }
    }
    Ok(wrapped)
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_data_directory_is_refused_naming_the_file_and_only_a_torn_tail_is_repaired() {
    let mut cluster = Cluster::start(3, &[]).await;
    let client = client_of(&cluster, Duration::from_secs(10)).await;
    // One entry per put, so the tail and the middle of sled's file hold acknowledged entries.
    let mut acked = put_keys(&client, "before", 120).await;
    let leader = cluster.leader().await;
    let victim = if leader == 3 { 2 } else { 3 };
    stop_caught_up(&mut cluster, victim).await;
    let dir = cluster.node(victim).data_dir.clone();

    // Each case damages a copy of the stopped node's directory and starts the node on it.
    let cases = tempfile::tempdir().unwrap();
    chmod(cases.path(), 0o755); // reachable for the unprivileged cases
    let mut table = Vec::new();
    for (i, case) in REFUSED.iter().enumerate() {
        let copy = cases.path().join(format!("case-{i}"));
        copy_dir(&dir, &copy);
        (case.damage)(&copy);
        let mut cmd = cluster.command(victim, &copy);
        if case.unprivileged {
            match unprivileged(cmd, &copy) {
                Ok(c) => cmd = c,
                Err(why) => {
                    println!("SKIPPED case {:?}: {why}", case.name);
                    table.push((case.name, format!("not tested: {why}")));
                    continue;
                }
            }
        }
        let (refused, out) = start_expecting_refusal(cmd);
        let line = last_line(&out);
        let file = if case.file.is_empty() { copy.clone() } else { copy.join(case.file) };
        assert!(refused, "case {:?}: the node started instead of refusing:\n{out}", case.name);
        assert!(!out.contains("panicked"), "case {:?}: the node panicked:\n{out}", case.name);
        assert!(
            line.contains(&file.display().to_string()) && line.contains(case.says),
            "case {:?}: expected the message to name {} and say {:?}:\n{out}",
            case.name,
            file.display(),
            case.says
        );
        table.push((case.name, line.replace(&copy.display().to_string(), "<data-dir>")));
    }

    // A torn tail: sled drops it when it opens its file; the node starts, rejoins and catches up.
    for (i, Repaired { name, damage }) in REPAIRED.iter().enumerate() {
        damage(&dir);
        let key = format!("while-down-{i}");
        let value = value_of(&key, 64);
        client.kv().put(&key, &value, None).await.unwrap();
        acked.push((key.clone(), value.clone()));
        cluster.spawn(victim);
        wait_caught_up(&cluster, victim, &key, &value).await;
        let log = cluster.log_of(victim);
        assert!(!log.contains("panicked") && !log.contains("tenured: error"), "case {name:?}:\n{log}");
        table.push((*name, "starts: sled drops the torn tail; the node rejoins and catches up".to_string()));
        stop_caught_up(&mut cluster, victim).await;
    }
    cluster.spawn(victim);

    assert_all_readable(&client, &acked).await;
    println!("damaged data directory → what the node says");
    for (name, says) in &table {
        println!("| {name} | {says} |");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_node_and_loses_no_acknowledged_write() {
    let disk = match SmallDisk::mount(16) {
        Ok(d) => d,
        Err(why) => {
            println!("SKIPPED a_full_disk_stops_the_node_and_loses_no_acknowledged_write: cannot mount a small filesystem here: {why}");
            return;
        }
    };
    println!("small disk: {} at {}", disk.kind, disk.path.display());
    // Declared after the disk, so it is dropped (its process killed) before the unmount.
    let mut cluster = Cluster::start(1, &[]).await;
    assert!(cluster.terminate(1), "{}", cluster.log_of(1));
    let on_disk = disk.path.join("node1");
    copy_dir(&cluster.node(1).data_dir, &on_disk);
    cluster.node(1).data_dir = on_disk.clone();
    cluster.spawn(1);
    cluster.leader().await;

    // A single node holds the only copy: whatever it acknowledged must survive.
    let client = client_of(&cluster, Duration::from_secs(3)).await;
    let mut acked = Vec::new();
    let mut failure = None;
    // Writes of 4 KiB: far more than the disk holds once filled, so the loop ends on an error.
    for i in 0..1000 {
        if i == 20 {
            disk.fill("filler");
        }
        let key = format!("full-{i}");
        let value = value_of(&key, 4096);
        match client.kv().put(&key, &value, None).await {
            Ok(_) => acked.push((key, value)),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let failure = failure.expect("every write succeeded on a full disk");
    println!("{} writes acknowledged; then the client got: {failure}", acked.len());
    assert!(acked.len() >= 20, "writes failed before the disk was full: {failure}");
    let status = cluster.wait_exit(1, Duration::from_secs(20)).await;
    let log = cluster.log_of(1);
    let status = status.unwrap_or_else(|| panic!("the node kept running on a full disk:\n{log}"));
    assert!(!status.success(), "{log}");
    assert!(!log.contains("panicked"), "the node panicked:\n{log}");
    let line = exit_error(&log);
    println!("the node stopped with: {line}");
    assert!(
        line.contains("No space left on device") && line.contains(&on_disk.display().to_string()),
        "the exit message names the file and the lack of space:\n{log}"
    );

    // Space returns; the restarted node has every acknowledged write and serves again.
    std::fs::remove_file(disk.path.join("filler")).unwrap();
    cluster.spawn(1);
    cluster.leader().await;
    assert_all_readable(&client, &acked).await;
    client.kv().put("after-full", "yes", None).await.expect("the node serves writes again");
}

/// Fails clearly if the `tenured` under test has no fail points: it was built without
/// `--features buggy`, or a build of another feature set replaced it (one shared target dir).
#[cfg(feature = "buggy")]
fn assert_tenured_has_fail_points() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(TENURED);
    cmd.args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("FAILPOINTS", "not-a-fail-point-list")
        .stdin(Stdio::null());
    let (refused, out) = start_expecting_refusal(cmd);
    assert!(
        refused && out.contains("FAILPOINTS is not a valid"),
        "{TENURED} has no fail points: build it with `--features buggy` (did another build replace it?):\n{out}"
    );
}

/// Sets `FAILPOINTS` for node `id`, restarted, and writes through the cluster until that node
/// stops; returns the acknowledged writes and the node's exit message.
#[cfg(feature = "buggy")]
async fn write_until_it_fails(
    cluster: &mut Cluster,
    client: &tenure::Client,
    id: u64,
    failpoints: &str,
    prefix: &str,
) -> (Vec<(String, Vec<u8>)>, String) {
    cluster.kill(id);
    cluster.spawn_with_env(id, &[("FAILPOINTS", failpoints)]);
    let mut acked = Vec::new();
    // Until the node stops, not a fixed count: a follower that restarts while the others take
    // writes catches up in a few large appends, so the count of appends it sees before the
    // writes end depends on timing.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for i in 0.. {
        if !cluster.node(id).is_running() || std::time::Instant::now() > deadline {
            break;
        }
        let key = format!("{prefix}-{i}");
        let value = value_of(&key, 64);
        // Through a single node a write can fail with it; through three it must not.
        match client.kv().put(&key, &value, None).await {
            Ok(_) => acked.push((key, value)),
            Err(e) if cluster.nodes.len() == 1 => {
                println!("the write of {key} failed: {e}");
                break;
            }
            Err(e) => panic!("put {key}: {e}"),
        }
    }
    let status = cluster.wait_exit(id, Duration::from_secs(20)).await;
    let log = cluster.log_of(id);
    let status = status.unwrap_or_else(|| panic!("node {id} kept running with {failpoints}:\n{log}"));
    assert!(!status.success(), "{log}");
    assert!(!log.contains("panicked"), "node {id} panicked:\n{log}");
    (acked, exit_error(&log))
}

#[cfg(feature = "buggy")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_and_fsync_errors_stop_a_follower_which_rejoins_after_a_restart() {
    assert_tenured_has_fail_points();
    let mut cluster = Cluster::start(3, &[]).await;
    let client = client_of(&cluster, Duration::from_secs(10)).await;
    let mut acked = put_keys(&client, "before", 5).await;
    let leader = cluster.leader().await;
    let victim = if leader == 3 { 2 } else { 3 };
    let dir = cluster.node(victim).data_dir.clone();

    // The log's fsync fails at the sixth append after the start.
    let (more, line) =
        write_until_it_fails(&mut cluster, &client, victim, "log-append-fsync=5*off->return", "fsync").await;
    acked.extend(more);
    println!("log-append-fsync: {line}");
    let data_file = dir.join("db").join("db").display().to_string();
    assert!(line.contains("fdatasync of") && line.contains(&data_file) && line.contains("log-append-fsync"), "{line}");
    // The other two carry on; the node comes back without the fail point and catches up.
    acked.extend(put_keys(&client, "without-it", 3).await);
    cluster.spawn(victim);
    let (key, value) = acked.last().unwrap().clone();
    wait_caught_up(&cluster, victim, &key, &value).await;

    // Saving node.toml (vote, acknowledged mark) fails at the first attempt.
    let (more, line) = write_until_it_fails(&mut cluster, &client, victim, "node-file-save=return", "save").await;
    acked.extend(more);
    println!("node-file-save: {line}");
    let node_toml = dir.join("node.toml").display().to_string();
    assert!(line.contains(&node_toml) && line.contains("node-file-save"), "{line}");
    cluster.spawn(victim);
    let (key, value) = acked.last().unwrap().clone();
    wait_caught_up(&cluster, victim, &key, &value).await;

    assert_all_readable(&client, &acked).await;
}

#[cfg(feature = "buggy")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fsync_error_on_a_single_node_stops_it_and_loses_no_acknowledged_write() {
    assert_tenured_has_fail_points();
    let mut cluster = Cluster::start(1, &[]).await;
    let client = client_of(&cluster, Duration::from_secs(3)).await;
    let mut acked = put_keys(&client, "before", 3).await;
    let (more, line) = write_until_it_fails(&mut cluster, &client, 1, "storage-sync=10*off->return", "sync").await;
    acked.extend(more);
    println!("storage-sync: {line}");
    assert!(line.contains("flushing") && line.contains("storage-sync"), "{line}");
    // The only copy: every write it acknowledged is there after a restart.
    cluster.spawn(1);
    cluster.leader().await;
    assert_all_readable(&client, &acked).await;
    client.kv().put("after", "yes", None).await.expect("the node serves writes again");
}
