//! The core's examples and the README's Rust example, run against a real cluster. The README
//! block must match `core/examples/quickstart.rs` exactly, so the README cannot drift from code
//! that is compiled and run here.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

#[allow(dead_code)]
#[path = "../../core/examples/quickstart.rs"]
mod quickstart;
#[allow(dead_code)]
#[path = "../../core/examples/worker_queue.rs"]
mod worker_queue;

use std::collections::BTreeSet;

use common::*;

const README: &str = include_str!("../../README.md");
const QUICKSTART: &str = include_str!("../../core/examples/quickstart.rs");

/// The text between the README-BEGIN and README-END markers of the example.
fn quickstart_body() -> &'static str {
    let start = QUICKSTART.find("// README-BEGIN\n").unwrap() + "// README-BEGIN\n".len();
    let end = QUICKSTART.find("// README-END").unwrap();
    &QUICKSTART[start..end]
}

#[test]
fn the_readme_rust_example_is_the_quickstart_example() {
    let body = quickstart_body();
    assert!(body.contains("quickstart"), "markers found");
    assert!(
        README.contains(&format!("```rust\n{body}```")),
        "README.md's Rust example differs from core/examples/quickstart.rs (between the README markers)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_examples_run_against_a_three_node_cluster() {
    let cluster = Cluster::start(3, &[]).await;
    let client = tenure::Client::connect((1..=3).map(|id| cluster.addr(id))).await.unwrap();

    let token = quickstart::quickstart(&client).await.unwrap();
    assert!(token > 0);
    assert_eq!(client.kv().get("job-123/state").await.unwrap().unwrap().value, b"running");
    assert!(!client.describe("job-123").await.unwrap().exists, "the example released its lock");

    let done = worker_queue::run_workers(&client, "jobs", 12, 4).await.unwrap();
    let jobs: BTreeSet<usize> = done.iter().map(|d| d.0).collect();
    assert_eq!(done.len(), 12, "every job ran exactly once: {done:?}");
    assert_eq!(jobs, (0..12).collect());
    let workers: BTreeSet<usize> = done.iter().map(|d| d.1).collect();
    assert!(workers.len() > 1, "the work was shared: {done:?}");
    for job in 0..12 {
        assert!(client.kv().get(format!("jobs/{job}/result")).await.unwrap().is_some());
    }
}

/// The README's CLI example block (the one after the `cli-example` marker), one command a line.
fn readme_cli_lines() -> Vec<&'static str> {
    let marker = README.find("<!-- cli-example").expect("the README has a cli-example block");
    let block = &README[marker..];
    let start = block.find("```sh\n").expect("an sh block after the marker") + "```sh\n".len();
    let end = start + block[start..].find("```").expect("the block ends");
    block[start..end].lines().filter(|l| !l.trim().is_empty()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_cli_examples_run_against_a_three_node_cluster() {
    let cluster = Cluster::start(3, &[]).await;
    let endpoints = (1..=3).map(|id| cluster.addr(id)).collect::<Vec<_>>().join(",");
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_tenure")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let lines = readme_cli_lines();
    assert!(lines.len() >= 5 && lines.iter().all(|l| l.starts_with("tenure ")), "{lines:?}");
    let mut outputs = Vec::new();
    for line in &lines {
        let out = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            tokio::process::Command::new("sh")
                .arg("-c")
                .arg(line)
                .env("PATH", &path)
                .env("TENURE_ENDPOINTS", &endpoints)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("README command timed out: {line}"))
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "README command failed: {line}\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(stdout);
    }
    let all = outputs.join("\n");
    assert!(all.contains("backing up with token "), "run passed the token to the command:\n{all}");
    assert!(all.contains("active"), "kv get printed the value:\n{all}");
    // `acquire` left "deploy" held (its TTL is a minute); the JSON list shows it.
    let client = tenure::Client::connect(endpoints.split(',').map(String::from)).await.unwrap();
    assert_eq!(client.describe("deploy").await.unwrap().holders.len(), 1);
    assert!(client.kv().get("config/mode").await.unwrap().is_none(), "kv del ran");
}
