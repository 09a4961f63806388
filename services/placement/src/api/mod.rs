//! The Placement HTTP API (Placement 16's routes, microversions 1.0 to
//! [`MAX`]) over any [`PlacementHandle`]: served by `nova-placement-api`
//! on its own port and by nova-all under `/placement`.
//!
//! Conventions, as Placement's: `OpenStack-API-Version: placement X.Y`
//! (or `latest`; none is 1.0; outside the range 406), errors as
//! `{"errors": [{status, title, detail, request_id, code (1.23)}]}`,
//! `Last-Modified` and `Cache-Control: no-cache` on reads from 1.15, 405
//! with `Allow`, `x-openstack-request-id` on every answer. Policy is
//! Placement's default: admin or service for everything, a project reader
//! for its own `GET /usages`.
//!
//! Files: `mod.rs` (router, framing, errors, auth), `util.rs` (bodies,
//! query strings), `providers.rs` (providers, their traits, aggregates,
//! usages and allocations), `inventories.rs`, `catalog.rs` (resource
//! classes and traits), `allocations.rs` (allocations, usages, reshaper),
//! `candidates.rs` (`GET /allocation_candidates`), `modified.rs`
//! (`Last-Modified` from the stored times).

mod allocations;
mod candidates;
mod catalog;
mod cors;
mod inventories;
mod modified;
mod policy;
mod providers;
mod util;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use nova_scheduler::placement::PlacementError;
use serde_json::json;

use crate::PlacementHandle;

pub use cors::Cors;
pub(crate) use modified::{fresh_at, newest, newest_or_now};
pub use policy::Policy;
pub(crate) use policy::Target;

/// The oldest microversion served.
pub const MIN: Mv = Mv(0);
/// The newest microversion served (Placement 16: 1.39).
pub const MAX: Mv = Mv(39);

/// A Placement microversion `1.N` (Placement has only major version 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mv(pub u16);

impl Mv {
    /// Whether this request is at `1.n` or newer.
    pub fn at(self, n: u16) -> bool {
        self.0 >= n
    }
}

impl std::fmt::Display for Mv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "1.{}", self.0)
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Caller {
    /// User id.
    pub user_id: String,
    /// Project id.
    pub project_id: String,
    /// Roles.
    pub roles: Vec<String>,
    /// A system-scoped token (`OpenStack-System-Scope`): Placement's rules
    /// are project-scoped, so it may do nothing.
    pub system_scope: bool,
}

impl Caller {
    /// Has role `r` (on a project).
    pub fn has(&self, r: &str) -> bool {
        !self.system_scope && self.roles.iter().any(|x| x == r)
    }
    /// Placement's `admin_or_service_api`.
    pub fn admin_or_service(&self) -> bool {
        self.has("admin") || self.has("service")
    }
}

/// Turns a request's headers into its caller (`None`: 401).
pub type Authenticate = Arc<dyn Fn(&HeaderMap) -> Option<Caller> + Send + Sync>;

/// Placement's `noauth2`: `X-Auth-Token: user[:project]` names the
/// caller; `X-Roles` sets the roles, else `admin` is an admin and anyone
/// else has none.
pub fn noauth2() -> Authenticate {
    Arc::new(|h: &HeaderMap| {
        let token = h.get("x-auth-token")?.to_str().ok()?;
        let (user, project) = match token.split_once(':') {
            Some((u, p)) if !p.is_empty() => (u, p),
            Some((u, _)) => (u, u),
            None => (token, token),
        };
        let roles = match h.get("x-roles").and_then(|v| v.to_str().ok()) {
            Some(r) => r
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            None if user == "admin" => vec!["admin".to_owned()],
            None => Vec::new(),
        };
        // keystonemiddleware's X-Project-Id, when given, names the project.
        let project = h
            .get("x-project-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .unwrap_or(project);
        let system_scope = h
            .get("openstack-system-scope")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.is_empty());
        Some(Caller {
            user_id: user.to_owned(),
            project_id: if system_scope {
                String::new()
            } else {
                project.to_owned()
            },
            roles,
            system_scope,
        })
    })
}

