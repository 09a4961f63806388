//! Request body JSON Schemas, per microversion (Nova's
//! `api/openstack/compute/schemas`), and the 400 they produce.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

use crate::fault::Fault;
use crate::microversion::ApiVersion;

fn name() -> Value {
    // Nova's `name`: printable (no control character), no leading or
    // trailing whitespace (so not only whitespace), 1..255.
    json!({"type": "string", "minLength": 1, "maxLength": 255,
           "pattern": "^[^\\s\\p{Cc}]([^\\p{Cc}]*[^\\s\\p{Cc}])?$"})
}

/// nova's `parameter_types.ip_address`: an IPv4 or IPv6 address.
pub(crate) fn ip_address() -> Value {
    json!({"type": "string", "oneOf": [{"format": "ipv4"}, {"format": "ipv6"}]})
}

fn metadata() -> Value {
    json!({"type": "object",
           "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": "string", "maxLength": 255}},
           "additionalProperties": false})
}

fn count() -> Value {
    json!({"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 1, "minLength": 1})
}

pub(crate) fn boolean() -> Value {
    json!({"type": ["boolean", "string"],
           "enum": [true, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
                    false, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"]})
}

/// `POST /servers` at `v`.
pub(crate) fn server_create(v: ApiVersion) -> Value {
    let network = json!({"type": "object", "properties": {
        "fixed_ip": {"type": "string"}, "port": {"type": ["string", "null"]},
        "uuid": {"type": "string"}, "tag": {"type": "string"}}, "additionalProperties": false});
    let networks = if v.at_least(2, 37) {
        json!({"oneOf": [{"type": "array", "items": network}, {"type": "string", "enum": ["none", "auto"]}]})
    } else {
        json!({"type": "array", "items": network})
    };
    let bdm = json!({"type": "object", "properties": {
        "boot_index": {"type": ["integer", "string", "null"]},
        "uuid": {"type": "string"}, "source_type": {"type": "string", "enum": ["volume", "image", "snapshot", "blank"]},
        "destination_type": {"type": "string", "enum": ["volume", "local"]},
        "delete_on_termination": boolean(), "volume_size": {"type": ["integer", "string", "null"]},
        "device_name": {"type": ["string", "null"]}, "guest_format": {"type": ["string", "null"]},
        "disk_bus": {"type": ["string", "null"]}, "device_type": {"type": ["string", "null"]},
        "tag": {"type": "string"}, "volume_type": {"type": ["string", "null"]},
        "no_device": {}}, "additionalProperties": false});
    let mut props = json!({
        "name": name(),
        "imageRef": {"type": "string"},
        "flavorRef": {"type": ["string", "integer"], "minLength": 1},
        "adminPass": {"type": "string"},
        "metadata": metadata(),
        "networks": networks,
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
        "accessIPv4": {"type": "string", "format": "ipv4"},
        "accessIPv6": {"type": "string", "format": "ipv6"},
        "availability_zone": {"type": "string", "minLength": 1, "maxLength": 255},
        "block_device_mapping": {"type": "array"},
        "block_device_mapping_v2": {"type": "array", "items": bdm},
        "config_drive": boolean(),
        "key_name": {"type": "string", "minLength": 1, "maxLength": 255},
        "min_count": count(),
        "max_count": count(),
        "return_reservation_id": boolean(),
        "security_groups": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}, "additionalProperties": false}},
        "user_data": {"type": "string", "maxLength": 65535},
    });
    let p = props.as_object_mut().unwrap_or_else(|| unreachable!());
    if !v.at_least(2, 57) {
        p.insert("personality".into(), json!({"type": "array"}));
    }
    if v.at_least(2, 19) {
        p.insert(
            "description".into(),
            json!({"type": ["string", "null"], "maxLength": 255}),
        );
    }
    if v.at_least(2, 52) {
        p.insert("tags".into(), json!({"type": "array", "items": {"type": "string", "pattern": "^[^,/]*$", "minLength": 1, "maxLength": 60}, "maxItems": 50}));
    }
    if v.at_least(2, 63) {
        p.insert(
            "trusted_image_certificates".into(),
            json!({"type": ["array", "null"], "items": {"type": "string"}}),
        );
    }
    if v.at_least(2, 74) {
        p.insert(
            "host".into(),
            json!({"type": "string", "minLength": 1, "maxLength": 255}),
        );
        p.insert(
            "hypervisor_hostname".into(),
            json!({"type": "string", "minLength": 1, "maxLength": 255}),
        );
    }
    if v.at_least(2, 90) {
        p.insert(
            "hostname".into(),
            json!({"type": "string", "minLength": 1, "maxLength": 255}),
        );
    }
    let mut required = vec!["name", "flavorRef"];
    if v.at_least(2, 37) {
        required.push("networks");
    }
    let hints = json!({"type": "object", "properties": {
        "group": {"type": "string", "format": "uuid"},
        "different_host": {"oneOf": [{"type": "string", "format": "uuid"}, {"type": "array", "items": {"type": "string", "format": "uuid"}}]},
        "same_host": {"oneOf": [{"type": "string", "format": "uuid"}, {"type": "array", "items": {"type": "string", "format": "uuid"}}]}},
        "additionalProperties": true});
    json!({"type": "object",
           "properties": {
               "server": {"type": "object", "properties": props, "required": required, "additionalProperties": false},
               "os:scheduler_hints": hints.clone(),
               "OS-SCH-HNT:scheduler_hints": hints},
           "required": ["server"], "additionalProperties": false})
}

/// `PUT /servers/{id}` at `v`.
pub(crate) fn server_update(v: ApiVersion) -> Value {
    let mut props = json!({
        "name": name(),
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
        "accessIPv4": {"type": "string", "format": "ipv4"},
        "accessIPv6": {"type": "string", "format": "ipv6"},
    });
    let p = props.as_object_mut().unwrap_or_else(|| unreachable!());
    if v.at_least(2, 19) {
        p.insert(
            "description".into(),
            json!({"type": ["string", "null"], "maxLength": 255}),
        );
    }
    if v.at_least(2, 90) {
        p.insert(
            "hostname".into(),
            json!({"type": "string", "minLength": 1, "maxLength": 255}),
        );
    }
    json!({"type": "object", "properties": {"server": {"type": "object", "properties": props, "additionalProperties": false}},
           "required": ["server"], "additionalProperties": false})
}

/// `{"reboot": {"type": ...}}`.
pub(crate) fn reboot() -> Value {
    json!({"type": "object", "properties": {"reboot": {"type": "object", "properties": {
        "type": {"type": "string", "enum": ["HARD", "Hard", "hard", "SOFT", "Soft", "soft"]}},
        "required": ["type"], "additionalProperties": false}}, "required": ["reboot"], "additionalProperties": false})
}

/// The body of server action `action` at `v` (nova's schemas of the
/// action controllers); `None` for an action without one here.
pub(crate) fn server_action(action: &str, v: ApiVersion) -> Option<Value> {
    let any = json!({});
    let null = json!({"type": "null"});
    let inner = match action {
        "pause" | "unpause" | "suspend" | "resume" | "lock" | "unlock" | "unrescue" | "restore"
        | "forceDelete" | "injectNetworkInfo" | "os-stop" | "os-start" => {
            if action == "lock" && v.at_least(2, 73) {
                json!({"type": ["object", "null"], "properties": {
                    "locked_reason": {"type": "string", "minLength": 1, "maxLength": 255}},
                    "additionalProperties": false})
            } else {
                any
            }
        }
        "trigger_crash_dump" => null,
        "changePassword" => json!({"type": "object", "properties": {
            "adminPass": {"type": "string"}}, "required": ["adminPass"],
            "additionalProperties": false}),
        "rescue" => json!({"type": ["object", "null"], "properties": {
            "adminPass": {"type": "string"},
            "rescue_image_ref": {"type": "string", "format": "uuid"}},
            "additionalProperties": false}),
        "os-resetState" => json!({"type": "object", "properties": {
            "state": {"type": "string", "enum": ["active", "error"]}},
            "required": ["state"], "additionalProperties": false}),
        // nova's multinic (to 2.43): a network id (string or number) and
        // an IPv4 or IPv6 address.
        "addFixedIp" => json!({"type": "object", "properties": {
            "networkId": {"type": ["string", "number"], "minLength": 1, "maxLength": 36}},
            "required": ["networkId"], "additionalProperties": false}),
        "removeFixedIp" => json!({"type": "object", "properties": {
            "address": ip_address()},
            "required": ["address"], "additionalProperties": false}),
        "os-getConsoleOutput" => json!({"type": "object", "properties": {
            "length": {"type": ["integer", "string", "null"], "pattern": "^-?[0-9]+$",
                       "minimum": -1}},
            "additionalProperties": false}),
        "rebuild" => rebuild(v),
        "createImage" => json!({"type": "object", "properties": {
            "name": name(), "metadata": metadata()},
            "required": ["name"], "additionalProperties": false}),
        "createBackup" => json!({"type": "object", "properties": {
            "name": name(), "backup_type": {"type": "string"},
            "rotation": {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 0},
            "metadata": metadata()},
            "required": ["name", "backup_type", "rotation"], "additionalProperties": false}),
        "shelve" | "shelveOffload" => any,
        "unshelve" if v.at_least(2, 91) => json!({"type": ["object", "null"], "properties": {
            "availability_zone": {"type": ["string", "null"]}, "host": {"type": "string"}},
            "additionalProperties": false}),
        "unshelve" if v.at_least(2, 77) => json!({"type": ["object", "null"], "properties": {
            "availability_zone": name()}, "required": ["availability_zone"],
            "additionalProperties": false}),
        "unshelve" => any,
        "evacuate" => evacuate(v),
        _ => return None,
    };
    Some(
        json!({"type": "object", "properties": {action: inner}, "required": [action],
                "additionalProperties": false}),
    )
}

/// `{"rebuild": {...}}` at `v` (nova's `rebuild`, `rebuild_v219` …
/// `rebuild_v294`).
fn rebuild(v: ApiVersion) -> Value {
    let mut props = json!({
        "name": name(),
        "imageRef": {"type": "string", "minLength": 1},
        "adminPass": {"type": "string"},
        "metadata": metadata(),
        "preserve_ephemeral": boolean(),
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
        "accessIPv4": {"type": "string", "format": "ipv4"},
        "accessIPv6": {"type": "string", "format": "ipv6"},
    });
    let p = props.as_object_mut().unwrap_or_else(|| unreachable!());
    if !v.at_least(2, 57) {
        p.insert("personality".into(), json!({"type": "array", "items": {
            "type": "object", "properties": {"path": {"type": "string"}, "contents": {"type": "string"}},
            "additionalProperties": false}}));
    } else {
        p.insert(
            "user_data".into(),
            json!({"type": ["string", "null"], "maxLength": 65535}),
        );
    }
    if v.at_least(2, 19) {
        p.insert(
            "description".into(),
            json!({"type": ["string", "null"], "maxLength": 255}),
        );
    }
    if v.at_least(2, 54) {
        p.insert(
            "key_name".into(),
            json!({"type": ["string", "null"], "minLength": 1, "maxLength": 255}),
        );
    }
    if v.at_least(2, 63) {
        p.insert(
            "trusted_image_certificates".into(),
            json!({"type": ["array", "null"],
            "minItems": 1, "maxItems": 50, "uniqueItems": true,
            "items": {"type": "string", "minLength": 1}}),
        );
    }
    if v.at_least(2, 90) {
        p.insert(
            "hostname".into(),
            json!({"type": "string", "minLength": 1, "maxLength": 255}),
        );
    }
    json!({"type": "object", "properties": props, "required": ["imageRef"], "additionalProperties": false})
}

/// `{"evacuate": {...}}` at `v` (nova's `evacuate`, `_v214`, `_v229`, `_v268`, `_v295`).
fn evacuate(v: ApiVersion) -> Value {
    let mut props = json!({
        "host": {"type": "string", "minLength": 1, "maxLength": 255},
        "adminPass": {"type": "string"},
    });
    let p = props.as_object_mut().unwrap_or_else(|| unreachable!());
    let mut required = vec![];
    if !v.at_least(2, 14) {
        p.insert("onSharedStorage".into(), boolean());
        required.push("onSharedStorage");
    }
    if v.at_least(2, 29) && !v.at_least(2, 68) {
        p.insert("force".into(), boolean());
    }
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

/// `POST /flavors`.
pub(crate) fn flavor_create(v: ApiVersion) -> Value {
    let mut props = json!({
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
        "id": {"type": ["string", "number", "null"], "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9._-]([a-zA-Z0-9. _-]*[a-zA-Z0-9._-])?$"},
        "ram": {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 1},
        "vcpus": {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 1},
        "disk": {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 0},
        "OS-FLV-EXT-DATA:ephemeral": {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 0},
        "swap": {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 0},
        "rxtx_factor": {"type": ["number", "string"], "minimum": 0},
        "os-flavor-access:is_public": boolean(),
    });
    if v.at_least(2, 55) {
        props["description"] = json!({"type": ["string", "null"], "maxLength": 65535});
    }
    json!({"type": "object", "properties": {"flavor": {"type": "object", "properties": props,
           "required": ["name", "ram", "vcpus", "disk"], "additionalProperties": false}},
           "required": ["flavor"], "additionalProperties": false})
}

/// `POST /os-keypairs` at `v`.
pub(crate) fn keypair_create(v: ApiVersion) -> Value {
    let mut props = json!({
        "name": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9 _.@-]+$"},
        "public_key": {"type": "string"},
    });
    if v.at_least(2, 2) {
        props["type"] = json!({"type": "string", "enum": ["ssh", "x509"]});
    }
    if v.at_least(2, 10) {
        props["user_id"] = json!({"type": "string"});
    }
    let mut required = vec!["name"];
    if v.at_least(2, 92) {
        required.push("public_key");
    }
    json!({"type": "object", "properties": {"keypair": {"type": "object", "properties": props,
           "required": required, "additionalProperties": false}},
           "required": ["keypair"], "additionalProperties": false})
}

/// `PUT /os-services/{id}` (2.53+).
pub(crate) fn service_update() -> Value {
    json!({"type": "object", "properties": {
        "status": {"type": "string", "enum": ["enabled", "disabled"]},
        "disabled_reason": {"type": "string", "minLength": 1, "maxLength": 255},
        "forced_down": boolean()}, "additionalProperties": false})
}

/// `POST /flavors/{id}/os-extra_specs`.
pub(crate) fn extra_specs() -> Value {
    json!({"type": "object", "properties": {"extra_specs": {"type": "object",
        "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": ["string", "number", "boolean"], "maxLength": 255}},
        "additionalProperties": false}}, "required": ["extra_specs"], "additionalProperties": false})
}

