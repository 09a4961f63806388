//! Nova's `InstanceInfoCache` objects (fields, types and versions as in nova 34).

use crate::{DateTime, nova_object};

/// Nova's `InstanceInfoCache` object (version 1.5).
#[nova_object(name = "InstanceInfoCache", version = "1.5")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceInfoCache {
    #[field(kind = "UUID")]
    instance_uuid: String,
    #[field(kind = "NetworkModel")]
    network_info: Option<String>,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}
