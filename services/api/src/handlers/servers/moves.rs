//! The moves' HTTP side: the actions `resize`, `confirmResize`,
//! `revertResize`, `migrate` and `os-migrateLive` (schemas and policy
//! per microversion), `/servers/{id}/migrations` (2.22 force complete,
//! 2.23 list and show, 2.24 abort) and `/os-migrations` (filters, 2.23
//! type and links, 2.59 uuid and paging, 2.80 user and project).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nova_objects::{Instance, ListQuery, Migration};
use serde_json::{Map, Value, json};

use super::{Params, St};
use crate::ApiState;
use crate::auth::Ctx;
use crate::compute_api::{self, moves};
use crate::fault::{ApiResult, Fault};
use crate::http::{json_body, param, require_admin, require_write};
use crate::microversion::ApiVersion;
use crate::schemas;

/// The server actions this module serves.
pub(crate) fn is_move(name: &str) -> bool {
    matches!(
        name,
        "resize" | "confirmResize" | "revertResize" | "migrate" | "os-migrateLive"
    )
}

fn host_schema() -> Value {
    json!({"type": ["string", "null"], "minLength": 1, "maxLength": 255,
           "pattern": "^[a-zA-Z0-9-._]*$"})
}

pub(crate) fn schema(name: &str, v: ApiVersion) -> Value {
    let inner = match name {
        "resize" => json!({"type": "object", "properties": {
            "flavorRef": {"type": ["string", "integer"], "minLength": 1},
            "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]}},
            "required": ["flavorRef"], "additionalProperties": false}),
        "migrate" if v.at_least(2, 56) => json!({"type": ["object", "null"],
            "properties": {"host": host_schema()}, "additionalProperties": false}),
        "os-migrateLive" => {
            let bool_ = crate::schemas::boolean();
            if v.at_least(2, 25) {
                let mut block = bool_.clone();
                if let Some(a) = block["enum"].as_array_mut() {
                    a.push(json!("auto"));
                }
                let mut props = json!({"block_migration": block, "host": host_schema()});
                if v.at_least(2, 30) && !v.at_least(2, 68) {
                    props["force"] = bool_;
                }
                json!({"type": "object", "properties": props,
                       "required": ["block_migration", "host"], "additionalProperties": false})
            } else {
                json!({"type": "object", "properties": {"block_migration": bool_.clone(),
                       "disk_over_commit": bool_, "host": host_schema()},
                       "required": ["block_migration", "disk_over_commit", "host"],
                       "additionalProperties": false})
            }
        }
        // confirmResize, revertResize, migrate before 2.56.
        _ => json!({"type": "null"}),
    };
    json!({"type": "object", "properties": {name: inner}, "required": [name],
           "additionalProperties": false})
}

fn boolish(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => crate::http::truthy(s),
        _ => None,
    }
}

