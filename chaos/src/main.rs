//! `tenure-chaos`: runs tenure clusters under faults and checks the histories (see
//! docs/RELIABILITY.md). Exit status 0 only if every run was valid and had no violation.
//!
//!   tenure-chaos                         one 3-node run with every fault once (ci/chaos.sh)
//!   tenure-chaos --minutes 30            runs over 3- and 5-node clusters until 30 minutes pass
//!   tenure-chaos --faults kill-leader,pause-leader --nodes 5

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::Parser;
use rand::seq::SliceRandom;
use tenure_chaos::nemesis::Fault;
use tenure_chaos::run::{self, Outcome, RunConfig};

#[derive(Debug, Parser)]
#[command(name = "tenure-chaos")]
struct Args {
    /// The `tenured` binary [default: next to this executable]
    #[arg(long)]
    tenured: Option<PathBuf>,
    /// Cluster sizes, used in turn.
    #[arg(long, value_delimiter = ',', default_value = "3")]
    nodes: Vec<u64>,
    /// Faults, comma-separated, in order [default: every fault]
    #[arg(long, value_delimiter = ',')]
    faults: Vec<String>,
    /// Seconds each fault lasts.
    #[arg(long, default_value_t = 3.0)]
    hold: f64,
    /// Keep starting runs (sizes in turn, faults shuffled) until this many minutes have passed.
    #[arg(long)]
    minutes: Option<f64>,
    /// Extra flags for every `tenured`, e.g. `--snapshot-interval=200`.
    #[arg(long = "server-flag", allow_hyphen_values = true)]
    server_flags: Vec<String>,
    /// Instead of a campaign, run each seeded bug's scenario with the bug and without it, and
    /// fail unless every bug is caught and every control passes (needs `--features buggy`, for
    /// this binary and for `tenured`). Optionally only the named bugs, comma-separated.
    #[arg(long, value_delimiter = ',', num_args = 0.., value_name = "BUG")]
    seeded: Option<Vec<String>>,
}

fn tenured_path(arg: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = arg {
        return Ok(p);
    }
    let exe = std::env::current_exe()?;
    let p = exe.with_file_name("tenured");
    p.exists().then_some(p).ok_or_else(|| anyhow!("no tenured next to {}; pass --tenured", exe.display()))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tenure-chaos: {e}");
            return ExitCode::from(2);
        }
    };
    let work = async {
        let run = async {
            match args.seeded.clone() {
                Some(bugs) => seeded(args, bugs).await,
                None => campaign(args).await,
            }
        };
        // On SIGINT or SIGTERM the run is dropped, and with it its cluster, whose nodes are
        // killed: a campaign stopped early leaves no `tenured` behind to dial reused ports.
        tokio::select! {
            r = run => r,
            why = stop_signal() => Err(anyhow!("stopped by {why}")),
        }
    };
    match runtime.block_on(work) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("tenure-chaos: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn campaign(args: Args) -> anyhow::Result<bool> {
    let tenured = tenured_path(args.tenured)?;
    let faults: Vec<Fault> = if args.faults.is_empty() {
        Fault::ALL.to_vec()
    } else {
        args.faults
            .iter()
            .map(|f| Fault::parse(f).ok_or_else(|| anyhow!("unknown fault {f:?}")))
            .collect::<Result<_, _>>()?
    };
    let started = Instant::now();
    let budget = args.minutes.map(|m| Duration::from_secs_f64(m * 60.0));
    let mut outcomes = Vec::new();
    let mut round = 0usize;
    loop {
        let nodes = args.nodes[round % args.nodes.len()];
        let mut order = faults.clone();
        if budget.is_some() {
            order.shuffle(&mut rand::thread_rng());
        }
        let cfg = RunConfig {
            tenured: tenured.clone(),
            nodes,
            faults: order,
            hold: Duration::from_secs_f64(args.hold),
            server_flags: args.server_flags.clone(),
            min_ops: 200,
        };
        let outcome = run::run(&cfg).await.with_context(|| format!("run {} ({nodes} nodes)", round + 1))?;
        print_outcome(round + 1, &outcome);
        outcomes.push(outcome);
        round += 1;
        match budget {
            Some(b) if started.elapsed() < b => continue,
            _ => break,
        }
    }
    print_summary(&outcomes, started.elapsed());
    Ok(outcomes.iter().all(Outcome::passed))
}

async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        _ => std::future::pending().await,
    }
}

#[cfg(not(feature = "buggy"))]
async fn seeded(_args: Args, _bugs: Vec<String>) -> anyhow::Result<bool> {
    Err(anyhow!("this tenure-chaos was built without the `buggy` feature; --seeded needs it"))
}

