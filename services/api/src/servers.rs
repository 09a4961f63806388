//! `/servers`: list (brief and detail, Nova's filters, sorting, marker and
//! limit), show, create (min/max_count, networks, key_name, user_data,
//! metadata, availability_zone, scheduler hints), update, delete, and the
//! actions `reboot`, `os-stop`, `os-start`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use nova_objects::{
    Aggregate, BuildRequest, Flavor, ImageMeta, Instance, InstanceMapping, KeyPair, ListQuery,
    Lookup, RequestSpec, SaveOptions, Service, VersionedObject,
};
use nova_rpc::RequestContext;
use serde_json::{Value, json};

use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::microversion::ApiVersion;
use crate::{ApiState, schemas, views};

type St = State<Arc<ApiState>>;
type Params = Query<Vec<(String, String)>>;

pub(crate) fn admin_ctx() -> RequestContext {
    RequestContext::new().with_admin(true).with_roles(["admin"])
}

pub(crate) fn json_body(body: &Bytes) -> ApiResult<Value> {
    if body.is_empty() {
        return Err(Fault::bad_request("Malformed request body"));
    }
    serde_json::from_slice(body).map_err(|_| Fault::bad_request("Malformed request body"))
}

pub(crate) fn require_read(ctx: &Ctx, rule: &str) -> ApiResult<()> {
    if ctx.can_read() {
        Ok(())
    } else {
        Err(Fault::policy(rule))
    }
}

pub(crate) fn require_write(ctx: &Ctx, rule: &str) -> ApiResult<()> {
    if ctx.can_write() {
        Ok(())
    } else {
        Err(Fault::policy(rule))
    }
}

pub(crate) fn require_admin(ctx: &Ctx, rule: &str) -> ApiResult<()> {
    if ctx.is_admin() {
        Ok(())
    } else {
        Err(Fault::policy(rule))
    }
}

fn not_found(id: &str) -> Fault {
    Fault::not_found(format!("Instance {id} could not be found."))
}

/// The instance `id` as `ctx` may see it (another project's is a 404).
pub(crate) async fn get_instance(st: &ApiState, ctx: &Ctx, id: &str) -> ApiResult<Instance> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found(id));
    }
    let mut inst = match st.objects.get_by_uuid::<Instance>(&admin_ctx(), id).await {
        Ok(i) => i,
        Err(e) if e.is_not_found() => return Err(not_found(id)),
        Err(e) => return Err(e.into()),
    };
    if !ctx.is_admin() && inst.project_id().as_deref() != Some(ctx.project_id.as_str()) {
        return Err(not_found(id));
    }
    if inst.vm_state().as_deref() == Some("error") {
        st.objects
            .load_instance_attrs(&admin_ctx(), &mut inst, &["fault"])
            .await?;
    }
    Ok(inst)
}

fn sort_value(i: &Instance, key: &str) -> Value {
    match key {
        "created_at" => json!(i.created_at().map(|t| t.timestamp_micros())),
        "updated_at" => json!(i.updated_at().map(|t| t.timestamp_micros())),
        "launched_at" => json!(i.launched_at().map(|t| t.timestamp_micros())),
        "terminated_at" => json!(i.terminated_at().map(|t| t.timestamp_micros())),
        "display_name" => json!(i.display_name()),
        "uuid" => json!(i.uuid()),
        "id" => json!(i.id()),
        "vm_state" => json!(i.vm_state()),
        "task_state" => json!(i.task_state()),
        "power_state" => json!(i.power_state()),
        "host" => json!(i.host()),
        "node" => json!(i.node()),
        "availability_zone" => json!(i.availability_zone()),
        "key_name" => json!(i.key_name()),
        "project_id" => json!(i.project_id()),
        "user_id" => json!(i.user_id()),
        "hostname" => json!(i.hostname()),
        "locked" => json!(i.locked()),
        _ => Value::Null,
    }
}

const SORT_KEYS: &[&str] = &[
    "created_at",
    "updated_at",
    "launched_at",
    "terminated_at",
    "display_name",
    "uuid",
    "id",
    "vm_state",
    "task_state",
    "power_state",
    "host",
    "node",
    "availability_zone",
    "key_name",
    "project_id",
    "user_id",
    "hostname",
    "locked",
];

fn cmp_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

