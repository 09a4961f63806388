//! Every nova-rs service in one process: the API (with identity and
//! images), conductor, scheduler and N computes on one transport and one
//! database. `nova-all` runs it; the functional tests and the benches
//! drive it as a `Cluster`.
//!
//! The architecture is kept: computes reach objects only through the
//! conductor (`ConductorStore` over the transport), the API casts to the
//! conductor, the conductor calls the scheduler, and so on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use nova_api::serve::Endpoints;
use nova_compute::{ComputeConfig, ComputeManager};
use nova_objects::{ConductorStore, Objects};
use nova_placement::{PlacementHandle, SqlPlacement};
use nova_rpc::{RpcServer, Transport};
use nova_service::Conf;
use nova_virt::FakeDriver;
use tokio_util::sync::CancellationToken;

/// One compute service of the cluster.
#[derive(Debug)]
pub struct ComputeHandle {
    /// Its host name.
    pub host: String,
    /// Its manager.
    pub manager: ComputeManager,
    /// Its fake hypervisor (fault injection), when it runs the fake driver.
    pub fake: Option<Arc<FakeDriver>>,
    stop: CancellationToken,
    server: Option<RpcServer>,
}

/// The running services.
#[derive(Debug)]
pub struct AllInOne {
    /// The configuration they run with.
    pub conf: Conf,
    /// The transport.
    pub transport: Arc<dyn Transport>,
    /// The database's objects.
    pub objects: Objects,
    /// Placement.
    pub placement: PlacementHandle,
    /// Where the APIs listen.
    pub api: Endpoints,
    /// The computes.
    pub computes: Vec<ComputeHandle>,
    /// Cancels everything.
    pub stop: CancellationToken,
    servers: Vec<RpcServer>,
}

impl AllInOne {
    /// Starts every service with `conf` and `fake_computes` computes named
    /// `<prefix>-<n>` (prefix `[fake] host_prefix`, default `fake-compute`).
    pub async fn start(conf: Conf, fake_computes: usize) -> anyhow::Result<Self> {
        let stop = CancellationToken::new();
        let transport = nova_service::connect_transport(&conf).await?;
        let url = conf.database_connection();
        let db = Arc::new(nova_service::open_database(&conf, true).await?);
        let objects = Objects::from_arc(db.clone());
        let placement = SqlPlacement::open_beside(&conf.placement_connection(), &url, &db).await?;
        placement.sync().await?;
        let placement = PlacementHandle::new(placement);
        let cell1 =
            nova_service::cells::ensure_cells(&objects, &conf.transport_url(), &url).await?;
        let host = conf.host();
        let (report, _) = conf.service_group()?;
        let report = std::time::Duration::from_secs(report);
        let mut servers = Vec::new();

        // Conductor.
        let cap = nova_rpcapi_cap(&conf)?;
        let conductor = nova_conductor::Conductor::new(
            objects.clone(),
            placement.clone(),
            transport.clone(),
            cap,
            conf.parse_or("scheduler", "max_attempts", 3i64)?,
            cell1.uuid(),
        );
        servers.push(
            nova_conductor::serve(
                transport.clone(),
                &conductor,
                db.clone() as Arc<dyn nova_objects::ObjectStore>,
                &host,
            )
            .await?,
        );
        let s =
            nova_service::register_service(&objects, &host, "nova-conductor", "conductor").await?;
        nova_service::heartbeat(objects.clone(), s, report, stop.clone());

        // Scheduler.
        let sched = nova_scheduler_service::SchedulerManager::new(
            nova_scheduler_service::scheduler_config(&conf)?,
            objects.clone(),
            placement.clone(),
            cell1.uuid(),
        )?;
        sched.start_refresher(stop.clone());
        servers.push(nova_scheduler_service::serve(transport.clone(), &sched, &host).await?);
        let s =
            nova_service::register_service(&objects, &host, "nova-scheduler", "scheduler").await?;
        nova_service::heartbeat(objects.clone(), s, report, stop.clone());

        // API, identity, images.
        let api = nova_api::serve::start(
            &conf,
            objects.clone(),
            placement.clone(),
            transport.clone(),
            stop.clone(),
        )
        .await?;

        let mut me = AllInOne {
            conf,
            transport,
            objects,
            placement,
            api,
            computes: Vec::new(),
            stop,
            servers,
        };
        let prefix = me.conf.str_or("fake", "host_prefix", "fake-compute");
        let hosts: Vec<String> = (1..=fake_computes)
            .map(|n| format!("{prefix}-{n}"))
            .collect();
        me.add_computes(&hosts).await?;
        nova_manage::discover_hosts(&me.objects, &me.conf).await?;
        Ok(me)
    }

