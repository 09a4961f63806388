//! Resource providers, and their traits, aggregates, usages and
//! allocations.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use nova_scheduler::placement::{
    PlacementError, ResourceProvider, is_standard_trait, valid_resource_class,
};
use serde_json::{Value, json};

use super::util::{self, Query};
use super::{
    ApiError, ApiResult, Mv, Prefix, St, Who, admin_or_service, empty, fresh, fresh_at,
    newest_or_now,
};
use crate::Stamped;
use crate::service::Custom;

/// A provider name: 1 to 200 characters.
fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(util::invalid_at("'' should be non-empty", "name"));
    }
    if name.chars().count() > 200 {
        return Err(util::invalid_at(format!("'{name}' is too long"), "name"));
    }
    Ok(())
}

pub(crate) fn view(rp: &ResourceProvider, v: Mv, prefix: &str) -> Value {
    let base = format!("{prefix}/resource_providers/{}", rp.uuid);
    let mut links = vec![json!({"rel": "self", "href": base})];
    let mut rels = vec!["inventories", "usages"];
    if v.at(1) {
        rels.push("aggregates");
    }
    if v.at(6) {
        rels.push("traits");
    }
    if v.at(11) {
        rels.push("allocations");
    }
    for r in rels {
        links.push(json!({"rel": r, "href": format!("{base}/{r}")}));
    }
    let mut out = json!({
        "uuid": rp.uuid, "name": rp.name, "generation": rp.generation, "links": links,
    });
    if v.at(14) {
        out["parent_provider_uuid"] = json!(rp.parent_provider_uuid);
        out["root_provider_uuid"] = json!(rp.root_provider_uuid);
    }
    out
}

/// Provider `uuid` or Placement's 404.
pub(crate) async fn provider(st: &St, uuid: &str) -> Result<ResourceProvider, ApiError> {
    match st.placement.get_provider_async(uuid).await {
        Ok(rp) => Ok(rp),
        Err(PlacementError::NotFound(_)) => Err(ApiError::not_found(format!(
            "No resource provider with uuid {uuid} found"
        ))
        .code("placement.resource_provider.not_found")),
        Err(e) => Err(e.into()),
    }
}

/// Generation conflict as Placement words it.
pub(crate) fn gen_conflict(e: PlacementError, uuid: &str) -> ApiError {
    match e {
        PlacementError::ConcurrentUpdate(_) => ApiError::conflict(format!(
            "resource provider generation conflict: resource provider {uuid} has changed"
        ))
        .code("placement.concurrent_update"),
        other => other.into(),
    }
}

/// A generation conflict on a provider's traits or aggregates.
fn changed(e: PlacementError, uuid: &str) -> ApiError {
    match e {
        PlacementError::ConcurrentUpdate(_) => ApiError::conflict(
            "Resource provider's generation already changed. Please update the generation and try again.",
        )
        .code("placement.concurrent_update"),
        other => gen_conflict(other, uuid),
    }
}

/// Unknown custom traits among `names`, as Placement's 400.
pub(crate) async fn check_traits<'a>(
    st: &St,
    names: impl IntoIterator<Item = &'a String>,
) -> Result<(), ApiError> {
    let asked: Vec<&String> = names
        .into_iter()
        .filter(|t| !is_standard_trait(t))
        .collect();
    if asked.is_empty() {
        return Ok(());
    }
    let custom = st.placement.custom_names_async(Custom::Traits).await?;
    let missing: Vec<&str> = asked
        .into_iter()
        .filter(|t| !custom.contains(*t))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad(format!(
            "No such trait(s): {}.",
            missing.join(", ")
        )))
    }
}

/// Whether `rc` names a resource class Placement knows.
pub(crate) async fn class_known(st: &St, rc: &str) -> Result<bool, ApiError> {
    if !valid_resource_class(rc) {
        return Ok(false);
    }
    if !rc.starts_with("CUSTOM_") {
        return Ok(true);
    }
    Ok(st
        .placement
        .custom_names_async(Custom::ResourceClasses)
        .await?
        .contains(rc))
}

