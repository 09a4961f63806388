//! Nova's `Instance`, `InstanceList` objects (fields, types and versions as in nova 34).

use std::collections::BTreeMap;

use crate::objects::{
    Flavor, InstanceFault, InstanceInfoCache, InstancePCIRequests, KeyPairList, SecurityGroupList,
    ServiceList,
};
use crate::{DateTime, RawObject, nova_object};

/// Nova's `Instance` object (version 2.8).
#[nova_object(name = "Instance", version = "2.8")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Instance {
    id: i64,
    user_id: Option<String>,
    project_id: Option<String>,
    image_ref: Option<String>,
    kernel_id: Option<String>,
    ramdisk_id: Option<String>,
    hostname: Option<String>,
    launch_index: Option<i64>,
    key_name: Option<String>,
    key_data: Option<String>,
    power_state: Option<i64>,
    vm_state: Option<String>,
    task_state: Option<String>,
    #[field(since = "2.1")]
    services: ServiceList,
    memory_mb: Option<i64>,
    vcpus: Option<i64>,
    root_gb: Option<i64>,
    ephemeral_gb: Option<i64>,
    #[field(kind = "UUID")]
    ephemeral_key_uuid: Option<String>,
    host: Option<String>,
    node: Option<String>,
    #[field(since = "2.8")]
    compute_id: Option<i64>,
    instance_type_id: Option<i64>,
    user_data: Option<String>,
    reservation_id: Option<String>,
    launched_at: Option<DateTime>,
    terminated_at: Option<DateTime>,
    availability_zone: Option<String>,
    display_name: Option<String>,
    display_description: Option<String>,
    launched_on: Option<String>,
    locked: bool,
    locked_by: Option<String>,
    os_type: Option<String>,
    architecture: Option<String>,
    vm_mode: Option<String>,
    #[field(kind = "UUID")]
    uuid: String,
    root_device_name: Option<String>,
    default_ephemeral_device: Option<String>,
    default_swap_device: Option<String>,
    config_drive: Option<String>,
    #[field(kind = "IPV4Address")]
    access_ip_v4: Option<String>,
    #[field(kind = "IPV6Address")]
    access_ip_v6: Option<String>,
    auto_disk_config: bool,
    progress: Option<i64>,
    shutdown_terminate: bool,
    disable_terminate: bool,
    cell_name: Option<String>,
    metadata: BTreeMap<String, String>,
    #[field(kind = "Dict(String?)")]
    system_metadata: BTreeMap<String, Option<String>>,
    info_cache: Option<InstanceInfoCache>,
    security_groups: SecurityGroupList,
    fault: Option<InstanceFault>,
    cleaned: bool,
    #[field(kind = "Object(PciDeviceList)")]
    pci_devices: Option<RawObject>,
    #[field(kind = "Object(InstanceNUMATopology)")]
    numa_topology: Option<RawObject>,
    pci_requests: Option<InstancePCIRequests>,
    #[field(since = "2.3", kind = "Object(InstanceDeviceMetadata)")]
    device_metadata: Option<RawObject>,
    #[field(kind = "Object(TagList)")]
    tags: RawObject,
    flavor: Flavor,
    old_flavor: Option<Flavor>,
    new_flavor: Option<Flavor>,
    #[field(kind = "Object(VirtCPUModel)")]
    vcpu_model: Option<RawObject>,
    #[field(kind = "Object(EC2Ids)")]
    ec2_ids: RawObject,
    #[field(kind = "Object(MigrationContext)")]
    migration_context: Option<RawObject>,
    #[field(since = "2.2")]
    keypairs: KeyPairList,
    #[field(since = "2.4", kind = "Object(TrustedCerts)")]
    trusted_certs: Option<RawObject>,
    #[field(since = "2.6")]
    hidden: bool,
    #[field(since = "2.7", kind = "Object(ResourceList)")]
    resources: Option<RawObject>,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}

/// Nova's `InstanceList` object (version 2.6).
#[nova_object(name = "InstanceList", version = "2.6", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceList {
    objects: Vec<Instance>,
}
