//! The Placement API's read side (`/placement` on the compute port, in the
//! service catalog as `placement`): the version document, resource
//! providers with their inventories, usages and traits, and a consumer's
//! allocations, from the SQL Placement store the scheduler and computes
//! write. Microversions `placement 1.0` … [`MAX`]; admin only (Placement's
//! default policy); errors in Placement's `{"errors": [...]}` shape.
//! Writes stay with the services (computes report inventory, the
//! scheduler claims).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use nova_scheduler::placement::{PlacementError, ResourceProvider};
use serde_json::{Value, json};

use crate::ApiState;
use crate::microversion::{ApiVersion, Negotiated, negotiate_for};

/// The oldest Placement microversion served.
pub const MIN: ApiVersion = ApiVersion(1, 0);
/// The newest Placement microversion served (Placement of 2024.1 and later).
pub const MAX: ApiVersion = ApiVersion(1, 39);

type St = State<Arc<ApiState>>;
type Params = Query<BTreeMap<String, String>>;

/// A Placement error: status and detail, rendered as Placement does.
#[derive(Debug)]
struct PlacementFault(StatusCode, String);

impl From<PlacementError> for PlacementFault {
    fn from(e: PlacementError) -> Self {
        // 404, 400, 409 for conflicts and in-use refusals, 503 for an outage.
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        PlacementFault(status, e.to_string())
    }
}

impl IntoResponse for PlacementFault {
    fn into_response(self) -> Response {
        let title = self.0.canonical_reason().unwrap_or("Error");
        let body = json!({"errors": [{
            "status": self.0.as_u16(),
            "title": title,
            "detail": format!("{title}\n\n{}  ", self.1),
            "code": "placement.undefined_code",
        }]});
        (self.0, axum::Json(body)).into_response()
    }
}

type PResult = Result<Response, PlacementFault>;

/// The Placement router, to be nested under `/placement`.
pub fn router(state: Arc<ApiState>) -> Router {
    let api = Router::new()
        .route("/resource_providers", get(providers))
        .route("/resource_providers/{uuid}", get(provider))
        .route("/resource_providers/{uuid}/inventories", get(inventories))
        .route("/resource_providers/{uuid}/usages", get(usages))
        .route("/resource_providers/{uuid}/traits", get(traits))
        .route("/allocations/{consumer}", get(allocations))
        .layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/", get(versions))
        .merge(api)
        .fallback(|| async {
            PlacementFault(
                StatusCode::NOT_FOUND,
                "The resource could not be found.".into(),
            )
        })
        .layer(middleware::from_fn(frame))
        .with_state(state)
}

/// `GET /placement/` (the version document with a trailing slash), to be
/// merged at the root beside the nested [`router`].
pub fn root_with_slash() -> Router {
    Router::new()
        .route("/placement/", get(versions))
        .layer(middleware::from_fn(frame))
}

/// Request id and microversion, and the headers that echo them.
async fn frame(mut req: Request, next: Next) -> Response {
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    let (version, mut resp) = match negotiate_for(req.headers(), "placement", None, MIN, MAX) {
        Negotiated::Ok(v) => {
            req.extensions_mut().insert(v);
            req.extensions_mut()
                .insert(crate::RequestId(request_id.clone()));
            (v, next.run(req).await)
        }
        Negotiated::Malformed(v) => (
            MIN,
            PlacementFault(
                StatusCode::BAD_REQUEST,
                format!("invalid version string: {v}"),
            )
            .into_response(),
        ),
        Negotiated::Unsupported(v) => (
            MIN,
            PlacementFault(
                StatusCode::NOT_ACCEPTABLE,
                format!("Unacceptable version header: {v}"),
            )
            .into_response(),
        ),
    };
    let h = resp.headers_mut();
    if let Ok(x) = HeaderValue::from_str(&format!("placement {version}")) {
        h.insert("openstack-api-version", x);
    }
    h.insert("vary", HeaderValue::from_static("openstack-api-version"));
    if let Ok(x) = HeaderValue::from_str(&request_id) {
        h.insert("x-openstack-request-id", x);
    }
    resp
}

/// A valid token with the admin role (Placement's default policy).
async fn authorize(State(st): St, req: Request, next: Next) -> Response {
    let rid = req
        .extensions()
        .get::<crate::RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    match st.identity.authenticate(req.headers(), &rid) {
        None => PlacementFault(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.".into(),
        )
        .into_response(),
        Some(ctx) if !ctx.is_admin() => PlacementFault(
            StatusCode::FORBIDDEN,
            format!(
                "Policy does not allow placement:{} to be performed.",
                req.uri().path().trim_start_matches('/')
            ),
        )
        .into_response(),
        Some(_) => next.run(req).await,
    }
}