fn truthy(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

async fn query_servers(
    st: &ApiState,
    ctx: &Ctx,
    v: ApiVersion,
    params: &[(String, String)],
    path: &str,
) -> ApiResult<(Vec<Instance>, Option<String>)> {
    let get = |k: &str| {
        params
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let all_tenants = get("all_tenants").is_some_and(|v| v.is_empty() || truthy(v).unwrap_or(true));
    if all_tenants && !ctx.is_admin() {
        return Err(Fault::policy(
            "os_compute_api:servers:index:get_all_tenants",
        ));
    }
    let mut q = ListQuery::new();
    let project_filter = if ctx.is_admin() && all_tenants {
        get("project_id").or(get("tenant_id")).map(str::to_owned)
    } else {
        Some(ctx.project_id.clone())
    };
    if let Some(p) = &project_filter {
        q = q.filter("project_id", p.as_str());
    }
    if ctx.is_admin()
        && let Some(h) = get("host")
    {
        q = q.filter("host", h);
    }
    let mut ctx_db = admin_ctx();
    let deleted = if ctx.is_admin() {
        get("deleted").and_then(truthy).unwrap_or(false)
    } else {
        false
    };
    if deleted {
        ctx_db.set("read_deleted", "only");
    }
    let mut all: Vec<Instance> = st.objects.list(&ctx_db, &q).await?;
    if let Some(name) = get("name") {
        let re = regex::Regex::new(name)
            .map_err(|e| Fault::bad_request(format!("Invalid regular expression for name: {e}")))?;
        all.retain(|i| re.is_match(i.display_name().as_deref().unwrap_or("")));
    }
    if let Some(s) = get("status") {
        let Some((vms, tasks)) = views::states_of_status(s) else {
            // Nova: an unknown status matches nothing.
            return Ok((Vec::new(), None));
        };
        all.retain(|i| {
            vms.contains(&i.vm_state().as_deref().unwrap_or(""))
                && tasks
                    .as_ref()
                    .is_none_or(|t| t.contains(&i.task_state().as_deref().unwrap_or("")))
        });
    }
    if let Some(f) = get("flavor") {
        all.retain(|i| i.obj_attr_is_set("flavor") && i.flavor().flavorid() == f);
    }
    if let Some(img) = get("image") {
        let img = img.rsplit('/').next().unwrap_or(img);
        all.retain(|i| i.image_ref().as_deref() == Some(img));
    }
    for (key, after) in [("changes-since", true), ("changes-before", false)] {
        if let Some(t) = get(key) {
            let t = chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|_| {
                    Fault::bad_request(format!(
                        "Invalid filter field: {key}. Value {t} is not an ISO 8601 time."
                    ))
                })?
                .to_utc();
            all.retain(|i| {
                let u = i.updated_at().or(*i.created_at());
                u.is_some_and(|u| if after { u >= t } else { u <= t })
            });
        }
    }
    // Sorting: sort_key/sort_dir pairs, then created_at desc, id desc.
    let keys: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "sort_key")
        .map(|(_, v)| v.as_str())
        .collect();
    let dirs: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "sort_dir")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut order: Vec<(String, bool)> = Vec::new();
    for (n, k) in keys.iter().enumerate() {
        if !SORT_KEYS.contains(k) {
            return Err(Fault::bad_request(format!("Invalid sort_key {k}")));
        }
        let d = dirs.get(n).copied().unwrap_or("desc");
        let desc = match d {
            "desc" => true,
            "asc" => false,
            other => return Err(Fault::bad_request(format!("Invalid sort_dir {other}"))),
        };
        order.push(((*k).to_owned(), desc));
    }
    order.push(("created_at".into(), true));
    order.push(("id".into(), true));
    all.sort_by(|a, b| {
        for (k, desc) in &order {
            let o = cmp_values(&sort_value(a, k), &sort_value(b, k));
            let o = if *desc { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    let next = paginate(st, &mut all, get("marker"), get("limit"), path, |i| {
        i.uuid()
    })?;
    for i in all
        .iter_mut()
        .filter(|i| i.vm_state().as_deref() == Some("error"))
    {
        st.objects
            .load_instance_attrs(&admin_ctx(), i, &["fault"])
            .await?;
    }
    let _ = v;
    Ok((all, next))
}

/// Nova's marker/limit paging of a sorted list: drops everything up to
/// the marker (400 when it is unknown), keeps `limit` (capped by
/// `[api] max_limit`), and returns the next-page link when the page is full.
pub(crate) fn paginate<T>(
    st: &ApiState,
    all: &mut Vec<T>,
    marker: Option<&str>,
    limit: Option<&str>,
    path: &str,
    key: impl Fn(&T) -> &str,
) -> ApiResult<Option<String>> {
    if let Some(m) = marker {
        match all.iter().position(|x| key(x) == m) {
            Some(p) => {
                all.drain(..=p);
            }
            None => return Err(Fault::bad_request(format!("marker [{m}] not found"))),
        }
    }
    let limit = match limit {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| Fault::bad_request("limit param must be an integer"))?
            .min(st.cfg.max_limit),
        None => st.cfg.max_limit,
    };
    all.truncate(limit);
    Ok((all.len() == limit && limit > 0)
        .then(|| {
            all.last().map(|x| {
                format!(
                    "{}/v2.1/{path}?limit={limit}&marker={}",
                    st.cfg.public_url,
                    key(x)
                )
            })
        })
        .flatten())
}

fn with_links(mut body: Value, key: &str, next: Option<String>) -> Value {
    if let Some(n) = next {
        body[format!("{key}_links")] = json!([{"rel": "next", "href": n}]);
    }
    body
}

pub(crate) async fn list(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Query(p): Params,
) -> ApiResult<Response> {
    require_read(&ctx, "os_compute_api:servers:index")?;
    let (all, next) = query_servers(&st, &ctx, v, &p, "servers").await?;
    let servers: Vec<Value> = all.iter().map(|i| views::server_brief(&st, i)).collect();
    Ok(axum::Json(with_links(json!({"servers": servers}), "servers", next)).into_response())
}

pub(crate) async fn detail(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Query(p): Params,
) -> ApiResult<Response> {
    require_read(&ctx, "os_compute_api:servers:detail")?;
    let (all, next) = query_servers(&st, &ctx, v, &p, "servers/detail").await?;
    let servers: Vec<Value> = all
        .iter()
        .map(|i| views::server(&st, &ctx, v, i, false))
        .collect();
    Ok(axum::Json(with_links(json!({"servers": servers}), "servers", next)).into_response())
}

pub(crate) async fn show(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_read(&ctx, "os_compute_api:servers:show")?;
    let inst = get_instance(&st, &ctx, &id).await?;
    Ok(axum::Json(json!({"server": views::server(&st, &ctx, v, &inst, true)})).into_response())
}

fn flavor_ref(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    s.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_owned()
}

/// Everything a create needs, checked before anything is written.
struct Plan {
    flavor: Flavor,
    image: Option<Value>,
    key: Option<KeyPair>,
    count: i64,
    az: Option<String>,
    force_host: Option<String>,
    hints: BTreeMap<String, Vec<String>>,
}

fn parse_count(v: Option<&Value>, what: &str) -> ApiResult<Option<i64>> {
    match v {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_i64().filter(|n| *n >= 1).map(Some).ok_or_else(|| {
            Fault::bad_request(format!("Invalid input for field/attribute {what}."))
        }),
        Some(Value::String(s)) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(|| {
                Fault::bad_request(format!(
                    "Invalid input for field/attribute {what}. Value: {s}."
                ))
            }),
        Some(other) => Err(Fault::bad_request(format!(
            "Invalid input for field/attribute {what}. Value: {other}."
        ))),
    }
}

async fn availability_zones(st: &ApiState) -> ApiResult<Vec<String>> {
    let aggs: Vec<Aggregate> = st.objects.list(&admin_ctx(), &ListQuery::new()).await?;
    let mut zones = vec![st.cfg.default_az.clone()];
    for a in aggs {
        if let Some(z) = a
            .metadata()
            .as_ref()
            .and_then(|m| m.get("availability_zone"))
            && !zones.contains(z)
        {
            zones.push(z.clone());
        }
    }
    Ok(zones)
}

async fn plan_create(st: &ApiState, ctx: &Ctx, v: ApiVersion, body: &Value) -> ApiResult<Plan> {
    schemas::check("server_create", v, || schemas::server_create(v), body)?;
    let s = &body["server"];
    let fid = flavor_ref(&s["flavorRef"]);
    let flavor: Flavor = match st
        .objects
        .get(&admin_ctx(), Lookup::field("flavorid", fid.as_str()))
        .await
    {
        Ok(f) => f,
        Err(e) if e.is_not_found() => {
            return Err(Fault::bad_request(format!(
                "Flavor {fid} could not be found."
            )));
        }
        Err(e) => return Err(e.into()),
    };
    if *flavor.disabled() {
        return Err(Fault::bad_request(format!("Flavor {fid} is disabled.")));
    }
    if !*flavor.is_public() && !ctx.is_admin() && !flavor.projects().contains(&ctx.project_id) {
        return Err(Fault::bad_request(format!(
            "Flavor {fid} could not be found."
        )));
    }
    let image_id = s["imageRef"]
        .as_str()
        .map(|r| {
            r.trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .filter(|r| !r.is_empty())
        .or_else(|| {
            s["block_device_mapping_v2"].as_array().and_then(|b| {
                b.iter()
                    .find(|m| m["source_type"] == "image" && m["destination_type"] == "local")
                    .and_then(|m| m["uuid"].as_str().map(str::to_owned))
            })
        });
    let image = match image_id {
        Some(id) => {
            let img = st
                .images
                .get(&id)
                .filter(|i| crate::image::ImageStore::visible(ctx, i))
                .ok_or_else(|| Fault::bad_request(format!("Image {id} could not be found.")))?;
            if img["status"].as_str() != Some("active") {
                return Err(Fault::bad_request(format!("Image {id} is not active.")));
            }
            let min_ram = img["min_ram"].as_i64().unwrap_or(0);
            if min_ram > *flavor.memory_mb() {
                return Err(Fault::bad_request(
                    "Flavor's memory is too small for requested image.",
                ));
            }
            let min_disk = img["min_disk"].as_i64().unwrap_or(0);
            if *flavor.root_gb() > 0 && min_disk > *flavor.root_gb() {
                return Err(Fault::bad_request(
                    "Flavor's disk is too small for requested image.",
                ));
            }
            Some(img)
        }
        None => {
            if s["block_device_mapping_v2"]
                .as_array()
                .is_some_and(|b| !b.is_empty())
            {
                return Err(Fault::bad_request(
                    "Booting from a volume needs the block storage service, which this deployment does not have.",
                ));
            }
            return Err(Fault::bad_request("Missing imageRef attribute"));
        }
    };
    let key = match s["key_name"].as_str() {
        Some(k) => {
            let q = ListQuery::new()
                .filter("name", k)
                .filter("user_id", ctx.user_id.as_str());
            let found: Vec<KeyPair> = st.objects.list(&admin_ctx(), &q).await?;
            Some(
                found
                    .into_iter()
                    .next()
                    .ok_or_else(|| Fault::bad_request("Invalid key_name provided."))?,
            )
        }
        None => None,
    };
    match &s["networks"] {
        Value::Array(nets) => {
            if let Some(n) = nets.first() {
                let what = n["uuid"].as_str().or(n["port"].as_str()).unwrap_or("");
                return Err(Fault::bad_request(format!(
                    "Network {what} could not be found: this deployment has no network service; use \"networks\": \"none\" or \"auto\"."
                )));
            }
        }
        Value::String(_) | Value::Null => {}
        _ => {}
    }
    if let Some(ud) = s["user_data"].as_str()
        && base64::engine::general_purpose::STANDARD
            .decode(ud.trim())
            .is_err()
    {
        return Err(Fault::bad_request("User data needs to be valid base 64."));
    }
    if let Some(m) = s["metadata"].as_object()
        && m.len() as i64 > st.cfg.quotas.metadata_items
    {
        return Err(Fault::forbidden(format!(
            "Quota exceeded for metadata_items: Requested {}, but already used 0 of {} metadata_items",
            m.len(),
            st.cfg.quotas.metadata_items
        )));
    }
    let min = parse_count(s.get("min_count"), "min_count")?.unwrap_or(1);
    let max = parse_count(s.get("max_count"), "max_count")?.unwrap_or(min);
    if min > max {
        return Err(Fault::bad_request("min_count must be <= max_count"));
    }
    // Availability zone, `az:host[:node]` for admins.
    let (mut az, mut force_host) = (None, None);
    if let Some(z) = s["availability_zone"].as_str() {
        let mut parts = z.splitn(3, ':');
        let zone = parts.next().unwrap_or("");
        if let Some(h) = parts.next().filter(|h| !h.is_empty()) {
            require_admin(ctx, "os_compute_api:servers:create:forced_host")?;
            force_host = Some(h.to_owned());
        }
        if !zone.is_empty() {
            if !availability_zones(st).await?.iter().any(|x| x == zone) {
                return Err(Fault::bad_request(format!(
                    "The requested availability zone is not available: {zone}"
                )));
            }
            az = Some(zone.to_owned());
        }
    }
    if let Some(h) = s["host"].as_str() {
        require_admin(ctx, "compute:servers:create:requested_destination")?;
        force_host = Some(h.to_owned());
    }
    let mut hints = BTreeMap::new();
    for key in ["os:scheduler_hints", "OS-SCH-HNT:scheduler_hints"] {
        if let Some(h) = body[key].as_object() {
            for (k, v) in h {
                let vals: Vec<String> = match v {
                    Value::Array(a) => a
                        .iter()
                        .map(|x| {
                            x.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| x.to_string())
                        })
                        .collect(),
                    Value::String(s) => vec![s.clone()],
                    other => vec![other.to_string()],
                };
                hints.insert(k.clone(), vals);
            }
        }
    }
    // Quotas, counted from what exists (Nova's DbQuotaDriver).
    let q = &st.cfg.quotas;
    let (used, used_cores, used_ram) = if q.cores < 0 && q.ram < 0 {
        // Only the instance count matters (or nothing): count, do not load.
        let n = if q.instances < 0 {
            0
        } else {
            let f = serde_json::Map::from_iter([("project_id".to_owned(), json!(ctx.project_id))]);
            st.objects.count::<Instance>(&admin_ctx(), &f).await? as i64
        };
        (n, 0, 0)
    } else {
        let mine: Vec<Instance> = st
            .objects
            .list(
                &admin_ctx(),
                &ListQuery::new().filter("project_id", ctx.project_id.as_str()),
            )
            .await?;
        let cores: i64 = mine.iter().map(|i| i.vcpus().unwrap_or(0)).sum();
        let ram: i64 = mine.iter().map(|i| i.memory_mb().unwrap_or(0)).sum();
        (mine.len() as i64, cores, ram)
    };
    let fit = |per: i64, used: i64, limit: i64| {
        if per == 0 || limit < 0 {
            max
        } else {
            ((limit - used) / per).min(max)
        }
    };
    let count = fit(1, used, q.instances)
        .min(fit(*flavor.vcpus(), used_cores, q.cores))
        .min(fit(*flavor.memory_mb(), used_ram, q.ram));
    if count < min {
        let (res, per, u, limit) = if fit(1, used, q.instances) < min {
            ("instances", 1, used, q.instances)
        } else if fit(*flavor.vcpus(), used_cores, q.cores) < min {
            ("cores", *flavor.vcpus(), used_cores, q.cores)
        } else {
            ("ram", *flavor.memory_mb(), used_ram, q.ram)
        };
        return Err(Fault::forbidden(format!(
            "Quota exceeded for {res}: Requested {}, but already used {u} of {limit} {res}",
            per * min
        )));
    }
    Ok(Plan {
        flavor,
        image,
        key,
        count,
        az,
        force_host,
        hints,
    })
}

fn image_meta(img: &Value) -> ImageMeta {
    let s = |k: &str| img[k].as_str().unwrap_or("").to_owned();
    ImageMeta::new()
        .with_id(s("id"))
        .with_name(s("name"))
        .with_status(s("status"))
        .with_visibility(s("visibility"))
        .with_owner(s("owner"))
        .with_container_format(s("container_format"))
        .with_disk_format(s("disk_format"))
        .with_checksum(s("checksum"))
        .with_size(img["size"].as_i64().unwrap_or(0))
        .with_min_ram(img["min_ram"].as_i64().unwrap_or(0))
        .with_min_disk(img["min_disk"].as_i64().unwrap_or(0))
}

fn hostname_of(name: &str) -> String {
    let mut h: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    h = h.trim_matches('-').chars().take(63).collect();
    if h.is_empty() { "server".into() } else { h }
}

pub(crate) async fn create(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    body: Bytes,
) -> ApiResult<Response> {
    require_write(&ctx, "os_compute_api:servers:create")?;
    let body = json_body(&body)?;
    let plan = plan_create(&st, &ctx, v, &body).await?;
    let s = &body["server"];
    let name = s["name"].as_str().unwrap_or_default().to_owned();
    let reservation = format!("r-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let admin_pass: String = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let rctx = admin_ctx();
    let mut build_requests = Vec::new();
    let mut specs = Vec::new();
    let mut first = None;
    for n in 0..plan.count {
        let uuid = uuid::Uuid::new_v4().to_string();
        let display = if plan.count > 1 {
            format!("{name}-{}", n + 1)
        } else {
            name.clone()
        };
        let f = &plan.flavor;
        let mut inst = Instance::new()
            .with_uuid(uuid.clone())
            .with_display_name(Some(display.clone()))
            .with_display_description(s["description"].as_str().map(str::to_owned))
            .with_hostname(Some(
                s["hostname"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| hostname_of(&display)),
            ))
            .with_project_id(Some(ctx.project_id.clone()))
            .with_user_id(Some(ctx.user_id.clone()))
            .with_image_ref(
                plan.image
                    .as_ref()
                    .and_then(|i| i["id"].as_str().map(str::to_owned)),
            )
            .with_flavor(f.clone())
            .with_instance_type_id(Some(*f.id()))
            .with_vcpus(Some(*f.vcpus()))
            .with_memory_mb(Some(*f.memory_mb()))
            .with_root_gb(Some(*f.root_gb()))
            .with_ephemeral_gb(Some(*f.ephemeral_gb()))
            .with_key_name(plan.key.as_ref().map(|k| k.name().clone()))
            .with_key_data(plan.key.as_ref().and_then(|k| k.public_key().clone()))
            .with_metadata(
                s["metadata"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect::<BTreeMap<String, String>>()
                    })
                    .unwrap_or_default(),
            )
            .with_system_metadata(BTreeMap::new())
            .with_user_data(s["user_data"].as_str().map(str::to_owned))
            .with_vm_state(Some("building".into()))
            .with_task_state(Some("scheduling".into()))
            .with_power_state(Some(0))
            .with_availability_zone(plan.az.clone())
            .with_launch_index(Some(n))
            .with_reservation_id(Some(reservation.clone()))
            .with_locked(false)
            .with_config_drive(Some(String::new()))
            .with_access_ip_v4(s["accessIPv4"].as_str().map(str::to_owned))
            .with_access_ip_v6(s["accessIPv6"].as_str().map(str::to_owned))
            .with_auto_disk_config(s["OS-DCF:diskConfig"].as_str() == Some("AUTO"))
            .with_progress(Some(0))
            .with_shutdown_terminate(false)
            .with_disable_terminate(false)
            .with_cleaned(false)
            .with_hidden(false);
        st.objects.create(&rctx, &mut inst).await?;
        let mut spec = RequestSpec::new()
            .with_instance_uuid(uuid.clone())
            .with_project_id(Some(ctx.project_id.clone()))
            .with_user_id(Some(ctx.user_id.clone()))
            .with_flavor(f.clone())
            .with_image(plan.image.as_ref().map(image_meta))
            .with_num_instances(plan.count)
            .with_availability_zone(plan.az.clone())
            .with_scheduler_hints(Some(plan.hints.clone()))
            .with_force_hosts(plan.force_host.clone().map(|h| vec![h]))
            .with_is_bfv(false);
        st.objects.create(&rctx, &mut spec).await?;
        let mut br = BuildRequest::new()
            .with_instance_uuid(uuid.clone())
            .with_project_id(ctx.project_id.clone())
            .with_instance(inst.clone());
        st.objects.create(&rctx, &mut br).await?;
        let mut map = InstanceMapping::new()
            .with_instance_uuid(uuid.clone())
            .with_project_id(ctx.project_id.clone())
            .with_user_id(ctx.user_id.clone())
            .with_cell_mapping(None)
            .with_queued_for_delete(false);
        st.objects.create(&rctx, &mut map).await?;
        build_requests.push(br);
        specs.push(spec);
        first.get_or_insert(uuid);
    }
    st.conductor
        .schedule_and_build_instances(
            &ctx.rpc(),
            &build_requests,
            &specs,
            &plan.image.clone().unwrap_or(Value::Null),
            &Some(admin_pass.clone()),
            &None,
            &None,
            &None,
            &None,
        )
        .await
        .map_err(Fault::internal)?;
    let id = first.unwrap_or_default();
    if s["return_reservation_id"].as_bool() == Some(true)
        || s["return_reservation_id"]
            .as_str()
            .is_some_and(|x| truthy(x) == Some(true))
    {
        return Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({"reservation_id": reservation})),
        )
            .into_response());
    }
    let location = format!("{}/v2.1/servers/{id}", st.cfg.public_url);
    let body = json!({"server": {
        "id": id,
        "links": [{"rel": "self", "href": location},
                  {"rel": "bookmark", "href": format!("{}/servers/{id}", st.cfg.public_url)}],
        "OS-DCF:diskConfig": if s["OS-DCF:diskConfig"].as_str() == Some("AUTO") { "AUTO" } else { "MANUAL" },
        "security_groups": [{"name": "default"}],
        "adminPass": admin_pass,
    }});
    let mut r = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    if let Ok(l) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, l);
    }
    Ok(r)
}

