//! Admin and project-wide views: os-hypervisors, os-services (list,
//! enable/disable, forced down, delete), os-availability-zone, limits and
//! quota sets.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nova_objects::{Aggregate, ComputeNode, Instance, ListQuery, Service};
use nova_service::notifications::ServiceAction;
use serde_json::{Value, json};

use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::{admin_ctx, json_body, require_admin};
use crate::microversion::ApiVersion;
use crate::{ApiState, schemas, views};

type St = State<Arc<ApiState>>;
type Params = Query<Vec<(String, String)>>;

pub(crate) fn is_up(st: &ApiState, s: &Service) -> bool {
    nova_service::is_up(s, st.cfg.service_down_time, chrono::Utc::now())
}

pub(crate) async fn services_all(st: &ApiState) -> ApiResult<Vec<Service>> {
    Ok(st.objects.list(&admin_ctx(), &ListQuery::new()).await?)
}

pub(crate) async fn host_zones(st: &ApiState) -> ApiResult<BTreeMap<String, String>> {
    let aggs: Vec<Aggregate> = st.objects.list(&admin_ctx(), &ListQuery::new()).await?;
    let mut out = BTreeMap::new();
    for a in aggs {
        if let Some(z) = a
            .metadata()
            .as_ref()
            .and_then(|m| m.get("availability_zone"))
        {
            for h in a.hosts().clone().unwrap_or_default() {
                out.insert(h, z.clone());
            }
        }
    }
    Ok(out)
}

/// What a hypervisor's view shows of it beyond its compute node: its
/// service (the `state` and `status`), its uptime (detail from 2.88) and
/// its servers (`with_servers`, from 2.53).
#[derive(Default)]
pub(crate) struct HypervisorExtras<'a> {
    pub(crate) svc: Option<&'a Service>,
    pub(crate) uptime: Option<String>,
    /// `None`: not asked for; `Some` (even empty from 2.75): listed.
    pub(crate) servers: Option<Vec<Value>>,
}

pub(crate) fn hypervisor_view(
    st: &ApiState,
    v: ApiVersion,
    cn: &ComputeNode,
    extras: HypervisorExtras<'_>,
    detail: bool,
) -> Value {
    let svc = extras.svc;
    let id = if v.at_least(2, 53) {
        json!(cn.uuid())
    } else {
        json!(cn.id())
    };
    let state = if svc.is_some_and(|s| is_up(st, s)) {
        "up"
    } else {
        "down"
    };
    let status = if svc.is_some_and(|s| *s.disabled()) {
        "disabled"
    } else {
        "enabled"
    };
    let mut out = json!({"id": id, "hypervisor_hostname": cn.hypervisor_hostname(), "state": state, "status": status});
    if detail {
        out["host_ip"] = json!(cn.host_ip());
        out["hypervisor_type"] = json!(cn.hypervisor_type());
        out["hypervisor_version"] = json!(cn.hypervisor_version());
        let sid = svc.map(|s| {
            if v.at_least(2, 53) {
                json!(s.uuid())
            } else {
                json!(s.id())
            }
        });
        out["service"] = json!({"host": cn.host(), "id": sid, "disabled_reason": svc.and_then(|s| s.disabled_reason().clone())});
        if v.at_least(2, 88) {
            out["uptime"] = json!(extras.uptime);
        } else {
            out["vcpus"] = json!(cn.vcpus());
            out["memory_mb"] = json!(cn.memory_mb());
            out["local_gb"] = json!(cn.local_gb());
            out["vcpus_used"] = json!(cn.vcpus_used());
            out["memory_mb_used"] = json!(cn.memory_mb_used());
            out["local_gb_used"] = json!(cn.local_gb_used());
            out["free_ram_mb"] = json!(cn.free_ram_mb());
            out["free_disk_gb"] = json!(cn.free_disk_gb());
            out["current_workload"] = json!(cn.current_workload().unwrap_or(0));
            out["running_vms"] = json!(cn.running_vms().unwrap_or(0));
            out["disk_available_least"] = json!(cn.disk_available_least());
            // A JSON object since 2.28 (empty without one), its text before.
            out["cpu_info"] = if v.at_least(2, 28) {
                cn.cpu_info()
                    .as_deref()
                    .filter(|t| !t.is_empty())
                    .and_then(|t| serde_json::from_str::<Value>(t).ok())
                    .unwrap_or_else(|| json!({}))
            } else {
                json!(cn.cpu_info())
            };
        }
    }
    match extras.servers {
        Some(list) if !list.is_empty() => out["servers"] = json!(list),
        Some(_) if v.at_least(2, 75) => out["servers"] = json!([]),
        _ => {}
    }
    out
}

