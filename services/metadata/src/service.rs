//! The metadata HTTP service (nova's `nova/api/metadata/handler.py`): who
//! is asking (Neutron's proxy headers, or the requester's fixed address),
//! the per-instance cache, and the answers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use nova_objects::{Instance, InstanceInfoCache, ListQuery, Lookup, Objects};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::model::{InstanceMetadata, Item, MetadataConfig, TEXT, normpath};
use crate::provider::PortLookup;
use crate::vendordata::{VendorConfig, VendorData};

/// nova's `password.MAX_SIZE` (4 chunks of 255).
const PASSWORD_MAX: usize = 4 * 255;

/// How many instances the cache holds before expired entries are swept.
const CACHE_SWEEP_AT: usize = 10_000;

/// The metadata service's settings (nova.conf names).
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// `[neutron] service_metadata_proxy`: requests come through Neutron's
    /// proxy with signed instance headers.
    pub service_metadata_proxy: bool,
    /// `[neutron] metadata_proxy_shared_secret`.
    pub shared_secret: String,
    /// `[api] metadata_cache_expiration` (15 s; 0: no cache).
    pub cache_expiration: Duration,
    /// `[api] use_forwarded_for`: the requester is `X-Forwarded-For`.
    pub use_forwarded_for: bool,
    /// What is told.
    pub metadata: MetadataConfig,
    /// Vendor data.
    pub vendor: Arc<VendorConfig>,
    /// Neutron's port lookup for `X-Metadata-Provider` requests (`[neutron]
    /// endpoint_override`); without it they are refused.
    pub ports: Option<Arc<dyn PortLookup>>,
}

impl ServiceConfig {
    /// From nova.conf.
    pub fn from_conf(conf: &nova_service::Conf) -> anyhow::Result<Self> {
        Ok(ServiceConfig {
            service_metadata_proxy: conf.bool_or("neutron", "service_metadata_proxy", false)?,
            shared_secret: conf.str_or("neutron", "metadata_proxy_shared_secret", ""),
            cache_expiration: Duration::from_secs(conf.parse_or(
                "api",
                "metadata_cache_expiration",
                15u64,
            )?),
            use_forwarded_for: conf.bool_or("api", "use_forwarded_for", false)?,
            metadata: MetadataConfig::from_conf(conf),
            vendor: Arc::new(VendorConfig::from_conf(conf)?),
            ports: crate::provider::NeutronPorts::from_conf(conf)
                .map(|p| Arc::new(p) as Arc<dyn PortLookup>),
        })
    }
}

type Cached<T> = Mutex<HashMap<String, (Instant, T)>>;

/// The service: objects, settings, caches.
#[derive(Debug)]
pub struct MetadataService {
    objects: Objects,
    cfg: ServiceConfig,
    by_instance: Cached<Arc<InstanceMetadata>>,
    by_address: Cached<String>,
    /// `provider-<id>-<address>` → (instance, tenant).
    by_provider: Cached<(String, String)>,
}

/// A refusal in nova's (webob's) plain-text shape.
fn refuse(status: StatusCode, explanation: &str) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = if explanation.is_empty() {
        format!("{} {reason}\n\n", status.as_u16())
    } else {
        format!("{} {reason}\n\n{explanation}\n\n", status.as_u16())
    };
    (status, [(header::CONTENT_TYPE, TEXT)], body).into_response()
}

fn not_found() -> Response {
    refuse(StatusCode::NOT_FOUND, "The resource could not be found.")
}

fn cache_get<T: Clone>(c: &Cached<T>, key: &str, ttl: Duration) -> Option<T> {
    let m = c.lock().unwrap_or_else(|e| e.into_inner());
    m.get(key)
        .filter(|(t, _)| t.elapsed() < ttl)
        .map(|(_, v)| v.clone())
}

fn cache_put<T>(c: &Cached<T>, key: &str, v: T, ttl: Duration) {
    if ttl.is_zero() {
        return;
    }
    let mut m = c.lock().unwrap_or_else(|e| e.into_inner());
    if m.len() >= CACHE_SWEEP_AT {
        m.retain(|_, (t, _)| t.elapsed() < ttl);
    }
    m.insert(key.to_owned(), (Instant::now(), v));
}

