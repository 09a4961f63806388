//! The object set (nova 34 names, fields and versions).

mod aggregate;
mod block_device;
mod build_request;
mod cell_mapping;
mod compute_node;
mod console_auth_token;
mod external_event;
mod flavor;
mod image_meta;
mod instance;
mod instance_action;
mod instance_fault;
mod instance_group;
mod instance_info_cache;
mod keypair;
mod migrate_data;
mod migration;
mod network_request;
mod pci_request;
mod quotas;
mod request_spec;
mod security_group;
mod selection;
mod service;
mod task_log;
mod virtual_interface;

pub use aggregate::{Aggregate, AggregateList};
pub use block_device::{BlockDeviceMapping, BlockDeviceMappingList};
pub use build_request::{BuildRequest, BuildRequestList};
pub use cell_mapping::{
    CellMapping, CellMappingList, HostMapping, HostMappingList, InstanceMapping,
    InstanceMappingList,
};
pub use compute_node::{ComputeNode, ComputeNodeList, HVSpec, PciDevicePool, PciDevicePoolList};
pub use console_auth_token::ConsoleAuthToken;
pub use external_event::InstanceExternalEvent;
pub use flavor::{Flavor, FlavorList};
pub use image_meta::{ImageMeta, ImageMetaProps};
pub(crate) use instance::counts_by_listing;
pub use instance::{Instance, InstanceCounts, InstanceList, UsageCounts};
pub(crate) use instance_action::db as action_events;
pub use instance_action::{
    EventOutcome, InstanceAction, InstanceActionEvent, InstanceActionEventList, InstanceActionList,
};
pub use instance_fault::{InstanceFault, InstanceFaultList};
pub use instance_group::{InstanceGroup, InstanceGroupList};
pub use instance_info_cache::InstanceInfoCache;
pub use keypair::{KeyPair, KeyPairList};
pub use migrate_data::{
    LibvirtLiveMigrateBDMInfo, LibvirtLiveMigrateData, LibvirtLiveMigrateNUMAInfo, VIFMigrateData,
};
pub use migration::{Migration, MigrationList};
pub use network_request::{NetworkRequest, NetworkRequestList};
pub use pci_request::{InstancePCIRequest, InstancePCIRequests};
pub use quotas::Quotas;
pub use request_spec::{
    Destination, RequestGroup, RequestLevelParams, RequestSpec, SchedulerLimits, SchedulerRetries,
};
pub use security_group::{SecurityGroup, SecurityGroupList};
pub use selection::Selection;
pub use service::{Service, ServiceList};
pub use task_log::{TaskLog, TaskLogList};
pub use virtual_interface::{VirtualInterface, VirtualInterfaceList};

use crate::{ObjectClass, VersionedObject};

/// Every class this crate defines.
pub fn all_classes() -> Vec<&'static ObjectClass> {
    vec![
        Aggregate::obj_class(),
        AggregateList::obj_class(),
        BlockDeviceMapping::obj_class(),
        BlockDeviceMappingList::obj_class(),
        BuildRequest::obj_class(),
        BuildRequestList::obj_class(),
        CellMapping::obj_class(),
        CellMappingList::obj_class(),
        ComputeNode::obj_class(),
        ComputeNodeList::obj_class(),
        ConsoleAuthToken::obj_class(),
        Destination::obj_class(),
        Flavor::obj_class(),
        FlavorList::obj_class(),
        HVSpec::obj_class(),
        HostMapping::obj_class(),
        HostMappingList::obj_class(),
        ImageMeta::obj_class(),
        ImageMetaProps::obj_class(),
        Instance::obj_class(),
        InstanceAction::obj_class(),
        InstanceActionEvent::obj_class(),
        InstanceActionEventList::obj_class(),
        InstanceActionList::obj_class(),
        InstanceExternalEvent::obj_class(),
        InstanceFault::obj_class(),
        InstanceFaultList::obj_class(),
        InstanceGroup::obj_class(),
        InstanceGroupList::obj_class(),
        InstanceInfoCache::obj_class(),
        InstanceList::obj_class(),
        InstanceMapping::obj_class(),
        InstanceMappingList::obj_class(),
        InstancePCIRequest::obj_class(),
        InstancePCIRequests::obj_class(),
        KeyPair::obj_class(),
        KeyPairList::obj_class(),
        LibvirtLiveMigrateBDMInfo::obj_class(),
        LibvirtLiveMigrateData::obj_class(),
        LibvirtLiveMigrateNUMAInfo::obj_class(),
        Migration::obj_class(),
        MigrationList::obj_class(),
        NetworkRequest::obj_class(),
        NetworkRequestList::obj_class(),
        PciDevicePool::obj_class(),
        PciDevicePoolList::obj_class(),
        Quotas::obj_class(),
        RequestGroup::obj_class(),
        RequestLevelParams::obj_class(),
        RequestSpec::obj_class(),
        SchedulerLimits::obj_class(),
        SchedulerRetries::obj_class(),
        SecurityGroup::obj_class(),
        SecurityGroupList::obj_class(),
        Selection::obj_class(),
        Service::obj_class(),
        ServiceList::obj_class(),
        TaskLog::obj_class(),
        TaskLogList::obj_class(),
        VIFMigrateData::obj_class(),
        VirtualInterface::obj_class(),
        VirtualInterfaceList::obj_class(),
    ]
}
