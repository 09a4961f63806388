//! `nova-serialproxy --config nova.conf`

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use nova_consoleproxy::ProxyKind;
use nova_service::{ConfigArgs, Runner};

/// nova-serialproxy: the websocket proxy for serial consoles.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    nova_consoleproxy::run(Runner::from_args(&args.config)?, ProxyKind::Serial).await
}
