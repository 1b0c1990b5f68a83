//! `tenured` configuration: flags, `TENURE_*` environment variables and a TOML file agree.
//! Precedence: flag or env var, then the file, then the default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Deserialize;

use crate::api::auth::Access;
use crate::api::ApiLimits;
use crate::lock::Caps;
use crate::raft::NodeId;
use crate::tls::TlsSettings;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterState {
    /// Bootstrap a new cluster (the default): the lowest id among fresh peers initializes it.
    New,
    /// Join an existing cluster: wait to be added as a member; never bootstrap.
    Existing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    Text,
    Json,
}

/// tenured: a node of the tenure lock service.
///
/// With no flags it runs a single-node cluster on 127.0.0.1:7070 (gRPC) with its data in
/// ./tenure-data. Every flag can also be set with the environment variable shown, or as a
/// kebab-case key in the file given to --config.
#[derive(Parser, Debug, Default, Deserialize)]
#[command(name = "tenured", version)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    /// TOML config file; keys are the long flag names (e.g. `data-dir = "/var/lib/tenure"`).
    #[arg(long, env = "TENURE_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// This node's id (a positive integer, unique in the cluster) [default: 1]
    #[arg(long, env = "TENURE_ID")]
    pub id: Option<NodeId>,
    /// gRPC listen address, for clients and other nodes [default: 127.0.0.1:7070]
    #[arg(long, env = "TENURE_LISTEN")]
    pub listen: Option<String>,
    /// gRPC address other nodes and clients should dial [default: the listen address]
    #[arg(long, env = "TENURE_ADVERTISE")]
    pub advertise: Option<String>,
    /// HTTP address (HTTP/JSON API, metrics, health) recorded in the membership [default: 127.0.0.1:7080]
    #[arg(long, env = "TENURE_HTTP")]
    pub http: Option<String>,
    /// Every member of the initial cluster, this node included: `1=host:port,2=host:port,...`
    /// [default: this node alone]
    #[arg(long, env = "TENURE_PEERS")]
    pub peers: Option<String>,
    /// Node-local dial overrides, `2=host:port,...`: reach node 2 at another address (e.g. a
    /// test proxy). Never stored in the membership.
    #[arg(long, env = "TENURE_PEER_DIAL")]
    pub peer_dial: Option<String>,
    /// Data directory [default: ./tenure-data]
    #[arg(long, env = "TENURE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `new` bootstraps a cluster once; `existing` waits to be added [default: new]
    #[arg(long, env = "TENURE_INITIAL_CLUSTER_STATE", value_enum)]
    pub initial_cluster_state: Option<ClusterState>,
    /// Join a running cluster: client endpoints of some of its members, `host:port,...`. Implies
    /// `--initial-cluster-state existing`; on first start (an empty data directory) the node asks
    /// the leader to add it (Cluster.AddMember) until it is a member
    #[arg(long, env = "TENURE_JOIN", value_name = "ENDPOINTS")]
    pub join: Option<String>,
    /// Bearer token for --join when the cluster uses --auth-config (needs the `admin` right)
    #[arg(long, env = "TENURE_JOIN_TOKEN", value_name = "TOKEN")]
    pub join_token: Option<String>,
    /// Raft heartbeat interval in ms [default: 100]
    #[arg(long, env = "TENURE_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<u64>,
    /// Raft election timeout, lower bound in ms [default: 250]. openraft 0.9 adds the upper bound
    /// (its leader lease) before a follower that heard from a leader starts an election.
    #[arg(long, env = "TENURE_ELECTION_MIN_MS")]
    pub election_min_ms: Option<u64>,
    /// Raft election timeout, upper bound in ms [default: 500]
    #[arg(long, env = "TENURE_ELECTION_MAX_MS")]
    pub election_max_ms: Option<u64>,
    /// Build a snapshot every this many log entries, and purge the log behind it [default: 10000]
    #[arg(long, env = "TENURE_SNAPSHOT_INTERVAL")]
    pub snapshot_interval: Option<u64>,
    /// Log entries kept behind a snapshot, for followers that lag a little [default: 1000]
    #[arg(long, env = "TENURE_SNAPSHOT_KEEP_LOGS")]
    pub snapshot_keep_logs: Option<u64>,
    /// Shortest lease TTL accepted, ms [default: 1000]
    #[arg(long, env = "TENURE_MIN_TTL_MS")]
    pub min_ttl_ms: Option<u64>,
    /// Longest lease TTL accepted, ms [default: 3600000]
    #[arg(long, env = "TENURE_MAX_TTL_MS")]
    pub max_ttl_ms: Option<u64>,
    /// Longest a call waits for a grant before answering QUEUED, ms [default: 60000]
    #[arg(long, env = "TENURE_MAX_WAIT_MS")]
    pub max_wait_ms: Option<u64>,
    /// Most waiters one lock may queue [default: 10000]
    #[arg(long, env = "TENURE_MAX_WAITERS_PER_LOCK")]
    pub max_waiters_per_lock: Option<u32>,
    /// Most locks that may exist at once [default: 1000000]
    #[arg(long, env = "TENURE_MAX_LOCKS")]
    pub max_locks: Option<u64>,
    /// How long a finished request_id is remembered, ms [default: 600000]
    #[arg(long, env = "TENURE_TOMBSTONE_TTL_MS")]
    pub tombstone_ttl_ms: Option<u64>,
    /// Committed lock events kept for `Locks.Watch` to resume from; older ones are dropped and a
    /// watch starting before them gets COMPACTED [default: 100000]
    #[arg(long, env = "TENURE_WATCH_HISTORY")]
    pub watch_history: Option<u64>,
    /// sled page cache size in MiB [default: 64]
    #[arg(long, env = "TENURE_CACHE_MB")]
    pub cache_mb: Option<u64>,
    /// Log format [default: text]
    #[arg(long, env = "TENURE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `tenure_server=debug` [default: info,openraft=warn; RUST_LOG also works]
    #[arg(long, env = "TENURE_LOG")]
    pub log: Option<String>,
    /// This node's TLS certificate (PEM, chain first), for the gRPC and HTTP ports and as its
    /// client certificate towards peers. With --tls-key and --tls-ca, turns TLS on [default: off]
    #[arg(long, env = "TENURE_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1)
    #[arg(long, env = "TENURE_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// The CA certificate(s) (PEM) that sign the nodes' certificates: peers are verified against it
    #[arg(long, env = "TENURE_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Nodes present their certificate to each other, and the Raft service refuses a connection
    /// without a client certificate signed by --tls-ca. Clients of the API need none [default: false]
    #[arg(long, env = "TENURE_TLS_PEER_CLIENT_AUTH", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub tls_peer_client_auth: Option<bool>,
    /// Bearer tokens and what each may do (TOML, see README "TLS and access control") [default:
    /// none, everything open]
    #[arg(long, env = "TENURE_AUTH_CONFIG", value_name = "FILE")]
    pub auth_config: Option<PathBuf>,
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    pub listen: SocketAddr,
    pub advertise: String,
    pub http: String,
    pub peers: BTreeMap<NodeId, String>,
    pub peer_dial: BTreeMap<NodeId, String>,
    pub data_dir: PathBuf,
    pub initial_cluster_state: ClusterState,
    /// --join: members to ask for this node's AddMember (empty: do not join by itself).
    pub join: Vec<String>,
    pub join_token: Option<String>,
    /// --tls-ca, for the client of --join.
    pub tls_ca_file: Option<PathBuf>,
    pub heartbeat: Duration,
    pub election_min: Duration,
    pub election_max: Duration,
    pub snapshot_interval: u64,
    pub snapshot_keep_logs: u64,
    pub limits: ApiLimits,
    pub caps: Caps,
    pub tombstone_ttl: Duration,
    pub watch_history: u64,
    pub cache_bytes: u64,
    pub log_format: LogFormat,
    pub log: String,
    /// TLS on every port, from --tls-cert/--tls-key/--tls-ca.
    pub tls: Option<TlsSettings>,
    /// Bearer-token rules of --auth-config (open without one).
    pub access: Arc<Access>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

