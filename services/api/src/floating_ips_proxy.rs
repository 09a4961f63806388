//! nova's floating IP proxies below 2.36 onto the network API
//! (`os-floating-ips`, `os-floating-ip-pools`) and the server actions
//! `addFloatingIp` / `removeFloatingIp` (to 2.43), with nova's shapes and
//! faults (`nova/api/openstack/compute/floating_ips.py` over
//! `nova/network/neutron.py`). A caller sees its project's floating IPs;
//! a pool is an external network. After an association changes, the
//! server's info cache is refreshed from its ports (its `addresses` show
//! the floating address), as nova's `refresh_cache` does.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nova_objects::Instance;
use nova_service::neutron::NeutronClient;
use reqwest::Method;
use serde_json::{Value, json};

use crate::ApiState;
use crate::auth::Ctx;
use crate::compute_api;
use crate::fault::{ApiResult, Fault};
use crate::http::{require, require_on, require_read, require_write};
use crate::images_proxy::check_proxy;
use crate::microversion::ApiVersion;
use crate::schemas;
use crate::secgroups::{client, net_fault};

type St = State<Arc<ApiState>>;

fn owner(v: &Value) -> &str {
    v["project_id"]
        .as_str()
        .or(v["tenant_id"].as_str())
        .unwrap_or_default()
}

/// nova's `_translate_floating_ip_view` (`net`: the floating network).
fn view(f: &Value, net: &Value) -> Value {
    let pool = net["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map_or_else(|| net["id"].clone(), |n| json!(n));
    let instance_id = match &f["port_details"] {
        Value::Object(p) => p.get("device_id").cloned().unwrap_or(Value::Null),
        _ => Value::Null,
    };
    json!({
        "fixed_ip": f["fixed_ip_address"],
        "id": f["id"],
        "instance_id": instance_id,
        "ip": f["floating_ip_address"],
        "pool": pool,
    })
}

/// `port_details` when the network service does not fill them (a port's
/// device is the server it belongs to).
async fn with_port_details(c: &NeutronClient, mut f: Value) -> Value {
    if f.get("port_details").is_none() {
        f["port_details"] = match f["port_id"].as_str() {
            Some(p) => c.show("port", p).await.unwrap_or(Value::Null),
            None => Value::Null,
        };
    }
    f
}

async fn network_of(c: &NeutronClient, f: &Value) -> ApiResult<Value> {
    let id = f["floating_network_id"].as_str().unwrap_or_default();
    match c.show("network", id).await {
        Ok(n) => Ok(n),
        Err(e) if e.is_not_found() => Err(Fault::not_found(format!(
            "Network {id} could not be found."
        ))),
        Err(e) => Err(net_fault(e)),
    }
}

/// A floating IP of the caller's project by id (nova's 404 message).
async fn by_id(c: &NeutronClient, ctx: &Ctx, id: &str) -> ApiResult<Value> {
    let not_found = || Fault::not_found(format!("Floating IP not found for ID {id}"));
    match c.show("floatingip", id).await {
        Ok(f) if ctx.is_admin() || owner(&f) == ctx.project_id => Ok(f),
        Ok(_) => Err(not_found()),
        Err(e) if e.is_not_found() || e.status == 400 => Err(not_found()),
        Err(e) => Err(net_fault(e)),
    }
}

/// nova's `_get_floating_ip_by_address` (as the caller sees them).
async fn by_address(c: &NeutronClient, ctx: &Ctx, address: &str) -> ApiResult<Value> {
    let mut q = vec![("floating_ip_address", address)];
    if !ctx.is_admin() {
        q.push(("project_id", ctx.project_id.as_str()));
    }
    let mut found = c.list("floatingip", &q).await.map_err(net_fault)?;
    match found.len() {
        0 => Err(Fault::not_found("floating IP not found")),
        1 => Ok(found.remove(0)),
        _ => Err(Fault::conflict(format!(
            "Multiple floating IPs are found for address {address}."
        ))),
    }
}

/// `GET /os-floating-ips`: the project's floating IPs.
pub(crate) async fn index(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
) -> ApiResult<Response> {
    check_proxy(v)?;
    require_read(&ctx, "os_compute_api:os-floating-ips:list")?;
    let Some(c) = st.network() else {
        return Ok(axum::Json(json!({ "floating_ips": [] })).into_response());
    };
    let fips = c
        .list("floatingip", &[("project_id", ctx.project_id.as_str())])
        .await
        .map_err(net_fault)?;
    let mut nets: Vec<Value> = Vec::new();
    let mut out = Vec::with_capacity(fips.len());
    for f in fips {
        let nid = f["floating_network_id"].as_str().unwrap_or_default();
        let net = match nets.iter().find(|n| n["id"].as_str() == Some(nid)) {
            Some(n) => n.clone(),
            None => {
                let n = network_of(c, &f).await?;
                nets.push(n.clone());
                n
            }
        };
        let f = with_port_details(c, f).await;
        out.push(view(&f, &net));
    }
    Ok(axum::Json(json!({ "floating_ips": out })).into_response())
}

/// `GET /os-floating-ips/{id}`.
pub(crate) async fn show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    check_proxy(v)?;
    require_read(&ctx, "os_compute_api:os-floating-ips:show")?;
    let c = client(&st)?;
    let f = by_id(c, &ctx, &id).await?;
    let net = network_of(c, &f).await?;
    let f = with_port_details(c, f).await;
    Ok(axum::Json(json!({ "floating_ip": view(&f, &net) })).into_response())
}

