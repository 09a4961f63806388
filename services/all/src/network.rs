//! The built-in network service in the all-in-one: its callers
//! authenticated by the built-in identity, nova's external events sent with
//! an admin token from it, the shared flat network made at start, and
//! nova's network API client (the API's and the computes') pointed at it.

use std::sync::Arc;

use nova_api::serve::Endpoints;
use nova_network::{Caller, NetworkService, NovaEvents, Started};
use nova_placement::ServiceAuth;
use nova_service::Runner;
use nova_service::neutron::NeutronClient;

/// Serves `svc` on `listener` (bound beforehand at `url`).
pub(crate) async fn start(
    runner: &Runner,
    api: &Endpoints,
    svc: Arc<NetworkService>,
    listener: tokio::net::TcpListener,
    url: String,
    computes: &[nova_compute::ComputeService],
) -> anyhow::Result<Started> {
    let identity = api.state.identity.clone();
    let auth: nova_network::Authenticate = Arc::new(move |h| {
        let c = identity.authenticate(&h, "").map(|c| Caller {
            user_id: c.user_id,
            project_id: c.project_id,
            roles: c.roles,
        });
        Box::pin(async move { c })
    });
    let admin = api
        .users
        .iter()
        .find(|u| u.roles.iter().any(|r| r == "admin"))
        .cloned();
    if let Some(admin) = admin {
        // nova's network API client: the built-in service, with an admin's
        // tokens (unless `[neutron]` names another network service).
        let identity = api.state.identity.clone();
        let user = admin.clone();
        let client = Arc::new(NeutronClient::new(ServiceAuth::Issued {
            endpoint: url.clone(),
            issue: Arc::new(move || {
                let (token, _) = identity.issue(&user);
                Box::pin(async move { Ok(token) })
            }),
        }));
        if api.state.network.set(client.clone()).is_ok() {
            for c in computes {
                c.manager.set_network(client.clone());
            }
        }
        let identity = api.state.identity.clone();
        svc.set_nova_events(NovaEvents::new(
            &api.compute_url,
            Arc::new(move || {
                let (token, _) = identity.issue(&admin);
                Box::pin(async move { Ok(token) })
            }),
        ));
    } else {
        tracing::warn!("no admin user: the network service cannot send nova its events");
    }
    nova_network::ensure_default_network(&svc, runner.conf()).await?;
    let addr = listener.local_addr()?;
    runner.http(
        "network API",
        listener,
        nova_network::api::router(svc.clone(), auth, &url),
    );
    tracing::info!(%url, "network API listening");
    Ok(Started {
        addr,
        url,
        service: svc,
    })
}
