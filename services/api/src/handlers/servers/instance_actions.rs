//! `GET /servers/{id}/os-instance-actions[/{request_id}]` (nova's
//! `InstanceActionsController`): deleted servers from 2.21, events for
//! their owners from 2.51 (tracebacks for admins only), `updated_at`,
//! paging and `changes-since` from 2.58, `host` (admins) and `hostId` on
//! events from 2.62, `changes-before` from 2.66, event `details` (admins)
//! from 2.84.

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use nova_objects::{InstanceAction, InstanceActionEvent};
use serde_json::{Map, Value, json};

use super::{Params, St};
use crate::auth::Ctx;
use crate::compute_api::instance_actions::{self as ia, ActionsQuery};
use crate::fault::{ApiResult, Fault};
use crate::http::{next_link, param, require_read};
use crate::microversion::ApiVersion;
use crate::views::{host_id, usage_time};

const POLICY: &str = "os_compute_api:os-instance-actions";

fn action_view(a: &InstanceAction, v: ApiVersion) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("action".into(), json!(a.action()));
    o.insert("instance_uuid".into(), json!(a.instance_uuid()));
    o.insert("request_id".into(), json!(a.request_id()));
    o.insert("user_id".into(), json!(a.user_id()));
    o.insert("project_id".into(), json!(a.project_id()));
    o.insert("start_time".into(), usage_time(a.start_time()));
    o.insert("message".into(), json!(a.message()));
    if v.at_least(2, 58) {
        o.insert("updated_at".into(), usage_time(a.updated_at()));
    }
    o
}

/// What a caller sees of an event.
struct EventFields {
    traceback: bool,
    host: bool,
    host_id: bool,
    details: bool,
}

fn event_view(e: &InstanceActionEvent, project: &str, f: &EventFields) -> Value {
    let mut o = Map::new();
    o.insert("event".into(), json!(e.event()));
    o.insert("start_time".into(), usage_time(e.start_time()));
    o.insert("finish_time".into(), usage_time(e.finish_time()));
    o.insert("result".into(), json!(e.result()));
    if f.traceback {
        o.insert("traceback".into(), json!(e.traceback()));
    }
    if f.host {
        o.insert("host".into(), json!(e.host()));
    }
    if f.host_id {
        o.insert("hostId".into(), json!(host_id(project, e.host())));
    }
    if f.details {
        o.insert("details".into(), json!(e.details()));
    }
    Value::Object(o)
}

/// A `changes-since` / `changes-before` time (400 otherwise).
fn time_param(
    p: &[(String, String)],
    key: &str,
) -> ApiResult<Option<chrono::DateTime<chrono::Utc>>> {
    param(p, key)
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
                        .map(|n| n.and_utc().fixed_offset())
                })
                .map(|d| d.to_utc())
                .map_err(|_| {
                    Fault::bad_request(format!(
                        "Invalid input for query parameters {key}. Value: {t}. '{t}' is not a 'date-time'"
                    ))
                })
        })
        .transpose()
}

/// The query parameters of `GET /servers/{id}/os-instance-actions` at
/// `v`: none before 2.58, then `limit`, `marker`, `changes-since`, and
/// `changes-before` from 2.66 (nova's `instance_actions` query schemas).
pub(crate) fn query_params(v: ApiVersion) -> Vec<crate::http::QueryParam> {
    let mut all = vec![];
    if v.at_least(2, 58) {
        all.extend(crate::http::paging_params());
        all.push(crate::http::time_param("changes-since"));
    }
    if v.at_least(2, 66) {
        all.push(crate::http::time_param("changes-before"));
    }
    all
}

/// The 2.58+ query: only [`query_params`], each once.
fn query(st: &crate::ApiState, v: ApiVersion, p: &[(String, String)]) -> ApiResult<ActionsQuery> {
    let known = query_params(v);
    crate::http::refuse_unknown_params(p, &known)?;
    let limit = match param(p, "limit") {
        Some(l) => Some(l.parse::<u64>().map_err(|_| {
            Fault::bad_request(format!(
                "Invalid input for query parameters limit. Value: {l}. '{l}' does not match '^[0-9]*$'"
            ))
        })?),
        None => None,
    };
    let r = ActionsQuery {
        limit: Some(
            limit
                .unwrap_or(st.cfg.max_limit as u64)
                .min(st.cfg.max_limit as u64),
        ),
        marker: param(p, "marker").map(str::to_owned),
        changes_since: time_param(p, "changes-since")?,
        changes_before: time_param(p, "changes-before")?,
    };
    if let (Some(s), Some(b)) = (r.changes_since, r.changes_before)
        && b < s
    {
        return Err(Fault::bad_request(
            "The value of changes-since must be less than or equal to changes-before.",
        ));
    }
    Ok(r)
}

pub(crate) async fn index(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    axum::extract::Query(p): Params,
) -> ApiResult<Response> {
    let inst = ia::instance(&st, &ctx, &id, v.at_least(2, 21)).await?;
    require_read(&ctx, &format!("{POLICY}:list"))?;
    let (r, paged) = if v.at_least(2, 58) {
        (query(&st, v, &p)?, true)
    } else {
        (ActionsQuery::default(), false)
    };
    let actions = ia::list(&st, inst.uuid(), &r).await?;
    let views: Vec<Value> = actions
        .iter()
        .map(|a| Value::Object(action_view(a, v)))
        .collect();
    let mut body = json!({"instanceActions": views});
    if paged {
        let limit = r.limit.unwrap_or_default() as usize;
        if let Some(link) = next_link(
            &st,
            &format!("servers/{id}/os-instance-actions"),
            actions.len(),
            limit,
            actions.last().and_then(|a| a.request_id().as_deref()),
        ) {
            body["links"] = json!([{"rel": "next", "href": link}]);
        }
    }
    Ok(axum::Json(body).into_response())
}

pub(crate) async fn show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path((id, request_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let inst = ia::instance(&st, &ctx, &id, v.at_least(2, 21)).await?;
    require_read(&ctx, &format!("{POLICY}:show"))?;
    let Some(action) = ia::by_request_id(&st, inst.uuid(), &request_id).await? else {
        return Err(Fault::not_found(format!("Action {request_id} not found")));
    };
    let mut view = action_view(&action, v);
    // `events` (admin by default): every field; from 2.51 the owner sees
    // the events without their tracebacks.
    let all = ctx.is_admin();
    if all || v.at_least(2, 51) {
        let f = EventFields {
            traceback: all,
            host: all && v.at_least(2, 62),
            host_id: v.at_least(2, 62),
            details: all && v.at_least(2, 84),
        };
        let project = action
            .project_id()
            .clone()
            .filter(|p| !p.is_empty())
            .or_else(|| inst.project_id().clone())
            .unwrap_or_default();
        let events: Vec<Value> = ia::events(&st, &action)
            .await?
            .iter()
            .map(|e| event_view(e, &project, &f))
            .collect();
        view.insert("events".into(), Value::Array(events));
    }
    Ok(axum::Json(json!({"instanceAction": view})).into_response())
}