/// `POST /os-floating-ips` (`{"pool": name or id}`, else
/// `[neutron] default_floating_pool`).
pub(crate) async fn create(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    check_proxy(v)?;
    require_write(&ctx, "os_compute_api:os-floating-ips:create")?;
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body).map_err(|_| Fault::bad_request("Malformed request body"))?
    };
    schemas::check(
        "os-floating-ips:create",
        v,
        || {
            json!({"type": ["object", "null"],
                   "properties": {"pool": {"type": ["string", "null"]}}})
        },
        &body,
    )?;
    let c = client(&st)?;
    let asked = body["pool"].as_str().filter(|p| !p.is_empty());
    let pool = asked.unwrap_or(&st.cfg.default_floating_pool);
    let key = if uuid::Uuid::try_parse(pool).is_ok() {
        "id"
    } else {
        "name"
    };
    let nets = c
        .list("network", &[("router:external", "True"), (key, pool)])
        .await
        .map_err(net_fault)?;
    let net = match nets.len() {
        1 => nets.into_iter().next().unwrap_or_default(),
        0 => return Err(Fault::not_found("Floating IP pool not found.")),
        _ => {
            return Err(Fault::internal(format!(
                "Multiple floating IP pools matches found for name '{pool}'"
            )));
        }
    };
    let made = c
        .call(
            Method::POST,
            "/v2.0/floatingips",
            Some(&json!({"floatingip": {
                "floating_network_id": net["id"],
                "project_id": ctx.project_id, "tenant_id": ctx.project_id,
            }})),
        )
        .await;
    let f = match made {
        Ok(v) => v["floatingip"].clone(),
        Err(e)
            if e.kind == "IpAddressGenerationFailure" || e.kind == "ExternalIpAddressExhausted" =>
        {
            return Err(Fault::not_found(match asked {
                Some(p) => format!("No more floating IPs in pool {p}."),
                None => "No more floating IPs available.".to_owned(),
            }));
        }
        Err(e) if e.kind == "OverQuota" => {
            return Err(Fault::forbidden(match asked {
                Some(p) => format!("IP allocation over quota in pool {p}."),
                None => "IP allocation over quota.".to_owned(),
            }));
        }
        Err(e) if e.status == 400 => return Err(Fault::bad_request(e.message)),
        Err(e) => return Err(net_fault(e)),
    };
    let f = with_port_details(c, f).await;
    Ok(axum::Json(json!({ "floating_ip": view(&f, &net) })).into_response())
}

