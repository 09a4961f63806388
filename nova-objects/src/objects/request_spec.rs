//! Nova's `RequestSpec`, `RequestGroup`, `Destination`, `SchedulerRetries`, `SchedulerLimits`, `RequestLevelParams` objects (fields, types and versions as in nova 34).

use std::collections::{BTreeMap, BTreeSet};

use crate::objects::{
    CellMapping, ComputeNodeList, Flavor, ImageMeta, InstanceGroup, InstancePCIRequests,
    NetworkRequestList, SecurityGroupList,
};
use crate::{RawObject, nova_object};

/// Nova's `RequestSpec` object (version 1.15).
#[nova_object(name = "RequestSpec", version = "1.15")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestSpec {
    id: i64,
    image: Option<ImageMeta>,
    #[field(kind = "Object(InstanceNUMATopology)")]
    numa_topology: Option<RawObject>,
    pci_requests: Option<InstancePCIRequests>,
    project_id: Option<String>,
    #[field(since = "1.9")]
    user_id: Option<String>,
    availability_zone: Option<String>,
    flavor: Flavor,
    num_instances: i64,
    ignore_hosts: Option<Vec<String>>,
    force_hosts: Option<Vec<String>>,
    force_nodes: Option<Vec<String>>,
    #[field(since = "1.6")]
    requested_destination: Option<Destination>,
    retry: Option<SchedulerRetries>,
    limits: Option<SchedulerLimits>,
    instance_group: Option<InstanceGroup>,
    scheduler_hints: Option<BTreeMap<String, Vec<String>>>,
    #[field(kind = "UUID")]
    instance_uuid: String,
    #[field(since = "1.8")]
    security_groups: SecurityGroupList,
    #[field(since = "1.10", kind = "Object(NetworkMetadata)")]
    network_metadata: RawObject,
    #[field(since = "1.11")]
    is_bfv: bool,
    #[field(since = "1.12")]
    requested_resources: Option<Vec<RequestGroup>>,
    #[field(since = "1.13")]
    request_level_params: RequestLevelParams,
    #[field(since = "1.14")]
    requested_networks: NetworkRequestList,
}

/// Nova's `RequestGroup` object (version 1.3).
#[nova_object(name = "RequestGroup", version = "1.3")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestGroup {
    use_same_provider: bool,
    resources: BTreeMap<String, i64>,
    required_traits: BTreeSet<String>,
    forbidden_traits: BTreeSet<String>,
    aggregates: Vec<Vec<String>>,
    #[field(since = "1.3")]
    forbidden_aggregates: BTreeSet<String>,
    #[field(since = "1.1")]
    requester_id: Option<String>,
    #[field(since = "1.1", kind = "List(UUID)")]
    provider_uuids: Vec<String>,
    #[field(since = "1.2", kind = "UUID")]
    in_tree: Option<String>,
}

/// Nova's `Destination` object (version 1.4).
#[nova_object(name = "Destination", version = "1.4")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Destination {
    host: String,
    node: Option<String>,
    #[field(since = "1.1")]
    cell: Option<CellMapping>,
    #[field(since = "1.2")]
    aggregates: Option<Vec<String>>,
    #[field(since = "1.3")]
    allow_cross_cell_move: bool,
    #[field(since = "1.4")]
    forbidden_aggregates: Option<BTreeSet<String>>,
}

/// Nova's `SchedulerRetries` object (version 1.1).
#[nova_object(name = "SchedulerRetries", version = "1.1")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchedulerRetries {
    num_attempts: i64,
    hosts: ComputeNodeList,
}

/// Nova's `SchedulerLimits` object (version 1.0).
#[nova_object(name = "SchedulerLimits", version = "1.0")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchedulerLimits {
    #[field(kind = "Object(NUMATopologyLimits)")]
    numa_topology: Option<RawObject>,
    vcpu: Option<i64>,
    disk_gb: Option<i64>,
    memory_mb: Option<i64>,
}

/// Nova's `RequestLevelParams` object (version 1.1).
#[nova_object(name = "RequestLevelParams", version = "1.1")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestLevelParams {
    root_required: BTreeSet<String>,
    root_forbidden: BTreeSet<String>,
    #[field(since = "1.1")]
    same_subtree: Vec<Vec<String>>,
}