    /// Starts computes on `hosts` (with `[DEFAULT] compute_driver`), a few
    /// at a time.
    pub async fn add_computes(&mut self, hosts: &[String]) -> anyhow::Result<()> {
        let objects = Objects::new(ConductorStore::new(self.transport.clone()));
        let started: Vec<anyhow::Result<ComputeHandle>> =
            futures_util::stream::iter(hosts.iter().cloned())
                .map(|host| {
                    let (conf, objects, placement, transport, parent) = (
                        self.conf.clone(),
                        objects.clone(),
                        self.placement.clone(),
                        self.transport.clone(),
                        self.stop.clone(),
                    );
                    async move {
                        start_compute(&conf, &host, objects, placement, transport, parent).await
                    }
                })
                .buffer_unordered(8)
                .collect()
                .await;
        for c in started {
            self.computes.push(c?);
        }
        self.computes.sort_by(|a, b| a.host.cmp(&b.host));
        Ok(())
    }

    /// The compute on `host`.
    pub fn compute(&self, host: &str) -> Option<&ComputeHandle> {
        self.computes.iter().find(|c| c.host == host)
    }

    /// Stops the compute on `host` (its heartbeats stop: it goes down
    /// after `service_down_time`).
    pub async fn stop_compute(&mut self, host: &str) {
        if let Some(c) = self.computes.iter_mut().find(|c| c.host == host) {
            c.stop.cancel();
            if let Some(s) = c.server.take() {
                s.stop().await;
            }
        }
    }

    /// Writes a `clouds.yaml` for the built-in identity: clouds
    /// `nova-rs` (the first user) and `nova-rs-<user>` for every user.
    pub fn write_clouds_yaml(&self, path: &Path) -> anyhow::Result<()> {
        let mut y = String::from(
            "# Written by nova-all: the built-in identity service and its users.\nclouds:\n",
        );
        let entry = |name: &str, u: &nova_api::User| {
            format!(
                "  {name}:\n    auth:\n      auth_url: {}\n      username: {}\n      password: {}\n      project_name: {}\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    identity_api_version: 3\n    interface: public\n",
                self.api.identity_url, u.name, u.password, u.project
            )
        };
        if let Some(first) = self.api.users.first() {
            y.push_str(&entry("nova-rs", first));
        }
        for u in &self.api.users {
            y.push_str(&entry(&format!("nova-rs-{}", u.name), u));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, y).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Stops everything.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        for c in &mut self.computes {
            c.stop.cancel();
            if let Some(s) = c.server.take() {
                s.stop().await;
            }
        }
        for s in self.servers.drain(..) {
            s.stop().await;
        }
    }
}

fn nova_rpcapi_cap(conf: &Conf) -> anyhow::Result<Option<nova_rpc::Version>> {
    nova_rpcapi::parse_version_cap(
        &conf.str_or("upgrade_levels", "compute", "auto"),
        nova_rpcapi::compute::VERSION_ALIASES,
    )
    .map_err(|e| anyhow::anyhow!("[upgrade_levels] compute: {e}"))
}

