//! The Placement API under `/placement` on the compute port (in the
//! service catalog as `placement`): nova-placement's router, its callers
//! authenticated by the built-in identity; and [`serve`], the
//! `nova-placement-api` binary's wiring (Placement alone on its port).

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::http::HeaderMap;
use nova_placement::api::{Authenticate, Caller};
use nova_placement::{PlacementHandle, SqlPlacement};
use nova_service::Runner;
use nova_service::authtoken::{AuthToken, AuthTokenOptions};

use crate::ApiState;
use crate::auth::{AuthStrategy, Identity};

pub use nova_placement::api::{MAX, MIN};

/// Callers as the identity service knows them (its tokens, or `noauth2`).
fn by_identity(identity: Identity) -> Authenticate {
    Arc::new(move |h: &HeaderMap| {
        identity.authenticate(h, "").map(|c| Caller {
            user_id: c.user_id,
            project_id: c.project_id,
            roles: c.roles,
            system_scope: false,
        })
    })
}

/// The Placement router, to be nested under `/placement`.
pub fn router(state: Arc<ApiState>) -> Router {
    nova_placement::api::router(state.placement.clone(), by_identity(state.identity.clone()))
}

/// `GET /placement/` (the version document with a trailing slash), to be
/// merged at the root beside the nested [`router`].
pub fn root_with_slash() -> Router {
    nova_placement::api::root_with_slash()
}

/// `nova-placement-api`: Placement on its own port (`port`, else
/// `[placement] bind_port`, default 8778; `[placement] bind_host`, default
/// 127.0.0.1) over `[placement_database] connection` (schema synced at
/// start). `[api] auth_strategy`: `noauth2` (Placement's: the token names
/// the user, `X-Roles` the roles, `admin` is an admin) or `keystone`: with
/// `[keystone_authtoken] auth_url`, a real Keystone validates the tokens
/// (keystonemiddleware's `auth_token`, `nova_service::authtoken`); without
/// it, the built-in identity's tokens, signed with the shared `[identity]
/// secret`. Serves until SIGTERM, then drains.
pub async fn serve(runner: Runner, port: Option<u16>) -> anyhow::Result<()> {
    let conf = runner.conf();
    let url = conf.placement_connection();
    nova_service::ensure_sqlite_dir(&url)?;
    let db = nova_objects::db::Database::connect(&nova_objects::db::DbConfig::new(&url))
        .await
        .with_context(|| format!("[placement_database] connection = {url}"))?;
    let store = SqlPlacement::on(&db);
    store.sync().await?;
    let placement = PlacementHandle::new(store);
    let strategy = conf.str_or("api", "auth_strategy", "keystone");
    let authtoken = match strategy.as_str() {
        // The version document needs no token, as Placement's.
        "keystone" => AuthTokenOptions::from_conf(conf)?.map(|o| AuthToken::new(o, &["/"])),
        _ => None,
    };
    let auth = match strategy.as_str() {
        "noauth2" | "noauth" => nova_placement::api::noauth2(),
        "keystone" if authtoken.is_some() => {
            tracing::info!("tokens validated by Keystone ([keystone_authtoken])");
            nova_placement::api::keystone_headers()
        }
        "keystone" => {
            let users = crate::serve::users_from_conf(conf)?;
            let secret = conf
                .get("identity", "secret")
                .filter(|s| !s.is_empty())
                .context("[api] auth_strategy = keystone needs [identity] secret (shared with nova-api's identity)")?;
            by_identity(Identity::new(
                users,
                secret.as_bytes(),
                AuthStrategy::Keystone,
            ))
        }
        other => anyhow::bail!("[api] auth_strategy = {other}: expected keystone or noauth2"),
    };
    let host = conf.str_or("placement", "bind_host", "127.0.0.1");
    let port = match port {
        Some(p) => p,
        None => conf.parse_or("placement", "bind_port", 8778u16)?,
    };
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))?;
    tracing::info!(addr = %listener.local_addr()?, "Placement API listening");
    let policy = nova_placement::api::Policy {
        enforce_new_defaults: conf.parse_or("oslo_policy", "enforce_new_defaults", false)?,
        overrides: Arc::new(match conf.get("oslo_policy", "policy_file") {
            Some(f) if !f.is_empty() => {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("[oslo_policy] policy_file = {f}"))?;
                nova_placement::api::Policy::parse_rules(&text).map_err(anyhow::Error::msg)?
            }
            _ => Default::default(),
        }),
    };
    let cors = cors_from_conf(conf)?;
    let mut app = nova_placement::api::router_with_policy(placement, auth, policy);
    if let Some(a) = authtoken {
        app = app.layer(axum::middleware::from_fn_with_state(
            a,
            nova_service::authtoken::middleware,
        ));
    }
    // `[metrics] enabled`: `/metrics` on this port, outside the token
    // check (as on nova-api's port); the runner records the requests.
    let app = nova_service::metrics::expose(&runner, app).await?;
    nova_service::metrics::watch_pool("placement", &db);
    runner.http("placement API", listener, cors.wrap(app));
    runner.run().await
}

/// The `[cors]` options (oslo.middleware's), as Placement reads them.
fn cors_from_conf(conf: &nova_service::Conf) -> anyhow::Result<nova_placement::api::Cors> {
    let d = nova_placement::api::Cors::default();
    let list = |k: &str, default: Vec<String>| conf.list("cors", k).unwrap_or(default);
    Ok(nova_placement::api::Cors {
        allowed_origin: list("allowed_origin", d.allowed_origin),
        allow_credentials: conf.parse_or("cors", "allow_credentials", d.allow_credentials)?,
        expose_headers: list("expose_headers", d.expose_headers),
        max_age: conf.parse_or("cors", "max_age", d.max_age)?,
        allow_methods: list("allow_methods", d.allow_methods),
        allow_headers: list("allow_headers", d.allow_headers),
    })
}
