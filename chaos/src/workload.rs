//! Recording clients: each loops acquire → fenced KV write → hold → release on a random lock and
//! records every operation with its call and return times (DESIGN §3's promises are what the
//! checker then holds them to).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tenure::{Client, Error, LockGuard};
use tokio::sync::watch;

use crate::history::{AcquireResult, At, Hold, HoldEnd, Op, PutResult, ReleaseResult};

/// Collects what every client saw, on one clock.
pub struct Recorder {
    start: Instant,
    ops: Mutex<Vec<Op>>,
    holds: Mutex<Vec<Hold>>,
}

impl Recorder {
    pub fn new(start: Instant) -> Arc<Recorder> {
        Arc::new(Recorder { start, ops: Mutex::default(), holds: Mutex::default() })
    }

    pub fn now(&self) -> At {
        self.start.elapsed()
    }

    pub fn at(&self, t: Instant) -> At {
        t.saturating_duration_since(self.start)
    }

    pub fn op(&self, op: Op) {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).push(op);
    }

    pub fn hold(&self, hold: Hold) {
        self.holds.lock().unwrap_or_else(|p| p.into_inner()).push(hold);
    }

    pub fn take(&self) -> (Vec<Op>, Vec<Hold>) {
        let ops = std::mem::take(&mut *self.ops.lock().unwrap_or_else(|p| p.into_inner()));
        let holds = std::mem::take(&mut *self.holds.lock().unwrap_or_else(|p| p.into_inner()));
        (ops, holds)
    }

    pub fn count(&self) -> usize {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// One group of clients sharing a lock set and a TTL.
#[derive(Clone, Debug)]
pub struct Group {
    pub name: &'static str,
    pub clients: u32,
    pub locks: u32,
    pub ttl: Duration,
    pub wait: Duration,
    pub max_hold: Duration,
}

/// Whether an error leaves the outcome unknown (no node gave a definite answer).
fn unknown(e: &Error) -> bool {
    e.is_retryable()
}

/// Runs one client until `stop` turns true; returns after releasing what it holds.
pub async fn run_client(
    id: u32,
    group: Group,
    endpoints: Vec<String>,
    rec: Arc<Recorder>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let client = Client::builder().endpoints(endpoints).owner(format!("{}-{id}", group.name)).connect().await?;
    while !*stop.borrow_and_update() {
        let lock = format!("{}/{}", group.name, rand::thread_rng().gen_range(0..group.locks));
        let call = rec.now();
        let r = client.lock(lock.clone()).ttl(group.ttl).wait(group.wait).acquire().await;
        let ret = rec.now();
        let guard = match r {
            Ok(g) => {
                let result = AcquireResult::Granted { token: g.token() };
                rec.op(Op::Acquire {
                    client: id,
                    lock: lock.clone(),
                    request_id: g.request_id().into(),
                    call,
                    ret: Some(ret),
                    result,
                });
                g
            }
            Err(e) => {
                let (ret, result) = if unknown(&e) {
                    (None, AcquireResult::Unknown)
                } else {
                    (Some(ret), AcquireResult::Failed { code: e.code().into() })
                };
                rec.op(Op::Acquire { client: id, lock, request_id: String::new(), call, ret, result });
                continue;
            }
        };
        let from = ret;
        let lost_at = hold_and_write(id, &client, &guard, &lock, &group, &rec, &mut stop).await;
        let call = rec.now();
        let valid_until = rec.at(guard.valid_until());
        let (until, end) = match lost_at {
            Some(lost) => (lost.min(valid_until), HoldEnd::Lost),
            None => (call.min(valid_until), HoldEnd::Released),
        };
        rec.hold(Hold {
            client: id,
            lock: lock.clone(),
            request_id: guard.request_id().into(),
            token: guard.token(),
            from,
            until,
            end,
        });
        let r = guard.release().await;
        let ret = rec.now();
        let (ret, result) = match r {
            Ok(was_held) => (Some(ret), ReleaseResult::Done { was_held }),
            Err(e) if unknown(&e) => (None, ReleaseResult::Unknown),
            Err(e) => (Some(ret), ReleaseResult::Failed { code: e.code().into() }),
        };
        rec.op(Op::Release { client: id, lock, request_id: guard.request_id().into(), call, ret, result });
    }
    client.close().await.ok();
    Ok(())
}

/// Inside the critical section: one fenced KV write, then a random pause. Returns when the
/// lease was noticed lost, if it was.
async fn hold_and_write(
    id: u32,
    client: &Client,
    guard: &LockGuard,
    lock: &str,
    group: &Group,
    rec: &Recorder,
    stop: &mut watch::Receiver<bool>,
) -> Option<At> {
    let key = format!("fenced/{lock}");
    let call = rec.now();
    let r = client.kv().put(&key, format!("{id}:{}", guard.token()), Some(guard.fence())).await;
    let ret = rec.now();
    rec.op(put_op(id, lock, key, guard.token(), call, ret, r));
    let pause = rand::thread_rng().gen_range(Duration::ZERO..=group.max_hold);
    tokio::select! {
        _ = guard.lost() => Some(rec.now()),
        _ = tokio::time::sleep(pause) => None,
        _ = stop.changed() => None,
    }
}

pub fn put_op(client: u32, lock: &str, key: String, token: u64, call: At, ret: At, r: Result<u64, Error>) -> Op {
    let (ret, result) = match r {
        Ok(revision) => (Some(ret), PutResult::Accepted { revision }),
        Err(Error::FencedOut(_)) => (Some(ret), PutResult::FencedOut),
        Err(e) if unknown(&e) => (None, PutResult::Unknown),
        Err(e) => (Some(ret), PutResult::Failed { code: e.code().into() }),
    };
    Op::FencedPut { client, lock: lock.to_string(), key, token, call, ret, result }
}