/// The servers on `host` as a hypervisor's view lists them (`name` is the
/// instance's name on the hypervisor).
pub(crate) async fn servers_on(st: &ApiState, host: &str) -> ApiResult<Vec<Value>> {
    let instances: Vec<Instance> = st
        .objects
        .list(&admin_ctx(), &ListQuery::new().filter("host", host))
        .await?;
    Ok(instances
        .iter()
        .map(|i| json!({"name": format!("instance-{:08x}", i.id()), "uuid": i.uuid()}))
        .collect())
}

/// The uptime a compute reported in its node's `stats` (nova 34's
/// resource tracker keeps an `uptime` key there; `None` inside: the driver
/// does not tell), if it reported one.
fn reported_uptime(cn: &ComputeNode) -> Option<Option<String>> {
    cn.stats().as_ref()?.get("uptime").cloned()
}

/// The uptime line of a node for a 2.88 detail view, as nova's view finds
/// it: the one its compute reported in `stats`, else (the show only: one
/// call, where a list would make one per node) `get_host_uptime` on its
/// compute when the service is up, bounded so that a compute that does not
/// answer costs the caller seconds, not the RPC timeout. `None`: unknown.
async fn uptime_of(
    st: &ApiState,
    ctx: &Ctx,
    cn: &ComputeNode,
    svc: &Service,
    ask: bool,
) -> Option<String> {
    if let Some(reported) = reported_uptime(cn) {
        return reported;
    }
    if !ask || !is_up(st, svc) {
        return None;
    }
    let host = cn.host().clone().unwrap_or_default();
    let call = crate::compute_api::host_ops::uptime(st, ctx, &host);
    match tokio::time::timeout(std::time::Duration::from_secs(5), call).await {
        Ok(Ok(up)) => Some(up),
        _ => None,
    }
}

/// The query parameters `GET /os-hypervisors[/detail]` reads at `v`:
/// `limit` and `marker` from 2.33, `hypervisor_hostname_pattern` and
/// `with_servers` from 2.53 (where no other is accepted).
pub(crate) fn hypervisor_query_params(v: ApiVersion) -> Vec<crate::http::QueryParam> {
    let mut all = vec![];
    if v.at_least(2, 33) {
        all.extend(crate::http::paging_params());
    }
    if v.at_least(2, 53) {
        all.push((
            "hypervisor_hostname_pattern",
            json!({"type": "string", "pattern": "^[a-zA-Z0-9-._]*$", "minLength": 1, "maxLength": 255}),
        ));
        all.extend(hypervisor_show_params(v));
    }
    all
}

/// The query parameters `GET /os-hypervisors/{id}` reads at `v`:
/// `with_servers` from 2.53 (where no other is accepted).
pub(crate) fn hypervisor_show_params(v: ApiVersion) -> Vec<crate::http::QueryParam> {
    if v.at_least(2, 53) {
        vec![("with_servers", schemas::boolean())]
    } else {
        vec![]
    }
}

/// `with_servers` (oslo's strict boolean; 400 for anything else).
fn with_servers(p: &[(String, String)]) -> ApiResult<bool> {
    match crate::http::param(p, "with_servers") {
        None => Ok(false),
        Some(s) => crate::http::truthy(s).ok_or_else(|| {
            Fault::bad_request(format!(
                "Invalid input for query parameters with_servers. Value: {s}. '{s}' is not one of the allowed values"
            ))
        }),
    }
}

