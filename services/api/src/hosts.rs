//! `os-hosts` (2.1–2.42: list and show from the service and compute node
//! records) and the hypervisor routes nova kept for older microversions:
//! `statistics` (to 2.87), `{pattern}/search` and `{pattern}/servers` (to
//! 2.52).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use nova_objects::{ComputeNode, Instance, ListQuery, Service};
use serde_json::{Value, json};

use crate::ApiState;
use crate::admin::{HypervisorExtras, host_zones, hypervisor_view, servers_on, services_all};
use crate::auth::Ctx;
use crate::compute_api::host_ops;
use crate::fault::{ApiResult, Fault};
use crate::http::{admin_ctx, param, require_admin};
use crate::microversion::ApiVersion;

type St = State<Arc<ApiState>>;
type Params = Query<Vec<(String, String)>>;

fn removed_at(v: ApiVersion, major: u16, minor: u16) -> ApiResult<()> {
    if v.at_least(major, minor) {
        Err(Fault::not_found("The resource could not be found."))
    } else {
        Ok(())
    }
}

fn zone_of(st: &ApiState, s: &Service, zones: &BTreeMap<String, String>) -> String {
    if s.binary().as_deref() == Some("nova-compute") {
        s.host()
            .as_ref()
            .and_then(|h| zones.get(h).cloned())
            .unwrap_or_else(|| st.cfg.default_az.clone())
    } else {
        st.cfg.internal_az.clone()
    }
}

/// `GET /os-hosts[?zone=]`: the enabled services but the API ones.
pub(crate) async fn index(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Query(p): Params,
) -> ApiResult<Response> {
    removed_at(v, 2, 43)?;
    require_admin(&ctx, "os_compute_api:os-hosts:list")?;
    let zones = host_zones(&st).await?;
    let want = param(&p, "zone").filter(|z| !z.is_empty());
    let hosts: Vec<Value> = services_all(&st)
        .await?
        .iter()
        .filter(|s| !*s.disabled())
        .filter(|s| {
            !matches!(
                s.binary().as_deref(),
                Some("nova-osapi_compute" | "nova-metadata")
            )
        })
        .map(|s| (s, zone_of(&st, s, &zones)))
        .filter(|(_, z)| want.is_none_or(|w| w == z))
        .map(|(s, z)| {
            let topic = s.topic().clone().unwrap_or_else(|| {
                s.binary()
                    .as_deref()
                    .unwrap_or_default()
                    .trim_start_matches("nova-")
                    .to_owned()
            });
            json!({"host_name": s.host(), "service": topic, "zone": z})
        })
        .collect();
    Ok(axum::Json(json!({"hosts": hosts})).into_response())
}

fn resource(host: &str, project: &str, cpu: i64, mem: i64, disk: i64) -> Value {
    json!({"resource": {"host": host, "project": project, "cpu": cpu, "memory_mb": mem, "disk_gb": disk}})
}

/// `GET /os-hosts/{host}`: the node's totals and use, the instances'
/// maximum and each project's share.
pub(crate) async fn show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(host): Path<String>,
) -> ApiResult<Response> {
    removed_at(v, 2, 43)?;
    require_admin(&ctx, "os_compute_api:os-hosts:show")?;
    let nodes: Vec<ComputeNode> = st
        .objects
        .list(
            &admin_ctx(),
            &ListQuery::new().filter("host", host.as_str()),
        )
        .await?;
    let Some(node) = nodes.iter().min_by_key(|n| *n.id()) else {
        return Err(Fault::not_found(format!(
            "Compute host {host} could not be found."
        )));
    };
    let instances: Vec<Instance> = st
        .objects
        .list(
            &admin_ctx(),
            &ListQuery::new().filter("host", host.as_str()),
        )
        .await?;
    let mut out = vec![
        resource(
            &host,
            "(total)",
            *node.vcpus(),
            *node.memory_mb(),
            *node.local_gb(),
        ),
        resource(
            &host,
            "(used_now)",
            *node.vcpus_used(),
            *node.memory_mb_used(),
            *node.local_gb_used(),
        ),
    ];
    let size = |i: &Instance| {
        (
            i.vcpus().unwrap_or(0),
            i.memory_mb().unwrap_or(0),
            i.root_gb().unwrap_or(0) + i.ephemeral_gb().unwrap_or(0),
        )
    };
    let (mut c, mut m, mut d) = (0, 0, 0);
    let mut by_project: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    let mut order = Vec::new();
    for i in &instances {
        let (ic, im, id) = size(i);
        c += ic;
        m += im;
        d += id;
        let project = i.project_id().clone().unwrap_or_default();
        if !by_project.contains_key(&project) {
            order.push(project.clone());
        }
        let e = by_project.entry(project).or_default();
        e.0 += ic;
        e.1 += im;
        e.2 += id;
    }
    out.push(resource(&host, "(used_max)", c, m, d));
    for project in order {
        let (pc, pm, pd) = by_project[&project];
        out.push(resource(&host, &project, pc, pm, pd));
    }
    Ok(axum::Json(json!({"host": out})).into_response())
}

