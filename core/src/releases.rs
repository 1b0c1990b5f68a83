//! Best-effort releases sent in the background (a dropped guard, a dropped waiting acquire, a
//! lost lease), counted so that [`crate::Client::close`] can wait for them before a process
//! exits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::client::release_request;
use crate::conn::Conn;

pub(crate) struct BackgroundReleases {
    conn: Arc<Conn>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    in_flight: AtomicUsize,
    idle: Notify,
}

impl BackgroundReleases {
    pub(crate) fn new(conn: Arc<Conn>, runtime: tokio::runtime::Handle, timeout: Duration) -> Self {
        BackgroundReleases { conn, runtime, timeout, in_flight: AtomicUsize::new(0), idle: Notify::new() }
    }

    /// Sends Release for `request_id` of lock `name` in the background.
    pub(crate) fn spawn(self: &Arc<Self>, name: String, request_id: String) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let me = self.clone();
        self.runtime.spawn(async move {
            if let Err(e) = release_request(&me.conn, &name, &request_id, me.timeout).await {
                tracing::warn!(lock = %name, %request_id, error = %e, "best-effort release failed; the lease will expire by its TTL");
            }
            if me.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                me.idle.notify_waiters();
            }
        });
    }

    /// Waits until no background release is in flight.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}
