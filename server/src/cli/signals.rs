//! SIGINT, SIGTERM and SIGHUP, caught instead of killing tenure, so that it can withdraw a
//! waiting request, release a held lock, or pass the signal on to the command it runs. (A
//! terminal's hangup reaches only tenure's process group, not the command's: were tenure to die
//! of it, the command would run on while its lease ran out.)

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::exit::{Failure, FAILED};

/// A stop signal tenure received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    Hup,
    Int,
    Term,
}

impl Interrupt {
    /// The signal number (1, 2 or 15).
    pub fn number(self) -> u8 {
        match self {
            Interrupt::Hup => 1,
            Interrupt::Int => 2,
            Interrupt::Term => 15,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Interrupt::Hup => "SIGHUP",
            Interrupt::Int => "SIGINT",
            Interrupt::Term => "SIGTERM",
        }
    }

    /// The same signal, to pass on to a process group.
    pub fn signal(self) -> rustix::process::Signal {
        match self {
            Interrupt::Hup => rustix::process::Signal::HUP,
            Interrupt::Int => rustix::process::Signal::INT,
            Interrupt::Term => rustix::process::Signal::TERM,
        }
    }
}

/// SIGHUP, SIGINT and SIGTERM handlers. From `install` on, those signals no longer end tenure:
/// they arrive through [`Interrupts::recv`].
pub struct Interrupts {
    hup: Signal,
    int: Signal,
    term: Signal,
}

impl Interrupts {
    pub fn install() -> Result<Interrupts, Failure> {
        let handler = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| Failure::new("INTERNAL", format!("cannot handle {name}: {e}"), FAILED))
        };
        Ok(Interrupts {
            hup: handler(SignalKind::hangup(), "SIGHUP")?,
            int: handler(SignalKind::interrupt(), "SIGINT")?,
            term: handler(SignalKind::terminate(), "SIGTERM")?,
        })
    }

    /// The next SIGHUP, SIGINT or SIGTERM.
    pub async fn recv(&mut self) -> Interrupt {
        // `recv` yields `None` only once the runtime shuts down; then wait forever.
        tokio::select! {
            Some(()) = self.hup.recv() => Interrupt::Hup,
            Some(()) = self.int.recv() => Interrupt::Int,
            Some(()) = self.term.recv() => Interrupt::Term,
            else => std::future::pending().await,
        }
    }
}
