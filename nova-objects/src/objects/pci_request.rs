//! Nova's `InstancePCIRequests`, `InstancePCIRequest` objects (fields, types and versions as in nova 34).

use std::collections::BTreeMap;

use crate::nova_object;

/// Nova's `InstancePCIRequests` object (version 1.1).
#[nova_object(name = "InstancePCIRequests", version = "1.1")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstancePCIRequests {
    #[field(kind = "UUID")]
    instance_uuid: String,
    requests: Vec<InstancePCIRequest>,
}

/// Nova's `InstancePCIRequest` object (version 1.4).
#[nova_object(name = "InstancePCIRequest", version = "1.4")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstancePCIRequest {
    count: i64,
    #[field(kind = "List(Dict(String?))")]
    spec: Vec<BTreeMap<String, Option<String>>>,
    alias_name: Option<String>,
    is_new: bool,
    #[field(since = "1.1", kind = "UUID")]
    request_id: Option<String>,
    #[field(since = "1.3")]
    requester_id: Option<String>,
    #[field(since = "1.2", kind = "Enum(required,legacy,preferred,socket)")]
    numa_policy: Option<String>,
}
