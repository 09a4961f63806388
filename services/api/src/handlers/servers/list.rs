//! `GET /servers` and `/servers/detail`: the query parameters become a
//! [`ListRequest`] the compute API runs in SQL.

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use nova_objects::{Instance, SortDir};
use serde_json::{Value, json};

use super::{Params, St};
use crate::ApiState;
use crate::auth::Ctx;
use crate::compute_api::{self, ListRequest, queries::SORT_KEYS};
use crate::fault::{ApiResult, Fault};
use crate::http::{next_link, page_size, param, require_read, truthy, with_links};
use crate::microversion::ApiVersion;
use crate::views;

/// The longest `name=` filter, in bytes.
const NAME_FILTER_MAX_LEN: usize = 1024;
/// The largest compiled `name=` filter (the regex crate's `size_limit`).
const NAME_FILTER_MAX_SIZE: usize = 256 * 1024;
/// The most tags one tag filter may name: nova's limit of tags on a
/// server (`instance.MAX_TAG_COUNT`). Each tag is a condition of the
/// database query; thousands of them overflowed the stack building it.
const TAG_FILTER_MAX: usize = 50;

/// The list request of query parameters `p` from `ctx`.
fn parse(
    st: &ApiState,
    ctx: &Ctx,
    v: ApiVersion,
    p: &[(String, String)],
) -> ApiResult<ListRequest> {
    let get = |k: &str| param(p, k);
    let all_tenants = get("all_tenants").is_some_and(|v| v.is_empty() || truthy(v).unwrap_or(true));
    if all_tenants && !ctx.is_admin() {
        return Err(Fault::policy(
            "os_compute_api:servers:index:get_all_tenants",
        ));
    }
    let mut r = ListRequest {
        project_id: if ctx.is_admin() && all_tenants {
            get("project_id").or(get("tenant_id")).map(str::to_owned)
        } else {
            Some(ctx.project_id.clone())
        },
        host: get("host").filter(|_| ctx.is_admin()).map(str::to_owned),
        reservation_id: get("reservation_id").map(str::to_owned),
        deleted: ctx.is_admin() && get("deleted").and_then(truthy).unwrap_or(false),
        status: get("status").map(str::to_owned),
        flavor: get("flavor").map(str::to_owned),
        image: get("image").map(|i| i.rsplit('/').next().unwrap_or(i).to_owned()),
        marker: get("marker").map(str::to_owned),
        limit: page_size(st, get("limit"))?,
        ..ListRequest::default()
    };
    // nova's `TAG_SEARCH_FILTERS` (2.26): comma-separated tags.
    if v.at_least(2, 26) {
        for key in ["tags", "tags-any", "not-tags", "not-tags-any"] {
            if let Some(t) = get(key) {
                let tags: Vec<String> = t.split(',').map(str::to_owned).collect();
                if tags.len() > TAG_FILTER_MAX {
                    return Err(Fault::bad_request(format!(
                        "Invalid input for query parameters {key}. At most {TAG_FILTER_MAX} tags may be given, not {}",
                        tags.len()
                    )));
                }
                r.tags.push((key, tags));
            }
        }
    }
    for (key, slot) in [("ip", &mut r.ip), ("ip6", &mut r.ip6)] {
        if let Some(pattern) = get(key) {
            if pattern.len() > NAME_FILTER_MAX_LEN {
                return Err(Fault::bad_request(format!(
                    "Invalid regular expression for {key}: longer than {NAME_FILTER_MAX_LEN} bytes"
                )));
            }
            *slot = Some(
                regex::RegexBuilder::new(pattern)
                    .size_limit(NAME_FILTER_MAX_SIZE)
                    .build()
                    .map_err(|e| {
                        Fault::bad_request(format!("Invalid regular expression for {key}: {e}"))
                    })?,
            );
        }
    }
    if let Some(name) = get("name") {
        // The database matches it against every row: its size is bounded
        // (a pattern that compiles to a large automaton, `\w{1000}`, costs
        // time per row), and it is compiled once per query.
        if name.len() > NAME_FILTER_MAX_LEN {
            return Err(Fault::bad_request(format!(
                "Invalid regular expression for name: longer than {NAME_FILTER_MAX_LEN} bytes"
            )));
        }
        regex::RegexBuilder::new(name)
            .size_limit(NAME_FILTER_MAX_SIZE)
            .build()
            .map_err(|e| Fault::bad_request(format!("Invalid regular expression for name: {e}")))?;
        r.name = Some(name.to_owned());
    }
    for (key, slot) in [
        ("changes-since", &mut r.changes_since),
        ("changes-before", &mut r.changes_before),
    ] {
        if let Some(t) = get(key) {
            *slot = Some(
                chrono::DateTime::parse_from_rfc3339(t)
                    .map_err(|_| {
                        Fault::bad_request(format!(
                            "Invalid filter field: {key}. Value {t} is not an ISO 8601 time."
                        ))
                    })?
                    .to_utc(),
            );
        }
    }
    let dirs: Vec<&str> = p
        .iter()
        .filter(|(k, _)| k == "sort_dir")
        .map(|(_, v)| v.as_str())
        .collect();
    for (n, k) in p
        .iter()
        .filter(|(k, _)| k == "sort_key")
        .map(|(_, v)| v.as_str())
        .enumerate()
    {
        if !SORT_KEYS.contains(&k) {
            return Err(Fault::bad_request(format!("Invalid sort_key {k}")));
        }
        let dir = match dirs.get(n).copied().unwrap_or("desc") {
            "desc" => SortDir::Desc,
            "asc" => SortDir::Asc,
            other => return Err(Fault::bad_request(format!("Invalid sort_dir {other}"))),
        };
        r.sort.push((k.to_owned(), dir));
    }
    Ok(r)
}

/// A page of servers and the link to the next one.
async fn page(
    st: &ApiState,
    ctx: &Ctx,
    v: ApiVersion,
    p: &[(String, String)],
    path: &str,
) -> ApiResult<(Vec<Instance>, Option<String>)> {
    let r = parse(st, ctx, v, p)?;
    let page = compute_api::list(st, &r).await?;
    let next = next_link(
        st,
        path,
        page.len(),
        r.limit,
        page.last().map(|i| i.uuid().as_str()),
    );
    Ok((page, next))
}

pub(crate) async fn list(
    State(st): St,
    Extension(ctx): Extension<Ctx>,
    Extension(v): Extension<ApiVersion>,
    Query(p): Params,
) -> ApiResult<Response> {
    require_read(&ctx, "os_compute_api:servers:index")?;
    let (all, next) = page(&st, &ctx, v, &p, "servers").await?;
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
    let (mut all, next) = page(&st, &ctx, v, &p, "servers/detail").await?;
    // Every listed server's addresses, from their info caches in one query.
    st.objects
        .load_info_caches(&crate::http::admin_ctx(), &mut all)
        .await?;
    if super::show::shows_host_status(&ctx, v, false) {
        compute_api::host_status::load_services(&st, &mut all).await?;
    }
    let mut servers: Vec<Value> = all
        .iter()
        .map(|i| views::server(&st, &ctx, v, i, false))
        .collect();
    compute_api::sched_hints::fill(&st, v, &mut servers).await?;
    let insts: Vec<&nova_objects::Instance> = all.iter().collect();
    crate::secgroups::fill(&st, &ctx, &mut servers, &insts).await?;
    Ok(axum::Json(with_links(json!({"servers": servers}), "servers", next)).into_response())
}
