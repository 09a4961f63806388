//! The compute API's OpenAPI 3.1 document, served at
//! `GET /v2.1/openapi.json` (no token needed, like the version documents).
//!
//! One document per microversion: the request's negotiated microversion
//! (`OpenStack-API-Version: compute 2.X`), or `?microversion=2.X` /
//! `?microversion=latest`, which wins. OpenAPI cannot key an operation on a
//! header, so rather than `oneOf`s over version ranges each document tells
//! the exact truth of one microversion: the routes that exist at it (a route
//! nova removed, such as `os-hosts` from 2.43, is absent), the request
//! schemas the handlers validate with at it, and the responses they give.
//! Every operation takes the `OpenStack-API-Version` header with that one
//! value, and `x-openstack-microversion` on the document and on each
//! operation (`min`/`max` where nova limits the route) says where it holds.
//!
//! The paths come from [`crate::V21_ROUTES`], the table the router itself
//! is built from; the request schemas are the same functions the handlers
//! call (`schemas`, `aggregates`, `quotas::api`, …); the response schemas
//! are written here from nova 34's views (checked against tempest's
//! `api_schema/response/compute`). Errors are nova's fault bodies
//! (`{"itemNotFound": {"code": 404, "message": "..."}}`).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::fault::Fault;
use crate::microversion::{self, ApiVersion};
use crate::routes::Route;
use crate::{ApiState, V21_ROUTES};

/// The routes outside the token check, served by every compute endpoint.
pub(crate) const PUBLIC_ROUTES: &[(&str, &str)] = &[
    ("/", "get"),
    ("/v2", "get"),
    ("/v2/", "get"),
    ("/v2.1/", "get"),
    ("/v2.1/openapi.json", "get"),
];

/// `GET /v2.1/openapi.json[?microversion=2.X|latest]`.
pub(crate) async fn serve(
    State(st): State<Arc<ApiState>>,
    Extension(v): Extension<ApiVersion>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, Fault> {
    let v = match q.iter().find(|(k, _)| k == "microversion") {
        None => v,
        Some((_, s)) if s == "latest" => microversion::MAX,
        Some((_, s)) => match ApiVersion::parse(s) {
            Some(want) if want >= microversion::MIN && want <= microversion::MAX => want,
            _ => {
                return Err(Fault::bad_request(format!(
                    "Invalid microversion {s:?}: the compute API serves {} to {}",
                    microversion::MIN,
                    microversion::MAX
                )));
            }
        },
    };
    let doc = document(v, &st.cfg.public_url, st.cfg.enable_instance_password);
    Ok(axum::Json(doc).into_response())
}

/// The microversions a route and method exist at (nova's
/// `wsgi.api_version` bounds on the controllers; the handlers answer 404
/// outside them).
pub(crate) fn bounds(path: &str, method: &str) -> (ApiVersion, ApiVersion) {
    let v = ApiVersion;
    let (lo, hi) = match (path, method) {
        ("/servers/{id}/migrations/{migration_id}/action", _) => (v(2, 22), microversion::MAX),
        ("/servers/{id}/migrations/{migration_id}", "delete") => (v(2, 24), microversion::MAX),
        ("/servers/{id}/migrations" | "/servers/{id}/migrations/{migration_id}", _) => {
            (v(2, 23), microversion::MAX)
        }
        (p, _) if p.starts_with("/servers/{id}/tags") => (v(2, 26), microversion::MAX),
        ("/servers/{id}/topology", _) => (v(2, 78), microversion::MAX),
        ("/servers/{id}/remote-consoles", _) => (v(2, 6), microversion::MAX),
        ("/flavors/{id}", "put") => (v(2, 55), microversion::MAX),
        (p, _) if p.starts_with("/os-hosts") => (microversion::MIN, v(2, 42)),
        ("/os-hypervisors/statistics" | "/os-hypervisors/{id}/uptime", _) => {
            (microversion::MIN, v(2, 87))
        }
        ("/os-hypervisors/{id}/search" | "/os-hypervisors/{id}/servers", _) => {
            (microversion::MIN, v(2, 52))
        }
        (p, _) if p.starts_with("/os-networks") => (microversion::MIN, v(2, 35)),
        // nova's other network proxies (`check_proxy`); creating or
        // deleting a tenant network is a 410 at every microversion.
        (p, _) if p.starts_with("/os-security-group") || p.starts_with("/os-floating-ip") => {
            (microversion::MIN, v(2, 35))
        }
        ("/os-tenant-networks" | "/os-tenant-networks/{id}", "get") => {
            (microversion::MIN, v(2, 35))
        }
        (p, _) if p.starts_with("/images/{id}/metadata") => (microversion::MIN, v(2, 38)),
        (p, _) if p.starts_with("/images") => (microversion::MIN, v(2, 35)),
        _ => (microversion::MIN, microversion::MAX),
    };
    (lo, hi)
}

/// The document of microversion `v`, links under `public_url`;
/// `passwords` is `[api] enable_instance_password` (whether evacuate
/// before 2.14 answers with a body).
pub(crate) fn document(v: ApiVersion, public_url: &str, passwords: bool) -> Value {
    let mut paths = Map::new();
    for (path, method) in PUBLIC_ROUTES {
        let op = public_operation(path, v);
        add_operation(&mut paths, path, method, op);
    }
    for Route { path, methods } in V21_ROUTES {
        for method in *methods {
            let (lo, hi) = bounds(path, method);
            if v < lo || v > hi {
                continue;
            }
            let op = operation(path, method, v, (lo, hi), passwords);
            add_operation(&mut paths, &format!("/v2.1{path}"), method, op);
        }
    }
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "nova-rs compute API",
            "version": v.to_string(),
            "description": "OpenStack Compute API v2.1 as nova-rs serves it, at one microversion \
                (this document's `info.version`). GET /v2.1/openapi.json?microversion=2.X (or \
                `latest`) gives another; without the parameter, the request's negotiated \
                microversion. Errors are nova's fault bodies.",
        },
        "x-openstack-microversion": {"min": microversion::MIN.to_string(),
                                      "max": microversion::MAX.to_string(),
                                      "document": v.to_string()},
        "servers": [{"url": public_url}],
        "security": [{"token": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}},
            "parameters": {
                "microversion": {
                    "name": "OpenStack-API-Version", "in": "header", "required": true,
                    "description": "The microversion this document describes.",
                    "schema": {"type": "string", "enum": [format!("compute {v}")]},
                },
            },
            "schemas": {"Fault": fault_schema(), "Link": link_schema()},
        },
    });
    portable_patterns(&mut doc);
    doc
}

