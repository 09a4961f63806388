//! Allocations: one consumer's (`/allocations/{consumer}`), several
//! consumers' at once (`POST /allocations`, 1.13), usages by project
//! and user (`GET /usages`, 1.9) and the reshaper (1.30).

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use nova_scheduler::placement::{
    Allocations, ConsumerAllocations, ConsumerWrite, InventoryRecord, InventoryWrite, Name,
    PlacementError,
};
use serde_json::{Map, Value, json};

use super::util::{self, Query};
use super::{
    ApiError, ApiResult, Mv, St, Target, Who, admin_or_service, empty, fresh, newest_or_now,
};
use crate::ConsumerGeneration;
use crate::service::{CONSUMER_CONFLICT, check_amount, consumer_conflict, missing_provider};

/// Placement's default `incomplete_consumer_project_id` and `_user_id`.
const INCOMPLETE: &str = "00000000-0000-0000-0000-000000000000";

/// One consumer's wanted state, from a body.
#[derive(Debug, Clone)]
struct Wanted {
    consumer: String,
    allocations: Allocations,
    project_id: String,
    user_id: String,
    /// `Some(None)`: the caller says the consumer is new; `None`: no
    /// generation given (before 1.28).
    generation: Option<Option<u64>>,
    /// `consumer_type` (1.38).
    consumer_type: Option<String>,
}

fn consumer_uuid(c: &str) -> Result<String, ApiError> {
    util::norm_uuid(c).ok_or_else(|| ApiError::bad(format!("Malformed consumer_uuid: {c}")))
}

