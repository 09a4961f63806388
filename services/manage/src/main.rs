//! `nova-manage [--config nova.conf] db sync | cell_v2 map_cell0 | cell_v2 discover_hosts | cell_v2 list_cells | placement heal_allocations | audit | sync_aggregates`

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let code = nova_manage::cli::manage(nova_manage::cli::ManageArgs::parse()).await?;
    std::process::exit(code)
}
