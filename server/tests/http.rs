//! The HTTP/JSON API against a real 3-node cluster, with requests shaped as curl sends them
//! (HTTP/1.1, `Connection: close`, no content type for JSON): the same outcomes and error codes
//! as gRPC, leader redirects, KV, cluster status, metrics that move, health and readiness. Every
//! JSON reply is checked against the schema the OpenAPI document declares for it, and every
//! operation of the document is exercised.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{detail, eventually, Cluster};
use serde_json::{json, Value};
use tenure_proto::v1 as pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Reply {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection, read to its end.
async fn request(addr: &str, method: &str, path: &str, body: &[u8]) -> Reply {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.expect("write");
        s.write_all(body).await.expect("write");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read");
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(15), exchange).await.expect("HTTP reply within 15 s");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).expect("status line");
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let mut body = raw[split + 4..].to_vec();
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        body = dechunk(&body);
    }
    Reply { status, content_type: header("content-type").unwrap_or_default(), body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&b[..line_end]).expect("utf8").trim(), 16).expect("hex");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[line_end + 2..line_end + 2 + size]);
        b = &b[line_end + 2 + size + 2..];
    }
}

async fn post(addr: &str, path: &str, body: Value) -> Reply {
    request(addr, "POST", path, body.to_string().as_bytes()).await
}

async fn get(addr: &str, path: &str) -> Reply {
    request(addr, "GET", path, b"").await
}

/// The OpenAPI document, with a record of which operations a test has checked a reply of.
struct Spec {
    doc: Value,
    seen: BTreeSet<String>,
}

impl Spec {
    fn new(doc: Value) -> Self {
        Self { doc, seen: BTreeSet::new() }
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.strip_prefix("#/components/schemas/").expect("local ref");
                &self.doc["components"]["schemas"][name]
            }
            None => schema,
        }
    }

    /// Checks `value` against `schema`: types, required properties, enums, array items.
    fn check(&self, at: &str, value: &Value, schema: &Value) {
        let schema = self.resolve(schema);
        let ty = schema.get("type").and_then(Value::as_str);
        match ty {
            Some("object") => {
                let obj = value.as_object().unwrap_or_else(|| panic!("{at}: expected an object, got {value}"));
                for r in schema["required"].as_array().into_iter().flatten() {
                    let r = r.as_str().expect("required name");
                    assert!(obj.contains_key(r), "{at}: required property {r:?} missing in {value}");
                }
                if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                    for (k, v) in obj {
                        let p = props.get(k).unwrap_or_else(|| panic!("{at}: property {k:?} is not in the document"));
                        self.check(&format!("{at}.{k}"), v, p);
                    }
                }
            }
            Some("array") => {
                let items = value.as_array().unwrap_or_else(|| panic!("{at}: expected an array, got {value}"));
                for (i, v) in items.iter().enumerate() {
                    self.check(&format!("{at}[{i}]"), v, &schema["items"]);
                }
            }
            Some("string") => assert!(value.is_string(), "{at}: expected a string, got {value}"),
            Some("integer") => assert!(value.is_u64(), "{at}: expected a non-negative integer, got {value}"),
            Some("boolean") => assert!(value.is_boolean(), "{at}: expected a boolean, got {value}"),
            other => panic!("{at}: schema type {other:?} not handled by this checker"),
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            assert!(allowed.contains(value), "{at}: {value} is not one of {allowed:?}");
        }
    }

    /// Checks a reply of `method path` (a path of the document) against what the document says
    /// that status returns.
    fn reply(&mut self, method: &str, path: &str, r: &Reply) {
        let op = &self.doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not in the OpenAPI document");
        let responses = &op["responses"];
        let key = r.status.to_string();
        let declared = if responses.get(&key).is_some() { &responses[&key] } else { &responses["default"] };
        assert!(declared.is_object(), "{method} {path}: status {} is not declared", r.status);
        let content = declared["content"].as_object().expect("content");
        let (ctype, media) = content.iter().next().expect("one media type");
        assert!(
            r.content_type.starts_with(ctype.as_str()),
            "{method} {path}: content type {:?}, declared {ctype}",
            r.content_type
        );
        if ctype == "application/json" {
            self.check(&format!("{method} {path} {}", r.status), &r.json(), &media["schema"]);
        }
        if r.status == 200 {
            self.seen.insert(format!("{method} {path}"));
        }
    }

    fn operations(&self) -> BTreeSet<String> {
        let mut ops = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                ops.insert(format!("{method} {path}"));
            }
        }
        ops
    }
}

