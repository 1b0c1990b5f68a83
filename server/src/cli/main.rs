//! `tenure`: the command-line client of a tenure cluster, built on the client core (crate
//! `tenure`) alone. `tenure --help` lists the commands; `tenure run --help` the exit codes,
//! which are also in `exit.rs`.

mod args;
mod child;
mod cluster;
mod exit;
mod kv;
mod locks;
mod output;
mod run;
mod signals;
mod timestamp;
mod view;
mod watch;

use std::process::ExitCode;

use clap::Parser;
use tenure::duration;

use crate::args::{Cli, Command, GlobalArgs};
use crate::exit::{Failure, FAILED};
use crate::output::Output;
use crate::signals::Interrupts;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and exit 0; usage errors exit 125, not clap's 2, so
            // that `tenure run` never answers with a code the command itself could return.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { FAILED } else { 0 });
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TENURE_LOG").unwrap_or_else(|_| "error".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    let out = Output::new(cli.global.output);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            out.error(&Failure::new("INTERNAL", format!("cannot start the async runtime: {e}"), FAILED));
            return ExitCode::from(FAILED);
        }
    };
    let code = runtime.block_on(async {
        match execute(&cli, &out).await {
            Ok(code) => code,
            Err(failure) => {
                out.error(&failure);
                failure.exit
            }
        }
    });
    // Do not wait for background work (keepalives, best-effort releases) to wind down.
    runtime.shutdown_background();
    ExitCode::from(code)
}

async fn execute(cli: &Cli, out: &Output) -> Result<u8, Failure> {
    let client = connect(&cli.global).await?;
    match &cli.command {
        // Signal handlers go in before the lock is requested, so that a signal while it is
        // awaited withdraws the request instead of killing tenure.
        Command::Run(args) => run::run(&client, out, args, &mut Interrupts::install()?).await,
        Command::Acquire(args) => locks::acquire(&client, out, args, &mut Interrupts::install()?).await,
        Command::Release { name, request_id } => locks::release(&client, out, name, request_id).await,
        Command::ForceRelease(args) => locks::force_release(&client, out, args).await,
        Command::Describe { name } => locks::describe(&client, out, name).await,
        Command::List { prefix } => locks::list(&client, out, prefix.as_deref().unwrap_or("")).await,
        Command::Watch(args) => watch::watch(&client, out, args, &mut Interrupts::install()?).await,
        Command::Kv(command) => kv::kv(&client, out, command).await,
        Command::Cluster(command) => cluster::cluster(&client, out, command).await,
    }
}

/// A client as the global flags say. It contacts no node until the first call.
async fn connect(global: &GlobalArgs) -> Result<tenure::Client, Failure> {
    let endpoints: Vec<String> =
        global.endpoints.iter().map(|e| e.trim()).filter(|e| !e.is_empty()).map(String::from).collect();
    let mut builder = tenure::Client::builder().timeout(global.timeout);
    if let Some(ca) = &global.tls_ca {
        builder = builder.tls_ca_file(ca);
    }
    if let Some(token) = &global.token {
        builder = builder.bearer_token(token);
    }
    if !endpoints.is_empty() {
        builder = builder.endpoints(endpoints);
    }
    if let Some(owner) = &global.owner {
        builder = builder.owner(owner.clone());
    }
    Ok(builder.connect().await?)
}
