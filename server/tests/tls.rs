//! TLS on a real 3-node cluster: certificates made at test time, peer traffic over TLS with
//! client certificates (the cluster must elect a leader and replicate), and clients that trust
//! the cluster's CA served on the gRPC and HTTP ports while others are refused.

mod common;

use std::time::Duration;

use common::certs::TestPki;
use common::{eventually, web, Cluster, HarnessClient};
use tenure_proto::raft::v1 as rpb;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

async fn tls_cluster() -> (Cluster, TestPki) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::generate(dir.path());
    let (cert, key, ca) = (pki.cert.display().to_string(), pki.key.display().to_string(), pki.ca.display().to_string());
    let flags = ["--tls-cert", &cert, "--tls-key", &key, "--tls-ca", &ca, "--tls-peer-client-auth"];
    let harness = HarnessClient {
        tls: Some(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pki.ca_pem()))),
        token: None,
    };
    // `start_in` waits for a leader and for every member's HTTP address, which the leader learns
    // by probing its peers: both need TLS between the nodes to work.
    (Cluster::start_in(dir, 3, &flags, harness).await, pki)
}

fn client(c: &Cluster) -> tenure::ClientBuilder {
    tenure::Client::builder()
        .endpoints(c.nodes.iter().map(|n| n.addr.clone()))
        .timeout(Duration::from_secs(3))
        .connect_timeout(Duration::from_millis(500))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_replicates_and_serves_only_clients_that_trust_its_ca() {
    let (c, pki) = tls_cluster().await;

    // With the CA: acquire, replicate to every node, release.
    let trusted = client(&c).tls_ca_file(&pki.ca).connect().await.expect("client");
    let guard = trusted.lock("jobs/x").ttl(Duration::from_secs(10)).acquire().await.expect("acquire over TLS");
    assert!(guard.token() > 0);
    let leader = c.leader().await;
    let applied = c.status(leader).await.expect("leader status").applied_index;
    for n in &c.nodes {
        eventually(&format!("node {} applies the acquire", n.id), Duration::from_secs(10), || async {
            (c.status(n.id).await?.applied_index >= applied).then_some(())
        })
        .await;
    }
    assert!(guard.release().await.expect("release"));

    // Without it: plain connections to a TLS port get nowhere.
    let plain = client(&c).connect().await.expect("client");
    let e = plain.describe("jobs/x").await.expect_err("plain gRPC to a TLS port");
    assert!(e.to_string().contains("tls_ca_file"), "{e:?}");
    // https without a CA is refused by the client itself, naming the missing file.
    let e = tenure::Client::builder()
        .endpoints([format!("https://{}", c.addr(1))])
        .timeout(Duration::from_secs(3))
        .connect()
        .await
        .expect("client")
        .describe("jobs/x")
        .await
        .expect_err("https without a CA");
    assert_eq!(e.code(), "INVALID_ARGUMENT", "{e:?}");
    assert!(e.to_string().contains("CA"), "{e}");
    // A CA that did not sign the nodes' certificates fails the handshake.
    let wrong = client(&c).tls_ca_file(&pki.other_ca).connect().await.expect("client");
    let e = wrong.describe("jobs/x").await.expect_err("another CA");
    assert!(matches!(e.code(), "UNAVAILABLE" | "TIMEOUT"), "{e:?}");

    // HTTP: over TLS with the CA, not with another CA, not in plain text.
    let http = c.nodes[0].http.clone();
    let ok = web::request(&http, Some(&web::connector(&pki.ca_pem())), "GET", "/v1/cluster", &[], b"")
        .await
        .expect("HTTPS with the CA");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["members"].as_array().map(Vec::len), Some(3), "{}", ok.body);
    let other = std::fs::read(&pki.other_ca).expect("read");
    let e = web::request(&http, Some(&web::connector(&other)), "GET", "/v1/cluster", &[], b"")
        .await
        .err()
        .expect("HTTPS with another CA fails");
    assert!(e.contains("TLS handshake"), "{e}");
    let e = web::request(&http, None, "GET", "/healthz", &[], b"").await.err().expect("plain HTTP to a TLS port fails");
    assert!(e.contains("HTTP"), "{e}");

    // The CLI takes the CA with --tls-ca (or TENURE_TLS_CA).
    let cli = |ca: Option<&std::path::Path>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tenure"));
        cmd.args(["--endpoints", &c.addr(1), "--timeout", "2s", "describe", "jobs/x"]).env_remove("TENURE_TLS_CA");
        if let Some(ca) = ca {
            cmd.arg("--tls-ca").arg(ca);
        }
        cmd.output().expect("run tenure")
    };
    let out = cli(Some(&pki.ca));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!cli(None).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_peer_client_auth_the_raft_service_refuses_callers_without_a_client_certificate() {
    let (c, pki) = tls_cluster().await;
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pki.ca_pem()));
    let probe = |tls: ClientTlsConfig| {
        let uri = format!("https://{}", c.addr(1));
        async move {
            let channel = Endpoint::from_shared(uri).expect("uri").tls_config(tls).expect("tls").connect_lazy();
            let mut raft = rpb::raft_client::RaftClient::new(channel);
            raft.probe(rpb::ProbeRequest { from: 99, incarnation: "test".into() }).await
        }
    };
    let refused = probe(tls.clone()).await.expect_err("probe without a client certificate");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("client certificate"), "{refused:?}");

    let cert = std::fs::read(&pki.cert).expect("read");
    let key = std::fs::read(&pki.key).expect("read");
    let answered = probe(tls.identity(Identity::from_pem(cert, key))).await.expect("probe with the node certificate");
    assert_eq!(answered.into_inner().node_id, 1);

    // The API on the same port needs no client certificate (the harness has none).
    assert!(c.status(1).await.is_some());
}
