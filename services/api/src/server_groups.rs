//! `/os-server-groups`: list (`all_projects` for admins, `limit`/`offset`),
//! create (policies before 2.64, `policy` + `rules` from 2.64), show,
//! delete; the `server_groups` quota; and what a boot with the `group`
//! scheduler hint needs (the group, the `server_group_members` quota, the
//! members added), with `server_group.*` notifications.
//!
//! A group's members are the `members` list of its row (JSON); adding
//! members is a compare-and-swap of what was read, redone when another
//! boot added its own meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nova_objects::{Instance, InstanceGroup, ListQuery, SaveOptions, VersionedObject};
use serde_json::{Value, json};

use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::{admin_ctx, json_body, param, require_read, require_write};
use crate::microversion::ApiVersion;
use crate::{ApiState, schemas};

type St = State<Arc<ApiState>>;
type Params = Query<Vec<(String, String)>>;

const RETRIES: usize = 10;

pub(crate) fn create_schema(v: ApiVersion) -> Value {
    let name = json!({"type": "string", "minLength": 1, "maxLength": 255,
                      "pattern": "^\\S([\\s\\S]*\\S)?$"});
    let group = if v.at_least(2, 64) {
        json!({"type": "object", "properties": {
            "name": name,
            "policy": {"type": "string", "enum": ["anti-affinity", "affinity", "soft-anti-affinity", "soft-affinity"]},
            "rules": {"type": "object", "properties": {
                "max_server_per_host": {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 1, "minLength": 1}},
                "additionalProperties": false}},
            "required": ["name", "policy"], "additionalProperties": false})
    } else {
        let mut policies = vec!["anti-affinity", "affinity"];
        if v.at_least(2, 15) {
            policies.extend(["soft-anti-affinity", "soft-affinity"]);
        }
        json!({"type": "object", "properties": {
            "name": name,
            // nova's draft-4 tuple (`items: [..]`, `additionalItems: false`)
            // as one item schema with a length of one (2020-12 drafts have
            // no array `items`).
            "policies": {"type": "array", "items": {"type": "string", "enum": policies},
                         "uniqueItems": true, "minItems": 1, "maxItems": 1}},
            "required": ["name", "policies"], "additionalProperties": false})
    };
    json!({"type": "object", "properties": {"server_group": group},
           "required": ["server_group"], "additionalProperties": false})
}

/// The group's policy (`policy`, or the first of the old `policies`).
pub(crate) fn policy_of(g: &InstanceGroup) -> Option<String> {
    g.policy()
        .clone()
        .or_else(|| g.policies().as_ref().and_then(|p| p.first().cloned()))
}

fn not_found(id: &str) -> Fault {
    Fault::not_found(format!("Instance group {id} could not be found."))
}

/// The group `id` (nova's `InstanceGroup.get_by_uuid`).
pub(crate) async fn get(st: &ApiState, id: &str) -> ApiResult<InstanceGroup> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found(id));
    }
    match st.objects.get_by_uuid(&admin_ctx(), id).await {
        Ok(g) => Ok(g),
        Err(e) if e.is_not_found() => Err(not_found(id)),
        Err(e) => Err(e.into()),
    }
}

/// Which of `uuids` are instances not deleted.
async fn live(st: &ApiState, uuids: &[String]) -> ApiResult<BTreeSet<String>> {
    if uuids.is_empty() {
        return Ok(BTreeSet::new());
    }
    let found: Vec<Instance> = st
        .objects
        .list(&admin_ctx(), &ListQuery::new().filter("uuid", json!(uuids)))
        .await?;
    Ok(found.iter().map(|i| i.uuid().clone()).collect())
}

