//! Security groups through nova (`nova/network/security_group_api.py`):
//! the groups of a server's ports in its views (`security_groups`, nova's
//! `get_instances_security_groups_bindings`: one ports query for all the
//! listed servers, one groups query), `addSecurityGroup` /
//! `removeSecurityGroup`, `GET /servers/{id}/os-security-groups`, and the
//! legacy proxies below 2.36: `os-security-groups` and
//! `os-security-group-rules` with nova's shapes and faults. nova's client
//! is the network service's admin; what a user may see of it is the
//! caller's project (and shared groups), as Neutron would show that user.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nova_objects::{Instance, VersionedObject};
use nova_service::neutron::{NeutronClient, NeutronFailure};
use reqwest::Method;
use serde_json::{Value, json};

use crate::ApiState;
use crate::auth::Ctx;
use crate::compute_api;
use crate::fault::{ApiResult, Fault};
use crate::http::{json_body, require_on, require_read, require_write};
use crate::images_proxy::check_proxy;
use crate::microversion::ApiVersion;
use crate::schemas;

type St = State<Arc<ApiState>>;

/// A Neutron failure as nova's API answers it (unreachable: 503).
pub(crate) fn net_fault(e: NeutronFailure) -> Fault {
    match e.status {
        0 => Fault::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The network service is unavailable: {}", e.message),
        ),
        400 => Fault::bad_request(e.message),
        403 => Fault::forbidden(e.message),
        404 => Fault::not_found(e.message),
        409 => Fault::conflict(e.message),
        _ => Fault::internal(e),
    }
}

/// The network API or 503.
pub(crate) fn client(st: &ApiState) -> ApiResult<&Arc<NeutronClient>> {
    st.network().ok_or_else(|| {
        Fault::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The network service is unavailable: none is configured ([neutron])",
        )
    })
}

fn owner(v: &Value) -> &str {
    v["project_id"]
        .as_str()
        .or(v["tenant_id"].as_str())
        .unwrap_or_default()
}

/// Whether the caller sees group `g` (its project's, shared ones; admins all).
fn visible(ctx: &Ctx, g: &Value) -> bool {
    ctx.is_admin() || g["shared"].as_bool() == Some(true) || owner(g) == ctx.project_id
}

/// Why a group named by the user was not found.
pub(crate) enum Find {
    NotFound,
    Multiple(String),
    Failed(NeutronFailure),
}

/// neutronclient's `find_resourceid_by_name_or_id` for a security group
/// in the caller's project: by id, else by name (exactly one).
pub(crate) async fn find_group(
    c: &NeutronClient,
    ctx: &Ctx,
    project: &str,
    name_or_id: &str,
) -> Result<Value, Find> {
    match c.show("security_group", name_or_id).await {
        Ok(g) if visible(ctx, &g) => return Ok(g),
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(Find::Failed(e)),
    }
    let found = c
        .list(
            "security_group",
            &[
                ("name", name_or_id),
                ("project_id", project),
                ("fields", "id"),
                ("fields", "name"),
                ("fields", "project_id"),
            ],
        )
        .await
        .map_err(Find::Failed)?;
    match found.len() {
        0 => Err(Find::NotFound),
        1 => Ok(found.into_iter().next().unwrap_or_default()),
        _ => Err(Find::Multiple(format!(
            "Multiple security_group matches found for name '{name_or_id}', use an ID to be more specific."
        ))),
    }
}

/// nova's `_check_requested_secgroups` for a create body: `default`
/// stays a name, any other group is resolved to its id in the caller's
/// project (400 when unknown, 409 when ambiguous). Without a network
/// service only `default` exists.
pub(crate) async fn resolve_requested(
    st: &ApiState,
    ctx: &Ctx,
    names: &[String],
) -> ApiResult<Vec<String>> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if name == "default" {
            out.push(name.clone());
            continue;
        }
        let Some(c) = st.network() else {
            return Err(Fault::bad_request(format!(
                "Security group {name} not found."
            )));
        };
        match find_group(c, ctx, &ctx.project_id, name).await {
            Ok(g) => out.push(g["id"].as_str().unwrap_or_default().to_owned()),
            Err(Find::NotFound) => {
                return Err(Fault::bad_request(format!(
                    "Unable to find security_group with name or id '{name}'"
                )));
            }
            Err(Find::Multiple(m)) => return Err(Fault::conflict(m)),
            Err(Find::Failed(e)) => return Err(net_fault(e)),
        }
    }
    Ok(out)
}

