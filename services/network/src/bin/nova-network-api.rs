//! `nova-network-api --config network.conf [--port N]`: the built-in
//! Neutron v2.0 subset alone (default port 9696).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use nova_service::{ConfigArgs, Runner};

/// nova-network-api: networks, subnets, ports, security groups, floating IPs.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Port to listen on (default: `[network] bind_port`, else 9696).
    #[arg(long)]
    port: Option<u16>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    nova_network::serve(Runner::from_args(&args.config)?, args.port).await
}
