//! `GET`, `PUT` and `DELETE /servers/{id}`.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nova_objects::Instance;
use serde_json::{Value, json};

use crate::ApiState;

use super::St;
use crate::auth::Ctx;
use crate::compute_api;
use crate::fault::ApiResult;
use crate::http::{json_body, require_read, require_write};
use crate::microversion::ApiVersion;
use crate::{schemas, views};

/// Whether the view shows `host_status` (2.16; nova's
/// `os_compute_api:servers:show:host_status`, admins; an update's answer
/// only from 2.75).
pub(crate) fn shows_host_status(ctx: &Ctx, v: ApiVersion, update: bool) -> bool {
    ctx.is_admin() && v.at_least(2, 16) && (!update || v.at_least(2, 75))
}

/// `server` (a view of `inst`) with what show, update and rebuild add
/// from other records: its scheduler hints (2.100), its server groups
/// (2.71), and with `security_groups` the groups of its ports (nova's
/// `show_sec_grp`: show; update and rebuild from 2.75).
pub(crate) async fn with_hints_and_groups(
    st: &ApiState,
    ctx: &Ctx,
    v: ApiVersion,
    inst: &Instance,
    server: Value,
    security_groups: bool,
) -> ApiResult<Value> {
    let mut view = [server];
    compute_api::sched_hints::fill(st, v, &mut view).await?;
    if security_groups {
        crate::secgroups::fill(st, ctx, &mut view, &[inst]).await?;
    }
    let [mut server] = view;
    if v.at_least(2, 71) {
        server["server_groups"] = json!(
            crate::server_groups::of_instance(
                st,
                inst.project_id().as_deref().unwrap_or_default(),
                inst.uuid()
            )
            .await?
        );
    }
    Ok(server)
}

pub(crate) async fn show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_read(&ctx, "os_compute_api:servers:show")?;
    let mut inst = compute_api::queries::get_with(&st, &ctx, &id, &["info_cache"]).await?;
    if shows_host_status(&ctx, v, false) {
        compute_api::host_status::load_services(&st, std::slice::from_mut(&mut inst)).await?;
    }
    let server = with_hints_and_groups(
        &st,
        &ctx,
        v,
        &inst,
        views::server(&st, &ctx, v, &inst, true),
        true,
    )
    .await?;
    Ok(axum::Json(json!({ "server": server })).into_response())
}

pub(crate) async fn update(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    require_write(&ctx, "os_compute_api:servers:update")?;
    let body = json_body(&body)?;
    schemas::check("server_update", v, || schemas::server_update(v), &body)?;
    let mut inst = compute_api::get(&st, &ctx, &id).await?;
    let s = &body["server"];
    if let Some(n) = s["name"].as_str() {
        inst.set_display_name(Some(n.to_owned()));
    }
    if let Some(d) = s.get("description") {
        inst.set_display_description(d.as_str().map(str::to_owned));
    }
    if let Some(a) = s["accessIPv4"].as_str() {
        inst.set_access_ip_v4(Some(super::create::normalize_ip(a)));
    }
    if let Some(a) = s["accessIPv6"].as_str() {
        inst.set_access_ip_v6(Some(super::create::normalize_ip(a)));
    }
    if let Some(h) = s["hostname"].as_str() {
        inst.set_hostname(Some(h.to_owned()));
    }
    if let Some(d) = s["OS-DCF:diskConfig"].as_str() {
        inst.set_auto_disk_config(d == "AUTO");
    }
    compute_api::update(&st, &mut inst).await?;
    if shows_host_status(&ctx, v, true) {
        compute_api::host_status::load_services(&st, std::slice::from_mut(&mut inst)).await?;
    }
    let server = with_hints_and_groups(
        &st,
        &ctx,
        v,
        &inst,
        views::server_updated(&st, &ctx, v, &inst),
        v.at_least(2, 75),
    )
    .await?;
    Ok(axum::Json(json!({ "server": server })).into_response())
}

pub(crate) async fn delete(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_write(&ctx, "os_compute_api:servers:delete")?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    compute_api::delete(&st, &ctx, inst, compute_api::DeleteKind::Delete).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
