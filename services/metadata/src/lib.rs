//! nova-api-metadata: what a guest learns about itself, as nova 34's
//! metadata API (`nova/api/metadata`) tells it — the OpenStack tree
//! (`/openstack/<version>/meta_data.json`, `user_data`, `password`,
//! `vendor_data.json`, `network_data.json`, `vendor_data2.json`) and the
//! EC2 tree (`/<version>/meta-data/…`, `user-data`) — and the same trees
//! as config drive files.
//!
//! * [`model`]: [`InstanceMetadata`], the trees of one instance.
//! * `network`: `network_data.json` from nova's network model.
//! * [`vendordata`]: StaticJSON and DynamicJSON vendor data.
//! * [`service`]: the HTTP service: Neutron's signed proxy headers
//!   (`[neutron] service_metadata_proxy`, `metadata_proxy_shared_secret`)
//!   or the requester's fixed address, and the per-instance cache
//!   (`[api] metadata_cache_expiration`).
//!
//! `nova-api-metadata` serves it on `[DEFAULT] metadata_listen`:
//! `metadata_listen_port` (8775); `nova-all` does when `[DEFAULT]
//! enabled_apis` names `metadata`.

pub mod model;
mod network;
pub mod provider;
pub mod service;
pub mod vendordata;

use std::net::SocketAddr;

pub use model::{InstanceMetadata, Item, MetadataConfig};
pub use service::{MetadataService, ServiceConfig, instance_metadata};
pub use vendordata::VendorConfig;

/// Whether `[DEFAULT] enabled_apis` (default `osapi_compute,metadata`)
/// names the metadata API.
pub fn enabled(conf: &nova_service::Conf) -> bool {
    conf.str_or("DEFAULT", "enabled_apis", "osapi_compute,metadata")
        .split(',')
        .any(|a| a.trim() == "metadata")
}

/// Starts the metadata API on `runner` (its database): bound to
/// `[DEFAULT] metadata_listen` (0.0.0.0) : `metadata_listen_port` (8775);
/// it stops accepting and finishes the requests in flight when the runner
/// stops. Returns where it listens.
pub async fn start(runner: &nova_service::Runner) -> anyhow::Result<SocketAddr> {
    listen(runner, false).await
}

/// [`start`]; with `own_metrics`, `/metrics` on its port too when
/// `[metrics] enabled` (`nova-api-metadata`; nova-all serves it on the
/// compute API's port).
async fn listen(runner: &nova_service::Runner, own_metrics: bool) -> anyhow::Result<SocketAddr> {
    let conf = runner.conf();
    let listen = conf.str_or("DEFAULT", "metadata_listen", "0.0.0.0");
    let port: u16 = conf.parse_or("DEFAULT", "metadata_listen_port", 8775)?;
    let cfg = ServiceConfig::from_conf(conf)?;
    let svc = MetadataService::new(runner.objects().await?, cfg);
    let listener = tokio::net::TcpListener::bind((listen.as_str(), port))
        .await
        .map_err(|e| anyhow::anyhow!("metadata API: cannot listen on {listen}:{port}: {e}"))?;
    let addr = listener.local_addr()?;
    let mut router = svc.router();
    if own_metrics {
        router = nova_service::metrics::expose(runner, router).await?;
    }
    if nova_service::metrics::handle().is_some() {
        router = nova_service::metrics::instrument(router, "metadata");
    }
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    let stop = runner.stop_token();
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "metadata API failed");
        }
    });
    runner.task("metadata API", server);
    tracing::info!(%addr, "metadata API listening");
    Ok(addr)
}

/// `nova-api-metadata`: starts it, then serves until SIGTERM and drains.
pub async fn run(runner: nova_service::Runner) -> anyhow::Result<()> {
    listen(&runner, true).await?;
    runner.run().await
}