async fn versions() -> Response {
    axum::Json(json!({"versions": [{
        "id": "v1.0",
        "min_version": MIN.to_string(),
        "max_version": MAX.to_string(),
        "status": "CURRENT",
        "links": [{"rel": "self", "href": ""}],
    }]}))
    .into_response()
}

fn provider_view(rp: &ResourceProvider, v: ApiVersion) -> Value {
    let base = format!("/resource_providers/{}", rp.uuid);
    let mut links = vec![
        json!({"rel": "self", "href": base}),
        json!({"rel": "inventories", "href": format!("{base}/inventories")}),
        json!({"rel": "usages", "href": format!("{base}/usages")}),
    ];
    if v.at_least(1, 6) {
        links.push(json!({"rel": "traits", "href": format!("{base}/traits")}));
    }
    let mut out = json!({
        "uuid": rp.uuid, "name": rp.name, "generation": rp.generation, "links": links,
    });
    if v.at_least(1, 14) {
        out["parent_provider_uuid"] = json!(rp.parent_provider_uuid);
        out["root_provider_uuid"] = json!(rp.root_provider_uuid);
    }
    out
}

fn version_of(req_v: Option<axum::Extension<ApiVersion>>) -> ApiVersion {
    req_v.map_or(MIN, |axum::Extension(v)| v)
}

async fn providers(
    State(st): St,
    v: Option<axum::Extension<ApiVersion>>,
    Query(p): Params,
) -> PResult {
    let v = version_of(v);
    if let Some(k) = p.keys().find(|k| *k != "name" && *k != "uuid") {
        return Err(PlacementFault(
            StatusCode::BAD_REQUEST,
            format!(
                "Invalid query string parameters: '{k}' is not a filter this Placement serves (name, uuid)"
            ),
        ));
    }
    let rps = st
        .placement
        .list_providers_async(
            p.get("name").map(String::as_str),
            p.get("uuid").map(String::as_str),
        )
        .await?;
    let list: Vec<Value> = rps.iter().map(|rp| provider_view(rp, v)).collect();
    Ok(axum::Json(json!({"resource_providers": list})).into_response())
}

async fn provider(
    State(st): St,
    v: Option<axum::Extension<ApiVersion>>,
    Path(uuid): Path<String>,
) -> PResult {
    let rp = st.placement.get_provider_async(&uuid).await?;
    Ok(axum::Json(provider_view(&rp, version_of(v))).into_response())
}

async fn inventories(State(st): St, Path(uuid): Path<String>) -> PResult {
    let (generation, inv) = st.placement.inventories_async(&uuid).await?;
    let inv: serde_json::Map<String, Value> = inv
        .into_iter()
        .map(|(rc, i)| {
            (
                rc,
                json!({
                    "total": i.total, "reserved": i.reserved, "min_unit": i.min_unit,
                    "max_unit": i.max_unit, "step_size": i.step_size,
                    "allocation_ratio": i.allocation_ratio,
                }),
            )
        })
        .collect();
    Ok(
        axum::Json(json!({"resource_provider_generation": generation, "inventories": inv}))
            .into_response(),
    )
}

async fn usages(State(st): St, Path(uuid): Path<String>) -> PResult {
    let rp = st.placement.get_provider_async(&uuid).await?;
    let usages = st.placement.usages_async(&uuid).await?;
    Ok(
        axum::Json(json!({"resource_provider_generation": rp.generation, "usages": usages}))
            .into_response(),
    )
}

async fn traits(State(st): St, Path(uuid): Path<String>) -> PResult {
    let (generation, traits) = st.placement.traits_async(&uuid).await?;
    Ok(
        axum::Json(json!({"resource_provider_generation": generation, "traits": traits}))
            .into_response(),
    )
}

async fn allocations(
    State(st): St,
    v: Option<axum::Extension<ApiVersion>>,
    Path(consumer): Path<String>,
) -> PResult {
    let v = version_of(v);
    // A consumer without allocations gets an empty map, as in Placement.
    let a = st.placement.allocations_async(&consumer).await?;
    let mut out = serde_json::Map::new();
    for (rp, resources) in &a.allocations {
        let generation = match st.placement.get_provider_async(rp.as_ref()).await {
            Ok(p) => json!(p.generation),
            Err(_) => Value::Null,
        };
        out.insert(
            rp.to_string(),
            json!({"generation": generation, "resources": resources}),
        );
    }
    let mut body = json!({"allocations": out});
    if v.at_least(1, 12) && !a.allocations.is_empty() {
        body["project_id"] = json!(a.project_id);
        body["user_id"] = json!(a.user_id);
    }
    if v.at_least(1, 28) && !a.allocations.is_empty() {
        body["consumer_generation"] = json!(a.consumer_generation);
    }
    Ok(axum::Json(body).into_response())
}
