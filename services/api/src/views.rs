//! Response bodies (Nova's `views/*.py`), per microversion.

use nova_objects::{Flavor, Instance, VersionedObject};
use nova_service::states::status_of;
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use crate::ApiState;
use crate::auth::Ctx;
use crate::microversion::ApiVersion;

/// ISO 8601 as Nova prints it (`2026-12-01T05:24:38Z`).
pub(crate) fn time(t: &Option<chrono::DateTime<chrono::Utc>>) -> Value {
    match t {
        // RFC 3339 to the second with `Z`: the same text as strftime
        // "%Y-%m-%dT%H:%M:%SZ", without parsing a format per call (it was
        // ~3 % of a GET /servers/{id}).
        Some(t) => json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        None => Value::Null,
    }
}

/// `OS-SRV-USG` times (microseconds, no zone).
pub(crate) fn usage_time(t: &Option<chrono::DateTime<chrono::Utc>>) -> Value {
    match t {
        Some(t) => {
            let mut s = t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            s.pop(); // the `Z`: nova prints these without a zone
            json!(s)
        }
        None => Value::Null,
    }
}

/// nova's `get_instance_availability_zone`: the zone the conductor
/// recorded when it placed the instance (its host's; the default zone for a
/// host in none), or before that the requested one (`""` when none).
fn availability_zone(st: &ApiState, i: &Instance) -> String {
    match (i.availability_zone(), i.host()) {
        (Some(z), _) => z.clone(),
        (None, Some(_)) => st.cfg.default_az.clone(),
        (None, None) => String::new(),
    }
}

fn links(st: &ApiState, kind: &str, id: &str) -> Value {
    json!([
        {"rel": "self", "href": format!("{}/v2.1/{kind}/{id}", st.cfg.public_url)},
        {"rel": "bookmark", "href": format!("{}/{kind}/{id}", st.cfg.public_url)},
    ])
}