fn view(v: ApiVersion, g: &InstanceGroup, live: &BTreeSet<String>) -> Value {
    let members: Vec<&String> = g
        .members()
        .iter()
        .flatten()
        .filter(|m| live.contains(*m))
        .collect();
    let mut out = json!({"id": g.uuid(), "name": g.name(), "members": members});
    if v.at_least(2, 64) {
        out["policy"] = json!(policy_of(g));
        let rules: BTreeMap<String, Value> = g
            .rules()
            .iter()
            .map(|(k, x)| {
                let val = x.parse::<i64>().map(|n| json!(n)).unwrap_or(json!(x));
                (k.clone(), val)
            })
            .collect();
        out["rules"] = json!(rules);
    } else {
        out["policies"] = json!(policy_of(g).into_iter().collect::<Vec<_>>());
        out["metadata"] = json!({});
    }
    if v.at_least(2, 13) {
        out["project_id"] = json!(g.project_id());
        out["user_id"] = json!(g.user_id());
    }
    out
}

/// Groups of `project` (all projects: `None`).
async fn groups_of(st: &ApiState, project: Option<&str>) -> ApiResult<Vec<InstanceGroup>> {
    let mut q = ListQuery::new();
    if let Some(p) = project {
        q = q.filter("project_id", p);
    }
    Ok(st.objects.list(&admin_ctx(), &q).await?)
}

/// The project's server groups (the `server_groups` quota's usage).
pub(crate) async fn count(st: &ApiState, project: &str) -> ApiResult<i64> {
    let f = serde_json::Map::from_iter([("project_id".to_owned(), json!(project))]);
    Ok(st.objects.count::<InstanceGroup>(&admin_ctx(), &f).await? as i64)
}

/// `user`'s server groups in `project`.
pub(crate) async fn count_by_user(st: &ApiState, project: &str, user: &str) -> ApiResult<i64> {
    let f = serde_json::Map::from_iter([
        ("project_id".to_owned(), json!(project)),
        ("user_id".to_owned(), json!(user)),
    ]);
    Ok(st.objects.count::<InstanceGroup>(&admin_ctx(), &f).await? as i64)
}

/// nova's `check_deltas` of `server_groups` (`extra` more, after the
/// create: 0): the project's groups within the project's limit and the
/// user's within the user's.
async fn groups_over(st: &ApiState, ctx: &Ctx, extra: i64) -> ApiResult<bool> {
    let (project, user) = (ctx.project_id.as_str(), ctx.user_id.as_str());
    let limit = |l: crate::quotas::Limits| l.get("server_groups").copied().unwrap_or(-1);
    let (pl, ul) = st.quotas.project_and_user(project, Some(user)).await?;
    let (pl, ul) = (limit(pl), limit(ul.unwrap_or_default()));
    Ok((pl >= 0 && count(st, project).await? + extra > pl)
        || (ul >= 0 && count_by_user(st, project, user).await? + extra > ul))
}

fn non_negative(p: &[(String, String)], k: &str) -> ApiResult<Option<usize>> {
    match param(p, k) {
        None => Ok(None),
        Some(x) => x.parse::<usize>().map(Some).map_err(|_| {
            Fault::bad_request(format!(
                "Invalid input for query parameters {k}. Value: {x}. {x:?} does not match '^[0-9]*$'"
            ))
        }),
    }
}

pub(crate) async fn list(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Query(p): Params,
) -> ApiResult<Response> {
    require_read(&ctx, "os_compute_api:os-server-groups:index")?;
    if v.at_least(2, 75) {
        let int = json!({"type": "integer", "minimum": 0});
        let known = [
            ("all_projects", json!({"type": "string"})),
            ("limit", int.clone()),
            ("offset", int),
        ];
        crate::http::refuse_unknown_params(&p, &known)?;
    }
    let offset = non_negative(&p, "offset")?.unwrap_or(0);
    let limit = non_negative(&p, "limit")?
        .filter(|l| *l > 0)
        .unwrap_or(st.cfg.max_limit)
        .min(st.cfg.max_limit);
    let all = p.iter().any(|(k, _)| k == "all_projects") && ctx.is_admin();
    let mut groups = groups_of(&st, (!all).then_some(ctx.project_id.as_str())).await?;
    groups.sort_by_key(|g| *g.id());
    let page: Vec<InstanceGroup> = groups.into_iter().skip(offset).take(limit).collect();
    let members: Vec<String> = page
        .iter()
        .flat_map(|g| g.members().clone().unwrap_or_default())
        .collect();
    let live = live(&st, &members).await?;
    let list: Vec<Value> = page.iter().map(|g| view(v, g, &live)).collect();
    Ok(axum::Json(json!({ "server_groups": list })).into_response())
}

