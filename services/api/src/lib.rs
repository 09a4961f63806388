//! nova-api: the compute API v2.1 (axum) over nova-objects, the SQL
//! Placement store and the conductor/compute RPC APIs; with the built-in
//! identity service ([`auth`]) and the image service ([`image`]).
//!
//! Every request gets an `x-openstack-request-id`, a microversion
//! (both headers accepted and echoed, with `Vary`; 406 outside
//! 2.1 … [`microversion::MAX`]), a body limit (Nova's 112 KiB, 413
//! `overLimit`) and, except for the version documents, a validated token.
//! Errors are Nova's fault bodies.

pub mod auth;
pub mod fault;
pub mod image;
pub mod microversion;
pub mod placement;
pub mod serve;

mod admin;
pub mod flavors;
mod keypairs;
mod schemas;
mod servers;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use nova_objects::Objects;
use nova_placement::PlacementHandle;
use nova_rpc::Transport;
use nova_rpcapi::compute::ComputeApi;
use nova_rpcapi::conductor::ComputeTaskApi;

pub use auth::{AuthStrategy, CatalogEntry, Ctx, Identity, User};
pub use fault::{ApiResult, Fault};
pub use image::ImageStore;
pub use microversion::ApiVersion;

/// Nova's request body limit (`[oslo_middleware] max_request_body_size`).
pub const MAX_BODY: usize = 114_688;

/// Quota limits (`[quota]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quotas {
    /// `instances`.
    pub instances: i64,
    /// `cores`.
    pub cores: i64,
    /// `ram` (MiB).
    pub ram: i64,
    /// `metadata_items`.
    pub metadata_items: i64,
    /// `key_pairs`.
    pub key_pairs: i64,
    /// `server_groups`.
    pub server_groups: i64,
    /// `server_group_members`.
    pub server_group_members: i64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            instances: 10,
            cores: 20,
            ram: 51200,
            metadata_items: 128,
            key_pairs: 100,
            server_groups: 10,
            server_group_members: 10,
        }
    }
}

/// API settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The compute endpoint's public URL without `/v2.1`
    /// (`http://127.0.0.1:8774`).
    pub public_url: String,
    /// Quotas.
    pub quotas: Quotas,
    /// `[DEFAULT] service_down_time`.
    pub service_down_time: Duration,
    /// `[api] max_limit` (1000).
    pub max_limit: usize,
    /// `[DEFAULT] default_availability_zone` (`nova`).
    pub default_az: String,
    /// `[DEFAULT] internal_service_availability_zone` (`internal`).
    pub internal_az: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            public_url: "http://127.0.0.1:8774".into(),
            quotas: Quotas::default(),
            service_down_time: Duration::from_secs(60),
            max_limit: 1000,
            default_az: "nova".into(),
            internal_az: "internal".into(),
        }
    }
}

impl ApiConfig {
    /// From nova.conf.
    pub fn from_conf(conf: &nova_service::Conf, public_url: &str) -> anyhow::Result<Self> {
        let d = Quotas::default();
        let q = |k: &str, def: i64| conf.parse_or("quota", k, def);
        let (_, down) = conf.service_group()?;
        Ok(ApiConfig {
            public_url: public_url.trim_end_matches('/').to_owned(),
            quotas: Quotas {
                instances: q("instances", d.instances)?,
                cores: q("cores", d.cores)?,
                ram: q("ram", d.ram)?,
                metadata_items: q("metadata_items", d.metadata_items)?,
                key_pairs: q("key_pairs", d.key_pairs)?,
                server_groups: q("server_groups", d.server_groups)?,
                server_group_members: q("server_group_members", d.server_group_members)?,
            },
            service_down_time: Duration::from_secs(down),
            max_limit: conf.parse_or("api", "max_limit", 1000usize)?,
            default_az: conf.str_or("DEFAULT", "default_availability_zone", "nova"),
            internal_az: conf.str_or("DEFAULT", "internal_service_availability_zone", "internal"),
        })
    }
}

