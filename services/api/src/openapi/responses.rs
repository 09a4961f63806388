//! Success responses per route, method and microversion: nova 34's status
//! codes, and bodies as its views render them (ours in `views.rs`,
//! `keypairs.rs`, `admin.rs`; checked against tempest's
//! `api_schema/response/compute`). A route without a body schema here is
//! documented with its status code only.

use serde_json::{Value, json};

use crate::microversion::ApiVersion;

pub(crate) type Success = Vec<(&'static str, Option<Value>)>;

fn links() -> Value {
    json!({"type": "array", "items": {"$ref": "#/components/schemas/Link"}})
}

fn wrap(key: &str, inner: Value) -> Value {
    json!({"type": "object", "properties": {key: inner}, "required": [key], "additionalProperties": false})
}

fn list_of(key: &str, item: Value) -> Value {
    let links_key = format!("{key}_links");
    json!({"type": "object", "properties": {key: {"type": "array", "items": item}, links_key: links()},
           "required": [key], "additionalProperties": false})
}

fn string_or_null() -> Value {
    json!({"type": ["string", "null"]})
}

fn date_time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn brief(required_name: bool) -> Value {
    let mut req = vec!["id", "links"];
    if required_name {
        req.push("name");
    }
    json!({"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "links": links()},
           "required": req, "additionalProperties": false})
}

/// `addresses`: network name → addresses.
fn addresses() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "array", "items": {
        "type": "object", "required": ["version", "addr"], "properties": {
            "version": {"type": "integer", "enum": [4, 6]}, "addr": {"type": "string"},
            "OS-EXT-IPS:type": {"type": "string", "enum": ["fixed", "floating"]},
            "OS-EXT-IPS-MAC:mac_addr": {"type": "string"}}}}})
}

/// A server as show and detail render it at `v`.
pub(crate) fn server(v: ApiVersion) -> Value {
    let flavor = if v.at_least(2, 47) {
        json!({"type": "object", "properties": {
            "vcpus": {"type": "integer"}, "ram": {"type": "integer"}, "disk": {"type": "integer"},
            "ephemeral": {"type": "integer"}, "swap": {"type": "integer"},
            "original_name": {"type": "string"},
            "extra_specs": {"type": "object", "additionalProperties": {"type": "string"}}},
            "additionalProperties": false})
    } else {
        json!({"type": "object", "properties": {"id": {"type": "string"}, "links": links()},
               "additionalProperties": false})
    };
    let mut image = json!({"type": "object", "properties": {"id": {"type": "string"}, "links": links()},
                           "required": ["id", "links"], "additionalProperties": false});
    if v.at_least(2, 98) {
        image["properties"]["properties"] = json!({"type": "object"});
    }
    let mut props = json!({
        "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"},
        "status": {"type": "string", "enum": ["ACTIVE", "BUILD", "DELETED", "ERROR", "HARD_REBOOT",
            "MIGRATING", "PASSWORD", "PAUSED", "REBOOT", "REBUILD", "RESCUE", "RESIZE",
            "REVERT_RESIZE", "SHELVED", "SHELVED_OFFLOADED", "SHUTOFF", "SOFT_DELETED",
            "SUSPENDED", "UNKNOWN", "VERIFY_RESIZE"]},
        "tenant_id": {"type": "string"},
        "user_id": {"type": "string"},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "hostId": {"type": "string"},
        "image": {"oneOf": [image, {"type": "string", "enum": [""]}]},
        "flavor": flavor,
        "created": date_time(),
        "updated": date_time(),
        "addresses": addresses(),
        "accessIPv4": {"type": "string"},
        "accessIPv6": {"type": "string"},
        "links": links(),
        "progress": {"type": "integer"},
        "fault": {"type": "object", "properties": {"code": {"type": "integer"}, "created": date_time(),
            "message": {"type": "string"}, "details": {"type": "string"}},
            "required": ["code", "created", "message"], "additionalProperties": false},
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
        "OS-EXT-AZ:availability_zone": {"type": "string"},
        "config_drive": {"type": "string"},
        "key_name": string_or_null(),
        "OS-SRV-USG:launched_at": string_or_null(),
        "OS-SRV-USG:terminated_at": string_or_null(),
        "OS-EXT-STS:task_state": string_or_null(),
        "OS-EXT-STS:vm_state": {"type": "string"},
        "OS-EXT-STS:power_state": {"type": "integer"},
        "os-extended-volumes:volumes_attached": {"type": "array", "items": {"type": "object",
            "properties": {"id": {"type": "string"}, "delete_on_termination": {"type": "boolean"}}}},
        "security_groups": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        // The admin's extended attributes.
        "OS-EXT-SRV-ATTR:host": string_or_null(),
        "OS-EXT-SRV-ATTR:hypervisor_hostname": string_or_null(),
        "OS-EXT-SRV-ATTR:instance_name": {"type": "string"},
    });
    let mut required = vec![
        "id",
        "name",
        "status",
        "tenant_id",
        "user_id",
        "metadata",
        "hostId",
        "image",
        "flavor",
        "created",
        "updated",
        "addresses",
        "accessIPv4",
        "accessIPv6",
        "links",
    ];
    let p = props.as_object_mut().unwrap_or_else(|| unreachable!());
    if v.at_least(2, 3) {
        for k in [
            "OS-EXT-SRV-ATTR:reservation_id",
            "OS-EXT-SRV-ATTR:kernel_id",
            "OS-EXT-SRV-ATTR:ramdisk_id",
            "OS-EXT-SRV-ATTR:root_device_name",
            "OS-EXT-SRV-ATTR:user_data",
            "OS-EXT-SRV-ATTR:hostname",
        ] {
            p.insert(k.into(), string_or_null());
        }
        p.insert(
            "OS-EXT-SRV-ATTR:launch_index".into(),
            json!({"type": ["integer", "null"]}),
        );
    }
    if v.at_least(2, 16) {
        p.insert(
            "host_status".into(),
            json!({"type": "string", "enum": ["UP", "DOWN", "MAINTENANCE", "UNKNOWN", ""]}),
        );
    }
    if v.at_least(2, 9) {
        p.insert("locked".into(), json!({"type": "boolean"}));
        required.push("locked");
    }
    if v.at_least(2, 73) {
        p.insert("locked_reason".into(), string_or_null());
    }
    if v.at_least(2, 19) {
        p.insert("description".into(), string_or_null());
        required.push("description");
    }
    if v.at_least(2, 26) {
        p.insert(
            "tags".into(),
            json!({"type": "array", "items": {"type": "string"}}),
        );
        required.push("tags");
    }
    if v.at_least(2, 63) {
        p.insert(
            "trusted_image_certificates".into(),
            json!({"type": ["array", "null"], "items": {"type": "string"}}),
        );
    }
    if v.at_least(2, 71) {
        p.insert(
            "server_groups".into(),
            json!({"type": "array", "items": {"type": "string"}}),
        );
    }
    if v.at_least(2, 96) {
        p.insert("pinned_availability_zone".into(), string_or_null());
    }
    if v.at_least(2, 100) {
        p.insert("scheduler_hints".into(), json!({"type": "object"}));
    }
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