/// `{"resources": {...}}` of one provider.
fn resources(v: &Value) -> Result<BTreeMap<Name, i64>, ApiError> {
    let Value::Object(m) = v else {
        return Err(util::invalid(format!("{v} is not of type 'object'")));
    };
    for k in m.keys() {
        if k != "resources" && k != "generation" {
            return Err(util::invalid(format!(
                "Additional properties are not allowed ('{k}' was unexpected)"
            )));
        }
    }
    let Some(Value::Object(r)) = m.get("resources") else {
        return Err(util::invalid("'resources' is a required property"));
    };
    if r.is_empty() {
        return Err(util::invalid("{} does not have enough properties"));
    }
    // The schema's `patternProperties` with no additional properties:
    // jsonschema names every key outside the pattern, sorted.
    let mut bad: Vec<&String> = r
        .keys()
        .filter(|rc| {
            rc.is_empty()
                || !rc
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
        .collect();
    if !bad.is_empty() {
        bad.sort();
        let verb = if bad.len() == 1 { "does" } else { "do" };
        let names: Vec<String> = bad.iter().map(|k| format!("'{k}'")).collect();
        return Err(util::invalid(format!(
            "{} {verb} not match any of the regexes: '^[A-Z0-9_]+$'",
            names.join(", ")
        )));
    }
    let mut out = BTreeMap::new();
    for (rc, n) in r {
        let amount = util::int(r, rc, 1, 2_147_483_647)?.unwrap_or(0);
        let _ = n;
        out.insert(Name::from(rc.as_str()), amount);
    }
    Ok(out)
}

/// A consumer's body (PUT, or one entry of POST).
fn wanted(
    consumer: String,
    m: &Map<String, Value>,
    v: Mv,
    in_post: bool,
) -> Result<Wanted, ApiError> {
    let mut allowed = vec!["allocations"];
    let mut required = vec!["allocations"];
    if v.at(8) {
        allowed.extend(["project_id", "user_id"]);
        required.extend(["project_id", "user_id"]);
    }
    if v.at(28) {
        allowed.push("consumer_generation");
        required.push("consumer_generation");
    }
    if v.at(34) && !in_post {
        allowed.push("mappings");
    }
    if v.at(34) && in_post {
        allowed.push("mappings");
    }
    if v.at(38) {
        allowed.push("consumer_type");
        required.push("consumer_type");
    }
    util::keys(m, &allowed, &required)?;
    let mut allocations = Allocations::new();
    match m.get("allocations") {
        Some(Value::Array(items)) if !v.at(12) => {
            if items.is_empty() {
                return Err(util::invalid("[] is too short"));
            }
            for it in items {
                let Value::Object(im) = it else {
                    return Err(util::invalid(format!("{it} is not of type 'object'")));
                };
                util::keys(
                    im,
                    &["resource_provider", "resources"],
                    &["resource_provider", "resources"],
                )?;
                let rp = im
                    .get("resource_provider")
                    .and_then(|r| r.get("uuid"))
                    .and_then(Value::as_str)
                    .and_then(util::norm_uuid)
                    .ok_or_else(|| util::invalid("'uuid' is a required property"))?;
                let res = resources(&json!({"resources": im.get("resources")}))?;
                allocations.insert(Name::from(rp.as_str()), res);
            }
        }
        Some(Value::Object(items)) if v.at(12) => {
            if items.is_empty() && !v.at(28) && !in_post {
                return Err(util::invalid("{} does not have enough properties"));
            }
            for (rp, item) in items {
                let rp = util::norm_uuid(rp).ok_or_else(|| {
                    util::invalid(format!("'{rp}' does not match any of the regexes"))
                })?;
                allocations.insert(Name::from(rp.as_str()), resources(item)?);
            }
        }
        Some(other) => {
            let ty = if v.at(12) { "object" } else { "array" };
            return Err(util::invalid(format!("{other} is not of type '{ty}'")));
        }
        None => return Err(util::invalid("'allocations' is a required property")),
    }
    let text = |k: &str| -> Result<String, ApiError> {
        Ok(util::text(m, k, 1, 255)?.unwrap_or_default().to_owned())
    };
    let generation = if v.at(28) {
        match m.get("consumer_generation") {
            Some(Value::Null) => Some(None),
            Some(_) => Some(Some(
                util::int(m, "consumer_generation", 0, i64::MAX)?.unwrap_or(0) as u64,
            )),
            None => None,
        }
    } else {
        None
    };
    // Before 1.8 a consumer may come without project and user: Placement
    // records its `incomplete_consumer_project_id` / `_user_id`.
    let or_incomplete = |s: String| {
        if s.is_empty() && !in_post {
            INCOMPLETE.to_owned()
        } else {
            s
        }
    };
    // mappings (1.34): {suffix: [provider uuid, ...]}, sent back from a
    // candidate; checked, not kept (as in Placement).
    if let Some(mp) = m.get("mappings") {
        let Value::Object(mp) = mp else {
            return Err(util::invalid_at(
                format!("{} is not of type 'object'", util::py(mp)),
                "mappings",
            ));
        };
        if mp.is_empty() {
            return Err(util::invalid_at("{} should be non-empty", "mappings"));
        }
        for (k, list) in mp {
            let Value::Array(items) = list else {
                return Err(util::invalid_at(
                    format!("{} is not of type 'array'", util::py(list)),
                    "mappings",
                ));
            };
            if k.len() > 64 {
                return Err(util::invalid_at(
                    format!("'{k}' does not match any of the regexes"),
                    "mappings",
                ));
            }
            if items.is_empty() {
                return Err(util::invalid_at("[] should be non-empty", "mappings"));
            }
            for i in items {
                if !i.as_str().is_some_and(util::is_uuid) {
                    return Err(util::invalid_at(
                        format!("{} is not a 'uuid'", util::py(i)),
                        "mappings",
                    ));
                }
            }
        }
    }
    let consumer_type = match util::text(m, "consumer_type", 1, 255)? {
        Some(t)
            if !t
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') =>
        {
            return Err(util::invalid_at(
                format!("'{t}' does not match '^[A-Z0-9_]+$'"),
                "consumer_type",
            ));
        }
        t => t.map(str::to_owned),
    };
    Ok(Wanted {
        consumer,
        allocations,
        project_id: or_incomplete(text("project_id")?),
        user_id: or_incomplete(text("user_id")?),
        generation,
        consumer_type,
    })
}

/// Checks `w` against what is there (providers, classes, the consumer's
/// generation) and gives the generation to write with.
async fn precheck(st: &St, w: &Wanted) -> Result<Option<u64>, ApiError> {
    let cur = st.placement.allocations_async(&w.consumer).await?;
    let generation = match w.generation {
        Some(given) => {
            if given != cur.consumer_generation {
                return Err(
                    ApiError::conflict(consumer_conflict(cur.consumer_generation, given))
                        .code("placement.concurrent_update"),
                );
            }
            given
        }
        None => cur.consumer_generation,
    };
    for (rp, res) in &w.allocations {
        let inv = match st.placement.inventories_async(rp).await {
            Ok((_, inv)) => inv,
            Err(PlacementError::NotFound(_)) => {
                return Err(ApiError::bad(missing_provider(rp)));
            }
            Err(e) => return Err(e.into()),
        };
        for (rc, n) in res {
            if !super::providers::class_known(st, rc).await? {
                return Err(ApiError::bad(format!(
                    "Unable to allocate inventory for consumer {}: No such resource class {rc}.",
                    w.consumer
                )));
            }
            check_amount(rp, rc, inv.get(&**rc), *n).map_err(write_error)?;
        }
    }
    Ok(generation)
}

fn write_error(e: PlacementError) -> ApiError {
    match e {
        // `ensure_consumer`'s 409, before any write.
        PlacementError::ConcurrentUpdate(m) if m.starts_with(CONSUMER_CONFLICT) => {
            ApiError::conflict(m).code("placement.concurrent_update")
        }
        PlacementError::ConcurrentUpdate(m) => ApiError::conflict(format!(
            "Inventory and/or allocations changed while attempting to allocate: {m}"
        ))
        .code("placement.concurrent_update"),
        PlacementError::CapacityExceeded(m) => {
            ApiError::conflict(if m.starts_with("Unable to allocate") {
                m
            } else {
                format!("Unable to allocate inventory: {m}")
            })
        }
        PlacementError::BadRequest(m) if m.starts_with("Unable to allocate inventory") => {
            ApiError::conflict(m)
        }
        other => other.into(),
    }
}

async fn write(st: &St, w: &Wanted, generation: Option<u64>) -> Result<(), ApiError> {
    st.placement
        .put_allocations_async(
            &w.consumer,
            &w.allocations,
            &w.project_id,
            &w.user_id,
            generation,
        )
        .await
        .map_err(write_error)?;
    typed(st, w).await
}

/// Records the consumer type a 1.38 request gave.
async fn typed(st: &St, w: &Wanted) -> Result<(), ApiError> {
    if let Some(t) = &w.consumer_type
        && !w.allocations.is_empty()
    {
        st.placement
            .set_consumer_type_async(&w.consumer, Some(t))
            .await?;
    }
    Ok(())
}

pub(crate) async fn show(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Path(consumer): Path<String>,
) -> ApiResult {
    admin_or_service(&st.policy, &who, "placement:allocations:list")?;
    let a = st.placement.allocations_async(&consumer).await?;
    let at = newest_or_now(&st, crate::Stamped::ConsumerAllocations(&consumer)).await?;
    Ok(super::fresh_at(
        Json(consumer_json(&st, &a, v).await?).into_response(),
        v,
        Some(at),
    ))
}

async fn consumer_json(st: &St, a: &ConsumerAllocations, v: Mv) -> Result<Value, ApiError> {
    let mut out = Map::new();
    for (rp, res) in &a.allocations {
        let generation = match st.placement.get_provider_async(rp).await {
            Ok(p) => json!(p.generation),
            Err(PlacementError::NotFound(_)) => Value::Null,
            Err(e) => return Err(e.into()),
        };
        out.insert(
            rp.to_string(),
            json!({"generation": generation, "resources": res}),
        );
    }
    let mut body = json!({"allocations": out});
    if v.at(12) && a.consumer_generation.is_some() {
        body["project_id"] = json!(a.project_id);
        body["user_id"] = json!(a.user_id);
    }
    if v.at(28) && a.consumer_generation.is_some() {
        body["consumer_generation"] = json!(a.consumer_generation);
    }
    if v.at(38) && a.consumer_generation.is_some() {
        body["consumer_type"] = json!(a.consumer_type.as_deref().unwrap_or("unknown"));
    }
    Ok(body)
}

pub(crate) async fn put(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    Path(consumer): Path<String>,
    body: Bytes,
) -> ApiResult {
    admin_or_service(&st.policy, &who, "placement:allocations:update")?;
    let consumer = consumer_uuid(&consumer)?;
    let m = util::body_object(&body)?;
    let w = wanted(consumer, &m, v, false)?;
    // An unknown class: the checks one by one, in Placement's order, give
    // the first error (the store knows no class names).
    for rc in w.allocations.values().flat_map(|res| res.keys()) {
        if !super::providers::class_known(&st, rc).await? {
            let generation = precheck(&st, &w).await?;
            write(&st, &w, generation).await?;
            return Ok(empty(StatusCode::NO_CONTENT));
        }
    }
    // Otherwise the store checks on the write's own read (one pass).
    let expected = match w.generation {
        Some(g) => ConsumerGeneration::Is(g),
        None => ConsumerGeneration::Any,
    };
    st.placement
        .put_allocations_checked_async(
            &w.consumer,
            &w.allocations,
            (&w.project_id, &w.user_id),
            w.consumer_type.as_deref(),
            expected,
        )
        .await
        .map_err(write_error)?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub(crate) async fn delete(st: St, Extension(who): Who, Path(consumer): Path<String>) -> ApiResult {
    admin_or_service(&st.policy, &who, "placement:allocations:delete")?;
    let cur = st.placement.allocations_async(&consumer).await?;
    if cur.allocations.is_empty() {
        return Err(ApiError::not_found(format!(
            "No allocations for consumer '{consumer}'"
        )));
    }
    st.placement.delete_allocations_async(&consumer).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /allocations`: every consumer's new allocations. Written one
/// consumer after another, releases first; a failure puts back what was
/// already written.
pub(crate) async fn post_many(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    body: Bytes,
) -> ApiResult {
    if !v.at(13) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    admin_or_service(&st.policy, &who, "placement:allocations:manage")?;
    let m = util::body_object(&body)?;
    if m.is_empty() {
        return Err(util::invalid("{} does not have enough properties"));
    }
    let mut all = Vec::new();
    for (c, item) in &m {
        let c = util::norm_uuid(c)
            .ok_or_else(|| util::invalid(format!("'{c}' does not match any of the regexes")))?;
        let Value::Object(im) = item else {
            return Err(util::invalid(format!("{item} is not of type 'object'")));
        };
        all.push(wanted(c, im, v, true)?);
    }
    apply_many(&st, all).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Writes several consumers' allocations in one store transaction (as
/// Placement's one `replace_all`), after checking each against what is
/// there; nothing is written when any fails.
async fn apply_many(st: &St, all: Vec<Wanted>) -> Result<(), ApiError> {
    let writes = checked_writes(st, all.clone(), false).await?;
    st.placement
        .write_many_async(&[], &writes)
        .await
        .map_err(write_error)?;
    for w in &all {
        typed(st, w).await?;
    }
    Ok(())
}

/// Each consumer's write: its generation checked and, unless `reshape`
/// (checked against the final inventories by [`simulate`]), its
/// allocations against the inventories there now; a missing project and
/// user kept from what is there.
async fn checked_writes(
    st: &St,
    all: Vec<Wanted>,
    reshape: bool,
) -> Result<Vec<ConsumerWrite>, ApiError> {
    let mut writes = Vec::new();
    for mut w in all {
        let old = st.placement.allocations_async(&w.consumer).await?;
        let generation = match (reshape, w.generation) {
            (false, _) => precheck(st, &w).await?,
            (true, Some(given)) => given,
            (true, None) => old.consumer_generation,
        };
        if w.project_id.is_empty() {
            w.project_id = old.project_id;
            w.user_id = old.user_id;
        }
        writes.push(ConsumerWrite {
            consumer: w.consumer,
            allocations: w.allocations,
            project_id: w.project_id,
            user_id: w.user_id,
            generation,
        });
    }
    Ok(writes)
}

pub(crate) async fn total_usages(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    if !v.at(9) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    let q = Query::parse(raw.as_deref());
    q.only(|k| matches!(k, "project_id" | "user_id") || (k == "consumer_type" && v.at(38)))?;
    let Some(project) = q.get("project_id") else {
        return Err(ApiError::bad(
            "Invalid query string parameters: 'project_id' is a required property",
        ));
    };
    for k in ["project_id", "user_id"] {
        if let Some(x) = q.get(k) {
            let why = if x.is_empty() {
                Some(("'' should be non-empty".to_owned(), "minLength"))
            } else if x.chars().count() > 255 {
                Some((format!("'{x}' is too long"), "maxLength"))
            } else {
                None
            };
            if let Some((msg, kw)) = why {
                return Err(ApiError::bad(format!(
                    "Invalid query string parameters: {msg}\n\nFailed validating '{kw}' in schema['properties']['{k}']"
                )));
            }
        }
    }
    let reader = who.has("reader") && who.project_id == project;
    let target = Target {
        project_id: Some(project),
        user_id: q.get("user_id"),
    };
    if !st.policy.allows(
        &who,
        "placement:usages",
        target,
        who.admin_or_service() || reader,
    ) {
        return Err(ApiError::forbidden("placement:usages"));
    }
    let consumers = st
        .placement
        .consumers_async(Some(project), q.get("user_id"))
        .await?;
    if v.at(38) {
        // Per consumer type (or one group: `all`, `unknown`).
        let want = q.get("consumer_type");
        let mut by_type: BTreeMap<String, (i64, BTreeMap<String, i64>)> = BTreeMap::new();
        for (_, c) in &consumers {
            let ty = c.consumer_type.as_deref().unwrap_or("unknown");
            let key = match want {
                Some("all") => "all",
                Some(w) if w != ty => continue,
                _ => ty,
            };
            let e = by_type.entry(key.to_owned()).or_default();
            e.0 += 1;
            for res in c.allocations.values() {
                for (rc, n) in res {
                    *e.1.entry(rc.to_string()).or_default() += n;
                }
            }
        }
        let mut out = Map::new();
        for (ty, (count, res)) in by_type {
            let mut m: Map<String, Value> = res.into_iter().map(|(k, n)| (k, json!(n))).collect();
            m.insert("consumer_count".into(), json!(count));
            out.insert(ty, Value::Object(m));
        }
        return Ok(fresh(Json(json!({"usages": out})).into_response(), v));
    }
    let mut usages: BTreeMap<String, i64> = BTreeMap::new();
    for (_, c) in &consumers {
        for res in c.allocations.values() {
            for (rc, n) in res {
                *usages.entry(rc.to_string()).or_default() += n;
            }
        }
    }
    Ok(fresh(Json(json!({"usages": usages})).into_response(), v))
}

/// Checks a reshape against the state it would leave: consumer
/// generations, providers and classes, the new allocations within the
/// final inventories' capacity, and no class in use dropped.
async fn simulate(
    st: &St,
    targets: &BTreeMap<String, BTreeMap<String, InventoryRecord>>,
    wanted: &[Wanted],
) -> Result<(), ApiError> {
    let mut finals: BTreeMap<String, BTreeMap<String, InventoryRecord>> = targets.clone();
    let mut usage: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut touched: BTreeSet<String> = targets.keys().cloned().collect();
    for w in wanted {
        touched.extend(w.allocations.keys().map(|k| k.to_string()));
        let cur = st.placement.allocations_async(&w.consumer).await?;
        touched.extend(cur.allocations.keys().map(|k| k.to_string()));
    }
    for rp in &touched {
        if !finals.contains_key(rp) {
            match st.placement.inventories_async(rp).await {
                Ok((_, inv)) => {
                    finals.insert(rp.clone(), inv);
                }
                Err(PlacementError::NotFound(_)) => {
                    return Err(ApiError::bad(format!(
                        "Allocation for resource provider '{rp}' that does not exist."
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        for (rc, n) in st.placement.usages_async(rp).await? {
            usage.insert((rp.clone(), rc), n);
        }
    }
    for w in wanted {
        let cur = st.placement.allocations_async(&w.consumer).await?;
        if let Some(given) = w.generation
            && given != cur.consumer_generation
        {
            return Err(
                ApiError::conflict(consumer_conflict(cur.consumer_generation, given))
                    .code("placement.concurrent_update"),
            );
        }
        for (rp, res) in &cur.allocations {
            for (rc, n) in res {
                *usage.entry((rp.to_string(), rc.to_string())).or_default() -= n;
            }
        }
        for (rp, res) in &w.allocations {
            for (rc, n) in res {
                *usage.entry((rp.to_string(), rc.to_string())).or_default() += n;
            }
        }
    }
    for w in wanted {
        for (rp, res) in &w.allocations {
            let inv = &finals[&rp.to_string()];
            for (rc, n) in res {
                let Some(i) = inv.get(&**rc) else {
                    return Err(ApiError::conflict(format!(
                        "Unable to allocate inventory: Inventory for '{rc}' on resource provider '{rp}' invalid."
                    )));
                };
                if *n < i.min_unit || *n > i.max_unit || n % i.step_size.max(1) != 0 {
                    return Err(ApiError::conflict(format!(
                        "Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{rp}'. The requested amount would violate inventory constraints."
                    )));
                }
                if usage
                    .get(&(rp.to_string(), rc.to_string()))
                    .copied()
                    .unwrap_or(0)
                    > i.capacity()
                {
                    return Err(ApiError::conflict(format!(
                        "Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{rp}'. The requested amount would exceed the capacity."
                    )));
                }
            }
        }
    }
    for (rp, inv) in targets {
        let gone: Vec<&str> = usage
            .iter()
            .filter(|((p, rc), n)| p == rp && **n > 0 && !inv.contains_key(rc))
            .map(|((_, rc), _)| rc.as_str())
            .collect();
        if !gone.is_empty() {
            return Err(ApiError::conflict(format!(
                "update conflict: Inventory for '{}' on resource provider '{rp}' in use.",
                gone.join(", ")
            ))
            .code("placement.inventory.inuse"));
        }
    }
    Ok(())
}

/// `POST /reshaper` (1.30): new inventories for some providers and new
/// allocations for some consumers, together. Written as: each provider's
/// inventories widened to old ∪ new (checked against the generation
/// given), the allocations moved, then the inventories narrowed to the
/// new ones.
pub(crate) async fn reshape(
    st: St,
    Extension(v): Extension<Mv>,
    Extension(who): Who,
    body: Bytes,
) -> ApiResult {
    if !v.at(30) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    // The service's (new defaults); also an admin's (deprecated rule).
    let default = who.has("service") || (!st.policy.enforce_new_defaults && who.has("admin"));
    if !st.policy.allows(
        &who,
        "placement:reshaper:reshape",
        Target::default(),
        default,
    ) {
        return Err(ApiError::forbidden("placement:reshaper:reshape"));
    }
    let m = util::body_object(&body)?;
    util::keys(
        &m,
        &["inventories", "allocations"],
        &["inventories", "allocations"],
    )?;
    let Some(Value::Object(invs)) = m.get("inventories") else {
        return Err(util::invalid("'inventories' is not of type 'object'"));
    };
    let Some(Value::Object(allocs)) = m.get("allocations") else {
        return Err(util::invalid("'allocations' is not of type 'object'"));
    };
    let mut targets: Vec<(String, u64, BTreeMap<String, InventoryRecord>)> = Vec::new();
    for (rp, item) in invs {
        let Value::Object(im) = item else {
            return Err(util::invalid(format!("{item} is not of type 'object'")));
        };
        util::keys(
            im,
            &["inventories", "resource_provider_generation"],
            &["inventories", "resource_provider_generation"],
        )?;
        let g = util::int(im, "resource_provider_generation", 0, i64::MAX)?.unwrap_or(0) as u64;
        let Some(Value::Object(items)) = im.get("inventories") else {
            return Err(util::invalid("'inventories' is not of type 'object'"));
        };
        let mut inv = BTreeMap::new();
        for (rc, i) in items {
            let r = super::inventories::parse_item(i)?;
            inv.insert(rc.clone(), r);
        }
        let rp =
            util::norm_uuid(rp).ok_or_else(|| util::invalid(format!("'{rp}' is not a 'uuid'")))?;
        if st.placement.get_provider_async(&rp).await.is_err() {
            return Err(ApiError::bad(format!(
                "Resource provider {rp} in inventories not found: No resource provider with uuid {rp} found"
            ))
            .code("placement.resource_provider.not_found"));
        }
        for rc in inv.keys() {
            if !super::providers::class_known(&st, rc).await? {
                return Err(ApiError::bad(format!(
                    "Unknown resource class in inventory for resource provider {rp}: No such resource class {rc}."
                )));
            }
        }
        targets.push((rp, g, inv));
    }
    let mut wanted_all = Vec::new();
    for (c, item) in allocs {
        let c =
            util::norm_uuid(c).ok_or_else(|| util::invalid(format!("'{c}' is not a 'uuid'")))?;
        let Value::Object(im) = item else {
            return Err(util::invalid(format!("{item} is not of type 'object'")));
        };
        wanted_all.push(wanted(c, im, v, true)?);
    }
    let targets_map: BTreeMap<String, BTreeMap<String, InventoryRecord>> = targets
        .iter()
        .map(|(rp, _, inv)| (rp.clone(), inv.clone()))
        .collect();
    for (rp, g, _) in &targets {
        let cur = st.placement.get_provider_async(rp).await?.generation;
        if cur != *g {
            return Err(ApiError::conflict(format!(
                "resource provider generation conflict for provider {rp}: actual: {cur}, given: {g}"
            ))
            .code("placement.concurrent_update"));
        }
    }
    simulate(&st, &targets_map, &wanted_all).await?;
    // One transaction: widen, move the allocations, narrow.
    let inventories: Vec<InventoryWrite> = targets
        .into_iter()
        .map(|(provider, generation, inventories)| InventoryWrite {
            provider,
            generation,
            inventories,
        })
        .collect();
    let writes = checked_writes(&st, wanted_all.clone(), true).await?;
    st.placement
        .write_many_async(&inventories, &writes)
        .await
        .map_err(|e| match e {
            PlacementError::InventoryInUse(m) => {
                ApiError::conflict(format!("update conflict: {m}"))
                    .code("placement.inventory.inuse")
            }
            other => write_error(other),
        })?;
    for w in &wanted_all {
        typed(&st, w).await?;
    }
    Ok(empty(StatusCode::NO_CONTENT))
}
