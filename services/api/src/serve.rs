//! Binding the compute API (and identity) and the image API from nova.conf,
//! on the service runner: what `nova-api` and `nova-all` start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use nova_service::{Conf, Runner};

use crate::auth::{AuthStrategy, CatalogEntry, Identity, User};
use crate::{ApiConfig, ApiState, ImageStore};

/// Where the API ended up listening.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The compute API (`http://host:port`, identity under `/identity`).
    pub compute: SocketAddr,
    /// The image API.
    pub image: SocketAddr,
    /// The compute endpoint's public URL.
    pub compute_url: String,
    /// The image endpoint's public URL.
    pub image_url: String,
    /// The identity endpoint's public URL (`…/identity/v3`).
    pub identity_url: String,
    /// The users of the built-in identity service.
    pub users: Vec<User>,
    /// The state the handlers share.
    pub state: Arc<ApiState>,
    /// The compute API's router as served (for callers in this process).
    pub compute_app: axum::Router,
}

/// Default users when `[identity] users` is not set.
pub const DEFAULT_USERS: &str = "admin:admin:admin:admin, demo:demo:demo:member, alt_demo:alt_demo:alt_demo:member, viewer:viewer:demo:reader";

/// The built-in identity's users from `[identity] users`.
pub fn users_from_conf(conf: &Conf) -> anyhow::Result<Vec<User>> {
    conf.str_or("identity", "users", DEFAULT_USERS)
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| User::parse(s).map_err(|e| anyhow::anyhow!("[identity] users: {e}")))
        .collect()
}

