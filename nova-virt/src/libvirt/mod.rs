//! `LibvirtDriver` (feature `libvirt`): instances as libvirt domains,
//! through the `virt` crate. Blocking libvirt calls run on tokio's blocking
//! pool. Disks are qcow2 overlays (`qemu-img create -b`) on the image's
//! base file; the serial console goes to a log file; VNC listens on the
//! configured address; `[libvirt] virt_type` is the domain type (`qemu` on
//! machines without usable KVM, `test` with libvirt's `test:///default`).
//!
//! Lifecycle events come from libvirt itself (`VIR_DOMAIN_EVENT_ID_LIFECYCLE`,
//! subscribed through the raw bindings in `events.rs`, the crate's only
//! unsafe code), so guests that stop or crash on their own are reported too.
//! If libvirt refuses the subscription, the driver reports each operation's
//! transition itself and a watcher thread polls for the rest.

pub mod config_drive;
mod events;
mod interfaces;
mod jobs;
mod live;
mod moves;
mod vcpus;
mod vif;
pub mod xml;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use virt::connect::Connect;
use virt::domain::{Domain, DomainState};
use virt::error::ErrorNumber;

use crate::driver::{
    Capabilities, ComputeDriver, Console, CpuDiagnostics, Diagnostics, DiskDiagnostics, EventSink,
    HostResources, InstanceInfo, InstanceSpec, LifecycleEvent, NicDiagnostics, PowerState,
    ResourceInventory, Transition, Vif,
};
use crate::error::{Error, Result};
use xml::{DomainPlan, domain_xml};

/// `[libvirt]`, `[vnc]` and allocation settings of the driver.
#[derive(Debug, Clone, PartialEq)]
pub struct LibvirtConfig {
    /// `[libvirt] connection_uri` (default `qemu:///system`).
    pub connection_uri: String,
    /// `[libvirt] virt_type` (default `kvm`; `qemu` without usable KVM).
    pub virt_type: String,
    /// `[DEFAULT] instances_path` (default `/var/lib/nova/instances`).
    pub instances_path: PathBuf,
    /// `[vnc] enabled` and `[vnc] server_listen`.
    pub vnc_listen: Option<String>,
    /// The other consoles: `[vnc] server_proxyclient_address`, `[spice]`,
    /// `[serial_console]`.
    pub consoles: ConsoleConfig,
    /// `cpu_allocation_ratio` reported to Placement (4.0).
    pub cpu_allocation_ratio: f64,
    /// `ram_allocation_ratio` (1.0).
    pub ram_allocation_ratio: f64,
    /// `disk_allocation_ratio` (1.0).
    pub disk_allocation_ratio: f64,
    /// `reserved_host_memory_mb` (512).
    pub reserved_host_memory_mb: i64,
    /// How long a soft reboot waits for the guest to stop before a hard one (60 s).
    pub soft_reboot_timeout: Duration,
    /// How often the event watcher looks at domain states (1 s).
    pub event_poll_interval: Duration,
    /// `[libvirt] live_migration_uri`: the destination's libvirt, `%s`
    /// the destination host (`qemu+tcp://%s/system`).
    pub live_migration_uri: String,
    /// The destination's `instances_path` when it is not this one (two
    /// computes on one machine); none: the same path (nova's assumption).
    pub peer_instances_path: Option<PathBuf>,
    /// The node's name (`hypervisor_hostname`); none: libvirt's host name
    /// (nova's). A second daemon on the same machine needs its own.
    pub hypervisor_hostname: Option<String>,
    /// `[libvirt] live_migration_bandwidth`: MiB/s a live migration may
    /// use (0: no limit).
    pub live_migration_bandwidth: u64,
    /// `[libvirt] live_migration_permit_post_copy`: migrations may switch
    /// to post-copy, which `force_complete` then does (else it pauses).
    pub live_migration_permit_post_copy: bool,
    /// `[libvirt] device_detach_attempts`: live detach requests before a
    /// detach fails (8).
    pub device_detach_attempts: u32,
    /// `[libvirt] device_detach_timeout`: how long each live detach
    /// request waits for the guest to release the device (20 s).
    pub device_detach_timeout: Duration,
}

impl Default for LibvirtConfig {
    fn default() -> Self {
        LibvirtConfig {
            connection_uri: "qemu:///system".into(),
            virt_type: "kvm".into(),
            instances_path: PathBuf::from("/var/lib/nova/instances"),
            vnc_listen: Some("127.0.0.1".into()),
            consoles: ConsoleConfig::default(),
            cpu_allocation_ratio: 4.0,
            ram_allocation_ratio: 1.0,
            disk_allocation_ratio: 1.0,
            reserved_host_memory_mb: 512,
            soft_reboot_timeout: Duration::from_secs(60),
            event_poll_interval: Duration::from_secs(1),
            live_migration_uri: "qemu+tcp://%s/system".into(),
            peer_instances_path: None,
            hypervisor_hostname: None,
            live_migration_bandwidth: 0,
            live_migration_permit_post_copy: false,
            device_detach_attempts: 8,
            device_detach_timeout: Duration::from_secs(20),
        }
    }
}

/// Console settings of the driver beyond `[vnc] server_listen`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleConfig {
    /// `[vnc] server_proxyclient_address`: the VNC console's host as
    /// reported to the proxy (127.0.0.1).
    pub vnc_proxyclient_address: String,
    /// `[spice] enabled` and `[spice] server_listen`.
    pub spice_listen: Option<String>,
    /// `[spice] server_proxyclient_address` (127.0.0.1).
    pub spice_proxyclient_address: String,
    /// `[serial_console] enabled`: `proxyclient_address` (where the TCP
    /// serial port listens) and `port_range`.
    pub serial: Option<(String, (u16, u16))>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            vnc_proxyclient_address: "127.0.0.1".into(),
            spice_listen: None,
            spice_proxyclient_address: "127.0.0.1".into(),
            serial: None,
        }
    }
}

