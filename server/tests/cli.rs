//! The `tenure` CLI against a real 3-node cluster: `run` holds the lock around a command, passes
//! its exit code, kills it when the lease is lost; `acquire`/`release`/`force-release`/`describe`,
//! the KV commands and `cluster status` print what the cluster holds; bad input exits 125.
//!
//! Every `tenure` process is killed if its test ends first (with the command it runs, when the
//! test knows its pid); every wait polls a condition against a deadline.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use common::proxy::Proxy;
use common::{eventually, Cluster};
use rustix::process::{kill_process, test_kill_process, Pid, Signal};

const TENURE: &str = env!("CARGO_BIN_EXE_tenure");

/// The longest any one `tenure` process of these tests may take.
const PROCESS_LIMIT: Duration = Duration::from_secs(30);

/// One cluster for the tests of this file that do not disturb it (none stops a node; the lost
/// lease test partitions only its own proxy). Started by the first test that needs it, stopped
/// when the last test holding it ends, failed tests included.
async fn shared_cluster() -> Arc<Cluster> {
    static SHARED: tokio::sync::Mutex<Weak<Cluster>> = tokio::sync::Mutex::const_new(Weak::new());
    let mut slot = SHARED.lock().await;
    if let Some(cluster) = slot.upgrade() {
        return cluster;
    }
    let cluster = Arc::new(Cluster::start(3, &[]).await);
    *slot = Arc::downgrade(&cluster);
    cluster
}

fn endpoints(cluster: &Cluster) -> String {
    cluster.nodes.iter().map(|n| n.addr.clone()).collect::<Vec<_>>().join(",")
}

/// A client of the test's own, to look at what the CLI did (or to hold a lock against it).
async fn client(cluster: &Cluster) -> tenure::Client {
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.addr.clone()).collect();
    tenure::Client::builder().endpoints(addrs).owner("cli-test").connect().await.unwrap()
}

async fn holder_tokens(client: &tenure::Client, name: &str) -> Vec<u64> {
    client.describe(name).await.unwrap().holders.iter().map(|h| h.token).collect()
}

/// A running `tenure` process. Dropped before it finished, it is SIGKILLed, and so is the command
/// whose pid is in `pidfile` (it runs in a process group of its own, out of reach otherwise).
struct Tenure {
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
    pidfile: Option<PathBuf>,
}

#[derive(Debug)]
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Tenure {
    fn start(dir: &Path, endpoints: &str, args: &[&str]) -> Tenure {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let (stdout, stderr) = (dir.join(format!("tenure-{n}.out")), dir.join(format!("tenure-{n}.err")));
        let child = Command::new(TENURE)
            .arg("--endpoints")
            .arg(endpoints)
            .args(args)
            .env_remove("TENURE_ENDPOINTS")
            .env_remove("TENURE_LOG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Tenure { child: Some(child), stdout, stderr, pidfile: None }
    }

    /// Also kill the command whose pid the test had it write to `pidfile`, if the test fails.
    fn command_pid_in(mut self, pidfile: &Path) -> Tenure {
        self.pidfile = Some(pidfile.to_path_buf());
        self
    }

    fn pid(&self) -> Pid {
        Pid::from_child(self.child.as_ref().unwrap())
    }

    fn output(&self) -> (String, String) {
        (
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        )
    }

    /// Waits (at most `within`) for tenure to exit.
    async fn finish(mut self, within: Duration) -> Finished {
        let status = eventually("tenure to exit", within, || {
            let status = self.child.as_mut().unwrap().try_wait().unwrap();
            async move { status }
        })
        .await;
        self.child = None;
        let (stdout, stderr) = self.output();
        Finished { code: status.code(), stdout, stderr }
    }
}

impl Drop for Tenure {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if let Some(pid) = self.pidfile.as_deref().and_then(read_pid) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
    }
}

/// Runs `tenure` to its end.
async fn tenure(dir: &Path, endpoints: &str, args: &[&str]) -> Finished {
    Tenure::start(dir, endpoints, args).finish(PROCESS_LIMIT).await
}

