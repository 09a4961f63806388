//! `nova-placement-api --config placement.conf [--port N]`: the Placement
//! API alone (default port 8778), over `[placement_database] connection`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use nova_service::{ConfigArgs, Runner};

/// nova-placement-api: OpenStack Placement 1.0-1.39.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Port to listen on (default: `[placement] bind_port`, else 8778).
    #[arg(long)]
    port: Option<u16>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    nova_api::placement::serve(Runner::from_args(&args.config)?, args.port).await
}
