//! Nova's `Selection` objects (fields, types and versions as in nova 34).

use crate::nova_object;
use crate::objects::SchedulerLimits;

/// Nova's `Selection` object (version 1.1).
#[nova_object(name = "Selection", version = "1.1")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    #[field(kind = "UUID")]
    compute_node_uuid: String,
    service_host: String,
    nodename: String,
    #[field(kind = "UUID")]
    cell_uuid: String,
    limits: Option<SchedulerLimits>,
    allocation_request: Option<String>,
    allocation_request_version: Option<String>,
    #[field(since = "1.1")]
    availability_zone: Option<String>,
}