fn check_owner(ctx: &Ctx, g: &InstanceGroup, rule: &str) -> ApiResult<()> {
    if ctx.is_admin() || g.project_id().as_deref() == Some(ctx.project_id.as_str()) {
        Ok(())
    } else {
        Err(Fault::policy(rule))
    }
}

pub(crate) async fn show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_read(&ctx, "os_compute_api:os-server-groups:show")?;
    let g = get(&st, &id).await?;
    check_owner(&ctx, &g, "os_compute_api:os-server-groups:show")?;
    let live = live(&st, &g.members().clone().unwrap_or_default()).await?;
    Ok(axum::Json(json!({"server_group": view(v, &g, &live)})).into_response())
}

pub(crate) async fn delete(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_write(&ctx, "os_compute_api:os-server-groups:delete")?;
    let mut g = get(&st, &id).await?;
    check_owner(&ctx, &g, "os_compute_api:os-server-groups:delete")?;
    match st.objects.destroy(&admin_ctx(), &mut g).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => return Err(not_found(&id)),
        Err(e) => return Err(e.into()),
    }
    st.notifier
        .server_group(
            &ctx.rpc(),
            &g,
            "delete",
            json!({"server_group_id": g.uuid()}),
            &st.cfg.host,
        )
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn create(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    require_write(&ctx, "os_compute_api:os-server-groups:create")?;
    // The body first (nova's schema decorator), then the quota.
    let body = json_body(&body)?;
    schemas::check("server_group_create", v, || create_schema(v), &body)?;
    let over = || Fault::forbidden("Quota exceeded, too many server groups.");
    if groups_over(&st, &ctx, 1).await? {
        return Err(over());
    }
    let vals = &body["server_group"];
    let (policy, rules) = if v.at_least(2, 64) {
        let policy = vals["policy"].as_str().unwrap_or_default().to_owned();
        let rules: BTreeMap<String, String> = vals["rules"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, x)| {
                        let s = x
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| x.to_string());
                        (k.clone(), s)
                    })
                    .collect()
            })
            .unwrap_or_default();
        if policy != "anti-affinity" && !rules.is_empty() {
            return Err(Fault::bad_request(
                "Only anti-affinity policy supports rules.",
            ));
        }
        (policy, rules)
    } else {
        let p = vals["policies"][0].as_str().unwrap_or_default().to_owned();
        (p, BTreeMap::new())
    };
    let mut g = InstanceGroup::new()
        .with_uuid(uuid::Uuid::new_v4().to_string())
        .with_name(vals["name"].as_str().map(str::to_owned))
        .with_project_id(Some(ctx.project_id.clone()))
        .with_user_id(Some(ctx.user_id.clone()))
        .with_policy(Some(policy.clone()))
        .with_policies(Some(vec![policy]))
        .with_rules(rules)
        .with_members(Some(Vec::new()))
        .with_hosts(None)
        .with_deleted(false);
    st.objects.create(&admin_ctx(), &mut g).await?;
    // nova's `[quota] recheck_quota`: a racing create may have won the last slot.
    if groups_over(&st, &ctx, 0).await? {
        let _ = st.objects.destroy(&admin_ctx(), &mut g).await;
        return Err(over());
    }
    let mut legacy = json!({
        "name": g.name(), "project_id": g.project_id(), "user_id": g.user_id(),
        "policy": g.policy(), "policies": g.policies(), "uuid": g.uuid(),
        "server_group_id": g.uuid(),
    });
    if !g.rules().is_empty() {
        legacy["_rules"] = json!(g.rules());
    }
    st.notifier
        .server_group(&ctx.rpc(), &g, "create", legacy, &st.cfg.host)
        .await;
    let live = BTreeSet::new();
    Ok(axum::Json(json!({"server_group": view(v, &g, &live)})).into_response())
}

