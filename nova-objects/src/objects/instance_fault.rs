//! Nova's `InstanceFault`, `InstanceFaultList` objects (fields, types and versions as in nova 34).

use crate::{DateTime, nova_object};

/// Nova's `InstanceFault` object (version 1.2).
#[nova_object(name = "InstanceFault", version = "1.2")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceFault {
    id: i64,
    #[field(kind = "UUID")]
    instance_uuid: String,
    code: i64,
    message: Option<String>,
    details: Option<String>,
    host: Option<String>,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}

/// Nova's `InstanceFaultList` object (version 1.2).
#[nova_object(name = "InstanceFaultList", version = "1.2", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceFaultList {
    objects: Vec<InstanceFault>,
}