/// `GET /os-hypervisors/statistics` (to 2.87): sums over the nodes of
/// enabled compute services (nova's `compute_node_statistics`).
pub(crate) async fn statistics(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
) -> ApiResult<Response> {
    removed_at(v, 2, 88)?;
    require_admin(&ctx, "os_compute_api:os-hypervisors:statistics")?;
    let enabled: Vec<String> = services_all(&st)
        .await?
        .iter()
        .filter(|s| s.binary().as_deref() == Some("nova-compute") && !*s.disabled())
        .filter_map(|s| s.host().clone())
        .collect();
    let nodes: Vec<ComputeNode> = st.objects.list(&admin_ctx(), &ListQuery::new()).await?;
    let mut t = BTreeMap::<&str, i64>::new();
    let mut count = 0;
    for n in nodes
        .iter()
        .filter(|n| n.host().as_ref().is_some_and(|h| enabled.contains(h)))
    {
        count += 1;
        for (k, x) in [
            ("vcpus", *n.vcpus()),
            ("memory_mb", *n.memory_mb()),
            ("local_gb", *n.local_gb()),
            ("vcpus_used", *n.vcpus_used()),
            ("memory_mb_used", *n.memory_mb_used()),
            ("local_gb_used", *n.local_gb_used()),
            ("free_ram_mb", n.free_ram_mb().unwrap_or(0)),
            ("free_disk_gb", n.free_disk_gb().unwrap_or(0)),
            ("current_workload", n.current_workload().unwrap_or(0)),
            ("running_vms", n.running_vms().unwrap_or(0)),
            (
                "disk_available_least",
                n.disk_available_least().unwrap_or(0),
            ),
        ] {
            *t.entry(k).or_default() += x;
        }
    }
    let mut stats = json!({"count": count});
    for k in [
        "vcpus",
        "memory_mb",
        "local_gb",
        "vcpus_used",
        "memory_mb_used",
        "local_gb_used",
        "free_ram_mb",
        "free_disk_gb",
        "current_workload",
        "running_vms",
        "disk_available_least",
    ] {
        stats[k] = json!(t.get(k).copied().unwrap_or(0));
    }
    Ok(axum::Json(json!({"hypervisor_statistics": stats})).into_response())
}

/// The nodes whose hypervisor hostname contains `pattern` (nova's
/// `compute_node_search_by_hypervisor`: a `LIKE %pattern%`), each with
/// its compute service; 404 when none matches.
async fn matching(st: &ApiState, pattern: &str) -> ApiResult<Vec<(ComputeNode, Service)>> {
    let nodes: Vec<ComputeNode> = st.objects.list(&admin_ctx(), &ListQuery::new()).await?;
    let found: Vec<ComputeNode> = nodes
        .into_iter()
        .filter(|n| {
            n.hypervisor_hostname()
                .as_deref()
                .unwrap_or_default()
                .contains(pattern)
        })
        .collect();
    if found.is_empty() {
        return Err(Fault::not_found(format!(
            "No hypervisor matching '{pattern}' could be found."
        )));
    }
    let services = services_all(st).await?;
    Ok(found
        .into_iter()
        .filter_map(|n| {
            let svc = services
                .iter()
                .find(|s| s.binary().as_deref() == Some("nova-compute") && s.host() == n.host())?
                .clone();
            Some((n, svc))
        })
        .collect())
}

