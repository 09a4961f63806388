//! `nova-all`: every nova-rs service in one process, with embedded
//! defaults (memory transport, a SQLite file, fake computes), a
//! `clouds.yaml` for its built-in identity, and the APIs on loopback.

// mimalloc: glibc malloc was ~15 % of the CPU of a boot in nova-all.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

/// nova-all: the whole control plane in one process.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    options: nova_all::Options,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    nova_all::run(Args::parse().options).await
}
