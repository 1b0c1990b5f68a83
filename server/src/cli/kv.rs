//! `tenure kv get|put|del|list`: the cluster's small replicated key/value store.

use serde_json::json;
use tenure::Client;

use crate::args::{FenceArgs, KvCommand};
use crate::exit::{Failure, NOT_FOUND};
use crate::output::Output;
use crate::view;

pub async fn kv(client: &Client, out: &Output, command: &KvCommand) -> Result<u8, Failure> {
    let kv = client.kv();
    match command {
        KvCommand::Get { key } => match kv.get(key).await? {
            // Text mode prints the value alone, so that `$(tenure kv get k)` is the value.
            Some(entry) => {
                out.print_raw(&view::kv_entry_json(&entry), &entry.value);
                Ok(0)
            }
            // Like `grep` finding nothing: exit 1, which scripts can test, and not an error code.
            None => Err(Failure::new("NOT_FOUND", format!("key {key:?} not found"), NOT_FOUND)),
        },
        KvCommand::Put { key, value, fence } => {
            let revision = kv.put(key, value, fence.fence()).await?;
            out.print(&json!({ "key": key, "revision": revision }), || {
                format!("put {key:?} at revision {revision}{}", fenced(fence))
            });
            Ok(0)
        }
        KvCommand::Del { key, fence } => {
            let existed = kv.delete(key, fence.fence()).await?;
            out.print(&json!({ "key": key, "existed": existed }), || {
                if existed {
                    format!("deleted {key:?}{}", fenced(fence))
                } else {
                    format!("{key:?} did not exist")
                }
            });
            Ok(0)
        }
        KvCommand::List { prefix } => {
            let entries = kv.list(prefix.as_deref().unwrap_or("")).await?;
            out.print(&view::kv_entries_json(&entries), || view::kv_entries_text(&entries));
            Ok(0)
        }
    }
}

fn fenced(fence: &FenceArgs) -> String {
    match fence.fence() {
        Some(f) => format!(" (fenced by lock {:?} token {})", f.name, f.token),
        None => String::new(),
    }
}
