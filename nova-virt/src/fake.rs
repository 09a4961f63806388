//! [`FakeDriver`]: instances in memory, instant and deterministic, with
//! injectable faults so the services can test reschedules and recovery.
//! Small enough per node to run a thousand in one process.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::driver::{
    Capabilities, ComputeDriver, Console, CpuDiagnostics, Diagnostics, DiskDiagnostics, EventSink,
    HostResources, InjectedFile, InstanceInfo, InstanceSpec, LifecycleEvent, NicDiagnostics,
    PowerState, ResizeTarget, ResourceInventory, Transition, Vif,
};
use crate::error::{Error, Result};

/// Host resources of a fake node (nova's `FakeDriver` defaults: 1000
/// vCPUs, 800000 MiB, 600000 GiB).
#[derive(Debug, Clone, PartialEq)]
pub struct FakeConfig {
    /// Node name.
    pub hypervisor_hostname: String,
    /// CPUs.
    pub vcpus: i64,
    /// Memory (MiB).
    pub memory_mb: i64,
    /// Disk (GiB).
    pub local_gb: i64,
    /// `cpu_allocation_ratio` reported.
    pub cpu_allocation_ratio: f64,
    /// `ram_allocation_ratio` reported.
    pub ram_allocation_ratio: f64,
    /// `disk_allocation_ratio` reported.
    pub disk_allocation_ratio: f64,
    /// `reserved_host_memory_mb` (512).
    pub reserved_host_memory_mb: i64,
    /// Where the guests' consoles are said to be: host, and the VNC,
    /// SPICE (TLS: port + 1) and serial ports (nova's fake: 6969). Tests
    /// put a fake console server there.
    pub console_host: String,
    /// VNC port.
    pub vnc_port: u16,
    /// SPICE port.
    pub spice_port: u16,
    /// Serial port.
    pub serial_port: u16,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            hypervisor_hostname: "fake-mini".into(),
            vcpus: 1000,
            memory_mb: 800_000,
            local_gb: 600_000,
            cpu_allocation_ratio: 4.0,
            ram_allocation_ratio: 1.0,
            disk_allocation_ratio: 1.0,
            reserved_host_memory_mb: 512,
            console_host: "127.0.0.1".into(),
            vnc_port: 6969,
            spice_port: 6969,
            serial_port: 6969,
        }
    }
}

/// Faults to inject.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// The Nth `spawn` call (1-based) fails.
    pub fail_spawn_on_call: Option<u64>,
    /// Every `spawn` of this flavor fails.
    pub fail_spawn_for_flavor: Option<String>,
    /// Every `spawn` of this image fails.
    pub fail_spawn_for_image: Option<String>,
    /// Every operation takes this long first.
    pub delay: Option<Duration>,
    /// `spawn` "crashes" half way: the instance exists, shut off, and the
    /// call fails (compute must clean up).
    pub crash_mid_spawn: bool,
    /// Instance operations (`pause`, `suspend`, `rescue`,
    /// `set_admin_password`, ...) that fail, the instance unchanged.
    /// The moves' steps too: `prep_resize`, `migrate_disk_and_power_off`,
    /// `finish_migration`, `confirm_migration`, `finish_revert_migration`,
    /// `check_can_live_migrate_destination`, `check_can_live_migrate_source`,
    /// `pre_live_migration`, `live_migration`,
    /// `post_live_migration_at_destination`.
    pub fail_operations: Vec<String>,
    /// How long a live migration runs (unless forced to complete or
    /// aborted); none: at once.
    pub live_migration_time: Option<Duration>,
}