/// Runs `tenure` and expects exit 0; returns its stdout.
async fn tenure_ok(dir: &Path, endpoints: &str, args: &[&str]) -> String {
    let done = tenure(dir, endpoints, args).await;
    assert_eq!(done.code, Some(0), "tenure {args:?} failed: {done:?}");
    done.stdout
}

fn read_pid(pidfile: &Path) -> Option<Pid> {
    let text = std::fs::read_to_string(pidfile).ok()?;
    Pid::from_raw(text.trim().parse().ok()?)
}

fn is_alive(pid: Pid) -> bool {
    test_kill_process(pid).is_ok()
}

/// A shell command that writes its pid to `$1`, then becomes `sleep 60` (same pid).
const PID_THEN_SLEEP: &str = "echo $$ > \"$1\"; exec sleep 60";

/// The value of `key` in text output made of `key  value` lines.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.strip_prefix(key).filter(|rest| rest.starts_with(' ')).map(str::trim))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_of_one_lock_never_overlap_and_the_later_one_gets_the_higher_token() {
    let cluster = shared_cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("intervals.log");
    let script = "echo \"start $(date +%s%N) $TENURE_TOKEN\" >> \"$1\"; sleep 0.3; echo \"end $(date +%s%N) $TENURE_TOKEN\" >> \"$1\"";
    let args = ["run", "overlap", "--ttl", "5s", "--", "sh", "-c", script, "sh", log.to_str().unwrap()];
    let first = Tenure::start(dir.path(), &endpoints(&cluster), &args);
    let second = Tenure::start(dir.path(), &endpoints(&cluster), &args);
    let (first, second) = (first.finish(PROCESS_LIMIT).await, second.finish(PROCESS_LIMIT).await);
    assert_eq!((first.code, second.code), (Some(0), Some(0)), "{first:?}\n{second:?}");

    let text = std::fs::read_to_string(&log).unwrap();
    // (token, start ns, end ns) of each run.
    let mut runs: Vec<(u64, u128, u128)> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let &[what, ns, token] = &words[..] else { panic!("bad line {line:?}") };
        let (ns, token): (u128, u64) = (ns.parse().unwrap(), token.parse().unwrap());
        match what {
            "start" => runs.push((token, ns, 0)),
            "end" => runs.iter_mut().find(|r| r.0 == token).unwrap().2 = ns,
            _ => panic!("bad line {line:?}"),
        }
    }
    runs.sort_by_key(|r| r.1);
    assert_eq!(runs.len(), 2, "two runs:\n{text}");
    let (a, b) = (runs[0], runs[1]);
    assert_ne!(a.0, b.0, "each grant has its own fencing token:\n{text}");
    assert!(a.1 < a.2 && b.1 < b.2, "each run ends after it starts:\n{text}");
    assert!(a.2 < b.1, "the second run starts only after the first ended:\n{text}");
    assert!(b.0 > a.0, "the later grant has the higher fencing token:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_exits_with_the_commands_code_and_then_releases_the_lock() {
    let cluster = shared_cluster().await;
    let (dir, eps, client) = (tempfile::tempdir().unwrap(), endpoints(&cluster), client(&cluster).await);
    let done = tenure(dir.path(), &eps, &["run", "exit-code", "--", "sh", "-c", "exit 7"]).await;
    assert_eq!(done.code, Some(7), "{done:?}");
    assert!(holder_tokens(&client, "exit-code").await.is_empty(), "released once the command ended");
    let done = tenure(dir.path(), &eps, &["run", "exit-code", "--", "true"]).await;
    assert_eq!(done.code, Some(0), "{done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_killed_by_signal_n_makes_run_exit_128_plus_n() {
    let cluster = shared_cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let done =
        tenure(dir.path(), &endpoints(&cluster), &["run", "signal-death", "--", "sh", "-c", "kill -KILL $$"]).await;
    assert_eq!(done.code, Some(128 + 9), "{done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_run_is_forwarded_to_the_command_and_run_exits_143() {
    let cluster = shared_cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("command.pid");
    let args = ["run", "forward-term", "--", "sh", "-c", PID_THEN_SLEEP, "sh", pidfile.to_str().unwrap()];
    let run = Tenure::start(dir.path(), &endpoints(&cluster), &args).command_pid_in(&pidfile);
    let pidfile_ref = &pidfile;
    let command = eventually("the command to start", PROCESS_LIMIT, || async move { read_pid(pidfile_ref) }).await;

    kill_process(run.pid(), Signal::TERM).unwrap();
    let done = run.finish(PROCESS_LIMIT).await;
    assert_eq!(done.code, Some(128 + 15), "{done:?}");
    assert!(!is_alive(command), "the command got the SIGTERM and ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_elsewhere_past_the_wait_exits_124_naming_the_lock_and_never_runs_the_command() {
    let cluster = shared_cluster().await;
    let (dir, client) = (tempfile::tempdir().unwrap(), client(&cluster).await);
    let held = client.lock("busy-lock").ttl(Duration::from_secs(30)).acquire().await.unwrap();
    let marker = dir.path().join("ran");
    let args = ["run", "busy-lock", "--wait", "1s", "--", "touch", marker.to_str().unwrap()];
    let done = tenure(dir.path(), &endpoints(&cluster), &args).await;
    assert_eq!(done.code, Some(124), "{done:?}");
    assert!(
        done.stderr.contains("TIMEOUT") && done.stderr.contains("\"busy-lock\"") && done.stderr.contains("1s"),
        "{done:?}"
    );
    let done = tenure(
        dir.path(),
        &endpoints(&cluster),
        &["run", "busy-lock", "--wait", "0s", "--", "touch", marker.to_str().unwrap()],
    )
    .await;
    assert_eq!(done.code, Some(124), "--wait 0s tries once: {done:?}");
    assert!(done.stderr.contains("\"busy-lock\" is busy"), "{done:?}");
    assert!(!marker.exists(), "the command must not run without the lock");
    assert_eq!(
        holder_tokens(&client, "busy-lock").await,
        vec![held.token()],
        "the timed-out request left nothing behind"
    );
    held.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_command_exits_127_and_one_that_cannot_execute_126_and_both_release_the_lock() {
    let cluster = shared_cluster().await;
    let (dir, eps, client) = (tempfile::tempdir().unwrap(), endpoints(&cluster), client(&cluster).await);
    let done = tenure(dir.path(), &eps, &["run", "no-command", "--", "/nonexistent/tenure-test-command"]).await;
    assert_eq!(done.code, Some(127), "{done:?}");
    assert!(done.stderr.contains("/nonexistent/tenure-test-command"), "{done:?}");

    let not_executable = dir.path().join("script.sh");
    std::fs::write(&not_executable, "#!/bin/sh\nexit 0\n").unwrap(); // mode 0644: no x bit
    let done = tenure(dir.path(), &eps, &["run", "no-command", "--", not_executable.to_str().unwrap()]).await;
    assert_eq!(done.code, Some(126), "{done:?}");
    assert!(holder_tokens(&client, "no-command").await.is_empty(), "the lock was released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_kills_the_command_at_once_and_run_exits_120() {
    let cluster = shared_cluster().await;
    let (dir, client) = (tempfile::tempdir().unwrap(), client(&cluster).await);
    // Everything tenure sends goes through the proxy, to the leader itself (so no redirect
    // takes it around the proxy).
    let leader = cluster.leader().await;
    let proxy = Proxy::start(&cluster.addr(leader)).await;
    let pidfile = dir.path().join("command.pid");
    let args = ["run", "lost-lease", "--ttl", "2s", "--", "sh", "-c", PID_THEN_SLEEP, "sh", pidfile.to_str().unwrap()];
    let run = Tenure::start(dir.path(), &proxy.addr(), &args).command_pid_in(&pidfile);
    let (pidfile_ref, client_ref) = (&pidfile, &client);
    let command = eventually("the command to start under the lock", PROCESS_LIMIT, || async move {
        let pid = read_pid(pidfile_ref)?;
        (!holder_tokens(client_ref, "lost-lease").await.is_empty()).then_some(pid)
    })
    .await;
    assert!(is_alive(command));

    proxy.blackhole();
    // Lost within 90% of the 2 s TTL after the last confirmed renewal; the bound is generous.
    let done = run.finish(Duration::from_secs(15)).await;
    assert_eq!(done.code, Some(120), "{done:?}");
    assert!(done.stderr.contains("lease on \"lost-lease\" lost"), "{done:?}");
    assert!(done.stderr.contains("killed sh"), "{done:?}");
    assert!(!is_alive(command), "the command (pid {command:?}) was killed and reaped before tenure exited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_without_hold_keeps_the_lock_until_release_by_request_id() {
    let cluster = shared_cluster().await;
    let (dir, eps) = (tempfile::tempdir().unwrap(), endpoints(&cluster));
    let lease = tenure_ok(dir.path(), &eps, &["acquire", "detached", "--ttl", "30s"]).await;
    let token: u64 = field(&lease, "token").parse().unwrap();
    let request_id = field(&lease, "request_id").to_string();
    assert_eq!(field(&lease, "name"), "detached");
    assert_eq!(field(&lease, "ttl"), "30s");

    // tenure has exited; the lease outlives it. `describe --output json` shows its token.
    let described = tenure_ok(dir.path(), &eps, &["--output", "json", "describe", "detached"]).await;
    let doc: serde_json::Value = serde_json::from_str(&described).unwrap();
    assert_eq!(doc["holders"][0]["token"], token, "{doc}");
    assert_eq!(doc["holders"][0]["request_id"], request_id.as_str(), "{doc}");
    assert_eq!(doc["holders"].as_array().unwrap().len(), 1, "{doc}");

    let released = tenure_ok(dir.path(), &eps, &["--output", "json", "release", "detached", &request_id]).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&released).unwrap()["was_held"], true);
    let described = tenure_ok(dir.path(), &eps, &["--output", "json", "describe", "detached"]).await;
    let doc: serde_json::Value = serde_json::from_str(&described).unwrap();
    assert_eq!(doc["holders"].as_array().unwrap().len(), 0, "{doc}");
    let again = tenure_ok(dir.path(), &eps, &["release", "detached", &request_id]).await;
    assert!(again.contains("was not held"), "a second release is harmless: {again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_release_frees_a_hold_grants_the_waiter_and_all_empties_the_lock() {
    let cluster = shared_cluster().await;
    let (dir, eps) = (tempfile::tempdir().unwrap(), endpoints(&cluster));
    let lease = tenure_ok(dir.path(), &eps, &["acquire", "forced", "--ttl", "30s"]).await;
    let (token, request_id): (u64, String) =
        (field(&lease, "token").parse().unwrap(), field(&lease, "request_id").to_string());
    let c = client(&cluster).await;
    let waiter = tokio::spawn({
        let c = c.clone();
        async move { c.lock("forced").ttl(Duration::from_secs(30)).wait(Duration::from_secs(60)).acquire().await }
    });
    eventually("a waiter queued", Duration::from_secs(10), || async {
        (c.describe("forced").await.unwrap().waiters.len() == 1).then_some(())
    })
    .await;

    let args = ["--output", "json", "force-release", "forced", "--request-id", &request_id, "--immediate"];
    let doc: serde_json::Value = serde_json::from_str(&tenure_ok(dir.path(), &eps, &args).await).unwrap();
    assert_eq!(doc["was_held"], true, "{doc}");
    assert_eq!(doc["released"][0]["token"], token, "{doc}");
    let granted = doc["granted"][0]["token"].as_u64().unwrap();
    assert!(granted > token, "{doc}");
    let guard = waiter.await.unwrap().unwrap();
    assert_eq!(guard.token(), granted);

    let again = tenure_ok(dir.path(), &eps, &["force-release", "forced", "--request-id", &request_id]).await;
    assert!(again.contains("nothing released"), "a second force-release is harmless: {again}");
    let all = tenure_ok(dir.path(), &eps, &["force-release", "forced", "--all"]).await;
    assert!(all.contains(&format!("released  request {} token {granted}", guard.request_id())), "{all}");
    assert!(all.contains("once the released holds' TTL has passed"), "the default handover waits: {all}");
    assert!(holder_tokens(&c, "forced").await.is_empty());
    let none = tenure_ok(dir.path(), &eps, &["force-release", "forced", "--all"]).await;
    assert!(none.contains("no holders"), "{none}");

    // Exactly one of --request-id and --all.
    for args in [&["force-release", "forced"][..], &["force-release", "forced", "--all", "--request-id", "r"]] {
        let done = tenure(dir.path(), &eps, args).await;
        assert_eq!(done.code, Some(125), "tenure {args:?}: {done:?}");
        assert!(done.stderr.contains("--request-id") || done.stderr.contains("--all"), "{done:?}");
    }
    let long_id = "r".repeat(65);
    let done = tenure(dir.path(), &eps, &["force-release", "forced", "--request-id", &long_id]).await;
    assert_eq!(done.code, Some(125), "{done:?}");
    assert!(done.stderr.contains("INVALID_ARGUMENT") && done.stderr.contains("request_id"), "{done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_hold_keeps_the_lock_until_sigterm_then_releases_it() {
    let cluster = shared_cluster().await;
    let (dir, client) = (tempfile::tempdir().unwrap(), client(&cluster).await);
    let hold = Tenure::start(
        dir.path(),
        &endpoints(&cluster),
        &["--output", "json", "acquire", "held", "--ttl", "3s", "--hold"],
    );
    let printed: serde_json::Value = eventually("the lease to be printed", PROCESS_LIMIT, || {
        let stdout = hold.output().0;
        async move { serde_json::from_str(&stdout).ok() }
    })
    .await;
    let token = printed["token"].as_u64().unwrap();
    // Held past its TTL: --hold renews it.
    let granted_at = std::time::Instant::now();
    eventually("the lease to outlive its 3 s TTL", Duration::from_secs(10), || {
        let client = client.clone();
        async move {
            assert_eq!(holder_tokens(&client, "held").await, vec![token], "--hold keeps the lease");
            (granted_at.elapsed() > Duration::from_secs(4)).then_some(())
        }
    })
    .await;

    kill_process(hold.pid(), Signal::TERM).unwrap();
    let done = hold.finish(PROCESS_LIMIT).await;
    assert_eq!(done.code, Some(0), "{done:?}");
    assert!(holder_tokens(&client, "held").await.is_empty(), "released on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_put_get_del_round_trip_and_a_stale_fence_is_refused() {
    let cluster = shared_cluster().await;
    let (dir, eps) = (tempfile::tempdir().unwrap(), endpoints(&cluster));
    tenure_ok(dir.path(), &eps, &["kv", "put", "cli/greeting", "hello world"]).await;
    assert_eq!(tenure_ok(dir.path(), &eps, &["kv", "get", "cli/greeting"]).await, "hello world\n");
    let listed = tenure_ok(dir.path(), &eps, &["--output", "json", "kv", "list", "cli/"]).await;
    let doc: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(doc["entries"][0]["value"], "hello world", "{doc}");

    let deleted = tenure_ok(dir.path(), &eps, &["--output", "json", "kv", "del", "cli/greeting"]).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&deleted).unwrap()["existed"], true);
    let missing = tenure(dir.path(), &eps, &["kv", "get", "cli/greeting"]).await;
    assert_eq!(missing.code, Some(1), "a missing key exits 1: {missing:?}");
    assert!(missing.stdout.is_empty() && missing.stderr.contains("\"cli/greeting\" not found"), "{missing:?}");

    // A fenced write applies with the current token, and is refused with any other.
    let lease = tenure_ok(dir.path(), &eps, &["--output", "json", "acquire", "cli-fence", "--ttl", "30s"]).await;
    let lease: serde_json::Value = serde_json::from_str(&lease).unwrap();
    let token = lease["token"].as_u64().unwrap();
    let fence =
        |t: u64| ["--fence-lock".to_string(), "cli-fence".to_string(), "--fence-token".to_string(), t.to_string()];
    let current = fence(token);
    let mut put = vec!["kv", "put", "cli/fenced", "v1"];
    put.extend(current.iter().map(String::as_str));
    tenure_ok(dir.path(), &eps, &put).await;
    let stale = fence(token - 1);
    let mut put = vec!["kv", "put", "cli/fenced", "v2"];
    put.extend(stale.iter().map(String::as_str));
    let refused = tenure(dir.path(), &eps, &put).await;
    assert_eq!(refused.code, Some(125), "{refused:?}");
    assert!(refused.stderr.starts_with("tenure: FENCED_OUT: "), "{refused:?}");
    assert_eq!(tenure_ok(dir.path(), &eps, &["kv", "get", "cli/fenced"]).await, "v1\n");
    tenure_ok(dir.path(), &eps, &["release", "cli-fence", lease["request_id"].as_str().unwrap()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_status_shows_the_three_members_and_the_leader() {
    let cluster = shared_cluster().await;
    let (dir, eps) = (tempfile::tempdir().unwrap(), endpoints(&cluster));
    let status = tenure_ok(dir.path(), &eps, &["--output", "json", "cluster", "status"]).await;
    let doc: serde_json::Value = serde_json::from_str(&status).unwrap();
    let members = doc["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{doc}");
    assert!(members.iter().any(|m| m["role"] == "leader"), "{doc}");
    let text = tenure_ok(dir.path(), &eps, &["cluster", "status"]).await;
    assert_eq!(field(&text, "members"), "3", "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_125_with_a_message_naming_the_field() {
    let cluster = shared_cluster().await;
    let (dir, eps) = (tempfile::tempdir().unwrap(), endpoints(&cluster));
    let cases: &[(&[&str], &str)] = &[
        (&["run", "bad", "--ttl", "0s", "--", "true"], "--ttl"),
        (&["run", "bad", "--ttl", "5", "--", "true"], "--ttl"),
        (&["acquire", "bad", "--wait", "10"], "--wait"),
        (&["describe", ""], "<NAME>"),
        (&["run", "", "--", "true"], "<NAME>"),
        (&["acquire", "bad", "--shared", "--limit", "many"], "--limit"),
        // Refused by the cluster, not the parser: below the minimum TTL.
        (&["acquire", "bad", "--ttl", "500ms"], "ttl"),
    ];
    for (args, field) in cases {
        let done = tenure(dir.path(), &eps, args).await;
        assert_eq!(done.code, Some(125), "tenure {args:?}: {done:?}");
        assert!(done.stderr.contains(field), "tenure {args:?} should name {field}: {done:?}");
        assert!(done.stdout.is_empty(), "{done:?}");
    }
    let done = tenure(dir.path(), &eps, &["--output", "json", "acquire", "bad", "--ttl", "500ms"]).await;
    let error: serde_json::Value = serde_json::from_str(&done.stderr).unwrap();
    assert_eq!(error["error"]["code"], "INVALID_ARGUMENT", "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_exits_125_unavailable_instead_of_waiting_forever() {
    let dir = tempfile::tempdir().unwrap();
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let marker = dir.path().join("ran");
    for args in [
        &["--timeout", "1s", "run", "unreachable", "--", "touch", marker.to_str().unwrap()][..],
        &["--timeout", "1s", "describe", "unreachable"][..],
    ] {
        let done = tenure(dir.path(), &nobody, args).await;
        assert_eq!(done.code, Some(125), "tenure {args:?}: {done:?}");
        assert!(done.stderr.starts_with("tenure: UNAVAILABLE: "), "tenure {args:?}: {done:?}");
    }
    assert!(!marker.exists(), "the command must not run without the lock");
}
