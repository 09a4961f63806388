//! `os-simple-tenant-usage` (index and show over a `start`/`end` window,
//! 2.40 marker/limit paging), `os-instance_usage_audit_log`, and
//! `extensions` (nova's list).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use nova_objects::SortDir;
use nova_objects::{Instance, ListQuery, Service, VersionedObject};
use nova_service::audit_period::py_str;
use nova_service::task_log::{DONE, INSTANCE_USAGE_AUDIT, RUNNING, task_log_get_all};
use serde_json::{Value, json};

use crate::ApiState;
use crate::admin::services_all;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::{param, require_admin, require_read};
use crate::microversion::ApiVersion;

type St = State<Arc<ApiState>>;
type Params = Query<Vec<(String, String)>>;

/// nova's `_parse_datetime`: three formats, UTC; now when absent.
fn parse_time(s: Option<&str>) -> ApiResult<DateTime<Utc>> {
    let Some(s) = s.filter(|s| !s.is_empty()) else {
        return Ok(Utc::now());
    };
    for fmt in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(Utc.from_utc_datetime(&t));
        }
    }
    Err(Fault::bad_request(
        "Invalid datetime string: Datetime is in invalid format",
    ))
}

/// nova's `timeutils.normalize_time` printed by its JSON encoder.
fn iso(t: &DateTime<Utc>) -> Value {
    json!(t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
}

/// Hours of `i` inside `[start, stop]` (nova's `_hours_for`).
fn hours_for(i: &Instance, start: DateTime<Utc>, stop: DateTime<Utc>) -> f64 {
    let launched = *i.launched_at();
    let terminated = *i.terminated_at();
    if terminated.is_some_and(|t| t < start) || launched.is_some_and(|l| l > stop) {
        return 0.0;
    }
    match launched {
        Some(l) => {
            let from = l.max(start);
            let to = terminated.map_or(stop, |t| t.min(stop));
            (to - from).num_microseconds().unwrap_or(0) as f64 / 3_600_000_000.0
        }
        None => 0.0,
    }
}

/// The usage of the instances active in the window (nova's
/// `get_active_by_window_joined`: launched before its end, not terminated
/// before its start, deleted ones included), grouped per project.
async fn usages(
    st: &ApiState,
    p: &[(String, String)],
    project: Option<&str>,
    detailed: bool,
    paged: bool,
) -> ApiResult<(Vec<Value>, Vec<Value>, usize)> {
    let start = parse_time(param(p, "start"))?;
    let mut stop = parse_time(param(p, "end"))?;
    if start >= stop {
        return Err(Fault::bad_request(
            "Invalid start time. The start time cannot occur after the end time.",
        ));
    }
    stop = stop.min(Utc::now());
    let limit = if paged {
        crate::http::page_size(st, param(p, "limit"))?
    } else {
        st.cfg.max_limit
    };
    let mut rctx = crate::http::admin_ctx();
    rctx.set("read_deleted", "yes");
    let mut q = ListQuery::new()
        .sort("created_at", SortDir::Asc)
        .sort("id", SortDir::Asc);
    if let Some(pr) = project {
        q = q.filter("project_id", pr);
    }
    let all: Vec<Instance> = st.objects.list(&rctx, &q).await?;
    let mut active: Vec<Instance> = all
        .into_iter()
        .filter(|i| {
            i.launched_at().is_some_and(|l| l < stop) && i.terminated_at().is_none_or(|t| t > start)
        })
        .collect();
    if let Some(m) = param(p, "marker").filter(|_| paged) {
        match active.iter().position(|i| i.uuid() == m) {
            Some(pos) => {
                active.drain(..=pos);
            }
            None => {
                return Err(Fault::bad_request(format!(
                    "Marker {m} could not be found."
                )));
            }
        }
    }
    active.truncate(limit);
    let now = Utc::now();
    let mut by_project: BTreeMap<String, Value> = BTreeMap::new();
    let mut order = Vec::new();
    let mut servers = Vec::new();
    for i in &active {
        let hours = hours_for(i, start, stop);
        let f = i.obj_attr_is_set("flavor").then(|| i.flavor());
        let (mem, disk, vcpus, fname) = match f {
            Some(f) => (
                *f.memory_mb(),
                f.root_gb() + f.ephemeral_gb(),
                *f.vcpus(),
                f.name().clone().unwrap_or_default(),
            ),
            None => (0, 0, 0, String::new()),
        };
        let started = i.launched_at().unwrap_or(now);
        let ended = *i.terminated_at();
        let state = match ended {
            Some(_) => "terminated".to_owned(),
            None => i.vm_state().clone().unwrap_or_default(),
        };
        let uptime = (ended.unwrap_or(now) - started).num_seconds();
        let tenant = i.project_id().clone().unwrap_or_default();
        let info = json!({
            "hours": hours, "flavor": fname, "instance_id": i.uuid(),
            "name": i.display_name(), "tenant_id": tenant,
            "memory_mb": mem, "local_gb": disk, "vcpus": vcpus,
            "started_at": iso(&started), "ended_at": ended.as_ref().map(iso),
            "state": state, "uptime": uptime,
        });
        let summary = by_project.entry(tenant.clone()).or_insert_with(|| {
            order.push(tenant.clone());
            let mut s = json!({"tenant_id": tenant, "total_local_gb_usage": 0.0,
                "total_vcpus_usage": 0.0, "total_memory_mb_usage": 0.0, "total_hours": 0.0,
                "start": iso(&start), "stop": iso(&stop)});
            if detailed {
                s["server_usages"] = json!([]);
            }
            s
        });
        let add = |s: &mut Value, k: &str, x: f64| {
            s[k] = json!(s[k].as_f64().unwrap_or(0.0) + x);
        };
        add(summary, "total_local_gb_usage", disk as f64 * hours);
        add(summary, "total_vcpus_usage", vcpus as f64 * hours);
        add(summary, "total_memory_mb_usage", mem as f64 * hours);
        add(summary, "total_hours", hours);
        if detailed && let Some(list) = summary["server_usages"].as_array_mut() {
            list.push(info.clone());
        }
        servers.push(info);
    }
    let out = order
        .into_iter()
        .filter_map(|t| by_project.remove(&t))
        .collect();
    Ok((out, servers, limit))
}

fn links(st: &ApiState, servers: &[Value], limit: usize, path: &str) -> Option<Value> {
    let last = servers.last()?["instance_id"].as_str()?.to_owned();
    crate::http::next_link(st, path, servers.len(), limit, Some(&last))
        .map(|href| json!([{"rel": "next", "href": href}]))
}

/// The query parameters of `GET /os-simple-tenant-usage` (`index`) or
/// `/os-simple-tenant-usage/{project}` at `v`: `start`, `end` (nova's
/// `%Y-%m-%dT%H:%M:%S[.%f]`, now when absent), the index's `detailed`,
/// paging from 2.40.
pub(crate) fn query_params(v: ApiVersion, index: bool) -> Vec<crate::http::QueryParam> {
    let time = json!({"type": "string", "description": "%Y-%m-%dT%H:%M:%S[.%f] (UTC)"});
    let mut all = vec![("start", time.clone()), ("end", time)];
    if index {
        all.push((
            "detailed",
            json!({"type": "string", "description": "1: each project's servers too"}),
        ));
    }
    if v.at_least(2, 40) {
        all.extend(crate::http::paging_params());
    }
    all
}

pub(crate) async fn tenant_usages(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Query(p): Params,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-simple-tenant-usage:list")?;
    let p = crate::http::read_only(p, &query_params(v, true));
    let detailed = param(&p, "detailed") == Some("1");
    let paged = v.at_least(2, 40);
    let (list, servers, limit) = usages(&st, &p, None, detailed, paged).await?;
    let mut body = json!({"tenant_usages": list});
    if paged && let Some(l) = links(&st, &servers, limit, "os-simple-tenant-usage") {
        body["tenant_usages_links"] = l;
    }
    Ok(axum::Json(body).into_response())
}

pub(crate) async fn tenant_usage(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(project): Path<String>,
    Query(p): Params,
) -> ApiResult<Response> {
    if !(ctx.is_admin() || ctx.project_id == project) {
        return Err(Fault::policy("os_compute_api:os-simple-tenant-usage:show"));
    }
    require_read(&ctx, "os_compute_api:os-simple-tenant-usage:show")?;
    let p = crate::http::read_only(p, &query_params(v, false));
    let paged = v.at_least(2, 40);
    let (list, servers, limit) = usages(&st, &p, Some(&project), true, paged).await?;
    let usage = list.into_iter().next().unwrap_or_else(|| json!({}));
    let mut body = json!({"tenant_usage": usage});
    if paged
        && let Some(l) = links(
            &st,
            &servers,
            limit,
            &format!("os-simple-tenant-usage/{project}"),
        )
    {
        body["tenant_usage_links"] = l;
    }
    Ok(axum::Json(body).into_response())
}

/// nova's `_get_audit_task_logs`: the `instance_usage_audit` task logs of
/// the period last completed before `before`, against every compute
/// service's host (disabled ones included: they may hold instances).
async fn audit_log(st: &ApiState, before: NaiveDateTime) -> ApiResult<Value> {
    let (begin, end) = st.cfg.audit_period.last_completed(before).ok_or_else(|| {
        Fault::internal(format!(
            "[DEFAULT] instance_usage_audit_period {} names no period before {before}",
            st.cfg.audit_period
        ))
    })?;
    let logs = task_log_get_all(
        &st.objects,
        &crate::http::admin_ctx(),
        INSTANCE_USAGE_AUDIT,
        (begin, end),
        None,
        None,
    )
    .await?;
    let hosts: BTreeSet<String> = services_all(st)
        .await?
        .iter()
        .filter(|s: &&Service| s.topic().as_deref() == Some("compute"))
        .filter_map(|s| s.host().clone())
        .collect();
    let mut seen = BTreeSet::new();
    let mut done = BTreeSet::new();
    let mut running = BTreeSet::new();
    let (mut total_errors, mut total_items) = (0i64, 0i64);
    let mut log = serde_json::Map::new();
    for t in &logs {
        seen.insert(t.host().clone());
        match t.state().as_str() {
            DONE => {
                done.insert(t.host().clone());
            }
            RUNNING => {
                running.insert(t.host().clone());
            }
            _ => {}
        }
        total_errors += t.errors();
        total_items += t.task_items();
        log.insert(
            t.host().clone(),
            json!({"state": t.state(), "instances": t.task_items(),
                   "errors": t.errors(), "message": t.message()}),
        );
    }
    let not_run: Vec<&String> = hosts.difference(&seen).collect();
    let hosts_done = if done.len() == hosts.len() {
        "ALL".to_owned()
    } else {
        format!("{} of {}", done.len(), hosts.len())
    };
    Ok(json!({
        "period_beginning": py_str(&begin), "period_ending": py_str(&end),
        "num_hosts": hosts.len(), "num_hosts_done": done.len(),
        "num_hosts_running": running.len(), "num_hosts_not_run": not_run.len(),
        "hosts_not_run": not_run,
        "total_instances": total_items, "total_errors": total_errors,
        "overall_status": format!("{hosts_done} hosts done. {total_errors} errors."),
        "log": log,
    }))
}

pub(crate) async fn audit_logs(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-instance-usage-audit-log:list")?;
    let log = audit_log(&st, Utc::now().naive_utc()).await?;
    Ok(axum::Json(json!({"instance_usage_audit_logs": log})).into_response())
}

pub(crate) async fn audit_log_show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-instance-usage-audit-log:show")?;
    let fmt = if id.contains('.') {
        "%Y-%m-%d %H:%M:%S%.f"
    } else {
        "%Y-%m-%d %H:%M:%S"
    };
    let before = NaiveDateTime::parse_from_str(&id, fmt)
        .map_err(|_| Fault::bad_request(format!("Invalid timestamp for date {id}")))?;
    let log = audit_log(&st, before).await?;
    Ok(axum::Json(json!({"instance_usage_audit_log": log})).into_response())
}