fn bad(field: &str, msg: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("--{field}: {msg}"))
}

/// Parses `1=host:port,2=host:port`.
fn parse_id_map(field: &str, s: &str) -> Result<BTreeMap<NodeId, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('=').ok_or_else(|| bad(field, format!("{part:?} is not ID=HOST:PORT")))?;
        let id: NodeId = id.trim().parse().map_err(|_| bad(field, format!("{id:?} is not a node id")))?;
        if id == 0 {
            return Err(bad(field, "node ids start at 1"));
        }
        let addr = addr.trim();
        if addr.is_empty() || !addr.contains(':') {
            return Err(bad(field, format!("address {addr:?} of node {id} is not HOST:PORT")));
        }
        if out.insert(id, addr.to_string()).is_some() {
            return Err(bad(field, format!("node {id} is listed twice")));
        }
    }
    Ok(out)
}

impl Settings {
    /// Fills unset fields from `file`.
    fn or(self, file: Settings) -> Settings {
        macro_rules! pick {
            ($($f:ident),*) => { Settings { config: self.config, $($f: self.$f.or(file.$f)),* } };
        }
        pick!(
            id,
            listen,
            advertise,
            http,
            peers,
            peer_dial,
            data_dir,
            initial_cluster_state,
            join,
            join_token,
            heartbeat_ms,
            election_min_ms,
            election_max_ms,
            snapshot_interval,
            snapshot_keep_logs,
            min_ttl_ms,
            max_ttl_ms,
            max_wait_ms,
            max_waiters_per_lock,
            max_locks,
            tombstone_ttl_ms,
            watch_history,
            cache_mb,
            log_format,
            log,
            tls_cert,
            tls_key,
            tls_ca,
            tls_peer_client_auth,
            auth_config
        )
    }

