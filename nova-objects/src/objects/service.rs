//! Nova's `Service`, `ServiceList` objects (fields, types and versions as in nova 34).

use crate::objects::ComputeNode;
use crate::{DateTime, nova_object};

/// Nova's `Service` object (version 1.22).
#[nova_object(name = "Service", version = "1.22")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Service {
    id: i64,
    #[field(kind = "UUID")]
    uuid: String,
    host: Option<String>,
    binary: Option<String>,
    topic: Option<String>,
    report_count: i64,
    disabled: bool,
    disabled_reason: Option<String>,
    availability_zone: Option<String>,
    compute_node: ComputeNode,
    last_seen_up: Option<DateTime>,
    forced_down: bool,
    version: i64,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}

/// Nova's `ServiceList` object (version 1.19).
#[nova_object(name = "ServiceList", version = "1.19", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceList {
    objects: Vec<Service>,
}
