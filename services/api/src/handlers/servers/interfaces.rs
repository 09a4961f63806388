//! `/servers/{id}/os-interface[/{port_id}]` (nova's `attach_interfaces.py`):
//! the server's ports from the network service (list, show), attach (a
//! port, or a new port on a network, with a fixed IP; `tag` from 2.49) and
//! detach (202, done by the compute). Each attachment is `net_id`,
//! `port_id`, `mac_addr`, `port_state`, `fixed_ips`, and from 2.70 `tag`
//! (the tag it was attached or booted with, from the server's
//! `VirtualInterface` records).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::St;
use crate::auth::Ctx;
use crate::compute_api::{self, interfaces::AttachRequest};
use crate::fault::{ApiResult, Fault};
use crate::http::{json_body, require_read, require_write};
use crate::microversion::ApiVersion;
use crate::schemas;

const RULE: &str = "os_compute_api:os-attach-interfaces";

/// nova's `attach_interfaces.create` schema (`tag` from 2.49).
fn create_schema(v: ApiVersion) -> Value {
    let mut props = json!({
        "net_id": {"type": "string", "format": "uuid"},
        "port_id": {"type": "string", "format": "uuid"},
        "fixed_ips": {"type": "array", "minItems": 1, "maxItems": 1,
            "items": {"type": "object",
                "properties": {"ip_address": crate::schemas::ip_address()},
                "required": ["ip_address"], "additionalProperties": false}},
    });
    if v.at_least(2, 49) {
        props["tag"] = compute_api::tags::tag_schema();
    }
    json!({"type": "object",
        "properties": {"interfaceAttachment": {"type": "object", "properties": props,
            "additionalProperties": false}},
        "additionalProperties": false})
}

/// The tags of the server's interfaces, by port: its `VirtualInterface`
/// records (nova's `VirtualInterfaceList.get_by_instance_uuid`).
async fn tags_of(
    st: &crate::ApiState,
    ctx: &Ctx,
    inst: &nova_objects::Instance,
) -> ApiResult<Vec<(String, Value)>> {
    let vifs: Vec<nova_objects::VirtualInterface> = st
        .objects
        .list(
            &ctx.rpc(),
            &nova_objects::ListQuery::new().filter("instance_uuid", inst.uuid().as_str()),
        )
        .await?;
    Ok(vifs
        .into_iter()
        .map(|v| (v.uuid().clone(), json!(v.tag())))
        .collect())
}

/// nova's `_translate_interface_attachment_view`.
fn view(port: &Value, tag: Option<Value>) -> Value {
    let mut v = json!({
        "net_id": port["network_id"],
        "port_id": port["id"],
        "mac_addr": port["mac_address"],
        "port_state": port["status"],
        "fixed_ips": port.get("fixed_ips").cloned().unwrap_or(Value::Null),
    });
    if let Some(t) = tag {
        v["tag"] = t;
    }
    v
}

fn network(
    st: &crate::ApiState,
) -> ApiResult<&std::sync::Arc<nova_service::neutron::NeutronClient>> {
    st.network().ok_or_else(|| {
        Fault::new(
            StatusCode::NOT_IMPLEMENTED,
            "The requested functionality is not supported.",
        )
    })
}

/// `GET /servers/{id}/os-interface`.
pub(crate) async fn index(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let inst = compute_api::queries::get_with(&st, &ctx, &id, &["info_cache"]).await?;
    require_read(&ctx, &format!("{RULE}:list"))?;
    let client = network(&st)?;
    let ports = client
        .list("port", &[("device_id", inst.uuid().as_str())])
        .await
        .map_err(Fault::internal)?;
    let tags = if v.at_least(2, 70) {
        Some(tags_of(&st, &ctx, &inst).await?)
    } else {
        None
    };
    let list: Vec<Value> = ports
        .iter()
        .map(|p| {
            let tag = tags.as_ref().map(|t| {
                t.iter()
                    .find(|(id, _)| p["id"].as_str() == Some(id.as_str()))
                    .map(|(_, tag)| tag.clone())
                    .unwrap_or(Value::Null)
            });
            view(p, tag)
        })
        .collect();
    Ok(axum::Json(json!({ "interfaceAttachments": list })).into_response())
}

/// The attachment of port `port_id` to server `id` (404 when the port
/// does not exist or is not the server's).
async fn show_port(
    st: &crate::ApiState,
    ctx: &Ctx,
    inst: &nova_objects::Instance,
    port_id: &str,
    v: ApiVersion,
) -> ApiResult<Value> {
    let client = network(st)?;
    let port = client.show("port", port_id).await.map_err(|e| {
        if e.is_not_found() {
            Fault::not_found(format!("Port id {port_id} could not be found."))
        } else {
            Fault::internal(e)
        }
    })?;
    if port["device_id"].as_str() != Some(inst.uuid().as_str()) {
        return Err(Fault::not_found(format!(
            "Instance {} does not have a port with id {port_id}",
            inst.uuid()
        )));
    }
    let tag = if v.at_least(2, 70) {
        Some(
            tags_of(st, ctx, inst)
                .await?
                .into_iter()
                .find(|(id, _)| id == port_id)
                .map(|(_, t)| t)
                .unwrap_or(Value::Null),
        )
    } else {
        None
    };
    Ok(json!({ "interfaceAttachment": view(&port, tag) }))
}

/// `GET /servers/{id}/os-interface/{port_id}`.
pub(crate) async fn show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path((id, port_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let inst = compute_api::queries::get_with(&st, &ctx, &id, &["info_cache"]).await?;
    require_read(&ctx, &format!("{RULE}:show"))?;
    Ok(axum::Json(show_port(&st, &ctx, &inst, &port_id, v).await?).into_response())
}

/// `POST /servers/{id}/os-interface`: the new attachment (200).
pub(crate) async fn create(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let inst = compute_api::queries::get_with(&st, &ctx, &id, &["info_cache"]).await?;
    require_write(&ctx, &format!("{RULE}:create"))?;
    // nova takes an empty body as no attachment details.
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        json_body(&body)?
    };
    let schema_v = if v.at_least(2, 49) {
        ApiVersion(2, 49)
    } else {
        ApiVersion(2, 1)
    };
    schemas::check(
        "attach_interface",
        schema_v,
        || create_schema(schema_v),
        &body,
    )?;
    let a = &body["interfaceAttachment"];
    let s = |k: &str| a[k].as_str().map(str::to_owned);
    let req = AttachRequest {
        network_id: s("net_id"),
        port_id: s("port_id"),
        ip: a["fixed_ips"][0]["ip_address"].as_str().map(str::to_owned),
        tag: s("tag"),
    };
    if req.network_id.is_some() && req.port_id.is_some() {
        return Err(Fault::bad_request(
            "Must not input both network_id and port_id",
        ));
    }
    if req.ip.is_some() && req.network_id.is_none() {
        return Err(Fault::bad_request(
            "Must input network_id when request IP address",
        ));
    }
    network(&st)?;
    let port_id = compute_api::interfaces::attach(&st, &ctx, &inst, req).await?;
    let inst = compute_api::queries::get_with(&st, &ctx, &id, &["info_cache"]).await?;
    Ok(axum::Json(show_port(&st, &ctx, &inst, &port_id, v).await?).into_response())
}

/// `DELETE /servers/{id}/os-interface/{port_id}` (202).
pub(crate) async fn delete(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path((id, port_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let inst = compute_api::queries::get_with(&st, &ctx, &id, &["info_cache"]).await?;
    require_write(&ctx, &format!("{RULE}:delete"))?;
    compute_api::interfaces::detach(&st, &ctx, &inst, &port_id).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