/// The hypervisors' query at `v` from `p`: from 2.53 only the documented
/// parameters, each once; before, the others are ignored.
fn hypervisor_query(
    v: ApiVersion,
    p: &[(String, String)],
    known: &[crate::http::QueryParam],
) -> ApiResult<Vec<(String, String)>> {
    if v.at_least(2, 53) {
        crate::http::refuse_unknown_params(p, known)?;
    }
    Ok(crate::http::read_only(p.to_vec(), known))
}

async fn hypervisor_list(
    st: &ApiState,
    ctx: &Ctx,
    v: ApiVersion,
    p: &[(String, String)],
    detail: bool,
) -> ApiResult<Value> {
    let rule = if detail { "list-detail" } else { "list" };
    require_admin(ctx, &format!("os_compute_api:os-hypervisors:{rule}"))?;
    let p = hypervisor_query(v, p, &hypervisor_query_params(v))?;
    let get = |k: &str| crate::http::param(&p, k);
    let pattern = get("hypervisor_hostname_pattern");
    let with_servers = with_servers(&p)?;
    let paged = v.at_least(2, 33);
    if pattern.is_some() && (get("limit").is_some() || get("marker").is_some()) {
        return Err(Fault::bad_request(
            "Paging over hypervisors with the hypervisor_hostname_pattern query parameter is not supported.",
        ));
    }
    let mut nodes: Vec<ComputeNode> = st.objects.list(&admin_ctx(), &ListQuery::new()).await?;
    nodes.sort_by_key(|n| *n.id());
    let services = services_all(st).await?;
    let by_host: BTreeMap<String, &Service> = services
        .iter()
        .filter(|s| s.binary().as_deref() == Some("nova-compute"))
        .filter_map(|s| s.host().clone().map(|h| (h, s)))
        .collect();
    // As nova, a node whose service is gone is left out of the list.
    nodes.retain(|n| n.host().as_ref().is_some_and(|h| by_host.contains_key(h)));
    let mut next = None;
    if let Some(pat) = pattern {
        nodes.retain(|n| {
            n.hypervisor_hostname()
                .as_deref()
                .unwrap_or("")
                .contains(pat)
        });
        if nodes.is_empty() {
            return Err(Fault::not_found(format!(
                "No hypervisor matching '{pat}' could be found."
            )));
        }
    } else if paged {
        let path = if detail {
            "os-hypervisors/detail"
        } else {
            "os-hypervisors"
        };
        // Paged by `id` as the list shows it (the uuid from 2.53).
        let mut keyed: Vec<(String, ComputeNode)> = nodes
            .into_iter()
            .map(|n| {
                let key = if v.at_least(2, 53) {
                    n.uuid().clone()
                } else {
                    n.id().to_string()
                };
                (key, n)
            })
            .collect();
        next = crate::http::paginate(
            st,
            &mut keyed,
            get("marker"),
            get("limit"),
            path,
            |(key, _)| key.as_str(),
        )?;
        nodes = keyed.into_iter().map(|(_, n)| n).collect();
    }
    let mut list = Vec::with_capacity(nodes.len());
    for n in &nodes {
        let host = n.host().clone().unwrap_or_default();
        let svc = by_host.get(&host).copied();
        let servers = if with_servers {
            Some(servers_on(st, &host).await?)
        } else {
            None
        };
        let uptime = match svc {
            Some(s) if detail && v.at_least(2, 88) => uptime_of(st, ctx, n, s, false).await,
            _ => None,
        };
        list.push(hypervisor_view(
            st,
            v,
            n,
            HypervisorExtras {
                svc,
                uptime,
                servers,
            },
            detail,
        ));
    }
    Ok(crate::http::with_links(
        json!({"hypervisors": list}),
        "hypervisors",
        next,
    ))
}

pub(crate) async fn hypervisors(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Query(p): Params,
) -> ApiResult<Response> {
    Ok(axum::Json(hypervisor_list(&st, &ctx, v, &p, false).await?).into_response())
}

pub(crate) async fn hypervisors_detail(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Query(p): Params,
) -> ApiResult<Response> {
    Ok(axum::Json(hypervisor_list(&st, &ctx, v, &p, true).await?).into_response())
}

