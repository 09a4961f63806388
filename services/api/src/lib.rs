//! nova-api: the compute API v2.1 (axum) over nova-objects, the SQL
//! Placement store and the conductor/compute RPC APIs; with the built-in
//! identity service ([`auth`]) and the image service ([`image`]).
//!
//! Every request gets an `x-openstack-request-id`, a microversion
//! (both headers accepted and echoed, with `Vary`; 406 outside
//! 2.1 … [`microversion::MAX`]), a body limit (Nova's 112 KiB, 413
//! `overLimit`) and, except for the version documents, a validated token:
//! one tower layer each (`layers`). Errors are Nova's fault bodies.
//!
//! A request goes HTTP handler (`handlers`: parse, policy, schema, view)
//! → compute API layer (`compute_api`: the operations, the only caller of
//! the RPC clients) → RPC → conductor/compute managers.

pub mod auth;
pub mod fault;
pub mod image;
pub mod microversion;
pub mod placement;
pub mod policy;
pub mod serve;

mod admin;
mod aggregates;
mod compute_api;
mod external_events;
mod extra_specs;
mod flavor_rules;
pub mod flavors;
mod floating_ips_proxy;
mod handlers;
mod hosts;
mod http;
mod image_rules;
mod images_proxy;
mod keypairs;
pub mod keystone;
mod layers;
mod networks_proxy;
pub mod quotas;
#[macro_use]
pub mod routes;
mod openapi;
mod schemas;
mod secgroups;
mod server_groups;
#[cfg(test)]
mod tests;
mod usage;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use nova_objects::Objects;
use nova_placement::PlacementHandle;
use nova_rpc::Transport;

use handlers::servers;

