//! A worker queue: several workers share a list of jobs; each job runs exactly once, under its
//! own lock, and records its result with a write fenced by that lock, so a worker that lost its
//! lock cannot overwrite a newer result.
//!
//! `cargo run -p tenure --example worker_queue` (uses `TENURE_ENDPOINTS`, else 127.0.0.1:7070).

use std::time::Duration;

use tenure::Client;

/// One job done: (job, worker, fencing token).
pub type Done = (usize, usize, u64);

/// Runs `jobs` jobs on `workers` concurrent workers; returns what each job's worker did.
pub async fn run_workers(
    client: &Client,
    prefix: &str,
    jobs: usize,
    workers: usize,
) -> Result<Vec<Done>, tenure::Error> {
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (client, prefix) = (client.clone(), prefix.to_string());
        tasks.push(tokio::spawn(async move { work(&client, &prefix, jobs, worker).await }));
    }
    let mut done = Vec::new();
    for t in tasks {
        done.extend(t.await.map_err(|e| tenure::Error::Internal(e.to_string()))??);
    }
    Ok(done)
}

async fn work(client: &Client, prefix: &str, jobs: usize, worker: usize) -> Result<Vec<Done>, tenure::Error> {
    let mut done = Vec::new();
    // Each worker walks the list from its own starting point, skipping jobs someone else holds.
    for i in 0..jobs {
        let job = (i + worker * jobs / 4) % jobs;
        let lock = format!("{prefix}/{job}");
        let Some(guard) = client.lock(&lock).ttl(Duration::from_secs(10)).try_acquire().await? else {
            continue;
        };
        let result_key = format!("{lock}/result");
        if client.kv().get(&result_key).await?.is_some() {
            continue; // done earlier by another worker
        }
        // The "work". A real job would pass guard.token() to every system it writes to.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let result = format!("job {job} by worker {worker}");
        client.kv().put(&result_key, result, Some(guard.fence())).await?;
        done.push((job, worker, guard.token()));
        guard.release().await?;
    }
    Ok(done)
}

#[allow(dead_code)] // used when built as an example; tests include this file for run_workers
#[tokio::main]
async fn main() -> Result<(), tenure::Error> {
    let client = Client::builder().owner("worker-queue-example").connect().await?;
    let done = run_workers(&client, "example-jobs", 20, 4).await?;
    for (job, worker, token) in &done {
        println!("job {job:>2} done by worker {worker} (token {token})");
    }
    println!("{} jobs done", done.len());
    Ok(())
}