/// What every handler shares.
#[derive(Debug)]
pub struct ApiState {
    /// Settings.
    pub cfg: ApiConfig,
    /// The database's objects.
    pub objects: Objects,
    /// Placement.
    pub placement: PlacementHandle,
    /// Compute RPC.
    pub compute: ComputeApi,
    /// Conductor compute-task RPC.
    pub conductor: ComputeTaskApi,
    /// Images.
    pub images: ImageStore,
    /// Tokens.
    pub identity: Identity,
}

impl ApiState {
    /// State over these parts.
    pub fn new(
        cfg: ApiConfig,
        objects: Objects,
        placement: PlacementHandle,
        transport: Arc<dyn Transport>,
        images: ImageStore,
        identity: Identity,
        compute_cap: Option<nova_rpc::Version>,
    ) -> Self {
        ApiState {
            cfg,
            objects,
            placement,
            compute: ComputeApi::new(transport.clone()).version_cap(compute_cap),
            conductor: ComputeTaskApi::new(transport),
            images,
            identity,
        }
    }
}

type St = State<Arc<ApiState>>;

/// The compute API router (version documents, `/v2.1/...`) plus the
/// Placement API's read side under `/placement` and the identity routes
/// under `/identity`.
pub fn router(state: Arc<ApiState>) -> Router {
    let v21 = Router::new()
        .route("/servers", get(servers::list).post(servers::create))
        .route("/servers/detail", get(servers::detail))
        .route(
            "/servers/{id}",
            get(servers::show)
                .put(servers::update)
                .delete(servers::delete),
        )
        .route("/servers/{id}/action", post(servers::action))
        .route("/flavors", get(flavors::list).post(flavors::create))
        .route("/flavors/detail", get(flavors::detail))
        .route(
            "/flavors/{id}",
            get(flavors::show)
                .put(flavors::update)
                .delete(flavors::delete),
        )
        .route("/flavors/{id}/action", post(flavors::action))
        .route("/flavors/{id}/os-flavor-access", get(flavors::access_list))
        .route(
            "/flavors/{id}/os-extra_specs",
            get(flavors::extra_specs).post(flavors::set_extra_specs),
        )
        .route(
            "/flavors/{id}/os-extra_specs/{key}",
            get(flavors::extra_spec)
                .put(flavors::put_extra_spec)
                .delete(flavors::delete_extra_spec),
        )
        .route("/os-keypairs", get(keypairs::list).post(keypairs::create))
        .route(
            "/os-keypairs/{name}",
            get(keypairs::show).delete(keypairs::delete),
        )
        .route("/os-hypervisors", get(admin::hypervisors))
        .route("/os-hypervisors/detail", get(admin::hypervisors_detail))
        .route("/os-hypervisors/{id}", get(admin::hypervisor))
        .route("/os-services", get(admin::services))
        .route(
            "/os-services/{id}",
            put(admin::update_service).delete(admin::delete_service),
        )
        .route("/os-availability-zone", get(admin::zones))
        .route("/os-availability-zone/detail", get(admin::zones_detail))
        .route("/limits", get(admin::limits))
        .route("/os-quota-sets/{project}", get(admin::quota_show))
        .route("/os-quota-sets/{project}/detail", get(admin::quota_detail))
        .route(
            "/os-quota-sets/{project}/defaults",
            get(admin::quota_defaults),
        )
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .route("/", get(version_v21))
        .fallback(not_found);
    Router::new()
        .route("/", get(versions))
        .route("/v2.1/", get(version_v21))
        .nest("/v2.1", v21)
        .fallback(not_found)
        .layer(middleware::from_fn(frame))
        .with_state(state.clone())
        .nest("/placement", placement::router(state.clone()))
        .merge(placement::root_with_slash())
        .nest(
            "/identity",
            auth::router(
                state.identity.clone(),
                &format!("{}/identity", state.cfg.public_url),
            ),
        )
}

async fn not_found() -> Fault {
    Fault::not_found("The resource could not be found.")
}

