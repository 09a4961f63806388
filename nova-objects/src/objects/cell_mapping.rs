//! Nova's `CellMapping`, `CellMappingList`, `HostMapping`, `HostMappingList`, `InstanceMapping`, `InstanceMappingList` objects (fields, types and versions as in nova 34).

use crate::{DateTime, nova_object};

/// Nova's `CellMapping` object (version 1.1).
#[nova_object(name = "CellMapping", version = "1.1")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CellMapping {
    id: i64,
    #[field(kind = "UUID")]
    uuid: String,
    name: Option<String>,
    transport_url: String,
    database_connection: String,
    #[field(since = "1.1")]
    disabled: bool,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
}

/// Nova's `CellMappingList` object (version 1.1).
#[nova_object(name = "CellMappingList", version = "1.1", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CellMappingList {
    objects: Vec<CellMapping>,
}

/// Nova's `HostMapping` object (version 1.0).
#[nova_object(name = "HostMapping", version = "1.0")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostMapping {
    id: i64,
    host: String,
    cell_mapping: CellMapping,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
}

/// Nova's `HostMappingList` object (version 1.1).
#[nova_object(name = "HostMappingList", version = "1.1", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostMappingList {
    objects: Vec<HostMapping>,
}

/// Nova's `InstanceMapping` object (version 1.2).
#[nova_object(name = "InstanceMapping", version = "1.2")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceMapping {
    id: i64,
    #[field(kind = "UUID")]
    instance_uuid: String,
    cell_mapping: Option<CellMapping>,
    project_id: String,
    #[field(since = "1.2")]
    user_id: String,
    #[field(since = "1.1")]
    queued_for_delete: bool,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
}

/// Nova's `InstanceMappingList` object (version 1.3).
#[nova_object(name = "InstanceMappingList", version = "1.3", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceMappingList {
    objects: Vec<InstanceMapping>,
}
