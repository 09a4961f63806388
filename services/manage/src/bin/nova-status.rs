//! `nova-status [--config nova.conf] upgrade check`

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let code = nova_manage::cli::status(nova_manage::cli::StatusArgs::parse()).await?;
    std::process::exit(code);
}
