//! `tenure run NAME -- CMD`: hold a lock while a command runs, kill the command if the lease is
//! lost, pass its exit code on. The exit codes are listed in the help of `tenure run` (the doc
//! comment of [`crate::args::RunArgs`]).

use std::ffi::OsString;
use std::time::Duration;

use rustix::process::Signal;
use tenure::{Client, LockGuard};

use crate::args::RunArgs;
use crate::child::{exit_code, Supervised};
use crate::exit::{Failure, FAILED, LEASE_LOST};
use crate::locks::obtain;
use crate::output::Output;
use crate::signals::Interrupts;

/// How long tenure waits for a SIGKILLed command to be gone before it exits anyway (a process
/// stuck in uninterruptible I/O dies only when the I/O ends).
const KILL_WAIT: Duration = Duration::from_secs(5);

pub async fn run(client: &Client, out: &Output, args: &RunArgs, interrupts: &mut Interrupts) -> Result<u8, Failure> {
    let guard = obtain(client, &args.name, &args.lock, interrupts).await?;
    let token = guard.token().to_string();
    let env = [("TENURE_LOCK", args.name.as_str()), ("TENURE_TOKEN", token.as_str())];
    let mut child = match Supervised::spawn(&args.command, &env) {
        Ok(child) => child,
        Err(failure) => {
            release(out, guard, &args.name).await;
            return Err(failure);
        }
    };
    let lost = guard.lost();
    tokio::pin!(lost);
    loop {
        tokio::select! {
            // A lease lost while the command was finishing still counts as lost: part of its
            // work may have run unprotected, and the caller must know.
            biased;
            () = &mut lost => {
                child.signal_group(Signal::KILL);
                let pid = child.pid();
                if tokio::time::timeout(KILL_WAIT, child.exited()).await.is_ok() {
                    let _ = child.reap();
                }
                let why = guard.lost_reason().unwrap_or_default();
                let message = format!("lease on {:?} lost ({why}); killed {} (pid {pid})", args.name, shown(&args.command));
                return Err(Failure::new("LEASE_LOST", message, LEASE_LOST));
            }
            () = child.exited() => break,
            interrupt = interrupts.recv() => child.signal_group(interrupt.signal()),
        }
    }
    let status = child.reap().map_err(|e| {
        Failure::new("INTERNAL", format!("cannot collect the exit status of {}: {e}", shown(&args.command)), FAILED)
    })?;
    release(out, guard, &args.name).await;
    Ok(exit_code(status))
}

/// Releases the lock after the command is done. A failure does not change tenure's exit code
/// (the command's): the lease will expire by its TTL.
async fn release(out: &Output, guard: LockGuard, name: &str) {
    match guard.release().await {
        Ok(true) => {}
        Ok(false) => out.warn(&format!("lock {name:?} was no longer held when the command ended")),
        Err(e) => out.warn(&format!(
            "could not release lock {name:?} ({}: {e}); it will expire when its TTL runs out",
            e.code()
        )),
    }
}

/// The command line as a human would type it (arguments with spaces quoted).
fn shown(argv: &[OsString]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy())
        .map(|a| if a.is_empty() || a.contains(char::is_whitespace) { format!("{a:?}") } else { a.into_owned() })
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_is_shown_with_spaced_arguments_quoted() {
        let argv = ["sh", "-c", "exit 7"].map(OsString::from);
        assert_eq!(shown(&argv), "sh -c \"exit 7\"");
    }
}