/// Every seeded bug must be caught by its check, and its control run must pass.
#[cfg(feature = "buggy")]
async fn seeded(args: Args, bugs: Vec<String>) -> anyhow::Result<bool> {
    use tenure_chaos::seeded::{self, Seed};
    let tenured = tenured_path(args.tenured)?;
    let seeds: Vec<Seed> = if bugs.is_empty() {
        Seed::ALL.to_vec()
    } else {
        bugs.iter()
            .map(|b| Seed::parse(b).ok_or_else(|| anyhow!("unknown seeded bug {b:?}")))
            .collect::<Result<_, _>>()?
    };
    let started = Instant::now();
    let mut all_good = true;
    for seed in seeds {
        for buggy in [true, false] {
            let t = Instant::now();
            let report = seeded::trial(&tenured, seed, buggy).await?;
            let caught = report.violations.iter().any(|v| v.check == seed.caught_by());
            let good = if buggy { caught } else { report.passed() };
            all_good &= good;
            println!(
                "seeded {:<26} {:<7} {:<4} {} ({:.1}s)",
                seed.name(),
                if buggy { "bug on" } else { "control" },
                if good { "ok" } else { "FAIL" },
                match (buggy, report.violations.first()) {
                    (true, _) if caught => format!("caught by {}", seed.caught_by()),
                    (true, _) => format!("NOT caught by {}", seed.caught_by()),
                    (false, None) => "no violation".to_string(),
                    (false, Some(_)) => format!("{} violations", report.violations.len()),
                },
                t.elapsed().as_secs_f64()
            );
            let show = if buggy { !caught } else { !good };
            if show || std::env::var_os("SEEDED_VERBOSE").is_some() {
                for v in &report.violations {
                    println!("    {v}");
                }
            }
        }
    }
    println!(
        "== seeded bugs: {} in {:.0}s",
        if all_good { "every bug caught, every control clean" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    Ok(all_good)
}

fn print_outcome(n: usize, o: &Outcome) {
    let verdict = if o.passed() { "PASS" } else { "FAIL" };
    println!(
        "run {n}: {verdict} nodes={} faults={} ops={} ok={} fail={} unknown={} violations={} inconclusive={} took={:.0}s",
        o.nodes,
        o.injections.len(),
        o.ops,
        o.ok,
        o.failed,
        o.unknown,
        o.report.violations.len(),
        o.report.inconclusive.len(),
        o.elapsed.as_secs_f64()
    );
    for v in &o.report.violations {
        println!(
            "  VIOLATION {}{}: {}",
            v.check,
            v.lock.as_ref().map(|l| format!(" [{l}]")).unwrap_or_default(),
            v.detail
        );
    }
    for l in &o.report.inconclusive {
        println!("  INCONCLUSIVE linearizability search on {l}");
    }
    for i in &o.invalid {
        println!("  INVALID {i}");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn print_summary(outcomes: &[Outcome], elapsed: Duration) {
    let mut failovers: Vec<Duration> = outcomes.iter().flat_map(|o| o.failovers.iter().copied()).collect();
    failovers.sort();
    let sum = |f: fn(&Outcome) -> usize| outcomes.iter().map(f).sum::<usize>();
    let stale_rejected: u32 = outcomes.iter().flat_map(|o| &o.injections).map(|i| i.stale_rejected).sum();
    let stale_accepted: u32 = outcomes.iter().flat_map(|o| &o.injections).map(|i| i.stale_accepted).sum();
    let mid_install = outcomes.iter().flat_map(|o| &o.injections).filter(|i| i.killed_mid_install).count();
    println!("== chaos summary: {} runs in {:.0}s", outcomes.len(), elapsed.as_secs_f64());
    println!("   cluster sizes: {:?}", outcomes.iter().map(|o| o.nodes).collect::<Vec<_>>());
    println!("   faults injected and healed: {:?}", run::fault_counts(outcomes));
    println!(
        "   ops: {} (ok {}, fail {}, unknown {})",
        sum(|o| o.ops),
        sum(|o| o.ok),
        sum(|o| o.failed),
        sum(|o| o.unknown)
    );
    println!("   stale fenced writes: rejected {stale_rejected}, accepted {stale_accepted}");
    println!("   kills that landed while a follower was receiving a snapshot: {mid_install}");
    println!(
        "   failover (leader SIGKILL -> first acknowledged write): n={} p50={:?} p99={:?} max={:?}",
        failovers.len(),
        percentile(&failovers, 0.5),
        percentile(&failovers, 0.99),
        failovers.last().copied().unwrap_or_default()
    );
    println!(
        "   violations: {}, inconclusive: {}, invalid runs: {}",
        sum(|o| o.report.violations.len()),
        sum(|o| o.report.inconclusive.len()),
        outcomes.iter().filter(|o| !o.invalid.is_empty()).count()
    );
}
