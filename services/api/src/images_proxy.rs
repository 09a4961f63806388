//! nova's image proxy (`/v2.1/images`, 2.1–2.35; image metadata to 2.38)
//! over our image service: list (brief and detail, nova's filters, marker
//! and limit), show, delete, and an image's custom properties as
//! `metadata` (nova's `image_metadata` controller).

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::{json_body, param, with_links};
use crate::microversion::ApiVersion;
use crate::{ApiState, ImageStore};

type St = State<Arc<ApiState>>;
type Params = Query<Vec<(String, String)>>;

/// The proxy exists below 2.36 (nova's `MAX_PROXY_API_SUPPORT_VERSION`).
pub(crate) fn check_proxy(v: ApiVersion) -> ApiResult<()> {
    if v.at_least(2, 36) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    Ok(())
}

/// Image metadata exists below 2.39.
fn check_metadata(v: ApiVersion) -> ApiResult<()> {
    if v.at_least(2, 39) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    Ok(())
}

/// An image the caller may see (404 "Image not found." otherwise).
fn image(st: &ApiState, ctx: &Ctx, id: &str) -> ApiResult<Value> {
    match st.images.get(id) {
        Some(img) if ImageStore::visible(ctx, &img) => Ok(img),
        _ => Err(Fault::not_found("Image not found.")),
    }
}

/// Glance lets the owner (or an admin) change an image.
fn check_owner(ctx: &Ctx, img: &Value) -> ApiResult<()> {
    if ctx.is_admin() || img["owner"].as_str() == Some(ctx.project_id.as_str()) {
        Ok(())
    } else {
        Err(Fault::forbidden(format!(
            "Not authorized for image {}.",
            img["id"].as_str().unwrap_or_default()
        )))
    }
}

