//! Nova's `TaskLog`, `TaskLogList` objects (fields, types and versions as in
//! nova 34): the record a periodic task keeps of its run over one period
//! on one host (`instance_usage_audit`).

use crate::{DateTime, nova_object};

/// Nova's `TaskLog` object (version 1.0).
#[nova_object(name = "TaskLog", version = "1.0")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskLog {
    id: i64,
    task_name: String,
    state: String,
    host: String,
    period_beginning: DateTime,
    period_ending: DateTime,
    message: String,
    task_items: i64,
    errors: i64,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}

/// Nova's `TaskLogList` object (version 1.0).
#[nova_object(name = "TaskLogList", version = "1.0", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskLogList {
    objects: Vec<TaskLog>,
}