/// `GET /os-hypervisors/{pattern}/search` (to 2.52).
pub(crate) async fn search(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(pattern): Path<String>,
) -> ApiResult<Response> {
    removed_at(v, 2, 53)?;
    require_admin(&ctx, "os_compute_api:os-hypervisors:search")?;
    let list: Vec<Value> = matching(&st, &pattern)
        .await?
        .iter()
        .map(|(n, s)| {
            hypervisor_view(
                &st,
                v,
                n,
                HypervisorExtras {
                    svc: Some(s),
                    ..Default::default()
                },
                false,
            )
        })
        .collect();
    Ok(axum::Json(json!({"hypervisors": list})).into_response())
}

/// `GET /os-hypervisors/{pattern}/servers` (to 2.52): the matching
/// hypervisors with the servers on their hosts.
pub(crate) async fn servers(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(pattern): Path<String>,
) -> ApiResult<Response> {
    removed_at(v, 2, 53)?;
    require_admin(&ctx, "os_compute_api:os-hypervisors:servers")?;
    let mut list = Vec::new();
    for (n, s) in matching(&st, &pattern).await? {
        let host = n.host().clone().unwrap_or_default();
        let extras = HypervisorExtras {
            svc: Some(&s),
            servers: Some(servers_on(&st, &host).await?),
            ..Default::default()
        };
        list.push(hypervisor_view(&st, v, &n, extras, false));
    }
    Ok(axum::Json(json!({"hypervisors": list})).into_response())
}

/// The compute service of `host` (nova's `_assert_host_exists`): 404
/// when there is none, 400 when it is down.
async fn compute_host(st: &ApiState, host: &str) -> ApiResult<Service> {
    let svc = services_all(st)
        .await?
        .into_iter()
        .find(|s| {
            s.binary().as_deref() == Some("nova-compute") && s.host().as_deref() == Some(host)
        })
        .ok_or_else(|| Fault::not_found(format!("Compute host {host} could not be found.")))?;
    if !crate::admin::is_up(st, &svc) {
        return Err(Fault::bad_request(format!(
            "Compute service of {host} is unavailable at this time."
        )));
    }
    Ok(svc)
}

/// A compute's answer, or nova's faults for its errors (501 when its
/// driver cannot).
fn host_call(r: Result<String, nova_rpc::Error>) -> ApiResult<String> {
    r.map_err(|e| match e.remote() {
        Some(r) if r.is("builtins", "NotImplementedError") => Fault::new(
            axum::http::StatusCode::NOT_IMPLEMENTED,
            "The requested functionality is not supported.",
        ),
        _ => Fault::internal(e),
    })
}

fn enable_flag(v: &Value, what: &str) -> ApiResult<Option<bool>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.eq_ignore_ascii_case("enable") => Ok(Some(true)),
        Value::String(s) if s.eq_ignore_ascii_case("disable") => Ok(Some(false)),
        other => Err(Fault::bad_request(format!(
            "Invalid input for field/attribute {what}. Value: {other}. '{other}' is not one of ['enable', 'disable']"
        ))),
    }
}

