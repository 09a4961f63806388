//! The `ComputeDriver` contract: what nova-compute asks of a hypervisor.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Nova's power states (`nova.compute.power_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum PowerState {
    /// Unknown / no state.
    NoState = 0,
    /// Running.
    Running = 1,
    /// Paused (vCPUs stopped, memory kept).
    Paused = 3,
    /// Shut down.
    Shutdown = 4,
    /// Crashed.
    Crashed = 6,
    /// Suspended (memory saved to disk).
    Suspended = 7,
}

impl PowerState {
    /// Nova's integer code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Nova's name (`power_state.STATE_MAP`).
    pub fn nova_name(self) -> &'static str {
        match self {
            PowerState::NoState => "pending",
            PowerState::Running => "running",
            PowerState::Paused => "paused",
            PowerState::Shutdown => "shutdown",
            PowerState::Crashed => "crashed",
            PowerState::Suspended => "suspended",
        }
    }
}

/// A file to inject, as nova passes it (`injected_files`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectedFile {
    /// Path in the guest.
    pub path: String,
    /// Contents.
    pub contents: Vec<u8>,
}

/// A block device of the instance (`block_device_info`), minimal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDevice {
    /// Device name (`vdb`).
    pub device_name: String,
    /// Local path or connection of the volume.
    pub source: String,
    /// Boot index (0 = boot disk).
    pub boot_index: Option<i32>,
}

/// A network interface of the instance (one VIF of nova's `network_info`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vif {
    /// Port id.
    pub id: String,
    /// MAC address.
    pub address: String,
    /// nova's VIF type (`bridge`, `ovs`, ...); empty when unknown.
    #[serde(default)]
    pub vif_type: String,
    /// Bridge or network to plug into, if any.
    pub bridge: Option<String>,
    /// The host device (`"tap"` + the first 11 characters of the port id).
    #[serde(default)]
    pub devname: Option<String>,
    /// The port's fixed addresses.
    #[serde(default)]
    pub fixed_ips: Vec<String>,
    /// The network's MTU, when known.
    #[serde(default)]
    pub mtu: Option<u32>,
}

/// What `spawn` needs: the instance, its flavor, its image, and what nova passes along.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// Instance uuid (the domain's uuid and name).
    pub uuid: String,
    /// Display name.
    pub name: String,
    /// The hypervisor's name for it (nova's `instance.name`, from
    /// `[DEFAULT] instance_name_template`); empty: `instance-<uuid>`.
    pub instance_name: String,
    /// Flavor name (fault injection keys on it).
    pub flavor_name: String,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory (MiB).
    pub memory_mb: u64,
    /// Root disk (GiB).
    pub root_gb: u64,
    /// Image id.
    pub image_id: String,
    /// Image properties (`hw_disk_bus`, `hw_vif_model`, `os_type`, ...).
    pub image_properties: BTreeMap<String, String>,
    /// Local path of the image (base disk), when the image is a disk.
    pub image_path: Option<String>,
    /// Kernel for direct kernel boot (`kernel_id`).
    pub kernel_path: Option<String>,
    /// Ramdisk for direct kernel boot (`ramdisk_id`).
    pub ramdisk_path: Option<String>,
    /// Kernel command line for direct kernel boot.
    pub kernel_cmdline: Option<String>,
    /// Networks.
    pub network_info: Vec<Vif>,
    /// Volumes.
    pub block_devices: Vec<BlockDevice>,
    /// Admin password, if any.
    pub admin_password: Option<String>,
    /// Files to inject.
    pub injected_files: Vec<InjectedFile>,
    /// User data.
    pub user_data: Option<String>,
    /// The config drive's files (paths such as
    /// `openstack/latest/meta_data.json`), when the instance has one: the
    /// driver makes them an ISO 9660 volume labelled `config-2` and
    /// attaches it.
    pub config_drive: Option<Vec<InjectedFile>>,
}

/// State of one instance on the hypervisor (`get_info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// Power state.
    pub state: PowerState,
    /// Hypervisor's id for it (domain id), if running.
    pub internal_id: Option<String>,
}

/// One resource class as the driver reports it for Placement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceInventory {
    /// Total.
    pub total: i64,
    /// Reserved for the host.
    pub reserved: i64,
    /// Largest single allocation.
    pub max_unit: i64,
    /// Overcommit ratio.
    pub allocation_ratio: f64,
}

