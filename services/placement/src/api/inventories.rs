//! A provider's inventories: all of them, or one class.
//!
//! Every write is one generation-checked replacement of the provider's
//! inventories: the generation the caller sent, or (for the writes that
//! send none: `POST`, `DELETE`) the one just read, retried on a race.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use nova_scheduler::placement::{InventoryRecord, PlacementError};
use serde_json::{Map, Value, json};

use super::providers::{class_known, gen_conflict, provider};
use super::util;
use super::{
    ApiError, ApiResult, Mv, Prefix, St, Who, admin_or_service, empty, fresh, fresh_at, newest,
    newest_or_now,
};
use crate::Stamped;

const MAX_INT: i64 = 2_147_483_647;
const MAX_FLOAT: f64 = 3.40282e38;

fn record_json(i: &InventoryRecord) -> Value {
    json!({
        "total": i.total, "reserved": i.reserved, "min_unit": i.min_unit,
        "max_unit": i.max_unit, "step_size": i.step_size,
        "allocation_ratio": i.allocation_ratio,
    })
}

fn all_json(generation: u64, inv: &BTreeMap<String, InventoryRecord>) -> Value {
    let m: Map<String, Value> = inv
        .iter()
        .map(|(rc, i)| (rc.clone(), record_json(i)))
        .collect();
    json!({"resource_provider_generation": generation, "inventories": m})
}

fn one_json(generation: u64, i: &InventoryRecord) -> Value {
    let mut v = record_json(i);
    v["resource_provider_generation"] = json!(generation);
    v
}

/// One inventory of a `{class: inventory}` map (PUT all, reshaper).
pub(crate) fn parse_item(item: &Value) -> Result<InventoryRecord, ApiError> {
    let Value::Object(im) = item else {
        return Err(util::invalid(format!(
            "{} is not of type 'object'",
            util::py(item)
        )));
    };
    util::keys(
        im,
        &[
            "total",
            "reserved",
            "min_unit",
            "max_unit",
            "step_size",
            "allocation_ratio",
        ],
        &["total"],
    )?;
    record(im)
}

/// An inventory record from a body (the fields of Placement's schema).
fn record(m: &Map<String, Value>) -> Result<InventoryRecord, ApiError> {
    let total = util::int(m, "total", 1, MAX_INT)?
        .ok_or_else(|| util::invalid("'total' is a required property"))?;
    let mut r = InventoryRecord::new(total);
    r.max_unit = MAX_INT;
    if let Some(x) = util::int(m, "reserved", 0, MAX_INT)? {
        r.reserved = x;
    }
    if let Some(x) = util::int(m, "min_unit", 1, MAX_INT)? {
        r.min_unit = x;
    }
    if let Some(x) = util::int(m, "max_unit", 1, MAX_INT)? {
        r.max_unit = x;
    }
    if let Some(x) = util::int(m, "step_size", 1, MAX_INT)? {
        r.step_size = x;
    }
    match m.get("allocation_ratio") {
        None => {}
        Some(Value::Number(n)) => {
            let f = n.as_f64().unwrap_or(f64::MAX);
            if f > MAX_FLOAT {
                return Err(util::invalid(format!(
                    "{f} is greater than the maximum of {MAX_FLOAT}"
                )));
            }
            r.allocation_ratio = f;
        }
        Some(other) => return Err(util::invalid(format!("{other} is not of type 'number'"))),
    }
    Ok(r)
}

/// Placement's capacity rule: before 1.26 `reserved` must stay below
/// `total`; from 1.26 it may equal it.
fn check_capacity(rc: &str, uuid: &str, r: &InventoryRecord, v: Mv) -> Result<(), ApiError> {
    let bad = if v.at(26) {
        r.reserved > r.total
    } else {
        r.reserved >= r.total
    };
    if bad {
        let rel = if v.at(26) {
            "greater than"
        } else {
            "greater than or equal to"
        };
        return Err(ApiError::bad(format!(
            "Unable to update inventory for resource provider {uuid}: Invalid inventory for '{rc}' on resource provider '{uuid}'. The reserved value is {rel} total."
        )));
    }
    if r.allocation_ratio <= 0.0 {
        return Err(ApiError::bad(format!(
            "Unable to update inventory for resource provider {uuid}: allocation_ratio of {rc} must be positive"
        )));
    }
    if r.min_unit > r.max_unit {
        return Err(ApiError::bad(format!(
            "Unable to update inventory for resource provider {uuid}: min_unit of {rc} is greater than max_unit"
        )));
    }
    Ok(())
}