/// Whether `inst` has ports per its info cache (unknown when the cache
/// was not read: then it is asked).
fn may_have_ports(inst: &Instance) -> bool {
    if !inst.obj_attr_is_set("info_cache") {
        return true;
    }
    !nova_service::neutron::vifs_of_cache(
        inst.info_cache()
            .as_ref()
            .and_then(|c| c.network_info().as_deref()),
    )
    .is_empty()
}

/// The ports (`id`, `device_id`, `security_groups`, ...) of `uuids`, in
/// chunks of nova's `MAX_SEARCH_IDS` (150) ids per query.
async fn ports_of(c: &NeutronClient, uuids: &[&str], fields: &[&str]) -> ApiResult<Vec<Value>> {
    let mut out = Vec::new();
    for chunk in uuids.chunks(150) {
        let mut q: Vec<(&str, &str)> = chunk.iter().map(|u| ("device_id", *u)).collect();
        q.extend(fields.iter().map(|f| ("fields", *f)));
        match c.list("port", &q).await {
            Ok(p) => out.extend(p),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(net_fault(e)),
        }
    }
    Ok(out)
}

/// The groups (by id) of `ids` the caller sees; `detailed` with rules.
async fn groups_by_id(
    c: &NeutronClient,
    ctx: &Ctx,
    ids: &[&str],
    detailed: bool,
) -> ApiResult<HashMap<String, Value>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(150) {
        let mut q: Vec<(&str, &str)> = chunk.iter().map(|u| ("id", *u)).collect();
        if !detailed {
            q.extend([
                ("fields", "id"),
                ("fields", "name"),
                ("fields", "project_id"),
                ("fields", "shared"),
            ]);
        }
        for g in c.list("security_group", &q).await.map_err(net_fault)? {
            if visible(ctx, &g)
                && let Some(id) = g["id"].as_str()
            {
                out.insert(id.to_owned(), g.clone());
            }
        }
    }
    Ok(out)
}