/// Callers as keystonemiddleware's `auth_token` vouched for them (behind
/// `nova_service::authtoken::middleware`, as Placement is behind
/// keystonemiddleware): `X-Identity-Status: Confirmed`, `X-User-Id`,
/// `X-Project-Id`, `X-Roles`, `OpenStack-System-Scope`. Anything else is
/// a 401.
pub fn keystone_headers() -> Authenticate {
    Arc::new(|h: &HeaderMap| {
        let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if get("x-identity-status") != "Confirmed" || get("x-user-id").is_empty() {
            return None;
        }
        let system_scope = !get("openstack-system-scope").is_empty();
        Some(Caller {
            user_id: get("x-user-id").to_owned(),
            project_id: if system_scope {
                String::new()
            } else {
                get("x-project-id").to_owned()
            },
            roles: get("x-roles")
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
            system_scope,
        })
    })
}

/// What the handlers share.
pub(crate) struct Api {
    pub(crate) placement: PlacementHandle,
    pub(crate) policy: Policy,
}

pub(crate) type St = axum::extract::State<Arc<Api>>;

/// A failed request: status, message, Placement error code. Rendered by
/// [`frame`] (which knows the microversion and request id).
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) detail: String,
    pub(crate) code: &'static str,
}

pub(crate) type ApiResult = Result<Response, ApiError>;

impl ApiError {
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
            code: "placement.undefined_code",
        }
    }
    pub(crate) fn bad(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
    pub(crate) fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }
    pub(crate) fn code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }
    pub(crate) fn forbidden(action: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            format!("Policy does not allow {action} to be performed."),
        )
    }
}

impl From<PlacementError> for ApiError {
    fn from(e: PlacementError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let code = match &e {
            PlacementError::NotFound(_) => "placement.undefined_code",
            other => other.code(),
        };
        let detail = match &e {
            PlacementError::NotFound(what) => format!("No {what} found"),
            other => other.to_string(),
        };
        ApiError {
            status,
            detail,
            code,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = self.status.into_response();
        r.extensions_mut().insert(self);
        r
    }
}

/// webob's explanation of a status, which Placement's details start with.
fn explanation(s: StatusCode) -> &'static str {
    match s.as_u16() {
        400 => {
            "The server could not comply with the request since it is either malformed or otherwise incorrect."
        }
        401 => {
            "This server could not verify that you are authorized to access the document you requested."
        }
        403 => "Access was denied to this resource.",
        404 => "The resource could not be found.",
        405 => "The method specified is not allowed for this resource.",
        406 => "The resource could not be generated that was acceptable to your browser.",
        409 => "There was a conflict when trying to complete your request.",
        415 => "The request media type is not supported by this server.",
        _ => "The server has either erred or is incapable of performing the requested operation.",
    }
}

/// The Placement router: mount it at `/` (`nova-placement-api`) or nest
/// it under `/placement` (nova-all; merge [`root_with_slash`] too).
pub fn router(placement: PlacementHandle, auth: Authenticate) -> Router {
    router_with_policy(placement, auth, Policy::default())
}

/// [`router`] with `policy`.
pub fn router_with_policy(
    placement: PlacementHandle,
    auth: Authenticate,
    policy: Policy,
) -> Router {
    let state = Arc::new(Api { placement, policy });
    let api = Router::new()
        .route(
            "/resource_classes",
            get(catalog::list_classes).post(catalog::create_class),
        )
        .route(
            "/resource_classes/{name}",
            get(catalog::get_class)
                .put(catalog::put_class)
                .delete(catalog::delete_class),
        )
        .route(
            "/resource_providers",
            get(providers::list).post(providers::create),
        )
        .route(
            "/resource_providers/{uuid}",
            get(providers::show)
                .put(providers::update)
                .delete(providers::delete),
        )
        .route(
            "/resource_providers/{uuid}/inventories",
            get(inventories::list)
                .post(inventories::create)
                .put(inventories::set_all)
                .delete(inventories::delete_all),
        )
        .route(
            "/resource_providers/{uuid}/inventories/{rc}",
            get(inventories::show)
                .put(inventories::update)
                .delete(inventories::delete),
        )
        .route("/resource_providers/{uuid}/usages", get(providers::usages))
        .route(
            "/resource_providers/{uuid}/aggregates",
            get(providers::aggregates).put(providers::set_aggregates),
        )
        .route(
            "/resource_providers/{uuid}/allocations",
            get(providers::allocations),
        )
        .route(
            "/resource_providers/{uuid}/traits",
            get(providers::traits)
                .put(providers::set_traits)
                .delete(providers::delete_traits),
        )
        .route("/allocations", post(allocations::post_many))
        .route(
            "/allocations/{consumer}",
            get(allocations::show)
                .put(allocations::put)
                .delete(allocations::delete),
        )
        .route("/allocation_candidates", get(candidates::list))
        .route("/traits", get(catalog::list_traits))
        .route(
            "/traits/{name}",
            get(catalog::get_trait)
                .put(catalog::put_trait)
                .delete(catalog::delete_trait),
        )
        .route("/usages", get(allocations::total_usages))
        .route("/reshaper", post(allocations::reshape))
        .layer(middleware::from_fn_with_state(auth, authorize))
        .route_layer(middleware::from_fn(media_types));
    let inner = Router::new()
        .route("/", get(home))
        .merge(api)
        .route_layer(middleware::from_fn(keep_route))
        .fallback(|| async { ApiError::not_found("The resource could not be found.") })
        .with_state(state);
    // `frame` around the whole router (not each route), so it sees the
    // `Allow` header axum adds to a 405.
    Router::new()
        .fallback_service(inner)
        .layer(middleware::from_fn(frame))
}