pub(crate) async fn update(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    require_write(&ctx, "os_compute_api:servers:update")?;
    let body = json_body(&body)?;
    schemas::check("server_update", v, || schemas::server_update(v), &body)?;
    let mut inst = get_instance(&st, &ctx, &id).await?;
    let s = &body["server"];
    if let Some(n) = s["name"].as_str() {
        inst.set_display_name(Some(n.to_owned()));
    }
    if let Some(d) = s.get("description") {
        inst.set_display_description(d.as_str().map(str::to_owned));
    }
    if let Some(a) = s["accessIPv4"].as_str() {
        inst.set_access_ip_v4(Some(a.to_owned()));
    }
    if let Some(a) = s["accessIPv6"].as_str() {
        inst.set_access_ip_v6(Some(a.to_owned()));
    }
    if let Some(h) = s["hostname"].as_str() {
        inst.set_hostname(Some(h.to_owned()));
    }
    if let Some(d) = s["OS-DCF:diskConfig"].as_str() {
        inst.set_auto_disk_config(d == "AUTO");
    }
    st.objects.save(&admin_ctx(), &mut inst).await?;
    Ok(axum::Json(json!({"server": views::server(&st, &ctx, v, &inst, true)})).into_response())
}

fn check_state(
    inst: &Instance,
    action: &str,
    vm_states: &[&str],
    task_states: &[Option<&str>],
) -> ApiResult<()> {
    let vm = inst.vm_state().clone().unwrap_or_default();
    if !vm_states.contains(&vm.as_str()) {
        return Err(Fault::conflict(format!(
            "Cannot '{action}' instance {} while it is in vm_state {vm}",
            inst.uuid()
        )));
    }
    let task = inst.task_state().as_deref();
    if !task_states.contains(&task) {
        return Err(Fault::conflict(format!(
            "Cannot '{action}' instance {} while it is in task_state {}",
            inst.uuid(),
            task.unwrap_or("None")
        )));
    }
    Ok(())
}

