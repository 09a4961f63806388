//! `GET /servers/{id}/ips` and `/servers/{id}/ips/{network}` (nova's
//! `ips.py`): the info cache's addresses by network label, each
//! `{"version", "addr"}`, fixed before floating.

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::St;
use crate::auth::Ctx;
use crate::compute_api;
use crate::fault::{ApiResult, Fault};
use crate::http::require_read;
use crate::views;

/// `GET /servers/{id}/ips`.
pub(crate) async fn index(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let inst = compute_api::queries::get_with(&st, &ctx, &id, &["info_cache"]).await?;
    require_read(&ctx, "os_compute_api:ips:index")?;
    Ok(axum::Json(json!({ "addresses": views::addresses_of(&inst, false) })).into_response())
}

/// `GET /servers/{id}/ips/{network}`: 404 when the server has no address
/// on that network.
pub(crate) async fn show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path((id, network)): Path<(String, String)>,
) -> ApiResult<Response> {
    let inst = compute_api::queries::get_with(&st, &ctx, &id, &["info_cache"]).await?;
    require_read(&ctx, "os_compute_api:ips:show")?;
    let Some((label, ips)) = views::networks_of(&inst)
        .into_iter()
        .find(|(label, _)| *label == network)
    else {
        return Err(Fault::not_found(
            "Instance is not a member of specified network",
        ));
    };
    let list: Vec<Value> = ips.iter().map(|ip| views::address(ip, false)).collect();
    Ok(axum::Json(json!({ label: list })).into_response())
}
