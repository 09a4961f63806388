//! Nova's `SecurityGroup`, `SecurityGroupList` objects (fields, types and versions as in nova 34).

use crate::{DateTime, nova_object};

/// Nova's `SecurityGroup` object (version 1.2).
#[nova_object(name = "SecurityGroup", version = "1.2")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecurityGroup {
    id: i64,
    name: String,
    description: String,
    user_id: String,
    project_id: String,
    #[field(since = "1.2", kind = "UUID")]
    uuid: String,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}

/// Nova's `SecurityGroupList` object (version 1.1).
#[nova_object(name = "SecurityGroupList", version = "1.1", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecurityGroupList {
    objects: Vec<SecurityGroup>,
}