async fn bind(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Starts the compute API (identity and Placement under it) and the image
/// API on `runner` (its database, Placement and transport); they stop
/// accepting and finish their requests in flight when the runner stops.
pub async fn start(runner: &Runner) -> anyhow::Result<Endpoints> {
    start_with(runner, vec![]).await
}

/// [`start`], with `more` endpoints in the identity's service catalog
/// (nova-all's built-in network service).
pub async fn start_with(runner: &Runner, more: Vec<CatalogEntry>) -> anyhow::Result<Endpoints> {
    let conf = runner.conf();
    let transport = runner.transport().await?;
    let objects = runner.objects().await?;
    let placement = runner.placement().await?;
    let listen = conf.str_or("DEFAULT", "osapi_compute_listen", "127.0.0.1");
    let port: u16 = conf.parse_or("DEFAULT", "osapi_compute_listen_port", 8774)?;
    let compute_l = bind(&format!("{listen}:{port}")).await?;
    let compute_addr = compute_l.local_addr()?;
    let img_listen = conf.str_or("image", "bind_host", &listen);
    let img_port: u16 = conf.parse_or("image", "bind_port", 9292)?;
    let image_l = bind(&format!("{img_listen}:{img_port}")).await?;
    let image_addr = image_l.local_addr()?;
    let host_of = |a: SocketAddr| {
        if a.ip().is_unspecified() {
            format!("127.0.0.1:{}", a.port())
        } else {
            a.to_string()
        }
    };
    let compute_url = conf
        .get("api", "compute_link_prefix")
        .map(str::to_owned)
        .unwrap_or_else(|| format!("http://{}", host_of(compute_addr)));
    let image_url = conf
        .get("image", "public_url")
        .map(str::to_owned)
        .unwrap_or_else(|| format!("http://{}", host_of(image_addr)));
    let strategy = match conf.str_or("api", "auth_strategy", "keystone").as_str() {
        "keystone" => AuthStrategy::Keystone,
        "noauth2" | "noauth" => AuthStrategy::NoAuth,
        other => anyhow::bail!("[api] auth_strategy = {other}: expected keystone or noauth2"),
    };
    let users = users_from_conf(conf)?;
    let secret = match conf.get("identity", "secret") {
        Some(s) if !s.is_empty() => s.as_bytes().to_vec(),
        _ => uuid::Uuid::new_v4().as_bytes().to_vec(),
    };
    let mut identity = Identity::new(users.clone(), &secret, strategy);
    identity.token_ttl =
        std::time::Duration::from_secs(conf.parse_or("identity", "token_ttl", 3600u64)?);
    identity.region = conf.str_or("identity", "region", "RegionOne");
    identity.policy = crate::policy::Policy(std::sync::Arc::new(
        crate::policy::Enforcer::from_conf(conf).context("[oslo_policy]")?,
    ));
    if let Some(ks) = crate::keystone::AuthTokenConfig::from_conf(conf)? {
        if strategy != AuthStrategy::Keystone {
            anyhow::bail!("[keystone_authtoken] is set but [api] auth_strategy is not keystone");
        }
        tracing::info!(auth_url = %ks.auth_url, "tokens are validated by Keystone");
        identity.keystone = Some(Arc::new(crate::keystone::AuthToken::new(ks)));
    }
    let identity_url = format!("{compute_url}/identity/v3");
    identity.catalog = vec![
        CatalogEntry {
            service_type: "compute".into(),
            name: "nova".into(),
            url: format!("{compute_url}/v2.1"),
        },
        CatalogEntry {
            service_type: "image".into(),
            name: "glance".into(),
            url: image_url.clone(),
        },
        CatalogEntry {
            service_type: "placement".into(),
            name: "placement".into(),
            url: format!("{compute_url}/placement"),
        },
        CatalogEntry {
            service_type: "identity".into(),
            name: "keystone".into(),
            url: identity_url.clone(),
        },
    ];
    identity.catalog.extend(more);
    let store_dir: PathBuf = conf
        .get("image", "store_path")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(conf.str_or("DEFAULT", "state_path", "/var/lib/nova")).join("images")
        });
    let images = ImageStore::open(&store_dir)
        .with_context(|| format!("image store {}", store_dir.display()))?;
    let cap = nova_service::compute_version_cap(conf)?;
    let cfg = ApiConfig::from_conf(conf, &compute_url)?;
    let mut state = ApiState::new(
        cfg,
        objects,
        placement,
        transport,
        images.clone(),
        identity.clone(),
        cap,
    );
    state.notifier = runner.notifier().await?;
    if let Some(client) = nova_service::neutron::NeutronClient::from_conf(conf) {
        let _ = state.network.set(Arc::new(client));
    }
    let noop = match conf
        .str_or("quota", "driver", "nova.quota.DbQuotaDriver")
        .as_str()
    {
        "nova.quota.DbQuotaDriver" => false,
        "nova.quota.NoopQuotaDriver" => true,
        other => anyhow::bail!(
            "[quota] driver = {other}: expected nova.quota.DbQuotaDriver or nova.quota.NoopQuotaDriver"
        ),
    };
    state.quotas =
        crate::quotas::QuotaStore::open(runner.database().await?, state.cfg.quotas.clone(), noop)
            .await
            .context("quota tables")?;
    let state = Arc::new(state);
    // `[metrics] enabled`: `/metrics` on the compute API's port (the
    // runner records both APIs' requests).
    let compute_app = nova_service::metrics::expose(runner, crate::router(state.clone())).await?;
    runner.http(COMPUTE_API, compute_l, compute_app.clone());
    runner.http(
        "image API",
        image_l,
        crate::layers::with_keystone(
            crate::image::router(images, identity.clone(), &image_url),
            identity,
        ),
    );
    tracing::info!(compute = %compute_url, image = %image_url, "API listening");
    Ok(Endpoints {
        compute: compute_addr,
        image: image_addr,
        compute_url,
        image_url,
        identity_url,
        users,
        state,
        compute_app: nova_service::metrics::instrument_named(compute_app, COMPUTE_API),
    })
}

/// The compute API's name in logs and metrics.
const COMPUTE_API: &str = "compute API";

/// `nova-api`: starts the APIs ([`start`]), then serves until SIGTERM and
/// drains (requests in flight are answered).
pub async fn run(runner: Runner) -> anyhow::Result<()> {
    start(&runner).await?;
    runner.run().await
}