/// `{"id", "name", "links"}` of a server.
/// nova's `get_networks_for_instance`: per network label (in the order
/// of the info cache's VIFs), its fixed IPs then its floating IPs, each
/// with its VIF's MAC (none when the cache was not loaded or is empty).
pub(crate) fn networks_of(i: &Instance) -> Vec<(String, Vec<Value>)> {
    let mut out: Vec<(String, Vec<Value>, Vec<Value>)> = vec![];
    if !i.obj_attr_is_set("info_cache") {
        return vec![];
    }
    let nw = nova_service::neutron::vifs_of_cache(
        i.info_cache()
            .as_ref()
            .and_then(|c| c.network_info().as_deref()),
    );
    for vif in &nw {
        if !vif["network"].is_object() {
            continue;
        }
        let label = vif["network"]["label"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let at = match out.iter().position(|(l, _, _)| *l == label) {
            Some(n) => n,
            None => {
                out.push((label, vec![], vec![]));
                out.len() - 1
            }
        };
        let ip = |addr: &Value, version: &Value, kind: &str| {
            json!({"address": addr, "version": version.as_u64().unwrap_or(4), "type": kind,
                "mac_address": vif["address"]})
        };
        for subnet in vif["network"]["subnets"].as_array().into_iter().flatten() {
            for fixed in subnet["ips"].as_array().into_iter().flatten() {
                out[at]
                    .1
                    .push(ip(&fixed["address"], &fixed["version"], "fixed"));
                for f in fixed["floating_ips"].as_array().into_iter().flatten() {
                    out[at].2.push(ip(&f["address"], &f["version"], "floating"));
                }
            }
        }
    }
    out.into_iter()
        .map(|(label, mut ips, floating)| {
            ips.extend(floating);
            (label, ips)
        })
        .collect()
}

/// nova's address view of one IP (`extend`: with its type and MAC, as the
/// server view shows them).
pub(crate) fn address(ip: &Value, extend: bool) -> Value {
    let mut a = json!({"version": ip["version"], "addr": ip["address"]});
    if extend {
        a["OS-EXT-IPS:type"] = ip["type"].clone();
        a["OS-EXT-IPS-MAC:mac_addr"] = ip["mac_address"].clone();
    }
    a
}

/// nova's `addresses` of a server (`extend`: the server view's extended
/// attributes).
pub(crate) fn addresses_of(i: &Instance, extend: bool) -> Value {
    Value::Object(
        networks_of(i)
            .into_iter()
            .map(|(label, ips)| {
                let list = ips.iter().map(|ip| address(ip, extend)).collect();
                (label, Value::Array(list))
            })
            .collect(),
    )
}

pub(crate) fn server_brief(st: &ApiState, i: &Instance) -> Value {
    json!({"id": i.uuid(), "name": i.display_name().clone().unwrap_or_default(), "links": links(st, "servers", i.uuid())})
}

/// Nova's `hostId`: sha224 of project and host (empty without a host).
pub(crate) fn host_id(project: &str, host: &Option<String>) -> String {
    match host {
        Some(h) if !h.is_empty() => {
            hex::encode(sha2::Sha224::digest(format!("{project}{h}").as_bytes()))
        }
        _ => String::new(),
    }
}

/// A server's full view at microversion `v` for caller `ctx`.
pub(crate) fn server(st: &ApiState, ctx: &Ctx, v: ApiVersion, i: &Instance, show: bool) -> Value {
    let project = i.project_id().clone().unwrap_or_default();
    let vm = i.vm_state().clone().unwrap_or_default();
    let task = i.task_state().clone();
    let status = status_of(i.vm_state().as_deref(), task.as_deref());
    let image = match i.image_ref().as_deref() {
        Some(id) if !id.is_empty() => {
            let mut img = json!({"id": id, "links": [{"rel": "bookmark", "href": format!("{}/images/{id}", st.cfg.public_url)}]});
            if v.at_least(2, 98)
                && let Some(meta) = st.images.get(id)
            {
                let props: Map<String, Value> = meta
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .filter(|(k, _)| {
                                k.starts_with("hw_")
                                    || k.starts_with("os_")
                                        && *k != "os_hash_algo"
                                        && *k != "os_hash_value"
                                        && *k != "os_hidden"
                            })
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                img["properties"] = Value::Object(props);
            }
            img
        }
        _ => json!(""),
    };
    let flavor = if i.obj_attr_is_set("flavor") {
        flavor_embedded(st, v, i.flavor())
    } else {
        json!({})
    };
    let mut s = json!({
        "id": i.uuid(),
        "name": i.display_name().clone().unwrap_or_default(),
        "status": status,
        "tenant_id": project,
        "user_id": i.user_id().clone().unwrap_or_default(),
        "metadata": i.metadata(),
        "hostId": host_id(&project, i.host()),
        "image": image,
        "flavor": flavor,
        "created": time(i.created_at()),
        "updated": time(&i.updated_at().or(*i.created_at())),
        "addresses": addresses_of(i, true),
        "accessIPv4": i.access_ip_v4().clone().unwrap_or_default(),
        "accessIPv6": i.access_ip_v6().clone().unwrap_or_default(),
        "links": links(st, "servers", i.uuid()),
        "OS-DCF:diskConfig": if *i.auto_disk_config() { "AUTO" } else { "MANUAL" },
        "OS-EXT-AZ:availability_zone": availability_zone(st, i),
        "config_drive": i.config_drive().clone().unwrap_or_default(),
        "key_name": i.key_name(),
        "OS-SRV-USG:launched_at": usage_time(i.launched_at()),
        "OS-SRV-USG:terminated_at": usage_time(i.terminated_at()),
        "OS-EXT-STS:task_state": task,
        "OS-EXT-STS:vm_state": vm,
        "OS-EXT-STS:power_state": i.power_state().unwrap_or(0),
        "os-extended-volumes:volumes_attached": [],
    });
    let o = s.as_object_mut().unwrap_or_else(|| unreachable!());
    if status == "BUILD" || status == "ACTIVE" {
        o.insert("progress".into(), json!(i.progress().unwrap_or(0)));
    }
    if ctx.is_admin() {
        o.insert("OS-EXT-SRV-ATTR:host".into(), json!(i.host()));
        o.insert(
            "OS-EXT-SRV-ATTR:hypervisor_hostname".into(),
            json!(i.node()),
        );
        o.insert(
            "OS-EXT-SRV-ATTR:instance_name".into(),
            json!(nova_service::instance_name::instance_name(
                &st.cfg.instance_name_template,
                *i.id(),
                i.uuid()
            )),
        );
        if v.at_least(2, 3) {
            o.insert(
                "OS-EXT-SRV-ATTR:reservation_id".into(),
                json!(i.reservation_id()),
            );
            o.insert(
                "OS-EXT-SRV-ATTR:launch_index".into(),
                json!(i.launch_index()),
            );
            o.insert(
                "OS-EXT-SRV-ATTR:kernel_id".into(),
                json!(i.kernel_id().clone().unwrap_or_default()),
            );
            o.insert(
                "OS-EXT-SRV-ATTR:ramdisk_id".into(),
                json!(i.ramdisk_id().clone().unwrap_or_default()),
            );
            o.insert(
                "OS-EXT-SRV-ATTR:root_device_name".into(),
                json!(i.root_device_name()),
            );
            o.insert("OS-EXT-SRV-ATTR:user_data".into(), json!(i.user_data()));
            if !v.at_least(2, 90) {
                o.insert("OS-EXT-SRV-ATTR:hostname".into(), json!(i.hostname()));
            }
        }
        // Only where the handler loaded the host's service (nova's
        // `show_host_status`).
        if v.at_least(2, 16)
            && let Some(hs) = crate::compute_api::host_status::host_status(st, i)
        {
            o.insert("host_status".into(), json!(hs));
        }
    }
    if v.at_least(2, 90) {
        o.insert("OS-EXT-SRV-ATTR:hostname".into(), json!(i.hostname()));
    }
    if v.at_least(2, 9) {
        o.insert("locked".into(), json!(i.locked()));
    }
    if v.at_least(2, 73) {
        let reason = i.system_metadata().get("locked_reason").cloned().flatten();
        o.insert("locked_reason".into(), json!(reason));
    }
    if v.at_least(2, 19) {
        o.insert("description".into(), json!(i.display_description()));
    }
    if v.at_least(2, 26) {
        o.insert("tags".into(), json!(crate::compute_api::tags::tags_of(i)));
    }
    if v.at_least(2, 63) {
        o.insert(
            "trusted_image_certificates".into(),
            json!(trusted_cert_ids(i)),
        );
    }
    if v.at_least(2, 71) && show {
        o.insert("server_groups".into(), json!([]));
    }
    if v.at_least(2, 96) {
        o.insert(
            "pinned_availability_zone".into(),
            json!(i.availability_zone()),
        );
    }
    // 2.100's `scheduler_hints` come from the request specs: the handlers
    // put them in (`compute_api::sched_hints::fill`).
    if matches!(status, "ERROR" | "DELETED")
        && let Some(f) = i.fault()
    {
        let mut fault = json!({"code": f.code(), "created": time(f.created_at()), "message": f.message().clone().unwrap_or_default()});
        if ctx.is_admin() {
            fault["details"] = json!(f.details().clone().unwrap_or_default());
        }
        o.insert("fault".into(), fault);
    }
    s
}

/// The ids of an instance's `TrustedCerts` (null without).
fn trusted_cert_ids(i: &Instance) -> Option<Vec<String>> {
    if !i.obj_attr_is_set("trusted_certs") {
        return None;
    }
    let ids = i.trusted_certs().as_ref()?.0["nova_object.data"]["ids"].as_array()?;
    Some(
        ids.iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
    )
}

/// The answer of `PUT /servers/{id}`: before 2.75 nova's update view
/// leaves out the zone, config drive, key name, usage times, security
/// groups, extended attributes and statuses, volumes and host status;
/// from 2.75 it is the show view.
pub(crate) fn server_updated(st: &ApiState, ctx: &Ctx, v: ApiVersion, i: &Instance) -> Value {
    let mut s = server(st, ctx, v, i, true);
    if !v.at_least(2, 75)
        && let Some(o) = s.as_object_mut()
    {
        o.retain(|k, _| {
            !(k.starts_with("OS-EXT-")
                || k.starts_with("OS-SRV-USG:")
                || k.starts_with("os-extended-volumes:")
                || matches!(
                    k.as_str(),
                    "config_drive" | "key_name" | "security_groups" | "host_status"
                ))
        });
    }
    s
}

/// The flavor inside a server: a link before 2.47, the flavor itself since.
pub(crate) fn flavor_embedded(st: &ApiState, v: ApiVersion, f: &Flavor) -> Value {
    if v.at_least(2, 47) {
        let mut out = json!({
            "vcpus": f.vcpus(), "ram": f.memory_mb(), "disk": f.root_gb(),
            "ephemeral": f.ephemeral_gb(), "swap": f.swap(),
            "original_name": f.name().clone().unwrap_or_default(),
        });
        out["extra_specs"] = json!(f.extra_specs());
        out
    } else {
        json!({"id": f.flavorid(), "links": [{"rel": "bookmark", "href": format!("{}/flavors/{}", st.cfg.public_url, f.flavorid())}]})
    }
}

/// A flavor's view (`brief`: id, name, links).
pub(crate) fn flavor(
    st: &ApiState,
    v: ApiVersion,
    f: &Flavor,
    brief: bool,
    with_specs: bool,
) -> Value {
    let mut out = json!({"id": f.flavorid(), "name": f.name().clone().unwrap_or_default(), "links": links(st, "flavors", f.flavorid())});
    if v.at_least(2, 55) {
        out["description"] = json!(f.description());
    }
    if brief {
        return out;
    }
    out["ram"] = json!(f.memory_mb());
    out["vcpus"] = json!(f.vcpus());
    out["disk"] = json!(f.root_gb());
    out["OS-FLV-EXT-DATA:ephemeral"] = json!(f.ephemeral_gb());
    out["swap"] = if v.at_least(2, 75) || *f.swap() != 0 {
        json!(f.swap())
    } else {
        json!("")
    };
    out["rxtx_factor"] = json!(f.rxtx_factor().unwrap_or(1.0));
    out["os-flavor-access:is_public"] = json!(f.is_public());
    out["OS-FLV-DISABLED:disabled"] = json!(f.disabled());
    if v.at_least(2, 61) && with_specs {
        out["extra_specs"] = json!(f.extra_specs());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_nova_prints_them() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-01T05:24:38.123456789Z")
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok();
        assert_eq!(time(&t), json!("2026-12-01T05:24:38Z"));
        assert_eq!(usage_time(&t), json!("2026-12-01T05:24:38.123456"));
        let whole = chrono::DateTime::parse_from_rfc3339("2026-12-01T05:24:38Z")
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok();
        assert_eq!(usage_time(&whole), json!("2026-12-01T05:24:38.000000"));
        assert_eq!(time(&None), Value::Null);
    }
}