/// `GET /placement/` (the trailing slash), for a router that nests
/// [`router`] under `/placement`.
pub fn root_with_slash() -> Router {
    Router::new()
        .route("/placement/", get(home))
        .layer(middleware::from_fn(frame))
}

/// Where the API is mounted (`""` or `/placement`), for links.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prefix(pub(crate) String);

/// The caller, in the request's extensions (set by [`authorize`]).
pub(crate) type Who = axum::Extension<Caller>;

async fn authorize(
    axum::extract::State(auth): axum::extract::State<Authenticate>,
    mut req: Request,
    next: Next,
) -> Response {
    match auth(req.headers()) {
        Some(c) => {
            req.extensions_mut().insert(c);
            next.run(req).await
        }
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        )
        .into_response(),
    }
}

/// Placement's `require_content` (PUT and POST bodies are JSON: 415)
/// and `check_accept` (reads answer JSON only: 406), on matched routes.
async fn media_types(req: Request, next: Next) -> Response {
    let m = req.method().clone();
    let h = req.headers();
    let path = req.uri().path();
    // PUT /traits/{name} and PUT /resource_classes/{name} (1.7) take no body.
    let bodiless = path.starts_with("/traits/") || path.starts_with("/resource_classes/");
    // A route newer than the request's microversion is its handler's 404.
    let v = req.extensions().get::<Mv>().copied().unwrap_or(MIN);
    let since = if path.starts_with("/resource_classes") {
        2
    } else if path.starts_with("/traits") || path.ends_with("/traits") {
        6
    } else if path.starts_with("/allocation_candidates") {
        10
    } else if path.starts_with("/usages") {
        9
    } else if path.starts_with("/reshaper") {
        30
    } else if path == "/allocations" {
        13
    } else if path.ends_with("/aggregates") {
        1
    } else {
        0
    };
    if (m == Method::POST || m == Method::PUT) && !bodiless && v.at(since) {
        let ctype = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let json = ctype
            .split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            let shown = if ctype.is_empty() { "None" } else { ctype };
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("The media type {shown} is not supported, use application/json"),
            )
            .into_response();
        }
    }
    if m == Method::GET
        && let Some(accept) = h.get(header::ACCEPT).and_then(|v| v.to_str().ok())
    {
        let ok = accept.split(',').any(|a| {
            let t = a
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            t.is_empty() || t == "*/*" || t == "application/*" || t == "application/json"
        });
        if !ok {
            return ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                "Only application/json is provided",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Refuses a caller that the policy rule `action` does not allow (by
/// default: neither admin nor service).
pub(crate) fn admin_or_service(
    policy: &Policy,
    who: &Caller,
    action: &str,
) -> Result<(), ApiError> {
    if policy.allows(who, action, Target::default(), who.admin_or_service()) {
        Ok(())
    } else {
        Err(ApiError::forbidden(action))
    }
}

/// The microversion asked for in `headers`.
enum Asked {
    Ok(Mv),
    Malformed(String),
    Unacceptable(String),
}

fn negotiate(headers: &HeaderMap) -> Asked {
    let mut value: Option<String> = None;
    for v in headers.get_all("openstack-api-version") {
        for part in v.to_str().unwrap_or("").split(',') {
            let mut it = part.split_whitespace();
            if let (Some(svc), Some(ver)) = (it.next(), it.next())
                && svc.eq_ignore_ascii_case("placement")
            {
                value = Some(ver.to_owned());
            }
        }
    }
    let Some(v) = value else {
        return Asked::Ok(MIN);
    };
    if v.eq_ignore_ascii_case("latest") {
        return Asked::Ok(MAX);
    }
    let parsed = v.split_once('.').and_then(|(a, b)| {
        let ok = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        (ok(a) && ok(b)).then(|| (a.parse::<u32>().ok(), b.parse::<u32>().ok()))
    });
    match parsed {
        Some((Some(1), Some(minor))) if minor <= u32::from(MAX.0) => Asked::Ok(Mv(minor as u16)),
        Some((Some(_), Some(_))) => Asked::Unacceptable(v),
        _ => Asked::Malformed(v),
    }
}

/// HTTP date (`Last-Modified`).
pub(crate) fn http_date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Marks an answer as Placement does from 1.15 where its `Last-Modified`
/// is now (`modified.rs` has the stored times): `Last-Modified` and
/// `Cache-Control: no-cache`.
pub(crate) fn fresh(r: Response, v: Mv) -> Response {
    fresh_at(r, v, Some(chrono::Utc::now()))
}

/// Request id, microversion, content checks, and error bodies.
async fn frame(mut req: Request, next: Next) -> Response {
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    let method = req.method().clone();
    let error_type = error_type(req.headers());
    let asked = negotiate(req.headers());
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let (version, mut resp) = match asked {
        Asked::Ok(v) => {
            req.extensions_mut().insert(v);
            let prefix = req
                .extensions()
                .get::<axum::extract::OriginalUri>()
                .and_then(|o| o.0.path().strip_suffix(req.uri().path()).map(str::to_owned))
                .unwrap_or_default();
            req.extensions_mut().insert(Prefix(prefix));
            let has_body = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|n| n > 0);
            let no_type = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_none_or(str::is_empty);
            if has_body && no_type {
                (
                    Some(v),
                    ApiError::bad("content-type header required when content-length > 0")
                        .into_response(),
                )
            } else {
                (Some(v), next.run(req).await)
            }
        }
        Asked::Malformed(s) => (
            None,
            ApiError::bad(format!("invalid version string: {s}")).into_response(),
        ),
        Asked::Unacceptable(s) => (
            None,
            ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                format!("Unacceptable version header: {s}"),
            )
            .into_response(),
        ),
    };
    let matched = resp.extensions().get::<MatchedPath>().cloned();
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && resp.extensions().get::<ApiError>().is_none()
    {
        let method = method.clone();
        // Placement lists the methods it declares (no HEAD), ", "-separated.
        let allow = resp
            .headers()
            .get(header::ALLOW)
            .and_then(|a| a.to_str().ok())
            .map(|a| {
                a.split(',')
                    .map(str::trim)
                    .filter(|m| *m != "HEAD")
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .and_then(|a| HeaderValue::from_str(&a).ok());
        resp = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("The method {method} is not allowed for this resource."),
        )
        .into_response();
        if let Some(a) = allow {
            resp.headers_mut().insert(header::ALLOW, a);
        }
    }
    if let Some(e) = resp.extensions_mut().remove::<ApiError>() {
        if e.status == StatusCode::CONFLICT {
            // Generation conflicts (`placement.concurrent_update`) and the
            // other 409s; the codes are this crate's constants.
            metrics::counter!("nova_placement_conflicts_total", "code" => e.code).increment(1);
        }
        let title = e.status.canonical_reason().unwrap_or("Error");
        let mut body = json!({
            "status": e.status.as_u16(),
            "title": title,
            "detail": format!("{}\n\n {}  ", explanation(e.status), e.detail),
            "request_id": request_id,
        });
        if version.is_some_and(|v| v.at(23)) {
            body["code"] = json!(e.code);
        }
        if e.status == StatusCode::NOT_ACCEPTABLE && version.is_none() {
            body["max_version"] = json!(MAX.to_string());
            body["min_version"] = json!(MIN.to_string());
        }
        let keep: Vec<(header::HeaderName, HeaderValue)> = resp
            .headers()
            .iter()
            .filter(|(k, _)| *k == header::ALLOW || *k == header::LOCATION)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        resp = match error_type {
            ErrorType::Json => (e.status, axum::Json(json!({"errors": [body]}))).into_response(),
            ErrorType::Html | ErrorType::Plain => {
                let text = webob_body(&e, error_type);
                let ct = if error_type == ErrorType::Html {
                    "text/html; charset=UTF-8"
                } else {
                    "text/plain; charset=UTF-8"
                };
                (e.status, [(header::CONTENT_TYPE, ct)], text).into_response()
            }
        };
        for (k, v) in keep {
            resp.headers_mut().insert(k, v);
        }
    }
    if let Some(v) = version
        && resp.status() == StatusCode::OK
        && !resp.headers().contains_key(header::CACHE_CONTROL)
    {
        resp = fresh(resp, v);
    }
    if let Some(host) = &host
        && let Some(l) = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
        && l.starts_with('/')
        && let Ok(abs) = HeaderValue::from_str(&format!("http://{host}{l}"))
    {
        resp.headers_mut().insert(header::LOCATION, abs);
    }
    let h = resp.headers_mut();
    let shown = version.unwrap_or(MIN);
    if let Ok(x) = HeaderValue::from_str(&format!("placement {shown}")) {
        h.insert("openstack-api-version", x);
    }
    h.insert("vary", HeaderValue::from_static("openstack-api-version"));
    if let Ok(x) = HeaderValue::from_str(&request_id) {
        h.insert("x-openstack-request-id", x);
    }
    if let Some(m) = matched {
        resp.extensions_mut().insert(m);
    }
    resp
}

/// The matched route template, on the response: the router is a fallback
/// service, so a layer outside it (the `[metrics]` request counter) finds
/// the template there, never the raw path.
async fn keep_route(req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    if let Some(m) = matched {
        resp.extensions_mut().insert(m);
    }
    resp
}

/// How an error is rendered: as webob does, by the best of `text/html`
/// and `application/json` the `Accept` header takes (html first on a tie),
/// else plain text; no `Accept`, or exactly `*/*`, is JSON (Placement's
/// request log sets it so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorType {
    Json,
    Html,
    Plain,
}

fn error_type(h: &HeaderMap) -> ErrorType {
    let Some(accept) = h
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && *v != "*/*")
    else {
        return ErrorType::Json;
    };
    // Each media range with its q; an offer takes the most specific
    // range that matches it.
    let ranges: Vec<(String, f32)> = accept
        .split(',')
        .filter_map(|part| {
            let mut it = part.split(';');
            let range = it.next()?.trim().to_ascii_lowercase();
            if range.is_empty() {
                return None;
            }
            let q = it
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            Some((range, q))
        })
        .collect();
    let quality = |offer: &str| -> f32 {
        let (ty, _) = offer.split_once('/').unwrap_or((offer, ""));
        let mut best: Option<(u8, f32)> = None;
        for (r, q) in &ranges {
            let spec = if r == offer {
                3
            } else if r.strip_suffix("/*") == Some(ty) {
                2
            } else if r == "*/*" {
                1
            } else {
                continue;
            };
            if best.is_none_or(|(s, _)| spec > s) {
                best = Some((spec, *q));
            }
        }
        best.map_or(0.0, |(_, q)| q)
    };
    let (html, json) = (quality("text/html"), quality("application/json"));
    if html > 0.0 && html >= json {
        ErrorType::Html
    } else if json > 0.0 {
        ErrorType::Json
    } else {
        ErrorType::Plain
    }
}