fn add_operation(paths: &mut Map<String, Value>, path: &str, method: &str, op: Value) {
    let item = paths
        .entry(path.to_owned())
        .or_insert_with(|| json!({}))
        .as_object_mut();
    if let Some(item) = item {
        item.insert(method.to_owned(), op);
    }
}

/// JSON Schema patterns are ECMA-262 regular expressions: `\p{Cc}` (what
/// the handlers' Rust regexes use) only means the control characters with
/// the `u` flag, so the document spells the class out.
fn portable_patterns(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, val) in o.iter_mut() {
                if k == "pattern"
                    && let Value::String(s) = val
                {
                    *s = s.replace("\\p{Cc}", "\\x00-\\x1f\\x7f-\\x9f");
                } else {
                    portable_patterns(val);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(portable_patterns),
        _ => {}
    }
}

fn operation_id(path: &str, method: &str) -> String {
    let mut id = method.to_owned();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(
            seg.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
    }
    id
}

fn fault_schema() -> Value {
    json!({"type": "object", "minProperties": 1, "maxProperties": 1,
           "description": "nova's fault body: the fault's name (badRequest, unauthorized, \
               forbidden, itemNotFound, badMethod, conflictingRequest, overLimit, \
               badMediaType, notImplemented, serviceUnavailable, computeFault) keyed to \
               its code and message",
           "additionalProperties": {"type": "object", "required": ["code", "message"],
               "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}}})
}

fn link_schema() -> Value {
    json!({"type": "object", "required": ["rel", "href"], "properties": {
        "rel": {"type": "string"}, "href": {"type": "string"}, "type": {"type": "string"}}})
}

fn fault_ref() -> Value {
    json!({"description": "a fault", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Fault"}}}})
}

fn body(schema: Value) -> Value {
    json!({"content": {"application/json": {"schema": schema}}})
}

fn version_doc_schema() -> Value {
    json!({"type": "object", "required": ["id", "status", "version", "min_version", "updated", "links"],
        "properties": {
            "id": {"type": "string", "enum": ["v2.0", "v2.1"]},
            "status": {"type": "string", "enum": ["CURRENT", "SUPPORTED", "DEPRECATED"]},
            "version": {"type": "string"}, "min_version": {"type": "string"},
            "updated": {"type": "string", "format": "date-time"},
            "links": {"type": "array", "items": {"$ref": "#/components/schemas/Link"}},
            "media-types": {"type": "array", "items": {"type": "object", "required": ["base", "type"],
                "properties": {"base": {"type": "string"}, "type": {"type": "string"}}}}}})
}

fn public_operation(path: &str, v: ApiVersion) -> Value {
    let (summary, schema) = match path {
        "/" => (
            "The API versions",
            json!({"type": "object", "required": ["versions"], "properties": {
                "versions": {"type": "array", "items": version_doc_schema()}}}),
        ),
        "/v2.1/openapi.json" => (
            "This document (another microversion's with ?microversion=2.X or latest)",
            json!({"type": "object", "required": ["openapi", "info", "paths"]}),
        ),
        _ => (
            "One API version",
            json!({"type": "object", "required": ["version"], "properties": {
                "version": version_doc_schema()}}),
        ),
    };
    let mut params = vec![json!({"$ref": "#/components/parameters/microversion"})];
    if path == "/v2.1/openapi.json" {
        params.push(
            json!({"name": "microversion", "in": "query", "required": false,
            "schema": {"type": "string", "enum": ["latest", v.to_string()]}}),
        );
    }
    json!({
        "operationId": operation_id(if path == "/" { "/root" } else { path }, "get"),
        "summary": summary,
        "security": [],
        "parameters": params,
        "responses": {"200": body(schema), "4XX": fault_ref()},
    })
}

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            json!({"name": name, "in": "path", "required": true,
                   "schema": {"type": "string", "minLength": 1}})
        })
        .collect()
}

fn query(name: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema})
}

