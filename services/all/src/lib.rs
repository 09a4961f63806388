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
use nova_api::serve::Endpoints;
use nova_objects::Objects;
use nova_placement::PlacementHandle;
use nova_rpc::Transport;
use nova_service::{Conf, Runner};
use tokio_util::sync::CancellationToken;

mod network;

/// One compute service of the cluster.
pub use nova_compute::ComputeService as ComputeHandle;

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
    /// The built-in network service, when `[network] enabled`.
    pub network: Option<nova_network::Started>,
    /// Where the metadata API listens, when `[DEFAULT] enabled_apis`
    /// names `metadata`.
    pub metadata: Option<std::net::SocketAddr>,
    /// Cancels everything (the runner's stop).
    pub stop: CancellationToken,
    /// The runner every service runs on (one transport, one database, one
    /// Placement); its drain stops them all.
    pub runner: Runner,
}

/// What `nova-all` takes on its command line.
#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// nova.conf files (optional; embedded defaults otherwise).
    #[arg(long = "config", alias = "config-file")]
    pub config: Vec<PathBuf>,
    /// How many fake computes to run.
    #[arg(long, default_value_t = 1)]
    pub fake_computes: usize,
    /// Where the database, images and clouds.yaml live.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Compute API port (identity at /identity).
    #[arg(long)]
    pub port: Option<u16>,
    /// Image API port.
    #[arg(long)]
    pub image_port: Option<u16>,
    /// Network API port (`[network] bind_port`, default 9696).
    #[arg(long)]
    pub network_port: Option<u16>,
}

/// `nova-all`: the embedded defaults under the state directory, every
/// service on one runner, default flavors and an image, a `clouds.yaml`;
/// then serves until SIGTERM and drains everything.
pub async fn run(o: Options) -> anyhow::Result<()> {
    let conf = Conf::for_service(&o.config)?;
    let state = o.state_dir.clone().unwrap_or_else(default_state_dir);
    let mut conf = embedded_defaults(conf, &state);
    if let Some(p) = o.port {
        conf.set("DEFAULT", "osapi_compute_listen_port", &p.to_string());
    }
    if let Some(p) = o.image_port {
        conf.set("image", "bind_port", &p.to_string());
    }
    // The binary runs the built-in network service (Neutron v2.0 subset,
    // port 9696) unless told otherwise; the embedded `Cluster`s do not.
    if conf.get("network", "enabled").is_none_or(str::is_empty) {
        conf.set("network", "enabled", "true");
    }
    if let Some(p) = o.network_port {
        conf.set("network", "bind_port", &p.to_string());
    }
    let runner = Runner::new(conf).with_schema_sync().with_signals();
    let started = std::time::Instant::now();
    let all = AllInOne::on(runner, o.fake_computes).await?;
    seed(&all).await?;
    let clouds = state.join("clouds.yaml");
    all.write_clouds_yaml(&clouds)?;
    println!(
        "nova-all is up in {:.1} s: compute {}/v2.1, identity {}, image {}, {} compute(s)",
        started.elapsed().as_secs_f64(),
        all.api.compute_url,
        all.api.identity_url,
        all.api.image_url,
        all.computes.len()
    );
    if let Some(n) = &all.network {
        println!("network API: {}", n.url);
    }
    if let Some(m) = all.metadata {
        println!("metadata API: http://{m}");
    }
    println!("clouds.yaml: {}", clouds.display());
    println!(
        "try: OS_CLIENT_CONFIG_FILE={} openstack --os-cloud nova-rs server create --flavor m1.tiny --image fake-image --nic none demo --wait",
        clouds.display()
    );
    all.run().await
}

impl AllInOne {
    /// Starts every service with `conf` (the schema migrated) and
    /// `fake_computes` computes named `<prefix>-<n>` (prefix `[fake]
    /// host_prefix`, default `fake-compute`).
    pub async fn start(conf: Conf, fake_computes: usize) -> anyhow::Result<Self> {
        Self::on(Runner::new(conf).with_schema_sync(), fake_computes).await
    }

    /// Starts every service on `runner`: each service's own wiring, as its
    /// binary runs it. When start-up fails, what started is drained.
    pub async fn on(runner: Runner, fake_computes: usize) -> anyhow::Result<Self> {
        match Self::start_on(&runner, fake_computes).await {
            Ok(me) => Ok(me),
            Err(e) => {
                runner.shutdown().await;
                Err(e)
            }
        }
    }

