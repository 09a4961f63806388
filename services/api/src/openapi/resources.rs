//! Success bodies of the routes besides servers, flavors, keypairs and
//! limits (those are in `responses.rs`): the server sub-resources, the
//! admin APIs, quotas, usage and nova's proxies, as our handlers render
//! them (`handlers/servers/*`, `admin.rs`, `aggregates.rs`, `hosts.rs`,
//! `quotas/api.rs`, `usage.rs`, `secgroups.rs`, the `*_proxy.rs`), which
//! follow nova 34's views (tempest's `api_schema/response/compute`).
//!
//! Times our views print without a zone (nova's `2012-10-29T13:42:02.000000`)
//! are plain strings here, not `date-time`s.

use serde_json::{Map, Value, json};

use super::responses::Success;
use crate::microversion::ApiVersion;
use crate::quotas;

fn links() -> Value {
    json!({"type": "array", "items": {"$ref": "#/components/schemas/Link"}})
}

/// `{key: inner}` and nothing else.
fn wrap(key: &str, inner: Value) -> Value {
    json!({"type": "object", "properties": {key: inner}, "required": [key], "additionalProperties": false})
}

/// `{key: [item]}`, and `{key}_links` when `paged`.
fn list(key: &str, item: Value, paged: bool) -> Value {
    let mut props = json!({key: {"type": "array", "items": item}});
    if paged {
        props[format!("{key}_links")] = links();
    }
    json!({"type": "object", "properties": props, "required": [key], "additionalProperties": false})
}

/// An object of exactly `props`, all required but `optional`.
fn strict(props: Value, optional: &[&str]) -> Value {
    let required: Vec<&String> = props
        .as_object()
        .map(|o| {
            o.keys()
                .filter(|k| !optional.contains(&k.as_str()))
                .collect()
        })
        .unwrap_or_default();
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

fn s() -> Value {
    json!({"type": "string"})
}

fn s_or_null() -> Value {
    json!({"type": ["string", "null"]})
}

fn int() -> Value {
    json!({"type": "integer"})
}

fn int_or_null() -> Value {
    json!({"type": ["integer", "null"]})
}

fn string_map() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}})
}

/// A version 4/6 address of `ips` (no extended attributes).
fn address() -> Value {
    strict(
        json!({"version": {"type": "integer", "enum": [4, 6]}, "addr": s()}),
        &[],
    )
}

// --- server sub-resources ---

fn instance_action(v: ApiVersion) -> Map<String, Value> {
    let mut p = Map::new();
    for k in [
        "action",
        "instance_uuid",
        "request_id",
        "user_id",
        "project_id",
        "start_time",
        "message",
    ] {
        p.insert(k.into(), s_or_null());
    }
    if v.at_least(2, 58) {
        p.insert("updated_at".into(), s_or_null());
    }
    p
}

fn action_event() -> Value {
    strict(
        json!({"event": s_or_null(), "start_time": s_or_null(), "finish_time": s_or_null(),
               "result": s_or_null(), "traceback": s_or_null(), "host": s_or_null(),
               "hostId": s(), "details": s_or_null()}),
        &["traceback", "host", "hostId", "details"],
    )
}

fn instance_actions(v: ApiVersion) -> Value {
    let mut out = wrap(
        "instanceActions",
        json!({"type": "array", "items": strict(Value::Object(instance_action(v)), &[])}),
    );
    if v.at_least(2, 58) {
        out["properties"]["links"] = links();
    }
    out
}

fn instance_action_show(v: ApiVersion) -> Value {
    let mut p = instance_action(v);
    p.insert(
        "events".into(),
        json!({"type": "array", "items": action_event()}),
    );
    wrap("instanceAction", strict(Value::Object(p), &["events"]))
}

