//! `nova-conductor --config nova.conf`

// mimalloc: glibc malloc was ~15 % of the CPU of a boot in nova-all.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use nova_objects::Objects;
use nova_placement::{PlacementHandle, SqlPlacement};
use nova_service::Conf;

/// nova-conductor: builds, reschedules and the object API.
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
    let db = Arc::new(nova_service::open_database(&conf, false).await?);
    let objects = Objects::from_arc(db.clone());
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
    let cap = nova_rpcapi::parse_version_cap(
        &conf.str_or("upgrade_levels", "compute", "auto"),
        nova_rpcapi::compute::VERSION_ALIASES,
    )
    .map_err(|e| anyhow::anyhow!("[upgrade_levels] compute: {e}"))?;
    let conductor = nova_conductor::Conductor::new(
        objects.clone(),
        placement,
        transport.clone(),
        cap,
        conf.parse_or("scheduler", "max_attempts", 3i64)?,
        cell1.uuid(),
    );
    let host = conf.host();
    let service =
        nova_service::register_service(&objects, &host, "nova-conductor", "conductor").await?;
    let (report, _) = conf.service_group()?;
    let hb = nova_service::heartbeat(
        objects,
        service,
        std::time::Duration::from_secs(report),
        stop.clone(),
    );
    let server = nova_conductor::serve(transport, &conductor, db, &host).await?;
    tracing::info!(%host, "nova-conductor started");
    stop.cancelled().await;
    server.stop().await;
    hb.abort();
    Ok(())
}