pub(crate) async fn hypervisor(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    Query(p): Params,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-hypervisors:show")?;
    let p = hypervisor_query(v, &p, &hypervisor_show_params(v))?;
    let with_servers = with_servers(&p)?;
    let not_found = || Fault::not_found(format!("Hypervisor with ID '{id}' could not be found."));
    if v.at_least(2, 53) {
        if uuid::Uuid::parse_str(&id).is_err() {
            return Err(Fault::bad_request(format!("Invalid uuid {id}")));
        }
    } else if id.parse::<i64>().is_err() {
        return Err(not_found());
    }
    let nodes: Vec<ComputeNode> = st.objects.list(&admin_ctx(), &ListQuery::new()).await?;
    let Some(n) = nodes.iter().find(|n| {
        if v.at_least(2, 53) {
            *n.uuid() == id
        } else {
            n.id().to_string() == id
        }
    }) else {
        return Err(not_found());
    };
    let host = n.host().clone().unwrap_or_default();
    let services = services_all(&st).await?;
    let svc = services
        .iter()
        .find(|s| s.binary().as_deref() == Some("nova-compute") && s.host() == n.host())
        .ok_or_else(not_found)?;
    let servers = if with_servers {
        Some(servers_on(&st, &host).await?)
    } else {
        None
    };
    let uptime = if v.at_least(2, 88) {
        uptime_of(&st, &ctx, n, svc, true).await
    } else {
        None
    };
    let extras = HypervisorExtras {
        svc: Some(svc),
        uptime,
        servers,
    };
    Ok(axum::Json(json!({"hypervisor": hypervisor_view(&st, v, n, extras, true)})).into_response())
}

fn service_view(
    st: &ApiState,
    v: ApiVersion,
    s: &Service,
    zones: &BTreeMap<String, String>,
) -> Value {
    let host = s.host().clone().unwrap_or_default();
    let zone = if s.binary().as_deref() == Some("nova-compute") {
        zones
            .get(&host)
            .cloned()
            .unwrap_or_else(|| st.cfg.default_az.clone())
    } else {
        st.cfg.internal_az.clone()
    };
    let mut out = json!({
        "id": if v.at_least(2, 53) { json!(s.uuid()) } else { json!(s.id()) },
        "binary": s.binary(), "host": host, "zone": zone,
        "status": if *s.disabled() { "disabled" } else { "enabled" },
        "state": if is_up(st, s) { "up" } else { "down" },
        "updated_at": views::usage_time(&s.last_seen_up().or(*s.updated_at())),
        "disabled_reason": s.disabled_reason(),
    });
    if v.at_least(2, 11) {
        out["forced_down"] = json!(s.forced_down());
    }
    out
}

pub(crate) async fn services(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Query(p): Params,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-services:list")?;
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let zones = host_zones(&st).await?;
    let list: Vec<Value> = services_all(&st)
        .await?
        .iter()
        .filter(|s| get("host").is_none_or(|h| s.host().as_deref() == Some(h.as_str())))
        .filter(|s| get("binary").is_none_or(|b| s.binary().as_deref() == Some(b.as_str())))
        .map(|s| service_view(&st, v, s, &zones))
        .collect();
    Ok(axum::Json(json!({"services": list})).into_response())
}

fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "on" | "yes" => Some(true),
            "false" | "0" | "off" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Saves a service record; `service.update` when its status changed (as
/// nova's `Service.save`: `disabled`, `disabled_reason` or `forced_down`).
async fn save_service(st: &ApiState, ctx: &Ctx, s: &mut Service) -> ApiResult<()> {
    let notify = nova_service::notifications::service_update_notifies(s);
    st.objects.save(&admin_ctx(), s).await?;
    if notify {
        st.notifier
            .service(&ctx.rpc(), s, ServiceAction::Update)
            .await;
    }
    Ok(())
}

pub(crate) async fn update_service(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-services:update")?;
    let body = json_body(&body)?;
    let all = services_all(&st).await?;
    let zones = host_zones(&st).await?;
    if v.at_least(2, 53) {
        schemas::check("service_update", v, schemas::service_update, &body)?;
        if uuid::Uuid::parse_str(&id).is_err() {
            return Err(Fault::bad_request(format!("Invalid uuid {id}")));
        }
        let Some(mut s) = all.into_iter().find(|s| *s.uuid() == id) else {
            return Err(Fault::not_found(format!(
                "Service {id} could not be found."
            )));
        };
        if body.as_object().is_none_or(|o| o.is_empty()) {
            return Err(Fault::bad_request(
                "No updates were requested. Fields 'status' or 'forced_down' should be specified.",
            ));
        }
        if body.get("disabled_reason").is_some() && body["status"].as_str() != Some("disabled") {
            return Err(Fault::bad_request(
                "Specifying 'disabled_reason' with status 'enabled' is invalid.",
            ));
        }
        match body["status"].as_str() {
            Some("disabled") => {
                s.set_disabled(true);
                s.set_disabled_reason(body["disabled_reason"].as_str().map(str::to_owned));
            }
            Some(_) => {
                s.set_disabled(false);
                s.set_disabled_reason(None);
            }
            None => {}
        }
        if let Some(f) = body.get("forced_down") {
            s.set_forced_down(flag(f).unwrap_or(false));
        }
        save_service(&st, &ctx, &mut s).await?;
        return Ok(
            axum::Json(json!({"service": service_view(&st, v, &s, &zones)})).into_response(),
        );
    }
    // Before 2.53: PUT /os-services/{enable,disable,disable-log-reason,force-down}.
    let host = body["host"].as_str().unwrap_or_default();
    let binary = body["binary"].as_str().unwrap_or_default();
    let Some(mut s) = all
        .into_iter()
        .find(|s| s.host().as_deref() == Some(host) && s.binary().as_deref() == Some(binary))
    else {
        return Err(Fault::not_found(format!(
            "Service {binary} on host {host} could not be found."
        )));
    };
    let mut out = json!({"host": host, "binary": binary});
    match id.as_str() {
        "enable" => {
            s.set_disabled(false);
            s.set_disabled_reason(None);
            out["status"] = json!("enabled");
        }
        "disable" => {
            s.set_disabled(true);
            out["status"] = json!("disabled");
        }
        "disable-log-reason" => {
            let reason = body["disabled_reason"]
                .as_str()
                .ok_or_else(|| Fault::bad_request("Missing disabled reason field"))?;
            // nova's schema: 1 to 255 characters.
            if reason.is_empty() || reason.chars().count() > 255 {
                return Err(Fault::bad_request(
                    "Invalid input for field/attribute disabled_reason. The reason must be 1 to 255 characters",
                ));
            }
            s.set_disabled(true);
            s.set_disabled_reason(Some(reason.to_owned()));
            out["status"] = json!("disabled");
            out["disabled_reason"] = json!(reason);
        }
        "force-down" if v.at_least(2, 11) => {
            let f = flag(&body["forced_down"])
                .ok_or_else(|| Fault::bad_request("forced_down must be a boolean"))?;
            s.set_forced_down(f);
            out["forced_down"] = json!(f);
        }
        other => return Err(Fault::not_found(format!("Unknown action {other}"))),
    }
    save_service(&st, &ctx, &mut s).await?;
    Ok(axum::Json(json!({"service": out})).into_response())
}

pub(crate) async fn delete_service(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-services:delete")?;
    let all = services_all(&st).await?;
    let found = if v.at_least(2, 53) {
        all.into_iter().find(|s| *s.uuid() == id)
    } else {
        all.into_iter().find(|s| s.id().to_string() == id)
    };
    let Some(mut s) = found else {
        return Err(Fault::not_found(format!(
            "Service {id} could not be found."
        )));
    };
    let host = s.host().clone().unwrap_or_default();
    if s.binary().as_deref() == Some("nova-compute") {
        let busy: Vec<Instance> = st
            .objects
            .list(
                &admin_ctx(),
                &ListQuery::new().filter("host", host.as_str()),
            )
            .await?;
        if !busy.is_empty() {
            return Err(Fault::conflict(
                "Unable to delete compute service that is hosting instances. Migrate or delete the instances first.",
            ));
        }
        let nodes: Vec<ComputeNode> = st
            .objects
            .list(
                &admin_ctx(),
                &ListQuery::new().filter("host", host.as_str()),
            )
            .await?;
        for mut n in nodes {
            let _ = st.placement.delete_provider_async(n.uuid()).await;
            st.objects.destroy(&admin_ctx(), &mut n).await?;
        }
    }
    st.objects.destroy(&admin_ctx(), &mut s).await?;
    st.notifier
        .service(&ctx.rpc(), &s, ServiceAction::Delete)
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn zone_info(st: &ApiState, detail: bool) -> ApiResult<Value> {
    let services = services_all(st).await?;
    let zones = host_zones(st).await?;
    let mut by_zone: BTreeMap<String, BTreeMap<String, BTreeMap<String, Value>>> = BTreeMap::new();
    let mut available: BTreeMap<String, bool> = BTreeMap::new();
    for s in &services {
        let host = s.host().clone().unwrap_or_default();
        let compute = s.binary().as_deref() == Some("nova-compute");
        let zone = if compute {
            zones
                .get(&host)
                .cloned()
                .unwrap_or_else(|| st.cfg.default_az.clone())
        } else {
            st.cfg.internal_az.clone()
        };
        if !compute && !detail {
            continue;
        }
        let up = is_up(st, s);
        let alive = up && !*s.disabled();
        *available.entry(zone.clone()).or_insert(false) |= alive || !compute;
        by_zone.entry(zone).or_default().entry(host).or_default().insert(
            s.binary().clone().unwrap_or_default(),
            json!({"available": up, "active": !*s.disabled(), "updated_at": views::usage_time(&s.last_seen_up().or(*s.updated_at()))}),
        );
    }
    let list: Vec<Value> = by_zone
        .into_iter()
        .map(|(z, hosts)| {
            json!({"zoneName": z, "zoneState": {"available": available.get(&z).copied().unwrap_or(false)},
                   "hosts": if detail { json!(hosts) } else { Value::Null }})
        })
        .collect();
    Ok(json!({"availabilityZoneInfo": list}))
}

pub(crate) async fn zones(State(st): St) -> ApiResult<Response> {
    Ok(axum::Json(zone_info(&st, false).await?).into_response())
}

pub(crate) async fn zones_detail(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-availability-zone:detail")?;
    Ok(axum::Json(zone_info(&st, true).await?).into_response())
}

pub(crate) async fn limits(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
) -> ApiResult<Response> {
    // nova's `get_project_quotas(usages=True)`: the project's limits and
    // counts (a user's own limits are not shown here).
    let q = &crate::quotas::quotas_of(&st.quotas.project(&ctx.project_id, None).await?);
    let (u, _) = crate::quotas::count::instances(&st, &ctx.project_id, None).await?;
    let mut abs = json!({
        "maxServerMeta": q.metadata_items, "maxImageMeta": q.metadata_items,
        "maxTotalInstances": q.instances, "maxTotalCores": q.cores, "maxTotalRAMSize": q.ram,
        "maxTotalKeypairs": q.key_pairs, "maxServerGroups": q.server_groups,
        "maxServerGroupMembers": q.server_group_members,
        "totalInstancesUsed": u.instances, "totalCoresUsed": u.cores, "totalRAMUsed": u.ram,
        "totalServerGroupsUsed": crate::server_groups::count(&st, &ctx.project_id).await?,
    });
    if !v.at_least(2, 57) {
        abs["maxPersonality"] = json!(q.injected_files);
        abs["maxPersonalitySize"] = json!(q.injected_file_content_bytes);
    }
    if !v.at_least(2, 36) {
        for k in [
            "maxSecurityGroups",
            "maxSecurityGroupRules",
            "maxTotalFloatingIps",
        ] {
            abs[k] = json!(-1);
        }
        for k in ["totalSecurityGroupsUsed", "totalFloatingIpsUsed"] {
            abs[k] = json!(0);
        }
    }
    Ok(axum::Json(json!({"limits": {"rate": [], "absolute": abs}})).into_response())
}