type Cache = Mutex<HashMap<(String, ApiVersion), Arc<jsonschema::Validator>>>;

/// Checks `body` against `schema` (compiled once per name and version);
/// a mismatch is Nova's 400 naming the field.
pub(crate) fn check(
    name: &str,
    v: ApiVersion,
    make: impl FnOnce() -> Value,
    body: &Value,
) -> Result<(), Fault> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Cache::default);
    let key = (name.to_owned(), v);
    let validator = {
        let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
        match c.get(&key) {
            Some(v) => v.clone(),
            None => {
                let compiled = jsonschema::options()
                    .should_validate_formats(true)
                    .build(&make())
                    .map_err(|e| Fault::internal(format!("schema {name}: {e}")))?;
                let compiled = Arc::new(compiled);
                c.insert(key, compiled.clone());
                compiled
            }
        }
    };
    if let Err(e) = validator.validate(body) {
        let path = e.instance_path().to_string();
        let field = path
            .rsplit('/')
            .find(|s| !s.is_empty())
            .unwrap_or("body")
            .to_owned();
        return Err(Fault::bad_request(format!(
            "Invalid input for field/attribute {field}. Value: {}. {e}",
            e.instance()
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn server_create_follows_the_microversion() {
        let v21 = ApiVersion(2, 1);
        let v37 = ApiVersion(2, 37);
        let body = json!({"server": {"name": "a", "flavorRef": "1"}});
        check("c", v21, || server_create(v21), &body).unwrap();
        let e = check("c", v37, || server_create(v37), &body).unwrap_err();
        assert!(e.message.contains("networks"), "{}", e.message);
        let auto = json!({"server": {"name": "a", "flavorRef": "1", "networks": "auto"}});
        check("c", v37, || server_create(v37), &auto).unwrap();
        let e = check(
            "c",
            v37,
            || server_create(v37),
            &json!({"server": {"name": "a", "flavorRef": "1", "networks": "auto", "bogus": 1}}),
        )
        .unwrap_err();
        assert!(e.message.contains("bogus"), "{}", e.message);
        let e = check(
            "c",
            v21,
            || server_create(v21),
            &json!({"server": {"name": " a", "flavorRef": "1"}}),
        )
        .unwrap_err();
        assert!(e.message.contains("name"), "{}", e.message);
    }
}