/// A handler's own query parameters (`http::QueryParam`).
fn documented(read: Vec<crate::http::QueryParam>) -> Vec<Value> {
    read.into_iter().map(|(n, s)| query(n, s)).collect()
}

fn query_params(path: &str, method: &str, v: ApiVersion) -> Vec<Value> {
    use crate::handlers::servers::{instance_actions, moves};
    if method != "get" {
        return vec![];
    }
    let limit = json!({"type": "integer", "minimum": 0});
    let marker = json!({"type": "string"});
    let sort_dir = json!({"type": "string", "enum": ["asc", "desc"]});
    match path {
        "/servers" | "/servers/detail" => {
            let mut q = vec![
                query("limit", limit),
                query("marker", marker),
                query("name", json!({"type": "string", "maxLength": 255})),
                query("status", json!({"type": "string"})),
                query("reservation_id", json!({"type": "string"})),
                query("ip", json!({"type": "string", "maxLength": 1024})),
                query("ip6", json!({"type": "string", "maxLength": 1024})),
                query(
                    "changes-since",
                    json!({"type": "string", "format": "date-time"}),
                ),
                query(
                    "sort_key",
                    json!({"type": "string", "enum": ["created_at", "display_name", "uuid", "updated_at", "launched_at"]}),
                ),
                query("sort_dir", sort_dir),
            ];
            if v.at_least(2, 26) {
                q.push(query("tags", json!({"type": "string"})));
            }
            q
        }
        "/flavors" | "/flavors/detail" => vec![
            query("limit", limit),
            query("marker", marker),
            query("minRam", json!({"type": "integer", "minimum": 0})),
            query("minDisk", json!({"type": "integer", "minimum": 0})),
            query(
                "sort_key",
                json!({"type": "string", "enum": ["flavorid", "name", "memory_mb", "vcpus", "root_gb"]}),
            ),
            query("sort_dir", sort_dir),
        ],
        "/os-keypairs" if v.at_least(2, 35) => vec![query("limit", limit), query("marker", marker)],
        "/os-migrations" => documented(moves::os_migrations_params(v)),
        "/servers/{id}/os-instance-actions" => documented(instance_actions::query_params(v)),
        "/os-simple-tenant-usage" => documented(crate::usage::query_params(v, true)),
        "/os-simple-tenant-usage/{project}" => documented(crate::usage::query_params(v, false)),
        "/os-hypervisors" | "/os-hypervisors/detail" => {
            documented(crate::admin::hypervisor_query_params(v))
        }
        "/os-hypervisors/{id}" => documented(crate::admin::hypervisor_show_params(v)),
        _ => vec![],
    }
}

