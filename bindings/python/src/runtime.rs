//! Running the core's futures for Python: blocking (GIL released, Ctrl-C honoured) or as asyncio
//! awaitables, both on the core's one process-wide runtime, which must not be used after fork().

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::errors::{to_pyerr, used_after_fork};

/// How long a blocking call sleeps (without the GIL) between two looks at pending signals:
/// Ctrl-C interrupts a wait within this much, plus scheduling.
const SIGNAL_SLICE: Duration = Duration::from_millis(20);

/// The process that first used the runtime. The runtime's threads do not survive fork(), so in
/// any other process every call would wait for threads that no longer exist.
static OWNER_PID: OnceLock<u32> = OnceLock::new();

/// The core's runtime, shared with pyo3-async-runtimes so sync and asyncio calls run on the
/// same threads; refused (with a clear error) in a child forked after it started.
pub fn runtime() -> PyResult<&'static Runtime> {
    let pid = std::process::id();
    let owner = *OWNER_PID.get_or_init(|| pid);
    if owner != pid {
        return Err(used_after_fork(owner, pid));
    }
    let rt = tenure::runtime();
    // Already set by an earlier call: the same runtime, nothing to do.
    let _ = pyo3_async_runtimes::tokio::init_with_runtime(rt);
    Ok(rt)
}

/// How long an interrupted call waits for its task to be dropped on the runtime.
const CANCEL_WAIT: Duration = Duration::from_millis(100);

/// Aborts the task when dropped, so a blocking call interrupted by Ctrl-C drops the core's
/// future (a waiting acquire then withdraws its request).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    /// Aborts the task and waits (briefly, bounded) until the runtime has dropped its future,
    /// so the withdrawal it starts is under way before the caller goes on; `Client.close()`
    /// (run at interpreter exit too) then waits for it instead of racing the process's exit.
    fn cancel(&self) {
        self.0.abort();
        let deadline = Instant::now() + CANCEL_WAIT;
        while !self.0.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `fut` on the core's runtime and waits for it with the GIL released, in slices, running
/// Python's signal handlers between them: a KeyboardInterrupt (or any exception a handler
/// raises) ends the wait at once and cancels the call.
pub fn block_on<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = Result<T, tenure::Error>> + Send + 'static,
    T: Send + 'static,
{
    let rt = runtime()?;
    let (tx, rx) = sync_channel::<Result<T, tenure::Error>>(1);
    let task = AbortOnDrop(rt.spawn(async move {
        let _ = tx.send(fut.await);
    }));
    let mut rx = rx;
    loop {
        // The receiver is moved in and back out: `detach` needs a `Send` closure, and `&Receiver`
        // is not `Send`.
        let (back, received) = py.detach(move || {
            let r = rx.recv_timeout(SIGNAL_SLICE);
            (rx, r)
        });
        rx = back;
        match received {
            Ok(result) => return result.map_err(|e| to_pyerr(py, e)),
            Err(RecvTimeoutError::Timeout) => {
                if let Err(interrupted) = py.check_signals() {
                    py.detach(|| task.cancel());
                    return Err(interrupted);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                let e = tenure::Error::Internal("the client task ended without an answer (it panicked)".into());
                return Err(to_pyerr(py, e));
            }
        }
    }
}

/// Calls from the runtime's threads into Python that may still be under way: awaitables not
/// finished yet, lost-lease callbacks being delivered.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Set at interpreter exit: from then on the runtime's threads leave Python alone.
static EXITING: AtomicBool = AtomicBool::new(false);
/// After the last awaitable finished, how long the GIL is left free for pyo3-async-runtimes to
/// finish handing its result to the event loop.
const EXIT_GRACE: Duration = Duration::from_millis(50);

/// Counts one call into Python from the runtime's threads while it lives.
pub struct InFlight(());

impl InFlight {
    pub fn start() -> InFlight {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether the interpreter is exiting (see [`quiesce`]).
pub fn exiting() -> bool {
    EXITING.load(Ordering::SeqCst)
}

/// Called at interpreter exit, before finalization: stops the runtime's threads from entering
/// Python, and waits (with the GIL released, at most `timeout` seconds) for those inside it to
/// leave. CPython 3.11 ends a foreign thread that takes the GIL back once finalization has
/// begun with `pthread_exit`, which aborts the process when it unwinds through Rust frames.
#[pyfunction]
pub fn _quiesce(py: Python<'_>, timeout: f64) {
    EXITING.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::try_from_secs_f64(timeout).unwrap_or(Duration::ZERO);
    py.detach(|| {
        while IN_FLIGHT.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(EXIT_GRACE);
    });
}

/// `fut` as an asyncio awaitable on the running loop. Cancelling the awaitable (task cancel,
/// `asyncio.wait_for`) drops `fut`.
pub fn awaitable<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, tenure::Error>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    runtime()?;
    let in_flight = InFlight::start();
    pyo3_async_runtimes::tokio::future_into_py(py, async move {
        let _in_flight = in_flight;
        fut.await.map_err(|e| {
            if exiting() {
                return PyRuntimeError::new_err(format!("{}: {e}", e.code()));
            }
            Python::attach(|py| to_pyerr(py, e))
        })
    })
}
