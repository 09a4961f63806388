//! The small server sub-resources: `os-server-password` (`GET`, `DELETE`),
//! `diagnostics` (admins; nova's 2.48 document or the driver's own dict)
//! and `topology` (2.78; admins also see host NUMA nodes and pinning).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::St;
use crate::auth::Ctx;
use crate::compute_api::{self, diagnostics, password, topology};
use crate::fault::{ApiResult, Fault};
use crate::http::{require_admin, require_read, require_write};
use crate::microversion::ApiVersion;

pub(crate) async fn password_show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_read(&ctx, "os_compute_api:os-server-password:show")?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    let pw = password::extract(&inst).unwrap_or_default();
    Ok(axum::Json(json!({"password": pw})).into_response())
}

pub(crate) async fn password_clear(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_write(&ctx, "os_compute_api:os-server-password:clear")?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    password::clear(&st, &ctx, inst).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn diagnostics(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-server-diagnostics")?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    let d = diagnostics::get(&st, &ctx, &inst, v.at_least(2, 48)).await?;
    Ok(axum::Json(d).into_response())
}

pub(crate) async fn topology(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    if !v.at_least(2, 78) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    require_read(&ctx, "compute:server:topology:index")?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    // `compute:server:topology:host:index`: admins.
    Ok(axum::Json(topology::topology(&inst, ctx.is_admin())).into_response())
}
