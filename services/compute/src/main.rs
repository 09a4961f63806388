//! `nova-compute --config nova.conf`

// mimalloc: glibc malloc was ~15 % of the CPU of a boot in nova-all.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use clap::Parser;
use futures_util::StreamExt as _;
use nova_compute::{ComputeConfig, ComputeManager};
use nova_objects::{ConductorStore, Objects};
use nova_placement::{PlacementHandle, SqlPlacement};
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
    /// Scale testing: run this many fake compute services in this process,
    /// on hosts `<host>-1` … `<host>-N` (needs a `fake.*` compute_driver).
    #[arg(long, default_value_t = 0)]
    fake_hosts: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let conf = Conf::for_service(&args.config)?;
    let stop = nova_service::shutdown_token();
    let transport = nova_service::connect_transport(&conf).await?;
    let objects = Objects::new(ConductorStore::new(transport.clone()));
    let placement = PlacementHandle::new(SqlPlacement::open(&conf.placement_connection()).await?);
    let cfg = ComputeConfig::from_conf(&conf)?;
    if args.fake_hosts > 0 {
        if !conf
            .str_or("DEFAULT", "compute_driver", "fake.FakeDriver")
            .starts_with("fake.")
        {
            anyhow::bail!("--fake-hosts needs a fake.* [DEFAULT] compute_driver");
        }
        let hosts: Vec<String> = (1..=args.fake_hosts)
            .map(|n| format!("{}-{n}", cfg.host))
            .collect();
        let servers: Vec<anyhow::Result<nova_rpc::RpcServer>> = futures_util::stream::iter(hosts)
            .map(|host| {
                let mut cfg = cfg.clone();
                cfg.host = host.clone();
                let (conf, objects, placement, transport, stop) = (
                    &conf,
                    objects.clone(),
                    placement.clone(),
                    transport.clone(),
                    stop.clone(),
                );
                async move {
                    let driver = nova_compute::fake_driver(conf, &host)?;
                    let m = ComputeManager::new(cfg, driver, objects, placement, transport.clone());
                    m.start(transport, stop).await
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let servers: Vec<nova_rpc::RpcServer> =
            servers.into_iter().collect::<anyhow::Result<_>>()?;
        tracing::info!(
            computes = servers.len(),
            "nova-compute started (fake hosts)"
        );
        stop.cancelled().await;
        futures_util::future::join_all(servers.into_iter().map(|s| s.stop())).await;
        return Ok(());
    }
    let driver = nova_compute::driver_from_conf(&conf, &cfg.host)?;
    let manager = ComputeManager::new(cfg, driver, objects, placement, transport.clone());
    let server = manager.start(transport, stop.clone()).await?;
    tracing::info!(host = %manager.host(), "nova-compute started");
    stop.cancelled().await;
    server.stop().await;
    Ok(())
}