/// A port attachment of `os-interface`.
fn interface(v: ApiVersion) -> Value {
    let mut p = json!({
        "net_id": s_or_null(), "port_id": s_or_null(), "mac_addr": s_or_null(),
        "port_state": s_or_null(),
        "fixed_ips": {"type": ["array", "null"], "items": {"type": "object", "properties": {
            "subnet_id": s(), "ip_address": s()}}},
    });
    if v.at_least(2, 70) {
        p["tag"] = s_or_null();
    }
    strict(p, &[])
}

/// A migration of `/servers/{id}/migrations`.
fn server_migration(v: ApiVersion) -> Value {
    let mut p = json!({"id": int(), "created_at": s_or_null(), "updated_at": s_or_null(),
                       "server_uuid": s_or_null(), "status": s_or_null()});
    for k in [
        "dest_compute",
        "dest_host",
        "dest_node",
        "source_compute",
        "source_node",
    ] {
        p[k] = s_or_null();
    }
    for k in [
        "disk_processed_bytes",
        "disk_remaining_bytes",
        "disk_total_bytes",
        "memory_processed_bytes",
        "memory_remaining_bytes",
        "memory_total_bytes",
    ] {
        p[k] = int_or_null();
    }
    if v.at_least(2, 59) {
        p["uuid"] = s();
    }
    if v.at_least(2, 80) {
        p["user_id"] = s_or_null();
        p["project_id"] = s_or_null();
    }
    strict(p, &[])
}

/// A migration of `/os-migrations` (hosts `null` for non-admins).
fn os_migration(v: ApiVersion) -> Value {
    let mut p = json!({"id": int(), "created_at": s_or_null(), "updated_at": s_or_null(),
                       "instance_uuid": s_or_null(), "status": s_or_null(),
                       "new_instance_type_id": int_or_null(), "old_instance_type_id": int_or_null()});
    for k in [
        "dest_compute",
        "dest_host",
        "dest_node",
        "source_compute",
        "source_node",
    ] {
        p[k] = s_or_null();
    }
    let mut optional = vec![];
    if v.at_least(2, 23) {
        p["migration_type"] = s_or_null();
        p["links"] = links();
        optional.push("links");
    }
    if v.at_least(2, 59) {
        p["uuid"] = s();
    }
    if v.at_least(2, 80) {
        p["user_id"] = s_or_null();
        p["project_id"] = s_or_null();
    }
    strict(p, &optional)
}

/// nova's 2.48 diagnostics (before: the driver's own dict).
fn diagnostics(v: ApiVersion) -> Value {
    if !v.at_least(2, 48) {
        return json!({"type": "object"});
    }
    let objects = json!({"type": "array", "items": {"type": "object"}});
    strict(
        json!({"state": s_or_null(), "driver": s_or_null(), "hypervisor": s_or_null(),
               "hypervisor_os": s_or_null(), "uptime": int_or_null(),
               "config_drive": {"type": ["boolean", "null"]}, "num_cpus": int_or_null(),
               "num_nics": int_or_null(), "num_disks": int_or_null(),
               "disk_details": objects, "cpu_details": objects, "nic_details": objects,
               "memory_details": {"type": "object", "properties": {
                   "maximum": int_or_null(), "used": int_or_null()}}}),
        &[],
    )
}

fn topology() -> Value {
    let ints = json!({"type": "array", "items": {"type": "integer"}});
    let node = strict(
        json!({"vcpu_set": ints, "siblings": {"type": "array", "items": ints},
               "memory_mb": int_or_null(), "host_node": int_or_null(),
               "cpu_pinning": {"type": "object", "additionalProperties": {"type": "integer"}}}),
        &["host_node", "cpu_pinning"],
    );
    strict(
        json!({"nodes": {"type": "array", "items": node}, "pagesize_kb": int_or_null()}),
        &[],
    )
}

// --- flavors' sub-resources ---

fn flavor_access() -> Value {
    wrap(
        "flavor_access",
        json!({"type": "array", "items": strict(json!({"flavor_id": s(), "tenant_id": s()}), &[])}),
    )
}

/// Extra specs as given (a `PUT`/`POST` echoes numbers and booleans).
fn spec_values(echo: bool) -> Value {
    if echo {
        json!({"type": ["string", "number", "boolean"]})
    } else {
        s()
    }
}