impl ResourceInventory {
    /// `total` units, `reserved` of them for the host, overcommitted by
    /// `allocation_ratio`; one allocation may take them all.
    pub fn new(total: i64, reserved: i64, allocation_ratio: f64) -> Self {
        ResourceInventory {
            total,
            reserved,
            max_unit: total,
            allocation_ratio,
        }
    }
}

/// What the host offers (`get_available_resource` + `update_provider_tree`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostResources {
    /// Hypervisor host name (the node).
    pub hypervisor_hostname: String,
    /// Hypervisor type (`QEMU`, `fake`).
    pub hypervisor_type: String,
    /// Hypervisor version, nova's integer form (7.2.0 = 7002000).
    pub hypervisor_version: i64,
    /// CPUs.
    pub vcpus: i64,
    /// CPUs in use.
    pub vcpus_used: i64,
    /// Memory (MiB).
    pub memory_mb: i64,
    /// Memory in use (MiB).
    pub memory_mb_used: i64,
    /// Disk (GiB).
    pub local_gb: i64,
    /// Disk in use (GiB).
    pub local_gb_used: i64,
    /// `cpu_info` JSON.
    pub cpu_info: serde_json::Value,
    /// `[arch, hv_type, vm_mode]` the host runs (ImagePropertiesFilter).
    pub supported_instances: Vec<[String; 3]>,
    /// Inventories by resource class (VCPU, MEMORY_MB, DISK_GB).
    pub inventories: BTreeMap<String, ResourceInventory>,
    /// Traits the driver's capabilities imply (`COMPUTE_*`).
    pub traits: Vec<String>,
}

/// Where a console is (nova's `ConsoleVNC` / `ConsoleSpice` / `ConsoleSerial`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Console {
    /// Host the proxy connects to.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS port (SPICE), if any.
    pub tls_port: Option<u16>,
    /// Path on the host, for consoles reached by path.
    pub internal_access_path: Option<String>,
}

/// What a driver supports (nova's `capabilities` dict); compute checks it
/// before accepting a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Pause / unpause.
    pub supports_pause: bool,
    /// Suspend / resume.
    pub supports_suspend: bool,
    /// Snapshots.
    pub supports_snapshot: bool,
    /// Resize and cold migration.
    pub supports_resize: bool,
    /// Live migration.
    pub supports_live_migration: bool,
    /// Rescue.
    pub supports_rescue: bool,
    /// VNC consoles.
    pub supports_vnc_console: bool,
    /// SPICE consoles.
    pub supports_spice_console: bool,
    /// Serial consoles.
    pub supports_serial_console: bool,
    /// Evacuate.
    pub supports_evacuate: bool,
    /// Interface hot-plug (`attach_interface` / `detach_interface`).
    #[serde(default)]
    pub supports_attach_interface: bool,
    /// A tag on an attached interface (device metadata).
    #[serde(default)]
    pub supports_tagged_attach_interface: bool,
    /// Image types that can be booted (`qcow2`, `raw`, `aki`, ...).
    pub image_types: Vec<String>,
}

impl Capabilities {
    /// The traits these capabilities imply (nova's `capabilities_as_traits`).
    pub fn as_traits(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .image_types
            .iter()
            .map(|i| format!("COMPUTE_IMAGE_TYPE_{}", i.to_ascii_uppercase()))
            .collect();
        if self.supports_rescue {
            t.push("COMPUTE_RESCUE_BFV".into());
        }
        t.sort();
        t
    }
}

/// A lifecycle transition the hypervisor reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transition {
    /// The instance started.
    Started,
    /// The instance stopped.
    Stopped,
    /// The instance was paused.
    Paused,
    /// The instance was resumed.
    Resumed,
    /// The instance was suspended.
    Suspended,
}

/// A lifecycle event (`nova.virt.event.LifecycleEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleEvent {
    /// The instance.
    pub uuid: String,
    /// What happened.
    pub transition: Transition,
}

/// Where a driver sends lifecycle events (compute syncs power states from them).
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// One event; must not block.
    fn emit(&self, event: LifecycleEvent);
}

/// Recorded instance sizes for a resize (`migrate_disk_and_power_off`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResizeTarget {
    /// New vCPUs.
    pub vcpus: u32,
    /// New memory (MiB).
    pub memory_mb: u64,
    /// New root disk (GiB).
    pub root_gb: u64,
}