/// `DELETE /os-floating-ips/{id}`: dissociated and released; the server
/// it was on gets its info cache refreshed.
pub(crate) async fn delete(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    check_proxy(v)?;
    require_write(&ctx, "os_compute_api:os-floating-ips:delete")?;
    let c = client(&st)?;
    let f = by_id(c, &ctx, &id).await?;
    let f = with_port_details(c, f).await;
    let server = f["port_details"]["device_id"]
        .as_str()
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    let inst = match &server {
        Some(s) => compute_api::get(&st, &ctx, s).await.ok(),
        None => None,
    };
    match c
        .call(Method::DELETE, &format!("/v2.0/floatingips/{id}"), None)
        .await
    {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {
            return Err(Fault::not_found(format!(
                "Floating IP not found for address {}.",
                f["floating_ip_address"].as_str().unwrap_or_default()
            )));
        }
        Err(e) => return Err(net_fault(e)),
    }
    if let Some(i) = inst {
        refresh_cache(&st, c, &i).await;
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `GET /os-floating-ip-pools`: the external networks.
pub(crate) async fn pools(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
) -> ApiResult<Response> {
    check_proxy(v)?;
    require(&ctx, "os_compute_api:os-floating-ip-pools")?;
    let nets = match st.network() {
        Some(c) => c
            .list("network", &[("router:external", "True")])
            .await
            .map_err(net_fault)?,
        None => vec![],
    };
    let out: Vec<Value> = nets
        .iter()
        .map(|n| {
            let name = n["name"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map_or_else(|| n["id"].clone(), |s| json!(s));
            json!({ "name": name })
        })
        .collect();
    Ok(axum::Json(json!({ "floating_ip_pools": out })).into_response())
}

/// nova's `refresh_cache` after a floating IP change: the server's VIFs
/// rebuilt from its ports and saved in its info cache. Failures are
/// logged (the association itself stands), as nova does.
async fn refresh_cache(st: &ApiState, c: &NeutronClient, inst: &Instance) {
    if let Err(e) = try_refresh_cache(st, c, inst).await {
        tracing::warn!(instance = %inst.uuid(), error = %e, "info cache not refreshed");
    }
}

async fn try_refresh_cache(
    st: &ApiState,
    c: &NeutronClient,
    inst: &Instance,
) -> anyhow::Result<()> {
    let actx = crate::http::admin_ctx();
    let lookup = nova_objects::Lookup::field("instance_uuid", inst.uuid().as_str());
    let mut cache = st
        .objects
        .get::<nova_objects::InstanceInfoCache>(&actx, lookup)
        .await?;
    let cached = nova_service::neutron::vifs_of_cache(cache.network_info().as_deref());
    let nw = c.instance_network_info(inst.uuid(), &cached).await?;
    cache.set_network_info(Some(Value::from(nw).to_string()));
    st.objects.save(&actx, &mut cache).await?;
    Ok(())
}

/// The body of `addFloatingIp` / `removeFloatingIp` (nova's
/// `floating_ips.add_floating_ip`).
pub(crate) fn action_schema(name: &str) -> Value {
    let props = if name == "addFloatingIp" {
        json!({"address": schemas::ip_address(), "fixed_address": schemas::ip_address()})
    } else {
        json!({"address": schemas::ip_address()})
    };
    json!({
        "type": "object",
        "properties": {name: {
            "type": "object",
            "properties": props,
            "required": ["address"],
            "additionalProperties": false,
        }},
        "required": [name],
        "additionalProperties": false,
    })
}

fn parse_action(name: &str, v: ApiVersion, body: &Value) -> ApiResult<()> {
    schemas::check(&format!("action:{name}"), v, || action_schema(name), body)
}

/// `addFloatingIp` / `removeFloatingIp` (to 2.43; `None`: another action).
pub(crate) async fn action(
    st: &ApiState,
    ctx: &Ctx,
    v: ApiVersion,
    id: &str,
    name: &str,
    body: &Value,
) -> Option<ApiResult<Response>> {
    let add = match name {
        "addFloatingIp" => true,
        "removeFloatingIp" => false,
        _ => return None,
    };
    Some(
        async {
            if v.at_least(2, 44) {
                return Err(Fault::not_found(format!("There is no such action: {name}")));
            }
            parse_action(name, v, body)?;
            if add {
                add_floating_ip(st, ctx, id, &body[name]).await
            } else {
                remove_floating_ip(st, ctx, id, &body[name]).await
            }
        }
        .await,
    )
}

async fn add_floating_ip(st: &ApiState, ctx: &Ctx, id: &str, args: &Value) -> ApiResult<Response> {
    let inst = compute_api::queries::get_with(st, ctx, id, &["info_cache"]).await?;
    require_on(
        ctx,
        "os_compute_api:os-floating-ips:add",
        inst.project_id().as_deref().unwrap_or_default(),
        inst.user_id().as_deref().unwrap_or_default(),
    )?;
    let address = args["address"].as_str().unwrap_or_default();
    let vifs = nova_service::neutron::vifs_of_cache(
        inst.info_cache()
            .as_ref()
            .and_then(|c| c.network_info().as_deref()),
    );
    if vifs.is_empty() {
        return Err(Fault::bad_request("Instance network is not ready yet"));
    }
    // (port, fixed address) in the cache's order.
    let fixed: Vec<(String, String)> = vifs
        .iter()
        .flat_map(|vif| {
            let port = vif["id"].as_str().unwrap_or_default().to_owned();
            vif["network"]["subnets"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| s["ips"].as_array().into_iter().flatten())
                .filter(|ip| ip["type"].as_str().unwrap_or("fixed") == "fixed")
                .filter_map(|ip| ip["address"].as_str())
                .map(move |a| (port.clone(), a.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    if fixed.is_empty() {
        return Err(Fault::bad_request("No fixed IPs associated to instance"));
    }
    let chosen = match args["fixed_address"].as_str() {
        Some(want) => fixed
            .iter()
            .find(|(_, a)| a == want)
            .cloned()
            .ok_or_else(|| Fault::bad_request("Specified fixed address not assigned to instance"))?,
        None => fixed
            .iter()
            .find(|(_, a)| a.parse::<std::net::Ipv4Addr>().is_ok())
            .cloned()
            .ok_or_else(|| {
                Fault::bad_request(format!(
                    "Unable to associate floating IP {address} to any fixed IPs for instance {id}. Instance has no fixed IPv4 addresses to associate."
                ))
            })?,
    };
    let c = client(st)?;
    let f = by_address(c, ctx, address).await?;
    let fid = f["id"].as_str().unwrap_or_default();
    let r = c
        .call(
            Method::PUT,
            &format!("/v2.0/floatingips/{fid}"),
            Some(&json!({"floatingip": {"port_id": chosen.0, "fixed_ip_address": chosen.1}})),
        )
        .await;
    match r {
        Ok(_) => {}
        Err(e) if e.status == 409 => {
            return Err(Fault::bad_request(e.message));
        }
        Err(e) if e.status == 0 => return Err(net_fault(e)),
        Err(e) => {
            return Err(Fault::bad_request(format!(
                "Unable to associate floating IP {address} to fixed IP {} for instance {id}. Error: {}",
                chosen.1, e.message
            )));
        }
    }
    refresh_cache(st, c, &inst).await;
    // The server it was on before, if another one.
    if let Some(before) = f["port_id"].as_str()
        && before != chosen.0
        && let Ok(p) = c.show("port", before).await
        && let Some(d) = p["device_id"]
            .as_str()
            .filter(|d| !d.is_empty() && *d != id)
        && let Ok(other) = compute_api::get(st, ctx, d).await
    {
        refresh_cache(st, c, &other).await;
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn remove_floating_ip(
    st: &ApiState,
    ctx: &Ctx,
    id: &str,
    args: &Value,
) -> ApiResult<Response> {
    let address = args["address"].as_str().unwrap_or_default();
    let c = client(st)?;
    let f = by_address(c, ctx, address).await?;
    let device = match f["port_id"].as_str() {
        Some(p) => c
            .show("port", p)
            .await
            .ok()
            .and_then(|p| p["device_id"].as_str().map(str::to_owned))
            .filter(|d| !d.is_empty()),
        None => None,
    };
    let inst = match &device {
        Some(d) => Some(compute_api::get(st, ctx, d).await?),
        None => None,
    };
    match &inst {
        Some(i) => require_on(
            ctx,
            "os_compute_api:os-floating-ips:remove",
            i.project_id().as_deref().unwrap_or_default(),
            i.user_id().as_deref().unwrap_or_default(),
        )?,
        None => require(ctx, "os_compute_api:os-floating-ips:remove")?,
    }
    let Some(inst) = inst.filter(|i| i.uuid() == id && !f["port_id"].is_null()) else {
        return Err(Fault::conflict(format!(
            "Floating IP {address} is not associated with instance {id}."
        )));
    };
    let fid = f["id"].as_str().unwrap_or_default();
    c.call(
        Method::PUT,
        &format!("/v2.0/floatingips/{fid}"),
        Some(&json!({"floatingip": {"port_id": null}})),
    )
    .await
    .map_err(|e| match e.status {
        403 => Fault::forbidden(e.message),
        _ => net_fault(e),
    })?;
    refresh_cache(st, c, &inst).await;
    Ok(StatusCode::ACCEPTED.into_response())
}