fn one_spec(echo: bool) -> Value {
    json!({"type": "object", "minProperties": 1, "maxProperties": 1,
           "additionalProperties": spec_values(echo)})
}

// --- admin APIs ---

fn hypervisor(v: ApiVersion, detail: bool) -> Value {
    let id = if v.at_least(2, 53) { s() } else { int() };
    let mut p = json!({"id": id, "hypervisor_hostname": s_or_null(),
                       "state": {"type": "string", "enum": ["up", "down"]},
                       "status": {"type": "string", "enum": ["enabled", "disabled"]}});
    if detail {
        p["host_ip"] = s_or_null();
        p["hypervisor_type"] = s_or_null();
        p["hypervisor_version"] = int_or_null();
        let sid = if v.at_least(2, 53) {
            s_or_null()
        } else {
            int_or_null()
        };
        p["service"] = strict(
            json!({"host": s_or_null(), "id": sid, "disabled_reason": s_or_null()}),
            &[],
        );
        if v.at_least(2, 88) {
            p["uptime"] = s_or_null();
        } else {
            for k in [
                "vcpus",
                "memory_mb",
                "local_gb",
                "vcpus_used",
                "memory_mb_used",
                "local_gb_used",
                "free_ram_mb",
                "free_disk_gb",
                "current_workload",
                "running_vms",
                "disk_available_least",
            ] {
                p[k] = int_or_null();
            }
            // An object from 2.28 (the driver's text when it is not JSON).
            p["cpu_info"] = if v.at_least(2, 28) {
                json!({})
            } else {
                s_or_null()
            };
        }
    }
    // `with_servers` (2.53) adds the node's servers.
    if v.at_least(2, 53) {
        p["servers"] = hypervisor_servers();
    }
    strict(p, &["servers"])
}

/// A hypervisor's `servers`: each one's name and uuid.
fn hypervisor_servers() -> Value {
    json!({"type": "array", "items": strict(json!({"name": s(), "uuid": s()}), &[])})
}

/// `/os-hypervisors/{id}/servers` and `/uptime`: the brief view and more.
fn hypervisor_with(v: ApiVersion, key: &str, schema: Value, optional: bool) -> Value {
    let mut h = hypervisor(v, false);
    h["properties"][key] = schema;
    if !optional && let Some(r) = h["required"].as_array_mut() {
        r.push(json!(key));
    }
    h
}

fn hypervisor_statistics() -> Value {
    let mut p = Map::new();
    for k in [
        "count",
        "vcpus",
        "memory_mb",
        "local_gb",
        "vcpus_used",
        "memory_mb_used",
        "local_gb_used",
        "free_ram_mb",
        "free_disk_gb",
        "current_workload",
        "running_vms",
        "disk_available_least",
    ] {
        p.insert(k.into(), int());
    }
    wrap("hypervisor_statistics", strict(Value::Object(p), &[]))
}

fn service(v: ApiVersion) -> Value {
    let id = if v.at_least(2, 53) { s() } else { int() };
    let mut p = json!({"id": id, "binary": s_or_null(), "host": s(), "zone": s(),
                       "status": {"type": "string", "enum": ["enabled", "disabled"]},
                       "state": {"type": "string", "enum": ["up", "down"]},
                       "updated_at": s_or_null(), "disabled_reason": s_or_null()});
    if v.at_least(2, 11) {
        p["forced_down"] = json!({"type": "boolean"});
    }
    strict(p, &[])
}

/// `PUT /os-services/{action}` before 2.53: what changed.
fn service_action() -> Value {
    wrap(
        "service",
        strict(
            json!({"host": s(), "binary": s(),
                   "status": {"type": "string", "enum": ["enabled", "disabled"]},
                   "disabled_reason": s(), "forced_down": {"type": "boolean"}}),
            &["status", "disabled_reason", "forced_down"],
        ),
    )
}

