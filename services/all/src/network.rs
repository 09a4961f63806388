//! The built-in network service in the all-in-one: its callers
//! authenticated as the compute API's (built-in identity or Keystone),
//! nova's external events sent with an admin token from the built-in
//! identity or nova's service user's Keystone token, the shared flat network made at start, and
//! nova's network API client (the API's and the computes') pointed at it.
//! Both directions stay in this process: the client hands its requests to
//! the service's router and the service its events to the compute API's,
//! without a socket (the same requests, tokens and answers as over HTTP,
//! counted in the same metrics); the service is still served over HTTP
//! for everyone else.

use std::sync::Arc;

use nova_api::serve::Endpoints;
use nova_network::{Caller, NetworkService, NovaEvents, Started};
use nova_placement::ServiceAuth;
use nova_service::Runner;
use nova_service::neutron::NeutronClient;

/// The network service's name in logs and metrics.
const NETWORK_API: &str = "network API";

/// Serves `svc` on `listener` (bound beforehand at `url`).
pub(crate) async fn start(
    runner: &Runner,
    api: &Endpoints,
    svc: Arc<NetworkService>,
    listener: tokio::net::TcpListener,
    url: String,
    computes: &[nova_compute::ComputeService],
) -> anyhow::Result<Started> {
    // Callers as the compute API authenticates them: the built-in
    // identity's tokens, or a real Keystone's (validated and cached).
    let identity = api.state.identity.clone();
    let auth: nova_network::Authenticate = Arc::new(move |h| {
        let identity = identity.clone();
        Box::pin(async move {
            identity
                .authenticate_async(&h, "")
                .await
                .ok()
                .map(|c| Caller {
                    user_id: c.user_id,
                    project_id: c.project_id,
                    roles: c.roles,
                })
        })
    });
    let router = nova_network::api::router(svc.clone(), auth, &url);
    if let Some(service) = keystone_service_user(runner, &url) {
        // With Keystone, nova's own service user (`[keystone_authtoken]`)
        // calls the network service and nova's events API, as nova and
        // Neutron do in a real cloud.
        let client = Arc::new(NeutronClient::new(service).in_process(
            nova_service::metrics::instrument_named(router.clone(), NETWORK_API),
        ));
        if api.state.network.set(client.clone()).is_ok() {
            for c in computes {
                c.manager.set_network(client.clone());
            }
        }
        let session = Arc::new(nova_placement::KeystoneSession::new(
            keystone_service_user(runner, &api.compute_url).unwrap_or_else(|| unreachable!()),
            "compute",
        ));
        svc.set_nova_events(
            NovaEvents::new(
                &api.compute_url,
                Arc::new(move || {
                    let session = session.clone();
                    Box::pin(async move {
                        session
                            .get(false)
                            .await
                            .map(|(_, token)| token)
                            .map_err(anyhow::Error::msg)
                    })
                }),
            )
            .in_process(api.compute_app.clone()),
        );
    } else if let Some(admin) = api
        .users
        .iter()
        .find(|u| u.roles.iter().any(|r| r == "admin"))
        .cloned()
    {
        // nova's network API client: the built-in service, with an admin's
        // tokens (unless `[neutron]` names another network service).
        let identity = api.state.identity.clone();
        let user = admin.clone();
        // In this process: requests reach the service's router (the same
        // authentication and answers, recorded in the same metrics)
        // without a socket.
        let client = Arc::new(
            NeutronClient::new(ServiceAuth::Issued {
                endpoint: url.clone(),
                issue: Arc::new(move || {
                    let (token, _) = identity.issue(&user);
                    Box::pin(async move { Ok(token) })
                }),
            })
            .in_process(nova_service::metrics::instrument_named(
                router.clone(),
                NETWORK_API,
            )),
        );
        if api.state.network.set(client.clone()).is_ok() {
            for c in computes {
                c.manager.set_network(client.clone());
            }
        }
        let identity = api.state.identity.clone();
        svc.set_nova_events(
            NovaEvents::new(
                &api.compute_url,
                Arc::new(move || {
                    let (token, _) = identity.issue(&admin);
                    Box::pin(async move { Ok(token) })
                }),
            )
            .in_process(api.compute_app.clone()),
        );
    } else {
        tracing::warn!("no admin user: the network service cannot send nova its events");
    }
    nova_network::ensure_default_network(&svc, runner.conf()).await?;
    nova_network::ensure_external_network(&svc, runner.conf()).await?;
    let addr = listener.local_addr()?;
    runner.http(NETWORK_API, listener, router);
    tracing::info!(%url, "network API listening");
    Ok(Started {
        addr,
        url,
        service: svc,
    })
}

/// With a real Keystone (`[keystone_authtoken] auth_url` set), nova's
/// service user from `[keystone_authtoken]` (password auth), calling
/// `endpoint`.
fn keystone_service_user(runner: &Runner, endpoint: &str) -> Option<ServiceAuth> {
    let conf = runner.conf();
    conf.get("keystone_authtoken", "auth_url")
        .filter(|v| !v.is_empty())?;
    ServiceAuth::from_options(|k| match k {
        "endpoint_override" => Some(endpoint.to_owned()),
        "auth_type" => Some("password".to_owned()),
        k => conf
            .get("keystone_authtoken", k)
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
    })
}
