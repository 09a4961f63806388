//! `nova-compute --config nova.conf`

use std::path::PathBuf;

use clap::Parser;
use nova_compute::{ComputeConfig, ComputeManager};
use nova_objects::{ConductorStore, Objects};
use nova_placement::SqlPlacement;
use nova_service::Conf;

/// nova-compute: runs instances on this host's hypervisor.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// nova.conf files (later ones override earlier ones).
    #[arg(
        long = "config",
        alias = "config-file",
        default_value = "/etc/nova/nova.conf"
    )]
    config: Vec<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let conf = Conf::for_service(&args.config)?;
    let stop = nova_service::shutdown_token();
    let transport = nova_service::connect_transport(&conf).await?;
    let objects = Objects::new(ConductorStore::new(transport.clone()));
    let placement = SqlPlacement::open(&conf.placement_connection()).await?;
    let cfg = ComputeConfig::from_conf(&conf)?;
    let driver = nova_compute::driver_from_conf(&conf, &cfg.host)?;
    let manager = ComputeManager::new(cfg, driver, objects, placement, transport.clone());
    let server = manager.start(transport, stop.clone()).await?;
    tracing::info!(host = %manager.host(), "nova-compute started");
    stop.cancelled().await;
    server.stop().await;
    Ok(())
}