/// The DynamicJSON request body of `inst` (nova's fields).
fn dynamic_body(inst: &Instance) -> Value {
    json!({
        "project-id": inst.project_id(),
        "instance-id": inst.uuid(),
        "image-id": inst.image_ref(),
        "user-data": inst.user_data(),
        "hostname": inst.hostname(),
        "metadata": inst.metadata(),
        "boot-roles": inst.system_metadata().get("boot_roles").cloned().flatten().unwrap_or_default(),
    })
}

/// The metadata of `inst` (its info cache read from `objects`).
pub async fn instance_metadata(
    objects: &Objects,
    inst: &Instance,
    address: Option<String>,
    metadata: &MetadataConfig,
    vendor: &Arc<VendorConfig>,
) -> InstanceMetadata {
    let ctx = nova_service::context::admin();
    let nw = objects
        .get::<InstanceInfoCache>(&ctx, Lookup::field("instance_uuid", inst.uuid().clone()))
        .await
        .ok()
        .and_then(|c| c.network_info().clone());
    let vd = VendorData::new(vendor.clone(), dynamic_body(inst));
    InstanceMetadata::new(inst, nw.as_deref(), address, metadata, vd)
}

impl MetadataService {
    /// The service over `objects` (nova's database).
    pub fn new(objects: Objects, cfg: ServiceConfig) -> Arc<Self> {
        Arc::new(MetadataService {
            objects,
            cfg,
            by_instance: Mutex::default(),
            by_address: Mutex::default(),
            by_provider: Mutex::default(),
        })
    }

    /// The HTTP routes (every path; GET, HEAD and POST).
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    async fn by_instance_id(
        &self,
        uuid: &str,
        address: Option<String>,
    ) -> Option<Arc<InstanceMetadata>> {
        let ttl = self.cfg.cache_expiration;
        if let Some(m) = cache_get(&self.by_instance, uuid, ttl) {
            return Some(m);
        }
        let ctx = nova_service::context::admin();
        let inst: Instance = match self.objects.get_by_uuid(&ctx, uuid).await {
            Ok(i) => i,
            Err(e) => {
                if !e.is_not_found() {
                    tracing::warn!(instance = uuid, error = %e, "metadata: cannot read the instance");
                }
                return None;
            }
        };
        let md = Arc::new(
            instance_metadata(
                &self.objects,
                &inst,
                address,
                &self.cfg.metadata,
                &self.cfg.vendor,
            )
            .await,
        );
        cache_put(&self.by_instance, uuid, md.clone(), ttl);
        Some(md)
    }

    /// nova's `get_metadata_by_remote_address`: the instance whose network
    /// information holds `address` as a fixed IP.
    async fn by_address(&self, address: &str) -> Option<Arc<InstanceMetadata>> {
        let ttl = self.cfg.cache_expiration;
        let uuid = match cache_get(&self.by_address, address, ttl) {
            Some(u) => u,
            None => {
                let ctx = nova_service::context::admin();
                let caches: Vec<InstanceInfoCache> =
                    self.objects.list(&ctx, &ListQuery::new()).await.ok()?;
                let uuid = caches.iter().find_map(|c| {
                    let nw: Value = serde_json::from_str(c.network_info().as_deref()?).ok()?;
                    let (fixed, _) = crate::network::ec2_ip_info(&nw);
                    fixed
                        .iter()
                        .any(|f| f == address)
                        .then(|| c.instance_uuid().clone())
                })?;
                cache_put(&self.by_address, address, uuid.clone(), ttl);
                uuid
            }
        };
        self.by_instance_id(&uuid, Some(address.to_owned())).await
    }

    /// nova's `_get_meta_by_instance_id`: the metadata of `id` when it is
    /// `tenant`'s (else `None`, a 404).
    async fn by_instance_of_tenant(
        &self,
        id: &str,
        tenant: &str,
        address: Option<String>,
    ) -> Option<Arc<InstanceMetadata>> {
        let md = self.by_instance_id(id, address).await;
        md.filter(|m| {
            let ok = m.project_id == tenant;
            if !ok {
                tracing::warn!(
                    instance = id,
                    tenant,
                    "the tenant does not match the instance's project"
                );
            }
            ok
        })
    }