/// A move action on `inst` (the body checked against its schema first).
pub(crate) async fn action(
    st: &ApiState,
    ctx: &Ctx,
    v: ApiVersion,
    inst: Instance,
    name: &str,
    body: &Value,
) -> ApiResult<Response> {
    schemas::check(&format!("move:{name}"), v, || schema(name, v), body)?;
    let args = &body[name];
    match name {
        "resize" => {
            require_write(ctx, "os_compute_api:servers:resize")?;
            let flavor_id = match &args["flavorRef"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let r = moves::ResizeRequest {
                flavor_id: Some(flavor_id),
                auto_disk_config: args["OS-DCF:diskConfig"].as_str().map(|d| d == "AUTO"),
                host: None,
            };
            moves::resize(st, ctx, inst, r).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "confirmResize" => {
            require_write(ctx, "os_compute_api:servers:confirm_resize")?;
            moves::confirm_resize(st, ctx, inst, None).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        "revertResize" => {
            require_write(ctx, "os_compute_api:servers:revert_resize")?;
            moves::revert_resize(st, ctx, inst).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "migrate" => {
            let host = args["host"].as_str().map(str::to_owned);
            require_admin(
                ctx,
                if host.is_some() {
                    "os_compute_api:os-migrate-server:migrate:host"
                } else {
                    "os_compute_api:os-migrate-server:migrate"
                },
            )?;
            let r = moves::ResizeRequest {
                flavor_id: None,
                auto_disk_config: None,
                host,
            };
            moves::resize(st, ctx, inst, r).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        _ => {
            require_admin(ctx, "os_compute_api:os-migrate-server:migrate_live")?;
            let block_migration = match &args["block_migration"] {
                Value::String(s) if s == "auto" => None,
                other => boolish(other),
            };
            let r = moves::LiveRequest {
                host: args["host"].as_str().map(str::to_owned),
                block_migration,
                disk_over_commit: if v.at_least(2, 25) {
                    None
                } else {
                    boolish(&args["disk_over_commit"])
                },
                force: if v.at_least(2, 30) && !v.at_least(2, 68) {
                    Some(boolish(&args["force"]).unwrap_or(false))
                } else if v.at_least(2, 68) {
                    Some(false)
                } else {
                    None
                },
            };
            moves::live_migrate(st, ctx, inst, r).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
    }
}

/// Nova's migration datetimes (`2012-10-29T13:42:02.000000`).
fn mtime(t: &Option<chrono::DateTime<chrono::Utc>>) -> Value {
    crate::views::usage_time(t)
}

fn links(st: &ApiState, server: &str, id: i64) -> Value {
    let path = format!("servers/{server}/migrations/{id}");
    json!([
        {"rel": "self", "href": format!("{}/v2.1/{path}", st.cfg.public_url)},
        {"rel": "bookmark", "href": format!("{}/{path}", st.cfg.public_url)},
    ])
}

/// A migration of `/os-migrations` at `v`.
fn os_migration_view(st: &ApiState, v: ApiVersion, m: &Migration, hosts: bool) -> Value {
    let host = |x: &Option<String>| if hosts { json!(x) } else { Value::Null };
    let mut o = Map::new();
    o.insert("created_at".into(), mtime(m.created_at()));
    o.insert("dest_compute".into(), host(m.dest_compute()));
    o.insert("dest_host".into(), host(m.dest_host()));
    o.insert("dest_node".into(), host(m.dest_node()));
    o.insert("id".into(), json!(m.id()));
    o.insert("instance_uuid".into(), json!(m.instance_uuid()));
    o.insert(
        "new_instance_type_id".into(),
        json!(m.new_instance_type_id()),
    );
    o.insert(
        "old_instance_type_id".into(),
        json!(m.old_instance_type_id()),
    );
    o.insert("source_compute".into(), host(m.source_compute()));
    o.insert("source_node".into(), host(m.source_node()));
    o.insert("status".into(), json!(m.status()));
    o.insert("updated_at".into(), mtime(m.updated_at()));
    if v.at_least(2, 23) {
        o.insert("migration_type".into(), json!(m.migration_type()));
        if m.migration_type() == "live-migration"
            && nova_service::moves::LIVE_IN_PROGRESS.contains(&m.status().as_deref().unwrap_or(""))
        {
            o.insert(
                "links".into(),
                links(st, m.instance_uuid().as_deref().unwrap_or(""), *m.id()),
            );
        }
    }
    if v.at_least(2, 59) {
        o.insert("uuid".into(), json!(m.uuid()));
    }
    if v.at_least(2, 80) {
        o.insert("user_id".into(), json!(m.user_id()));
        o.insert("project_id".into(), json!(m.project_id()));
    }
    Value::Object(o)
}

fn parse_time(name: &str, s: &str) -> ApiResult<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
        })
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").map(|t| t.and_utc())
        })
        .map_err(|_| {
            Fault::bad_request(format!(
                "Invalid input for query parameters {name}. Value: {s}. '{s}' is not a 'date-time'"
            ))
        })
}

/// The filters of `GET /os-migrations` (nova's `migrations` query schemas;
/// `hidden` is not read).
const MIGRATION_FILTERS: [&str; 4] = [
    "instance_uuid",
    "status",
    "migration_type",
    "source_compute",
];

/// The query parameters `GET /os-migrations` reads at `v`: the filters,
/// `host` and `hidden`, paging and `changes-since` from 2.59, `changes-before` from
/// 2.66, `user_id` and `project_id` from 2.80.
pub(crate) fn os_migrations_params(v: ApiVersion) -> Vec<crate::http::QueryParam> {
    let mut all: Vec<crate::http::QueryParam> = MIGRATION_FILTERS
        .iter()
        .chain(&["host", "hidden"])
        .map(|k| (*k, json!({"type": "string"})))
        .collect();
    if v.at_least(2, 59) {
        all.extend(crate::http::paging_params());
        all.push(crate::http::time_param("changes-since"));
    }
    if v.at_least(2, 66) {
        all.push(crate::http::time_param("changes-before"));
    }
    if v.at_least(2, 80) {
        all.push(("user_id", json!({"type": "string"})));
        all.push(("project_id", json!({"type": "string"})));
    }
    all
}

/// `GET /os-migrations`.
pub(crate) async fn os_migrations(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    axum::extract::Query(params): Params,
) -> ApiResult<Response> {
    let params = crate::http::read_only(params, &os_migrations_params(v));
    let project = param(&params, "project_id").filter(|_| v.at_least(2, 80));
    if project != Some(ctx.project_id.as_str()) {
        require_admin(&ctx, "os_compute_api:os-migrations:index")?;
    }
    let hosts = ctx.is_admin();
    let mut q = ListQuery::new();
    for key in MIGRATION_FILTERS {
        if let Some(val) = param(&params, key) {
            q = q.filter(key, val);
        }
    }
    if v.at_least(2, 80) {
        for key in ["user_id", "project_id"] {
            if let Some(val) = param(&params, key) {
                q = q.filter(key, val);
            }
        }
    }
    let mut all = moves::migrations(&st, q).await?;
    // nova's `hidden` filter (the source cell's record of a cross-cell
    // move is hidden; no move here hides one).
    if let Some(hidden) = param(&params, "hidden").and_then(crate::http::truthy) {
        all.retain(|m| *m.hidden() == hidden);
    }
    if let Some(h) = param(&params, "host") {
        all.retain(|m| {
            m.source_compute().as_deref() == Some(h) || m.dest_compute().as_deref() == Some(h)
        });
    }
    if !v.at_least(2, 59) {
        let list: Vec<Value> = all
            .iter()
            .map(|m| os_migration_view(&st, v, m, hosts))
            .collect();
        return Ok(axum::Json(json!({"migrations": list})).into_response());
    }
    let since = param(&params, "changes-since")
        .map(|s| parse_time("changes-since", s))
        .transpose()?;
    let before = if v.at_least(2, 66) {
        param(&params, "changes-before")
            .map(|s| parse_time("changes-before", s))
            .transpose()?
    } else {
        None
    };
    if let (Some(a), Some(b)) = (since, before)
        && b < a
    {
        return Err(Fault::bad_request(
            "The value of changes-since must be less than or equal to changes-before.",
        ));
    }
    let stamp = |m: &Migration| m.updated_at().or(*m.created_at());
    if let Some(a) = since {
        all.retain(|m| stamp(m).is_some_and(|t| t >= a));
    }
    if let Some(b) = before {
        all.retain(|m| stamp(m).is_some_and(|t| t <= b));
    }
    // Nova's sort: created_at desc, id desc.
    all.sort_by(|a, b| (b.created_at(), b.id()).cmp(&(a.created_at(), a.id())));
    let marker = param(&params, "marker");
    if let Some(mk) = marker {
        match all.iter().position(|m| m.uuid() == mk) {
            Some(p) => {
                all.drain(..=p);
            }
            None => {
                return Err(Fault::bad_request(format!(
                    "Marker {mk} could not be found."
                )));
            }
        }
    }
    let limit = crate::http::page_size(&st, param(&params, "limit"))?;
    all.truncate(limit);
    let next = crate::http::next_link(
        &st,
        "os-migrations",
        all.len(),
        limit,
        all.last().map(|m| m.uuid().as_str()),
    );
    let list: Vec<Value> = all
        .iter()
        .map(|m| os_migration_view(&st, v, m, hosts))
        .collect();
    Ok(axum::Json(crate::http::with_links(
        json!({"migrations": list}),
        "migrations",
        next,
    ))
    .into_response())
}

/// A live migration of `/servers/{id}/migrations`.
fn server_migration_view(v: ApiVersion, m: &Migration) -> Value {
    let mut o = json!({
        "created_at": mtime(m.created_at()),
        "dest_compute": m.dest_compute(),
        "dest_host": m.dest_host(),
        "dest_node": m.dest_node(),
        "disk_processed_bytes": m.disk_processed(),
        "disk_remaining_bytes": m.disk_remaining(),
        "disk_total_bytes": m.disk_total(),
        "id": m.id(),
        "memory_processed_bytes": m.memory_processed(),
        "memory_remaining_bytes": m.memory_remaining(),
        "memory_total_bytes": m.memory_total(),
        "server_uuid": m.instance_uuid(),
        "source_compute": m.source_compute(),
        "source_node": m.source_node(),
        "status": m.status(),
        "updated_at": mtime(m.updated_at()),
    });
    if v.at_least(2, 59) {
        o["uuid"] = json!(m.uuid());
    }
    if v.at_least(2, 80) {
        o["user_id"] = json!(m.user_id());
        o["project_id"] = json!(m.project_id());
    }
    o
}

fn in_progress_live(m: &Migration) -> bool {
    m.migration_type() == "live-migration"
        && nova_service::moves::LIVE_IN_PROGRESS.contains(&m.status().as_deref().unwrap_or(""))
}

fn not_found_route() -> Fault {
    Fault::not_found("The resource could not be found.")
}

/// `GET /servers/{id}/migrations` (2.23): the live migrations in progress.
pub(crate) async fn index(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    if !v.at_least(2, 23) {
        return Err(not_found_route());
    }
    require_admin(&ctx, "os_compute_api:servers:migrations:index")?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    let all = moves::migrations(
        &st,
        ListQuery::new().filter("instance_uuid", inst.uuid().as_str()),
    )
    .await?;
    let list: Vec<Value> = all
        .iter()
        .filter(|m| in_progress_live(m))
        .map(|m| server_migration_view(v, m))
        .collect();
    Ok(axum::Json(json!({"migrations": list})).into_response())
}

/// `GET /servers/{id}/migrations/{migration_id}` (2.23).
pub(crate) async fn show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path((id, mid)): Path<(String, String)>,
) -> ApiResult<Response> {
    if !v.at_least(2, 23) {
        return Err(not_found_route());
    }
    require_admin(&ctx, "os_compute_api:servers:migrations:show")?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    let m = moves::server_migration(&st, &inst, &mid).await?;
    if !in_progress_live(&m) {
        return Err(Fault::not_found(format!(
            "In-progress live migration {mid} is not found for server {id}."
        )));
    }
    Ok(axum::Json(json!({"migration": server_migration_view(v, &m)})).into_response())
}

/// `POST /servers/{id}/migrations/{migration_id}/action`
/// (`force_complete`, 2.22).
pub(crate) async fn migration_action(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path((id, mid)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    if !v.at_least(2, 22) {
        return Err(not_found_route());
    }
    let body = json_body(&body)?;
    schemas::check(
        "server_migration:force_complete",
        v,
        || {
            json!({"type": "object", "properties": {"force_complete": {"type": "null"}},
                  "required": ["force_complete"], "additionalProperties": false})
        },
        &body,
    )?;
    require_admin(&ctx, "os_compute_api:servers:migrations:force_complete")?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    moves::force_complete(&st, &ctx, inst, &mid).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `DELETE /servers/{id}/migrations/{migration_id}` (2.24): abort.
pub(crate) async fn delete(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path((id, mid)): Path<(String, String)>,
) -> ApiResult<Response> {
    if !v.at_least(2, 24) {
        return Err(not_found_route());
    }
    require_admin(&ctx, "os_compute_api:servers:migrations:delete")?;
    let inst = compute_api::get(&st, &ctx, &id).await?;
    moves::abort(&st, &ctx, inst, &mid, v.at_least(2, 65)).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
