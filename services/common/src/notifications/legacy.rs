//! The legacy (unversioned) payloads nova still sends when
//! `notification_format` is `unversioned` (its default) or `both`:
//! `nova.notifications.base.info_from_instance` and friends.

use nova_objects::{DateTime, Instance, VersionedObject};
use nova_rpc::RequestContext;
use serde_json::{Map, Value, json};

use super::payloads::ExceptionPayload;

/// Python's `str(datetime)` of an aware UTC time (`2012-10-29 13:42:11+00:00`).
fn py_str(t: &DateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S%:z").to_string()
}

/// nova's `utils.strtime` (`%Y-%m-%dT%H:%M:%S.%f`), `''` for none.
pub fn strtime(t: &Option<DateTime>) -> String {
    t.as_ref()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
        .unwrap_or_default()
}

/// nova's `info_from_instance`: the legacy instance payload.
/// `image_url_base` is the image API's URL (`image_ref_url` is
/// `<base>/images/<id>`; without one, the image id as nova falls back to).
pub fn info_from_instance(i: &Instance, image_url_base: Option<&str>) -> Map<String, Value> {
    let set = |k: &str| i.obj_attr_is_set(k);
    let f = i.flavor();
    let has_flavor = set("flavor");
    let image_ref_url = i.image_ref().as_ref().map(|id| match image_url_base {
        Some(base) => format!("{}/images/{id}", base.trim_end_matches('/')),
        None => id.clone(),
    });
    let image_meta: Map<String, Value> = i
        .system_metadata()
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("image_").map(|k| (k.to_owned(), json!(v))))
        .collect();
    let info = json!({
        "tenant_id": i.project_id(),
        "user_id": i.user_id(),
        "instance_id": i.uuid(),
        "display_name": i.display_name(),
        "reservation_id": i.reservation_id(),
        "hostname": i.hostname(),
        "instance_type": if has_flavor { f.name().clone().unwrap_or_default() } else { String::new() },
        "instance_type_id": i.instance_type_id(),
        "instance_flavor_id": if has_flavor { f.flavorid().clone() } else { String::new() },
        "architecture": i.architecture(),
        "memory_mb": f.memory_mb(),
        "disk_gb": f.root_gb() + f.ephemeral_gb(),
        "vcpus": f.vcpus(),
        "root_gb": f.root_gb(),
        "ephemeral_gb": f.ephemeral_gb(),
        "host": i.host(),
        "node": i.node(),
        "availability_zone": i.availability_zone(),
        "cell_name": i.cell_name().clone().unwrap_or_default(),
        "created_at": i.created_at().as_ref().map(py_str).unwrap_or_else(|| "None".to_owned()),
        "terminated_at": strtime(i.terminated_at()),
        "deleted_at": strtime(i.deleted_at()),
        "launched_at": strtime(i.launched_at()),
        "image_ref_url": image_ref_url,
        "os_type": i.os_type(),
        "kernel_id": i.kernel_id(),
        "ramdisk_id": i.ramdisk_id(),
        "state": i.vm_state(),
        "state_description": i.task_state().clone().unwrap_or_default(),
        "progress": match i.progress() { Some(p) if *p != 0 => json!(p), _ => json!("") },
        "access_ip_v4": i.access_ip_v4(),
        "access_ip_v6": i.access_ip_v6(),
        "image_meta": image_meta,
        "metadata": i.metadata(),
    });
    match info {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// nova's `fixed_ips` list of a network_info (legacy `create.end`).
pub fn fixed_ips(network_info: &Value) -> Value {
    let mut out = Vec::new();
    for vif in network_info.as_array().into_iter().flatten() {
        for subnet in vif["network"]["subnets"].as_array().into_iter().flatten() {
            for ip in subnet["ips"].as_array().into_iter().flatten() {
                if ip["type"].as_str().is_some_and(|t| t != "fixed") {
                    continue;
                }
                let mut ip = ip.clone();
                if let Some(o) = ip.as_object_mut() {
                    o.insert("label".into(), vif["network"]["label"].clone());
                    o.insert("vif_mac".into(), vif["address"].clone());
                }
                out.push(ip);
            }
        }
    }
    Value::Array(out)
}

/// nova's `exception_to_dict` merged into a legacy payload.
pub fn add_fault(payload: &mut Map<String, Value>, fault: &ExceptionPayload) {
    let message: String = fault.exception_message.chars().take(255).collect();
    payload.insert("exception".into(), json!(fault.exception_message));
    payload.insert("message".into(), json!(message));
    payload.insert("code".into(), json!(500));
}

/// The legacy keypair payload (`keypair.*`, from the API).
pub fn keypair(ctx: &RequestContext, key_name: &str) -> Value {
    json!({
        "tenant_id": ctx.project_id(),
        "user_id": ctx.user_id(),
        "key_name": key_name,
    })
}

/// Python's `repr` of a JSON value (`'text'`, `None`, `True`, `{'k': 1}`).
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => py_str_repr(s),
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", py_str_repr(k), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Python's `repr(str)`: single quotes unless the text holds one and no
/// double quote; backslashes, the quote and control characters escaped.
fn py_str_repr(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// What oslo's JSON payload serializer makes of a nova exception in a
/// legacy payload: `repr(exc)`, nova's `NovaException.__repr__` (the
/// `str` of `{'kwargs': exc.kwargs, 'message': …, 'class': …}`, the
/// keywords in the order given, `code` last as nova adds it; a class
/// received over RPC is named `<Class>_Remote`).
pub fn nova_exception_repr(class: &str, message: &str, kwargs: &[(String, Value)]) -> String {
    let kw = kwargs
        .iter()
        .map(|(k, v)| format!("{}: {}", py_str_repr(k), py_repr(v)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{{'kwargs': {{{kw}}}, 'message': {}, 'class': {}}}",
        py_str_repr(message),
        py_str_repr(class)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The strings are Python's own (`repr(exception.NoValidHost(reason="it's"))`,
    /// and an `InstanceNotFound` deserialized by oslo.messaging).
    #[test]
    fn nova_exception_reprs_are_pythons() {
        assert_eq!(
            nova_exception_repr(
                "NoValidHost",
                "No valid host was found. it's",
                &[
                    ("reason".into(), json!("it's")),
                    ("code".into(), json!(500))
                ]
            ),
            r#"{'kwargs': {'reason': "it's", 'code': 500}, 'message': "No valid host was found. it's", 'class': 'NoValidHost'}"#
        );
        assert_eq!(
            nova_exception_repr(
                "InstanceNotFound_Remote",
                "Instance abc could not be found.",
                &[
                    ("instance_id".into(), json!("abc")),
                    ("code".into(), json!(404))
                ]
            ),
            "{'kwargs': {'instance_id': 'abc', 'code': 404}, 'message': 'Instance abc could not be found.', 'class': 'InstanceNotFound_Remote'}"
        );
        assert_eq!(
            py_repr(&json!({"a": [null, true, 1.5, "x\\y\n"]})),
            r"{'a': [None, True, 1.5, 'x\\y\n']}"
        );
    }
}