    /// nova's `_handle_instance_id_request_from_lb`: the provider's signed
    /// id, the guest's address, and Neutron's port holding it.
    async fn by_provider(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<InstanceMetadata>>, Response> {
        let text = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let Some(forwarded) = text("X-Forwarded-For") else {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "X-Forwarded-For is missing from request.",
            ));
        };
        let provider = text("X-Metadata-Provider").unwrap_or_default();
        let address = forwarded.split(',').next().unwrap_or_default();
        if !self.cfg.shared_secret.is_empty() {
            let sig = text("X-Metadata-Provider-Signature").unwrap_or_default();
            if sig.is_empty() || !self.check_signature(provider, sig) {
                tracing::warn!(
                    provider,
                    requester = address,
                    "X-Metadata-Provider-Signature does not match"
                );
                return Err(refuse(
                    StatusCode::FORBIDDEN,
                    "Invalid proxy request signature.",
                ));
            }
        }
        let ttl = self.cfg.cache_expiration;
        let key = format!("provider-{provider}-{address}");
        let (id, tenant) = match cache_get(&self.by_provider, &key, ttl) {
            Some(found) => found,
            None => {
                let Some(ports) = &self.cfg.ports else {
                    tracing::error!(
                        "X-Metadata-Provider request, but no [neutron] endpoint to look its port up"
                    );
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "An unknown error has occurred. Please try your request again.",
                    ));
                };
                let found = crate::provider::instance_of(ports.as_ref(), provider, address)
                    .await
                    .map_err(|r| {
                        refuse(
                            StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST),
                            &r.explanation,
                        )
                    })?;
                cache_put(&self.by_provider, &key, found.clone(), ttl);
                found
            }
        };
        Ok(self
            .by_instance_of_tenant(&id, &tenant, Some(address.to_owned()))
            .await)
    }

    fn check_signature(&self, instance_id: &str, signature: &str) -> bool {
        let Ok(sig) = hex::decode(signature.trim()) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.cfg.shared_secret.as_bytes()) else {
            return false;
        };
        mac.update(instance_id.as_bytes());
        mac.verify_slice(&sig).is_ok()
    }

    /// Who asks: `Ok(Some(metadata))`, `Ok(None)` (404), or a refusal.
    async fn requester(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<Option<Arc<InstanceMetadata>>, Response> {
        let h = |n: &str| -> Result<Option<&str>, Response> {
            let mut all = headers.get_all(n).iter();
            match (all.next(), all.next()) {
                (None, _) => Ok(None),
                (Some(v), None) => Ok(v.to_str().ok()),
                (Some(_), Some(_)) => Err(refuse(
                    StatusCode::BAD_REQUEST,
                    &format!("Multiple {n} headers found within request."),
                )),
            }
        };
        if self.cfg.service_metadata_proxy {
            if headers
                .get("x-metadata-provider")
                .is_some_and(|v| !v.is_empty())
            {
                return self.by_provider(headers).await;
            }
            let id = h("X-Instance-ID")?;
            let sig = h("X-Instance-ID-Signature")?;
            let tenant = h("X-Tenant-ID")?;
            let missing = match (id, sig, tenant) {
                (None, _, _) => Some("X-Instance-ID header is missing from request."),
                (_, None, _) => Some("X-Instance-ID-Signature header is missing from request."),
                (_, _, None) => Some("X-Tenant-ID header is missing from request."),
                _ => None,
            };
            if let Some(m) = missing {
                return Err(refuse(StatusCode::BAD_REQUEST, m));
            }
            let (id, sig, tenant) = (
                id.unwrap_or_default(),
                sig.unwrap_or_default(),
                tenant.unwrap_or_default(),
            );
            if !self.check_signature(id, sig) {
                tracing::warn!(instance = id, "X-Instance-ID-Signature does not match");
                return Err(refuse(
                    StatusCode::FORBIDDEN,
                    "Invalid proxy request signature.",
                ));
            }
            let forwarded = h("X-Forwarded-For")?.map(str::to_owned);
            return Ok(self.by_instance_of_tenant(id, tenant, forwarded).await);
        }
        if headers.contains_key("x-instance-id") {
            tracing::warn!(
                "X-Instance-ID present in request headers: [neutron] service_metadata_proxy must be enabled to process it"
            );
        }
        let address = if self.cfg.use_forwarded_for {
            h("X-Forwarded-For")?
                .and_then(|f| f.split(',').next())
                .map(|a| a.trim().to_owned())
        } else {
            None
        }
        .or_else(|| peer.map(|p| p.ip().to_string()));
        match address {
            Some(a) => Ok(self.by_address(&a).await),
            None => Ok(None),
        }
    }

    async fn password(&self, md: &InstanceMetadata, method: &Method, body: &Bytes) -> Response {
        if *method == Method::GET || *method == Method::HEAD {
            return (
                [(header::CONTENT_TYPE, TEXT)],
                md.password.clone().unwrap_or_default(),
            )
                .into_response();
        }
        if *method != Method::POST {
            return refuse(StatusCode::BAD_REQUEST, "GET and POST only are supported.");
        }
        if md.password.is_some() {
            return refuse(StatusCode::CONFLICT, "");
        }
        if body.len() > PASSWORD_MAX {
            return refuse(StatusCode::BAD_REQUEST, "Request is too large.");
        }
        let ctx = nova_service::context::admin();
        let mut inst: Instance = match self.objects.get_by_uuid(&ctx, &md.uuid).await {
            Ok(i) => i,
            Err(e) => return refuse(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        let text = String::from_utf8_lossy(body).into_owned();
        let chars: Vec<char> = text.chars().collect();
        {
            let sm = inst.system_metadata_mut();
            for i in 0..4 {
                let chunk: String = chars.iter().skip(i * 255).take(255).collect();
                sm.insert(format!("password_{i}"), Some(chunk));
            }
        }
        if let Err(e) = self.objects.save(&ctx, &mut inst).await {
            tracing::warn!(instance = %md.uuid, error = %e, "cannot save the password");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "An unknown error has occurred. Please try your request again.",
            );
        }
        self.by_instance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&md.uuid);
        StatusCode::OK.into_response()
    }
}

