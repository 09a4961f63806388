//! `nova-api --config nova.conf`: the compute API (port 8774, with the
//! built-in identity under `/identity`) and the image API (port 9292).

// mimalloc: glibc malloc was ~15 % of the CPU of a boot in nova-all.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use clap::Parser;
use nova_objects::Objects;
use nova_placement::{PlacementHandle, SqlPlacement};
use nova_service::Conf;

/// nova-api: the compute API v2.1.
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
    let db = nova_service::open_database(&conf, false).await?;
    let objects = Objects::new(db.clone());
    let placement = SqlPlacement::open_beside(
        &conf.placement_connection(),
        &conf.database_connection(),
        &db,
    )
    .await?;
    placement.sync().await?;
    let placement = PlacementHandle::new(placement);
    nova_api::serve::start(&conf, objects, placement, transport, stop.clone()).await?;
    stop.cancelled().await;
    Ok(())
}