/// The libvirt driver.
#[derive(Debug)]
pub struct LibvirtDriver {
    cfg: LibvirtConfig,
    conn: Arc<Connect>,
    sink: events::SinkSlot,
    /// Whether libvirt delivers lifecycle events (else: own reports + watcher).
    libvirt_events: bool,
    /// Serial console ports taken from `port_range`, by instance (nova's
    /// `serial_console.ALLOCATED_PORTS`).
    serial_ports: Mutex<BTreeMap<String, u16>>,
    /// This compute's host name (`init_host`): a move to another host
    /// copies the disk to `peer_instances_path`.
    host: std::sync::OnceLock<String>,
    /// Instances whose live migration this driver is running (`live.rs`:
    /// an abort waits for their job to start).
    migrating: Mutex<std::collections::BTreeSet<String>>,
}

fn hv(e: virt::error::Error) -> Error {
    Error::Hypervisor(e.message().to_owned())
}

fn failed(op: &'static str, uuid: &str, e: impl std::fmt::Display) -> Error {
    Error::Failed {
        operation: op,
        uuid: uuid.to_owned(),
        reason: e.to_string(),
    }
}

fn power_state(s: DomainState, managed_save: bool) -> PowerState {
    match s {
        DomainState::Running | DomainState::Blocked => PowerState::Running,
        DomainState::Paused => PowerState::Paused,
        DomainState::Shutdown | DomainState::Shutoff if managed_save => PowerState::Suspended,
        DomainState::Shutdown | DomainState::Shutoff => PowerState::Shutdown,
        DomainState::Crashed => PowerState::Crashed,
        DomainState::PMSuspended => PowerState::Suspended,
        DomainState::NoState => PowerState::NoState,
    }
}

fn state_of(dom: &Domain) -> Result<PowerState> {
    let (s, _) = dom.state().map_err(hv)?;
    let s = s.known().unwrap_or(DomainState::NoState);
    let saved = matches!(s, DomainState::Shutoff) && dom.has_managed_save(0).unwrap_or(false);
    Ok(power_state(s, saved))
}