/// Placement's refusal to drop inventory that allocations use: the
/// classes (in resource class order) removed by `new` that have usage.
async fn check_in_use(
    st: &St,
    uuid: &str,
    new: &BTreeMap<String, InventoryRecord>,
) -> Result<(), ApiError> {
    let used = st.placement.usages_async(uuid).await?;
    let mut gone: Vec<&String> = used
        .iter()
        .filter(|(rc, n)| **n > 0 && !new.contains_key(*rc))
        .map(|(rc, _)| rc)
        .collect();
    if gone.is_empty() {
        return Ok(());
    }
    let order = |rc: &str| {
        nova_scheduler::placement::STANDARD_RESOURCE_CLASSES
            .iter()
            .position(|s| *s == rc)
            .unwrap_or(usize::MAX)
    };
    gone.sort_by(|a, b| order(a).cmp(&order(b)).then(a.cmp(b)));
    let names: Vec<&str> = gone.iter().map(|s| s.as_str()).collect();
    Err(ApiError::conflict(format!(
        "Inventory for '{}' on resource provider '{uuid}' in use.",
        names.join(", ")
    ))
    .code("placement.inventory.inuse"))
}

async fn check_class(st: &St, rc: &str, uuid: &str) -> Result<(), ApiError> {
    if class_known(st, rc).await? {
        Ok(())
    } else {
        Err(ApiError::bad(format!(
            "Unable to update inventory for resource provider {uuid}: No such resource class {rc}."
        )))
    }
}

/// The store's refusals, as Placement words them.
fn write_error(e: PlacementError, uuid: &str) -> ApiError {
    match e {
        PlacementError::InventoryInUse(m) => {
            ApiError::conflict(format!("update conflict: {m}")).code("placement.inventory.inuse")
        }
        PlacementError::BadRequest(m) => ApiError::bad(format!(
            "Unable to update inventory for resource provider {uuid}: {m}"
        )),
        other => gen_conflict(other, uuid),
    }
}

pub(crate) async fn list(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Path(uuid): Path<String>,
) -> ApiResult {
    admin_or_service(
        &st.policy,
        &who,
        "placement:resource_providers:inventories:list",
    )?;
    provider(&st, &uuid).await?;
    let (g, inv) = st.placement.inventories_async(&uuid).await?;
    // No inventories, no `Last-Modified` (Placement's `None`).
    let at = newest(
        &st,
        Stamped::Inventories {
            provider: &uuid,
            class: None,
        },
    )
    .await?;
    Ok(fresh_at(Json(all_json(g, &inv)).into_response(), v, at))
}

pub(crate) async fn show(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Path((uuid, rc)): Path<(String, String)>,
) -> ApiResult {
    admin_or_service(
        &st.policy,
        &who,
        "placement:resource_providers:inventories:show",
    )?;
    provider(&st, &uuid).await?;
    let (g, inv) = st.placement.inventories_async(&uuid).await?;
    let i = inv
        .get(&rc)
        .ok_or_else(|| ApiError::not_found(format!("No inventory of class {rc} for {uuid}")))?;
    let at = newest_or_now(
        &st,
        Stamped::Inventories {
            provider: &uuid,
            class: Some(&rc),
        },
    )
    .await?;
    Ok(fresh_at(Json(one_json(g, i)).into_response(), v, Some(at)))
}

