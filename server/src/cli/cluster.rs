//! `tenure cluster status|add|remove`.

use tenure::Client;

use crate::args::ClusterCommand;
use crate::exit::Failure;
use crate::output::Output;
use crate::view;

pub async fn cluster(client: &Client, out: &Output, command: &ClusterCommand) -> Result<u8, Failure> {
    match command {
        ClusterCommand::Status => {
            let status = client.cluster_status().await?;
            out.print(&view::cluster_json(&status), || view::cluster_text(&status));
            Ok(0)
        }
        ClusterCommand::Add(a) => {
            let r = client.add_member(a.id, &a.grpc_addr, &a.http).await?;
            let what = if r.changed { "added" } else { "already a voter:" };
            out.print(&view::membership_json(&r), || view::membership_text(&format!("{what} node {}", a.id), &r));
            Ok(0)
        }
        ClusterCommand::Remove(a) => {
            let r = client.remove_member(a.id, a.force).await?;
            let what = if r.changed { "removed" } else { "not a member:" };
            out.print(&view::membership_json(&r), || view::membership_text(&format!("{what} node {}", a.id), &r));
            Ok(0)
        }
    }
}