/// A metric's value in Prometheus text, the sum over its label sets if `labels` is empty.
fn metric(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(k, _)| {
            let (n, l) = k.split_once('{').map_or((*k, ""), |(n, l)| (n, l.trim_end_matches('}')));
            n == name && (labels.is_empty() || l == labels)
        })
        .map(|(_, v)| v.parse::<f64>().expect("metric value"))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_does_what_grpc_does_with_the_same_codes() {
    let cluster = Cluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|&i| i != leader).expect("a follower");
    let l = cluster.nodes[(leader - 1) as usize].http.clone();
    let f = cluster.nodes[(follower - 1) as usize].http.clone();
    let mut grpc = cluster.locks(leader).await;

    // Every member's HTTP address reaches the membership, including peers that started after
    // the bootstrapping node (which could not probe them then).
    let want: Vec<(u64, String)> = cluster.nodes.iter().map(|n| (n.id, n.http.clone())).collect();
    eventually("every member's HTTP address is in the membership", Duration::from_secs(10), || async {
        let s = get(&f, "/v1/cluster").await.json();
        let have: Vec<(u64, String)> = s["members"]
            .as_array()?
            .iter()
            .map(|m| (m["id"].as_u64().unwrap_or(0), m["http_addr"].as_str().unwrap_or("").to_string()))
            .collect();
        (have == want).then_some(())
    })
    .await;
    let doc = get(&l, "/v1/openapi.json").await;
    assert_eq!(doc.status, 200);
    let mut spec = Spec::new(doc.json());
    spec.seen.insert("get /v1/openapi.json".into());

    let metrics_before = get(&l, "/metrics").await;
    spec.reply("get", "/metrics", &metrics_before);
    let before = metrics_before.text();

    // Acquire, as curl sends it: a duration as text, no content type.
    let a = post(&l, "/v1/locks/acquire", json!({"name": "jobs/a", "owner": "curl", "ttl": "20s"})).await;
    spec.reply("post", "/v1/locks/acquire", &a);
    let a = a.json();
    assert_eq!(a["outcome"], "GRANTED", "{a}");
    let t1 = a["lease"]["token"].as_u64().expect("token");
    let a_id = a["request_id"].as_str().expect("generated request id").to_string();
    assert_eq!(a["lease"]["ttl_ms"], 20_000);

    // Busy without a wait; queued with one (the lock stays held, so the wait ends QUEUED).
    let busy = post(&l, "/v1/locks/acquire", json!({"name": "jobs/a", "request_id": "b", "ttl_ms": 20000})).await;
    let busy = busy.json();
    assert_eq!(busy["outcome"], "BUSY", "{busy}");
    assert_eq!(busy["holders"][0]["token"], t1);
    let queued =
        post(&l, "/v1/locks/acquire", json!({"name": "jobs/a", "request_id": "c", "ttl": "20s", "wait": "100ms"}))
            .await;
    let queued = queued.json();
    assert_eq!((queued["outcome"].as_str(), queued["position"].as_u64()), (Some("QUEUED"), Some(1)), "{queued}");

    let renew = post(&l, "/v1/locks/renew", json!({"name": "jobs/a", "request_id": a_id})).await;
    spec.reply("post", "/v1/locks/renew", &renew);
    assert_eq!(renew.json(), json!({"ttl_ms": 20000, "held": true}));

    let d = get(&l, "/v1/locks/jobs/a").await;
    spec.reply("get", "/v1/locks/{name}", &d);
    let d = d.json();
    assert_eq!(
        (d["holders"][0]["request_id"].as_str(), d["waiters"][0]["request_id"].as_str()),
        (Some(a_id.as_str()), Some("c"))
    );
    // The same lock seen over gRPC.
    let (h, w) = common::holders_and_waiters(&mut grpc, "jobs/a").await;
    assert_eq!((h, w), (vec![a_id.clone()], vec!["c".to_string()]));

    let list = get(&l, "/v1/locks?prefix=jobs%2F&page_size=10").await;
    spec.reply("get", "/v1/locks", &list);
    assert_eq!(
        list.json()["locks"],
        json!([{"name": "jobs/a", "holders": 1, "waiters": 1, "mode": "EXCLUSIVE", "limit": 0}])
    );

    let fence = post(&l, "/v1/locks/validate-fence", json!({"name": "jobs/a", "token": t1})).await;
    spec.reply("post", "/v1/locks/validate-fence", &fence);
    assert_eq!(fence.json(), json!({"current": true, "current_tokens": [t1]}));

    // Release hands the lock to the queued request, with a higher token.
    let rel = post(&l, "/v1/locks/release", json!({"name": "jobs/a", "request_id": a_id})).await;
    spec.reply("post", "/v1/locks/release", &rel);
    assert_eq!(rel.json(), json!({"was_held": true, "was_queued": false}));
    let d = get(&l, "/v1/locks/jobs/a").await.json();
    assert_eq!(d["holders"][0]["request_id"], "c", "{d}");
    assert!(d["holders"][0]["token"].as_u64().expect("token") > t1);
    let again = post(&l, "/v1/locks/release", json!({"name": "jobs/a", "request_id": a_id})).await;
    assert_eq!(again.json(), json!({"was_held": false, "was_queued": false}), "release is idempotent");

    // ForceRelease (admin), with an immediate handover: the queued request is granted with a
    // higher token in the same entry.
    let q2 = post(&l, "/v1/locks/acquire", json!({"name": "jobs/f", "request_id": "f1"})).await.json();
    let f1_token = q2["lease"]["token"].as_u64().expect("token");
    let f2 = post(&l, "/v1/locks/acquire", json!({"name": "jobs/f", "request_id": "f2", "wait_ms": 50})).await.json();
    assert_eq!(f2["outcome"], "QUEUED", "{f2}");
    let forced =
        post(&l, "/v1/locks/force-release", json!({"name": "jobs/f", "request_id": "f1", "immediate": true})).await;
    spec.reply("post", "/v1/locks/force-release", &forced);
    let forced = forced.json();
    assert_eq!((forced["was_held"].as_bool(), forced["released"][0]["request_id"].as_str()), (Some(true), Some("f1")));
    assert_eq!(forced["granted"][0]["request_id"], "f2", "{forced}");
    assert!(forced["granted"][0]["token"].as_u64().expect("token") > f1_token);
    let both = post(&l, "/v1/locks/force-release", json!({"name": "jobs/f", "request_id": "f2", "all": true})).await;
    assert_eq!((both.status, both.json()["field"].as_str()), (400, Some("all")));
    let all = post(&l, "/v1/locks/force-release", json!({"name": "jobs/f", "all": true})).await.json();
    assert_eq!(all["released"][0]["request_id"], "f2", "{all}");

    // The same errors as gRPC: stable code, HTTP status of DESIGN §5, the field named.
    let gone = post(&l, "/v1/locks/renew", json!({"name": "jobs/a", "request_id": a_id})).await;
    spec.reply("post", "/v1/locks/renew", &gone);
    let g = grpc.renew(pb::RenewRequest { name: "jobs/a".into(), request_id: a_id.clone() }).await.unwrap_err();
    assert_eq!((gone.status, gone.json()["code"].as_str()), (404, Some(detail(&g).code.as_str())));
    assert_eq!(detail(&g).code, "LEASE_NOT_FOUND");

    let finished = post(&l, "/v1/locks/acquire", json!({"name": "jobs/a", "request_id": a_id})).await;
    assert_eq!((finished.status, finished.json()["code"].as_str()), (409, Some("REQUEST_FINISHED")));

    let s1 =
        post(&l, "/v1/locks/acquire", json!({"name": "pool", "request_id": "s1", "mode": "shared", "limit": 2})).await;
    assert_eq!(s1.json()["outcome"], "GRANTED");
    let mismatch =
        post(&l, "/v1/locks/acquire", json!({"name": "pool", "request_id": "s2", "mode": "SHARED", "limit": 3})).await;
    let g = grpc.acquire(common::shared_req("pool", "s2g", 3, 0)).await.unwrap_err();
    assert_eq!((mismatch.status, mismatch.json()["code"].as_str()), (409, Some(detail(&g).code.as_str())));
    assert_eq!(detail(&g).code, "LIMIT_MISMATCH");

    let long_name = "n".repeat(600);
    let g = grpc.acquire(common::acquire_req(&long_name, "long", 10_000, 0)).await.unwrap_err();
    let bad_cases = [
        (json!({"name": long_name, "request_id": "long"}), detail(&g).field),
        (json!({"name": "", "request_id": "empty"}), "name".to_string()),
        (json!({"name": "x", "ttl_ms": -5}), "ttl_ms".to_string()),
        (json!({"name": "x", "ttl_ms": "30"}), "ttl_ms".to_string()),
        (json!({"name": "x", "ttl": "30"}), "ttl".to_string()),
        (json!({"name": "x", "ttl": "1s", "ttl_ms": 1000}), "ttl".to_string()),
        (json!({"name": "x", "ttl_ms": 0}), "ttl_ms".to_string()),
        (json!({"name": "x", "mode": "sometimes"}), "mode".to_string()),
        (json!({"name": "x", "tll": "1s"}), "tll".to_string()),
        (json!(["x"]), "body".to_string()),
    ];
    for (body, field) in bad_cases {
        let r = post(&l, "/v1/locks/acquire", body.clone()).await;
        spec.reply("post", "/v1/locks/acquire", &r);
        let e = r.json();
        assert_eq!((r.status, e["code"].as_str()), (400, Some("INVALID_ARGUMENT")), "{body} -> {e}");
        assert_eq!(e["field"].as_str(), Some(field.as_str()), "{body} -> {e}");
    }
    let garbage = request(&l, "POST", "/v1/locks/acquire", b"\xff\xfe{not json").await;
    assert_eq!((garbage.status, garbage.json()["code"].as_str()), (400, Some("INVALID_ARGUMENT")));
    let unknown = get(&l, "/v1/locks?prefx=a").await;
    assert_eq!((unknown.status, unknown.json()["field"].as_str()), (400, Some("prefx")));
    let stale_bad = get(&l, "/v1/locks/jobs/a?consistency=eventual").await;
    assert_eq!((stale_bad.status, stale_bad.json()["field"].as_str()), (400, Some("consistency")));
    assert_eq!(get(&l, "/v1/nothing").await.status, 404);
    let wrong_method = request(&l, "DELETE", "/v1/locks/acquire", b"").await;
    assert_eq!((wrong_method.status, wrong_method.json()["code"].as_str()), (405, Some("METHOD_NOT_ALLOWED")));
    // Nothing above changed the lock.
    assert_eq!(common::holders_and_waiters(&mut grpc, "jobs/a").await, (vec!["c".to_string()], vec![]));

    // A follower names the leader's HTTP address; stale reads it serves itself.
    let redirected = post(&f, "/v1/locks/acquire", json!({"name": "jobs/b"})).await;
    spec.reply("post", "/v1/locks/acquire", &redirected);
    let e = redirected.json();
    assert_eq!((redirected.status, e["code"].as_str()), (503, Some("NOT_LEADER")), "{e}");
    assert_eq!((e["leader"]["id"].as_u64(), e["leader"]["http_addr"].as_str()), (Some(leader), Some(l.as_str())));
    assert_eq!(get(&f, "/v1/locks/jobs/a").await.status, 503);
    let stale = eventually("the follower's stale read shows the new holder", Duration::from_secs(10), || async {
        let d = get(&f, "/v1/locks/jobs/a?consistency=stale").await.json();
        (d["holders"][0]["request_id"] == "c").then_some(d)
    })
    .await;
    assert_eq!(stale["exists"], true);

    // KV, with a fence.
    let c_token = get(&l, "/v1/locks/jobs/a").await.json()["holders"][0]["token"].as_u64().expect("token");
    let put = request(&l, "PUT", &format!("/v1/kv/conf/a?if_fence_name=jobs/a&if_fence_token={c_token}"), b"v1").await;
    spec.reply("put", "/v1/kv/{key}", &put);
    let rev = put.json()["revision"].as_u64().expect("revision");
    let fenced_out =
        request(&l, "PUT", &format!("/v1/kv/conf/a?if_fence_name=jobs/a&if_fence_token={t1}"), b"v0").await;
    assert_eq!((fenced_out.status, fenced_out.json()["code"].as_str()), (409, Some("FENCED_OUT")));
    let got = get(&l, "/v1/kv/conf/a").await;
    spec.reply("get", "/v1/kv/{key}", &got);
    assert_eq!(
        got.json(),
        json!({"key": "conf/a", "found": true, "value": "v1", "value_base64": "djE=", "revision": rev})
    );
    let keys = get(&l, "/v1/kv?prefix=conf/").await;
    spec.reply("get", "/v1/kv", &keys);
    assert_eq!(keys.json()["items"][0]["key"], "conf/a");
    let too_big = request(&l, "PUT", "/v1/kv/conf/big", &vec![b'x'; 70_000]).await;
    assert_eq!((too_big.status, too_big.json()["field"].as_str()), (400, Some("value")));
    let del = request(&l, "DELETE", "/v1/kv/conf/a", b"").await;
    spec.reply("delete", "/v1/kv/{key}", &del);
    assert_eq!(del.json(), json!({"existed": true}));
    assert_eq!(get(&l, "/v1/kv/conf/a").await.json()["found"], false);

    let status = get(&f, "/v1/cluster").await;
    spec.reply("get", "/v1/cluster", &status);
    let status = status.json();
    assert_eq!((status["node_id"].as_u64(), status["leader_id"].as_u64()), (Some(follower), Some(leader)));
    assert_eq!(status["leader_http_addr"], l.as_str());
    assert_eq!(status["members"].as_array().map(Vec::len), Some(3));

    for path in ["/healthz", "/readyz"] {
        for addr in [&l, &f] {
            let r = get(addr, path).await;
            spec.reply("get", path, &r);
            assert_eq!(r.status, 200, "{path} on {addr}: {}", r.text());
        }
    }

    // The metrics moved with what happened above.
    let after = get(&l, "/metrics").await.text();
    let grew = |name: &str, labels: &str| metric(&after, name, labels) - metric(&before, name, labels);
    assert_eq!(grew("lock_acquire_total", "result=\"granted\""), 3.0, "{after}");
    assert_eq!(grew("lock_acquire_total", "result=\"busy\""), 1.0);
    assert_eq!(grew("lock_acquire_total", "result=\"queued\""), 2.0);
    // Refused by the handler: finished, 2 limit mismatches, 2 long names, empty name, zero TTL.
    // (A body that does not decode never reaches it.)
    assert_eq!(grew("lock_acquire_total", "result=\"error\""), 7.0);
    assert_eq!(grew("lock_release_total", ""), 2.0);
    assert_eq!(grew("lock_renew_total", ""), 1.0);
    assert_eq!(grew("lock_handoff_duration_seconds_count", ""), 1.0);
    assert!(grew("storage_flush_duration_seconds_count", "") >= 1.0);
    assert_eq!(metric(&after, "lock_active_count", ""), 2.0, "c on jobs/a and s1 on pool");
    assert_eq!(metric(&after, "lock_waiters", ""), 0.0);
    assert_eq!(metric(&after, "raft_state", "state=\"leader\""), 1.0);
    let status = cluster.status(leader).await.expect("status");
    assert_eq!(metric(&after, "raft_term", ""), status.term as f64);
    assert!(metric(&after, "raft_applied_index", "") >= 1.0);
    assert!(metric(&after, "raft_commit_index", "") >= metric(&after, "raft_applied_index", ""));
    let f_metrics = get(&f, "/metrics").await.text();
    assert_eq!(metric(&f_metrics, "raft_state", "state=\"follower\""), 1.0);
    let f_active = eventually("the follower applies the same held count", Duration::from_secs(10), || async {
        let v = metric(&get(&f, "/metrics").await.text(), "lock_active_count", "");
        (v == 2.0).then_some(v)
    })
    .await;
    assert_eq!(f_active, 2.0);

    // Ready under a steady stream of writes (an entry committed and not yet applied is normal).
    let writer = {
        let mut c = cluster.locks(leader).await;
        tokio::spawn(async move {
            for i in 0..300 {
                let id = format!("load-{i}");
                c.acquire(common::acquire_req("load", &id, 10_000, 0)).await.expect("acquire");
                c.release(pb::ReleaseRequest { name: "load".into(), request_id: id }).await.expect("release");
            }
        })
    };
    let mut probes = 0;
    while !writer.is_finished() {
        for addr in [&l, &f] {
            let r = get(addr, "/readyz").await;
            assert_eq!(r.status, 200, "not ready under writes: {}", r.text());
            probes += 1;
        }
    }
    writer.await.expect("writer");
    assert!(probes >= 4, "the probes ran while the writes did ({probes})");

    let missing: Vec<_> = spec.operations().difference(&spec.seen).cloned().collect();
    assert!(missing.is_empty(), "operations of the OpenAPI document never answered 200 here: {missing:?}");
}

