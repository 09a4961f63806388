//! `nova-spicehtml5proxy --config nova.conf`

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use nova_consoleproxy::ProxyKind;
use nova_service::{ConfigArgs, Runner};

/// nova-spicehtml5proxy: the websocket proxy for SPICE HTML5 consoles.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    nova_consoleproxy::run(Runner::from_args(&args.config)?, ProxyKind::SpiceHtml5).await
}