fn zones(detail: bool) -> Value {
    let state = strict(
        json!({"available": {"type": "boolean"}, "active": {"type": "boolean"},
               "updated_at": s_or_null()}),
        &[],
    );
    let hosts = if detail {
        json!({"type": "object", "additionalProperties": {"type": "object",
            "additionalProperties": state}})
    } else {
        json!({"type": "null"})
    };
    list(
        "availabilityZoneInfo",
        strict(
            json!({"zoneName": s(),
                   "zoneState": strict(json!({"available": {"type": "boolean"}}), &[]),
                   "hosts": hosts}),
            &[],
        ),
        false,
    )
}

fn aggregate(v: ApiVersion, brief: bool) -> Value {
    let mut p = json!({"id": int(), "name": s_or_null(), "availability_zone": s_or_null(),
                       "created_at": s_or_null(), "updated_at": s_or_null(),
                       "deleted_at": s_or_null(), "deleted": {"type": "boolean"}});
    if !brief {
        p["hosts"] = json!({"type": "array", "items": {"type": "string"}});
        p["metadata"] = string_map();
    }
    if v.at_least(2, 41) {
        p["uuid"] = s();
    }
    strict(p, &[])
}

fn server_group(v: ApiVersion) -> Value {
    let mut p = json!({"id": s(), "name": s_or_null(),
                       "members": {"type": "array", "items": {"type": "string"}}});
    if v.at_least(2, 64) {
        p["policy"] = s_or_null();
        p["rules"] =
            json!({"type": "object", "additionalProperties": {"type": ["integer", "string"]}});
    } else {
        p["policies"] = json!({"type": "array", "items": {"type": "string"}});
        p["metadata"] = json!({"type": "object", "maxProperties": 0});
    }
    if v.at_least(2, 13) {
        p["project_id"] = s_or_null();
        p["user_id"] = s_or_null();
    }
    strict(p, &[])
}

fn external_events() -> Value {
    list(
        "events",
        strict(
            json!({"server_uuid": s_or_null(), "name": s_or_null(), "status": s_or_null(),
                   "code": int(), "tag": s()}),
            &["tag"],
        ),
        false,
    )
}

/// A quota (class) set: `id` (not on an update's reply) and the
/// resources the handlers show at `v` (`detail`: limit, in use, reserved).
fn quota_set(key: &str, resources: &[&str], id: bool, detail: bool) -> Value {
    let mut p = Map::new();
    if id {
        p.insert("id".into(), s());
    }
    let each = if detail {
        strict(
            json!({"limit": int(), "in_use": int(), "reserved": int()}),
            &[],
        )
    } else {
        int()
    };
    for r in resources {
        p.insert((*r).to_owned(), each.clone());
    }
    wrap(key, strict(Value::Object(p), &[]))
}

fn tenant_usage() -> Value {
    let server = strict(
        json!({"hours": {"type": "number"}, "flavor": s(), "instance_id": s(),
               "name": s_or_null(), "tenant_id": s(), "memory_mb": int(),
               "local_gb": int(), "vcpus": int(), "started_at": s(), "ended_at": s_or_null(),
               "state": s(), "uptime": int()}),
        &[],
    );
    let mut p = json!({"tenant_id": s(), "total_local_gb_usage": {"type": "number"},
                       "total_vcpus_usage": {"type": "number"},
                       "total_memory_mb_usage": {"type": "number"},
                       "total_hours": {"type": "number"}, "start": s(), "stop": s()});
    p["server_usages"] = json!({"type": "array", "items": server});
    strict(p, &["server_usages"])
}

fn audit_log() -> Value {
    strict(
        json!({"period_beginning": s(), "period_ending": s(), "num_hosts": int(),
               "num_hosts_done": int(), "num_hosts_running": int(),
               "num_hosts_not_run": int(),
               "hosts_not_run": {"type": "array", "items": {"type": "string"}},
               "total_instances": int(), "total_errors": int(), "overall_status": s(),
               "log": {"type": "object", "additionalProperties": strict(
                   json!({"state": s_or_null(), "instances": int(), "errors": int(),
                          "message": s_or_null()}), &[])}}),
        &[],
    )
}