/// nova's `get_instances_security_groups_bindings`: per instance uuid,
/// the groups of its ports (`{"name"}` each, or nova's detailed group),
/// in port order. Instances whose info cache has no port cost nothing;
/// otherwise two queries for all of them.
async fn bindings(
    st: &ApiState,
    ctx: &Ctx,
    insts: &[&Instance],
    detailed: bool,
) -> ApiResult<HashMap<String, Vec<Value>>> {
    let uuids: Vec<&str> = insts
        .iter()
        .filter(|i| may_have_ports(i))
        .map(|i| i.uuid().as_str())
        .collect();
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    let Some(c) = st.network() else {
        return Ok(out);
    };
    if uuids.is_empty() {
        return Ok(out);
    }
    let ports = ports_of(c, &uuids, &["security_groups", "device_id"]).await?;
    let mut ids: Vec<&str> = ports
        .iter()
        .flat_map(|p| p["security_groups"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let mut seen = HashSet::new();
    ids.retain(|i| seen.insert(*i));
    if ids.is_empty() {
        return Ok(out);
    }
    let groups = groups_by_id(c, ctx, &ids, detailed).await?;
    for p in &ports {
        let device = p["device_id"].as_str().unwrap_or_default();
        for id in p["security_groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let Some(g) = groups.get(id) else { continue };
            let entry = if detailed {
                g.clone()
            } else {
                let name = g["name"].as_str().filter(|n| !n.is_empty()).unwrap_or(id);
                json!({ "name": name })
            };
            out.entry(device.to_owned()).or_default().push(entry);
        }
    }
    Ok(out)
}

/// Adds `security_groups` to the server views `servers` (of `insts`, in
/// the same order) where the server's ports have groups, as nova's view
/// builder does (absent otherwise).
pub(crate) async fn fill(
    st: &ApiState,
    ctx: &Ctx,
    servers: &mut [Value],
    insts: &[&Instance],
) -> ApiResult<()> {
    if servers.is_empty() {
        return Ok(());
    }
    let mut b = bindings(st, ctx, insts, false).await?;
    for s in servers {
        if let Some(id) = s["id"].as_str()
            && let Some(groups) = b.remove(id)
            && !groups.is_empty()
            && let Some(o) = s.as_object_mut()
        {
            o.insert("security_groups".into(), Value::Array(groups));
        }
    }
    Ok(())
}

/// nova's rule view (`_format_security_group_rule` over
/// `_convert_to_nova_security_group_rule_format`); `None` for egress rules.
fn rule_view(r: &Value, names: &HashMap<String, Value>) -> Option<Value> {
    if r["direction"] != "ingress" {
        return None;
    }
    let protocol = r["protocol"].as_str();
    let (from, to) = match protocol {
        Some(p) if r["port_range_min"].is_null() && r["port_range_max"].is_null() => {
            if p.eq_ignore_ascii_case("tcp") || p.eq_ignore_ascii_case("udp") {
                (json!(1), json!(65535))
            } else {
                (json!(-1), json!(-1))
            }
        }
        _ => (r["port_range_min"].clone(), r["port_range_max"].clone()),
    };
    let mut out = json!({
        "id": r["id"],
        "parent_group_id": r["security_group_id"],
        "ip_protocol": r["protocol"],
        "from_port": from,
        "to_port": to,
        "group": {},
        "ip_range": {},
    });
    match r["remote_group_id"].as_str() {
        Some(gid) => {
            // A rule naming a group the caller cannot see is left out.
            out["group"] = names.get(gid)?.clone();
        }
        None => {
            let cidr = r["remote_ip_prefix"]
                .as_str()
                .filter(|c| !c.is_empty())
                .unwrap_or("0.0.0.0/0");
            out["ip_range"] = json!({ "cidr": cidr });
        }
    }
    Some(out)
}

/// `{name, tenant_id}` of the groups `groups`' rules name (those of the
/// groups themselves, others asked once).
async fn rule_group_names(
    c: &NeutronClient,
    ctx: &Ctx,
    groups: &[Value],
) -> ApiResult<HashMap<String, Value>> {
    let mut names: HashMap<String, Value> = groups
        .iter()
        .filter_map(|g| {
            Some((
                g["id"].as_str()?.to_owned(),
                json!({"name": g["name"], "tenant_id": owner(g)}),
            ))
        })
        .collect();
    let missing: Vec<String> = groups
        .iter()
        .flat_map(|g| g["security_group_rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["remote_group_id"].as_str())
        .filter(|id| !names.contains_key(*id))
        .map(str::to_owned)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if !missing.is_empty() {
        let ids: Vec<&str> = missing.iter().map(String::as_str).collect();
        for (id, g) in groups_by_id(c, ctx, &ids, false).await? {
            names.insert(id, json!({"name": g["name"], "tenant_id": owner(&g)}));
        }
    }
    Ok(names)
}

/// nova's group view (`_format_security_group`).
fn group_view(g: &Value, names: &HashMap<String, Value>) -> Value {
    let rules: Vec<Value> = g["security_group_rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| rule_view(r, names))
        .collect();
    json!({
        "id": g["id"],
        "description": g["description"],
        "name": g["name"],
        "tenant_id": owner(g),
        "rules": rules,
    })
}

async fn views_of(c: &NeutronClient, ctx: &Ctx, groups: &[Value]) -> ApiResult<Vec<Value>> {
    let names = rule_group_names(c, ctx, groups).await?;
    let mut out: Vec<Value> = groups.iter().map(|g| group_view(g, &names)).collect();
    out.sort_by(|a, b| {
        (a["tenant_id"].as_str(), a["name"].as_str())
            .cmp(&(b["tenant_id"].as_str(), b["name"].as_str()))
    });
    Ok(out)
}

/// nova's `validate_id`.
fn validate_id(id: &str) -> ApiResult<()> {
    if uuid::Uuid::try_parse(id).is_err() {
        return Err(Fault::bad_request("Security group id should be uuid"));
    }
    Ok(())
}

/// A group by id, as the caller sees it (404 with Neutron's message).
async fn get_group(c: &NeutronClient, ctx: &Ctx, id: &str) -> ApiResult<Value> {
    let not_found = || Fault::not_found(format!("Security group {id} could not be found."));
    match c.show("security_group", id).await {
        Ok(g) if visible(ctx, &g) => Ok(g),
        Ok(_) => Err(not_found()),
        Err(e) if e.is_not_found() => Err(not_found()),
        Err(e) => Err(net_fault(e)),
    }
}

fn group_body_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"security_group": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 0, "maxLength": 255},
                "description": {"type": "string", "minLength": 0, "maxLength": 255},
            },
            "required": ["name", "description"],
        }},
        "required": ["security_group"],
    })
}