async fn compute_up(st: &ApiState, host: &str) -> bool {
    let q = ListQuery::new()
        .filter("host", host)
        .filter("binary", "nova-compute");
    match st.objects.list::<Service>(&admin_ctx(), &q).await {
        Ok(s) => s
            .first()
            .is_some_and(|s| nova_service::is_up(s, st.cfg.service_down_time, chrono::Utc::now())),
        Err(_) => false,
    }
}

/// Deletes an instance no compute holds (never scheduled, buried in
/// cell0, or on a compute that is down): the record and its allocations.
async fn local_delete(st: &ApiState, mut inst: Instance) -> ApiResult<()> {
    let ctx = admin_ctx();
    st.placement
        .delete_allocations_async(inst.uuid())
        .await
        .map_err(Fault::internal)?;
    inst.set_vm_state(Some("deleted".into()));
    inst.set_task_state(None);
    inst.set_terminated_at(Some(chrono::Utc::now()));
    st.objects.save(&ctx, &mut inst).await?;
    st.objects.destroy(&ctx, &mut inst).await?;
    if let Ok(br) = st
        .objects
        .get::<BuildRequest>(&ctx, Lookup::field("instance_uuid", inst.uuid().as_str()))
        .await
    {
        let _ = st
            .objects
            .store()
            .destroy(&ctx, br.obj_to_primitive())
            .await;
    }
    Ok(())
}