/// One vCPU's figures (`Diagnostics`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuDiagnostics {
    /// vCPU number.
    pub id: i64,
    /// CPU time used (ns).
    pub time: Option<i64>,
    /// Utilisation (%), when the hypervisor tells.
    pub utilisation: Option<i64>,
}

/// One network interface's counters (`Diagnostics`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NicDiagnostics {
    /// The host-side device (`tap…`), when it has one.
    pub device: Option<String>,
    /// MAC address.
    pub mac_address: Option<String>,
    /// Bytes received.
    pub rx_octets: Option<i64>,
    /// Receive errors.
    pub rx_errors: Option<i64>,
    /// Received packets dropped.
    pub rx_drop: Option<i64>,
    /// Packets received.
    pub rx_packets: Option<i64>,
    /// Bytes sent.
    pub tx_octets: Option<i64>,
    /// Send errors.
    pub tx_errors: Option<i64>,
    /// Sent packets dropped.
    pub tx_drop: Option<i64>,
    /// Packets sent.
    pub tx_packets: Option<i64>,
}

/// One disk's counters (`Diagnostics`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskDiagnostics {
    /// The guest's device name (`vda`).
    pub device: String,
    /// Bytes read.
    pub read_bytes: Option<i64>,
    /// Read requests.
    pub read_requests: Option<i64>,
    /// Bytes written.
    pub write_bytes: Option<i64>,
    /// Write requests.
    pub write_requests: Option<i64>,
    /// Errors.
    pub errors_count: Option<i64>,
}

/// What the hypervisor tells of one instance (nova's `Diagnostics`, less
/// what the compute manager knows itself: uptime and config drive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Power state.
    pub state: PowerState,
    /// The hypervisor (`[libvirt] virt_type`, `fake`).
    pub hypervisor: Option<String>,
    /// The hypervisor's OS.
    pub hypervisor_os: Option<String>,
    /// Maximum memory (KiB).
    pub memory_max_kib: Option<i64>,
    /// Memory in use (KiB).
    pub memory_used_kib: Option<i64>,
    /// The hypervisor's memory statistics by name (libvirt's
    /// `memoryStats`: `actual`, `rss`, ...), for the driver-specific format.
    pub memory_stats: BTreeMap<String, i64>,
    /// vCPUs.
    pub cpus: Vec<CpuDiagnostics>,
    /// Network interfaces.
    pub nics: Vec<NicDiagnostics>,
    /// Disks.
    pub disks: Vec<DiskDiagnostics>,
}

fn unsupported<T>(op: &'static str) -> Result<T> {
    Err(Error::NotSupported { operation: op })
}

