//! `/flavors`: list (brief and detail, `is_public`, `minRam`, `minDisk`,
//! marker/limit), show, create, update (description), delete, extra specs
//! and flavor access.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nova_objects::{Flavor, ListQuery, Lookup, VersionedObject};
use nova_service::notifications::FlavorAction;
use serde_json::{Value, json};

use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::{admin_ctx, json_body, require_admin};
use crate::microversion::ApiVersion;
use crate::{ApiState, flavor_rules, schemas, views};

type St = State<Arc<ApiState>>;
type Params = Query<Vec<(String, String)>>;

/// `flavor.create` / `.update` / `.delete` (nova sends them from the
/// Flavor object's create, save and destroy).
async fn notify(st: &ApiState, ctx: &Ctx, f: &Flavor, action: FlavorAction) {
    st.notifier
        .flavor(&ctx.rpc(), f, action, &st.cfg.host)
        .await;
}

fn visible(ctx: &Ctx, f: &Flavor) -> bool {
    ctx.is_admin() || *f.is_public() || f.projects().contains(&ctx.project_id)
}

async fn get_flavor(st: &ApiState, ctx: &Ctx, id: &str) -> ApiResult<Flavor> {
    match st
        .objects
        .get::<Flavor>(&admin_ctx(), Lookup::field("flavorid", id))
        .await
    {
        Ok(f) if visible(ctx, &f) => Ok(f),
        Ok(_) => Err(Fault::not_found(format!("Flavor {id} could not be found."))),
        Err(e) if e.is_not_found() => {
            Err(Fault::not_found(format!("Flavor {id} could not be found.")))
        }
        Err(e) => Err(e.into()),
    }
}

async fn query(
    st: &ApiState,
    ctx: &Ctx,
    p: &[(String, String)],
    path: &str,
) -> ApiResult<(Vec<Flavor>, Option<String>)> {
    let get = |k: &str| {
        p.iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let mut all: Vec<Flavor> = st.objects.list(&admin_ctx(), &ListQuery::new()).await?;
    // is_public: default True (public, plus the project's own for users);
    // "None" means all (admins); false means private only (admins).
    // Only admins filter (nova's `_parse_is_public`: oslo's booleans,
    // 400 for anything else); users always see the public ones and theirs.
    let is_public = get("is_public").map(str::to_ascii_lowercase);
    if !ctx.is_admin() {
        all.retain(|f| visible(ctx, f));
    } else {
        match is_public.as_deref() {
            Some("none") => {}
            None => all.retain(|f| *f.is_public()),
            Some(other) => match crate::http::truthy(other) {
                Some(want) => all.retain(|f| *f.is_public() == want),
                None => {
                    return Err(Fault::bad_request(format!(
                        "Invalid is_public filter [{other}]"
                    )));
                }
            },
        }
    }
    if let Some(m) = get("minRam") {
        let m: i64 = m
            .parse()
            .map_err(|_| Fault::bad_request(format!("Invalid minRam filter [{m}]")))?;
        all.retain(|f| *f.memory_mb() >= m);
    }
    if let Some(m) = get("minDisk") {
        let m: i64 = m
            .parse()
            .map_err(|_| Fault::bad_request(format!("Invalid minDisk filter [{m}]")))?;
        all.retain(|f| *f.root_gb() >= m);
    }
    all.sort_by(|a, b| a.flavorid().cmp(b.flavorid()));
    let next = crate::http::paginate(st, &mut all, get("marker"), get("limit"), path, |f| {
        f.flavorid().as_str()
    })?;
    Ok((all, next))
}

fn page(key: &str, items: Vec<Value>, next: Option<String>) -> Response {
    let mut body = json!({ key: items });
    if let Some(n) = next {
        body[format!("{key}_links")] = json!([{"rel": "next", "href": n}]);
    }
    axum::Json(body).into_response()
}

pub(crate) async fn list(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Query(p): Params,
) -> ApiResult<Response> {
    let (all, next) = query(&st, &ctx, &p, "flavors").await?;
    Ok(page(
        "flavors",
        all.iter()
            .map(|f| views::flavor(&st, v, f, true, false))
            .collect(),
        next,
    ))
}

pub(crate) async fn detail(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Query(p): Params,
) -> ApiResult<Response> {
    let (all, next) = query(&st, &ctx, &p, "flavors/detail").await?;
    Ok(page(
        "flavors",
        all.iter()
            .map(|f| views::flavor(&st, v, f, false, true))
            .collect(),
        next,
    ))
}

pub(crate) async fn show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let f = get_flavor(&st, &ctx, &id).await?;
    Ok(axum::Json(json!({"flavor": views::flavor(&st, v, &f, false, true)})).into_response())
}