pub use auth::{AuthStrategy, CallerAuth, CatalogEntry, Ctx, Identity, User};
pub use fault::{ApiResult, Fault};
pub use image::ImageStore;
pub use layers::RequestId;
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
    /// `injected_files`.
    pub injected_files: i64,
    /// `injected_file_content_bytes`.
    pub injected_file_content_bytes: i64,
    /// `injected_file_path_bytes`.
    pub injected_file_path_bytes: i64,
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
            injected_files: 5,
            injected_file_content_bytes: 10240,
            injected_file_path_bytes: 255,
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
    /// `[DEFAULT] host` (notifications publish as `nova-api:<host>`; the
    /// host of the API's instance action events).
    pub host: String,
    /// `[DEFAULT] reclaim_instance_interval` (s; > 0: deletes are soft).
    pub reclaim_instance_interval: i64,
    /// `[api] enable_instance_password`: rescue returns `adminPass`.
    pub enable_instance_password: bool,
    /// `[DEFAULT] instance_name_template` (`instance-%08x`).
    pub instance_name_template: String,
    /// `[DEFAULT] allow_resize_to_same_host` (false).
    pub allow_resize_to_same_host: bool,
    /// `[DEFAULT] instance_usage_audit_period` (`month`): the periods
    /// `os-instance_usage_audit_log` reports on.
    pub audit_period: nova_service::audit_period::AuditPeriod,
    /// `[neutron] default_floating_pool` (`nova`): the external network
    /// `os-floating-ips` allocates from when no pool is named.
    pub default_floating_pool: String,
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
            host: "localhost".into(),
            reclaim_instance_interval: 0,
            enable_instance_password: true,
            instance_name_template: nova_service::instance_name::DEFAULT_TEMPLATE.into(),
            allow_resize_to_same_host: false,
            audit_period: Default::default(),
            default_floating_pool: "nova".into(),
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
                injected_files: q("injected_files", d.injected_files)?,
                injected_file_content_bytes: q(
                    "injected_file_content_bytes",
                    d.injected_file_content_bytes,
                )?,
                injected_file_path_bytes: q(
                    "injected_file_path_bytes",
                    d.injected_file_path_bytes,
                )?,
            },
            service_down_time: Duration::from_secs(down),
            max_limit: conf.parse_or("api", "max_limit", 1000usize)?,
            default_az: conf.str_or("DEFAULT", "default_availability_zone", "nova"),
            internal_az: conf.str_or("DEFAULT", "internal_service_availability_zone", "internal"),
            host: conf.host(),
            reclaim_instance_interval: conf.parse_or(
                "DEFAULT",
                "reclaim_instance_interval",
                0i64,
            )?,
            enable_instance_password: conf.bool_or("api", "enable_instance_password", true)?,
            instance_name_template: nova_service::instance_name::template(conf),
            allow_resize_to_same_host: conf.bool_or(
                "DEFAULT",
                "allow_resize_to_same_host",
                false,
            )?,
            audit_period: nova_service::audit_period::AuditPeriod::from_conf(conf)?,
            default_floating_pool: conf.str_or("neutron", "default_floating_pool", "nova"),
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
    /// The conductor and compute RPC clients (the compute API layer's).
    pub(crate) rpc: compute_api::Rpc,
    /// Images.
    pub images: ImageStore,
    /// Tokens.
    pub identity: Identity,
    /// Per-project quota limits (`[quota]` defaults until stored ones are
    /// opened: [`quotas::QuotaStore::open`]).
    pub quotas: quotas::QuotaStore,
    /// Notifications (`flavor.*`, `keypair.*`, `service.*`, local deletes,
    /// `instance.update`); none unless set ([`nova_service::Runner::notifier`]).
    pub notifier: nova_service::notifications::Notifier,
    /// The network API (`[neutron]`, or nova-all's built-in network
    /// service): requested networks are checked against it; unset, only
    /// `"none"`/`"auto"` networks can be asked for.
    pub network: std::sync::OnceLock<Arc<nova_service::neutron::NeutronClient>>,
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
            quotas: quotas::QuotaStore::config_only(cfg.quotas.clone()),
            cfg,
            objects,
            placement,
            rpc: compute_api::Rpc::new(transport, compute_cap),
            images,
            identity,
            notifier: nova_service::notifications::Notifier::disabled(),
            network: std::sync::OnceLock::new(),
        }
    }

    /// The network API, when there is one.
    pub fn network(&self) -> Option<&Arc<nova_service::neutron::NeutronClient>> {
        self.network.get()
    }
}

type St = State<Arc<ApiState>>;