/// The request body schema of `method path` at `v`: the handlers' own.
fn request_schema(path: &str, method: &str, v: ApiVersion) -> Option<Value> {
    use crate::handlers::consoles;
    use crate::handlers::servers::{metadata, tags};
    use crate::{aggregates, external_events, quotas, schemas, server_groups};
    let one_of = |all: Vec<Value>| json!({"oneOf": all});
    Some(match (path, method) {
        ("/servers", "post") => schemas::server_create(v),
        ("/servers/{id}", "put") => schemas::server_update(v),
        ("/servers/{id}/action", "post") => actions::request(v),
        ("/servers/{id}/metadata", "post" | "put") => metadata::body_schema(),
        ("/servers/{id}/metadata/{key}", "put") => metadata::meta_schema(),
        ("/servers/{id}/tags", "put") => tags::update_all_schema(),
        ("/servers/{id}/remote-consoles", "post") => consoles::create_schema(v),
        ("/servers/{id}/migrations/{migration_id}/action", "post") => json!({
            "type": "object", "properties": {"force_complete": {"type": "null"}},
            "required": ["force_complete"], "additionalProperties": false}),
        ("/flavors", "post") => schemas::flavor_create(v),
        ("/flavors/{id}", "put") => json!({"type": "object", "properties": {"flavor": {
            "type": "object", "properties": {"description": {"type": ["string", "null"], "maxLength": 65535}},
            "required": ["description"], "additionalProperties": false}},
            "required": ["flavor"], "additionalProperties": false}),
        ("/flavors/{id}/action", "post") => {
            let tenant = |a: &str| {
                json!({"type": "object", "properties": {a: {"type": "object", "properties": {
                "tenant": {"type": "string", "minLength": 1, "maxLength": 255}},
                "required": ["tenant"], "additionalProperties": false}},
                "required": [a], "additionalProperties": false})
            };
            one_of(vec![
                tenant("addTenantAccess"),
                tenant("removeTenantAccess"),
            ])
        }
        ("/flavors/{id}/os-extra_specs", "post") => schemas::extra_specs(),
        ("/flavors/{id}/os-extra_specs/{key}", "put") => json!({"type": "object",
            "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": ["string", "number", "boolean"], "maxLength": 255}},
            "minProperties": 1, "maxProperties": 1, "additionalProperties": false}),
        ("/os-keypairs", "post") => schemas::keypair_create(v),
        ("/os-services/{id}", "put") if v.at_least(2, 53) => schemas::service_update(),
        ("/os-aggregates", "post") => aggregates::create_schema(),
        ("/os-aggregates/{id}", "put") => aggregates::update_schema(),
        ("/os-aggregates/{id}/action", "post") => one_of(vec![
            aggregates::host_schema("add_host"),
            aggregates::host_schema("remove_host"),
            aggregates::metadata_schema(),
        ]),
        ("/os-server-groups", "post") => server_groups::create_schema(v),
        ("/os-server-external-events", "post") => external_events::schema(v),
        ("/os-quota-sets/{project}", "put") => {
            quotas::api::update_schema("quota_set", &quotas::api::set_resources(v), true)
        }
        ("/os-quota-class-sets/{class}", "put") => {
            quotas::api::update_schema("quota_class_set", &quotas::api::class_resources(v), false)
        }
        ("/os-hosts/{host}", "put") => json!({"type": "object", "properties": {
            "status": {"type": "string", "enum": ["enable", "disable", "Enable", "Disable", "ENABLE", "DISABLE"]},
            "maintenance_mode": {"type": "string", "enum": ["enable", "disable", "Enable", "Disable", "ENABLE", "DISABLE"]}},
            "anyOf": [{"required": ["status"]}, {"required": ["maintenance_mode"]}],
            "additionalProperties": false}),
        ("/images/{id}/metadata", "post" | "put") => metadata::body_schema(),
        ("/images/{id}/metadata/{key}", "put") => metadata::meta_schema(),
        _ => return None,
    })
}

fn operation(
    path: &str,
    method: &str,
    v: ApiVersion,
    (lo, hi): (ApiVersion, ApiVersion),
    passwords: bool,
) -> Value {
    let mut params = vec![json!({"$ref": "#/components/parameters/microversion"})];
    params.extend(path_params(path));
    params.extend(query_params(path, method, v));
    let mut responses = Map::new();
    if (path, method) == ("/servers/{id}/action", "post") {
        responses = actions::responses(v, passwords);
    }
    for (code, schema) in responses::success(path, method, v) {
        let r = match schema {
            Some(s) => {
                let mut r = body(s);
                r["description"] = json!("success");
                r
            }
            None => json!({"description": "success"}),
        };
        responses.insert(code.to_owned(), r);
    }
    responses.insert("4XX".into(), fault_ref());
    let mut op = json!({
        "operationId": operation_id(path, method),
        "parameters": params,
        "responses": responses,
    });
    let mut range = Map::new();
    if lo != microversion::MIN {
        range.insert("min".into(), json!(lo.to_string()));
    }
    if hi != microversion::MAX {
        range.insert("max".into(), json!(hi.to_string()));
    }
    if !range.is_empty() {
        op["x-openstack-microversion"] = Value::Object(range);
    }
    if let Some(schema) = request_schema(path, method, v) {
        let mut rb = body(schema);
        rb["required"] = json!(true);
        op["requestBody"] = rb;
    }
    op
}

pub(crate) mod actions;
mod resources;
mod responses;
