//! Nova's `InstanceGroup`, `InstanceGroupList` objects (fields, types and versions as in nova 34).

use std::collections::BTreeMap;

use crate::{DateTime, nova_object};

/// Nova's `InstanceGroup` object (version 1.11).
#[nova_object(name = "InstanceGroup", version = "1.11", compat = instance_group_compat)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceGroup {
    id: i64,
    user_id: Option<String>,
    project_id: Option<String>,
    #[field(kind = "UUID")]
    uuid: String,
    name: Option<String>,
    policies: Option<Vec<String>>,
    members: Option<Vec<String>>,
    hosts: Option<Vec<String>>,
    #[field(since = "1.11")]
    policy: Option<String>,
    #[field(rename = "_rules")]
    rules: BTreeMap<String, String>,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}

/// Nova's `InstanceGroupList` object (version 1.8).
#[nova_object(name = "InstanceGroupList", version = "1.8", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceGroupList {
    objects: Vec<InstanceGroup>,
}

/// Before 1.11 a group had a `policies` list (always one entry) instead of
/// `policy`; before 1.7 an always-empty `metadetails` dict.
fn instance_group_compat(
    data: &mut serde_json::Map<String, serde_json::Value>,
    target: crate::ObjVersion,
) -> crate::Result<()> {
    if target < crate::ObjVersion::new(1, 11) {
        let policies = match data.remove("policy") {
            Some(serde_json::Value::String(p)) => vec![serde_json::Value::String(p)],
            _ => Vec::new(),
        };
        data.insert("policies".to_owned(), serde_json::Value::Array(policies));
    }
    if target < crate::ObjVersion::new(1, 7) {
        // Before 1.7 there was an always-empty `metadetails` dict.
        data.insert(
            "metadetails".to_owned(),
            serde_json::Value::Object(Default::default()),
        );
    }
    Ok(())
}
