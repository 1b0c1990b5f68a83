//! `tenure-bench`: runs the same lock workloads against a 3-node tenure cluster and a 3-member
//! etcd cluster on this machine, and prints every figure beside etcd's with the ratio.
//!
//! ```text
//! tenure-bench --tenured target/release/tenured --etcd /usr/bin/etcd --out target/bench          # quick
//! tenure-bench --tenured target/release/tenured --etcd /usr/bin/etcd --out target/bench --full   # everything
//! ```
//!
//! Workloads (docs/BENCHMARKS.md says what each measures): uncontended, contended, reads,
//! keepalive, failover, waiters, scale, soak. `--only a,b` runs some of them.

mod drive;
mod procs;
mod stats;
mod work;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::procs::Cluster;
use crate::stats::Report;

#[derive(Parser)]
#[command(about = "Benchmarks tenure against etcd's lock API on this machine")]
struct Args {
    /// The tenured binary to run.
    #[arg(long)]
    tenured: PathBuf,
    /// The etcd binary to run (Debian's etcd-server package installs /usr/bin/etcd).
    #[arg(long, default_value = "etcd")]
    etcd: PathBuf,
    /// Where results (results.json, results.md, pairs.dat, soak.tsv) and the clusters' data go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Every workload at full size: 1M locks, 10k waiters, 20 kills, 1-hour soak.
    #[arg(long)]
    full: bool,
    /// Run only these workloads (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Soak length in seconds (full mode: 3600).
    #[arg(long)]
    soak_secs: Option<u64>,
    /// Locks held in the scale workload (full mode: 1000000).
    #[arg(long)]
    scale_locks: Option<usize>,
    /// Waiters on one lock in the waiters workload (full mode: 10000).
    #[arg(long)]
    waiters: Option<usize>,
    /// Leader kills in the failover workload (quick: 3, full: 20).
    #[arg(long)]
    kills: Option<usize>,
    /// Worker counts of the uncontended workload (quick: 1,16,64; full: 1,4,16,64,256).
    #[arg(long, value_delimiter = ',')]
    workers: Vec<usize>,
    /// Keep the clusters' data directories and logs (under OUT/data) after the run.
    #[arg(long)]
    keep: bool,
    /// Seconds each throughput measurement runs (quick: 3, full: 20).
    #[arg(long)]
    secs: Option<u64>,
}

/// How big each workload is.
pub struct Plan {
    pub secs: Duration,
    pub workers: Vec<usize>,
    pub keepalive_leases: usize,
    pub keepalive_secs: Duration,
    pub kills: usize,
    pub scale_locks: usize,
    pub waiters: usize,
    pub soak: Duration,
}

const WORKLOADS: [&str; 8] = ["uncontended", "contended", "reads", "keepalive", "failover", "waiters", "scale", "soak"];

fn plan(args: &Args) -> Plan {
    let (secs, workers, ka, ka_secs, kills, scale, waiters, soak) = if args.full {
        (20, vec![1, 4, 16, 64, 256], 10_000, 60, 20, 1_000_000, 10_000, 3600)
    } else {
        (3, vec![1, 16, 64], 1_000, 10, 3, 0, 0, 0)
    };
    Plan {
        secs: Duration::from_secs(args.secs.unwrap_or(secs)),
        workers: if args.workers.is_empty() { workers } else { args.workers.clone() },
        keepalive_leases: ka,
        keepalive_secs: Duration::from_secs(ka_secs),
        kills: args.kills.unwrap_or(kills),
        scale_locks: args.scale_locks.unwrap_or(scale),
        waiters: args.waiters.unwrap_or(waiters),
        soak: Duration::from_secs(args.soak_secs.unwrap_or(soak)),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for w in &args.only {
        anyhow::ensure!(WORKLOADS.contains(&w.as_str()), "--only: unknown workload {w:?} (workloads: {WORKLOADS:?})");
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let plan = plan(&args);
    let wanted = |w: &str| args.only.is_empty() || args.only.iter().any(|o| o == w);
    let data = args.out.join("data");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let started = std::time::Instant::now();
    println!(
        "== tenure-bench ({} mode) on {} cores; results in {}",
        if args.full { "full" } else { "quick" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.out.display()
    );
    let mut report = Report::default();
    let mut tenure = Cluster::tenure(&args.tenured, &data.join("a"), &[])?;
    let mut etcd = Cluster::etcd(&args.etcd, &data.join("a"))?;
    let t = drive::Driver::connect(&tenure).await?;
    let e = drive::Driver::connect(&etcd).await?;
    t.ready(&[1, 2, 3], Duration::from_secs(30)).await.context("tenure cluster")?;
    e.ready(&[1, 2, 3], Duration::from_secs(30)).await.context("etcd cluster")?;
    println!("== clusters ready after {:.1?}", started.elapsed());

    let phase = |name: &str| {
        println!("== {name} (at {:.0?})", started.elapsed());
    };
    if wanted("uncontended") {
        phase("uncontended");
        work::uncontended(&mut report, &plan, &t, &e, &args.out).await?;
    }
    if wanted("contended") {
        phase("contended");
        work::contended(&mut report, &plan, &t, &e).await?;
    }
    if wanted("reads") {
        phase("reads");
        work::reads(&mut report, &plan, &t, &e).await?;
    }
    if wanted("keepalive") {
        phase("keepalive");
        work::keepalive(&mut report, &plan, (&tenure, &t), (&etcd, &e)).await?;
    }
    if wanted("failover") && plan.kills > 0 {
        phase("failover");
        work::failover(&mut report, &plan, (&mut tenure, &t), (&mut etcd, &e)).await?;
    }
    if wanted("waiters") && plan.waiters > 0 {
        phase("waiters");
        work::waiters(&mut report, &plan, (&tenure, &t), (&etcd, &e)).await?;
    }
    if wanted("scale") && plan.scale_locks > 0 {
        phase("scale");
        work::scale(&mut report, &plan, (&mut tenure, &t), (&mut etcd, &e)).await?;
    }
    drop((t, e));
    etcd.stop_all();
    tenure.stop_all();
    if wanted("soak") && !plan.soak.is_zero() {
        phase("soak");
        let mut fresh = Cluster::tenure(&args.tenured, &data.join("soak"), &[])?;
        let d = drive::Driver::connect(&fresh).await?;
        d.ready(&[1, 2, 3], Duration::from_secs(30)).await?;
        work::soak(&mut report, &plan, &fresh, &d, &args.out).await?;
        drop(d);
        fresh.stop_all();
    }

    println!("\n== results ({:.0?} in all)\n{}", started.elapsed(), report.table());
    std::fs::write(args.out.join("results.md"), report.markdown())?;
    std::fs::write(args.out.join("results.json"), serde_json::to_string_pretty(&report.json())?)?;
    println!("== wrote {}/results.md and results.json", args.out.display());
    if !args.keep {
        let _ = std::fs::remove_dir_all(&data);
    }
    Ok(())
}