    /// Merges the config file (if any) and applies defaults and checks.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let s = match &self.config {
            None => self,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("--config {}: {e}", path.display())))?;
                let file: Settings =
                    toml::from_str(&text).map_err(|e| ConfigError(format!("--config {}: {e}", path.display())))?;
                self.or(file)
            }
        };
        let id = s.id.unwrap_or(1);
        if id == 0 {
            return Err(bad("id", "node ids start at 1"));
        }
        let listen_s = s.listen.unwrap_or_else(|| "127.0.0.1:7070".into());
        let listen: SocketAddr = listen_s.parse().map_err(|e| bad("listen", format!("{listen_s:?}: {e}")))?;
        let advertise = s.advertise.unwrap_or_else(|| listen_s.clone());
        let mut peers = match &s.peers {
            Some(p) => parse_id_map("peers", p)?,
            None => BTreeMap::new(),
        };
        match peers.get(&id) {
            None if peers.is_empty() => {
                peers.insert(id, advertise.clone());
            }
            None => return Err(bad("peers", format!("must include this node ({id})"))),
            Some(_) => {}
        }
        let peer_dial = match &s.peer_dial {
            Some(p) => parse_id_map("peer-dial", p)?,
            None => BTreeMap::new(),
        };
        let heartbeat_ms = s.heartbeat_ms.unwrap_or(100);
        let election_min_ms = s.election_min_ms.unwrap_or(250);
        let election_max_ms = s.election_max_ms.unwrap_or(500);
        if heartbeat_ms == 0 || election_min_ms <= heartbeat_ms || election_max_ms <= election_min_ms {
            return Err(ConfigError(format!(
                "timings must satisfy 0 < heartbeat-ms < election-min-ms < election-max-ms, got {heartbeat_ms} / {election_min_ms} / {election_max_ms}"
            )));
        }
        let min_ttl_ms = s.min_ttl_ms.unwrap_or(1000);
        let max_ttl_ms = s.max_ttl_ms.unwrap_or(3_600_000);
        if min_ttl_ms == 0 || max_ttl_ms < min_ttl_ms {
            return Err(ConfigError(format!(
                "ttl bounds must satisfy 0 < min-ttl-ms <= max-ttl-ms, got {min_ttl_ms} / {max_ttl_ms}"
            )));
        }
        let snapshot_interval = s.snapshot_interval.unwrap_or(10_000);
        if snapshot_interval == 0 {
            return Err(bad("snapshot-interval", "must be at least 1"));
        }
        let tls = match (&s.tls_cert, &s.tls_key, &s.tls_ca) {
            (None, None, None) => {
                if s.tls_peer_client_auth == Some(true) {
                    return Err(bad("tls-peer-client-auth", "needs TLS: give --tls-cert, --tls-key and --tls-ca"));
                }
                None
            }
            (Some(cert), Some(key), Some(ca)) => {
                Some(TlsSettings::load(cert, key, ca, s.tls_peer_client_auth.unwrap_or(false)).map_err(ConfigError)?)
            }
            _ => {
                return Err(ConfigError(
                    "--tls-cert, --tls-key and --tls-ca go together: give all three to turn TLS on, or none".into(),
                ))
            }
        };
        let join: Vec<String> = s
            .join
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect();
        if s.join.is_some() && join.is_empty() {
            return Err(bad("join", "give the client endpoints of running members, host:port,..."));
        }
        if !join.is_empty() && s.initial_cluster_state == Some(ClusterState::New) {
            return Err(bad("join", "joins an existing cluster: it cannot go with --initial-cluster-state new"));
        }
        if s.join_token.is_some() && join.is_empty() {
            return Err(bad("join-token", "is the token of --join: give --join too"));
        }
        let initial_cluster_state = match (s.initial_cluster_state, join.is_empty()) {
            (Some(state), _) => state,
            (None, false) => ClusterState::Existing,
            (None, true) => ClusterState::New,
        };
        let access = match &s.auth_config {
            Some(path) => Access::load(path).map_err(ConfigError)?,
            None => Access::open(),
        };
        Ok(Config {
            id,
            listen,
            advertise,
            http: s.http.unwrap_or_else(|| "127.0.0.1:7080".into()),
            peers,
            peer_dial,
            data_dir: s.data_dir.unwrap_or_else(|| PathBuf::from("tenure-data")),
            initial_cluster_state,
            join,
            join_token: s.join_token,
            tls_ca_file: s.tls_ca.clone(),
            heartbeat: Duration::from_millis(heartbeat_ms),
            election_min: Duration::from_millis(election_min_ms),
            election_max: Duration::from_millis(election_max_ms),
            snapshot_interval,
            snapshot_keep_logs: s.snapshot_keep_logs.unwrap_or(1000),
            limits: ApiLimits { min_ttl_ms, max_ttl_ms, max_wait_ms: s.max_wait_ms.unwrap_or(60_000) },
            caps: Caps {
                max_waiters_per_lock: s.max_waiters_per_lock.unwrap_or(10_000),
                max_locks: s.max_locks.unwrap_or(1_000_000),
            },
            tombstone_ttl: Duration::from_millis(s.tombstone_ttl_ms.unwrap_or(600_000)),
            watch_history: s.watch_history.unwrap_or(100_000),
            cache_bytes: s.cache_mb.unwrap_or(64) * 1024 * 1024,
            log_format: s.log_format.unwrap_or(LogFormat::Text),
            log: s.log.unwrap_or_else(|| std::env::var("RUST_LOG").unwrap_or_else(|_| "info,openraft=warn".into())),
            tls,
            access: Arc::new(access),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["tenured"];
        argv.extend_from_slice(args);
        Settings::try_parse_from(argv).map_err(|e| ConfigError(e.to_string()))?.resolve()
    }

    #[test]
    fn no_flags_is_a_single_node_on_7070() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7070");
        assert_eq!(c.peers, BTreeMap::from([(1, "127.0.0.1:7070".to_string())]));
        assert_eq!(c.data_dir, PathBuf::from("tenure-data"));
    }

    #[test]
    fn config_file_fills_what_flags_leave_unset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tenure.toml");
        std::fs::write(&path, "id = 2\nlisten = \"127.0.0.1:9000\"\nmax-wait-ms = 5\n").unwrap();
        let c = parse(&["--config", path.to_str().unwrap(), "--max-wait-ms", "7"]).unwrap();
        assert_eq!(c.id, 2);
        assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(c.limits.max_wait_ms, 7);
    }

    #[test]
    fn join_implies_an_existing_cluster_and_refuses_what_contradicts_it() {
        let c = parse(&["--join", "a:1, b:2"]).unwrap();
        assert_eq!(
            (c.join.as_slice(), c.initial_cluster_state),
            (["a:1".to_string(), "b:2".to_string()].as_slice(), ClusterState::Existing)
        );
        assert!(parse(&[]).unwrap().join.is_empty());
        for (args, flag) in [
            (&["--join", " , "][..], "--join"),
            (&["--join", "a:1", "--initial-cluster-state", "new"][..], "--join"),
            (&["--join-token", "t"][..], "--join-token"),
        ] {
            let e = parse(args).unwrap_err().to_string();
            assert!(e.contains(flag), "{args:?}: {e}");
        }
    }

    #[test]
    fn bad_values_name_the_flag() {
        assert!(parse(&["--peers", "1=a:1,x=b:2"]).unwrap_err().to_string().contains("--peers"));
        assert!(parse(&["--id", "3", "--peers", "1=a:1,2=b:2"]).unwrap_err().to_string().contains("must include"));
        assert!(parse(&["--listen", "nope"]).unwrap_err().to_string().contains("--listen"));
        assert!(parse(&["--election-min-ms", "50"]).unwrap_err().to_string().contains("heartbeat-ms"));
    }

    #[test]
    fn bad_tls_and_auth_files_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let m = missing.to_str().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let j = junk.to_str().unwrap();
        let e = parse(&["--tls-cert", m, "--tls-key", m, "--tls-ca", m]).unwrap_err().to_string();
        assert!(e.contains("--tls-cert") && e.contains("missing.pem") && e.contains("cannot read"), "{e}");
        let e = parse(&["--tls-cert", j, "--tls-key", j, "--tls-ca", j]).unwrap_err().to_string();
        assert!(e.contains("--tls-cert") && e.contains("junk.pem") && e.contains("no PEM certificate"), "{e}");
        // A key that is not the certificate's.
        let (a, b) = (
            rcgen::generate_simple_self_signed(["a".to_string()]).unwrap(),
            rcgen::generate_simple_self_signed(["b".to_string()]).unwrap(),
        );
        let (cert, key) = (dir.path().join("a.pem"), dir.path().join("b.key"));
        std::fs::write(&cert, a.cert.pem()).unwrap();
        std::fs::write(&key, b.key_pair.serialize_pem()).unwrap();
        let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
        let e = parse(&["--tls-cert", c, "--tls-key", k, "--tls-ca", c]).unwrap_err().to_string();
        assert!(e.contains("--tls-key") && e.contains("b.key"), "{e}");
        assert!(parse(&["--tls-cert", c, "--tls-key", c, "--tls-ca", c])
            .unwrap_err()
            .to_string()
            .contains("no PEM private key"));
        let e = parse(&["--tls-cert", j]).unwrap_err().to_string();
        assert!(e.contains("go together"), "{e}");
        let e = parse(&["--tls-peer-client-auth"]).unwrap_err().to_string();
        assert!(e.contains("--tls-peer-client-auth"), "{e}");
        let bad = dir.path().join("auth.toml");
        std::fs::write(&bad, "[[token]]\nname = \"a\"\ntoken = \"t\"\nprefixes = [\"\"]\nrights = [\"fly\"]\n")
            .unwrap();
        let e = parse(&["--auth-config", bad.to_str().unwrap()]).unwrap_err().to_string();
        assert!(e.contains("--auth-config") && e.contains("auth.toml") && e.contains("fly"), "{e}");
    }
}
