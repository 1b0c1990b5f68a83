//! The command `tenure run` supervises: started in a process group of its own, signalled as a
//! group, and watched for its exit *without being reaped* until tenure is done signalling it.
//! While a dead child is not reaped its pid stays taken, so the process group id tenure signals
//! can never belong to an unrelated process that reused the number.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus};

use rustix::io::Errno;
use rustix::process::{kill_process_group, waitid, Pid, Signal, WaitId, WaitIdOptions};
use tokio::sync::watch;

use crate::exit::{Failure, CANNOT_EXECUTE, COMMAND_NOT_FOUND};

pub struct Supervised {
    child: Child,
    group: Pid,
    exited: watch::Receiver<bool>,
}

impl Supervised {
    /// Starts `argv` (program, then arguments) with `env` added to tenure's environment, as the
    /// leader of a new process group; stdin, stdout and stderr are tenure's.
    pub fn spawn(argv: &[OsString], env: &[(&str, &str)]) -> Result<Supervised, Failure> {
        let Some((program, args)) = argv.split_first() else {
            return Err(Failure::new("INVALID_ARGUMENT", "no command to run", crate::exit::FAILED));
        };
        let mut command = Command::new(program);
        command.args(args).process_group(0);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().map_err(|e| spawn_failure(&program.to_string_lossy(), &e))?;
        let group = Pid::from_child(&child);
        let (tx, exited) = watch::channel(false);
        // A plain thread, not the runtime's blocking pool: it may still be blocked when tenure
        // exits, and the runtime must not wait for it.
        std::thread::spawn(move || {
            while let Err(Errno::INTR) = waitid(WaitId::Pid(group), WaitIdOptions::EXITED | WaitIdOptions::NOWAIT) {}
            let _ = tx.send(true);
        });
        Ok(Supervised { child, group, exited })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to every process of the command's group. Safe until [`Supervised::reap`]:
    /// the group id cannot have been reused.
    pub fn signal_group(&self, signal: Signal) {
        // ESRCH: the whole group is gone already, which is what a kill wants anyway.
        let _ = kill_process_group(self.group, signal);
    }

    /// Resolves once the command has exited (it is not reaped yet).
    pub async fn exited(&mut self) {
        // An error means the watcher thread ended, which it does only after the exit.
        let _ = self.exited.wait_for(|exited| *exited).await;
    }

    /// Collects the exit status; call after [`Supervised::exited`], or it blocks until then.
    pub fn reap(mut self) -> io::Result<ExitStatus> {
        self.child.wait()
    }
}

/// The exit code tenure passes on: the command's own, or 128+N if signal N killed it.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => (code & 0xff) as u8,
        (None, Some(signal)) => (128 + signal).clamp(0, 255) as u8,
        (None, None) => crate::exit::FAILED,
    }
}

fn spawn_failure(program: &str, e: &io::Error) -> Failure {
    if e.kind() == io::ErrorKind::NotFound {
        Failure::new("COMMAND_NOT_FOUND", format!("{program}: command not found ({e})"), COMMAND_NOT_FOUND)
    } else {
        Failure::new("CANNOT_EXECUTE", format!("{program}: cannot execute ({e})"), CANNOT_EXECUTE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[tokio::test]
    async fn an_exit_code_and_a_signal_death_become_tenures_exit_code() {
        let mut c = Supervised::spawn(&argv(&["sh", "-c", "exit 7"]), &[]).unwrap();
        c.exited().await;
        assert_eq!(exit_code(c.reap().unwrap()), 7);
        let mut c = Supervised::spawn(&argv(&["sh", "-c", "kill -KILL $$"]), &[]).unwrap();
        c.exited().await;
        assert_eq!(exit_code(c.reap().unwrap()), 128 + 9);
    }

    #[tokio::test]
    async fn the_environment_is_passed_and_the_group_is_signalled() {
        let mut c = Supervised::spawn(&argv(&["sh", "-c", "exit $TENURE_TOKEN"]), &[("TENURE_TOKEN", "42")]).unwrap();
        c.exited().await;
        assert_eq!(exit_code(c.reap().unwrap()), 42);
        let mut c = Supervised::spawn(&argv(&["sh", "-c", "sleep 30; exit 0"]), &[]).unwrap();
        c.signal_group(Signal::TERM);
        c.exited().await;
        assert_eq!(exit_code(c.reap().unwrap()), 128 + 15);
    }

    #[test]
    fn a_missing_command_and_a_non_executable_file_are_told_apart() {
        let Err(f) = Supervised::spawn(&argv(&["/nonexistent/tenure-test-command"]), &[]) else { panic!("spawned") };
        assert_eq!(f.exit, COMMAND_NOT_FOUND);
        let dir = std::env::temp_dir();
        let Err(f) = Supervised::spawn(&argv(&[dir.to_str().unwrap()]), &[]) else { panic!("spawned a directory") };
        assert_eq!(f.exit, CANNOT_EXECUTE);
    }
}
