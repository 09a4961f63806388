//! Nova's `BuildRequest`, `BuildRequestList` objects (fields, types and versions as in nova 34).

use crate::objects::{BlockDeviceMappingList, Instance};
use crate::{DateTime, RawObject, nova_object};

/// Nova's `BuildRequest` object (version 1.3).
#[nova_object(name = "BuildRequest", version = "1.3")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildRequest {
    id: i64,
    #[field(kind = "UUID")]
    instance_uuid: String,
    project_id: String,
    instance: Instance,
    #[field(since = "1.1")]
    block_device_mappings: BlockDeviceMappingList,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    #[field(since = "1.3", kind = "Object(TagList)")]
    tags: RawObject,
}

/// Nova's `BuildRequestList` object (version 1.0).
#[nova_object(name = "BuildRequestList", version = "1.0", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildRequestList {
    objects: Vec<BuildRequest>,
}
