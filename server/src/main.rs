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
    match tenure_server::buggy::check_selection() {
        Ok(None) => {}
        Ok(Some(bug)) => tracing::warn!(bug, "SEEDED BUG ACTIVE: this node is deliberately unsafe (test build)"),
        Err(e) => {
            eprintln!("tenured: {e}");
            return std::process::ExitCode::from(2);
        }
    }
    // Storage fail points for the disk tests, from FAILPOINTS (test builds only); the scenario
    // lives as long as the process.
    #[cfg(feature = "buggy")]
    let _fail_points = {
        // `fail` panics on a malformed list; say so in one line instead.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let scenario = std::panic::catch_unwind(fail::FailScenario::setup);
        std::panic::set_hook(hook);
        match scenario {
            Ok(scenario) => scenario,
            Err(panic) => {
                let why = panic.downcast_ref::<String>().cloned().unwrap_or_default();
                eprintln!("tenured: FAILPOINTS is not a valid fail point list (name=action;...): {why}");
                return std::process::ExitCode::from(2);
            }
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tenured: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let data_dir = config.data_dir.display().to_string();
    match runtime.block_on(tenure_server::node::run(config, tenure_server::node::shutdown_signal())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let message = format!("{e:#}");
            if message.starts_with("raft stopped") && !message.contains(&data_dir) {
                // Not every storage error knows its file: say which directory it was in.
                eprintln!("tenured: error: {message} (data directory {data_dir})");
            } else {
                eprintln!("tenured: error: {message}");
            }
            // Fail-stop: exit now, without running destructors. Dropping the runtime would wait
            // for blocked storage calls, and sled flushes again when dropped, after a failure.
            std::process::exit(1);
        }
    }
}
