//! `nova-conductor --config nova.conf`

// mimalloc: glibc malloc was ~15 % of the CPU of a boot in nova-all.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use nova_service::{ConfigArgs, Runner};

/// nova-conductor: builds, reschedules and the object API.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    nova_conductor::run(Runner::from_args(&args.config)?).await
}
