//! A small TCP proxy for tests: forwards a loopback port to a node, and can stop forwarding
//! (a silent partition: connections stay open, bytes go nowhere) without closing anything.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    addr: String,
    forwarding: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `target` (`host:port`).
    pub async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr").to_string();
        let forwarding = Arc::new(AtomicBool::new(true));
        let target = target.to_string();
        let on = forwarding.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                let (target, on) = (target.clone(), on.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else { return };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pump(cr, sw, on.clone()), pump(sr, cw, on));
                });
            }
        });
        Proxy { addr, forwarding, task }
    }

    /// The proxy's own address, `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// Stops forwarding in both directions; bytes read meanwhile are dropped.
    pub fn blackhole(&self) {
        self.forwarding.store(false, Ordering::SeqCst);
    }

    /// Forwards again (bytes dropped while black-holed stay lost).
    pub fn resume(&self) {
        self.forwarding.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, on: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // Bounded reads, so a black-holed connection notices `resume` and the proxy's end.
        let n = match tokio::time::timeout(Duration::from_millis(100), from.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
        };
        if on.load(Ordering::SeqCst) && to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