/// nova 34's extension list (`extension_info.py`, Apache-2.0): the v2.1
/// list, and the legacy v2 one for `/v2`.
fn extension_list(legacy: bool) -> Vec<Value> {
    let all: Value = serde_json::from_str(include_str!("extensions.json")).unwrap_or(Value::Null);
    all[if legacy { "legacy_v2" } else { "v21" }]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub(crate) async fn extensions(Extension(ctx): Extension<Ctx>) -> ApiResult<Response> {
    require_read(&ctx, "os_compute_api:extensions")?;
    Ok(axum::Json(json!({"extensions": extension_list(false)})).into_response())
}

pub(crate) async fn extension(
    Extension(ctx): Extension<Ctx>,
    Path(alias): Path<String>,
) -> ApiResult<Response> {
    require_read(&ctx, "os_compute_api:extensions")?;
    match extension_list(false)
        .into_iter()
        .find(|e| e["alias"] == alias.as_str())
    {
        Some(e) => Ok(axum::Json(json!({"extension": e})).into_response()),
        None => Err(Fault::not_found("The resource could not be found.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nova_lists_its_extensions() {
        assert_eq!(extension_list(false).len(), 99);
        assert!(
            extension_list(false)
                .iter()
                .any(|e| e["alias"] == "os-hypervisors")
        );
    }
}