pub(crate) async fn list(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Extension(prefix): Extension<Prefix>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    admin_or_service(&st.policy, &who, "placement:resource_providers:list")?;
    let q = Query::parse(raw.as_deref());
    q.only(|k| {
        matches!(k, "name" | "uuid")
            || (k == "member_of" && v.at(3))
            || (k == "resources" && v.at(4))
            || (k == "in_tree" && v.at(14))
            || (k == "required" && v.at(18))
    })?;
    if let Some(u) = q.get("uuid")
        && !util::is_uuid(u)
    {
        return Err(ApiError::bad(format!(
            "Invalid query string parameters: '{u}' is not a 'uuid'"
        )));
    }
    let (member_of, forbidden_aggs) = util::parse_member_of(&q.all("member_of"), v)?;
    let mut required_vals = q.all("required");
    if !v.at(39) && required_vals.len() > 1 {
        // Before 1.39 the last `required` wins.
        required_vals.drain(..required_vals.len() - 1);
    }
    let (required, forbidden) = util::parse_required(&required_vals, v)?;
    if !required.is_empty() || !forbidden.is_empty() {
        let all: Vec<String> = required
            .iter()
            .flatten()
            .chain(forbidden.iter())
            .cloned()
            .collect();
        check_traits(&st, &all).await.map_err(|e| {
            ApiError::bad(format!(
                "Invalid trait(s) in \"required\" parameter: {}",
                e.detail
            ))
        })?;
    }
    let resources = match q.get("resources") {
        Some(r) => {
            let r = util::parse_resources(r)?;
            for (rc, _) in &r {
                if !class_known(&st, rc).await? {
                    return Err(ApiError::bad(format!(
                        "Invalid resource class in resources parameter: No such resource class {rc}."
                    )));
                }
            }
            r
        }
        None => Vec::new(),
    };
    let uuid = q.get("uuid").and_then(util::norm_uuid);
    let mut rps = st
        .placement
        .list_providers_async(q.get("name"), uuid.as_deref())
        .await?;
    if let Some(t) = q.get("in_tree") {
        let root = match st.placement.get_provider_async(t).await {
            Ok(rp) => Some(rp.root_provider_uuid),
            Err(PlacementError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        rps.retain(|rp| Some(&rp.root_provider_uuid) == root.as_ref());
    }
    let mut out = Vec::new();
    let mut shown: Vec<String> = Vec::new();
    for rp in rps {
        if !member_of.is_empty() || !forbidden_aggs.is_empty() {
            let (_, aggs) = st.placement.aggregates_async(&rp.uuid).await?;
            if !member_of
                .iter()
                .all(|set| set.iter().any(|a| aggs.contains(a)))
                || forbidden_aggs.iter().any(|a| aggs.contains(a))
            {
                continue;
            }
        }
        if !required.is_empty() || !forbidden.is_empty() {
            let (_, traits) = st.placement.traits_async(&rp.uuid).await?;
            if !required
                .iter()
                .all(|set| set.iter().any(|t| traits.contains(t)))
                || forbidden.iter().any(|t| traits.contains(t))
            {
                continue;
            }
        }
        if !resources.is_empty() {
            let (_, inv) = st.placement.inventories_async(&rp.uuid).await?;
            let used = st.placement.usages_async(&rp.uuid).await?;
            let fits = resources.iter().all(|(rc, n)| {
                inv.get(rc).is_some_and(|i| {
                    let u = used.get(rc).copied().unwrap_or(0);
                    u + n <= i.capacity()
                        && *n <= i.max_unit
                        && *n >= i.min_unit
                        && n % i.step_size.max(1) == 0
                })
            });
            if !fits {
                continue;
            }
        }
        out.push(view(&rp, v, &prefix.0));
        shown.push(rp.uuid);
    }
    let at = if v.at(15) {
        let uuids: Vec<&str> = shown.iter().map(String::as_str).collect();
        Some(newest_or_now(&st, Stamped::Providers(&uuids)).await?)
    } else {
        None
    };
    Ok(fresh_at(
        Json(json!({"resource_providers": out})).into_response(),
        v,
        at,
    ))
}

pub(crate) async fn create(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Extension(prefix): Extension<Prefix>,
    body: Bytes,
) -> ApiResult {
    admin_or_service(&st.policy, &who, "placement:resource_providers:create")?;
    let m = util::body_object(&body)?;
    let allowed: &[&str] = if v.at(14) {
        &["name", "uuid", "parent_provider_uuid"]
    } else {
        &["name", "uuid"]
    };
    util::keys(&m, allowed, &["name"])?;
    let name = util::string(&m, "name")?.unwrap_or_default();
    check_name(name)?;
    let uuid = match util::string(&m, "uuid")? {
        Some(u) => {
            util::norm_uuid(u).ok_or_else(|| util::invalid(format!("'{u}' is not a 'uuid'")))?
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let parent = match m.get("parent_provider_uuid") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(
            util::norm_uuid(p).ok_or_else(|| util::invalid(format!("'{p}' is not a 'uuid'")))?,
        ),
        Some(other) => return Err(util::invalid(format!("{other} is not of type 'string'"))),
    };
    if parent.as_deref() == Some(uuid.as_str()) {
        return Err(ApiError::bad(format!(
            "Unable to create resource provider \"{name}\", {uuid}: parent provider UUID cannot be same as UUID. Please choose a different parent provider UUID."
        )));
    }
    if let Some(p) = &parent
        && st.placement.get_provider_async(p).await.is_err()
    {
        return Err(ApiError::bad(format!(
            "Unable to create resource provider \"{name}\", {uuid}: parent provider UUID does not exist."
        )));
    }
    let rp = match st
        .placement
        .create_provider_async(&uuid, name, parent.as_deref())
        .await
    {
        Ok(rp) => rp,
        Err(PlacementError::Duplicate(_)) => {
            let by_uuid = st.placement.get_provider_async(&uuid).await.is_ok();
            let what = if by_uuid {
                format!("uuid: {uuid}")
            } else {
                format!("name: {name}")
            };
            return Err(ApiError::conflict(format!(
                "Conflicting resource provider {what} already exists."
            ))
            .code("placement.duplicate_name"));
        }
        Err(PlacementError::BadRequest(e)) => {
            return Err(ApiError::bad(format!(
                "Unable to create resource provider \"{name}\", {uuid}: {e}"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let location = format!("{}/resource_providers/{}", prefix.0, rp.uuid);
    let mut r = if v.at(20) {
        fresh(Json(view(&rp, v, &prefix.0)).into_response(), v)
    } else {
        empty(StatusCode::CREATED)
    };
    if let Ok(l) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, l);
    }
    Ok(r)
}

pub(crate) async fn show(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Extension(prefix): Extension<Prefix>,
    Path(uuid): Path<String>,
) -> ApiResult {
    admin_or_service(&st.policy, &who, "placement:resource_providers:show")?;
    let rp = provider(&st, &uuid).await?;
    let at = newest_or_now(&st, Stamped::Providers(&[&uuid])).await?;
    Ok(fresh_at(
        Json(view(&rp, v, &prefix.0)).into_response(),
        v,
        Some(at),
    ))
}

pub(crate) async fn update(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Extension(prefix): Extension<Prefix>,
    Path(uuid): Path<String>,
    body: Bytes,
) -> ApiResult {
    admin_or_service(&st.policy, &who, "placement:resource_providers:update")?;
    let cur = provider(&st, &uuid).await?;
    // Placement answers with the `updated_at` it loaded before saving
    // (none for a row never updated).
    let loaded = match st
        .placement
        .times_async(Stamped::Providers(&[&uuid]))
        .await?
    {
        Some(rows) => rows.first().and_then(|t| t.updated_at),
        None => Some(chrono::Utc::now()),
    };
    let m = util::body_object(&body)?;
    let allowed: &[&str] = if v.at(14) {
        &["name", "parent_provider_uuid"]
    } else {
        &["name"]
    };
    util::keys(&m, allowed, &["name"])?;
    let name = util::string(&m, "name")?.unwrap_or_default();
    check_name(name)?;
    let parent = match m.get("parent_provider_uuid") {
        None => cur.parent_provider_uuid.clone(),
        Some(Value::Null) => None,
        Some(Value::String(p)) => Some(
            util::norm_uuid(p).ok_or_else(|| util::invalid(format!("'{p}' is not a 'uuid'")))?,
        ),
        Some(other) => return Err(util::invalid(format!("{other} is not of type 'string'"))),
    };
    let rp = match st
        .placement
        .update_provider_async(&uuid, name, parent.as_deref(), v.at(37))
        .await
    {
        Ok(rp) => rp,
        Err(PlacementError::Duplicate(_)) => {
            return Err(ApiError::conflict(format!(
                "Conflicting resource provider {name} already exists."
            ))
            .code("placement.duplicate_name"));
        }
        Err(PlacementError::BadRequest(e)) => {
            return Err(ApiError::bad(format!(
                "Unable to save resource provider {uuid}: {e}"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(fresh_at(
        Json(view(&rp, v, &prefix.0)).into_response(),
        v,
        loaded,
    ))
}

pub(crate) async fn delete(st: St, Extension(who): Who, Path(uuid): Path<String>) -> ApiResult {
    admin_or_service(&st.policy, &who, "placement:resource_providers:delete")?;
    match st.placement.delete_provider_async(&uuid).await {
        Ok(()) => Ok(empty(StatusCode::NO_CONTENT)),
        Err(PlacementError::NotFound(_)) => Err(ApiError::not_found(format!(
            "No resource provider with uuid {uuid} found for delete"
        ))),
        Err(PlacementError::ProviderInUse(_)) => Err(ApiError::conflict(format!(
            "Unable to delete resource provider {uuid}: Resource provider has allocations."
        ))
        .code("placement.resource_provider.inuse")),
        Err(PlacementError::CannotDeleteParent(_)) => Err(ApiError::conflict(format!(
            "Unable to delete parent resource provider {uuid}: It has child resource providers."
        ))
        .code("placement.resource_provider.cannot_delete_parent")),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn usages(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Path(uuid): Path<String>,
) -> ApiResult {
    admin_or_service(&st.policy, &who, "placement:resource_providers:usages")?;
    let rp = provider(&st, &uuid).await?;
    let (_, inv) = st.placement.inventories_async(&uuid).await?;
    let used = st.placement.usages_async(&uuid).await?;
    let mut usages: BTreeMap<String, i64> = inv.keys().map(|k| (k.clone(), 0)).collect();
    for (rc, n) in used {
        *usages.entry(rc).or_default() += n;
    }
    let body = json!({"resource_provider_generation": rp.generation, "usages": usages});
    Ok(fresh(Json(body).into_response(), v))
}

pub(crate) async fn allocations(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Path(uuid): Path<String>,
) -> ApiResult {
    admin_or_service(
        &st.policy,
        &who,
        "placement:resource_providers:allocations:list",
    )?;
    let rp = provider(&st, &uuid).await?;
    let mut out = serde_json::Map::new();
    for (c, a) in st.placement.consumers_async(None, None).await? {
        if let Some(res) = a.allocations.get(uuid.as_str()) {
            out.insert(c, json!({"resources": res}));
        }
    }
    let body = json!({"resource_provider_generation": rp.generation, "allocations": out});
    let at = newest_or_now(&st, Stamped::ProviderAllocations(&uuid)).await?;
    Ok(fresh_at(Json(body).into_response(), v, Some(at)))
}

pub(crate) async fn aggregates(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Path(uuid): Path<String>,
) -> ApiResult {
    if !v.at(1) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    admin_or_service(
        &st.policy,
        &who,
        "placement:resource_providers:aggregates:list",
    )?;
    provider(&st, &uuid).await?;
    let (generation, aggs) = st.placement.aggregates_async(&uuid).await?;
    Ok(fresh(aggregates_body(generation, &aggs, v), v))
}

fn aggregates_body<'a>(
    generation: u64,
    aggs: impl IntoIterator<Item = &'a String>,
    v: Mv,
) -> Response {
    let aggs: Vec<&String> = aggs.into_iter().collect();
    let mut body = json!({"aggregates": aggs});
    if v.at(19) {
        body["resource_provider_generation"] = json!(generation);
    }
    Json(body).into_response()
}

pub(crate) async fn set_aggregates(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Path(uuid): Path<String>,
    body: Bytes,
) -> ApiResult {
    if !v.at(1) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    admin_or_service(
        &st.policy,
        &who,
        "placement:resource_providers:aggregates:update",
    )?;
    let rp = provider(&st, &uuid).await?;
    let value = util::body_value(&body)?;
    let (list, generation) = if v.at(19) {
        let Value::Object(m) = value else {
            return Err(util::invalid(format!("{value} is not of type 'object'")));
        };
        util::keys(
            &m,
            &["aggregates", "resource_provider_generation"],
            &["aggregates", "resource_provider_generation"],
        )?;
        let g = util::int(&m, "resource_provider_generation", 0, i64::MAX)?.unwrap_or(0) as u64;
        (m.get("aggregates").cloned().unwrap_or(Value::Null), Some(g))
    } else {
        (value, None)
    };
    let Value::Array(items) = list else {
        return Err(util::invalid(format!(
            "{} is not of type 'array'",
            util::py(&list)
        )));
    };
    let mut aggs = BTreeSet::new();
    // Placement answers with the list as given (its order, its spelling).
    let mut given = Vec::new();
    for i in &items {
        let u = i
            .as_str()
            .and_then(util::norm_uuid)
            .ok_or_else(|| util::invalid(format!("{i} is not a 'uuid'")))?;
        given.push(i.as_str().unwrap_or_default().to_owned());
        if !aggs.insert(u) {
            return Err(util::invalid(format!("{items:?} has non-unique elements")));
        }
    }
    let g = generation.unwrap_or(rp.generation);
    let new_gen = st
        .placement
        .set_aggregates_async(&uuid, g, &aggs)
        .await
        .map_err(|e| changed(e, &uuid))?;
    Ok(aggregates_body(new_gen, &given, v))
}

pub(crate) async fn traits(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Path(uuid): Path<String>,
) -> ApiResult {
    if !v.at(6) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    admin_or_service(&st.policy, &who, "placement:resource_providers:traits:list")?;
    provider(&st, &uuid).await?;
    let (generation, traits) = st.placement.traits_async(&uuid).await?;
    let at = traits_modified(&st, &traits).await?;
    let body = json!({"resource_provider_generation": generation, "traits": traits});
    Ok(fresh_at(Json(body).into_response(), v, Some(at)))
}

pub(crate) async fn set_traits(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Path(uuid): Path<String>,
    body: Bytes,
) -> ApiResult {
    if !v.at(6) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    admin_or_service(
        &st.policy,
        &who,
        "placement:resource_providers:traits:update",
    )?;
    provider(&st, &uuid).await?;
    let m = util::body_object(&body)?;
    util::keys(
        &m,
        &["traits", "resource_provider_generation"],
        &["traits", "resource_provider_generation"],
    )?;
    let g = util::int(&m, "resource_provider_generation", 0, i64::MAX)?.unwrap_or(0) as u64;
    let items = match m.get("traits") {
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(util::invalid_at(
                format!("{} is not of type 'array'", util::py(other)),
                "traits",
            ));
        }
        None => return Err(util::invalid("'traits' is a required property")),
    };
    let mut traits = BTreeSet::new();
    for i in items {
        let t = i
            .as_str()
            .filter(|s| !s.is_empty() && s.len() <= 255)
            .ok_or_else(|| util::invalid(format!("{i} is not a valid trait name")))?;
        if !traits.insert(t.to_owned()) {
            return Err(util::invalid(format!("{items:?} has non-unique elements")));
        }
    }
    check_traits(&st, &traits).await?;
    let new_gen = st
        .placement
        .set_traits_async(&uuid, g, &traits)
        .await
        .map_err(|e| changed(e, &uuid))?;
    let at = traits_modified(&st, &traits).await?;
    let body = json!({"resource_provider_generation": new_gen, "traits": traits});
    Ok(fresh_at(Json(body).into_response(), v, Some(at)))
}

/// A provider's traits answer carries the newest time of the traits'
/// own rows (Placement's `Trait` objects), or now.
async fn traits_modified(
    st: &St,
    traits: &BTreeSet<String>,
) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    let names: Vec<&str> = traits.iter().map(String::as_str).collect();
    newest_or_now(st, Stamped::Names(Custom::Traits, &names)).await
}

pub(crate) async fn delete_traits(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Path(uuid): Path<String>,
) -> ApiResult {
    if !v.at(6) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    admin_or_service(
        &st.policy,
        &who,
        "placement:resource_providers:traits:delete",
    )?;
    let rp = provider(&st, &uuid).await?;
    st.placement
        .set_traits_async(&uuid, rp.generation, &BTreeSet::new())
        .await
        .map_err(|e| gen_conflict(e, &uuid))?;
    Ok(empty(StatusCode::NO_CONTENT))
}