pub(crate) async fn set_all(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Path(uuid): Path<String>,
    body: Bytes,
) -> ApiResult {
    admin_or_service(
        &st.policy,
        &who,
        "placement:resource_providers:inventories:update",
    )?;
    provider(&st, &uuid).await?;
    let m = util::body_object(&body)?;
    util::keys(
        &m,
        &["inventories", "resource_provider_generation"],
        &["inventories", "resource_provider_generation"],
    )?;
    let g = util::int(&m, "resource_provider_generation", 0, i64::MAX)?.unwrap_or(0) as u64;
    let Some(Value::Object(items)) = m.get("inventories") else {
        return Err(util::invalid("'inventories' is not of type 'object'"));
    };
    let mut inv = BTreeMap::new();
    for (rc, item) in items {
        let Value::Object(im) = item else {
            return Err(util::invalid(format!("{item} is not of type 'object'")));
        };
        util::keys(
            im,
            &[
                "total",
                "reserved",
                "min_unit",
                "max_unit",
                "step_size",
                "allocation_ratio",
            ],
            &["total"],
        )?;
        let r = record(im)?;
        if !class_known(&st, rc).await? {
            return Err(ApiError::bad(format!(
                "Unknown resource class in inventory for resource provider {uuid}: No such resource class {rc}."
            )));
        }
        check_capacity(rc, &uuid, &r, v)?;
        inv.insert(rc.clone(), r);
    }
    let (cur_gen, _) = st.placement.inventories_async(&uuid).await?;
    if cur_gen != g {
        return Err(ApiError::conflict(format!(
            "resource provider generation conflict: resource provider {uuid} has changed"
        ))
        .code("placement.concurrent_update"));
    }
    check_in_use(&st, &uuid, &inv).await.map_err(|e| ApiError {
        detail: format!("update conflict: {}", e.detail),
        ..e
    })?;
    let new_gen = st
        .placement
        .set_inventories_async(&uuid, g, &inv)
        .await
        .map_err(|e| write_error(e, &uuid))?;
    // The inventories just built carry no times (now); none, no header.
    let at = (!inv.is_empty()).then(chrono::Utc::now);
    Ok(fresh_at(
        Json(all_json(new_gen, &inv)).into_response(),
        v,
        at,
    ))
}

pub(crate) async fn delete_all(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Path(uuid): Path<String>,
) -> ApiResult {
    if !v.at(5) {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "The method specified is not allowed for this resource.",
        ));
    }
    admin_or_service(
        &st.policy,
        &who,
        "placement:resource_providers:inventories:delete",
    )?;
    let rp = provider(&st, &uuid).await?;
    check_in_use(&st, &uuid, &BTreeMap::new()).await?;
    st.placement
        .set_inventories_async(&uuid, rp.generation, &BTreeMap::new())
        .await
        .map_err(|e| match e {
            PlacementError::InventoryInUse(m) => ApiError::conflict(format!(
                "Inventory for resource provider {uuid} in use: {m}"
            ))
            .code("placement.inventory.inuse"),
            other => gen_conflict(other, &uuid),
        })?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub(crate) async fn create(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Extension(prefix): Extension<Prefix>,
    Path(uuid): Path<String>,
    body: Bytes,
) -> ApiResult {
    admin_or_service(
        &st.policy,
        &who,
        "placement:resource_providers:inventories:create",
    )?;
    provider(&st, &uuid).await?;
    let m = util::body_object(&body)?;
    util::keys(
        &m,
        &[
            "resource_class",
            "total",
            "reserved",
            "min_unit",
            "max_unit",
            "step_size",
            "allocation_ratio",
        ],
        &["resource_class", "total"],
    )?;
    let rc = util::string(&m, "resource_class")?
        .unwrap_or_default()
        .to_owned();
    if !rc
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        || rc.is_empty()
    {
        return Err(util::invalid(format!(
            "'{rc}' does not match '^[A-Z0-9_]+$'"
        )));
    }
    let r = record(&m)?;
    check_class(&st, &rc, &uuid)
        .await
        .map_err(|e| ApiError::bad(e.detail.replace("update inventory", "create inventory")))?;
    check_capacity(&rc, &uuid, &r, v)
        .map_err(|e| ApiError::bad(e.detail.replace("update inventory", "create inventory")))?;
    let (g, mut inv) = st.placement.inventories_async(&uuid).await?;
    if inv.contains_key(&rc) {
        return Err(ApiError::conflict(format!(
            "Update conflict: Inventory for '{rc}' on resource provider '{uuid}' already exists."
        ))
        .code("placement.concurrent_update"));
    }
    inv.insert(rc.clone(), r);
    let new_gen = st
        .placement
        .set_inventories_async(&uuid, g, &inv)
        .await
        .map_err(|e| write_error(e, &uuid))?;
    let mut resp: Response = (StatusCode::CREATED, Json(one_json(new_gen, &r))).into_response();
    if let Ok(l) = HeaderValue::from_str(&format!(
        "{}/resource_providers/{uuid}/inventories/{rc}",
        prefix.0
    )) {
        resp.headers_mut().insert(header::LOCATION, l);
    }
    // Placement marks the created inventory as it marks a read (1.15).
    Ok(fresh(resp, v))
}