/// `GET /os-security-groups` (`all_tenants` for admins; `limit`/`offset`).
pub(crate) async fn index(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Query(p): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    check_proxy(v)?;
    require_read(&ctx, "os_compute_api:os-security-groups:get")?;
    let c = client(&st)?;
    let all = ctx.is_admin() && p.iter().any(|(k, _)| k == "all_tenants");
    let q: Vec<(&str, &str)> = if all {
        vec![]
    } else {
        vec![("project_id", ctx.project_id.as_str())]
    };
    let groups = c.list("security_group", &q).await.map_err(net_fault)?;
    let num = |k: &str| -> ApiResult<Option<usize>> {
        match crate::http::param(&p, k) {
            None => Ok(None),
            Some(s) => s
                .parse::<usize>()
                .map(Some)
                .map_err(|_| Fault::bad_request(format!("{k} param must be an integer"))),
        }
    };
    let offset = num("offset")?.unwrap_or(0);
    let limit = num("limit")?
        .unwrap_or(st.cfg.max_limit)
        .min(st.cfg.max_limit);
    let page: Vec<Value> = groups.into_iter().skip(offset).take(limit).collect();
    let out = views_of(c, &ctx, &page).await?;
    Ok(axum::Json(json!({ "security_groups": out })).into_response())
}

/// `GET /os-security-groups/{id}`.
pub(crate) async fn show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    check_proxy(v)?;
    require_read(&ctx, "os_compute_api:os-security-groups:show")?;
    validate_id(&id)?;
    let c = client(&st)?;
    let g = get_group(c, &ctx, &id).await?;
    let out = views_of(c, &ctx, std::slice::from_ref(&g)).await?;
    Ok(axum::Json(json!({ "security_group": out[0] })).into_response())
}

/// `POST /os-security-groups`.
pub(crate) async fn create(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    check_proxy(v)?;
    require_write(&ctx, "os_compute_api:os-security-groups:create")?;
    let body = json_body(&body)?;
    schemas::check("os-security-groups:create", v, group_body_schema, &body)?;
    let c = client(&st)?;
    let sg = &body["security_group"];
    let made = c
        .call(
            Method::POST,
            "/v2.0/security-groups",
            Some(&json!({"security_group": {
                "name": sg["name"], "description": sg["description"],
                "project_id": ctx.project_id, "tenant_id": ctx.project_id,
            }})),
        )
        .await
        .map_err(|e| match e.status {
            400 => Fault::bad_request(e.message),
            409 | 403 if e.kind.contains("OverQuota") => Fault::forbidden(e.message),
            _ => net_fault(e),
        })?;
    let g = &made["security_group"];
    let out = views_of(c, &ctx, std::slice::from_ref(g)).await?;
    Ok(axum::Json(json!({ "security_group": out[0] })).into_response())
}