// The compute API's routes under `/v2.1` (behind the token check): the
// router is built from this table, and so is the OpenAPI document
// (`openapi`), so neither can have a route the other lacks.
route_table! {
    fn v21_routes, const V21_ROUTES;
    "/servers" => get(servers::list).post(servers::create),
    "/servers/detail" => get(servers::detail),
    "/servers/{id}" => get(servers::show).put(servers::update).delete(servers::delete),
    "/servers/{id}/action" => post(servers::action),
    "/servers/{id}/migrations" => get(servers::moves::index),
    "/servers/{id}/migrations/{migration_id}" => get(servers::moves::show).delete(servers::moves::delete),
    "/servers/{id}/migrations/{migration_id}/action" => post(servers::moves::migration_action),
    "/os-migrations" => get(servers::moves::os_migrations),
    "/servers/{id}/metadata" => get(servers::metadata::index).post(servers::metadata::create).put(servers::metadata::update_all),
    "/servers/{id}/metadata/{key}" => get(servers::metadata::show).put(servers::metadata::update).delete(servers::metadata::delete),
    "/servers/{id}/tags" => get(servers::tags::index).put(servers::tags::update_all).delete(servers::tags::delete_all),
    "/servers/{id}/tags/{tag}" => get(servers::tags::show).put(servers::tags::update).delete(servers::tags::delete),
    "/servers/{id}/os-server-password" => get(servers::extras::password_show).delete(servers::extras::password_clear),
    "/servers/{id}/diagnostics" => get(servers::extras::diagnostics),
    "/servers/{id}/topology" => get(servers::extras::topology),
    "/servers/{id}/ips" => get(servers::ips::index),
    "/servers/{id}/ips/{network}" => get(servers::ips::show),
    "/servers/{id}/remote-consoles" => post(handlers::consoles::create),
    "/os-console-auth-tokens/{token}" => get(handlers::consoles::token_show),
    "/servers/{id}/os-instance-actions" => get(servers::instance_actions),
    "/servers/{id}/os-instance-actions/{request_id}" => get(servers::instance_action),
    "/flavors" => get(flavors::list).post(flavors::create),
    "/flavors/detail" => get(flavors::detail),
    "/flavors/{id}" => get(flavors::show).put(flavors::update).delete(flavors::delete),
    "/flavors/{id}/action" => post(flavors::action),
    "/flavors/{id}/os-flavor-access" => get(flavors::access_list),
    "/flavors/{id}/os-extra_specs" => get(flavors::extra_specs).post(flavors::set_extra_specs),
    "/flavors/{id}/os-extra_specs/{key}" => get(flavors::extra_spec).put(flavors::put_extra_spec).delete(flavors::delete_extra_spec),
    "/os-keypairs" => get(keypairs::list).post(keypairs::create),
    "/os-keypairs/{name}" => get(keypairs::show).delete(keypairs::delete),
    "/os-hypervisors" => get(admin::hypervisors),
    "/os-hypervisors/detail" => get(admin::hypervisors_detail),
    "/os-hypervisors/{id}" => get(admin::hypervisor),
    "/os-services" => get(admin::services),
    "/os-services/{id}" => put(admin::update_service).delete(admin::delete_service),
    "/os-availability-zone" => get(admin::zones),
    "/os-availability-zone/detail" => get(admin::zones_detail),
    "/os-aggregates" => get(aggregates::list).post(aggregates::create),
    "/os-aggregates/{id}" => get(aggregates::show).put(aggregates::update).delete(aggregates::delete),
    "/os-aggregates/{id}/action" => post(aggregates::action),
    "/os-server-groups" => get(server_groups::list).post(server_groups::create),
    "/os-server-groups/{id}" => get(server_groups::show).delete(server_groups::delete),
    "/os-server-external-events" => post(external_events::create),
    "/limits" => get(admin::limits),
    "/os-quota-sets/{project}" => get(quotas::api::show).put(quotas::api::update).delete(quotas::api::delete),
    "/os-quota-sets/{project}/detail" => get(quotas::api::detail),
    "/os-quota-sets/{project}/defaults" => get(quotas::api::defaults),
    "/os-quota-class-sets/{class}" => get(quotas::api::class_show).put(quotas::api::class_update),
    // Routes nova keeps for older microversions (`hosts`).
    "/os-hosts" => get(hosts::index),
    "/os-hosts/{host}" => get(hosts::show).put(hosts::update),
    "/os-hosts/{host}/reboot" => get(hosts::reboot),
    "/os-hosts/{host}/shutdown" => get(hosts::shutdown),
    "/os-hosts/{host}/startup" => get(hosts::startup),
    "/os-hypervisors/{id}/uptime" => get(hosts::uptime),
    "/os-hypervisors/statistics" => get(hosts::statistics),
    "/os-hypervisors/{id}/search" => get(hosts::search),
    "/os-hypervisors/{id}/servers" => get(hosts::servers),
    "/os-simple-tenant-usage" => get(usage::tenant_usages),
    "/os-simple-tenant-usage/{project}" => get(usage::tenant_usage),
    "/os-instance_usage_audit_log" => get(usage::audit_logs),
    "/os-instance_usage_audit_log/{before}" => get(usage::audit_log_show),
    "/extensions" => get(usage::extensions),
    "/extensions/{alias}" => get(usage::extension),
    // nova's image proxy (below 2.36; image metadata below 2.39).
    // nova's network proxies (below 2.36) and the server's interfaces and groups.
    "/servers/{id}/os-interface" => get(servers::interfaces::index).post(servers::interfaces::create),
    "/servers/{id}/os-interface/{port_id}" => get(servers::interfaces::show).delete(servers::interfaces::delete),
    "/servers/{id}/os-security-groups" => get(secgroups::server_index),
    "/os-security-groups" => get(secgroups::index).post(secgroups::create),
    "/os-security-groups/{id}" => get(secgroups::show).put(secgroups::update).delete(secgroups::delete),
    "/os-security-group-rules" => post(secgroups::rule_create),
    "/os-security-group-rules/{id}" => delete(secgroups::rule_delete),
    "/os-floating-ip-pools" => get(floating_ips_proxy::pools),
    "/os-floating-ips" => get(floating_ips_proxy::index).post(floating_ips_proxy::create),
    "/os-floating-ips/{id}" => get(floating_ips_proxy::show).delete(floating_ips_proxy::delete),
    "/os-tenant-networks" => get(networks_proxy::tenant_index).post(networks_proxy::tenant_gone),
    "/os-tenant-networks/{id}" => get(networks_proxy::tenant_show).delete(networks_proxy::tenant_gone),
    "/os-networks" => get(networks_proxy::index),
    "/os-networks/{id}" => get(networks_proxy::show),
    "/images" => get(images_proxy::index),
    "/images/detail" => get(images_proxy::detail),
    "/images/{id}" => get(images_proxy::show).delete(images_proxy::delete),
    "/images/{id}/metadata" => get(images_proxy::metadata_index).post(images_proxy::metadata_create).put(images_proxy::metadata_update_all),
    "/images/{id}/metadata/{key}" => get(images_proxy::metadata_show).put(images_proxy::metadata_update).delete(images_proxy::metadata_delete),
}

