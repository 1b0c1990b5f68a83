//! The README's Rust example. Run it against a running node:
//! `cargo run -p tenure --example quickstart` (uses `TENURE_ENDPOINTS`, else 127.0.0.1:7070).

// README-BEGIN
use std::time::Duration;

use tenure::Client;

pub async fn quickstart(client: &Client) -> Result<u64, tenure::Error> {
    // Wait up to 10 s for the lock; the lease lives 30 s unless renewed (the client renews it).
    let guard = client.lock("job-123").ttl(Duration::from_secs(30)).wait(Duration::from_secs(10)).acquire().await?;
    println!("holding {} with fencing token {}", guard.name(), guard.token());

    // A fenced write: refused with FENCED_OUT if this grant is no longer current.
    client.kv().put("job-123/state", "running", Some(guard.fence())).await?;

    // Do the work, but stop at once if the lease is lost.
    tokio::select! {
        _ = guard.lost() => return Err(tenure::Error::LeaseLost("job-123 was lost".into())),
        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
    }
    guard.release().await?;
    Ok(guard.token())
}
// README-END

#[tokio::main]
async fn main() -> Result<(), tenure::Error> {
    let client = Client::builder().connect().await?;
    quickstart(&client).await?;
    Ok(())
}