/// The group of a boot's `group` hint (400 when there is none such, as
/// nova's `InstanceGroupNotFound` on create), checked against the
/// `server_group_members` quota for `count` more of the user's servers.
pub(crate) async fn for_boot(
    st: &ApiState,
    ctx: &Ctx,
    hint: &str,
    count: i64,
) -> ApiResult<InstanceGroup> {
    let g = get(st, hint)
        .await
        .map_err(|f| Fault::bad_request(f.message))?;
    // As nova's project-scoped read: another project's group is not found.
    if !ctx.is_admin() && g.project_id().as_deref() != Some(ctx.project_id.as_str()) {
        return Err(Fault::bad_request(format!(
            "Instance group {hint} could not be found."
        )));
    }
    let limit = crate::quotas::limits(st, &ctx.project_id, &ctx.user_id)
        .await?
        .server_group_members;
    if limit >= 0 {
        let members = g.members().clone().unwrap_or_default();
        let mine = if members.is_empty() {
            0
        } else {
            let found: Vec<Instance> = st
                .objects
                .list(
                    &admin_ctx(),
                    &ListQuery::new()
                        .filter("uuid", json!(members))
                        .filter("user_id", ctx.user_id.as_str()),
                )
                .await?;
            found.len() as i64
        };
        if mine + count > limit {
            return Err(Fault::forbidden(
                "Quota exceeded, too many servers in group",
            ));
        }
    }
    Ok(g)
}

/// Adds `uuids` to the group's members (nova's `InstanceGroup.add_members`)
/// and sends `server_group.add_member`.
pub(crate) async fn add_members(
    st: &ApiState,
    ctx: &Ctx,
    mut g: InstanceGroup,
    uuids: &[String],
) -> ApiResult<InstanceGroup> {
    for _ in 0..RETRIES {
        let seen = g.obj_to_primitive()["nova_object.data"]["members"].clone();
        let mut members = g.members().clone().unwrap_or_default();
        members.extend(
            uuids
                .iter()
                .filter(|u| !members.contains(u))
                .cloned()
                .collect::<Vec<_>>(),
        );
        g.set_members(Some(members));
        let mut opts = SaveOptions::default();
        opts.expected.insert("members".to_owned(), vec![seen]);
        match st.objects.save_with(&admin_ctx(), &mut g, &opts).await {
            Ok(()) => {
                st.notifier
                    .server_group(
                        &ctx.rpc(),
                        &g,
                        "add_member",
                        json!({"server_group_id": g.uuid(), "instance_uuids": uuids}),
                        &st.cfg.host,
                    )
                    .await;
                return Ok(g);
            }
            Err(nova_objects::Error::UnexpectedTaskState { .. }) => {
                g = st
                    .objects
                    .get_by_uuid(&admin_ctx(), &g.uuid().clone())
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Fault::conflict(format!(
        "Server group {} is being changed by other requests; try again",
        g.uuid()
    )))
}

/// The groups instance `uuid` of `project` is a member of (the server
/// body's `server_groups`, 2.71): at most one, as in nova.
pub(crate) async fn of_instance(
    st: &ApiState,
    project: &str,
    uuid: &str,
) -> ApiResult<Vec<String>> {
    Ok(groups_of(st, Some(project))
        .await?
        .into_iter()
        .filter(|g| {
            g.members()
                .as_ref()
                .is_some_and(|m| m.iter().any(|x| x == uuid))
        })
        .map(|g| g.uuid().clone())
        .take(1)
        .collect())
}
