//! `nova-manage [--config nova.conf] db sync | cell_v2 map_cell0 | cell_v2 discover_hosts | cell_v2 list_cells`

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    nova_manage::cli::manage(nova_manage::cli::ManageArgs::parse()).await
}
