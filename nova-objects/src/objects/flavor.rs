//! Nova's `Flavor`, `FlavorList` objects (fields, types and versions as in nova 34).

use std::collections::BTreeMap;

use crate::{DateTime, nova_object};

/// Nova's `Flavor` object (version 1.2).
#[nova_object(name = "Flavor", version = "1.2")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flavor {
    id: i64,
    name: Option<String>,
    memory_mb: i64,
    vcpus: i64,
    root_gb: i64,
    ephemeral_gb: i64,
    flavorid: String,
    swap: i64,
    rxtx_factor: Option<f64>,
    vcpu_weight: Option<i64>,
    disabled: bool,
    is_public: bool,
    extra_specs: BTreeMap<String, String>,
    projects: Vec<String>,
    #[field(since = "1.2")]
    description: Option<String>,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}

/// Nova's `FlavorList` object (version 1.1).
#[nova_object(name = "FlavorList", version = "1.1", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlavorList {
    objects: Vec<Flavor>,
}