/// Request id, body limit, microversion, and the response headers that
/// go with them (on errors too).
async fn frame(req: Request, next: Next) -> Response {
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    let (mut parts, body) = req.into_parts();
    let negotiated = microversion::negotiate(&parts.headers);
    let version = match &negotiated {
        microversion::Negotiated::Ok(v) => *v,
        _ => microversion::MIN,
    };
    let mut resp = match negotiated {
        microversion::Negotiated::Malformed(v) => Fault::bad_request(format!(
            "API Version String {v} is of invalid format. Must be of format MajorNum.MinorNum."
        ))
        .into_response(),
        microversion::Negotiated::Unsupported(v) => Fault::new(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "Version {v} is not supported by the API. Minimum is {} and maximum is {}.",
                microversion::MIN,
                microversion::MAX
            ),
        )
        .into_response(),
        microversion::Negotiated::Ok(v) => {
            let declared = parts
                .headers
                .get(axum::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            if declared.is_some_and(|n| n > MAX_BODY) {
                too_large()
            } else {
                match axum::body::to_bytes(body, MAX_BODY).await {
                    Err(_) => too_large(),
                    Ok(bytes) => {
                        let span = tracing::info_span!(
                            "api",
                            request_id = %request_id,
                            method = %parts.method,
                            path = %parts.uri.path(),
                        );
                        parts.extensions.insert(v);
                        parts.extensions.insert(RequestId(request_id.clone()));
                        tracing::Instrument::instrument(
                            next.run(Request::from_parts(parts, Body::from(bytes))),
                            span,
                        )
                        .await
                    }
                }
            }
        }
    };
    let h = resp.headers_mut();
    let v = version.to_string();
    if let Ok(x) = HeaderValue::from_str(&format!("compute {v}")) {
        h.insert("openstack-api-version", x);
    }
    if let Ok(x) = HeaderValue::from_str(&v) {
        h.insert("x-openstack-nova-api-version", x);
    }
    h.insert(
        "vary",
        HeaderValue::from_static("OpenStack-API-Version, X-OpenStack-Nova-API-Version"),
    );
    if let Ok(x) = HeaderValue::from_str(&request_id) {
        h.insert("x-openstack-request-id", x.clone());
        h.insert("x-compute-request-id", x);
    }
    resp
}

/// 413 `overLimit`. The body was not read to its end, so the connection
/// cannot carry another request: `Connection: close` tells the client not
/// to reuse it.
fn too_large() -> Response {
    let mut resp =
        Fault::new(StatusCode::PAYLOAD_TOO_LARGE, "Request is too large.").into_response();
    resp.headers_mut().insert(
        axum::http::header::CONNECTION,
        HeaderValue::from_static("close"),
    );
    resp
}

/// The request id of a request.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

async fn authenticate(State(st): St, mut req: Request, next: Next) -> Response {
    let rid = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    match st.identity.authenticate(req.headers(), &rid) {
        Some(ctx) => {
            req.extensions_mut().insert(ctx);
            next.run(req).await
        }
        None => Fault::unauthorized("The request you have made requires authentication.")
            .into_response(),
    }
}

fn version_doc(st: &ApiState) -> serde_json::Value {
    serde_json::json!({
        "id": "v2.1",
        "status": "CURRENT",
        "version": microversion::MAX.to_string(),
        "min_version": microversion::MIN.to_string(),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": format!("{}/v2.1/", st.cfg.public_url)},
                  {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}],
    })
}

async fn versions(State(st): St) -> Response {
    let v20 = serde_json::json!({
        "id": "v2.0", "status": "DEPRECATED", "version": "", "min_version": "",
        "updated": "2011-01-21T11:33:21Z",
        "links": [{"rel": "self", "href": format!("{}/v2/", st.cfg.public_url)}],
    });
    axum::Json(serde_json::json!({"versions": [v20, version_doc(&st)]})).into_response()
}

async fn version_v21(State(st): St) -> Response {
    axum::Json(serde_json::json!({"version": version_doc(&st)})).into_response()
}