pub(crate) async fn update(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Path((uuid, rc)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    admin_or_service(
        &st.policy,
        &who,
        "placement:resource_providers:inventories:update",
    )?;
    provider(&st, &uuid).await?;
    let m = util::body_object(&body)?;
    util::keys(
        &m,
        &[
            "resource_provider_generation",
            "total",
            "reserved",
            "min_unit",
            "max_unit",
            "step_size",
            "allocation_ratio",
        ],
        &["total", "resource_provider_generation"],
    )?;
    let g = util::int(&m, "resource_provider_generation", 0, i64::MAX)?.unwrap_or(0) as u64;
    let r = record(&m)?;
    check_class(&st, &rc, &uuid).await?;
    check_capacity(&rc, &uuid, &r, v)?;
    let (cur_gen, mut inv) = st.placement.inventories_async(&uuid).await?;
    if cur_gen != g {
        return Err(ApiError::conflict(format!(
            "resource provider generation conflict: resource provider {uuid} has changed"
        ))
        .code("placement.concurrent_update"));
    }
    if !inv.contains_key(&rc) {
        return Err(ApiError::bad(format!(
            "No inventory record with resource class for resource provider {uuid}: {rc}"
        )));
    }
    inv.insert(rc.clone(), r);
    let new_gen = st
        .placement
        .set_inventories_async(&uuid, g, &inv)
        .await
        .map_err(|e| write_error(e, &uuid))?;
    Ok(Json(one_json(new_gen, &r)).into_response())
}

pub(crate) async fn delete(
    st: St,
    Extension(who): Who,
    Path((uuid, rc)): Path<(String, String)>,
) -> ApiResult {
    admin_or_service(
        &st.policy,
        &who,
        "placement:resource_providers:inventories:delete",
    )?;
    provider(&st, &uuid).await?;
    for _ in 0..crate::ALLOCATION_CONFLICT_RETRIES {
        let (g, mut inv) = st.placement.inventories_async(&uuid).await?;
        if inv.remove(&rc).is_none() {
            return Err(ApiError::not_found(format!(
                "No inventory of class {rc} found for delete"
            )));
        }
        check_in_use(&st, &uuid, &inv).await.map_err(|e| {
            ApiError::conflict(format!(
                "Unable to delete inventory of class {rc}: {}",
                e.detail
            ))
            .code("placement.concurrent_update")
        })?;
        match st.placement.set_inventories_async(&uuid, g, &inv).await {
            Ok(_) => return Ok(empty(StatusCode::NO_CONTENT)),
            Err(PlacementError::ConcurrentUpdate(_)) => continue,
            Err(PlacementError::InventoryInUse(m)) => {
                return Err(ApiError::conflict(format!(
                    "Unable to delete inventory of class {rc}: {m}"
                ))
                .code("placement.inventory.inuse"));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(format!(
        "Unable to delete inventory of class {rc}: resource provider {uuid} keeps changing"
    ))
    .code("placement.concurrent_update"))
}