/// Kills every node but `survivor` and waits for its `/readyz` to answer 503; returns the reply.
async fn cut_off(cluster: &mut Cluster, survivor: u64) -> Value {
    let http = cluster.nodes[(survivor - 1) as usize].http.clone();
    eventually("the node is ready", Duration::from_secs(10), || async {
        (get(&http, "/readyz").await.status == 200).then_some(())
    })
    .await;
    for id in (1..=3).filter(|&i| i != survivor) {
        cluster.kill(id);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let r = get(&http, "/readyz").await;
        if r.status == 503 {
            break r.json();
        }
        let status = get(&http, "/v1/cluster").await.text();
        assert!(std::time::Instant::now() < deadline, "still ready 10 s after the others died: {}\n{status}", r.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let alive = get(&http, "/healthz").await;
    assert_eq!((alive.status, alive.json()["status"].as_str()), (200, Some("ok")), "cut off is still alive");
    assert_eq!(reply["status"], "unavailable");
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_leader_is_alive_but_not_ready() {
    let mut cluster = Cluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|&i| i != leader).expect("a follower");
    let reply = cut_off(&mut cluster, follower).await;
    assert!(reply["reason"].as_str().is_some_and(|r| r.contains("no leader known")), "{reply}");

    // A leader whose followers are gone is not ready either.
    for id in (1..=3).filter(|&i| i != follower) {
        cluster.spawn(id);
    }
    let leader = cluster.leader().await;
    let reply = cut_off(&mut cluster, leader).await;
    let reason = reply["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("cannot confirm it still leads") || reason.contains("heard from no quorum"), "{reply}");
}
