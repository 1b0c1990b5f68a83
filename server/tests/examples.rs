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
