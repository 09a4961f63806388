//! Nova's `Aggregate`, `AggregateList` objects (fields, types and versions as in nova 34).

use std::collections::BTreeMap;

use crate::{DateTime, nova_object};

/// Nova's `Aggregate` object (version 1.3).
#[nova_object(name = "Aggregate", version = "1.3")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregate {
    id: i64,
    #[field(kind = "UUID")]
    uuid: String,
    name: String,
    hosts: Option<Vec<String>>,
    metadata: Option<BTreeMap<String, String>>,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}

/// Nova's `AggregateList` object (version 1.3).
#[nova_object(name = "AggregateList", version = "1.3", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AggregateList {
    objects: Vec<Aggregate>,
}