async fn handle(state: State<Arc<MetadataService>>, req: Request) -> Response {
    let route = route_label(req.uri().path());
    let mut resp = answer(state, req).await;
    resp.extensions_mut()
        .insert(nova_service::metrics::RouteLabel(route));
    resp
}

/// The `route` label of a metadata request (`[metrics]`): its tree, never
/// the raw path.
fn route_label(path: &str) -> &'static str {
    let norm = normpath(path);
    match norm.trim_start_matches('/').split('/').next() {
        Some("") | None => "/",
        Some("openstack") => "/openstack/{path}",
        Some(_) => "/{ec2_version}/{path}",
    }
}

async fn answer(State(svc): State<Arc<MetadataService>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let path = parts.uri.path();
    if normpath(path) == "/" {
        let versions: Vec<&str> = crate::model::EC2_VERSIONS
            .iter()
            .copied()
            .chain(["latest"])
            .collect();
        return ([(header::CONTENT_TYPE, TEXT)], versions.join("\n")).into_response();
    }
    let md = match svc.requester(&parts.headers, peer).await {
        Ok(Some(md)) => md,
        Ok(None) => return not_found(),
        Err(r) => return r,
    };
    match md.lookup(path).await {
        Ok(Item::Data(bytes, mime)) => {
            let mut r = Response::new(Body::from(bytes));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(mime));
            r
        }
        Ok(Item::Password) => {
            // A little over nova's limit, so a too-large password is a 400, not a cut.
            let body = match axum::body::to_bytes(body, PASSWORD_MAX + 1).await {
                Ok(b) => b,
                Err(_) => return refuse(StatusCode::BAD_REQUEST, "Request is too large."),
            };
            svc.password(&md, &parts.method, &body).await
        }
        Err(_) => not_found(),
    }
}