impl LibvirtDriver {
    /// Connects to `cfg.connection_uri` (blocking; call before serving).
    pub fn connect(cfg: LibvirtConfig) -> Result<Self> {
        // Errors come back as values; libvirt's default handler would also
        // print each one (every "domain not found" lookup) on stderr.
        virt::error::clear_error_callback();
        events::start_event_loop();
        let conn = Connect::open(Some(&cfg.connection_uri)).map_err(|e| {
            Error::Hypervisor(format!(
                "cannot connect to {}: {}",
                cfg.connection_uri,
                e.message()
            ))
        })?;
        let sink: events::SinkSlot = Arc::new(Mutex::new(None));
        let libvirt_events = match events::register(&conn, sink.clone()) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("{e}: reporting lifecycle events by polling");
                false
            }
        };
        Ok(LibvirtDriver {
            cfg,
            conn: Arc::new(conn),
            sink,
            libvirt_events,
            serial_ports: Mutex::default(),
            host: std::sync::OnceLock::new(),
            migrating: Mutex::default(),
        })
    }

    /// Whether lifecycle events come from libvirt's event API (else from
    /// the driver's own reports and a polling watcher).
    pub fn has_libvirt_events(&self) -> bool {
        self.libvirt_events
    }

    /// The settings.
    pub fn config(&self) -> &LibvirtConfig {
        &self.cfg
    }

    fn instance_dir(&self, uuid: &str) -> PathBuf {
        self.cfg.instances_path.join(uuid)
    }

    fn console_log(&self, uuid: &str) -> PathBuf {
        self.instance_dir(uuid).join("console.log")
    }

    /// The consoles of a new domain: SPICE when enabled, and a TCP serial
    /// port from `port_range` (the instance's own if it has one; else the
    /// first one free and not taken, as nova's `acquire_port`).
    fn console_plan(&self, uuid: &str) -> Result<xml::ConsolePlan> {
        let c = &self.cfg.consoles;
        let serial_tcp = match &c.serial {
            None => None,
            Some((host, (lo, hi))) => {
                let mut taken = self.serial_ports.lock().unwrap_or_else(|e| e.into_inner());
                let port = match taken.get(uuid) {
                    Some(p) => *p,
                    None => {
                        let used: std::collections::BTreeSet<u16> =
                            taken.values().copied().collect();
                        let p = (*lo..*hi)
                            .find(|p| {
                                !used.contains(p)
                                    && std::net::TcpListener::bind((host.as_str(), *p)).is_ok()
                            })
                            .ok_or_else(|| {
                                Error::Hypervisor(format!(
                                    "Not able to acquire a free port for {host}"
                                ))
                            })?;
                        taken.insert(uuid.to_owned(), p);
                        p
                    }
                };
                Some((host.clone(), port))
            }
        };
        Ok(xml::ConsolePlan {
            spice_listen: c.spice_listen.clone(),
            serial_tcp,
        })
    }

    /// The live XML of a running instance's domain.
    async fn live_xml(&self, uuid: &str) -> Result<String> {
        let u = uuid.to_owned();
        self.blocking(move |c| Self::lookup(c, &u)?.xml_desc(0).map_err(hv))
            .await
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connect) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&conn))
            .await
            .map_err(|e| Error::Hypervisor(format!("libvirt worker: {e}")))?
    }

    /// A device change for `dom`'s definition and, when it runs, its guest
    /// (nova's `persistent=True, live=<active>`).
    fn affect_config_and_live(dom: &Domain) -> Result<u32> {
        let mut flags = virt::sys::VIR_DOMAIN_AFFECT_CONFIG;
        if dom.is_active().map_err(hv)? {
            flags |= virt::sys::VIR_DOMAIN_AFFECT_LIVE;
        }
        Ok(flags)
    }

    fn lookup(conn: &Connect, uuid: &str) -> Result<Domain> {
        conn.lookup_domain_by_uuid_string(uuid)
            .map_err(|_| Error::InstanceNotFound(uuid.to_owned()))
    }

    /// Reports an operation's transition, when libvirt does not.
    fn emit(&self, uuid: &str, transition: Transition) {
        if self.libvirt_events {
            return;
        }
        let sink = self.sink.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(s) = sink {
            s.emit(LifecycleEvent {
                uuid: uuid.to_owned(),
                transition,
            });
        }
    }

    /// One libvirt call on the instance's domain, then its transition.
    async fn domain_op(
        &self,
        uuid: &str,
        op: &'static str,
        call: fn(&Domain) -> std::result::Result<(), virt::error::Error>,
        transition: Transition,
    ) -> Result<()> {
        let u = uuid.to_owned();
        self.blocking(move |c| {
            call(&Self::lookup(c, &u)?).map_err(|e| failed(op, &u, e.message()))
        })
        .await?;
        self.emit(uuid, transition);
        Ok(())
    }

    /// Waits until the domain is shut off, for at most `timeout`.
    fn wait_shutoff(dom: &Domain, timeout: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if !dom.is_active().unwrap_or(false) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        !dom.is_active().unwrap_or(false)
    }

    fn start_watcher(&self) {
        let (conn, sink, every) = (
            self.conn.clone(),
            self.sink.clone(),
            self.cfg.event_poll_interval,
        );
        std::thread::Builder::new()
            .name("libvirt-events".into())
            .spawn(move || {
                let mut last: BTreeMap<String, PowerState> = BTreeMap::new();
                loop {
                    std::thread::sleep(every);
                    let Some(s) = sink.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
                        continue;
                    };
                    let Ok(doms) = conn.list_all_domains(0) else {
                        if !conn.is_alive().unwrap_or(false) {
                            return;
                        }
                        continue;
                    };
                    let mut now = BTreeMap::new();
                    for d in doms {
                        if let (Ok(u), Ok(st)) = (d.uuid_string(), state_of(&d)) {
                            now.insert(u, st);
                        }
                    }
                    for (u, st) in &now {
                        let before = last.get(u).copied();
                        if before == Some(*st) {
                            continue;
                        }
                        // The driver reports what it does itself; this reports what
                        // happens behind compute's back: a guest that stops or crashes.
                        let t = match (before, st) {
                            (
                                Some(PowerState::Running | PowerState::Paused),
                                PowerState::Shutdown | PowerState::Crashed,
                            ) => Some(Transition::Stopped),
                            _ => None,
                        };
                        if let Some(t) = t {
                            s.emit(LifecycleEvent {
                                uuid: u.clone(),
                                transition: t,
                            });
                        }
                    }
                    last = now;
                }
            })
            .ok();
    }
}

