//! `nova-api --config nova.conf`: the compute API (port 8774, with the
//! built-in identity under `/identity`) and the image API (port 9292).

// mimalloc: glibc malloc was ~15 % of the CPU of a boot in nova-all.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use nova_service::{ConfigArgs, Runner};

/// nova-api: the compute API v2.1.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    nova_api::serve::run(Runner::from_args(&args.config)?).await
}