/// What a fake guest's console shows after its spawn: what it was
/// given (flavor, image, NICs, config drive) and how the spawn ended.
fn boot_log(spec: &InstanceSpec, running: bool) -> String {
    use std::fmt::Write as _;
    let mut log = format!("[fake] booting {} ({})\n", spec.name, spec.uuid);
    let _ = writeln!(
        log,
        "[fake] flavor {}: {} vCPU, {} MiB memory, {} GiB root disk",
        spec.flavor_name, spec.vcpus, spec.memory_mb, spec.root_gb
    );
    let _ = writeln!(log, "[fake] image {}", spec.image_id);
    if spec.network_info.is_empty() {
        log.push_str("[fake] no network interface\n");
    }
    for vif in &spec.network_info {
        let _ = writeln!(log, "[fake] network interface {}", vif.address);
    }
    if spec.config_drive.is_some() {
        log.push_str("[fake] config drive attached\n");
    }
    log.push_str(if running {
        "[fake] running\n"
    } else {
        "[fake] stopped before the end of its spawn\n"
    });
    log
}

#[derive(Debug, Clone)]
struct FakeInstance {
    state: PowerState,
    vcpus: i64,
    memory_mb: i64,
    root_gb: i64,
    console: String,
    resized_from: Option<(i64, i64, i64)>,
    /// MAC addresses of its interfaces.
    macs: Vec<String>,
    /// In rescue: the image it runs from.
    rescued_from: Option<String>,
    /// The admin password last set.
    admin_password: Option<String>,
    /// The files its last spawn injected, and its config drive's files.
    files: (Vec<InjectedFile>, Option<Vec<InjectedFile>>),
    /// The network info last injected (`inject_network_info`).
    injected_network: Option<Vec<Vif>>,
}

/// The fake hypervisor.
#[derive(Debug, Default)]
pub struct FakeDriver {
    config: FakeConfig,
    faults: Mutex<Faults>,
    instances: Mutex<BTreeMap<String, FakeInstance>>,
    spawns: AtomicU64,
    sink: Mutex<Option<Arc<dyn EventSink>>>,
    /// Running live migrations: (forced to complete, aborted).
    live: Mutex<BTreeMap<String, (bool, bool)>>,
}