/// Total and available GiB of the file system holding `path` (`df`).
fn disk_gb(path: &std::path::Path) -> (i64, i64) {
    let out = std::process::Command::new("df")
        .args(["-k", "--output=size,avail"])
        .arg(path)
        .output();
    let Ok(out) = out else {
        return (0, 0);
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<i64> = text
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    match nums.as_slice() {
        [size, avail] => (size / 1024 / 1024, avail / 1024 / 1024),
        _ => (0, 0),
    }
}

#[async_trait::async_trait]
impl ComputeDriver for LibvirtDriver {
    fn name(&self) -> &'static str {
        "libvirt"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            supports_pause: true,
            supports_suspend: true,
            supports_snapshot: false,
            // Resize on the guest's own host, cold migration to another
            // host reached as a local path (`moves.rs`: the disk copied
            // into `peer_instances_path`, no ssh). Live migration copies
            // the disk's top layer (`live.rs`: block migration only, no
            // guest with a config drive).
            supports_resize: true,
            supports_live_migration: true,
            supports_rescue: false,
            supports_vnc_console: self.cfg.vnc_listen.is_some(),
            supports_spice_console: self.cfg.consoles.spice_listen.is_some(),
            supports_serial_console: self.cfg.consoles.serial.is_some(),
            supports_evacuate: false,
            supports_attach_interface: true,
            supports_tagged_attach_interface: true,
            image_types: vec!["qcow2".into(), "raw".into(), "aki".into(), "ari".into()],
        }
    }

    fn register_event_sink(&self, sink: Arc<dyn EventSink>) {
        let first = self
            .sink
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(sink)
            .is_none();
        if first {
            self.start_watcher();
        }
    }

    async fn init_host(&self, host: &str) -> Result<()> {
        let _ = self.host.set(host.to_owned());
        std::fs::create_dir_all(&self.cfg.instances_path).map_err(|e| {
            Error::Hypervisor(format!(
                "instances_path {}: {e}",
                self.cfg.instances_path.display()
            ))
        })?;
        let virt_type = self.cfg.virt_type.clone();
        self.blocking(move |c| {
            let caps = c.capabilities().map_err(hv)?;
            if xml::supported_instances(&caps, &virt_type).is_empty() {
                return Err(Error::Hypervisor(format!(
                    "the hypervisor offers no hvm guests of domain type {virt_type:?}: check [libvirt] virt_type"
                )));
            }
            Ok(())
        })
        .await
    }

    async fn host_resources(&self) -> Result<HostResources> {
        let cfg = self.cfg.clone();
        let (local_gb, free_gb) = disk_gb(&cfg.instances_path);
        self.blocking(move |c| {
            let node = c.node_info().map_err(hv)?;
            let caps = c.capabilities().map_err(hv)?;
            let version = i64::from(c.hyp_version().map_err(hv)?);
            let hostname = match &cfg.hypervisor_hostname {
                Some(h) => h.clone(),
                None => c.hostname().map_err(hv)?,
            };
            let (mut vcpus_used, mut mem_used) = (0i64, 0i64);
            for d in c
                .list_all_domains(virt::sys::VIR_CONNECT_LIST_DOMAINS_ACTIVE)
                .map_err(hv)?
            {
                if let Ok(i) = d.info() {
                    vcpus_used += i64::from(i.nr_virt_cpu);
                    mem_used += (i.memory / 1024) as i64;
                }
            }
            let (vcpus, memory_mb) = (i64::from(node.cpus), (node.memory / 1024) as i64);
            let inv = ResourceInventory::new;
            let mut inventories = BTreeMap::from([
                ("VCPU".to_owned(), inv(vcpus, 0, cfg.cpu_allocation_ratio)),
                (
                    "MEMORY_MB".to_owned(),
                    inv(
                        memory_mb,
                        cfg.reserved_host_memory_mb.min(memory_mb),
                        cfg.ram_allocation_ratio,
                    ),
                ),
            ]);
            if local_gb > 0 {
                inventories.insert(
                    "DISK_GB".into(),
                    inv(local_gb, 0, cfg.disk_allocation_ratio),
                );
            }
            Ok(HostResources {
                hypervisor_hostname: hostname,
                hypervisor_type: "QEMU".into(),
                hypervisor_version: version,
                vcpus,
                vcpus_used,
                memory_mb,
                memory_mb_used: mem_used + cfg.reserved_host_memory_mb,
                local_gb,
                local_gb_used: local_gb - free_gb,
                cpu_info: serde_json::json!({"arch": "x86_64", "model": node.model, "topology": {
                    "sockets": node.sockets, "cores": node.cores, "threads": node.threads}}),
                supported_instances: xml::supported_instances(&caps, &cfg.virt_type),
                inventories,
                traits: Vec::new(),
            })
        })
        .await
        .map(|mut r| {
            r.traits = self.capabilities().as_traits();
            r
        })
    }

    async fn list_instance_uuids(&self) -> Result<Vec<String>> {
        self.blocking(|c| {
            Ok(c.list_all_domains(0)
                .map_err(hv)?
                .iter()
                .filter_map(|d| d.uuid_string().ok())
                .collect())
        })
        .await
    }

    async fn get_info(&self, uuid: &str) -> Result<InstanceInfo> {
        let u = uuid.to_owned();
        self.blocking(move |c| {
            let d = Self::lookup(c, &u)?;
            Ok(InstanceInfo {
                state: state_of(&d)?,
                internal_id: d.id().map(|i| i.to_string()),
            })
        })
        .await
    }

    async fn spawn(&self, spec: &InstanceSpec) -> Result<()> {
        let dir = self.instance_dir(&spec.uuid);
        let exists = {
            let u = spec.uuid.clone();
            self.blocking(move |c| Ok(c.lookup_domain_by_uuid_string(&u).is_ok()))
                .await?
        };
        if exists {
            return Err(Error::InstanceExists(spec.uuid.clone()));
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| failed("spawn", &spec.uuid, format!("{}: {e}", dir.display())))?;
        let disk_path = match &spec.image_path {
            Some(base) => {
                let disk = dir.join("disk");
                let mut cmd = tokio::process::Command::new("qemu-img");
                cmd.args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base])
                    .arg(&disk);
                if spec.root_gb > 0 {
                    cmd.arg(format!("{}G", spec.root_gb));
                }
                let out = cmd
                    .output()
                    .await
                    .map_err(|e| failed("spawn", &spec.uuid, format!("qemu-img: {e}")))?;
                if !out.status.success() {
                    return Err(failed(
                        "spawn",
                        &spec.uuid,
                        format!(
                            "qemu-img create: {}",
                            String::from_utf8_lossy(&out.stderr).trim()
                        ),
                    ));
                }
                Some(disk.display().to_string())
            }
            None => None,
        };
        let config_drive = match &spec.config_drive {
            Some(files) => match config_drive::build(&dir, files).await {
                Ok(p) => Some(p.display().to_string()),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(failed("spawn", &spec.uuid, e));
                }
            },
            None => None,
        };
        let plan = DomainPlan {
            virt_type: self.cfg.virt_type.clone(),
            disk_path,
            console_log: self.console_log(&spec.uuid).display().to_string(),
            vnc_listen: self.cfg.vnc_listen.clone(),
            rescued_disk: None,
            config_drive,
            consoles: self.console_plan(&spec.uuid)?,
        };
        let domain = domain_xml(spec, &plan);
        if let Err(e) = self.plug_vifs(&spec.uuid, &spec.network_info).await {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let u = spec.uuid.clone();
        let r = self
            .blocking(move |c| {
                let d = c
                    .define_domain_xml(&domain)
                    .map_err(|e| failed("spawn", &u, e.message()))?;
                if let Err(e) = d.create() {
                    let _ = d.undefine();
                    return Err(failed("spawn", &u, e.message()));
                }
                Ok(())
            })
            .await;
        match r {
            Ok(()) => {
                self.emit(&spec.uuid, Transition::Started);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    async fn destroy(&self, uuid: &str) -> Result<()> {
        let u = uuid.to_owned();
        let taps = self
            .blocking(move |c| {
                let d = Self::lookup(c, &u)?;
                let xml = d.xml_desc(0).unwrap_or_default();
                Ok(xml::io_devices(&xml)
                    .1
                    .into_iter()
                    .filter_map(|(_, tap)| tap)
                    .collect::<Vec<_>>())
            })
            .await?;
        let u = uuid.to_owned();
        self.blocking(move |c| {
            let d = Self::lookup(c, &u)?;
            if d.is_active().unwrap_or(false) {
                d.destroy()
                    .map_err(|e| failed("destroy", &u, e.message()))?;
            }
            if d.has_managed_save(0).unwrap_or(false) {
                let _ = d.managed_save_remove(0);
            }
            d.undefine()
                .map_err(|e| failed("destroy", &u, e.message()))?;
            Ok(())
        })
        .await?;
        self.unplug_taps(&taps).await;
        self.emit(uuid, Transition::Stopped);
        let _ = std::fs::remove_dir_all(self.instance_dir(uuid));
        self.serial_ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uuid);
        Ok(())
    }

    async fn reboot(&self, uuid: &str, hard: bool) -> Result<()> {
        // nova's hard reboot plugs the VIFs again (a soft one may end hard).
        self.plug_defined(uuid).await?;
        let (u, wait) = (uuid.to_owned(), self.cfg.soft_reboot_timeout);
        self.blocking(move |c| {
            let d = Self::lookup(c, &u)?;
            let stopped = !hard
                && d.is_active().unwrap_or(false)
                && d.shutdown().is_ok()
                && Self::wait_shutoff(&d, wait);
            if !stopped && d.is_active().unwrap_or(false) {
                d.destroy().map_err(|e| failed("reboot", &u, e.message()))?;
            }
            d.create().map_err(|e| failed("reboot", &u, e.message()))
        })
        .await?;
        self.emit(uuid, Transition::Started);
        Ok(())
    }

    async fn power_off(&self, uuid: &str, clean_shutdown_timeout: Duration) -> Result<()> {
        let u = uuid.to_owned();
        self.blocking(move |c| {
            let d = Self::lookup(c, &u)?;
            if !d.is_active().unwrap_or(false) {
                return Ok(());
            }
            let clean = !clean_shutdown_timeout.is_zero()
                && d.shutdown().is_ok()
                && Self::wait_shutoff(&d, clean_shutdown_timeout);
            if !clean && d.is_active().unwrap_or(false) {
                d.destroy()
                    .map_err(|e| failed("power_off", &u, e.message()))?;
            }
            Ok(())
        })
        .await?;
        self.emit(uuid, Transition::Stopped);
        Ok(())
    }

    async fn power_on(&self, uuid: &str) -> Result<()> {
        self.plug_defined(uuid).await?;
        let u = uuid.to_owned();
        self.blocking(move |c| {
            let d = Self::lookup(c, &u)?;
            if d.is_active().unwrap_or(false) {
                return Ok(());
            }
            d.create().map_err(|e| failed("power_on", &u, e.message()))
        })
        .await?;
        self.emit(uuid, Transition::Started);
        Ok(())
    }

    async fn pause(&self, uuid: &str) -> Result<()> {
        self.domain_op(uuid, "pause", |d| d.suspend(), Transition::Paused)
            .await
    }

    async fn unpause(&self, uuid: &str) -> Result<()> {
        self.domain_op(uuid, "unpause", |d| d.resume(), Transition::Resumed)
            .await
    }

    async fn suspend(&self, uuid: &str) -> Result<()> {
        self.domain_op(
            uuid,
            "suspend",
            |d| d.managed_save(0),
            Transition::Suspended,
        )
        .await
    }

    async fn resume(&self, uuid: &str) -> Result<()> {
        // Starting a domain with a managed save restores it.
        self.domain_op(uuid, "resume", |d| d.create(), Transition::Resumed)
            .await
    }

    async fn prep_resize(&self, spec: &InstanceSpec) -> Result<()> {
        self.resize_prep(spec).await
    }

    async fn migrate_disk_and_power_off(
        &self,
        uuid: &str,
        dest: &str,
        target: &crate::driver::ResizeTarget,
    ) -> Result<()> {
        self.resize_power_off(uuid, dest, target).await
    }

    async fn finish_migration(&self, spec: &InstanceSpec, power_on: bool) -> Result<()> {
        self.resize_finish(spec, power_on).await
    }

    async fn confirm_migration(&self, uuid: &str, same_host: bool) -> Result<()> {
        self.resize_confirm(uuid, same_host).await
    }

    async fn finish_revert_migration(&self, spec: &InstanceSpec, power_on: bool) -> Result<()> {
        self.resize_revert(spec, power_on).await
    }

    async fn check_can_live_migrate_destination(
        &self,
        spec: &InstanceSpec,
        _block_migration: bool,
    ) -> Result<()> {
        self.live_check_destination(spec).await
    }

    async fn check_can_live_migrate_source(&self, uuid: &str) -> Result<()> {
        self.live_check_source(uuid).await
    }

    async fn pre_live_migration(&self, spec: &InstanceSpec) -> Result<()> {
        self.live_pre(spec).await
    }

    async fn live_migration(&self, uuid: &str, dest: &str) -> Result<()> {
        self.live_migrate(uuid, dest).await
    }

    async fn post_live_migration_at_destination(&self, spec: &InstanceSpec) -> Result<()> {
        self.live_post(spec).await
    }

    async fn rollback_live_migration_at_destination(&self, uuid: &str) -> Result<()> {
        self.live_rollback(uuid).await
    }

    async fn live_migration_force_complete(&self, uuid: &str) -> Result<()> {
        self.live_force_complete(uuid).await
    }

    async fn live_migration_abort(&self, uuid: &str) -> Result<()> {
        self.live_abort(uuid).await
    }

    /// The root disk (its qcow2 overlay and backing chain) flattened into
    /// `dest` by `qemu-img convert`; a running guest is paused meanwhile
    /// (its vCPUs stopped, so the disk is consistent) and resumed after.
    async fn snapshot(&self, uuid: &str, dest: &std::path::Path) -> Result<String> {
        let disk = self.instance_dir(uuid).join("disk");
        let u = uuid.to_owned();
        let paused = self
            .blocking(move |c| {
                let d = Self::lookup(c, &u)?;
                let running = matches!(state_of(&d)?, PowerState::Running);
                if running {
                    d.suspend()
                        .map_err(|e| failed("snapshot", &u, e.message()))?;
                }
                Ok(running)
            })
            .await?;
        let r = async {
            if !disk.exists() {
                return Err(failed(
                    "snapshot",
                    uuid,
                    "the instance has no local root disk",
                ));
            }
            let out = tokio::process::Command::new("qemu-img")
                .args(["convert", "-U", "-f", "qcow2", "-O", "qcow2"])
                .arg(&disk)
                .arg(dest)
                .output()
                .await
                .map_err(|e| failed("snapshot", uuid, format!("qemu-img: {e}")))?;
            if !out.status.success() {
                return Err(failed(
                    "snapshot",
                    uuid,
                    format!(
                        "qemu-img convert: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                ));
            }
            Ok("qcow2".to_owned())
        }
        .await;
        if paused {
            let u = uuid.to_owned();
            self.blocking(move |c| {
                Self::lookup(c, &u)?
                    .resume()
                    .map_err(|e| failed("snapshot", &u, e.message()))
                    .map(|_| ())
            })
            .await?;
        }
        r
    }

    /// Nova's libvirt rescue: the domain's definition kept aside
    /// (`unrescue.xml`), then the guest restarted from a rescue disk (an
    /// overlay of the rescue image, when it is a disk) with its own root
    /// disk attached second.
    async fn rescue(&self, spec: &InstanceSpec, _rescue_image: &str) -> Result<()> {
        let dir = self.instance_dir(&spec.uuid);
        let saved = dir.join("unrescue.xml");
        if saved.exists() {
            return Err(failed(
                "rescue",
                &spec.uuid,
                "the instance is already in rescue",
            ));
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| failed("rescue", &spec.uuid, format!("{}: {e}", dir.display())))?;
        let own = dir.join("disk");
        let rescue_disk = match &spec.image_path {
            Some(base) => {
                let disk = dir.join("disk.rescue");
                let out = tokio::process::Command::new("qemu-img")
                    .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base])
                    .arg(&disk)
                    .output()
                    .await
                    .map_err(|e| failed("rescue", &spec.uuid, format!("qemu-img: {e}")))?;
                if !out.status.success() {
                    return Err(failed(
                        "rescue",
                        &spec.uuid,
                        format!(
                            "qemu-img create: {}",
                            String::from_utf8_lossy(&out.stderr).trim()
                        ),
                    ));
                }
                Some(disk.display().to_string())
            }
            None => None,
        };
        let plan = DomainPlan {
            virt_type: self.cfg.virt_type.clone(),
            disk_path: rescue_disk,
            console_log: self.console_log(&spec.uuid).display().to_string(),
            vnc_listen: self.cfg.vnc_listen.clone(),
            rescued_disk: own.exists().then(|| own.display().to_string()),
            config_drive: Some(dir.join(config_drive::FILE))
                .filter(|p| p.exists())
                .map(|p| p.display().to_string()),
            consoles: self.console_plan(&spec.uuid)?,
        };
        let rescue_xml = domain_xml(spec, &plan);
        self.plug_vifs(&spec.uuid, &spec.network_info).await?;
        let u = spec.uuid.clone();
        self.blocking(move |c| {
            let d = Self::lookup(c, &u)?;
            let original = d
                .xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE)
                .map_err(|e| failed("rescue", &u, e.message()))?;
            std::fs::write(&saved, original)
                .map_err(|e| failed("rescue", &u, format!("{}: {e}", saved.display())))?;
            if d.is_active().unwrap_or(false) {
                d.destroy().map_err(|e| failed("rescue", &u, e.message()))?;
            }
            let r = c
                .define_domain_xml(&rescue_xml)
                .and_then(|d| d.create().map(|_| ()));
            if let Err(e) = r {
                // Back to the instance's own definition.
                if let Ok(xml) = std::fs::read_to_string(&saved) {
                    let _ = c.define_domain_xml(&xml);
                }
                let _ = std::fs::remove_file(&saved);
                return Err(failed("rescue", &u, e.message()));
            }
            Ok(())
        })
        .await?;
        self.emit(&spec.uuid, Transition::Started);
        Ok(())
    }

    /// Leaves rescue: the kept definition back, booted from its own disk;
    /// the rescue disk removed.
    async fn unrescue(&self, uuid: &str) -> Result<()> {
        let dir = self.instance_dir(uuid);
        let saved = dir.join("unrescue.xml");
        let xml = std::fs::read_to_string(&saved).map_err(|_| Error::InvalidState {
            uuid: uuid.to_owned(),
            state: PowerState::Running,
            operation: "unrescue",
        })?;
        self.plug_domain_vifs(uuid, &xml).await?;
        let u = uuid.to_owned();
        self.blocking(move |c| {
            let d = Self::lookup(c, &u)?;
            if d.is_active().unwrap_or(false) {
                d.destroy()
                    .map_err(|e| failed("unrescue", &u, e.message()))?;
            }
            c.define_domain_xml(&xml)
                .and_then(|d| d.create().map(|_| ()))
                .map_err(|e| failed("unrescue", &u, e.message()))
        })
        .await?;
        let _ = std::fs::remove_file(&saved);
        let _ = std::fs::remove_file(dir.join("disk.rescue"));
        self.emit(uuid, Transition::Started);
        Ok(())
    }

    async fn set_admin_password(&self, uuid: &str, user: &str, password: &str) -> Result<()> {
        let (u, user, password) = (uuid.to_owned(), user.to_owned(), password.to_owned());
        self.blocking(move |c| {
            let dom = Self::lookup(c, &u)?;
            dom.set_user_password(&user, &password, 0).map_err(|e| {
                match e.code().unwrap_or(ErrorNumber::InternalError) {
                    // No agent channel, or an agent that does not answer.
                    ErrorNumber::ArgumentUnsupported
                    | ErrorNumber::AgentUnresponsive
                    | ErrorNumber::OperationUnsupported => Error::AgentNotEnabled(u.clone()),
                    ErrorNumber::NoSupport => Error::NotSupported {
                        operation: "set_admin_password",
                    },
                    _ => failed("set_admin_password", &u, e.message()),
                }
            })
        })
        .await
    }

    async fn trigger_crash_dump(&self, uuid: &str) -> Result<()> {
        let u = uuid.to_owned();
        self.blocking(move |c| {
            let dom = Self::lookup(c, &u)?;
            events::inject_nmi(&dom).map_err(|e| {
                match e.code().unwrap_or(ErrorNumber::InternalError) {
                    ErrorNumber::NoSupport => Error::NotSupported {
                        operation: "trigger_crash_dump",
                    },
                    ErrorNumber::OperationInvalid => Error::InvalidState {
                        uuid: u.clone(),
                        state: state_of(&dom).unwrap_or(PowerState::NoState),
                        operation: "trigger_crash_dump",
                    },
                    _ => failed("trigger_crash_dump", &u, e.message()),
                }
            })
        })
        .await
    }

    /// nova's `attach_interface` (`interfaces.rs`): the VIF plugged, its
    /// `<interface>` (model `virtio`) added to the definition and, when
    /// the guest runs, hot-plugged.
    async fn attach_interface(&self, uuid: &str, vif: &Vif) -> Result<()> {
        self.attach_vif(uuid, vif).await
    }

    /// The PCI address of each `<interface>` in the live domain XML, as
    /// nova's `_build_interface_metadata` reads it.
    async fn interface_addresses(&self, uuid: &str) -> Result<Vec<(String, String)>> {
        Ok(xml::interface_pci_addresses(&self.live_xml(uuid).await?))
    }

    /// nova's `detach_interface` (`interfaces.rs`): the `<interface>` of
    /// the VIF's MAC out of the definition, then out of the live domain
    /// (each request waited for: `device_detach_timeout`, retried
    /// `device_detach_attempts` times), then the tap removed if left.
    async fn detach_interface(&self, uuid: &str, vif: &Vif) -> Result<()> {
        self.detach_vif(uuid, vif).await
    }

    /// The compute host's `uptime`, as nova's libvirt driver runs it.
    async fn get_host_uptime(&self) -> Result<String> {
        crate::driver::local_host_uptime().await
    }

    async fn get_console_output(&self, uuid: &str) -> Result<String> {
        let u = uuid.to_owned();
        self.blocking(move |c| Self::lookup(c, &u).map(|_| ()))
            .await?;
        match std::fs::read(self.console_log(uuid)) {
            Ok(bytes) => {
                let tail = &bytes[bytes.len().saturating_sub(100 * 1024)..];
                Ok(String::from_utf8_lossy(tail).into_owned())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(failed("get_console_output", uuid, e)),
        }
    }

    async fn get_instance_diagnostics(&self, uuid: &str) -> Result<Diagnostics> {
        let u = uuid.to_owned();
        let virt_type = self.cfg.virt_type.clone();
        self.blocking(move |c| diagnostics_of(&Self::lookup(c, &u)?, &virt_type))
            .await
    }

    async fn get_vnc_console(&self, uuid: &str) -> Result<Console> {
        if self.cfg.vnc_listen.is_none() {
            return Err(Error::NotSupported {
                operation: "get_vnc_console",
            });
        }
        let host = self.cfg.consoles.vnc_proxyclient_address.clone();
        let u = uuid.to_owned();
        self.blocking(move |c| {
            let d = Self::lookup(c, &u)?;
            let live = d.xml_desc(0).map_err(hv)?;
            let port = xml::vnc_port(&live).ok_or_else(|| {
                failed(
                    "get_vnc_console",
                    &u,
                    "the domain has no VNC port (is it running?)",
                )
            })?;
            Ok(Console {
                host,
                port,
                tls_port: None,
                internal_access_path: None,
            })
        })
        .await
    }

    async fn get_spice_console(&self, uuid: &str) -> Result<Console> {
        if self.cfg.consoles.spice_listen.is_none() {
            return Err(Error::NotSupported {
                operation: "get_spice_console",
            });
        }
        let live = self.live_xml(uuid).await?;
        let (port, tls_port) = xml::spice_ports(&live).ok_or_else(|| {
            failed(
                "get_spice_console",
                uuid,
                "the domain has no SPICE port (is it running?)",
            )
        })?;
        Ok(Console {
            host: self.cfg.consoles.spice_proxyclient_address.clone(),
            port,
            tls_port,
            internal_access_path: None,
        })
    }

    async fn get_serial_console(&self, uuid: &str) -> Result<Console> {
        if self.cfg.consoles.serial.is_none() {
            return Err(Error::NotSupported {
                operation: "get_serial_console",
            });
        }
        let live = self.live_xml(uuid).await?;
        let (host, port) = xml::serial_tcp(&live).ok_or_else(|| {
            failed(
                "get_serial_console",
                uuid,
                "the domain has no TCP serial port",
            )
        })?;
        Ok(Console {
            host,
            port,
            tls_port: None,
            internal_access_path: None,
        })
    }
}

/// libvirt's `memoryStats` tag names (`VIR_DOMAIN_MEMORY_STAT_*`, as
/// the Python binding names them).
fn memory_stat_name(tag: u32) -> Option<&'static str> {
    Some(match tag {
        0 => "swap_in",
        1 => "swap_out",
        2 => "major_fault",
        3 => "minor_fault",
        4 => "unused",
        5 => "available",
        6 => "actual",
        7 => "rss",
        8 => "usable",
        9 => "last_update",
        10 => "disk_caches",
        11 => "hugetlb_pgalloc",
        12 => "hugetlb_pgfail",
        _ => return None,
    })
}

/// nova's `get_instance_diagnostics` figures of one domain: its info,
/// per-vCPU times, and the counters of the disks and interfaces its live
/// XML names (a device whose counters libvirt cannot read is listed
/// without them, as nova does).
fn diagnostics_of(d: &Domain, virt_type: &str) -> Result<Diagnostics> {
    let state = state_of(d)?;
    let info = d.info().map_err(hv)?;
    let live = d.xml_desc(0).map_err(hv)?;
    let (disk_devs, nic_devs) = xml::io_devices(&live);
    let cpus = vcpus::vcpu_times(d, info.nr_virt_cpu)
        .unwrap_or_default()
        .into_iter()
        .map(|(id, time)| CpuDiagnostics {
            id,
            time: Some(time),
            utilisation: None,
        })
        .collect();
    let disks = disk_devs
        .into_iter()
        .map(|dev| match d.block_stats(&dev) {
            Ok(s) => DiskDiagnostics {
                device: dev,
                read_bytes: Some(s.rd_bytes),
                read_requests: Some(s.rd_req),
                write_bytes: Some(s.wr_bytes),
                write_requests: Some(s.wr_req),
                errors_count: Some(s.errs),
            },
            Err(_) => DiskDiagnostics {
                device: dev,
                ..DiskDiagnostics::default()
            },
        })
        .collect();
    let nics = nic_devs
        .into_iter()
        .map(|(mac, dev)| {
            let stats = dev.as_deref().and_then(|t| d.interface_stats(t).ok());
            match stats {
                Some(s) => NicDiagnostics {
                    device: dev,
                    mac_address: mac,
                    rx_octets: Some(s.rx_bytes),
                    rx_errors: Some(s.rx_errs),
                    rx_drop: Some(s.rx_drop),
                    rx_packets: Some(s.rx_packets),
                    tx_octets: Some(s.tx_bytes),
                    tx_errors: Some(s.tx_errs),
                    tx_drop: Some(s.tx_drop),
                    tx_packets: Some(s.tx_packets),
                },
                None => NicDiagnostics {
                    device: dev,
                    mac_address: mac,
                    ..NicDiagnostics::default()
                },
            }
        })
        .collect();
    let memory_stats = d
        .memory_stats(0)
        .map(|v| {
            v.iter()
                .filter_map(|m| memory_stat_name(m.tag).map(|n| (n.to_owned(), m.val as i64)))
                .collect()
        })
        .unwrap_or_default();
    Ok(Diagnostics {
        state,
        hypervisor: Some(virt_type.to_owned()),
        hypervisor_os: Some("linux".into()),
        memory_max_kib: Some(info.max_mem as i64),
        memory_used_kib: Some(info.memory as i64),
        memory_stats,
        cpus,
        nics,
        disks,
    })
}

#[cfg(test)]
mod tests {
    use super::xml::domain_name;
    use super::*;

    #[test]
    fn libvirt_states_map_to_nova_power_states() {
        assert_eq!(
            power_state(DomainState::Running, false),
            PowerState::Running
        );
        assert_eq!(
            power_state(DomainState::Blocked, false),
            PowerState::Running
        );
        assert_eq!(power_state(DomainState::Paused, false), PowerState::Paused);
        assert_eq!(
            power_state(DomainState::Shutoff, false),
            PowerState::Shutdown
        );
        assert_eq!(
            power_state(DomainState::Shutoff, true),
            PowerState::Suspended
        );
        assert_eq!(
            power_state(DomainState::Crashed, false),
            PowerState::Crashed
        );
        assert_eq!(domain_name("u"), "instance-u");
    }
}
