//! `tenure cluster status`.

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
    }
}