fn extension() -> Value {
    strict(
        json!({"alias": s(), "description": s(), "links": {"type": "array"}, "name": s(),
               "namespace": s(), "updated": s()}),
        &[],
    )
}

fn host_resource() -> Value {
    wrap(
        "resource",
        strict(
            json!({"host": s(), "project": s(), "cpu": int(), "memory_mb": int(),
                   "disk_gb": int()}),
            &[],
        ),
    )
}

// --- nova's network and image proxies ---

fn security_group() -> Value {
    let rule = strict(
        json!({"id": s_or_null(), "parent_group_id": s_or_null(), "ip_protocol": s_or_null(),
               "from_port": int_or_null(), "to_port": int_or_null(),
               "group": strict(json!({"name": s_or_null(), "tenant_id": s_or_null()}),
                               &["name", "tenant_id"]),
               "ip_range": strict(json!({"cidr": s()}), &["cidr"])}),
        &[],
    );
    strict(
        json!({"id": s_or_null(), "description": s_or_null(), "name": s_or_null(),
               "tenant_id": s_or_null(), "rules": {"type": "array", "items": rule}}),
        &[],
    )
}

/// A rule as `POST /os-security-group-rules` answers it (`{}` for an
/// egress rule).
fn security_group_rule() -> Value {
    let mut r = security_group()["properties"]["rules"]["items"].clone();
    r.as_object_mut().map(|o| o.remove("required"));
    wrap("security_group_rule", r)
}

fn floating_ip() -> Value {
    strict(
        json!({"fixed_ip": s_or_null(), "id": s_or_null(), "instance_id": s_or_null(),
               "ip": s_or_null(), "pool": s_or_null()}),
        &[],
    )
}

/// nova's `network_dict`: every field but `id` and `label` is `null`.
fn network() -> Value {
    json!({"type": "object", "required": ["id", "label"],
           "properties": {"id": s_or_null(), "label": s_or_null()}})
}

fn tenant_network() -> Value {
    strict(
        json!({"id": s_or_null(), "cidr": s(), "label": s_or_null()}),
        &[],
    )
}

