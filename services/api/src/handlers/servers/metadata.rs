//! `/servers/{id}/metadata[/{key}]` (nova's `server_metadata`): list,
//! merge (`POST`), replace (`PUT`), and one key's `GET`, `PUT`, `DELETE`.

use std::collections::BTreeMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::St;
use crate::auth::Ctx;
use crate::compute_api::{self, metadata};
use crate::fault::{ApiResult, Fault};
use crate::http::{json_body, require_read, require_write};
use crate::microversion::MIN;
use crate::schemas;

const RULE: &str = "os_compute_api:server-metadata";

/// nova's `parameter_types.metadata`.
fn metadata_schema() -> Value {
    json!({"type": "object",
           "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": "string", "maxLength": 255}},
           "additionalProperties": false})
}

/// `{"metadata": {...}}` (create, update_all).
pub(crate) fn body_schema() -> Value {
    json!({"type": "object", "properties": {"metadata": metadata_schema()},
           "required": ["metadata"], "additionalProperties": false})
}

/// `{"meta": {key: value}}` (update one key).
pub(crate) fn meta_schema() -> Value {
    let mut m = metadata_schema();
    m["minProperties"] = json!(1);
    m["maxProperties"] = json!(1);
    json!({"type": "object", "properties": {"meta": m},
           "required": ["meta"], "additionalProperties": false})
}

/// The string map of a checked body's `key`.
fn items(body: &Value, key: &str) -> BTreeMap<String, String> {
    body[key]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) async fn index(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_read(&ctx, &format!("{RULE}:index"))?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    Ok(axum::Json(json!({"metadata": inst.metadata()})).into_response())
}

async fn write(st: St, ctx: Ctx, id: String, body: Bytes, replace: bool) -> ApiResult<Response> {
    let State(st) = st;
    let rule = if replace { "update_all" } else { "create" };
    require_write(&ctx, &format!("{RULE}:{rule}"))?;
    let body = json_body(&body)?;
    schemas::check("server_metadata", MIN, body_schema, &body)?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    let new = metadata::update(&st, &ctx, inst, items(&body, "metadata"), replace).await?;
    Ok(axum::Json(json!({"metadata": new})).into_response())
}

pub(crate) async fn create(
    st: St,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    write(st, ctx, id, body, false).await
}

pub(crate) async fn update_all(
    st: St,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    write(st, ctx, id, body, true).await
}

pub(crate) async fn show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    require_read(&ctx, &format!("{RULE}:show"))?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    match inst.metadata().get(&key) {
        Some(v) => Ok(axum::Json(json!({"meta": {key: v}})).into_response()),
        None => Err(Fault::not_found("Metadata item was not found")),
    }
}

pub(crate) async fn update(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path((id, key)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    require_write(&ctx, &format!("{RULE}:update"))?;
    let body = json_body(&body)?;
    schemas::check("server_metadata_item", MIN, meta_schema, &body)?;
    let meta = items(&body, "meta");
    if !meta.contains_key(&key) {
        return Err(Fault::bad_request("Request body and URI mismatch"));
    }
    let inst = compute_api::get(&st, &ctx, &id).await?;
    metadata::update(&st, &ctx, inst, meta.clone(), false).await?;
    Ok(axum::Json(json!({"meta": meta})).into_response())
}

pub(crate) async fn delete(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    require_write(&ctx, &format!("{RULE}:delete"))?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    metadata::delete_key(&st, &ctx, inst, &key).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
