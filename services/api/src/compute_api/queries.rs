//! Reading instances: one by uuid, and the servers list with nova's
//! filters, sorting and paging, all in SQL (nova's `API.get` and
//! `API.get_all`).

use nova_objects::{Flavor, Instance, ListQuery, Lookup, SortDir};
use nova_service::states::{VmState, states_of_status};
use serde_json::json;

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::admin_ctx;

fn not_found(id: &str) -> Fault {
    Fault::not_found(format!("Instance {id} could not be found."))
}

/// The instance `id` as `ctx` may see it (another project's is a 404),
/// with its fault when it is in error.
pub(crate) async fn get(st: &ApiState, ctx: &Ctx, id: &str) -> ApiResult<Instance> {
    get_with(st, ctx, id, &[]).await
}

/// [`get`] with nova's `expected_attrs` kept in other tables
/// (`info_cache`: the view's `addresses`), read with the instance.
pub(crate) async fn get_with(
    st: &ApiState,
    ctx: &Ctx,
    id: &str,
    attrs: &[&str],
) -> ApiResult<Instance> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found(id));
    }
    let mut inst = match st.objects.get_instance(&admin_ctx(), id, attrs).await {
        Ok(i) => i,
        Err(e) if e.is_not_found() => return Err(not_found(id)),
        Err(e) => return Err(e.into()),
    };
    if !ctx.is_admin() && inst.project_id().as_deref() != Some(ctx.project_id.as_str()) {
        return Err(not_found(id));
    }
    if inst.vm_state() == &VmState::Error {
        st.objects
            .load_instance_attrs(&admin_ctx(), &mut inst, &["fault"])
            .await?;
    }
    Ok(inst)
}

/// The instance fields a list may be sorted on (nova's
/// `VALID_SORT_KEYS` that we store).
pub(crate) const SORT_KEYS: &[&str] = &[
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

/// A servers list, parsed and checked by its handler.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListRequest {
    /// Only this project's (none: every project; admins).
    pub project_id: Option<String>,
    /// Only on this host (admins).
    pub host: Option<String>,
    /// Only those booted by this request (`reservation_id`, nova's `r-…`
    /// of a multiple create).
    pub reservation_id: Option<String>,
    /// nova's `ip` / `ip6`: regular expressions one of the instance's
    /// fixed IPv4 / IPv6 addresses matches from its start (compiled and
    /// bounded by the handler).
    pub ip: Option<regex::Regex>,
    pub ip6: Option<regex::Regex>,
    /// Deleted instances only (admins).
    pub deleted: bool,
    /// A regular expression the display name matches.
    pub name: Option<String>,
    /// An API status (`ACTIVE`, `SHUTOFF`, ...).
    pub status: Option<String>,
    /// A flavor id (`flavorid`).
    pub flavor: Option<String>,
    /// An image id.
    pub image: Option<String>,
    /// Changed at or after.
    pub changes_since: Option<chrono::DateTime<chrono::Utc>>,
    /// Changed at or before.
    pub changes_before: Option<chrono::DateTime<chrono::Utc>>,
    /// Sort keys (of [`SORT_KEYS`]) and directions, most significant
    /// first; `created_at` and `id` descending follow.
    pub sort: Vec<(String, SortDir)>,
    /// The uuid of the previous page's last instance.
    pub marker: Option<String>,
    /// Page size.
    pub limit: usize,
    /// nova's tag filters (`tags`, `tags-any`, `not-tags`,
    /// `not-tags-any`) and their tags.
    pub tags: Vec<(&'static str, Vec<String>)>,
}

/// One page of the servers list: filters, order, marker and limit go to
/// the database; instances in error come with their fault.
pub(crate) async fn list(st: &ApiState, r: &ListRequest) -> ApiResult<Vec<Instance>> {
    let mut q = ListQuery::new();
    if let Some(p) = &r.project_id {
        q = q.filter("project_id", p.as_str());
    }
    if let Some(h) = &r.host {
        q = q.filter("host", h.as_str());
    }
    if let Some(id) = &r.reservation_id {
        q = q.filter("reservation_id", id.as_str());
    }
    if let Some(name) = &r.name {
        q = q.regex("display_name", name.as_str());
    }
    if let Some(s) = &r.status {
        let Some((vms, tasks)) = states_of_status(s) else {
            // Nova: an unknown status matches nothing.
            return Ok(Vec::new());
        };
        let vms: Vec<&str> = vms.iter().map(|v| v.as_str()).collect();
        q = q.filter("vm_state", json!(vms));
        if let Some(t) = tasks {
            let t: Vec<&str> = t.iter().map(|t| t.as_str()).collect();
            q = q.filter("task_state", json!(t));
        }
    }
    if let Some(f) = &r.flavor {
        // Nova filters on the flavor's id; an unknown flavor matches nothing.
        match st
            .objects
            .get::<Flavor>(&admin_ctx(), Lookup::field("flavorid", f.as_str()))
            .await
        {
            Ok(flavor) => q = q.filter("instance_type_id", *flavor.id()),
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(i) = &r.image {
        q = q.filter("image_ref", i.as_str());
    }
    for (key, at) in [
        ("changes-since", r.changes_since),
        ("changes-before", r.changes_before),
    ] {
        if let Some(at) = at {
            q = q.filter(key, at.to_rfc3339());
        }
    }
    for (key, tags) in &r.tags {
        q = q.filter(key, json!(tags));
    }
    for (k, d) in &r.sort {
        q = q.sort(k, *d);
    }
    for k in ["created_at", "id"] {
        if !r.sort.iter().any(|(s, _)| s == k) {
            q = q.sort(k, SortDir::Desc);
        }
    }
    q.marker = r.marker.clone();
    let by_ip = r.ip.is_some() || r.ip6.is_some();
    // nova's `_ip_filter`: the addresses are in the info caches, so the
    // rows after the marker are read and filtered here, up to the limit.
    q.limit = (!by_ip).then_some(r.limit as u64);
    let mut ctx_db = admin_ctx();
    if r.deleted {
        ctx_db.set("read_deleted", "only");
    }
    let mut all: Vec<Instance> = st.objects.list(&ctx_db, &q).await?;
    if by_ip {
        st.objects.load_info_caches(&admin_ctx(), &mut all).await?;
        all.retain(|i| matches_ip(i, r.ip.as_ref(), r.ip6.as_ref()));
        all.truncate(r.limit);
    }
    for i in all.iter_mut().filter(|i| i.vm_state() == &VmState::Error) {
        st.objects
            .load_instance_attrs(&admin_ctx(), i, &["fault"])
            .await?;
    }
    Ok(all)
}

/// Whether a fixed address of `i` matches `ip` (IPv4) or `ip6` (IPv6) from
/// its start, as nova's `re.match`.
fn matches_ip(i: &Instance, ip: Option<&regex::Regex>, ip6: Option<&regex::Regex>) -> bool {
    crate::views::networks_of(i).iter().any(|(_, ips)| {
        ips.iter().filter(|a| a["type"] == "fixed").any(|a| {
            let addr = a["address"].as_str().unwrap_or_default();
            let re = if a["version"] == 6 { ip6 } else { ip };
            re.and_then(|re| re.find(addr))
                .is_some_and(|m| m.start() == 0)
        })
    })
}