/// `POST /servers`' body: the new server (or, with
/// `return_reservation_id`, the reservation).
fn server_created() -> Value {
    let server = json!({"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"}, "links": links(),
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
        "security_groups": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "adminPass": {"type": "string"}},
        "required": ["id", "links"], "additionalProperties": false});
    json!({"oneOf": [wrap("server", server),
        {"type": "object", "properties": {"reservation_id": {"type": "string"}},
         "required": ["reservation_id"], "additionalProperties": false}]})
}

/// A flavor (`brief`: list) at `v`.
pub(crate) fn flavor(v: ApiVersion, brief: bool) -> Value {
    let mut props = json!({"id": {"type": "string"}, "name": {"type": "string"}, "links": links()});
    let mut required = vec!["id", "name", "links"];
    if v.at_least(2, 55) {
        props["description"] = string_or_null();
        required.push("description");
    }
    if !brief {
        for k in ["ram", "vcpus", "disk", "OS-FLV-EXT-DATA:ephemeral"] {
            props[k] = json!({"type": "integer"});
            required.push(k);
        }
        props["swap"] = if v.at_least(2, 75) {
            json!({"type": "integer"})
        } else {
            json!({"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "enum": [""]}]})
        };
        props["rxtx_factor"] = json!({"type": "number"});
        props["os-flavor-access:is_public"] = json!({"type": "boolean"});
        props["OS-FLV-DISABLED:disabled"] = json!({"type": "boolean"});
        required.extend([
            "swap",
            "rxtx_factor",
            "os-flavor-access:is_public",
            "OS-FLV-DISABLED:disabled",
        ]);
        if v.at_least(2, 61) {
            props["extra_specs"] =
                json!({"type": "object", "additionalProperties": {"type": "string"}});
        }
    }
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

/// A keypair: `list` (index), `created` (create), else show.
fn keypair(v: ApiVersion, kind: &str) -> Value {
    let mut props = json!({"name": {"type": "string"}, "public_key": {"type": "string"},
                           "fingerprint": {"type": "string"}});
    let mut required = vec!["name", "public_key", "fingerprint"];
    if v.at_least(2, 2) {
        props["type"] = json!({"type": "string", "enum": ["ssh", "x509"]});
        required.push("type");
    }
    if kind != "list" {
        props["user_id"] = json!({"type": "string"});
        required.push("user_id");
    }
    if kind == "created" {
        props["private_key"] = json!({"type": "string"});
    }
    if kind == "show" {
        props["id"] = json!({"type": "integer"});
        props["deleted"] = json!({"type": "boolean"});
        props["created_at"] = json!({"type": "string"});
        props["updated_at"] = string_or_null();
        props["deleted_at"] = string_or_null();
        required.extend(["id", "deleted", "created_at", "updated_at", "deleted_at"]);
    }
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

fn limits(v: ApiVersion) -> Value {
    let mut keys = vec![
        "maxServerMeta",
        "maxImageMeta",
        "maxTotalInstances",
        "maxTotalCores",
        "maxTotalRAMSize",
        "maxTotalKeypairs",
        "maxServerGroups",
        "maxServerGroupMembers",
        "totalInstancesUsed",
        "totalCoresUsed",
        "totalRAMUsed",
        "totalServerGroupsUsed",
    ];
    if !v.at_least(2, 57) {
        keys.extend(["maxPersonality", "maxPersonalitySize"]);
    }
    if !v.at_least(2, 36) {
        keys.extend([
            "maxSecurityGroups",
            "maxSecurityGroupRules",
            "maxTotalFloatingIps",
            "totalSecurityGroupsUsed",
            "totalFloatingIpsUsed",
        ]);
    }
    let props: serde_json::Map<String, Value> = keys
        .iter()
        .map(|k| ((*k).to_owned(), json!({"type": "integer"})))
        .collect();
    wrap(
        "limits",
        json!({"type": "object", "properties": {
            "rate": {"type": "array", "maxItems": 0},
            "absolute": {"type": "object", "properties": props, "required": keys, "additionalProperties": false}},
            "required": ["rate", "absolute"], "additionalProperties": false}),
    )
}

fn metadata_body(key: &str) -> Value {
    wrap(
        key,
        json!({"type": "object", "additionalProperties": {"type": "string"}}),
    )
}

/// The success status codes (and bodies, where written) of `method path`
/// at `v`.
pub(crate) fn success(path: &str, method: &str, v: ApiVersion) -> Success {
    if let Some(known) = super::resources::success(path, method, v) {
        return known;
    }
    let ok = |s: Value| vec![("200", Some(s))];
    match (path, method) {
        ("/servers", "get") => ok(list_of("servers", brief(true))),
        ("/servers/detail", "get") => ok(list_of("servers", server(v))),
        ("/servers/{id}", "get" | "put") => ok(wrap("server", server(v))),
        ("/servers", "post") => vec![("202", Some(server_created()))],
        ("/servers/{id}", "delete") => vec![("204", None)],
        ("/servers/{id}/action", "post") => vec![],
        ("/servers/{id}/metadata", _) => ok(metadata_body("metadata")),
        ("/servers/{id}/metadata/{key}" | "/images/{id}/metadata/{key}", "get" | "put") => {
            ok(metadata_body("meta"))
        }
        ("/servers/{id}/metadata/{key}" | "/images/{id}/metadata/{key}", "delete") => {
            vec![("204", None)]
        }
        ("/images/{id}/metadata", _) => ok(metadata_body("metadata")),
        ("/servers/{id}/tags", "get" | "put") => ok(wrap(
            "tags",
            json!({"type": "array", "items": {"type": "string"}}),
        )),
        ("/servers/{id}/tags/{tag}", "put") => vec![("201", None), ("204", None)],
        ("/servers/{id}/tags" | "/servers/{id}/tags/{tag}", "delete")
        | ("/servers/{id}/tags/{tag}", "get") => vec![("204", None)],
        ("/servers/{id}/os-server-password", "delete") => vec![("204", None)],
        ("/servers/{id}/migrations/{migration_id}/action", _)
        | ("/servers/{id}/migrations/{migration_id}", "delete") => vec![("202", None)],
        ("/flavors", "get") => ok(list_of("flavors", flavor(v, true))),
        ("/flavors/detail", "get") => ok(list_of("flavors", flavor(v, false))),
        ("/flavors/{id}", "get" | "put") | ("/flavors", "post") => {
            ok(wrap("flavor", flavor(v, false)))
        }
        ("/flavors/{id}", "delete") => vec![("202", None)],
        ("/os-keypairs", "get") => {
            let mut l = list_of("keypairs", wrap("keypair", keypair(v, "list")));
            if !v.at_least(2, 35) {
                l["properties"]
                    .as_object_mut()
                    .map(|o| o.remove("keypairs_links"));
            }
            ok(l)
        }
        ("/os-keypairs/{name}", "get") => ok(wrap("keypair", keypair(v, "show"))),
        ("/os-keypairs", "post") => {
            let code = if v.at_least(2, 2) { "201" } else { "200" };
            vec![(code, Some(wrap("keypair", keypair(v, "created"))))]
        }
        ("/os-keypairs/{name}", "delete") => {
            vec![(if v.at_least(2, 2) { "204" } else { "202" }, None)]
        }
        ("/limits", "get") => ok(limits(v)),
        ("/os-services/{id}" | "/os-server-groups/{id}" | "/images/{id}", "delete") => {
            vec![("204", None)]
        }
        ("/os-quota-sets/{project}", "delete") => vec![("202", None)],
        _ => vec![("200", None)],
    }
}
