//! Nova's `InstanceAction`, `InstanceActionList`, `InstanceActionEvent`, `InstanceActionEventList` objects (fields, types and versions as in nova 34).

use crate::{DateTime, nova_object};

/// Nova's `InstanceAction` object (version 1.2).
#[nova_object(name = "InstanceAction", version = "1.2")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceAction {
    id: i64,
    action: Option<String>,
    #[field(kind = "UUID")]
    instance_uuid: Option<String>,
    request_id: Option<String>,
    user_id: Option<String>,
    project_id: Option<String>,
    start_time: Option<DateTime>,
    finish_time: Option<DateTime>,
    message: Option<String>,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}

/// Nova's `InstanceActionList` object (version 1.1).
#[nova_object(name = "InstanceActionList", version = "1.1", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceActionList {
    objects: Vec<InstanceAction>,
}

/// Nova's `InstanceActionEvent` object (version 1.4).
#[nova_object(name = "InstanceActionEvent", version = "1.4")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceActionEvent {
    id: i64,
    event: Option<String>,
    action_id: Option<i64>,
    start_time: Option<DateTime>,
    finish_time: Option<DateTime>,
    result: Option<String>,
    traceback: Option<String>,
    #[field(since = "1.2")]
    host: Option<String>,
    #[field(since = "1.4")]
    details: Option<String>,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}

/// Nova's `InstanceActionEventList` object (version 1.1).
#[nova_object(name = "InstanceActionEventList", version = "1.1", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceActionEventList {
    objects: Vec<InstanceActionEvent>,
}