/// The compute API router (version documents, `/v2.1/...`) plus the
/// Placement API's read side under `/placement` and the identity routes
/// under `/identity`.
pub fn router(state: Arc<ApiState>) -> Router {
    let v21 = v21_routes()
        .layer(middleware::from_fn_with_state(
            state.clone(),
            layers::authenticate,
        ))
        .route("/", get(version_v21))
        .route("/openapi.json", get(openapi::serve))
        .fallback(not_found);
    let compute = Router::new()
        .route("/", get(versions))
        .route("/v2.1/", get(version_v21))
        .route("/v2", get(version_v20))
        .route("/v2/", get(version_v20))
        .nest("/v2.1", v21)
        .fallback(not_found)
        .with_state(state.clone());
    layers::frame(compute)
        .nest(
            "/placement",
            layers::with_keystone(placement::router(state.clone()), state.identity.clone()),
        )
        .merge(placement::root_with_slash())
        .nest(
            "/identity",
            layers::identity_frame(auth::router(
                state.identity.clone(),
                &format!("{}/identity", state.cfg.public_url),
            )),
        )
}

async fn not_found() -> Fault {
    Fault::not_found("The resource could not be found.")
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

/// nova's `v2.0` document (the legacy-compatible root, deprecated).
fn version_doc_v20(st: &ApiState) -> serde_json::Value {
    serde_json::json!({
        "id": "v2.0", "status": "DEPRECATED", "version": "", "min_version": "",
        "updated": "2025-07-04T12:00:00Z",
        "links": [{"rel": "self", "href": format!("{}/v2/", st.cfg.public_url)},
                  {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2"}],
    })
}

async fn versions(State(st): St) -> Response {
    let v20 = version_doc_v20(&st);
    axum::Json(serde_json::json!({"versions": [v20, version_doc(&st)]})).into_response()
}

async fn version_v20(State(st): St) -> Response {
    axum::Json(serde_json::json!({"version": version_doc_v20(&st)})).into_response()
}

async fn version_v21(State(st): St) -> Response {
    axum::Json(serde_json::json!({"version": version_doc(&st)})).into_response()
}
