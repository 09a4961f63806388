//! nova's network proxy below 2.36 (`os-networks` list and show) onto the
//! network API: nova-network is gone, so nova shows each network's `id`
//! and `label` (its name), every other field of the old view `null`, the
//! admin fields only to admins (nova's `network_dict`). A caller sees the
//! networks Neutron shows it: its project's, shared and external ones.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::require_read;
use crate::images_proxy::check_proxy;
use crate::microversion::ApiVersion;

type St = State<Arc<ApiState>>;

/// The fields of nova's view, then those only admins see.
const FIELDS: &[&str] = &[
    "id",
    "cidr",
    "netmask",
    "gateway",
    "broadcast",
    "dns1",
    "dns2",
    "cidr_v6",
    "gateway_v6",
    "label",
    "netmask_v6",
];
const ADMIN_FIELDS: &[&str] = &[
    "created_at",
    "updated_at",
    "deleted_at",
    "deleted",
    "injected",
    "bridge",
    "vlan",
    "vpn_public_address",
    "vpn_public_port",
    "vpn_private_address",
    "dhcp_start",
    "project_id",
    "host",
    "bridge_interface",
    "multi_host",
    "priority",
    "rxtx_base",
    "mtu",
    "dhcp_server",
    "enable_dhcp",
    "share_address",
];

/// nova's `network_dict`.
fn view(ctx: &Ctx, net: &Value) -> Value {
    let admin = ctx.is_admin();
    let fields = FIELDS
        .iter()
        .chain(if admin { ADMIN_FIELDS } else { &[] })
        .map(|&f| {
            let v = match f {
                "id" => net["id"].clone(),
                "label" => net["name"].clone(),
                _ => Value::Null,
            };
            (f.to_owned(), v)
        });
    Value::Object(fields.collect::<Map<String, Value>>())
}

/// Whether the caller sees `net`, as Neutron shows networks to a user.
fn visible(ctx: &Ctx, net: &Value) -> bool {
    ctx.is_admin()
        || net["shared"].as_bool() == Some(true)
        || net["router:external"].as_bool() == Some(true)
        || net["project_id"].as_str() == Some(ctx.project_id.as_str())
        || net["tenant_id"].as_str() == Some(ctx.project_id.as_str())
}

fn unavailable(e: impl std::fmt::Display) -> Fault {
    Fault::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        format!("The network service is unavailable: {e}"),
    )
}

/// The networks of the network service `ctx` sees (none without one).
async fn visible_networks(st: &crate::ApiState, ctx: &Ctx) -> ApiResult<Vec<Value>> {
    let nets = match st.network() {
        Some(n) => n.list("network", &[]).await.map_err(unavailable)?,
        None => Vec::new(),
    };
    Ok(nets.into_iter().filter(|n| visible(ctx, n)).collect())
}

/// Network `id` as `ctx` sees it (nova's 404 when it does not, or when
/// there is no network service).
async fn visible_network(st: &crate::ApiState, ctx: &Ctx, id: &str) -> ApiResult<Value> {
    let not_found = || Fault::not_found("Network not found");
    let Some(client) = st.network() else {
        return Err(not_found());
    };
    let net = match client.show("network", id).await {
        Ok(n) => n,
        Err(e) if e.is_not_found() => return Err(not_found()),
        Err(e) => return Err(unavailable(e)),
    };
    if !visible(ctx, &net) {
        return Err(not_found());
    }
    Ok(net)
}

/// `GET /os-networks`.
pub(crate) async fn index(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
) -> ApiResult<Response> {
    check_proxy(v)?;
    require_read(&ctx, "os_compute_api:os-networks:list")?;
    let out: Vec<Value> = visible_networks(&st, &ctx)
        .await?
        .iter()
        .map(|n| view(&ctx, n))
        .collect();
    Ok(axum::Json(json!({ "networks": out })).into_response())
}

/// `GET /os-networks/{id}`.
pub(crate) async fn show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    check_proxy(v)?;
    require_read(&ctx, "os_compute_api:os-networks:show")?;
    let net = visible_network(&st, &ctx, &id).await?;
    Ok(axum::Json(json!({ "network": view(&ctx, &net) })).into_response())
}

/// nova's `os-tenant-networks` view (`tenant_networks.network_dict`):
/// `cidr` is the text `"None"` there.
fn tenant_view(net: &Value) -> Value {
    json!({"id": net["id"], "cidr": "None", "label": net["name"]})
}

/// `GET /os-tenant-networks`: the networks the caller sees.
pub(crate) async fn tenant_index(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
) -> ApiResult<Response> {
    check_proxy(v)?;
    require_read(&ctx, "os_compute_api:os-tenant-networks:list")?;
    let out: Vec<Value> = visible_networks(&st, &ctx)
        .await?
        .iter()
        .map(tenant_view)
        .collect();
    Ok(axum::Json(json!({ "networks": out })).into_response())
}

/// `GET /os-tenant-networks/{id}`.
pub(crate) async fn tenant_show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    check_proxy(v)?;
    require_read(&ctx, "os_compute_api:os-tenant-networks:show")?;
    let net = visible_network(&st, &ctx, &id).await?;
    Ok(axum::Json(json!({ "network": tenant_view(&net) })).into_response())
}

/// `POST /os-tenant-networks`, `DELETE /os-tenant-networks/{id}`: removed
/// with nova-network (410 at every version).
pub(crate) async fn tenant_gone() -> Fault {
    Fault::new(
        axum::http::StatusCode::GONE,
        "This resource is no longer available in the Nova API.",
    )
}