/// `PUT /os-hosts/{host}` (to 2.42): `status` and/or `maintenance_mode`
/// (`enable` / `disable`), each done by the host's compute.
pub(crate) async fn update(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(host): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    removed_at(v, 2, 43)?;
    require_admin(&ctx, "os_compute_api:os-hosts:update")?;
    let body = crate::http::json_body(&body)?;
    let Some(obj) = body.as_object() else {
        return Err(Fault::bad_request(
            "Invalid input: the body must be an object",
        ));
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !["status", "maintenance_mode"].contains(&k.as_str()))
    {
        return Err(Fault::bad_request(format!(
            "Invalid input for field/attribute request body. Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    let status = enable_flag(&body["status"], "status")?;
    let maintenance = enable_flag(&body["maintenance_mode"], "maintenance_mode")?;
    if status.is_none() && maintenance.is_none() {
        return Err(Fault::bad_request(
            "Invalid input for field/attribute request body. {} is not valid under any of the given schemas",
        ));
    }
    compute_host(&st, &host).await?;
    let mut out = json!({"host": host});
    if let Some(enabled) = status {
        let r = host_call(host_ops::set_enabled(&st, &ctx, &host, enabled).await)?;
        if r != "enabled" && r != "disabled" {
            return Err(Fault::bad_request(r));
        }
        out["status"] = json!(r);
    }
    if let Some(mode) = maintenance {
        let r = host_call(host_ops::maintenance(&st, &ctx, &host, mode).await)?;
        if r != "on_maintenance" && r != "off_maintenance" {
            return Err(Fault::bad_request(r));
        }
        out["maintenance_mode"] = json!(r);
    }
    Ok(axum::Json(out).into_response())
}

async fn power_action(
    st: &ApiState,
    ctx: &Ctx,
    v: ApiVersion,
    host: &str,
    action: &str,
    rule: &str,
) -> ApiResult<Response> {
    removed_at(v, 2, 43)?;
    require_admin(ctx, rule)?;
    compute_host(st, host).await?;
    let r = host_call(host_ops::power_action(st, ctx, host, action).await)?;
    Ok(axum::Json(json!({"host": host, "power_action": r})).into_response())
}

/// `GET /os-hosts/{host}/reboot` (to 2.42).
pub(crate) async fn reboot(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(host): Path<String>,
) -> ApiResult<Response> {
    power_action(
        &st,
        &ctx,
        v,
        &host,
        "reboot",
        "os_compute_api:os-hosts:reboot",
    )
    .await
}

/// `GET /os-hosts/{host}/shutdown` (to 2.42).
pub(crate) async fn shutdown(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(host): Path<String>,
) -> ApiResult<Response> {
    power_action(
        &st,
        &ctx,
        v,
        &host,
        "shutdown",
        "os_compute_api:os-hosts:shutdown",
    )
    .await
}

/// `GET /os-hosts/{host}/startup` (to 2.42).
pub(crate) async fn startup(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(host): Path<String>,
) -> ApiResult<Response> {
    power_action(
        &st,
        &ctx,
        v,
        &host,
        "startup",
        "os_compute_api:os-hosts:start",
    )
    .await
}

/// `GET /os-hypervisors/{id}/uptime` (to 2.87): the hypervisor's brief
/// view with its host's uptime as the driver reports it.
pub(crate) async fn uptime(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    removed_at(v, 2, 88)?;
    require_admin(&ctx, "os_compute_api:os-hypervisors:uptime")?;
    if v.at_least(2, 53) && uuid::Uuid::parse_str(&id).is_err() {
        return Err(Fault::bad_request(format!("Invalid uuid {id}")));
    }
    let nodes: Vec<ComputeNode> = st.objects.list(&admin_ctx(), &ListQuery::new()).await?;
    let not_found = || Fault::not_found(format!("Hypervisor with ID '{id}' could not be found."));
    let node = nodes
        .into_iter()
        .find(|n| {
            if v.at_least(2, 53) {
                *n.uuid() == id
            } else {
                n.id().to_string() == id
            }
        })
        .ok_or_else(not_found)?;
    let host = node.host().clone().unwrap_or_default();
    let svc = services_all(&st)
        .await?
        .into_iter()
        .find(|s| {
            s.binary().as_deref() == Some("nova-compute")
                && s.host().as_deref() == Some(host.as_str())
        })
        .ok_or_else(not_found)?;
    if !crate::admin::is_up(&st, &svc) {
        return Err(Fault::bad_request(format!(
            "Compute service of {host} is unavailable at this time."
        )));
    }
    let up = host_call(host_ops::uptime(&st, &ctx, &host).await)?;
    let extras = HypervisorExtras {
        svc: Some(&svc),
        ..Default::default()
    };
    let mut view = hypervisor_view(&st, v, &node, extras, false);
    view["uptime"] = json!(up);
    Ok(axum::Json(json!({"hypervisor": view})).into_response())
}
