//! Nova's `Migration`, `MigrationList` objects (fields, types and versions as in nova 34).

use crate::{DateTime, nova_object};

/// Nova's `Migration` object (version 1.8).
#[nova_object(name = "Migration", version = "1.8")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Migration {
    id: i64,
    #[field(since = "1.5", kind = "UUID")]
    uuid: String,
    source_compute: Option<String>,
    dest_compute: Option<String>,
    source_node: Option<String>,
    dest_node: Option<String>,
    #[field(since = "1.8")]
    dest_compute_id: Option<i64>,
    dest_host: Option<String>,
    old_instance_type_id: Option<i64>,
    new_instance_type_id: Option<i64>,
    instance_uuid: Option<String>,
    status: Option<String>,
    #[field(
        since = "1.2",
        kind = "Enum(migration,resize,live-migration,evacuation)"
    )]
    migration_type: String,
    #[field(since = "1.2")]
    hidden: bool,
    #[field(since = "1.4")]
    memory_total: Option<i64>,
    #[field(since = "1.4")]
    memory_processed: Option<i64>,
    #[field(since = "1.4")]
    memory_remaining: Option<i64>,
    #[field(since = "1.4")]
    disk_total: Option<i64>,
    #[field(since = "1.4")]
    disk_processed: Option<i64>,
    #[field(since = "1.4")]
    disk_remaining: Option<i64>,
    #[field(since = "1.6")]
    cross_cell_move: bool,
    #[field(since = "1.7")]
    user_id: Option<String>,
    #[field(since = "1.7")]
    project_id: Option<String>,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}

/// Nova's `MigrationList` object (version 1.5).
#[nova_object(name = "MigrationList", version = "1.5", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MigrationList {
    objects: Vec<Migration>,
}
