//! `nova-scheduler --config nova.conf`

// mimalloc: glibc malloc was ~15 % of the CPU of a boot in nova-all.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use clap::Parser;
use nova_objects::Objects;
use nova_placement::{PlacementHandle, SqlPlacement};
use nova_service::Conf;

/// nova-scheduler: select_destinations over RPC.
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
    let cell1 = nova_service::cells::ensure_cells(
        &objects,
        &conf.transport_url(),
        &conf.database_connection(),
    )
    .await?;
    let manager = nova_scheduler_service::SchedulerManager::new(
        nova_scheduler_service::scheduler_config(&conf)?,
        objects.clone(),
        placement,
        cell1.uuid(),
    )?;
    let host = conf.host();
    let service =
        nova_service::register_service(&objects, &host, "nova-scheduler", "scheduler").await?;
    let (report, _) = conf.service_group()?;
    let hb = nova_service::heartbeat(
        objects,
        service,
        std::time::Duration::from_secs(report),
        stop.clone(),
    );
    manager.start_refresher(stop.clone());
    let server = nova_scheduler_service::serve(transport, &manager, &host).await?;
    tracing::info!(%host, "nova-scheduler started");
    stop.cancelled().await;
    server.stop().await;
    hb.abort();
    Ok(())
}
