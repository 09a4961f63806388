//! `/servers/{id}/tags[/{tag}]` (nova's `server_tags`, 2.26): list,
//! replace, delete all, and one tag's `GET` (204/404), `PUT` (201 with
//! its location, or 204 when already there) and `DELETE`.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::St;
use crate::auth::Ctx;
use crate::compute_api::{self, tags};
use crate::fault::{ApiResult, Fault};
use crate::http::{json_body, require_read, require_write};
use crate::microversion::{ApiVersion, MIN};
use crate::schemas;

const RULE: &str = "os_compute_api:os-server-tags";

/// The routes exist from 2.26.
fn since_2_26(v: ApiVersion) -> ApiResult<()> {
    if v.at_least(2, 26) {
        Ok(())
    } else {
        Err(Fault::not_found("The resource could not be found."))
    }
}

pub(crate) fn update_all_schema() -> Value {
    json!({"type": "object",
           "properties": {"tags": {"type": "array", "items": tags::tag_schema(),
                                   "maxItems": tags::MAX_TAG_COUNT}},
           "required": ["tags"], "additionalProperties": false})
}

pub(crate) async fn index(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    since_2_26(v)?;
    require_read(&ctx, &format!("{RULE}:index"))?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    Ok(axum::Json(json!({"tags": tags::tags_of(&inst)})).into_response())
}

pub(crate) async fn update_all(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    since_2_26(v)?;
    require_write(&ctx, &format!("{RULE}:update_all"))?;
    let body = json_body(&body)?;
    schemas::check("server_tags", MIN, update_all_schema, &body)?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    let wanted: Vec<String> = body["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let now = tags::replace(&st, &ctx, inst, &wanted, "update tags").await?;
    Ok(axum::Json(json!({"tags": now})).into_response())
}

pub(crate) async fn delete_all(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    since_2_26(v)?;
    require_write(&ctx, &format!("{RULE}:delete_all"))?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    tags::replace(&st, &ctx, inst, &[], "delete tags").await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<Response> {
    since_2_26(v)?;
    require_read(&ctx, &format!("{RULE}:show"))?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    if tags::tags_of(&inst).contains(&tag) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Fault::not_found(format!("Server {id} has no tag '{tag}'")))
    }
}

pub(crate) async fn update(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path((id, tag)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    since_2_26(v)?;
    require_write(&ctx, &format!("{RULE}:update"))?;
    // The body is empty (or JSON null).
    if !body.iter().all(u8::is_ascii_whitespace) {
        let b = json_body(&body)?;
        schemas::check("server_tag", MIN, || json!({"type": "null"}), &b)?;
    }
    let inst = compute_api::get(&st, &ctx, &id).await?;
    if !tags::add(&st, &ctx, inst, &tag).await? {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let mut r = StatusCode::CREATED.into_response();
    // The tag as a path segment (percent-encoded outside RFC 3986's
    // unreserved characters).
    let segment: String = tag
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let location = format!("{}/v2.1/servers/{id}/tags/{segment}", st.cfg.public_url);
    if let Ok(l) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, l);
    }
    Ok(r)
}

pub(crate) async fn delete(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<Response> {
    since_2_26(v)?;
    require_write(&ctx, &format!("{RULE}:delete"))?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    tags::remove(&st, &ctx, inst, &tag).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