fn image(brief: bool) -> Value {
    if brief {
        return strict(
            json!({"id": s(), "name": s_or_null(), "links": links()}),
            &[],
        );
    }
    let server = strict(json!({"id": s(), "links": links()}), &[]);
    strict(
        json!({"id": s(), "name": s_or_null(), "minRam": int(), "minDisk": int(),
               "metadata": {"type": "object"}, "created": s_or_null(),
               "updated": s_or_null(),
               "status": {"type": "string", "enum": ["ACTIVE", "SAVING", "DELETED", "ERROR", "UNKNOWN"]},
               "progress": int(), "OS-EXT-IMG-SIZE:size": int_or_null(), "links": links(),
               "server": server,
               "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]}}),
        &["server", "OS-DCF:diskConfig"],
    )
}

/// The success codes and bodies of the routes this file knows; `None`
/// for the others.
pub(crate) fn success(path: &str, method: &str, v: ApiVersion) -> Option<Success> {
    let ok = |s: Value| Some(vec![("200", Some(s))]);
    let accepted = || Some(vec![("202", None)]);
    match (path, method) {
        ("/servers/{id}/os-instance-actions", "get") => ok(instance_actions(v)),
        ("/servers/{id}/os-instance-actions/{request_id}", "get") => ok(instance_action_show(v)),
        ("/servers/{id}/os-server-password", "get") => ok(wrap("password", s())),
        ("/servers/{id}/diagnostics", "get") => ok(diagnostics(v)),
        ("/servers/{id}/topology", "get") => ok(topology()),
        ("/servers/{id}/ips", "get") => ok(wrap(
            "addresses",
            json!({"type": "object", "additionalProperties": {"type": "array", "items": address()}}),
        )),
        ("/servers/{id}/ips/{network}", "get") => ok(json!({"type": "object",
            "minProperties": 1, "maxProperties": 1,
            "additionalProperties": {"type": "array", "items": address()}})),
        ("/servers/{id}/remote-consoles", "post") => ok(wrap(
            "remote_console",
            strict(json!({"protocol": s(), "type": s(), "url": s()}), &[]),
        )),
        ("/os-console-auth-tokens/{token}", "get") => ok(wrap(
            "console",
            strict(
                json!({"instance_uuid": s_or_null(), "host": s_or_null(),
                       "port": int_or_null(), "internal_access_path": s_or_null(),
                       "tls_port": int_or_null()}),
                &["tls_port"],
            ),
        )),
        ("/servers/{id}/os-interface", "get") => {
            ok(list("interfaceAttachments", interface(v), false))
        }
        ("/servers/{id}/os-interface/{port_id}", "get")
        | ("/servers/{id}/os-interface", "post") => ok(wrap("interfaceAttachment", interface(v))),
        ("/servers/{id}/os-interface/{port_id}", "delete") => accepted(),
        ("/servers/{id}/migrations", "get") => ok(list("migrations", server_migration(v), false)),
        ("/servers/{id}/migrations/{migration_id}", "get") => {
            ok(wrap("migration", server_migration(v)))
        }
        ("/os-migrations", "get") => ok(list("migrations", os_migration(v), v.at_least(2, 59))),
        ("/flavors/{id}/os-flavor-access" | "/flavors/{id}/action", _) => ok(flavor_access()),
        ("/flavors/{id}/os-extra_specs", "get") => ok(wrap("extra_specs", string_map())),
        ("/flavors/{id}/os-extra_specs", "post") => ok(wrap(
            "extra_specs",
            json!({"type": "object", "additionalProperties": spec_values(true)}),
        )),
        ("/flavors/{id}/os-extra_specs/{key}", "get") => ok(one_spec(false)),
        ("/flavors/{id}/os-extra_specs/{key}", "put") => ok(one_spec(true)),
        ("/os-hypervisors", "get") => ok(list("hypervisors", hypervisor(v, false), true)),
        ("/os-hypervisors/detail", "get") => ok(list("hypervisors", hypervisor(v, true), true)),
        ("/os-hypervisors/{id}", "get") => ok(wrap("hypervisor", hypervisor(v, true))),
        ("/os-hypervisors/{id}/uptime", "get") => ok(wrap(
            "hypervisor",
            hypervisor_with(v, "uptime", s_or_null(), false),
        )),
        ("/os-hypervisors/{id}/search", "get") => {
            ok(list("hypervisors", hypervisor(v, false), false))
        }
        ("/os-hypervisors/{id}/servers", "get") => ok(list(
            "hypervisors",
            hypervisor_with(v, "servers", hypervisor_servers(), true),
            false,
        )),
        ("/os-hypervisors/statistics", "get") => ok(hypervisor_statistics()),
        ("/os-services", "get") => ok(list("services", service(v), false)),
        ("/os-services/{id}", "put") => ok(if v.at_least(2, 53) {
            wrap("service", service(v))
        } else {
            service_action()
        }),
        ("/os-availability-zone", "get") => ok(zones(false)),
        ("/os-availability-zone/detail", "get") => ok(zones(true)),
        ("/os-aggregates", "get") => ok(list("aggregates", aggregate(v, false), false)),
        ("/os-aggregates", "post") => ok(wrap("aggregate", aggregate(v, true))),
        ("/os-aggregates/{id}", "get" | "put") | ("/os-aggregates/{id}/action", "post") => {
            ok(wrap("aggregate", aggregate(v, false)))
        }
        ("/os-server-groups", "get") => ok(list("server_groups", server_group(v), false)),
        ("/os-server-groups", "post") | ("/os-server-groups/{id}", "get") => {
            ok(wrap("server_group", server_group(v)))
        }
        ("/os-server-external-events", "post") => Some(vec![
            ("200", Some(external_events())),
            ("207", Some(external_events())),
        ]),
        ("/os-quota-sets/{project}" | "/os-quota-sets/{project}/defaults", "get") => ok(quota_set(
            "quota_set",
            &quotas::api::set_resources(v),
            true,
            false,
        )),
        ("/os-quota-sets/{project}/detail", "get") => ok(quota_set(
            "quota_set",
            &quotas::api::set_resources(v),
            true,
            true,
        )),
        ("/os-quota-sets/{project}", "put") => ok(quota_set(
            "quota_set",
            &quotas::api::set_resources(v),
            false,
            false,
        )),
        ("/os-quota-class-sets/{class}", _) => ok(quota_set(
            "quota_class_set",
            &quotas::api::class_resources(v),
            method == "get",
            false,
        )),
        ("/os-simple-tenant-usage", "get") => {
            ok(list("tenant_usages", tenant_usage(), v.at_least(2, 40)))
        }
        ("/os-simple-tenant-usage/{project}", "get") => {
            // `{}` when the project used nothing in the period.
            let mut u = tenant_usage();
            u.as_object_mut().map(|o| o.remove("required"));
            let mut body = wrap("tenant_usage", u);
            if v.at_least(2, 40) {
                body["properties"]["tenant_usage_links"] = links();
            }
            ok(body)
        }
        ("/os-instance_usage_audit_log", "get") => {
            ok(wrap("instance_usage_audit_logs", audit_log()))
        }
        ("/os-instance_usage_audit_log/{before}", "get") => {
            ok(wrap("instance_usage_audit_log", audit_log()))
        }
        ("/extensions", "get") => ok(list("extensions", extension(), false)),
        ("/extensions/{alias}", "get") => ok(wrap("extension", extension())),
        ("/os-hosts", "get") => ok(list(
            "hosts",
            strict(
                json!({"host_name": s_or_null(), "service": s_or_null(), "zone": s_or_null()}),
                &[],
            ),
            false,
        )),
        ("/os-hosts/{host}", "get") => ok(wrap(
            "host",
            json!({"type": "array", "items": host_resource()}),
        )),
        ("/os-hosts/{host}", "put") => ok(strict(
            json!({"host": s(), "status": s(), "maintenance_mode": s()}),
            &["status", "maintenance_mode"],
        )),
        (
            "/os-hosts/{host}/reboot" | "/os-hosts/{host}/shutdown" | "/os-hosts/{host}/startup",
            _,
        ) => ok(strict(json!({"host": s(), "power_action": s()}), &[])),
        ("/servers/{id}/os-security-groups" | "/os-security-groups", "get") => {
            ok(list("security_groups", security_group(), false))
        }
        ("/os-security-groups", "post") | ("/os-security-groups/{id}", "get" | "put") => {
            ok(wrap("security_group", security_group()))
        }
        ("/os-security-groups/{id}" | "/os-security-group-rules/{id}", "delete") => accepted(),
        ("/os-security-group-rules", "post") => ok(security_group_rule()),
        ("/os-floating-ip-pools", "get") => ok(list(
            "floating_ip_pools",
            strict(json!({"name": s_or_null()}), &[]),
            false,
        )),
        ("/os-floating-ips", "get") => ok(list("floating_ips", floating_ip(), false)),
        ("/os-floating-ips", "post") | ("/os-floating-ips/{id}", "get") => {
            ok(wrap("floating_ip", floating_ip()))
        }
        ("/os-floating-ips/{id}", "delete") => accepted(),
        ("/os-networks", "get") => ok(list("networks", network(), false)),
        ("/os-networks/{id}", "get") => ok(wrap("network", network())),
        ("/os-tenant-networks", "get") => ok(list("networks", tenant_network(), false)),
        ("/os-tenant-networks/{id}", "get") => ok(wrap("network", tenant_network())),
        ("/images", "get") => ok(list("images", image(true), true)),
        ("/images/detail", "get") => ok(list("images", image(false), true)),
        ("/images/{id}", "get") => ok(wrap("image", image(false))),
        _ => None,
    }
}
