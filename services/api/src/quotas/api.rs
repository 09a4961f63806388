//! `os-quota-sets` (show, detail, defaults, update, delete; per project or
//! `?user_id=`; `force`; nova's checks against usage and the project's
//! own limits) and `os-quota-class-sets` (show, update), with the
//! resources each microversion shows (network ones as -1 below 2.36 / 2.50,
//! injected files below 2.57, server groups in classes from 2.50).

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{Limits, RESOURCES};
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::{json_body, param, require, require_on};
use crate::microversion::ApiVersion;
use crate::{ApiState, schemas};

type St = State<Arc<ApiState>>;
type Params = Query<Vec<(String, String)>>;

const NETWORK: [&str; 4] = [
    "fixed_ips",
    "floating_ips",
    "security_groups",
    "security_group_rules",
];
const INJECTED: [&str; 3] = [
    "injected_files",
    "injected_file_content_bytes",
    "injected_file_path_bytes",
];
const GROUPS: [&str; 2] = ["server_groups", "server_group_members"];

/// The resources a quota set shows at `v` (network ones: always -1).
pub(crate) fn set_resources(v: ApiVersion) -> Vec<&'static str> {
    let mut r: Vec<&str> = RESOURCES
        .iter()
        .copied()
        .filter(|k| !(v.at_least(2, 57) && INJECTED.contains(k)))
        .collect();
    if !v.at_least(2, 36) {
        r.extend(NETWORK);
    }
    r
}

/// The resources a quota class set shows at `v`.
pub(crate) fn class_resources(v: ApiVersion) -> Vec<&'static str> {
    let mut r: Vec<&str> = RESOURCES
        .iter()
        .copied()
        .filter(|k| !(v.at_least(2, 57) && INJECTED.contains(k)))
        .filter(|k| v.at_least(2, 50) || !GROUPS.contains(k))
        .collect();
    if !v.at_least(2, 50) {
        r.extend(NETWORK);
    }
    r
}

fn render(limits: &Limits, keys: &[&str], id: Option<&str>) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(id) = id {
        out.insert("id".into(), json!(id));
    }
    for k in keys {
        out.insert(
            (*k).to_owned(),
            json!(limits.get(*k).copied().unwrap_or(-1)),
        );
    }
    out
}

/// `PUT` bodies: every resource the version accepts, `force`.
pub(crate) fn update_schema(wrapper: &str, keys: &[&str], force: bool) -> Value {
    let limit = json!({"type": ["integer", "string"], "pattern": "^-?[0-9]+$",
                       "minimum": -1, "maximum": 0x7FFF_FFFF});
    let mut props = Map::new();
    for k in keys {
        props.insert((*k).to_owned(), limit.clone());
    }
    if force {
        props.insert("force".into(), schemas::boolean());
    }
    json!({"type": "object", "properties": {wrapper: {"type": "object", "properties": props,
        "additionalProperties": false}}, "required": [wrapper], "additionalProperties": false})
}

fn as_limit(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(-1),
        other => other.as_i64().unwrap_or(-1),
    }
}

fn user_param(p: &[(String, String)]) -> Option<String> {
    param(p, "user_id").map(str::to_owned)
}

pub(crate) async fn show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(project): Path<String>,
    Query(p): Params,
) -> ApiResult<Response> {
    let user = user_param(&p);
    require_on(
        &ctx,
        "os_compute_api:os-quota-sets:show",
        &project,
        user.as_deref().unwrap_or(&ctx.user_id),
    )?;
    let limits = st.quotas.project(&project, user.as_deref()).await?;
    let qs = render(&limits, &set_resources(v), Some(&project));
    Ok(axum::Json(json!({"quota_set": qs})).into_response())
}

pub(crate) async fn defaults(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(project): Path<String>,
) -> ApiResult<Response> {
    require_on(
        &ctx,
        "os_compute_api:os-quota-sets:defaults",
        &project,
        &ctx.user_id,
    )?;
    let limits = st.quotas.defaults().await?;
    let qs = render(&limits, &set_resources(v), Some(&project));
    Ok(axum::Json(json!({"quota_set": qs})).into_response())
}

/// What `project` (or `user` in it) uses of each resource, as nova's
/// `_get_usages` shows it: instances, cores, RAM and server groups
/// counted for the user when one is named, else for the project; key
/// pairs and server group members always 0 (nova does not count them
/// here).
async fn in_use(st: &ApiState, project: &str, user: Option<&str>) -> ApiResult<Limits> {
    let (p, u) = super::count::instances(st, project, user).await?;
    let c = u.unwrap_or(p);
    let groups = match user {
        Some(u) => crate::server_groups::count_by_user(st, project, u).await?,
        None => crate::server_groups::count(st, project).await?,
    };
    let mut out: Limits = RESOURCES.iter().map(|r| ((*r).to_owned(), 0)).collect();
    out.insert("instances".into(), c.instances);
    out.insert("cores".into(), c.cores);
    out.insert("ram".into(), c.ram);
    out.insert("server_groups".into(), groups);
    Ok(out)
}

pub(crate) async fn detail(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(project): Path<String>,
    Query(p): Params,
) -> ApiResult<Response> {
    let user = user_param(&p);
    require_on(
        &ctx,
        "os_compute_api:os-quota-sets:detail",
        &project,
        user.as_deref().unwrap_or(&ctx.user_id),
    )?;
    let limits = st.quotas.project(&project, user.as_deref()).await?;
    let used = in_use(&st, &project, user.as_deref()).await?;
    let mut qs = Map::new();
    qs.insert("id".into(), json!(project));
    for k in set_resources(v) {
        let limit = limits.get(k).copied().unwrap_or(-1);
        let n = used.get(k).copied().unwrap_or(0);
        qs.insert(
            k.to_owned(),
            json!({"limit": limit, "in_use": n, "reserved": 0}),
        );
    }
    Ok(axum::Json(json!({"quota_set": qs})).into_response())
}

