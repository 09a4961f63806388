//! nova-compute's wiring on the service runner: what `nova-compute`
//! (one host, or `--fake-hosts N`) and `nova-all` (N fake computes) start.

use std::sync::Arc;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use nova_objects::{ConductorStore, Objects};
use nova_service::Runner;
use nova_service::neutron::NeutronClient;
use nova_virt::{ComputeDriver, FakeDriver};
use tokio_util::sync::CancellationToken;

use crate::{ComputeConfig, ComputeManager};

/// How many computes start at once (`--fake-hosts`, `nova-all`).
const START_CONCURRENCY: usize = 8;

/// A compute service running on a runner.
#[derive(Debug)]
pub struct ComputeService {
    /// Its host name.
    pub host: String,
    /// Its manager.
    pub manager: ComputeManager,
    /// Its fake hypervisor (fault injection), when it runs the fake driver.
    pub fake: Option<Arc<FakeDriver>>,
    /// Stops its heartbeats and periodic tasks (a child of the runner's).
    stop: CancellationToken,
}

impl ComputeService {
    /// Stops this compute alone: its heartbeats stop (it goes down after
    /// `service_down_time`) and its RPC servers drain (`compute`, then
    /// `compute-alt`).
    pub async fn stop(&self, runner: &Runner) {
        self.stop.cancel();
        runner
            .stop_rpc_server(nova_rpcapi::compute::TOPIC, &self.host)
            .await;
        runner
            .stop_rpc_server(nova_rpcapi::compute::ALT_TOPIC, &self.host)
            .await;
    }
}

/// The objects a compute uses: through the conductor, on the runner's
/// transport (computes have no database access).
pub async fn conductor_objects(runner: &Runner) -> anyhow::Result<Objects> {
    Ok(Objects::new(ConductorStore::new(runner.transport().await?)))
}

/// A driver to run, and the same driver as a fake hypervisor when it is one.
pub type Drivers = (Arc<dyn ComputeDriver>, Option<Arc<FakeDriver>>);

/// The driver for `host` when any `fake.*` `[DEFAULT] compute_driver` means a
/// fake hypervisor (kept for fault injection); else [`crate::driver_from_conf`].
pub fn driver_for(conf: &nova_service::Conf, host: &str) -> anyhow::Result<Drivers> {
    if conf
        .str_or("DEFAULT", "compute_driver", "fake.FakeDriver")
        .starts_with("fake.")
    {
        let d = crate::fake_driver(conf, host)?;
        Ok((d.clone(), Some(d)))
    } else {
        Ok((crate::driver_from_conf(conf, host)?, None))
    }
}

/// Starts the compute service of `host` on `runner` with `driver`
/// ([`ComputeManager::start`]: waits for the conductor, registers the
/// service, reports resources, recovers instances, serves RPC); the runner
/// drains its RPC server. Its ports come from `network` (`[neutron]`).
pub async fn start_host(
    runner: &Runner,
    host: &str,
    objects: Objects,
    driver: Arc<dyn ComputeDriver>,
    fake: Option<Arc<FakeDriver>>,
    network: Option<Arc<NeutronClient>>,
) -> anyhow::Result<ComputeService> {
    let mut cfg = ComputeConfig::from_conf(runner.conf())?;
    cfg.host = host.to_owned();
    let transport = runner.transport().await?;
    let placement = runner.placement().await?;
    let boots_from_disk = driver.name() != "fake";
    let manager = ComputeManager::new(cfg, driver, objects, placement, transport.clone());
    let service_user = runner.service_user()?;
    if let Some(s) = &service_user {
        manager.set_service_user(s.clone());
    }
    if boots_from_disk {
        manager.set_image_cache(
            crate::ImageCache::from_conf(runner.conf(), host)?.with_service_user(service_user),
        );
    }
    manager.set_notifier(runner.notifier().await?);
    if let Some(client) = network {
        manager.set_network(client);
    }
    let stop = runner.stop_token().child_token();
    let started = manager
        .start(transport, stop.clone())
        .await
        .with_context(|| format!("compute {host}"))?;
    // The runner drains the last registered first: `compute` stops taking
    // new work while `compute-alt` still finishes what is under way.
    runner.rpc_server(started.alt_server);
    runner.rpc_server(started.server);
    for (name, task) in started.tasks {
        runner.task(format!("{name} of {host}"), task);
    }
    Ok(ComputeService {
        host: host.to_owned(),
        manager,
        fake,
        stop,
    })
}

/// Starts computes on `hosts` (any `fake.*` driver a fake hypervisor, see
/// [`driver_for`]), a few at a time; sorted by host.
pub async fn start_hosts(runner: &Runner, hosts: &[String]) -> anyhow::Result<Vec<ComputeService>> {
    let objects = conductor_objects(runner).await?;
    let network = NeutronClient::from_conf(runner.conf()).map(Arc::new);
    let started: Vec<anyhow::Result<ComputeService>> = futures_util::stream::iter(hosts)
        .map(|host| {
            let (objects, network) = (objects.clone(), network.clone());
            async move {
                let (driver, fake) = driver_for(runner.conf(), host)?;
                start_host(runner, host, objects, driver, fake, network).await
            }
        })
        .buffer_unordered(START_CONCURRENCY)
        .collect()
        .await;
    let mut out = started.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    out.sort_by(|a, b| a.host.cmp(&b.host));
    Ok(out)
}

/// `nova-compute`: the compute service of `[DEFAULT] host` (driver
/// [`crate::driver_from_conf`]); or, for scale testing, `fake_hosts` fake
/// computes on hosts `<host>-1` … `<host>-N` (needs a `fake.*` driver).
pub async fn start(runner: &Runner, fake_hosts: usize) -> anyhow::Result<Vec<ComputeService>> {
    let host = runner.host();
    if fake_hosts > 0 {
        if !runner
            .conf()
            .str_or("DEFAULT", "compute_driver", "fake.FakeDriver")
            .starts_with("fake.")
        {
            anyhow::bail!("--fake-hosts needs a fake.* [DEFAULT] compute_driver");
        }
        let hosts: Vec<String> = (1..=fake_hosts).map(|n| format!("{host}-{n}")).collect();
        let computes = start_hosts(runner, &hosts).await?;
        tracing::info!(
            computes = computes.len(),
            "nova-compute started (fake hosts)"
        );
        return Ok(computes);
    }
    let objects = conductor_objects(runner).await?;
    let driver = crate::driver_from_conf(runner.conf(), &host)?;
    let network = NeutronClient::from_conf(runner.conf()).map(Arc::new);
    let c = start_host(runner, &host, objects, driver, None, network).await?;
    tracing::info!(host = %c.host, "nova-compute started");
    Ok(vec![c])
}

/// `nova-compute`: starts it ([`start`]), then serves until SIGTERM and drains.
pub async fn run(runner: Runner, fake_hosts: usize) -> anyhow::Result<()> {
    start(&runner, fake_hosts).await?;
    nova_service::metrics::serve(&runner, nova_service::metrics::COMPUTE_PORT).await?;
    runner.run().await
}
