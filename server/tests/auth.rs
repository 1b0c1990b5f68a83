//! Bearer-token access control on a real 3-node cluster: no token or an unknown one is
//! UNAUTHENTICATED, a right the token lacks or a name outside its prefixes is PERMISSION_DENIED,
//! over gRPC (through the client core) and over HTTP (401 and 403) alike.

mod common;

use std::time::Duration;

use common::{eventually, web, Cluster, HarnessClient};
use serde_json::json;
use tenure_proto::v1 as pb;
use tokio_stream::StreamExt as _;

const AUTH: &str = r#"
[[token]]
name = "harness"
token = "harness-token"
prefixes = [""]
rights = ["read", "lock"]

[[token]]
name = "ci-runner"
token = "ci-token"
prefixes = ["jobs/"]
rights = ["lock"]

[[token]]
name = "dashboard"
token = "reader-token"
prefixes = ["jobs/"]
rights = ["read"]

[[token]]
name = "ops"
token = "ops-token"
prefixes = [""]
rights = ["read", "lock", "kv", "admin"]
"#;

async fn auth_cluster() -> Cluster {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("auth.toml");
    std::fs::write(&path, AUTH).expect("write");
    let path = path.display().to_string();
    let harness = HarnessClient { tls: None, token: Some("harness-token".into()) };
    Cluster::start_in(dir, 3, &["--auth-config", &path], harness).await
}

async fn client(c: &Cluster, token: Option<&str>) -> tenure::Client {
    let mut b =
        tenure::Client::builder().endpoints(c.nodes.iter().map(|n| n.addr.clone())).timeout(Duration::from_secs(5));
    if let Some(t) = token {
        b = b.bearer_token(t);
    }
    b.connect().await.expect("client")
}