pub(crate) async fn delete(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require_write(&ctx, "os_compute_api:servers:delete")?;
    let mut inst = get_instance(&st, &ctx, &id).await?;
    if *inst.locked() && !ctx.is_admin() {
        return Err(Fault::conflict(format!("Instance {id} is locked")));
    }
    if inst.task_state().as_deref() == Some("deleting") {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let host = inst.host().clone();
    inst.set_task_state(Some("deleting".into()));
    st.objects.save(&admin_ctx(), &mut inst).await?;
    match host {
        Some(h) if compute_up(&st, &h).await => {
            st.compute
                .terminate_instance(&ctx.rpc(), &h, &inst, &None)
                .await
                .map_err(Fault::internal)?;
        }
        _ => local_delete(&st, inst).await?,
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn action(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = json_body(&body)?;
    let Some((name, args)) = body
        .as_object()
        .and_then(|o| if o.len() == 1 { o.iter().next() } else { None })
    else {
        return Err(Fault::bad_request(
            "Malformed request body: an action body has exactly one key, the action name",
        ));
    };
    let name = name.clone();
    if !["reboot", "os-stop", "os-start"].contains(&name.as_str()) {
        return Err(Fault::bad_request(format!(
            "There is no such action: {name}"
        )));
    }
    require_write(&ctx, &format!("os_compute_api:servers:{name}"))?;
    let mut inst = get_instance(&st, &ctx, &id).await?;
    if *inst.locked() && !ctx.is_admin() {
        return Err(Fault::conflict(format!("Instance {id} is locked")));
    }
    let host = inst.host().clone().unwrap_or_default();
    let rpc = ctx.rpc();
    let (expected, new_task): (Vec<Option<&str>>, &str) = match name.as_str() {
        "reboot" => {
            schemas::check("reboot", crate::microversion::MIN, schemas::reboot, &body)?;
            let hard = args["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("HARD"));
            if hard {
                check_state(
                    &inst,
                    "reboot",
                    &["active", "stopped", "paused", "suspended", "error"],
                    &[
                        None,
                        Some("rebooting"),
                        Some("reboot_pending"),
                        Some("reboot_started"),
                    ],
                )?;
                (
                    vec![
                        None,
                        Some("rebooting"),
                        Some("reboot_pending"),
                        Some("reboot_started"),
                    ],
                    "rebooting_hard",
                )
            } else {
                check_state(&inst, "reboot", &["active"], &[None])?;
                (vec![None], "rebooting")
            }
        }
        "os-stop" => {
            check_state(&inst, "stop", &["active", "error"], &[None])?;
            (vec![None], "powering-off")
        }
        _ => {
            check_state(&inst, "start", &["stopped"], &[None])?;
            (vec![None], "powering-on")
        }
    };
    if host.is_empty() {
        return Err(Fault::conflict(format!(
            "Cannot '{name}' instance {id}: it is not on any host"
        )));
    }
    inst.set_task_state(Some(new_task.to_owned()));
    st.objects
        .save_with(
            &admin_ctx(),
            &mut inst,
            &SaveOptions::expected_task_state(expected),
        )
        .await
        .map_err(|_| {
            Fault::conflict(format!(
                "Cannot '{name}' instance {id}: another action is in progress"
            ))
        })?;
    let r = match name.as_str() {
        "reboot" => {
            let kind = if new_task == "rebooting_hard" {
                "HARD"
            } else {
                "SOFT"
            };
            st.compute
                .reboot_instance(&rpc, &host, &inst, &Value::Null, &kind.to_owned())
                .await
        }
        "os-stop" => {
            st.compute
                .stop_instance(&rpc, &host, &inst, &Some(true))
                .await
        }
        _ => st.compute.start_instance(&rpc, &host, &inst).await,
    };
    r.map_err(Fault::internal)?;
    Ok(StatusCode::ACCEPTED.into_response())
}
