//! The HTTP helpers every handler shares: the admin context for database
//! reads, JSON bodies, policy checks, query parameters and paging links.

use axum::body::Bytes;
use serde_json::{Value, json};

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};

/// The context the API reads and writes the database with (the caller's
/// rights are checked before): the services' one admin context.
pub(crate) use nova_service::context::admin as admin_ctx;

/// The JSON document of a request body (400 when it is not one).
pub(crate) fn json_body(body: &Bytes) -> ApiResult<Value> {
    if body.is_empty() {
        return Err(Fault::bad_request("Malformed request body"));
    }
    serde_json::from_slice(body).map_err(|_| Fault::bad_request("Malformed request body"))
}

/// Policy: `rule` (a reader rule in nova's defaults) on the caller's own
/// project, as [`crate::policy`] enforces it.
pub(crate) fn require_read(ctx: &Ctx, rule: &str) -> ApiResult<()> {
    require(ctx, rule)
}

/// Policy: `rule` (a member rule in nova's defaults) on the caller's own
/// project.
pub(crate) fn require_write(ctx: &Ctx, rule: &str) -> ApiResult<()> {
    require(ctx, rule)
}

/// Policy: `rule` (an admin rule in nova's defaults) on the caller's own
/// project.
pub(crate) fn require_admin(ctx: &Ctx, rule: &str) -> ApiResult<()> {
    require(ctx, rule)
}

/// Policy: `rule` on the caller's own project and user (nova's default
/// target).
pub(crate) fn require(ctx: &Ctx, rule: &str) -> ApiResult<()> {
    ctx.policy
        .enforce(ctx, rule, &crate::policy::own_target(ctx))
}

/// Policy: `rule` on a resource of `project_id` / `user_id`.
pub(crate) fn require_on(ctx: &Ctx, rule: &str, project_id: &str, user_id: &str) -> ApiResult<()> {
    ctx.policy
        .enforce(ctx, rule, &crate::policy::target(project_id, user_id))
}

/// The last value of query parameter `k`.
pub(crate) fn param<'a>(params: &'a [(String, String)], k: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
}

/// A query parameter a handler reads: its name and its JSON Schema (the
/// OpenAPI document lists each handler's with these).
pub(crate) type QueryParam = (&'static str, Value);

/// `limit` and `marker` (nova's paging).
pub(crate) fn paging_params() -> [QueryParam; 2] {
    [
        ("limit", json!({"type": "integer", "minimum": 0})),
        ("marker", json!({"type": "string"})),
    ]
}

/// A `changes-since` / `changes-before` time.
pub(crate) fn time_param(name: &'static str) -> QueryParam {
    (name, json!({"type": "string", "format": "date-time"}))
}

/// Nova's strict query schemas (`additionalProperties: false`, every
/// parameter a `single_param`): 400 for a parameter `known` does not list
/// or one given more than once, with jsonschema's messages as nova words them.
pub(crate) fn refuse_unknown_params(p: &[(String, String)], known: &[QueryParam]) -> ApiResult<()> {
    for (k, _) in p {
        if !known.iter().any(|(n, _)| n == k) {
            return Err(Fault::bad_request(format!(
                "Additional properties are not allowed ('{k}' was unexpected)"
            )));
        }
        let values: Vec<String> = p
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| format!("'{v}'"))
            .collect();
        if values.len() > 1 {
            let list = format!("[{}]", values.join(", "));
            return Err(Fault::bad_request(format!(
                "Invalid input for query parameters {k}. Value: {list}. {list} is too long"
            )));
        }
    }
    Ok(())
}

/// The pairs of `p` that `read` lists: a handler sees only the query
/// parameters it documents.
pub(crate) fn read_only(p: Vec<(String, String)>, read: &[QueryParam]) -> Vec<(String, String)> {
    p.into_iter()
        .filter(|(k, _)| read.iter().any(|(n, _)| n == k))
        .collect()
}

/// oslo's `bool_from_string` (`None` for anything else).
pub(crate) fn truthy(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// The page size a `limit` parameter asks for, capped by
/// `[api] max_limit` (the cap without one).
pub(crate) fn page_size(st: &ApiState, limit: Option<&str>) -> ApiResult<usize> {
    Ok(match limit {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| Fault::bad_request("limit param must be an integer"))?
            .min(st.cfg.max_limit),
        None => st.cfg.max_limit,
    })
}

/// The next-page link of a page of `len` items of at most `limit`, the
/// last one's marker being `last` (none when the page is not full).
pub(crate) fn next_link(
    st: &ApiState,
    path: &str,
    len: usize,
    limit: usize,
    last: Option<&str>,
) -> Option<String> {
    if len != limit || limit == 0 {
        return None;
    }
    last.map(|m| format!("{}/v2.1/{path}?limit={limit}&marker={m}", st.cfg.public_url))
}

/// Nova's marker/limit paging of a list sorted in memory (small
/// collections: flavors): drops everything up to the marker (400 when it
/// is unknown), keeps `limit` (capped by `[api] max_limit`), and returns
/// the next-page link when the page is full.
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
    let limit = page_size(st, limit)?;
    all.truncate(limit);
    Ok(next_link(st, path, all.len(), limit, all.last().map(&key)))
}

/// `body` with `<key>_links` holding the next-page link, if any.
pub(crate) fn with_links(mut body: Value, key: &str, next: Option<String>) -> Value {
    if let Some(n) = next {
        body[format!("{key}_links")] = json!([{"rel": "next", "href": n}]);
    }
    body
}
