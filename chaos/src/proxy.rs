//! A userspace TCP proxy for one directed link (node A dialling node B), the way etcd's robustness
//! tests cut and slow peer traffic without netem.
//!
//! Each direction of the link (`Up`: A's bytes to B; `Down`: B's answers to A) is forwarded,
//! held, or delayed with jitter. Holding stops reading, so the bytes wait in socket buffers and
//! arrive after the heal, as TCP retransmission would deliver them after a short partition; a long
//! one is ended by the nodes' own deadlines and HTTP/2 keepalives, and new connections made during
//! it hang the same way. Nothing is ever dropped from the middle of a stream, so a healed link
//! carries valid HTTP/2 again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What one direction of a link does with bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Forward,
    /// Nothing passes until the mode changes.
    Hold,
    /// Every chunk waits `base ± jitter` (order is kept).
    Delay {
        base: Duration,
        jitter: Duration,
    },
}

/// A direction of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// From the dialling node to the dialled one.
    Up,
    /// The answers.
    Down,
}

/// The proxy of one directed link.
pub struct LinkProxy {
    addr: String,
    up: watch::Sender<Flow>,
    down: watch::Sender<Flow>,
    task: JoinHandle<()>,
}

impl LinkProxy {
    /// Listens on a free port of `bind_ip` and forwards each connection to `target`.
    pub async fn start(bind_ip: &str, target: String) -> std::io::Result<LinkProxy> {
        let listener = TcpListener::bind((bind_ip, 0)).await?;
        let addr = listener.local_addr()?.to_string();
        let (up, _) = watch::channel(Flow::Forward);
        let (down, _) = watch::channel(Flow::Forward);
        let (up_rx, down_rx) = (up.subscribe(), down.subscribe());
        let task = tokio::spawn(async move {
            let tasks = Arc::new(Mutex::new(Vec::<JoinHandle<()>>::new()));
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                let (target, up_rx, down_rx) = (target.clone(), up_rx.clone(), down_rx.clone());
                let handle = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else { return };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pump(cr, sw, up_rx), pump(sr, cw, down_rx));
                });
                let mut t = tasks.lock().unwrap_or_else(|p| p.into_inner());
                t.retain(|h| !h.is_finished());
                t.push(handle);
            }
        });
        Ok(LinkProxy { addr, up, down, task })
    }

    /// Where the dialling node should connect.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn set(&self, dir: Dir, flow: Flow) {
        match dir {
            Dir::Up => self.up.send_replace(flow),
            Dir::Down => self.down.send_replace(flow),
        };
    }

    /// Both directions forward again.
    pub fn heal(&self) {
        self.set(Dir::Up, Flow::Forward);
        self.set(Dir::Down, Flow::Forward);
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` as `flow` says, until either side closes.
async fn pump(mut from: OwnedReadHalf, to: OwnedWriteHalf, mut flow: watch::Receiver<Flow>) {
    // Chunks with the moment they may be written; a writer task keeps delayed ones in order.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        let mut to = to;
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_at = Instant::now();
    loop {
        let current = *flow.borrow_and_update();
        if current == Flow::Hold {
            if flow.changed().await.is_err() {
                break;
            }
            continue;
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            changed = flow.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
        };
        let now = Instant::now();
        let at = match current {
            Flow::Delay { base, jitter } => {
                let j = if jitter.is_zero() {
                    Duration::ZERO
                } else {
                    rand::thread_rng().gen_range(Duration::ZERO..jitter * 2)
                };
                (now + base.saturating_sub(jitter) + j).max(last_at)
            }
            _ => now.max(last_at),
        };
        last_at = at;
        if tx.send((at, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}