    async fn start_on(runner: &Runner, fake_computes: usize) -> anyhow::Result<Self> {
        // `[metrics] enabled`: one registry for every service, recording
        // from the start (served on the compute API's port).
        if nova_service::metrics::MetricsConfig::from_conf(runner.conf())?.enabled {
            nova_service::metrics::install()?;
        }
        // What others call starts first: the drain stops RPC servers last
        // started first (computes, then the conductor, then the scheduler).
        nova_scheduler_service::start(runner).await?;
        nova_conductor::start(runner).await?;
        // The computes before the API: a request accepted at once finds
        // their queues and fresh heartbeats (after a restart, not the
        // previous process's).
        let conf = runner.conf().clone();
        let objects = runner.objects().await?;
        let prefix = conf.str_or("fake", "host_prefix", "fake-compute");
        let hosts: Vec<String> = if conf
            .str_or("DEFAULT", "compute_driver", "fake.FakeDriver")
            .starts_with("fake.")
        {
            (1..=fake_computes)
                .map(|n| format!("{prefix}-{n}"))
                .collect()
        } else {
            // A real hypervisor: one compute, this host's, and no fake ones;
            // with libvirt, a second on `[libvirt] peer_host` (its own daemon).
            std::iter::once(conf.host())
                .chain(nova_compute::peer_host(&conf))
                .collect()
        };
        let mut computes = nova_compute::service::start_hosts(runner, &hosts).await?;
        computes.sort_by(|a, b| a.host.cmp(&b.host));
        nova_manage::discover_hosts(&objects, &conf).await?;
        // The network service's address first (the identity's catalog
        // lists it), then API, identity, images, metadata.
        let network = if conf.bool_or("network", "enabled", false)? {
            let svc = nova_network::open(runner).await?;
            let (l, url) = nova_network::bind(&conf, None).await?;
            Some((svc, l, url))
        } else {
            None
        };
        let more = network
            .iter()
            .map(|(_, _, url)| nova_api::CatalogEntry {
                service_type: "network".into(),
                name: "neutron".into(),
                url: url.clone(),
            })
            .collect();
        let api = nova_api::serve::start_with(runner, more).await?;
        let network = match network {
            Some((svc, l, url)) => {
                Some(network::start(runner, &api, svc, l, url, &computes).await?)
            }
            None => None,
        };
        let metadata = if nova_metadata::enabled(&conf) {
            Some(nova_metadata::start(runner).await?)
        } else {
            None
        };
        // The console proxies of the enabled consoles.
        nova_consoleproxy::start_enabled(runner).await?;
        Ok(AllInOne {
            network,
            metadata,
            conf,
            transport: runner.transport().await?,
            objects,
            placement: runner.placement().await?,
            api,
            computes,
            stop: runner.stop_token(),
            runner: runner.clone(),
        })
    }

    /// Starts computes on `hosts` (with `[DEFAULT] compute_driver`), a few
    /// at a time.
    pub async fn add_computes(&mut self, hosts: &[String]) -> anyhow::Result<()> {
        let started = nova_compute::service::start_hosts(&self.runner, hosts).await?;
        if let Some(network) = self.api.state.network() {
            for c in &started {
                c.manager.set_network(network.clone());
            }
        }
        self.computes.extend(started);
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
        if let Some(c) = self.computes.iter().find(|c| c.host == host) {
            c.stop(&self.runner).await;
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
        write_private(path, y.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Serves until the runner stops (SIGTERM with [`run`]), then drains.
    pub async fn run(self) -> anyhow::Result<()> {
        self.runner.run().await
    }

    /// Stops everything: the APIs answer the requests in flight, the RPC
    /// servers finish theirs (computes first), periodic tasks stop.
    pub async fn shutdown(self) {
        self.runner.shutdown().await;
    }
}

/// Writes `data` to `path` readable by its owner alone (`0600`: it holds
/// passwords), an existing file included.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path)?;
    #[cfg(unix)]
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(data)
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
    // The metadata API only when asked for (`enabled_apis =
    // osapi_compute,metadata`), on loopback unless told otherwise.
    set(&mut conf, "DEFAULT", "enabled_apis", "osapi_compute".into());
    set(&mut conf, "DEFAULT", "metadata_listen", "127.0.0.1".into());
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
            ..Default::default()
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
