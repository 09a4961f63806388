//! Nova's `Service`, `ServiceList` objects (fields, types and versions as in nova 34).

use crate::objects::ComputeNode;
use crate::{DateTime, nova_object};

/// Nova's `Service` object (version 1.22).
#[nova_object(name = "Service", version = "1.22")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Service {
    id: i64,
    #[field(since = "1.21", kind = "UUID")]
    uuid: String,
    host: Option<String>,
    binary: Option<String>,
    topic: Option<String>,
    report_count: i64,
    disabled: bool,
    disabled_reason: Option<String>,
    availability_zone: Option<String>,
    compute_node: ComputeNode,
    #[field(since = "1.13")]
    last_seen_up: Option<DateTime>,
    #[field(since = "1.14")]
    forced_down: bool,
    #[field(since = "1.16")]
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
