//! `nova-compute --config nova.conf`

// mimalloc: glibc malloc was ~15 % of the CPU of a boot in nova-all.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use nova_service::{ConfigArgs, Runner};

/// nova-compute: runs instances on this host's hypervisor.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Scale testing: run this many fake compute services in this process,
    /// on hosts `<host>-1` … `<host>-N` (needs a `fake.*` compute_driver).
    #[arg(long, default_value_t = 0)]
    fake_hosts: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    nova_compute::run(Runner::from_args(&args.config)?, args.fake_hosts).await
}