impl FakeDriver {
    /// A fake node with `config`.
    pub fn new(config: FakeConfig) -> Self {
        FakeDriver {
            config,
            ..Self::default()
        }
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    /// Makes an instance vanish behind compute's back (a lost instance).
    pub fn lose_instance(&self, uuid: &str) -> bool {
        self.lock().remove(uuid).is_some()
    }

    /// Changes an instance's state behind compute's back (the guest shut
    /// itself down, crashed...), emitting the event a hypervisor would.
    pub fn set_state_externally(&self, uuid: &str, state: PowerState) -> Result<()> {
        self.with(uuid, |i| {
            i.state = state;
            Ok(())
        })?;
        let t = match state {
            PowerState::Running => Transition::Started,
            PowerState::Paused => Transition::Paused,
            PowerState::Suspended => Transition::Suspended,
            _ => Transition::Stopped,
        };
        self.emit(uuid, t);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, FakeInstance>> {
        self.instances.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The injected failure of `op`, if any.
    fn injected(&self, uuid: &str, op: &'static str) -> Result<()> {
        if self.faults().fail_operations.iter().any(|o| o == op) {
            return Err(Error::Failed {
                operation: op,
                uuid: uuid.to_owned(),
                reason: format!("injected failure of {op}"),
            });
        }
        Ok(())
    }

    /// Marks a running live migration forced or aborted.
    fn set_live(&self, uuid: &str, force: bool, abort: bool) -> Result<()> {
        let mut l = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let Some(e) = l.get_mut(uuid) else {
            return Err(Error::Failed {
                operation: if abort {
                    "live_migration_abort"
                } else {
                    "live_migration_force_complete"
                },
                uuid: uuid.to_owned(),
                reason: "no live migration in progress".into(),
            });
        };
        e.0 |= force;
        e.1 |= abort;
        Ok(())
    }

    /// The sizes of a fake guest: (vCPUs, memory MiB, root GiB, state).
    pub fn guest(&self, uuid: &str) -> Option<(i64, i64, i64, PowerState)> {
        self.lock()
            .get(uuid)
            .map(|i| (i.vcpus, i.memory_mb, i.root_gb, i.state))
    }

    /// The admin password the guest has (last spawn or
    /// `set_admin_password`).
    pub fn admin_password(&self, uuid: &str) -> Option<String> {
        self.lock().get(uuid).and_then(|i| i.admin_password.clone())
    }

    /// The files the last spawn of an instance injected (`injected_files`)
    /// and the files of its config drive, when it had one.
    pub fn spawned_files(
        &self,
        uuid: &str,
    ) -> Option<(Vec<InjectedFile>, Option<Vec<InjectedFile>>)> {
        self.lock().get(uuid).map(|i| i.files.clone())
    }

    /// The MAC addresses of a fake guest's NICs, in plug order.
    pub fn nics(&self, uuid: &str) -> Option<Vec<String>> {
        self.lock().get(uuid).map(|i| i.macs.clone())
    }

    /// The network info last injected into a fake guest
    /// (`inject_network_info`); `None` before any.
    pub fn injected_network_info(&self, uuid: &str) -> Option<Vec<Vif>> {
        self.lock()
            .get(uuid)
            .and_then(|i| i.injected_network.clone())
    }

    /// The image an instance in rescue runs from.
    pub fn rescue_image(&self, uuid: &str) -> Option<String> {
        self.lock().get(uuid).and_then(|i| i.rescued_from.clone())
    }

    async fn delay(&self) {
        if let Some(d) = self.faults().delay {
            tokio::time::sleep(d).await;
        }
    }

    fn emit(&self, uuid: &str, transition: Transition) {
        let sink = self.sink.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(s) = sink {
            s.emit(LifecycleEvent {
                uuid: uuid.to_owned(),
                transition,
            });
        }
    }

    fn with<T>(&self, uuid: &str, f: impl FnOnce(&mut FakeInstance) -> Result<T>) -> Result<T> {
        let mut g = self.lock();
        let i = g
            .get_mut(uuid)
            .ok_or_else(|| Error::InstanceNotFound(uuid.to_owned()))?;
        f(i)
    }

    /// Moves an instance from one of `from` to `to`.
    async fn transition(
        &self,
        uuid: &str,
        op: &'static str,
        from: &[PowerState],
        to: PowerState,
        event: Option<Transition>,
    ) -> Result<()> {
        self.delay().await;
        self.injected(uuid, op)?;
        self.with(uuid, |i| {
            if !from.contains(&i.state) {
                return Err(Error::InvalidState {
                    uuid: uuid.to_owned(),
                    state: i.state,
                    operation: op,
                });
            }
            i.state = to;
            i.console.push_str(&format!("[fake] {op}\n"));
            Ok(())
        })?;
        if let Some(e) = event {
            self.emit(uuid, e);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ComputeDriver for FakeDriver {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            supports_pause: true,
            supports_suspend: true,
            supports_snapshot: true,
            supports_resize: true,
            supports_live_migration: true,
            // Rescue works; this flag is the BFV rescue trait, which needs volumes.
            supports_rescue: false,
            supports_vnc_console: true,
            supports_spice_console: true,
            supports_serial_console: true,
            supports_evacuate: true,
            supports_attach_interface: true,
            supports_tagged_attach_interface: true,
            image_types: vec!["raw".into(), "qcow2".into()],
        }
    }

    fn register_event_sink(&self, sink: Arc<dyn EventSink>) {
        *self.sink.lock().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    }

    async fn init_host(&self, _host: &str) -> Result<()> {
        Ok(())
    }

    async fn host_resources(&self) -> Result<HostResources> {
        let c = &self.config;
        let (mut vcpus, mut mem, mut disk) = (0, 0, 0);
        for i in self.lock().values() {
            vcpus += i.vcpus;
            mem += i.memory_mb;
            disk += i.root_gb;
        }
        let inv = ResourceInventory::new;
        Ok(HostResources {
            hypervisor_hostname: c.hypervisor_hostname.clone(),
            hypervisor_type: "fake".into(),
            hypervisor_version: 1000,
            vcpus: c.vcpus,
            vcpus_used: vcpus,
            memory_mb: c.memory_mb,
            memory_mb_used: mem + c.reserved_host_memory_mb,
            local_gb: c.local_gb,
            local_gb_used: disk,
            cpu_info: serde_json::json!({"arch": "x86_64", "model": "fake", "vendor": "fake"}),
            supported_instances: vec![
                ["x86_64".into(), "fake".into(), "hvm".into()],
                ["i686".into(), "fake".into(), "hvm".into()],
            ],
            inventories: BTreeMap::from([
                ("VCPU".into(), inv(c.vcpus, 0, c.cpu_allocation_ratio)),
                (
                    "MEMORY_MB".into(),
                    inv(
                        c.memory_mb,
                        c.reserved_host_memory_mb,
                        c.ram_allocation_ratio,
                    ),
                ),
                (
                    "DISK_GB".into(),
                    inv(c.local_gb, 0, c.disk_allocation_ratio),
                ),
            ]),
            traits: self.capabilities().as_traits(),
        })
    }

    async fn list_instance_uuids(&self) -> Result<Vec<String>> {
        Ok(self.lock().keys().cloned().collect())
    }

    async fn get_info(&self, uuid: &str) -> Result<InstanceInfo> {
        self.with(uuid, |i| {
            Ok(InstanceInfo {
                state: i.state,
                internal_id: (i.state == PowerState::Running).then(|| uuid.to_owned()),
            })
        })
    }

    async fn spawn(&self, spec: &InstanceSpec) -> Result<()> {
        self.delay().await;
        let n = self.spawns.fetch_add(1, Ordering::SeqCst) + 1;
        let f = self.faults();
        let fail = |reason: String| Error::Failed {
            operation: "spawn",
            uuid: spec.uuid.clone(),
            reason,
        };
        if f.fail_spawn_on_call == Some(n) {
            return Err(fail(format!("injected failure on spawn call {n}")));
        }
        if f.fail_spawn_for_flavor.as_deref() == Some(spec.flavor_name.as_str()) {
            return Err(fail(format!(
                "injected failure for flavor {}",
                spec.flavor_name
            )));
        }
        if f.fail_spawn_for_image.as_deref() == Some(spec.image_id.as_str()) {
            return Err(fail(format!(
                "injected failure for image {}",
                spec.image_id
            )));
        }
        {
            let mut g = self.lock();
            if g.contains_key(&spec.uuid) {
                return Err(Error::InstanceExists(spec.uuid.clone()));
            }
            g.insert(
                spec.uuid.clone(),
                FakeInstance {
                    state: if f.crash_mid_spawn {
                        PowerState::Shutdown
                    } else {
                        PowerState::Running
                    },
                    vcpus: i64::from(spec.vcpus),
                    memory_mb: spec.memory_mb as i64,
                    root_gb: spec.root_gb as i64,
                    console: boot_log(spec, !f.crash_mid_spawn),
                    resized_from: None,
                    macs: spec
                        .network_info
                        .iter()
                        .map(|v| v.address.clone())
                        .collect(),
                    rescued_from: None,
                    admin_password: spec.admin_password.clone(),
                    files: (spec.injected_files.clone(), spec.config_drive.clone()),
                    injected_network: None,
                },
            );
        }
        if f.crash_mid_spawn {
            return Err(fail("injected crash in the middle of spawn".into()));
        }
        self.emit(&spec.uuid, Transition::Started);
        Ok(())
    }

    async fn destroy(&self, uuid: &str) -> Result<()> {
        self.delay().await;
        let was = self
            .lock()
            .remove(uuid)
            .ok_or_else(|| Error::InstanceNotFound(uuid.to_owned()))?;
        if was.state != PowerState::Shutdown {
            self.emit(uuid, Transition::Stopped);
        }
        Ok(())
    }

    async fn reboot(&self, uuid: &str, hard: bool) -> Result<()> {
        let from: &[PowerState] = if hard {
            &[
                PowerState::Running,
                PowerState::Shutdown,
                PowerState::Crashed,
                PowerState::Paused,
            ]
        } else {
            &[PowerState::Running]
        };
        self.transition(
            uuid,
            "reboot",
            from,
            PowerState::Running,
            Some(Transition::Started),
        )
        .await
    }

    async fn power_off(&self, uuid: &str, _timeout: Duration) -> Result<()> {
        self.transition(
            uuid,
            "power_off",
            &[PowerState::Running, PowerState::Paused, PowerState::Crashed],
            PowerState::Shutdown,
            Some(Transition::Stopped),
        )
        .await
    }

    async fn power_on(&self, uuid: &str) -> Result<()> {
        self.transition(
            uuid,
            "power_on",
            &[PowerState::Shutdown, PowerState::Crashed],
            PowerState::Running,
            Some(Transition::Started),
        )
        .await
    }

    async fn pause(&self, uuid: &str) -> Result<()> {
        self.transition(
            uuid,
            "pause",
            &[PowerState::Running],
            PowerState::Paused,
            Some(Transition::Paused),
        )
        .await
    }

    async fn unpause(&self, uuid: &str) -> Result<()> {
        self.transition(
            uuid,
            "unpause",
            &[PowerState::Paused],
            PowerState::Running,
            Some(Transition::Resumed),
        )
        .await
    }

    async fn suspend(&self, uuid: &str) -> Result<()> {
        self.transition(
            uuid,
            "suspend",
            &[PowerState::Running, PowerState::Paused],
            PowerState::Suspended,
            Some(Transition::Suspended),
        )
        .await
    }

    async fn resume(&self, uuid: &str) -> Result<()> {
        self.transition(
            uuid,
            "resume",
            &[PowerState::Suspended],
            PowerState::Running,
            Some(Transition::Resumed),
        )
        .await
    }

    async fn get_console_output(&self, uuid: &str) -> Result<String> {
        self.with(uuid, |i| Ok(i.console.clone()))
    }

    async fn get_vnc_console(&self, uuid: &str) -> Result<Console> {
        self.with(uuid, |_| {
            Ok(Console {
                host: self.config.console_host.clone(),
                port: self.config.vnc_port,
                tls_port: None,
                internal_access_path: None,
            })
        })
    }

    async fn get_spice_console(&self, uuid: &str) -> Result<Console> {
        self.with(uuid, |_| {
            Ok(Console {
                host: self.config.console_host.clone(),
                port: self.config.spice_port,
                tls_port: self.config.spice_port.checked_add(1),
                internal_access_path: None,
            })
        })
    }

    async fn get_serial_console(&self, uuid: &str) -> Result<Console> {
        self.with(uuid, |_| {
            Ok(Console {
                host: self.config.console_host.clone(),
                port: self.config.serial_port,
                tls_port: None,
                internal_access_path: None,
            })
        })
    }

    /// The fake disk: a raw image naming the instance and its size.
    async fn snapshot(&self, uuid: &str, dest: &std::path::Path) -> Result<String> {
        self.delay().await;
        self.injected(uuid, "snapshot")?;
        let text = self.with(uuid, |i| {
            Ok(format!("fake disk of instance {uuid}: {} GiB\n", i.root_gb))
        })?;
        std::fs::write(dest, text.as_bytes()).map_err(|e| Error::Failed {
            operation: "snapshot",
            uuid: uuid.to_owned(),
            reason: format!("{}: {e}", dest.display()),
        })?;
        Ok("raw".into())
    }

    async fn prep_resize(&self, spec: &InstanceSpec) -> Result<()> {
        self.delay().await;
        self.injected(&spec.uuid, "prep_resize")
    }

    async fn migrate_disk_and_power_off(
        &self,
        uuid: &str,
        _dest: &str,
        target: &ResizeTarget,
    ) -> Result<()> {
        self.delay().await;
        self.injected(uuid, "migrate_disk_and_power_off")?;
        self.with(uuid, |i| {
            // As nova's libvirt driver: a root disk is never shrunk.
            if (target.root_gb as i64) < i.root_gb {
                return Err(Error::ResizeRefused {
                    uuid: uuid.to_owned(),
                    reason: "Unable to resize disk down.".into(),
                });
            }
            i.resized_from = Some((i.vcpus, i.memory_mb, i.root_gb));
            i.state = PowerState::Shutdown;
            i.console.push_str("[fake] migrate_disk_and_power_off\n");
            Ok(())
        })?;
        self.emit(uuid, Transition::Stopped);
        Ok(())
    }

    async fn finish_migration(&self, spec: &InstanceSpec, power_on: bool) -> Result<()> {
        self.delay().await;
        self.injected(&spec.uuid, "finish_migration")?;
        let state = if power_on {
            PowerState::Running
        } else {
            PowerState::Shutdown
        };
        {
            let mut g = self.lock();
            match g.get_mut(&spec.uuid) {
                // A same-host resize: the same guest, resized.
                Some(i) => {
                    i.vcpus = i64::from(spec.vcpus);
                    i.memory_mb = spec.memory_mb as i64;
                    i.root_gb = spec.root_gb as i64;
                    i.state = state;
                }
                None => {
                    g.insert(
                        spec.uuid.clone(),
                        FakeInstance {
                            state,
                            vcpus: i64::from(spec.vcpus),
                            memory_mb: spec.memory_mb as i64,
                            root_gb: spec.root_gb as i64,
                            console: format!("[fake] migrated in {} ({})\n", spec.name, spec.uuid),
                            resized_from: None,
                            macs: Vec::new(),
                            rescued_from: None,
                            admin_password: None,
                            files: Default::default(),
                            injected_network: None,
                        },
                    );
                }
            }
        }
        if power_on {
            self.emit(&spec.uuid, Transition::Started);
        }
        Ok(())
    }

    async fn confirm_migration(&self, uuid: &str, same_host: bool) -> Result<()> {
        self.delay().await;
        self.injected(uuid, "confirm_migration")?;
        if same_host {
            return self.with(uuid, |i| {
                i.resized_from = None;
                Ok(())
            });
        }
        // The source's copy goes (already gone is fine: nothing to clean).
        self.lock().remove(uuid);
        Ok(())
    }

    async fn finish_revert_migration(&self, spec: &InstanceSpec, power_on: bool) -> Result<()> {
        self.delay().await;
        self.injected(&spec.uuid, "finish_revert_migration")?;
        self.with(&spec.uuid, |i| {
            if let Some((v, m, d)) = i.resized_from.take() {
                (i.vcpus, i.memory_mb, i.root_gb) = (v, m, d);
            }
            if power_on {
                i.state = PowerState::Running;
            }
            Ok(())
        })?;
        if power_on {
            self.emit(&spec.uuid, Transition::Started);
        }
        Ok(())
    }

    async fn check_can_live_migrate_destination(
        &self,
        spec: &InstanceSpec,
        _block_migration: bool,
    ) -> Result<()> {
        self.delay().await;
        self.injected(&spec.uuid, "check_can_live_migrate_destination")?;
        if self.lock().contains_key(&spec.uuid) {
            return Err(Error::InstanceExists(spec.uuid.clone()));
        }
        Ok(())
    }

    async fn check_can_live_migrate_source(&self, uuid: &str) -> Result<()> {
        self.injected(uuid, "check_can_live_migrate_source")?;
        self.with(uuid, |_| Ok(()))
    }

    async fn pre_live_migration(&self, spec: &InstanceSpec) -> Result<()> {
        self.delay().await;
        self.injected(&spec.uuid, "pre_live_migration")?;
        let mut g = self.lock();
        // The incoming guest: defined, paused until the memory arrives.
        g.entry(spec.uuid.clone()).or_insert_with(|| FakeInstance {
            state: PowerState::Paused,
            vcpus: i64::from(spec.vcpus),
            memory_mb: spec.memory_mb as i64,
            root_gb: spec.root_gb as i64,
            console: format!("[fake] incoming live migration of {}\n", spec.uuid),
            resized_from: None,
            macs: Vec::new(),
            rescued_from: None,
            admin_password: None,
            files: Default::default(),
            injected_network: None,
        });
        Ok(())
    }

    async fn live_migration(&self, uuid: &str, _dest: &str) -> Result<()> {
        self.delay().await;
        self.injected(uuid, "live_migration")?;
        self.with(uuid, |_| Ok(()))?;
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uuid.to_owned(), (false, false));
        let started = std::time::Instant::now();
        let total = self.faults().live_migration_time.unwrap_or_default();
        let outcome = loop {
            let (forced, aborted) = self
                .live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(uuid)
                .copied()
                .unwrap_or_default();
            if aborted {
                break Err(Error::Failed {
                    operation: "live_migration",
                    uuid: uuid.to_owned(),
                    reason: "Migration aborted by request".into(),
                });
            }
            if forced || started.elapsed() >= total {
                break Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uuid);
        outcome?;
        // The guest runs on the destination now.
        self.lock().remove(uuid);
        Ok(())
    }

    async fn post_live_migration_at_destination(&self, spec: &InstanceSpec) -> Result<()> {
        self.injected(&spec.uuid, "post_live_migration_at_destination")?;
        self.with(&spec.uuid, |i| {
            i.state = PowerState::Running;
            Ok(())
        })?;
        self.emit(&spec.uuid, Transition::Resumed);
        Ok(())
    }

    async fn rollback_live_migration_at_destination(&self, uuid: &str) -> Result<()> {
        self.lock().remove(uuid);
        Ok(())
    }

    async fn live_migration_force_complete(&self, uuid: &str) -> Result<()> {
        self.set_live(uuid, true, false)
    }

    async fn live_migration_abort(&self, uuid: &str) -> Result<()> {
        self.set_live(uuid, false, true)
    }

    /// The fake guest's figures: its state, one entry per vCPU (a fake
    /// vCPU runs nothing: 0 ns), its flavor's memory (all of it in use),
    /// its root disk (`vda`, no I/O) and its interfaces (no traffic).
    async fn get_instance_diagnostics(&self, uuid: &str) -> Result<Diagnostics> {
        self.with(uuid, |i| {
            Ok(Diagnostics {
                state: i.state,
                hypervisor: Some("fake".into()),
                hypervisor_os: Some(std::env::consts::OS.into()),
                memory_max_kib: Some(i.memory_mb * 1024),
                memory_used_kib: Some(i.memory_mb * 1024),
                memory_stats: BTreeMap::new(),
                cpus: (0..i.vcpus)
                    .map(|id| CpuDiagnostics {
                        id,
                        time: Some(0),
                        utilisation: None,
                    })
                    .collect(),
                nics: i
                    .macs
                    .iter()
                    .map(|m| NicDiagnostics {
                        mac_address: Some(m.clone()),
                        rx_octets: Some(0),
                        rx_errors: Some(0),
                        rx_drop: Some(0),
                        rx_packets: Some(0),
                        tx_octets: Some(0),
                        tx_errors: Some(0),
                        tx_drop: Some(0),
                        tx_packets: Some(0),
                        ..NicDiagnostics::default()
                    })
                    .collect(),
                disks: vec![DiskDiagnostics {
                    device: "vda".into(),
                    read_bytes: Some(0),
                    read_requests: Some(0),
                    write_bytes: Some(0),
                    write_requests: Some(0),
                    errors_count: Some(0),
                }],
            })
        })
    }

    async fn rescue(&self, spec: &InstanceSpec, rescue_image: &str) -> Result<()> {
        self.delay().await;
        self.injected(&spec.uuid, "rescue")?;
        self.with(&spec.uuid, |i| {
            if i.rescued_from.is_some() {
                return Err(Error::InvalidState {
                    uuid: spec.uuid.clone(),
                    state: i.state,
                    operation: "rescue",
                });
            }
            i.rescued_from = Some(rescue_image.to_owned());
            i.state = PowerState::Running;
            i.console
                .push_str(&format!("[fake] rescue from image {rescue_image}\n"));
            Ok(())
        })?;
        self.emit(&spec.uuid, Transition::Started);
        Ok(())
    }

    async fn unrescue(&self, uuid: &str) -> Result<()> {
        self.delay().await;
        self.injected(uuid, "unrescue")?;
        self.with(uuid, |i| {
            if i.rescued_from.take().is_none() {
                return Err(Error::InvalidState {
                    uuid: uuid.to_owned(),
                    state: i.state,
                    operation: "unrescue",
                });
            }
            i.state = PowerState::Running;
            i.console.push_str("[fake] unrescue\n");
            Ok(())
        })?;
        self.emit(uuid, Transition::Started);
        Ok(())
    }

    async fn set_admin_password(&self, uuid: &str, user: &str, password: &str) -> Result<()> {
        self.delay().await;
        self.injected(uuid, "set_admin_password")?;
        self.with(uuid, |i| {
            if i.state != PowerState::Running {
                return Err(Error::InvalidState {
                    uuid: uuid.to_owned(),
                    state: i.state,
                    operation: "set_admin_password",
                });
            }
            i.admin_password = Some(password.to_owned());
            i.console
                .push_str(&format!("[fake] password of {user} changed\n"));
            Ok(())
        })
    }

    /// The NIC appears in the guest (its MAC among the guest's NICs, a
    /// console line); the MAC already there is refused as libvirt does.
    async fn attach_interface(&self, uuid: &str, vif: &Vif) -> Result<()> {
        self.delay().await;
        self.injected(uuid, "attach_interface")?;
        self.with(uuid, |i| {
            if i.macs.contains(&vif.address) {
                return Err(Error::Failed {
                    operation: "attach_interface",
                    uuid: uuid.to_owned(),
                    reason: format!("a NIC with MAC {} is already attached", vif.address),
                });
            }
            i.macs.push(vif.address.clone());
            i.console.push_str(&format!(
                "[fake] network interface {} attached\n",
                vif.address
            ));
            Ok(())
        })
    }

    /// The NIC leaves the guest; one the guest does not have is an error.
    async fn detach_interface(&self, uuid: &str, vif: &Vif) -> Result<()> {
        self.delay().await;
        self.injected(uuid, "detach_interface")?;
        self.with(uuid, |i| {
            let before = i.macs.len();
            i.macs.retain(|m| *m != vif.address);
            if i.macs.len() == before {
                return Err(Error::Failed {
                    operation: "detach_interface",
                    uuid: uuid.to_owned(),
                    reason: format!("no NIC with MAC {}", vif.address),
                });
            }
            i.console.push_str(&format!(
                "[fake] network interface {} detached\n",
                vif.address
            ));
            Ok(())
        })
    }

    /// Records the VIFs (a console line with their MACs), in any power
    /// state: nova's drivers that implement it write the guest's files.
    async fn inject_network_info(&self, uuid: &str, vifs: &[Vif]) -> Result<()> {
        self.delay().await;
        self.injected(uuid, "inject_network_info")?;
        self.with(uuid, |i| {
            let macs: Vec<&str> = vifs.iter().map(|v| v.address.as_str()).collect();
            i.console.push_str(&format!(
                "[fake] network info injected: {}\n",
                macs.join(", ")
            ));
            i.injected_network = Some(vifs.to_vec());
            Ok(())
        })
    }

    async fn trigger_crash_dump(&self, uuid: &str) -> Result<()> {
        self.delay().await;
        self.injected(uuid, "trigger_crash_dump")?;
        self.with(uuid, |i| {
            if i.state != PowerState::Running {
                return Err(Error::InvalidState {
                    uuid: uuid.to_owned(),
                    state: i.state,
                    operation: "trigger_crash_dump",
                });
            }
            i.console.push_str("[fake] NMI received: crash dump\n");
            Ok(())
        })
    }

    // The host-level operations answer as nova's fake driver does (it has
    // no host to act on); its uptime is this machine's, where it runs.
    async fn get_host_uptime(&self) -> Result<String> {
        crate::driver::local_host_uptime().await
    }

    async fn set_host_enabled(&self, enabled: bool) -> Result<String> {
        Ok(if enabled { "enabled" } else { "disabled" }.to_owned())
    }

    async fn host_maintenance_mode(&self, _host: &str, mode: bool) -> Result<String> {
        Ok(if mode {
            "on_maintenance"
        } else {
            "off_maintenance"
        }
        .to_owned())
    }

    async fn host_power_action(&self, action: &str) -> Result<String> {
        Ok(action.to_owned())
    }
}
