//! `nova-api-metadata --config nova.conf`: the metadata API.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// nova's metadata API.
#[derive(Parser, Debug)]
#[command(name = "nova-api-metadata", version)]
struct Args {
    #[command(flatten)]
    config: nova_service::ConfigArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runner = nova_service::Runner::from_args(&args.config)?;
    nova_metadata::run(runner).await
}