pub(crate) async fn create(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-flavor-manage:create")?;
    let body = json_body(&body)?;
    schemas::check("flavor_create", v, || schemas::flavor_create(v), &body)?;
    let f = &body["flavor"];
    let name = f["name"].as_str().unwrap_or_default().to_owned();
    flavor_rules::printable_name("name", &name)?;
    let memory_mb = flavor_rules::integer(&f["ram"], "ram", 1)?;
    let vcpus = flavor_rules::integer(&f["vcpus"], "vcpus", 1)?;
    let root_gb = flavor_rules::integer(&f["disk"], "disk", 0)?;
    let ephemeral_gb = flavor_rules::integer(&f["OS-FLV-EXT-DATA:ephemeral"], "ephemeral", 0)?;
    let swap = flavor_rules::integer(&f["swap"], "swap", 0)?;
    let rxtx = flavor_rules::rxtx_factor(&f["rxtx_factor"])?;
    let description = flavor_rules::description(&f["description"])?;
    let flavorid = match &f["id"] {
        Value::String(s) => s.clone(),
        // nova stores `str(id)`: an integer id 42 is the flavor "42"
        Value::Number(n) => n.to_string(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let all: Vec<Flavor> = st.objects.list(&admin_ctx(), &ListQuery::new()).await?;
    if all
        .iter()
        .any(|x| x.name().as_deref() == Some(name.as_str()))
    {
        return Err(Fault::conflict(format!(
            "Flavor with name {name} already exists."
        )));
    }
    if all.iter().any(|x| x.flavorid() == &flavorid) {
        return Err(Fault::conflict(format!(
            "Flavor with ID {flavorid} already exists."
        )));
    }
    let is_public = match &f["os-flavor-access:is_public"] {
        Value::Bool(b) => *b,
        Value::String(s) => !matches!(
            s.to_ascii_lowercase().as_str(),
            "false" | "0" | "off" | "no"
        ),
        _ => true,
    };
    let mut flavor = Flavor::new()
        .with_name(Some(name))
        .with_flavorid(flavorid)
        .with_memory_mb(memory_mb)
        .with_vcpus(vcpus)
        .with_root_gb(root_gb)
        .with_ephemeral_gb(ephemeral_gb)
        .with_swap(swap)
        .with_rxtx_factor(Some(rxtx))
        .with_vcpu_weight(None)
        .with_disabled(false)
        .with_is_public(is_public)
        .with_extra_specs(std::collections::BTreeMap::new())
        .with_projects(Vec::new())
        .with_description(description);
    st.objects.create(&admin_ctx(), &mut flavor).await?;
    notify(&st, &ctx, &flavor, FlavorAction::Create).await;
    Ok(axum::Json(json!({"flavor": views::flavor(&st, v, &flavor, false, true)})).into_response())
}

pub(crate) async fn update(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    // Before 2.55 the method does not exist: nova's dispatch answers 404
    // (`VersionNotFoundForAPIMethod`) before any policy is checked.
    if !v.at_least(2, 55) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    require_admin(&ctx, "os_compute_api:os-flavor-manage:update")?;
    let body = json_body(&body)?;
    let Some(desc) = body["flavor"].get("description") else {
        return Err(Fault::bad_request(
            "Invalid input for field/attribute flavor. 'description' is a required property",
        ));
    };
    let desc = flavor_rules::description(desc)?;
    if body["flavor"].as_object().is_some_and(|o| o.len() > 1)
        || body.as_object().is_some_and(|o| o.len() > 1)
    {
        return Err(Fault::bad_request(
            "Invalid input for field/attribute flavor. Additional properties are not allowed",
        ));
    }
    let mut f = get_flavor(&st, &ctx, &id).await?;
    f.set_description(desc);
    st.objects.save(&admin_ctx(), &mut f).await?;
    notify(&st, &ctx, &f, FlavorAction::Update).await;
    Ok(axum::Json(json!({"flavor": views::flavor(&st, v, &f, false, true)})).into_response())
}

pub(crate) async fn delete(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-flavor-manage:delete")?;
    let mut f = get_flavor(&st, &ctx, &id).await?;
    st.objects.destroy(&admin_ctx(), &mut f).await?;
    notify(&st, &ctx, &f, FlavorAction::Delete).await;
    Ok(StatusCode::ACCEPTED.into_response())
}

pub(crate) async fn action(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-flavor-access")?;
    let body = json_body(&body)?;
    let mut f = get_flavor(&st, &ctx, &id).await?;
    let (add, tenant) = if let Some(t) = body["addTenantAccess"]["tenant"].as_str() {
        (true, t.to_owned())
    } else if let Some(t) = body["removeTenantAccess"]["tenant"].as_str() {
        (false, t.to_owned())
    } else {
        return Err(Fault::bad_request(
            "There is no such action: expected addTenantAccess or removeTenantAccess with a tenant",
        ));
    };
    flavor_rules::tenant(&tenant)?;
    if *f.is_public() {
        return Err(Fault::conflict("Can not add access to a public flavor."));
    }
    let mut projects = f.projects().clone();
    if add {
        if projects.contains(&tenant) {
            return Err(Fault::conflict(format!(
                "Flavor access already exists for flavor {id} and project {tenant} combination."
            )));
        }
        projects.push(tenant);
    } else {
        let before = projects.len();
        projects.retain(|p| *p != tenant);
        if projects.len() == before {
            return Err(Fault::not_found(format!(
                "Flavor access not found for {id} / {tenant} combination."
            )));
        }
    }
    f.set_projects(projects);
    st.objects.save(&admin_ctx(), &mut f).await?;
    notify(&st, &ctx, &f, FlavorAction::Update).await;
    Ok(axum::Json(access_body(&f)).into_response())
}

fn access_body(f: &Flavor) -> Value {
    let list: Vec<Value> = f
        .projects()
        .iter()
        .map(|p| json!({"flavor_id": f.flavorid(), "tenant_id": p}))
        .collect();
    json!({"flavor_access": list})
}

pub(crate) async fn access_list(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-flavor-access")?;
    let f = get_flavor(&st, &ctx, &id).await?;
    if *f.is_public() {
        return Err(Fault::not_found(
            "Access list not available for public flavors.",
        ));
    }
    Ok(axum::Json(access_body(&f)).into_response())
}

pub(crate) async fn extra_specs(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let f = get_flavor(&st, &ctx, &id).await?;
    Ok(axum::Json(json!({"extra_specs": f.extra_specs()})).into_response())
}

pub(crate) async fn set_extra_specs(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-flavor-extra-specs:create")?;
    let body = json_body(&body)?;
    schemas::check(
        "extra_specs",
        crate::microversion::MIN,
        schemas::extra_specs,
        &body,
    )?;
    let mut checked = Vec::new();
    for (k, val) in body["extra_specs"].as_object().into_iter().flatten() {
        checked.push((k.clone(), flavor_rules::extra_spec(v, k, val)?));
    }
    let mut f = get_flavor(&st, &ctx, &id).await?;
    let mut specs = f.extra_specs().clone();
    specs.extend(checked);
    f.set_extra_specs(specs);
    st.objects.save(&admin_ctx(), &mut f).await?;
    notify(&st, &ctx, &f, FlavorAction::Update).await;
    Ok(axum::Json(json!({"extra_specs": body["extra_specs"]})).into_response())
}

pub(crate) async fn extra_spec(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let f = get_flavor(&st, &ctx, &id).await?;
    match f.extra_specs().get(&key) {
        Some(v) => Ok(axum::Json(json!({ key: v })).into_response()),
        None => Err(Fault::not_found(format!(
            "Flavor {id} has no extra specs with key {key}."
        ))),
    }
}

pub(crate) async fn put_extra_spec(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path((id, key)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-flavor-extra-specs:update")?;
    let body = json_body(&body)?;
    let Some(obj) = body.as_object().filter(|o| o.len() == 1) else {
        return Err(Fault::bad_request("Request body contains too many items"));
    };
    let Some(val) = obj.get(&key) else {
        return Err(Fault::bad_request("Request body and URI mismatch"));
    };
    let text = flavor_rules::extra_spec(v, &key, val)?;
    let mut f = get_flavor(&st, &ctx, &id).await?;
    let mut specs = f.extra_specs().clone();
    specs.insert(key.clone(), text);
    f.set_extra_specs(specs);
    st.objects.save(&admin_ctx(), &mut f).await?;
    notify(&st, &ctx, &f, FlavorAction::Update).await;
    Ok(axum::Json(body).into_response())
}

pub(crate) async fn delete_extra_spec(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    require_admin(&ctx, "os_compute_api:os-flavor-extra-specs:delete")?;
    let mut f = get_flavor(&st, &ctx, &id).await?;
    let mut specs = f.extra_specs().clone();
    if specs.remove(&key).is_none() {
        return Err(Fault::not_found(format!(
            "Flavor {id} has no extra specs with key {key}."
        )));
    }
    f.set_extra_specs(specs);
    st.objects.save(&admin_ctx(), &mut f).await?;
    notify(&st, &ctx, &f, FlavorAction::Update).await;
    Ok(StatusCode::OK.into_response())
}

/// Nova's usual flavors (what devstack creates): m1.tiny … m1.xlarge.
pub async fn seed_default_flavors(objects: &nova_objects::Objects) -> nova_objects::Result<usize> {
    let ctx = admin_ctx();
    let have: Vec<Flavor> = objects.list(&ctx, &ListQuery::new()).await?;
    let mut n = 0;
    for (id, name, ram, disk, vcpus) in [
        ("1", "m1.tiny", 512, 1, 1),
        ("2", "m1.small", 2048, 20, 1),
        ("3", "m1.medium", 4096, 40, 2),
        ("4", "m1.large", 8192, 80, 4),
        ("5", "m1.xlarge", 16384, 160, 8),
    ] {
        if have
            .iter()
            .any(|f| f.flavorid() == id || f.name().as_deref() == Some(name))
        {
            continue;
        }
        let mut f = Flavor::new()
            .with_name(Some(name.to_owned()))
            .with_flavorid(id)
            .with_memory_mb(ram)
            .with_vcpus(vcpus)
            .with_root_gb(disk)
            .with_ephemeral_gb(0)
            .with_swap(0)
            .with_rxtx_factor(Some(1.0))
            .with_disabled(false)
            .with_is_public(true)
            .with_extra_specs(std::collections::BTreeMap::new())
            .with_projects(Vec::new())
            .with_description(None);
        objects.create(&ctx, &mut f).await?;
        n += 1;
    }
    let _ = Flavor::NAME;
    Ok(n)
}