/// `PUT /os-security-groups/{id}`.
pub(crate) async fn update(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    check_proxy(v)?;
    require_write(&ctx, "os_compute_api:os-security-groups:update")?;
    let body = json_body(&body)?;
    schemas::check("os-security-groups:update", v, group_body_schema, &body)?;
    validate_id(&id)?;
    let c = client(&st)?;
    get_group(c, &ctx, &id).await?;
    let sg = &body["security_group"];
    let updated = c
        .call(
            Method::PUT,
            &format!("/v2.0/security-groups/{id}"),
            Some(&json!({"security_group": {
                "name": sg["name"], "description": sg["description"]}})),
        )
        .await
        .map_err(net_fault)?;
    let g = &updated["security_group"];
    let out = views_of(c, &ctx, std::slice::from_ref(g)).await?;
    Ok(axum::Json(json!({ "security_group": out[0] })).into_response())
}

/// `DELETE /os-security-groups/{id}` (a group in use: 400, Neutron's message).
pub(crate) async fn delete(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    check_proxy(v)?;
    require_write(&ctx, "os_compute_api:os-security-groups:delete")?;
    validate_id(&id)?;
    let c = client(&st)?;
    let g = get_group(c, &ctx, &id).await?;
    // What Neutron tells a user (nova calls it as its admin).
    if g["name"] == "default" && !ctx.is_admin() {
        return Err(Fault::bad_request(
            "Removing default security group not allowed.",
        ));
    }
    match c
        .call(Method::DELETE, &format!("/v2.0/security-groups/{id}"), None)
        .await
    {
        Ok(_) => Ok(StatusCode::ACCEPTED.into_response()),
        Err(e) if e.is_not_found() => Err(Fault::not_found(e.message)),
        Err(e) if e.status == 409 || e.status == 400 => Err(Fault::bad_request(e.message)),
        Err(e) => Err(net_fault(e)),
    }
}

