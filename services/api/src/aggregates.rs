//! `/os-aggregates` (admins): list, create, show, update, delete and the
//! actions `add_host`, `remove_host`, `set_metadata`, with nova's rules
//! (one availability zone per host, no empty zone name, a zone change
//! refused while its hosts have instances, only an empty aggregate
//! deleted), the compute node providers' Placement aggregates mirrored
//! as nova's `AggregateAPI` does, and `aggregate.*` notifications.
//!
//! Hosts and metadata live in the aggregate row (JSON); every change of
//! them is a compare-and-swap of what was read, redone when another
//! request changed them meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use nova_objects::{Aggregate, ComputeNode, Instance, ListQuery, Lookup, SaveOptions, Service};
use nova_scheduler::placement::PlacementError;
use nova_service::notifications::{AggregateAction, Phase};
use serde_json::{Value, json};

use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::{admin_ctx, json_body, require_admin};
use crate::microversion::ApiVersion;
use crate::{ApiState, schemas, views};

type St = State<Arc<ApiState>>;

/// How often a change redoes its read when other requests keep winning.
const RETRIES: usize = 10;

const AZ: &str = "availability_zone";

fn name_schema() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^\\S([\\s\\S]*\\S)?$"})
}

fn az_schema() -> Value {
    json!({"oneOf": [{"type": "string", "minLength": 1, "maxLength": 255,
                      "pattern": "^[^:]*$"}, {"type": "null"}]})
}

pub(crate) fn create_schema() -> Value {
    json!({"type": "object", "properties": {"aggregate": {"type": "object", "properties": {
        "name": name_schema(), "availability_zone": az_schema()},
        "required": ["name"], "additionalProperties": false}},
        "required": ["aggregate"], "additionalProperties": false})
}

pub(crate) fn update_schema() -> Value {
    json!({"type": "object", "properties": {"aggregate": {"type": "object", "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
        "availability_zone": az_schema()},
        "additionalProperties": false,
        "anyOf": [{"required": ["name"]}, {"required": ["availability_zone"]}]}},
        "required": ["aggregate"], "additionalProperties": false})
}

pub(crate) fn host_schema(action: &str) -> Value {
    json!({"type": "object", "properties": {action: {"type": "object", "properties": {
        "host": {"type": "string", "minLength": 1, "maxLength": 255,
                 "pattern": "^[a-zA-Z0-9-._]*$"}},
        "required": ["host"], "additionalProperties": false}},
        "required": [action], "additionalProperties": false})
}

pub(crate) fn metadata_schema() -> Value {
    json!({"type": "object", "properties": {"set_metadata": {"type": "object", "properties": {
        "metadata": {"type": "object",
            "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": ["string", "null"], "maxLength": 255}},
            "additionalProperties": false}},
        "required": ["metadata"], "additionalProperties": false}},
        "required": ["set_metadata"], "additionalProperties": false})
}

/// nova's `validate_integer(id, 'id')`.
fn parse_id(id: &str) -> ApiResult<i64> {
    id.trim()
        .parse()
        .map_err(|_| Fault::bad_request("Invalid input received: id must be an integer"))
}

/// The aggregate's view (`uuid` from 2.41; `create` leaves out hosts
/// and metadata as nova does).
fn view(v: ApiVersion, a: &Aggregate, brief: bool) -> Value {
    let meta = a.metadata().clone().unwrap_or_default();
    let mut out = json!({
        "id": a.id(), "name": a.name(),
        "availability_zone": meta.get(AZ),
        "created_at": views::usage_time(a.created_at()),
        "updated_at": views::usage_time(a.updated_at()),
        "deleted_at": views::usage_time(a.deleted_at()),
        "deleted": a.deleted(),
    });
    if !brief {
        out["hosts"] = json!(a.hosts().clone().unwrap_or_default());
        out["metadata"] = json!(meta);
    }
    if v.at_least(2, 41) {
        out["uuid"] = json!(a.uuid());
    }
    out
}

fn reply(v: ApiVersion, a: &Aggregate) -> Response {
    axum::Json(json!({"aggregate": view(v, a, false)})).into_response()
}