/// webob's HTML or plain-text error page: the status, the explanation,
/// the detail, and the error code as an HTML comment when one was given.
fn webob_body(e: &ApiError, t: ErrorType) -> String {
    let status = format!(
        "{} {}",
        e.status.as_u16(),
        e.status.canonical_reason().unwrap_or("Error")
    );
    let comment = (e.code != "placement.undefined_code").then_some(e.code);
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#x27;")
    };
    if t == ErrorType::Html {
        let html_comment = comment.map_or(String::new(), |c| format!("<!-- {} -->", esc(c)));
        let body = format!(
            "{}<br /><br />\n{}\n{html_comment}\n",
            esc(explanation(e.status)),
            esc(&e.detail)
        );
        format!(
            "<html>\n <head>\n  <title>{status}</title>\n </head>\n <body>\n  <h1>{status}</h1>\n  {body}\n </body>\n</html>"
        )
    } else {
        // strip_tags: newlines to spaces, <br /> to a newline, no comment.
        let body = format!(
            "{}\n\n {}  ",
            explanation(e.status),
            e.detail.replace('\n', " ")
        );
        format!("{status}\n\n{body}")
    }
}

async fn home() -> Response {
    axum::Json(json!({"versions": [{
        "id": "v1.0",
        "min_version": MIN.to_string(),
        "max_version": MAX.to_string(),
        "status": "CURRENT",
        "links": [{"rel": "self", "href": ""}],
    }]}))
    .into_response()
}

/// An empty answer with `status`.
pub(crate) fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}