fn int_of(v: &Value, icmp: bool) -> ApiResult<Option<i64>> {
    let bad = || {
        Fault::bad_request(if icmp {
            "Invalid input received: Type and Code must be integers for ICMP protocol type"
        } else {
            "Invalid input received: To and From ports must be integers"
        })
    };
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_i64().map(Some).ok_or_else(bad),
        Value::String(s) => s.trim().parse::<i64>().map(Some).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// nova's `_new_ingress_rule`: the Neutron rule for a legacy rule body,
/// `None` when a CIDR rule lacks protocol and ports.
fn new_rule(r: &Value, parent: &str) -> ApiResult<Option<Value>> {
    let group_id = r["group_id"].as_str().filter(|g| !g.is_empty());
    let protocol = match &r["ip_protocol"] {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    };
    let upper = protocol.as_deref().unwrap_or("").to_ascii_uppercase();
    let icmp = upper == "ICMP";
    let mut from = int_of(&r["from_port"], icmp).ok();
    let mut to = int_of(&r["to_port"], icmp).ok();
    let mut body = json!({
        "security_group_id": parent, "direction": "ingress", "ethertype": "IPv4",
    });
    let cidr;
    if let Some(g) = group_id {
        body["remote_group_id"] = json!(g);
        if r["from_port"].is_null() && r["to_port"].is_null() {
            if icmp {
                from = Some(Some(-1));
                to = Some(Some(-1));
            } else if upper == "TCP" || upper == "UDP" {
                from = Some(Some(1));
                to = Some(Some(65535));
            }
        }
        cidr = None;
    } else {
        let c = match &r["cidr"] {
            Value::String(s) if !s.is_empty() => {
                let decoded = unquote(s);
                if nova_network_cidr(&decoded).is_none() {
                    return Err(Fault::bad_request(format!(
                        "{s} is not a valid IP network."
                    )));
                }
                decoded
            }
            _ => "0.0.0.0/0".to_owned(),
        };
        cidr = Some(c);
    }
    let has_ports = !r["from_port"].is_null() && !r["to_port"].is_null()
        || (group_id.is_some() && from.as_ref().is_some_and(|f| f.is_some()));
    if protocol.is_some() && has_ports {
        let from = match from {
            Some(Some(f)) => f,
            _ => {
                return Err(int_of(&r["from_port"], icmp).err().unwrap_or_else(|| {
                    Fault::bad_request("Invalid input received: To and From ports must be integers")
                }));
            }
        };
        let to = match to {
            Some(Some(t)) => t,
            _ => {
                return Err(int_of(&r["to_port"], icmp).err().unwrap_or_else(|| {
                    Fault::bad_request("Invalid input received: To and From ports must be integers")
                }));
            }
        };
        if !matches!(upper.as_str(), "TCP" | "UDP" | "ICMP") {
            return Err(Fault::bad_request(format!(
                "Invalid IP protocol {}.",
                protocol.unwrap_or_default()
            )));
        }
        let range = |m: &str| Fault::bad_request(format!("Invalid port range {from}:{to}. {m}"));
        if upper != "ICMP" && from > to {
            return Err(range("Former value cannot be greater than the later"));
        }
        if upper != "ICMP" && (from < 1 || to > 65535) {
            return Err(range(&format!(
                "Valid {upper} ports should be between 1-65535"
            )));
        }
        if icmp && !((-1..=255).contains(&from) && (-1..=255).contains(&to)) {
            return Err(range("For ICMP, the type:code must be valid"));
        }
        body["protocol"] = json!(upper.to_ascii_lowercase());
        if icmp {
            // Neutron's ICMP rule: type in min, code in max; -1 is "any".
            if from != -1 {
                body["port_range_min"] = json!(from);
            }
            if to != -1 {
                body["port_range_max"] = json!(to);
            }
        } else {
            body["port_range_min"] = json!(from);
            body["port_range_max"] = json!(to);
        }
    } else if cidr.is_some() {
        return Ok(None);
    }
    if let Some(c) = cidr {
        if c.contains(':') {
            body["ethertype"] = json!("IPv6");
        }
        body["remote_ip_prefix"] = json!(c);
    }
    Ok(Some(body))
}

/// Python's `urllib.parse.unquote` (`%2F` → `/`; bad escapes kept).
fn unquote(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(h) = b.get(i + 1..i + 3)
            && let Ok(x) = u8::from_str_radix(std::str::from_utf8(h).unwrap_or("zz"), 16)
        {
            out.push(x);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A CIDR's address and prefix length, when it is one.
fn nova_network_cidr(c: &str) -> Option<(std::net::IpAddr, u8)> {
    let (a, p) = c.split_once('/')?;
    let ip: std::net::IpAddr = a.parse().ok()?;
    let p: u8 = p.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (p <= max).then_some((ip, p))
}

/// `POST /os-security-group-rules`.
pub(crate) async fn rule_create(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    check_proxy(v)?;
    require_write(&ctx, "os_compute_api:os-security-groups:rule:create")?;
    let body = json_body(&body)?;
    schemas::check(
        "os-security-group-rules:create",
        v,
        || {
            json!({
                "type": "object",
                "properties": {"security_group_rule": {
                    "type": "object",
                    "properties": {
                        "group_id": {"type": ["string", "null"], "format": "uuid"},
                        "parent_group_id": {"type": "string", "format": "uuid"},
                    },
                    "required": ["parent_group_id"],
                }},
                "required": ["security_group_rule"],
            })
        },
        &body,
    )?;
    let r = &body["security_group_rule"];
    let parent_id = r["parent_group_id"].as_str().unwrap_or_default();
    let c = client(&st)?;
    let parent = get_group(c, &ctx, parent_id).await?;
    let mut source = None;
    if let Some(gid) = r["group_id"].as_str() {
        source = Some(get_group(c, &ctx, gid).await?);
    }
    let Some(rule) = new_rule(r, parent["id"].as_str().unwrap_or_default())? else {
        return Err(Fault::bad_request(
            "Not enough parameters to build a valid rule.",
        ));
    };
    if let Some(cidr) = rule["remote_ip_prefix"].as_str()
        && let Some((ip, 0)) = nova_network_cidr(cidr)
        && !ip.is_unspecified()
    {
        return Err(Fault::bad_request(format!(
            "Bad prefix for network in cidr {cidr}"
        )));
    }
    // nova's `_rule_exists` over the group's ingress rules.
    let exists = parent["security_group_rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| x["direction"] == "ingress")
        .any(|x| {
            x["remote_group_id"] == rule["remote_group_id"]
                && x["remote_ip_prefix"] == rule["remote_ip_prefix"]
                && x["port_range_min"] == rule["port_range_min"]
                && x["port_range_max"] == rule["port_range_max"]
                && x["protocol"] == rule["protocol"]
                && x["ethertype"] == rule["ethertype"]
        });
    if exists {
        return Err(Fault::bad_request(format!(
            "This rule already exists in group {parent_id}"
        )));
    }
    let made = c
        .call(
            Method::POST,
            "/v2.0/security-group-rules",
            Some(&json!({ "security_group_rule": rule })),
        )
        .await
        .map_err(|e| match e.status {
            404 => Fault::not_found(e.message),
            409 if e.kind.contains("OverQuota") => Fault::forbidden(e.message),
            400 | 409 => Fault::bad_request(e.message),
            _ => net_fault(e),
        })?;
    let mut names = HashMap::new();
    if let Some(s) = &source
        && let Some(id) = s["id"].as_str()
    {
        names.insert(
            id.to_owned(),
            json!({"name": s["name"], "tenant_id": owner(s)}),
        );
    }
    let view = rule_view(&made["security_group_rule"], &names).unwrap_or_else(|| json!({}));
    Ok(axum::Json(json!({ "security_group_rule": view })).into_response())
}

/// `DELETE /os-security-group-rules/{id}`.
pub(crate) async fn rule_delete(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    check_proxy(v)?;
    require_write(&ctx, "os_compute_api:os-security-groups:rule:delete")?;
    validate_id(&id)?;
    let c = client(&st)?;
    let not_found = || Fault::not_found(format!("Security group rule {id} could not be found."));
    let rule = match c.show("security_group_rule", &id).await {
        Ok(r) if visible(&ctx, &r) => r,
        Ok(_) => return Err(not_found()),
        Err(e) if e.is_not_found() => return Err(not_found()),
        Err(e) => return Err(net_fault(e)),
    };
    get_group(
        c,
        &ctx,
        rule["security_group_id"].as_str().unwrap_or_default(),
    )
    .await?;
    match c
        .call(
            Method::DELETE,
            &format!("/v2.0/security-group-rules/{id}"),
            None,
        )
        .await
    {
        Ok(_) => Ok(StatusCode::ACCEPTED.into_response()),
        Err(e) if e.is_not_found() => Err(not_found()),
        Err(e) => Err(net_fault(e)),
    }
}

/// `GET /servers/{id}/os-security-groups`: the groups of the server's
/// ports, nova's detailed view, sorted by project and name.
pub(crate) async fn server_index(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let inst = compute_api::get(&st, &ctx, &id).await?;
    require_on(
        &ctx,
        "os_compute_api:os-security-groups:list",
        inst.project_id().as_deref().unwrap_or_default(),
        inst.user_id().as_deref().unwrap_or_default(),
    )?;
    let Some(c) = st.network() else {
        return Ok(axum::Json(json!({ "security_groups": [] })).into_response());
    };
    let b = bindings(&st, &ctx, &[&inst], true).await?;
    let groups = b.get(inst.uuid()).cloned().unwrap_or_default();
    let out = views_of(c, &ctx, &groups).await?;
    Ok(axum::Json(json!({ "security_groups": out })).into_response())
}

/// `addSecurityGroup` / `removeSecurityGroup` (`None`: another action).
pub(crate) async fn action(
    st: &ApiState,
    ctx: &Ctx,
    v: ApiVersion,
    id: &str,
    name: &str,
    body: &Value,
) -> Option<ApiResult<Response>> {
    let add = match name {
        "addSecurityGroup" => true,
        "removeSecurityGroup" => false,
        _ => return None,
    };
    Some(change_groups(st, ctx, v, id, name, body, add).await)
}

/// The body of `addSecurityGroup` / `removeSecurityGroup` (nova's
/// `security_groups.add_security_group`).
pub(crate) fn action_schema(name: &str) -> Value {
    json!({
        "type": "object",
        "properties": {name: {
            "type": "object",
            "properties": {"name": {"type": "string", "minLength": 1}},
            "required": ["name"],
            "additionalProperties": false,
        }},
        "required": [name],
        "additionalProperties": false,
    })
}

async fn change_groups(
    st: &ApiState,
    ctx: &Ctx,
    v: ApiVersion,
    id: &str,
    name: &str,
    body: &Value,
    add: bool,
) -> ApiResult<Response> {
    schemas::check(&format!("action:{name}"), v, || action_schema(name), body)?;
    let inst = compute_api::get(st, ctx, id).await?;
    let rule = if add {
        "os_compute_api:os-security-groups:add"
    } else {
        "os_compute_api:os-security-groups:remove"
    };
    require_on(
        ctx,
        rule,
        inst.project_id().as_deref().unwrap_or_default(),
        inst.user_id().as_deref().unwrap_or_default(),
    )?;
    let group_name = body[name]["name"].as_str().unwrap_or_default();
    if group_name.trim().is_empty() {
        return Err(Fault::bad_request("Security group name cannot be empty"));
    }
    let c = client(st)?;
    let group = match find_group(c, ctx, &ctx.project_id, group_name).await {
        Ok(g) => g,
        Err(Find::NotFound) => {
            return Err(Fault::not_found(format!(
                "Security group {group_name} is not found for project {}",
                ctx.project_id
            )));
        }
        Err(Find::Multiple(m)) => return Err(Fault::conflict(m)),
        Err(Find::Failed(e)) => return Err(net_fault(e)),
    };
    let gid = group["id"].as_str().unwrap_or_default();
    let ports = ports_of(c, &[inst.uuid().as_str()], &[]).await?;
    if ports.is_empty() {
        return Err(Fault::not_found(format!(
            "instance_id {} could not be found as device id on any ports",
            inst.uuid()
        )));
    }
    let mut changed = false;
    for p in &ports {
        let pid = p["id"].as_str().unwrap_or_default();
        let mut groups: Vec<Value> = p["security_groups"].as_array().cloned().unwrap_or_default();
        if add {
            let has_ip = p["fixed_ips"].as_array().is_some_and(|a| !a.is_empty())
                || p["ip_allocation"] == "deferred";
            if !(has_ip && p["port_security_enabled"].as_bool().unwrap_or(true)) {
                return Err(Fault::bad_request(
                    "Network requires port_security_enabled and subnet associated in order to apply security groups.",
                ));
            }
            if !groups.iter().any(|g| g.as_str() == Some(gid)) {
                groups.push(json!(gid));
            }
        } else {
            let Some(at) = groups.iter().position(|g| g.as_str() == Some(gid)) else {
                continue;
            };
            groups.remove(at);
        }
        c.update_port(pid, json!({ "security_groups": groups }))
            .await
            .map_err(|e| match (add, e.status) {
                (true, 400) => Fault::bad_request(e.message),
                (true, 409) => Fault::conflict(e.message),
                _ => net_fault(e),
            })?;
        changed = true;
    }
    if !add && !changed {
        return Err(Fault::not_found(format!(
            "Security group {group_name} not associated with the instance {}",
            inst.uuid()
        )));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}