fn az_of(a: &Aggregate) -> Option<&String> {
    a.metadata().as_ref().and_then(|m| m.get(AZ))
}

async fn all(st: &ApiState) -> ApiResult<Vec<Aggregate>> {
    Ok(st.objects.list(&admin_ctx(), &ListQuery::new()).await?)
}

async fn get(st: &ApiState, id: i64) -> ApiResult<Aggregate> {
    match st
        .objects
        .get::<Aggregate>(&admin_ctx(), Lookup::field("id", id))
        .await
    {
        Ok(a) => Ok(a),
        Err(e) if e.is_not_found() => Err(Fault::not_found(format!(
            "Aggregate {id} could not be found."
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The host's `nova-compute` service (nova's `_get_service_in_cell_by_host`;
/// 404 `ComputeHostNotFound`).
async fn compute_service(st: &ApiState, host: &str) -> ApiResult<Service> {
    let found: Vec<Service> = st
        .objects
        .list(
            &admin_ctx(),
            &ListQuery::new()
                .filter("host", host)
                .filter("binary", "nova-compute"),
        )
        .await?;
    found
        .into_iter()
        .find(|s| s.host().as_deref() == Some(host))
        .ok_or_else(|| Fault::not_found(format!("Compute host {host} could not be found.")))
}

async fn instances_on(st: &ApiState, hosts: &[String]) -> ApiResult<usize> {
    if hosts.is_empty() {
        return Ok(0);
    }
    let found: Vec<Instance> = st
        .objects
        .list(&admin_ctx(), &ListQuery::new().filter("host", json!(hosts)))
        .await?;
    Ok(found.len())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Act {
    Add,
    Update,
    UpdateMeta,
    Delete,
}

/// nova's `InvalidAggregateAction*`: 400, except from `add_host` and
/// `remove_host`, which answer 409.
fn invalid(act: Act, id: i64, reason: &str) -> Fault {
    let what = match act {
        Act::Add => format!("Cannot add host to aggregate {id}"),
        Act::Update => format!("Cannot update aggregate {id}"),
        Act::UpdateMeta => format!("Cannot update metadata of aggregate {id}"),
        Act::Delete => format!("Cannot remove host from aggregate {id}"),
    };
    let message = format!("{what}. Reason: {reason}.");
    match act {
        Act::Add => Fault::conflict(message),
        _ => Fault::bad_request(message),
    }
}

/// nova's `is_safe_to_update_az`: a zone name is never empty, a host is
/// in one zone only, and (`check_instances`) a zone does not change under
/// instances.
async fn safe_az(
    st: &ApiState,
    metadata: &BTreeMap<String, Option<String>>,
    agg: &Aggregate,
    hosts: Option<&[String]>,
    act: Act,
    check_instances: bool,
) -> ApiResult<()> {
    let Some(new) = metadata.get(AZ) else {
        return Ok(());
    };
    let Some(new) = new.as_deref().filter(|z| !z.is_empty()) else {
        return Err(invalid(
            act,
            *agg.id(),
            &format!(
                "Aggregate {} does not support empty named availability zone",
                agg.name()
            ),
        ));
    };
    let own = agg.hosts().clone().unwrap_or_default();
    let hosts: Vec<String> = hosts.map(<[String]>::to_vec).unwrap_or(own);
    let conflicting: Vec<String> = all(st)
        .await?
        .iter()
        .filter(|a| a.id() != agg.id())
        .filter(|a| {
            a.hosts()
                .as_ref()
                .is_some_and(|h| h.iter().any(|x| hosts.contains(x)))
        })
        .filter_map(|a| az_of(a).filter(|z| z.as_str() != new).cloned())
        .collect();
    if !conflicting.is_empty() {
        return Err(invalid(
            act,
            *agg.id(),
            &format!("One or more hosts already in availability zone(s) {conflicting:?}"),
        ));
    }
    if check_instances
        && az_of(agg).map(String::as_str) != Some(new)
        && instances_on(st, &hosts).await? > 0
    {
        return Err(invalid(
            act,
            *agg.id(),
            "One or more hosts contain instances in this zone",
        ));
    }
    Ok(())
}

/// nova's `ensure_no_instances_need_to_move_az_when_host_{added,removed}`.
async fn zone_move_check(
    st: &ApiState,
    agg: &Aggregate,
    host: &str,
    adding: bool,
) -> ApiResult<()> {
    let n = instances_on(st, &[host.to_owned()]).await?;
    if n == 0 {
        return Ok(());
    }
    let Some(this_az) = az_of(agg).cloned() else {
        return Ok(());
    };
    let others: BTreeSet<String> = all(st)
        .await?
        .iter()
        .filter(|a| a.id() != agg.id())
        .filter(|a| {
            a.hosts()
                .as_ref()
                .is_some_and(|h| h.iter().any(|x| x == host))
        })
        .filter_map(|a| az_of(a).cloned())
        .collect();
    let other = others.into_iter().next();
    let (from, to, act) = if adding {
        (other, Some(this_az), Act::Add)
    } else {
        (Some(this_az), other, Act::Delete)
    };
    if from == to {
        return Ok(());
    }
    let show = |z: &Option<String>| z.clone().unwrap_or_else(|| "None".into());
    let verb = if adding { "added to" } else { "removed from" };
    Err(invalid(
        act,
        *agg.id(),
        &format!(
            "The host cannot be {verb} the aggregate as the availability zone of the host would change from '{}' to '{}' but the host already has {n} instance(s). Changing the AZ of an existing instance is not supported by this action. Move the instances away from this host then try again. If you need to move the instances between AZs then you can use shelve_offload and unshelve to achieve this.",
            show(&from),
            show(&to)
        ),
    ))
    .map_err(|f| Fault::conflict(f.message))
}

/// Saves the aggregate with `field` compared to `seen`; `false` when
/// another request changed it meanwhile.
async fn save_cas(st: &ApiState, agg: &mut Aggregate, field: &str, seen: Value) -> ApiResult<bool> {
    let mut opts = SaveOptions::default();
    opts.expected.insert(field.to_owned(), vec![seen]);
    match st.objects.save_with(&admin_ctx(), agg, &opts).await {
        Ok(()) => Ok(true),
        Err(nova_objects::Error::UnexpectedTaskState { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn field_of(agg: &Aggregate, field: &str) -> Value {
    use nova_objects::VersionedObject;
    agg.obj_to_primitive()["nova_object.data"][field].clone()
}

/// Applies metadata updates (`None` deletes a key) with a
/// compare-and-swap, as nova's `Aggregate.update_metadata`.
async fn update_metadata(
    st: &ApiState,
    mut agg: Aggregate,
    updates: &BTreeMap<String, Option<String>>,
) -> ApiResult<Aggregate> {
    for _ in 0..RETRIES {
        let seen = field_of(&agg, "metadata");
        let mut m = agg.metadata().clone().unwrap_or_default();
        for (k, v) in updates {
            match v {
                Some(v) => {
                    m.insert(k.clone(), v.clone());
                }
                None => {
                    m.remove(k);
                }
            }
        }
        agg.set_metadata(Some(m));
        if save_cas(st, &mut agg, "metadata", seen).await? {
            return Ok(agg);
        }
        agg = get(st, *agg.id()).await?;
    }
    Err(Fault::conflict(format!(
        "Aggregate {} is being changed by other requests; try again",
        agg.id()
    )))
}

/// The provider uuids of the host's compute nodes.
async fn node_providers(st: &ApiState, host: &str) -> ApiResult<Vec<String>> {
    let nodes: Vec<ComputeNode> = st
        .objects
        .list(&admin_ctx(), &ListQuery::new().filter("host", host))
        .await?;
    Ok(nodes.iter().map(|n| n.uuid().clone()).collect())
}

/// Adds (or removes) `agg_uuid` to the Placement aggregates of provider
/// `rp`, retrying on generation conflicts.
async fn mirror(st: &ApiState, rp: &str, agg_uuid: &str, add: bool) -> Result<(), PlacementError> {
    for _ in 0..RETRIES {
        let (generation, mut have) = st.placement.aggregates_async(rp).await?;
        let changed = if add {
            have.insert(agg_uuid.to_owned())
        } else {
            have.remove(agg_uuid)
        };
        if !changed {
            return Ok(());
        }
        match st
            .placement
            .set_aggregates_async(rp, generation, &have)
            .await
        {
            Ok(_) => return Ok(()),
            Err(PlacementError::ConcurrentUpdate(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(PlacementError::ConcurrentUpdate(format!(
        "resource provider {rp}: aggregates changed by other writers"
    )))
}

async fn notify(
    st: &ApiState,
    ctx: &Ctx,
    agg: &Aggregate,
    act: AggregateAction,
    phase: Phase,
    legacy: Value,
) {
    st.notifier
        .aggregate(&ctx.rpc(), agg, act, phase, legacy, &st.cfg.host)
        .await;
}

pub(crate) async fn list(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-aggregates:index")?;
    let list: Vec<Value> = all(&st).await?.iter().map(|a| view(v, a, false)).collect();
    Ok(axum::Json(json!({ "aggregates": list })).into_response())
}

pub(crate) async fn create(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-aggregates:create")?;
    let body = json_body(&body)?;
    schemas::check("aggregate_create", v, create_schema, &body)?;
    let name = body["aggregate"]["name"]
        .as_str()
        .unwrap_or_default()
        .trim();
    let zone = body["aggregate"][AZ]
        .as_str()
        .map(str::trim)
        .filter(|z| !z.is_empty());
    let mut agg = Aggregate::new()
        .with_uuid(uuid::Uuid::new_v4().to_string())
        .with_name(name.to_owned())
        .with_hosts(Some(Vec::new()))
        .with_metadata(Some(
            zone.map(|z| BTreeMap::from([(AZ.to_owned(), z.to_owned())]))
                .unwrap_or_default(),
        ))
        .with_deleted(false);
    let mut legacy = json!({"name": name});
    if let Some(z) = zone {
        legacy["meta_data"] = json!({ AZ: z });
    }
    notify(
        &st,
        &ctx,
        &agg,
        AggregateAction::Create,
        Phase::Start,
        legacy.clone(),
    )
    .await;
    match st.objects.create(&admin_ctx(), &mut agg).await {
        Ok(()) => {}
        Err(nova_objects::Error::Exists { .. }) => {
            return Err(Fault::conflict(format!("Aggregate {name} already exists.")));
        }
        Err(e) => return Err(e.into()),
    }
    legacy["aggregate_id"] = json!(agg.id());
    notify(&st, &ctx, &agg, AggregateAction::Create, Phase::End, legacy).await;
    Ok(axum::Json(json!({"aggregate": view(v, &agg, true)})).into_response())
}

pub(crate) async fn show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-aggregates:show")?;
    let agg = get(&st, parse_id(&id)?).await?;
    Ok(reply(v, &agg))
}

pub(crate) async fn update(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-aggregates:update")?;
    let body = json_body(&body)?;
    schemas::check("aggregate_update", v, update_schema, &body)?;
    let id = parse_id(&id)?;
    let mut agg = get(&st, id).await?;
    let u = &body["aggregate"];
    let mut meta: BTreeMap<String, Option<String>> = BTreeMap::new();
    if let Some(z) = u.get(AZ) {
        meta.insert(AZ.to_owned(), z.as_str().map(|s| s.trim().to_owned()));
    }
    // Checked before anything is written (nova saves the name first).
    safe_az(&st, &meta, &agg, None, Act::Update, true).await?;
    if let Some(name) = u["name"].as_str() {
        let name = name.trim().to_owned();
        let legacy = json!({"aggregate_id": id});
        notify(
            &st,
            &ctx,
            &agg,
            AggregateAction::UpdateProp,
            Phase::Start,
            legacy.clone(),
        )
        .await;
        agg.set_name(name.clone());
        match st.objects.save(&admin_ctx(), &mut agg).await {
            Ok(()) => {}
            Err(nova_objects::Error::Exists { .. }) => {
                return Err(Fault::conflict(format!("Aggregate {name} already exists.")));
            }
            Err(e) => return Err(e.into()),
        }
        notify(
            &st,
            &ctx,
            &agg,
            AggregateAction::UpdateProp,
            Phase::End,
            legacy,
        )
        .await;
    }
    if !meta.is_empty() {
        agg = set_meta(&st, &ctx, agg, &meta).await?;
    }
    Ok(reply(v, &agg))
}

async fn set_meta(
    st: &ApiState,
    ctx: &Ctx,
    agg: Aggregate,
    meta: &BTreeMap<String, Option<String>>,
) -> ApiResult<Aggregate> {
    let legacy = json!({"aggregate_id": agg.id(), "meta_data": meta});
    notify(
        st,
        ctx,
        &agg,
        AggregateAction::UpdateMetadata,
        Phase::Start,
        legacy.clone(),
    )
    .await;
    let agg = update_metadata(st, agg, meta).await?;
    notify(
        st,
        ctx,
        &agg,
        AggregateAction::UpdateMetadata,
        Phase::End,
        legacy,
    )
    .await;
    Ok(agg)
}

pub(crate) async fn delete(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-aggregates:delete")?;
    let id = parse_id(&id)?;
    let mut agg = get(&st, id).await?;
    let legacy = json!({ "aggregate_id": id });
    notify(
        &st,
        &ctx,
        &agg,
        AggregateAction::Delete,
        Phase::Start,
        legacy.clone(),
    )
    .await;
    if !agg.hosts().clone().unwrap_or_default().is_empty() {
        return Err(invalid(Act::Delete, id, "Host aggregate is not empty"));
    }
    // Only while still empty: a host added meanwhile keeps it.
    let seen = field_of(&agg, "hosts");
    let mut opts = SaveOptions::default();
    opts.expected.insert("hosts".to_owned(), vec![seen]);
    let mut probe = agg.clone();
    use nova_objects::VersionedObject;
    probe.obj_reset_changes();
    probe.set_hosts(Some(Vec::new()));
    match st.objects.save_with(&admin_ctx(), &mut probe, &opts).await {
        Ok(()) => {}
        Err(nova_objects::Error::UnexpectedTaskState { .. }) => {
            return Err(invalid(Act::Delete, id, "Host aggregate is not empty"));
        }
        Err(e) => return Err(e.into()),
    }
    st.objects.destroy(&admin_ctx(), &mut agg).await?;
    notify(&st, &ctx, &agg, AggregateAction::Delete, Phase::End, legacy).await;
    Ok(axum::http::StatusCode::OK.into_response())
}

pub(crate) async fn action(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let Some(name) = body.as_object().and_then(|o| o.keys().next().cloned()) else {
        return Err(Fault::bad_request("Malformed request body"));
    };
    match name.as_str() {
        "add_host" => {
            require_admin(&ctx, "os_compute_api:os-aggregates:add_host")?;
            schemas::check("aggregate_add_host", v, || host_schema("add_host"), &body)?;
            let id = parse_id(&id)?;
            let host = body["add_host"]["host"].as_str().unwrap_or_default();
            add_host(&st, &ctx, v, id, host).await
        }
        "remove_host" => {
            require_admin(&ctx, "os_compute_api:os-aggregates:remove_host")?;
            schemas::check(
                "aggregate_remove_host",
                v,
                || host_schema("remove_host"),
                &body,
            )?;
            let id = parse_id(&id)?;
            let host = body["remove_host"]["host"].as_str().unwrap_or_default();
            remove_host(&st, &ctx, v, id, host).await
        }
        "set_metadata" => {
            require_admin(&ctx, "os_compute_api:os-aggregates:set_metadata")?;
            schemas::check("aggregate_set_metadata", v, metadata_schema, &body)?;
            let id = parse_id(&id)?;
            let meta: BTreeMap<String, Option<String>> = body["set_metadata"]["metadata"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned)))
                        .collect()
                })
                .unwrap_or_default();
            let agg = get(&st, id).await?;
            safe_az(&st, &meta, &agg, None, Act::UpdateMeta, true).await?;
            let agg = set_meta(&st, &ctx, agg, &meta).await?;
            Ok(reply(v, &agg))
        }
        other => Err(Fault::bad_request(format!(
            "There is no such action: {other}"
        ))),
    }
}

async fn add_host(
    st: &ApiState,
    ctx: &Ctx,
    v: ApiVersion,
    id: i64,
    host: &str,
) -> ApiResult<Response> {
    let legacy = json!({"aggregate_id": id, "host_name": host});
    compute_service(st, host).await?;
    let mut agg = get(st, id).await?;
    notify(
        st,
        ctx,
        &agg,
        AggregateAction::AddHost,
        Phase::Start,
        legacy.clone(),
    )
    .await;
    for attempt in 0..=RETRIES {
        if attempt == RETRIES {
            return Err(Fault::conflict(format!(
                "Aggregate {id} is being changed by other requests; try again"
            )));
        }
        let meta: BTreeMap<String, Option<String>> = agg
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        safe_az(st, &meta, &agg, Some(&[host.to_owned()]), Act::Add, false).await?;
        zone_move_check(st, &agg, host, true).await?;
        let seen = field_of(&agg, "hosts");
        let mut hosts = agg.hosts().clone().unwrap_or_default();
        if hosts.iter().any(|h| h == host) {
            return Err(Fault::conflict(format!(
                "Aggregate {id} already has host {host}."
            )));
        }
        hosts.push(host.to_owned());
        agg.set_hosts(Some(hosts));
        if save_cas(st, &mut agg, "hosts", seen).await? {
            break;
        }
        agg = get(st, id).await?;
    }
    for rp in node_providers(st, host).await? {
        if let Err(e) = mirror(st, &rp, agg.uuid(), true).await {
            // As nova: logged, `nova-manage placement sync_aggregates` repairs it.
            tracing::warn!(provider = %rp, error = %e, "Failed to associate the compute node with a placement aggregate; nova-manage placement sync_aggregates may correct this");
        }
    }
    let mut legacy = legacy;
    legacy["name"] = json!(agg.name());
    notify(st, ctx, &agg, AggregateAction::AddHost, Phase::End, legacy).await;
    Ok(reply(v, &agg))
}

async fn remove_host(
    st: &ApiState,
    ctx: &Ctx,
    v: ApiVersion,
    id: i64,
    host: &str,
) -> ApiResult<Response> {
    let legacy = json!({"aggregate_id": id, "host_name": host});
    let cannot = || Fault::not_found(format!("Cannot remove host {host} in aggregate {id}"));
    compute_service(st, host).await.map_err(|_| cannot())?;
    let mut agg = get(st, id).await.map_err(|_| cannot())?;
    notify(
        st,
        ctx,
        &agg,
        AggregateAction::RemoveHost,
        Phase::Start,
        legacy.clone(),
    )
    .await;
    if !agg
        .hosts()
        .clone()
        .unwrap_or_default()
        .iter()
        .any(|h| h == host)
    {
        return Err(cannot());
    }
    zone_move_check(st, &agg, host, false).await?;
    // Placement first, as nova: a failure there can be retried from the API.
    for rp in node_providers(st, host).await? {
        match mirror(st, &rp, agg.uuid(), false).await {
            Ok(()) | Err(PlacementError::NotFound(_)) => {}
            Err(PlacementError::ConcurrentUpdate(m)) => return Err(Fault::conflict(m)),
            Err(e) => return Err(Fault::internal(e)),
        }
    }
    for attempt in 0..=RETRIES {
        if attempt == RETRIES {
            return Err(Fault::conflict(format!(
                "Aggregate {id} is being changed by other requests; try again"
            )));
        }
        let seen = field_of(&agg, "hosts");
        let mut hosts = agg.hosts().clone().unwrap_or_default();
        let before = hosts.len();
        hosts.retain(|h| h != host);
        if hosts.len() == before {
            return Err(cannot());
        }
        agg.set_hosts(Some(hosts));
        if save_cas(st, &mut agg, "hosts", seen).await? {
            break;
        }
        agg = get(st, id).await?;
    }
    notify(
        st,
        ctx,
        &agg,
        AggregateAction::RemoveHost,
        Phase::End,
        legacy,
    )
    .await;
    Ok(reply(v, &agg))
}