/// The hypervisor driver contract (nova's `ComputeDriver`). Operations a
/// driver lacks answer [`Error::NotSupported`]; [`ComputeDriver::capabilities`]
/// tells what it supports.
#[async_trait::async_trait]
pub trait ComputeDriver: Send + Sync + std::fmt::Debug {
    /// Driver name (`fake`, `libvirt`).
    fn name(&self) -> &'static str;
    /// What it supports.
    fn capabilities(&self) -> Capabilities;
    /// Where lifecycle events go (set once at start-up).
    fn register_event_sink(&self, sink: Arc<dyn EventSink>);
    /// Prepares the host (connects to the hypervisor, checks it).
    async fn init_host(&self, host: &str) -> Result<()>;
    /// Host resources, usage and inventories.
    async fn host_resources(&self) -> Result<HostResources>;
    /// Instance uuids on the host.
    async fn list_instance_uuids(&self) -> Result<Vec<String>>;
    /// Whether the instance exists.
    async fn instance_exists(&self, uuid: &str) -> Result<bool> {
        Ok(self.list_instance_uuids().await?.iter().any(|u| u == uuid))
    }
    /// Power state of an instance.
    async fn get_info(&self, uuid: &str) -> Result<InstanceInfo>;
    /// Creates and starts an instance.
    async fn spawn(&self, spec: &InstanceSpec) -> Result<()>;
    /// Stops and removes an instance (and its local disks).
    async fn destroy(&self, uuid: &str) -> Result<()>;
    /// Reboots: soft (guest shutdown then start) or hard.
    async fn reboot(&self, uuid: &str, hard: bool) -> Result<()>;
    /// Powers off, asking the guest first for up to `clean_shutdown_timeout`.
    async fn power_off(&self, uuid: &str, clean_shutdown_timeout: Duration) -> Result<()>;
    /// Powers on.
    async fn power_on(&self, uuid: &str) -> Result<()>;
    /// Pauses.
    async fn pause(&self, _uuid: &str) -> Result<()> {
        unsupported("pause")
    }
    /// Unpauses.
    async fn unpause(&self, _uuid: &str) -> Result<()> {
        unsupported("unpause")
    }
    /// Suspends (memory to disk).
    async fn suspend(&self, _uuid: &str) -> Result<()> {
        unsupported("suspend")
    }
    /// Resumes a suspended instance.
    async fn resume(&self, _uuid: &str) -> Result<()> {
        unsupported("resume")
    }
    /// The console log.
    async fn get_console_output(&self, _uuid: &str) -> Result<String> {
        unsupported("get_console_output")
    }
    /// The VNC console.
    async fn get_vnc_console(&self, _uuid: &str) -> Result<Console> {
        unsupported("get_vnc_console")
    }
    /// The SPICE console.
    async fn get_spice_console(&self, _uuid: &str) -> Result<Console> {
        unsupported("get_spice_console")
    }
    /// The serial console.
    async fn get_serial_console(&self, _uuid: &str) -> Result<Console> {
        unsupported("get_serial_console")
    }
    /// Snapshots the instance's root disk into the file `dest` (nova's
    /// `snapshot`, before the upload); returns the snapshot's disk format
    /// (`qcow2`, `raw`).
    async fn snapshot(&self, _uuid: &str, _dest: &std::path::Path) -> Result<String> {
        unsupported("snapshot")
    }
    /// Resize/cold migration, on the destination before anything moves:
    /// whether this host takes the instance at its new size (nova's
    /// resize claim; a refusal reschedules).
    async fn prep_resize(&self, _spec: &InstanceSpec) -> Result<()> {
        unsupported("prep_resize")
    }
    /// Resize/cold migration, on the source: power the guest off and
    /// prepare its disk for `target` on host `dest` (nova's
    /// `migrate_disk_and_power_off`). A smaller root disk is refused
    /// ([`Error::ResizeRefused`]: the instance stays as it was).
    async fn migrate_disk_and_power_off(
        &self,
        _uuid: &str,
        _dest: &str,
        _target: &ResizeTarget,
    ) -> Result<()> {
        unsupported("migrate_disk_and_power_off")
    }
    /// Resize/cold migration, on the destination: the guest at its new
    /// size (created here, or the same guest on a same-host resize),
    /// started when `power_on`.
    async fn finish_migration(&self, _spec: &InstanceSpec, _power_on: bool) -> Result<()> {
        unsupported("finish_migration")
    }
    /// Confirm, on the source: drop what a revert would need; the guest
    /// itself goes unless the move stayed on this host.
    async fn confirm_migration(&self, _uuid: &str, _same_host: bool) -> Result<()> {
        unsupported("confirm_migration")
    }
    /// Revert, on the source: the guest back at its old size, started
    /// when `power_on`.
    async fn finish_revert_migration(&self, _spec: &InstanceSpec, _power_on: bool) -> Result<()> {
        unsupported("finish_revert_migration")
    }
    /// Live migration, on the destination: can it receive the guest.
    async fn check_can_live_migrate_destination(
        &self,
        _spec: &InstanceSpec,
        _block_migration: bool,
    ) -> Result<()> {
        unsupported("check_can_live_migrate_destination")
    }
    /// Live migration, on the source: can the guest leave.
    async fn check_can_live_migrate_source(&self, _uuid: &str) -> Result<()> {
        unsupported("check_can_live_migrate_source")
    }
    /// Live migration, on the destination: prepare for the incoming guest.
    async fn pre_live_migration(&self, _spec: &InstanceSpec) -> Result<()> {
        unsupported("pre_live_migration")
    }
    /// Live migration to `dest`, run on the source; returns when the
    /// guest runs there (or fails, the guest still here).
    async fn live_migration(&self, _uuid: &str, _dest: &str) -> Result<()> {
        unsupported("live_migration")
    }
    /// Live migration, on the destination: the guest is now here.
    async fn post_live_migration_at_destination(&self, _spec: &InstanceSpec) -> Result<()> {
        unsupported("post_live_migration_at_destination")
    }
    /// Live migration failed: the destination drops what it prepared.
    async fn rollback_live_migration_at_destination(&self, _uuid: &str) -> Result<()> {
        unsupported("rollback_live_migration_at_destination")
    }
    /// Completes a running live migration at once (the guest paused).
    async fn live_migration_force_complete(&self, _uuid: &str) -> Result<()> {
        unsupported("live_migration_force_complete")
    }
    /// Aborts a running live migration.
    async fn live_migration_abort(&self, _uuid: &str) -> Result<()> {
        unsupported("live_migration_abort")
    }
    /// Rescue: boot the rescue image with the root disk attached.
    async fn rescue(&self, _spec: &InstanceSpec, _rescue_image: &str) -> Result<()> {
        unsupported("rescue")
    }
    /// Leave rescue.
    async fn unrescue(&self, _uuid: &str) -> Result<()> {
        unsupported("unrescue")
    }
    /// The instance's figures (nova's `get_instance_diagnostics`; the
    /// compute also renders its driver-specific `get_diagnostics` from them).
    async fn get_instance_diagnostics(&self, _uuid: &str) -> Result<Diagnostics> {
        unsupported("get_instance_diagnostics")
    }

