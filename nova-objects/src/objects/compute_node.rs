//! Nova's `ComputeNode`, `ComputeNodeList`, `HVSpec`, `PciDevicePool`, `PciDevicePoolList` objects (fields, types and versions as in nova 34).

use std::collections::BTreeMap;

use crate::{DateTime, nova_object};

/// Nova's `ComputeNode` object (version 1.19).
#[nova_object(name = "ComputeNode", version = "1.19")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ComputeNode {
    id: i64,
    #[field(since = "1.15", kind = "UUID")]
    uuid: String,
    service_id: Option<i64>,
    #[field(since = "1.7")]
    host: Option<String>,
    vcpus: i64,
    memory_mb: i64,
    local_gb: i64,
    vcpus_used: i64,
    memory_mb_used: i64,
    local_gb_used: i64,
    hypervisor_type: String,
    hypervisor_version: i64,
    hypervisor_hostname: Option<String>,
    free_ram_mb: Option<i64>,
    free_disk_gb: Option<i64>,
    current_workload: Option<i64>,
    running_vms: Option<i64>,
    cpu_info: Option<String>,
    disk_available_least: Option<i64>,
    metrics: Option<String>,
    #[field(since = "1.3", kind = "Dict(String?)")]
    stats: Option<BTreeMap<String, Option<String>>>,
    #[field(since = "1.4", kind = "IPAddress")]
    host_ip: Option<String>,
    #[field(since = "1.5")]
    numa_topology: Option<String>,
    #[field(since = "1.6")]
    supported_hv_specs: Vec<HVSpec>,
    #[field(since = "1.9")]
    pci_device_pools: Option<PciDevicePoolList>,
    #[field(since = "1.14")]
    cpu_allocation_ratio: f64,
    #[field(since = "1.14")]
    ram_allocation_ratio: f64,
    #[field(since = "1.16")]
    disk_allocation_ratio: f64,
    #[field(since = "1.17")]
    mapped: i64,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}

/// Nova's `ComputeNodeList` object (version 1.17).
#[nova_object(name = "ComputeNodeList", version = "1.17", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ComputeNodeList {
    objects: Vec<ComputeNode>,
}

/// Nova's `HVSpec` object (version 1.2).
#[nova_object(name = "HVSpec", version = "1.2")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HVSpec {
    #[field(
        kind = "Enum(alpha,armv6,armv7l,armv7b,aarch64,cris,i686,ia64,lm32,m68k,microblaze,microblazeel,mips,mipsel,mips64,mips64el,openrisc,parisc,parisc64,ppc,ppcle,ppc64,ppc64le,ppcemb,s390,s390x,sh4,sh4eb,sparc,sparc64,unicore32,x86_64,xtensa,xtensaeb)"
    )]
    arch: String,
    #[field(
        kind = "Enum(baremetal,bhyve,docker,fake,hyperv,ironic,kqemu,kvm,lxc,lxd,openvz,parallels,phyp,qemu,test,uml,vbox,vz,vmware,xen,zvm,prsm)"
    )]
    hv_type: String,
    #[field(kind = "Enum(hvm,xen,uml,exe)")]
    vm_mode: String,
}

/// Nova's `PciDevicePool` object (version 1.1).
#[nova_object(name = "PciDevicePool", version = "1.1")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PciDevicePool {
    product_id: String,
    vendor_id: String,
    #[field(since = "1.1")]
    numa_node: Option<i64>,
    #[field(kind = "Dict(String?)")]
    tags: BTreeMap<String, Option<String>>,
    count: i64,
}

/// Nova's `PciDevicePoolList` object (version 1.1).
#[nova_object(name = "PciDevicePoolList", version = "1.1", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PciDevicePoolList {
    objects: Vec<PciDevicePool>,
}