/// nova's `get_settable_quotas`: per resource the (minimum, maximum) an
/// update may set. A project: at least its use and the sum of its users'
/// own limits. A user: at least the user's use, at most what the project
/// has not given to its users (`remains`) plus the user's own limit.
async fn settable(
    st: &ApiState,
    project: &str,
    user: Option<&str>,
) -> ApiResult<std::collections::BTreeMap<&'static str, (i64, i64)>> {
    // `_sub_quota_values` / `_sum_quota_values`: -1 (unlimited) wins.
    let sub = |a: i64, b: i64| if a == -1 || b == -1 { -1 } else { a - b };
    let sum = |a: i64, b: i64| if a == -1 || b == -1 { -1 } else { a + b };
    let limits = st.quotas.project(project, None).await?;
    let given = st.quotas.users_total(project).await?;
    let used = in_use(st, project, user).await?;
    let own = match user {
        Some(u) => Some(st.quotas.own(project, Some(u)).await?),
        None => None,
    };
    let mut out = std::collections::BTreeMap::new();
    for k in RESOURCES {
        let limit = limits.get(k).copied().unwrap_or(-1);
        let remains = limit - given.get(k).copied().unwrap_or(0);
        let in_use = used.get(k).copied().unwrap_or(0);
        out.insert(
            k,
            match &own {
                Some(own) => (in_use, sum(remains, own.get(k).copied().unwrap_or(0))),
                None => (sub(limit, remains).max(in_use), -1),
            },
        );
    }
    Ok(out)
}

pub(crate) async fn update(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(project): Path<String>,
    Query(p): Params,
    body: Bytes,
) -> ApiResult<Response> {
    let user = user_param(&p);
    require_on(
        &ctx,
        "os_compute_api:os-quota-sets:update",
        &project,
        user.as_deref().unwrap_or(&ctx.user_id),
    )?;
    let body = json_body(&body)?;
    let keys = set_resources(v);
    schemas::check(
        "quota_set:update",
        v,
        || update_schema("quota_set", &keys, true),
        &body,
    )?;
    let qs = body["quota_set"].as_object().cloned().unwrap_or_default();
    let force = qs
        .get("force")
        .map(|f| {
            matches!(f, Value::Bool(true)) || f.as_str().and_then(crate::http::truthy) == Some(true)
        })
        .unwrap_or(false);
    let settable = settable(&st, &project, user.as_deref()).await?;
    let mut changes = Vec::new();
    for (k, val) in &qs {
        // nova-network's resources (below 2.36) are stored and shown,
        // never counted.
        if k == "force" {
            continue;
        }
        let limit = as_limit(val);
        if !force && let Some((minimum, maximum)) = settable.get(k.as_str()).copied() {
            // nova's `_validate_quota_limit`: -1 is infinity.
            let inf = |x: i64| if x == -1 { f64::INFINITY } else { x as f64 };
            if inf(limit) < inf(minimum) {
                return Err(Fault::bad_request(format!(
                    "Quota limit {limit} for {k} must be greater than or equal to already used and reserved {minimum}."
                )));
            }
            if inf(limit) > inf(maximum) {
                return Err(Fault::bad_request(format!(
                    "Quota limit {limit} for {k} must be less than or equal to {maximum}."
                )));
            }
        }
        changes.push((k.clone(), limit));
    }
    for (k, limit) in changes {
        st.quotas.set(&project, user.as_deref(), &k, limit).await?;
    }
    let limits = st.quotas.project(&project, user.as_deref()).await?;
    Ok(axum::Json(json!({"quota_set": render(&limits, &keys, None)})).into_response())
}

pub(crate) async fn delete(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path(project): Path<String>,
    Query(p): Params,
) -> ApiResult<Response> {
    let user = user_param(&p);
    require_on(
        &ctx,
        "os_compute_api:os-quota-sets:delete",
        &project,
        user.as_deref().unwrap_or(&ctx.user_id),
    )?;
    st.quotas.delete(&project, user.as_deref()).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

pub(crate) async fn class_show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(class): Path<String>,
) -> ApiResult<Response> {
    require(&ctx, "os_compute_api:os-quota-class-sets:show")?;
    let limits = st.quotas.class(&class).await?;
    let qs = render(&limits, &class_resources(v), Some(&class));
    Ok(axum::Json(json!({"quota_class_set": qs})).into_response())
}

pub(crate) async fn class_update(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(class): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    require(&ctx, "os_compute_api:os-quota-class-sets:update")?;
    if class.is_empty() || class.len() > 255 {
        return Err(Fault::bad_request(
            "The quota class name must be 1 to 255 characters.",
        ));
    }
    let body = json_body(&body)?;
    let keys = class_resources(v);
    schemas::check(
        "quota_class_set:update",
        v,
        || update_schema("quota_class_set", &keys, false),
        &body,
    )?;
    let qs = body["quota_class_set"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (k, val) in &qs {
        st.quotas.set_class(&class, k, as_limit(val)).await?;
    }
    let limits = st.quotas.class(&class).await?;
    Ok(axum::Json(json!({"quota_class_set": render(&limits, &keys, None)})).into_response())
}