fn image_url(st: &ApiState) -> String {
    st.identity
        .catalog
        .iter()
        .find(|c| c.service_type == "image")
        .map(|c| c.url.trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

fn links(st: &ApiState, id: &str) -> Value {
    json!([
        {"rel": "self", "href": format!("{}/v2.1/images/{id}", st.cfg.public_url)},
        {"rel": "bookmark", "href": format!("{}/images/{id}", st.cfg.public_url)},
        {"rel": "alternate", "type": "application/vnd.openstack.image",
         "href": format!("{}/images/{id}", image_url(st))},
    ])
}

fn brief(st: &ApiState, img: &Value) -> Value {
    let id = img["id"].as_str().unwrap_or_default();
    json!({"id": id, "name": img["name"], "links": links(st, id)})
}

fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

/// nova's image view (`views/images.py` `show`).
fn detail_view(st: &ApiState, img: &Value) -> Value {
    let id = img["id"].as_str().unwrap_or_default();
    let status = img["status"].as_str().unwrap_or_default();
    let props = ImageStore::properties(img);
    let mut out = json!({
        "id": id,
        "name": img["name"],
        "minRam": int(&img["min_ram"]),
        "minDisk": int(&img["min_disk"]),
        "metadata": props,
        "created": img["created_at"],
        "updated": img["updated_at"],
        "status": match status {
            "active" => "ACTIVE",
            "queued" | "saving" => "SAVING",
            "deleted" | "pending_delete" => "DELETED",
            "killed" => "ERROR",
            _ => "UNKNOWN",
        },
        "progress": match status {
            "queued" => 25,
            "saving" => 50,
            "active" => 100,
            _ => 0,
        },
        "OS-EXT-IMG-SIZE:size": img["size"],
        "links": links(st, id),
    });
    if let Some(server) = props.get("instance_uuid").and_then(Value::as_str) {
        out["server"] = json!({"id": server, "links": [
            {"rel": "self", "href": format!("{}/v2.1/servers/{server}", st.cfg.public_url)},
            {"rel": "bookmark", "href": format!("{}/servers/{server}", st.cfg.public_url)},
        ]});
    }
    if let Some(adc) = props.get("auto_disk_config") {
        let on = match adc {
            Value::Bool(b) => *b,
            Value::String(s) => crate::http::truthy(s).unwrap_or(false),
            _ => false,
        };
        out["OS-DCF:diskConfig"] = json!(if on { "AUTO" } else { "MANUAL" });
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The images the caller sees, filtered as nova asks Glance to filter
/// (`name`, `status`, `changes-since`, `server`, `type`, `minRam`,
/// `minDisk`, `property-*`), newest first, paged by `marker` and `limit`.
fn listed(st: &ApiState, ctx: &Ctx, p: &[(String, String)], path: &str) -> ApiResult<Value> {
    let mut all: Vec<Value> = st
        .images
        .all()
        .into_iter()
        .filter(|i| ImageStore::visible(ctx, i))
        .collect();
    for (k, want) in p {
        let want = want.as_str();
        all.retain(|img| {
            let props = ImageStore::properties(img);
            match k.as_str() {
                "name" => text(&img["name"]) == want,
                "status" => text(&img["status"]) == want.to_ascii_lowercase(),
                "changes-since" => text(&img["updated_at"]).as_str() >= want,
                "server" => {
                    let uuid = want.rsplit('/').next().unwrap_or(want);
                    props.get("instance_uuid").map(text).as_deref() == Some(uuid)
                }
                "type" => props.get("image_type").map(text).as_deref() == Some(want),
                "minRam" => want.parse::<i64>().is_ok_and(|n| int(&img["min_ram"]) >= n),
                "minDisk" => want
                    .parse::<i64>()
                    .is_ok_and(|n| int(&img["min_disk"]) >= n),
                other => match other.strip_prefix("property-") {
                    Some(prop) => props.get(prop).map(text).as_deref() == Some(want),
                    None => true,
                },
            }
        });
    }
    all.sort_by(|a, b| {
        text(&b["created_at"])
            .cmp(&text(&a["created_at"]))
            .then(text(&b["id"]).cmp(&text(&a["id"])))
    });
    let next = crate::http::paginate(
        st,
        &mut all,
        param(p, "marker"),
        param(p, "limit"),
        path,
        |i| i["id"].as_str().unwrap_or_default(),
    )?;
    let detail = path.ends_with("detail");
    let list: Vec<Value> = all
        .iter()
        .map(|i| {
            if detail {
                detail_view(st, i)
            } else {
                brief(st, i)
            }
        })
        .collect();
    Ok(with_links(json!({"images": list}), "images", next))
}

pub(crate) async fn index(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Query(p): Params,
) -> ApiResult<Response> {
    check_proxy(v)?;
    Ok(axum::Json(listed(&st, &ctx, &p, "images")?).into_response())
}

pub(crate) async fn detail(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Query(p): Params,
) -> ApiResult<Response> {
    check_proxy(v)?;
    Ok(axum::Json(listed(&st, &ctx, &p, "images/detail")?).into_response())
}

pub(crate) async fn show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    check_proxy(v)?;
    let img = image(&st, &ctx, &id)?;
    Ok(axum::Json(json!({"image": detail_view(&st, &img)})).into_response())
}

pub(crate) async fn delete(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    check_proxy(v)?;
    let img = image(&st, &ctx, &id)?;
    if check_owner(&ctx, &img).is_err() || img["protected"].as_bool() == Some(true) {
        return Err(Fault::forbidden("You are not allowed to delete the image."));
    }
    st.images.remove(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// nova's `check_img_metadata_properties_quota` and metadata schema:
/// string keys of 1–255 characters, string values up to 255, at most
/// `[quota] metadata_items` of them.
async fn check_metadata_items(st: &ApiState, ctx: &Ctx, m: &Map<String, Value>) -> ApiResult<()> {
    for (k, v) in m {
        if k.is_empty() || k.chars().count() > 255 {
            return Err(Fault::bad_request(format!(
                "Invalid input for field/attribute metadata. Value: {k}. Image metadata key must be 1 to 255 characters"
            )));
        }
        if !v.is_string() || v.as_str().is_some_and(|s| s.chars().count() > 255) {
            return Err(Fault::bad_request(format!(
                "Invalid input for field/attribute {k}. Value: {v}. The value must be a string of at most 255 characters"
            )));
        }
    }
    let limit = crate::compute_api::metadata::items_limit(st, ctx).await?;
    if limit >= 0 && m.len() as i64 > limit {
        return Err(Fault::forbidden("Image metadata limit exceeded"));
    }
    Ok(())
}

/// nova's `image_metadata` body schemas: `{"metadata": {...}}` (create,
/// update_all) or `{"meta": {k: v}}` (one item), with
/// `parameter_types.metadata`'s keys and string values.
fn body_schema(key: &str) -> Value {
    let mut items = json!({"type": "object",
        "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": "string", "maxLength": 255}},
        "additionalProperties": false});
    if key == "meta" {
        items["minProperties"] = json!(1);
        items["maxProperties"] = json!(1);
    }
    json!({"type": "object", "properties": {key: items}, "required": [key],
           "additionalProperties": false})
}

fn body_map(body: &Value, key: &str) -> ApiResult<Map<String, Value>> {
    crate::schemas::check(
        &format!("image_metadata:{key}"),
        crate::microversion::MIN,
        || body_schema(key),
        body,
    )?;
    match body.get(key) {
        Some(Value::Object(m)) => Ok(m.clone()),
        _ => Err(Fault::bad_request(format!(
            "Invalid input for field/attribute {key}. '{key}' is a required property"
        ))),
    }
}

fn save_props(st: &ApiState, id: &str, props: &Map<String, Value>) -> ApiResult<Value> {
    st.images
        .set_properties(id, props)
        .map_err(|_| Fault::not_found("Image not found."))
}

pub(crate) async fn metadata_index(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    check_metadata(v)?;
    let img = image(&st, &ctx, &id)?;
    Ok(axum::Json(json!({"metadata": ImageStore::properties(&img)})).into_response())
}

pub(crate) async fn metadata_show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    check_metadata(v)?;
    let img = image(&st, &ctx, &id)?;
    match ImageStore::properties(&img).get(&key) {
        Some(val) => Ok(axum::Json(json!({"meta": {key: val}})).into_response()),
        None => Err(Fault::not_found("The resource could not be found.")),
    }
}

/// `POST`: merges the given items into the image's properties.
pub(crate) async fn metadata_create(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    check_metadata(v)?;
    let body = json_body(&body)?;
    let given = body_map(&body, "metadata")?;
    let img = image(&st, &ctx, &id)?;
    let mut props = ImageStore::properties(&img);
    props.extend(given);
    check_metadata_items(&st, &ctx, &props).await?;
    check_owner(&ctx, &img)?;
    let img = save_props(&st, &id, &props)?;
    Ok(axum::Json(json!({"metadata": ImageStore::properties(&img)})).into_response())
}

/// `PUT`: replaces every property.
pub(crate) async fn metadata_update_all(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    check_metadata(v)?;
    let body = json_body(&body)?;
    let given = body_map(&body, "metadata")?;
    let img = image(&st, &ctx, &id)?;
    check_metadata_items(&st, &ctx, &given).await?;
    check_owner(&ctx, &img)?;
    save_props(&st, &id, &given)?;
    Ok(axum::Json(json!({"metadata": given})).into_response())
}

/// `PUT /metadata/{key}`: one item, whose key must be the URL's.
pub(crate) async fn metadata_update(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path((id, key)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    check_metadata(v)?;
    let body = json_body(&body)?;
    let meta = body_map(&body, "meta")?;
    if meta.len() != 1 {
        return Err(Fault::bad_request(
            "Invalid input for field/attribute meta. Value: the body must hold exactly one item",
        ));
    }
    let Some(value) = meta.get(&key) else {
        return Err(Fault::bad_request("Request body and URI mismatch"));
    };
    let img = image(&st, &ctx, &id)?;
    let mut props = ImageStore::properties(&img);
    props.insert(key.clone(), value.clone());
    check_metadata_items(&st, &ctx, &props).await?;
    check_owner(&ctx, &img)?;
    save_props(&st, &id, &props)?;
    Ok(axum::Json(json!({"meta": meta})).into_response())
}

pub(crate) async fn metadata_delete(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    check_metadata(v)?;
    let img = image(&st, &ctx, &id)?;
    let mut props = ImageStore::properties(&img);
    if props.remove(&key).is_none() {
        return Err(Fault::not_found("Invalid metadata key"));
    }
    check_owner(&ctx, &img)?;
    save_props(&st, &id, &props)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
