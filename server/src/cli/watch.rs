//! `tenure watch`: prints committed lock events until interrupted.

use serde_json::json;
use tenure::{Client, LockEvent};

use crate::args::WatchArgs;
use crate::exit::Failure;
use crate::output::Output;
use crate::signals::Interrupts;
use crate::timestamp::rfc3339;

fn event_json(e: &LockEvent) -> serde_json::Value {
    json!({
        "index": e.index,
        "kind": e.kind.as_str(),
        "name": e.name,
        "request_id": e.request_id,
        "token": e.token,
        "owner": e.owner,
        "mode": e.mode.as_str(),
        "position": e.position,
        "at": rfc3339(e.at),
        "forced": e.forced,
    })
}

fn event_text(e: &LockEvent) -> String {
    let mut line = format!("{:<8} {:<9} {} {}", e.index, e.kind.as_str(), e.name, e.request_id);
    if e.token != 0 {
        line.push_str(&format!(" token={}", e.token));
    }
    if e.position != 0 {
        line.push_str(&format!(" position={}", e.position));
    }
    if !e.owner.is_empty() {
        line.push_str(&format!(" owner={}", e.owner));
    }
    if e.forced {
        line.push_str(" forced");
    }
    line
}

/// `tenure watch [PREFIX] [--name NAME] [--from INDEX]`. An interrupt ends it with exit 0.
pub async fn watch(
    client: &Client,
    out: &Output,
    args: &WatchArgs,
    interrupts: &mut Interrupts,
) -> Result<u8, Failure> {
    let builder = match &args.name {
        Some(name) => client.watch(name.clone()),
        None => client.watch_prefix(args.prefix.clone().unwrap_or_default()),
    };
    let builder = match args.from {
        Some(index) => builder.from_index(index),
        None => builder,
    };
    let mut watch = tokio::select! {
        w = builder.start() => w?,
        _ = interrupts.recv() => return Ok(0),
    };
    loop {
        let next = tokio::select! {
            next = watch.next() => next,
            _ = interrupts.recv() => return Ok(0),
        };
        match next {
            None => return Ok(0),
            Some(Ok(e)) => out.print(&event_json(&e), || event_text(&e)),
            // No node answered for a while: say so and keep trying.
            Some(Err(e)) if e.is_retryable() => eprintln!("tenure: watch: {e}; still trying"),
            Some(Err(e)) => return Err(e.into()),
        }
    }
}