async fn start_compute(
    conf: &Conf,
    host: &str,
    objects: Objects,
    placement: PlacementHandle,
    transport: Arc<dyn Transport>,
    parent: CancellationToken,
) -> anyhow::Result<ComputeHandle> {
    let mut cfg = ComputeConfig::from_conf(conf)?;
    cfg.host = host.to_owned();
    let (driver, fake): (Arc<dyn nova_virt::ComputeDriver>, Option<Arc<FakeDriver>>) = if conf
        .str_or("DEFAULT", "compute_driver", "fake.FakeDriver")
        .starts_with("fake.")
    {
        let d = nova_compute::fake_driver(conf, host)?;
        (d.clone(), Some(d))
    } else {
        (nova_compute::driver_from_conf(conf, host)?, None)
    };
    let manager = ComputeManager::new(cfg, driver, objects, placement, transport.clone());
    let stop = parent.child_token();
    let server = manager
        .start(transport, stop.clone())
        .await
        .with_context(|| format!("compute {host}"))?;
    Ok(ComputeHandle {
        host: host.to_owned(),
        manager,
        fake,
        stop,
        server: Some(server),
    })
}

/// Where nova-all keeps its state by default: `$XDG_STATE_HOME/nova-rs`,
/// `~/.local/state/nova-rs`, or `./nova-rs-state`.
pub fn default_state_dir() -> PathBuf {
    if let Ok(x) = std::env::var("XDG_STATE_HOME")
        && !x.is_empty()
    {
        return PathBuf::from(x).join("nova-rs");
    }
    match std::env::var("HOME") {
        Ok(h) if !h.is_empty() => PathBuf::from(h).join(".local/state/nova-rs"),
        _ => PathBuf::from("nova-rs-state"),
    }
}

/// The all-in-one's defaults under `state`: SQLite file, memory
/// transport, images, fake driver; `conf` settings win.
pub fn embedded_defaults(mut conf: Conf, state: &Path) -> Conf {
    let set = |c: &mut Conf, s: &str, k: &str, v: String| {
        if c.get(s, k).is_none_or(str::is_empty) {
            c.set(s, k, &v);
        }
    };
    set(
        &mut conf,
        "DEFAULT",
        "state_path",
        state.display().to_string(),
    );
    set(&mut conf, "DEFAULT", "transport_url", "memory://".into());
    set(&mut conf, "DEFAULT", "host", "nova-all".into());
    set(
        &mut conf,
        "DEFAULT",
        "compute_driver",
        "fake.FakeDriver".into(),
    );
    set(
        &mut conf,
        "database",
        "connection",
        format!("sqlite:{}", state.join("nova.sqlite").display()),
    );
    set(
        &mut conf,
        "image",
        "store_path",
        state.join("images").display().to_string(),
    );
    conf
}

/// Nova's default flavors and, when the image store is empty, one small
/// public image (`fake-image`) so a server can boot at once.
pub async fn seed(all: &AllInOne) -> anyhow::Result<()> {
    nova_api::flavors::seed_default_flavors(&all.objects).await?;
    let images = &all.api.state.images;
    if images.get(FAKE_IMAGE_ID).is_none() {
        let admin = nova_api::Ctx {
            user_id: "admin".into(),
            project_id: "admin".into(),
            roles: vec!["admin".into()],
            request_id: String::new(),
        };
        let body = serde_json_map(&[
            ("id", FAKE_IMAGE_ID),
            ("name", "fake-image"),
            ("disk_format", "qcow2"),
            ("container_format", "bare"),
            ("visibility", "public"),
        ]);
        images
            .create(&admin, &body)
            .map_err(|(s, m)| anyhow::anyhow!("{s}: {m}"))?;
        images.put_data(FAKE_IMAGE_ID, &[0u8; 1024])?;
    }
    Ok(())
}

/// The id of the image [`seed`] creates.
pub const FAKE_IMAGE_ID: &str = "155d900f-4e14-4e4c-a73d-069cbf4541e6";

fn serde_json_map(pairs: &[(&str, &str)]) -> serde_json::Map<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String((*v).to_owned())))
        .collect()
}
