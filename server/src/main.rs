//! `tenured`: one node of a tenure cluster.

use clap::Parser;
use tenure_server::config::{LogFormat, Settings};

fn main() -> std::process::ExitCode {
    let config = match Settings::parse().resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tenured: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tenured: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tenure_server::node::run(config, tenure_server::node::shutdown_signal())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tenured: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