fn code<T: std::fmt::Debug>(r: Result<T, tenure::Error>) -> &'static str {
    match r {
        Ok(_) => "OK",
        Err(e) => e.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_need_a_known_token_with_the_right_and_the_prefix() {
    let c = auth_cluster().await;
    let ttl = Duration::from_secs(10);

    // No token, or one the cluster does not know.
    let anonymous = client(&c, None).await;
    assert_eq!(code(anonymous.describe("jobs/x").await), "UNAUTHENTICATED");
    assert_eq!(code(anonymous.lock("jobs/x").ttl(ttl).acquire().await), "UNAUTHENTICATED");
    let stranger = client(&c, Some("guess")).await;
    assert_eq!(code(stranger.describe("jobs/x").await), "UNAUTHENTICATED");

    // `lock` on jobs/: locks jobs/x (and keeps it alive), nothing outside, no KV, no admin.
    let ci = client(&c, Some("ci-token")).await;
    let guard = ci.lock("jobs/x").ttl(Duration::from_millis(1500)).acquire().await.expect("ci-runner locks jobs/x");
    // Its client's KeepAlive stream carries the token too: the leader counts renewals (nothing
    // else here renews a lease).
    let leader_http = c.nodes[(c.leader().await - 1) as usize].http.clone();
    eventually("a KeepAlive renewal of jobs/x", Duration::from_secs(10), || async {
        let m = web::request(&leader_http, None, "GET", "/metrics", &[], b"").await.ok()?;
        let renewed = m.body.lines().find(|l| l.starts_with("lock_renew_total "))?;
        (renewed.split(' ').nth(1)?.parse::<f64>().ok()? > 0.0).then_some(())
    })
    .await;
    assert!(guard.is_held());
    assert_eq!(code(ci.lock("other/x").ttl(ttl).acquire().await), "PERMISSION_DENIED");
    assert_eq!(code(ci.kv().put("jobs/k", "v", None).await), "PERMISSION_DENIED");
    let target = tenure::ForceReleaseTarget::Request(guard.request_id().to_string());
    assert_eq!(
        code(ci.force_release("jobs/x", target.clone(), tenure::Handover::Immediate).await),
        "PERMISSION_DENIED"
    );
    assert_eq!(code(ci.describe("jobs/x").await), "PERMISSION_DENIED", "no `read` right");
    let e = ci.lock("other/x").ttl(ttl).acquire().await.expect_err("outside the prefix");
    assert!(e.to_string().contains("ci-runner") && e.to_string().contains("other/x"), "{e}");

    // `read` on jobs/: describes and lists inside its prefix only, and cannot lock.
    let reader = client(&c, Some("reader-token")).await;
    let d = reader.describe("jobs/x").await.expect("dashboard describes jobs/x");
    assert_eq!(d.holders.len(), 1);
    assert_eq!(code(reader.list("jobs/").await), "OK");
    assert_eq!(code(reader.list("").await), "PERMISSION_DENIED");
    assert_eq!(code(reader.describe("other/x").await), "PERMISSION_DENIED");
    assert_eq!(code(reader.lock("jobs/y").ttl(ttl).acquire().await), "PERMISSION_DENIED");
    assert_eq!(code(reader.watch_prefix("").start().await.map(|_| ())), "PERMISSION_DENIED");
    assert_eq!(code(reader.watch_prefix("jobs/").start().await.map(|_| ())), "OK");

    // `kv` and `admin`.
    let ops = client(&c, Some("ops-token")).await;
    assert_eq!(code(ops.kv().put("jobs/k", "v", None).await), "OK");
    assert!(ops
        .force_release("jobs/x", target, tenure::Handover::Immediate)
        .await
        .expect("ops force-releases")
        .was_held());
    drop(guard);

    // Membership changes need `admin` on every name: ci-runner has neither, ops both (removing
    // a node that is not a member changes nothing).
    assert_eq!(code(ci.remove_member(9, false).await), "PERMISSION_DENIED");
    assert_eq!(code(ci.add_member(9, "127.0.0.1:9", "").await), "PERMISSION_DENIED");
    let unchanged = ops.remove_member(9, false).await.expect("ops may change the membership");
    assert!(!unchanged.changed, "{unchanged:?}");

    // The CLI sends --token (or TENURE_AUTH_TOKEN).
    let cli = |token: &str, name: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenure"))
            .args(["--endpoints", &c.addr(1), "--token", token, "describe", name])
            .env_remove("TENURE_AUTH_TOKEN")
            .output()
            .expect("run tenure");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    assert_eq!(cli("reader-token", "jobs/x").0, Some(0));
    let (status, stderr) = cli("reader-token", "other/x");
    assert!(status == Some(125) && stderr.contains("PERMISSION_DENIED"), "{status:?} {stderr}");

    // KeepAlive checks each lease's name: a lease outside the prefix fails its batch.
    let mut locks = c.locks(c.leader().await).await;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.metadata_mut().insert("authorization", "Bearer ci-token".parse().expect("header"));
    let mut replies = locks.keep_alive(req).await.expect("stream opens").into_inner();
    let lease = pb::LeaseRef { name: "other/x".into(), request_id: "r1".into() };
    tx.send(pb::KeepAliveRequest { seq: 1, leases: vec![lease] }).await.expect("send");
    let reply = replies.next().await.expect("a reply").expect("not a stream error");
    assert_eq!(reply.error.map(|e| e.code).as_deref(), Some("PERMISSION_DENIED"));
    let mut req = tonic::Request::new(tokio_stream::iter(Vec::<pb::KeepAliveRequest>::new()));
    req.metadata_mut().insert("authorization", "Bearer guess".parse().expect("header"));
    let refused = locks.keep_alive(req).await.expect_err("unknown token");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_calls_get_401_without_a_known_token_and_403_outside_its_rights() {
    let c = auth_cluster().await;
    let leader = c.leader().await;
    let http = c.nodes[(leader - 1) as usize].http.clone();
    let call = |method: &'static str, path: &'static str, token: Option<&'static str>, body: serde_json::Value| {
        let http = http.clone();
        async move {
            let auth = token.map(|t| format!("Bearer {t}"));
            let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
            let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
            web::request(&http, None, method, path, &headers, &body).await.expect("HTTP reply")
        }
    };
    let acquire = |name: &str| json!({"name": name, "ttl": "10s"});

    let r = call("GET", "/v1/locks/jobs%2Fx", None, json!(null)).await;
    assert_eq!((r.status, r.json()["code"].as_str()), (401, Some("UNAUTHENTICATED")), "{}", r.body);
    let r = call("GET", "/v1/locks/jobs%2Fx", Some("guess"), json!(null)).await;
    assert_eq!((r.status, r.json()["code"].as_str()), (401, Some("UNAUTHENTICATED")), "{}", r.body);

    let r = call("POST", "/v1/locks/acquire", Some("ci-token"), acquire("jobs/x")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call("POST", "/v1/locks/acquire", Some("ci-token"), acquire("other/x")).await;
    assert_eq!((r.status, r.json()["code"].as_str()), (403, Some("PERMISSION_DENIED")), "{}", r.body);
    let r = call("PUT", "/v1/kv/jobs%2Fk", Some("ci-token"), json!("v")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = call("POST", "/v1/locks/acquire", Some("reader-token"), acquire("jobs/y")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = call("GET", "/v1/locks/jobs%2Fx", Some("reader-token"), json!(null)).await;
    assert_eq!((r.status, r.json()["holders"].as_array().map(Vec::len)), (200, Some(1)), "{}", r.body);
    let r = call("POST", "/v1/locks/force-release", Some("reader-token"), json!({"name": "jobs/x", "all": true})).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = call("GET", "/v1/cluster", Some("ops-token"), json!(null)).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Health, readiness and metrics stay open (DESIGN §5; README "Access control").
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = call("GET", path, None, json!(null)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
}
