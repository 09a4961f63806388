//! Nova's live-migration data: `LibvirtLiveMigrateData` (a
//! `LiveMigrateData`), `LibvirtLiveMigrateBDMInfo`,
//! `LibvirtLiveMigrateNUMAInfo` and `VIFMigrateData` (fields, types and
//! versions as in nova 34's `nova/objects/migrate_data.py`). The compute
//! RPC methods of a live migration (`check_can_live_migrate_*`,
//! `pre_live_migration`, `live_migration`, `rollback_…`) carry it.

use std::collections::{BTreeMap, BTreeSet};

use crate::nova_object;
use crate::objects::Migration;

/// Nova's `VIFMigrateData` object (version 1.0): a port's binding on the
/// destination.
#[nova_object(name = "VIFMigrateData", version = "1.0")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VIFMigrateData {
    port_id: String,
    vnic_type: String,
    vif_type: String,
    vif_details_json: String,
    profile_json: String,
    host: String,
    /// The VIF network model on the source, as nova's JSON text.
    #[field(kind = "NetworkVIFModel")]
    source_vif: String,
}

/// Nova's `LibvirtLiveMigrateNUMAInfo` object (version 1.0).
#[nova_object(name = "LibvirtLiveMigrateNUMAInfo", version = "1.0")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LibvirtLiveMigrateNUMAInfo {
    cpu_pins: BTreeMap<String, BTreeSet<i64>>,
    cell_pins: BTreeMap<String, BTreeSet<i64>>,
    emulator_pins: BTreeSet<i64>,
    sched_vcpus: BTreeSet<i64>,
    sched_priority: i64,
}

/// Nova's `LibvirtLiveMigrateBDMInfo` object (version 1.1).
#[nova_object(name = "LibvirtLiveMigrateBDMInfo", version = "1.1")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LibvirtLiveMigrateBDMInfo {
    serial: String,
    bus: String,
    dev: String,
    r#type: String,
    format: Option<String>,
    boot_index: Option<i64>,
    connection_info_json: String,
    #[field(since = "1.1", kind = "UUID")]
    encryption_secret_uuid: Option<String>,
}

/// Nova's `LibvirtLiveMigrateData` object (version 1.14): what the
/// libvirt driver's checks and `pre_live_migration` tell each other.
/// The fields inherited from `LiveMigrateData` come first.
#[nova_object(
    name = "LibvirtLiveMigrateData",
    version = "1.14",
    compat = libvirt_live_migrate_data_compat
)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LibvirtLiveMigrateData {
    is_volume_backed: bool,
    migration: Migration,
    #[field(since = "1.4")]
    old_vol_attachment_ids: BTreeMap<String, String>,
    #[field(since = "1.6")]
    wait_for_vif_plugged: bool,
    #[field(since = "1.9")]
    vifs: Vec<VIFMigrateData>,
    #[field(since = "1.13")]
    pci_dev_map_src_dst: BTreeMap<String, String>,
    filename: String,
    image_type: String,
    block_migration: bool,
    disk_over_commit: bool,
    disk_available_mb: Option<i64>,
    is_shared_instance_path: bool,
    is_shared_block_storage: bool,
    instance_relative_path: String,
    #[field(kind = "IPAddress")]
    graphics_listen_addr_vnc: Option<String>,
    #[field(kind = "IPAddress")]
    graphics_listen_addr_spice: Option<String>,
    serial_listen_addr: Option<String>,
    #[field(since = "1.2")]
    serial_listen_ports: Vec<i64>,
    bdms: Vec<LibvirtLiveMigrateBDMInfo>,
    #[field(since = "1.1")]
    target_connect_addr: Option<String>,
    #[field(since = "1.3")]
    supported_perf_events: Vec<String>,
    #[field(since = "1.5")]
    src_supports_native_luks: bool,
    #[field(since = "1.7")]
    dst_wants_file_backed_memory: bool,
    #[field(since = "1.8")]
    file_backed_memory_discard: bool,
    #[field(since = "1.10")]
    src_supports_numa_live_migration: bool,
    #[field(since = "1.10")]
    dst_supports_numa_live_migration: bool,
    #[field(since = "1.10")]
    dst_numa_info: LibvirtLiveMigrateNUMAInfo,
    #[field(since = "1.11")]
    dst_supports_mdev_live_migration: bool,
    #[field(since = "1.11")]
    source_mdev_types: BTreeMap<String, String>,
    #[field(since = "1.11")]
    target_mdevs: BTreeMap<String, String>,
    #[field(since = "1.12")]
    dst_cpu_shared_set_info: BTreeSet<i64>,
    #[field(since = "1.14", kind = "UUID")]
    vtpm_secret_uuid: Option<String>,
    #[field(since = "1.14", kind = "SensitiveString")]
    vtpm_secret_value: Option<String>,
}

/// Nova refuses to backport vTPM data below 1.14 (an older compute could
/// not migrate the secret) instead of dropping it; the other fields go by
/// their `since`.
fn libvirt_live_migrate_data_compat(
    data: &mut serde_json::Map<String, serde_json::Value>,
    target: crate::ObjVersion,
) -> crate::Result<()> {
    if target < crate::ObjVersion::new(1, 14)
        && (data.contains_key("vtpm_secret_uuid") || data.contains_key("vtpm_secret_value"))
    {
        return Err(crate::Error::ObjectAction {
            action: "obj_make_compatible".to_owned(),
            reason: format!(
                "Unable to backport newer vTPM support to requested version {}.{}",
                target.major, target.minor
            ),
        });
    }
    Ok(())
}