    /// Sets the guest's admin password (`user`: the image's
    /// `os_admin_user`, else `root`); [`Error::AgentNotEnabled`] when the
    /// guest has no agent to do it.
    async fn set_admin_password(&self, _uuid: &str, _user: &str, _password: &str) -> Result<()> {
        unsupported("set_admin_password")
    }
    /// Triggers a crash dump in the guest (an NMI).
    async fn trigger_crash_dump(&self, _uuid: &str) -> Result<()> {
        unsupported("trigger_crash_dump")
    }
    /// Hot-plugs `vif` into the instance (nova's `attach_interface`).
    async fn attach_interface(&self, _uuid: &str, _vif: &Vif) -> Result<()> {
        unsupported("attach_interface")
    }
    /// Hot-unplugs `vif` from the instance (nova's `detach_interface`).
    async fn detach_interface(&self, _uuid: &str, _vif: &Vif) -> Result<()> {
        unsupported("detach_interface")
    }
    /// The guest's PCI address (`0000:00:03.0`) of each of the instance's
    /// interfaces, by MAC: the bus of nova's device metadata
    /// (`_prepare_device_bus`). None known by default.
    async fn interface_addresses(&self, _uuid: &str) -> Result<Vec<(String, String)>> {
        Ok(vec![])
    }
    /// Injects the instance's network info (its VIFs) into the guest
    /// (nova's `inject_network_info`): nothing to do by default, as nova's
    /// base and libvirt drivers.
    async fn inject_network_info(&self, _uuid: &str, _vifs: &[Vif]) -> Result<()> {
        Ok(())
    }

    /// Lets the host take new instances (`"enabled"`) or not
    /// (`"disabled"`); nova's `set_host_enabled`.
    async fn set_host_enabled(&self, _enabled: bool) -> Result<String> {
        unsupported("set_host_enabled")
    }

    /// Starts (`true`) or stops a maintenance window: `"on_maintenance"` /
    /// `"off_maintenance"`; nova's `host_maintenance_mode`.
    async fn host_maintenance_mode(&self, _host: &str, _mode: bool) -> Result<String> {
        unsupported("host_maintenance_mode")
    }

    /// Reboots, shuts down or starts up the host; nova's
    /// `host_power_action` (answers the action done).
    async fn host_power_action(&self, _action: &str) -> Result<String> {
        unsupported("host_power_action")
    }

    /// The host's uptime (the `uptime` command's output); nova's
    /// `get_host_uptime`.
    async fn get_host_uptime(&self) -> Result<String> {
        unsupported("get_host_uptime")
    }
}

/// This machine's `uptime` output, as nova's libvirt driver runs it
/// (`env LANG=C uptime`), for drivers whose hypervisor is this machine.
pub(crate) async fn local_host_uptime() -> Result<String> {
    let out = tokio::process::Command::new("env")
        .args(["LANG=C", "uptime"])
        .output()
        .await
        .map_err(|e| Error::Hypervisor(format!("uptime: {e}")))?;
    if !out.status.success() {
        return Err(Error::Hypervisor(format!(
            "uptime: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
