//! nova-network: a built-in Neutron v2.0 subset for the all-in-one (and
//! its own binary, `nova-network-api`, port 9696).
//!
//! The service keeps networks, subnets, ports, security groups and rules
//! and floating IPs as Neutron's JSON documents (`service.rs`, `ports.rs`,
//! `security_groups.rs`, `floating_ips.rs`), persisted in SQL (`store.rs`),
//! served over HTTP (`api.rs`) in Neutron's shapes and fault format
//! (`error.rs`). Binding a port to a host makes it nova's `bridge` VIF and
//! ACTIVE, which nova hears as `network-vif-plugged` (`events.rs`). The
//! host side (bridges, DHCP) is a [`datapath::Datapath`]: `noop`, or
//! `linux` ([`LinuxDatapath`], Neutron's DHCP agent on one host: per
//! network a Linux bridge, a `qdhcp-<network id>` namespace joined to it by
//! a veth pair (the gateway address and 169.254.169.254 live there, never on
//! the host), a dnsmasq serving the ports' fixed addresses, and a metadata
//! forwarder (`metadata_proxy`) passing the guest's address to
//! nova-api-metadata as `X-Forwarded-For`).

pub mod api;
pub mod datapath;
pub mod error;
pub mod events;
pub mod ipam;
pub mod service;
pub mod store;

mod floating_ips;
mod linux;
mod metadata_proxy;
mod netcmd;
mod ports;
mod security_groups;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use nova_service::{Conf, Runner};
use serde_json::{Value, json};

pub use api::Authenticate;
pub use datapath::{Datapath, HostEntry, NetworkSpec, NoopDatapath, bridge_name, tap_name};
pub use error::NeutronError;
pub use events::NovaEvents;
pub use linux::{LinuxDatapath, LinuxDatapathConfig, namespace_name};
pub use service::{Caller, NetworkService};

/// The datapath `[network] datapath` names: `noop` (the default) or
/// `linux` ([`LinuxDatapath`]; needs root, `ip` and `dnsmasq`), with
/// `[network] state_path` (dnsmasq's files), `metadata_url` (where the
/// forwarder sends guests' metadata requests; empty: none),
/// `dhcp_lease_duration` and `dns_domain`.
pub fn datapath_from_conf(conf: &Conf) -> anyhow::Result<Arc<dyn Datapath>> {
    match conf.str_or("network", "datapath", "noop").as_str() {
        "noop" => Ok(Arc::new(NoopDatapath)),
        "linux" => {
            let d = LinuxDatapathConfig::default();
            let metadata = conf.str_or(
                "network",
                "metadata_url",
                d.metadata_upstream.as_deref().unwrap_or_default(),
            );
            Ok(Arc::new(LinuxDatapath::new(LinuxDatapathConfig {
                state_dir: conf
                    .get("network", "state_path")
                    .map_or(d.state_dir, std::path::PathBuf::from),
                metadata_upstream: (!metadata.is_empty()).then_some(metadata),
                lease_secs: conf.parse_or("network", "dhcp_lease_duration", d.lease_secs)?,
                dns_domain: conf.str_or("network", "dns_domain", &d.dns_domain),
                dnsmasq: d.dnsmasq,
            })))
        }
        other => anyhow::bail!("[network] datapath = {other}: expected noop or linux"),
    }
}

/// Where the started service listens.
#[derive(Debug, Clone)]
pub struct Started {
    /// Its address.
    pub addr: SocketAddr,
    /// Its public URL (`http://127.0.0.1:9696`), the catalog's `network`.
    pub url: String,
    /// The service.
    pub service: Arc<NetworkService>,
}

/// Binds the network API: `[network] bind_host` (default 127.0.0.1) and
/// `bind_port` (default 9696, or `port`); its public URL is `[network]
/// public_url` or the bound address.
pub async fn bind(
    conf: &Conf,
    port: Option<u16>,
) -> anyhow::Result<(tokio::net::TcpListener, String)> {
    let host = conf.str_or("network", "bind_host", "127.0.0.1");
    let port = match port {
        Some(p) => p,
        None => conf.parse_or("network", "bind_port", 9696u16)?,
    };
    let l = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))?;
    let a = l.local_addr()?;
    let url = conf
        .get("network", "public_url")
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let ip = if a.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                a.ip().to_string()
            };
            format!("http://{ip}:{}", a.port())
        });
    Ok((l, url))
}

/// Opens the service on the runner's database (or `[network] connection`),
/// its schema migrated.
pub async fn open(runner: &Runner) -> anyhow::Result<Arc<NetworkService>> {
    let conf = runner.conf();
    let datapath = datapath_from_conf(conf)?;
    let store = match conf.get("network", "connection").filter(|s| !s.is_empty()) {
        Some(url) => {
            nova_service::ensure_sqlite_dir(url)?;
            let db = nova_objects::db::Database::connect(&nova_objects::db::DbConfig::new(url))
                .await
                .with_context(|| format!("[network] connection = {url}"))?;
            nova_service::metrics::watch_pool("network", &db);
            store::Store::open(&db).await?
        }
        None => store::Store::open(&*runner.database().await?).await?,
    };
    NetworkService::open(store, datapath).await
}

/// Starts the network API on `runner` with `auth` (and `/metrics` when
/// `[metrics] enabled`); the service is opened by [`open`].
pub async fn start(
    runner: &Runner,
    service: Arc<NetworkService>,
    auth: Authenticate,
    port: Option<u16>,
) -> anyhow::Result<Started> {
    let (l, url) = bind(runner.conf(), port).await?;
    let addr = l.local_addr()?;
    // `[metrics] enabled`: `/metrics` on this port (nova-all serves it on
    // the compute API's instead and starts its network API on its own).
    let app =
        nova_service::metrics::expose(runner, api::router(service.clone(), auth, &url)).await?;
    runner.http("network API", l, app);
    tracing::info!(%url, "network API listening");
    Ok(Started { addr, url, service })
}

/// Creates the shared flat network and its subnet when missing: `[network]
/// default_network_name` (default `private`; empty: none) with
/// `default_network_cidr` (default `10.0.0.0/24`). Returns its id.
pub async fn ensure_default_network(
    svc: &NetworkService,
    conf: &Conf,
) -> anyhow::Result<Option<String>> {
    let name = conf.str_or("network", "default_network_name", "private");
    let cidr = conf.str_or("network", "default_network_cidr", "10.0.0.0/24");
    ensure_flat_network(
        svc,
        "default network",
        &name,
        &cidr,
        json!({"shared": true, "provider:physical_network": "physnet1"}),
        json!({}),
    )
    .await
}

/// Creates the external network floating IPs come from when `[network]
/// external_network_name` is set (default: none) and it is missing, with
/// a subnet of `external_network_cidr` (default `172.24.4.0/24`, as
/// devstack's `public`); its addresses are recorded, never routed.
/// Returns its id.
pub async fn ensure_external_network(
    svc: &NetworkService,
    conf: &Conf,
) -> anyhow::Result<Option<String>> {
    let name = conf.str_or("network", "external_network_name", "");
    let cidr = conf.str_or("network", "external_network_cidr", "172.24.4.0/24");
    ensure_flat_network(
        svc,
        "external network",
        &name,
        &cidr,
        json!({"router:external": true, "provider:physical_network": "public"}),
        json!({"enable_dhcp": false}),
    )
    .await
}

/// Flat network `name` (none when empty) with a subnet of `cidr`, made with
/// the extra attributes `net_attrs` / `subnet_attrs` when missing. Its id.
async fn ensure_flat_network(
    svc: &NetworkService,
    what: &str,
    name: &str,
    cidr: &str,
    net_attrs: Value,
    subnet_attrs: Value,
) -> anyhow::Result<Option<String>> {
    if name.is_empty() {
        return Ok(None);
    }
    let admin = Caller::admin();
    let q = vec![("name".to_owned(), name.to_owned())];
    if let Some(n) = svc.list(&admin, service::NETWORK, &q).await.first() {
        return Ok(n["id"].as_str().map(str::to_owned));
    }
    let fail = |e: NeutronError| anyhow::anyhow!("{what}: {}", e.message);
    let mut net = json!({"name": name, "provider:network_type": "flat"});
    let mut subnet = json!({"name": format!("{name}-subnet"), "cidr": cidr,
        "ip_version": if cidr.contains(':') { 6 } else { 4 }});
    for (to, from) in [(&mut net, net_attrs), (&mut subnet, subnet_attrs)] {
        if let (Some(to), Value::Object(from)) = (to.as_object_mut(), from) {
            to.extend(from);
        }
    }
    let net = svc
        .create_network(&admin, &json!({ "network": net }))
        .await
        .map_err(fail)?;
    let id = net["id"].as_str().unwrap_or_default().to_owned();
    subnet["network_id"] = json!(id);
    svc.create_subnet(&admin, &json!({ "subnet": subnet }))
        .await
        .map_err(fail)?;
    Ok(Some(id))
}

/// `nova-network-api`: the service alone. `[api] auth_strategy`:
/// `noauth2`, or `keystone` (tokens checked at `[keystone_authtoken]
/// auth_url`); nova's events go to `[nova] url` with a token for `[nova]
/// username`/`password`/`project_name` from `[nova] auth_url` (else none
/// are sent).
pub async fn serve(runner: Runner, port: Option<u16>) -> anyhow::Result<()> {
    let conf = runner.conf().clone();
    // `[metrics] enabled`: recording before the store opens (its pool).
    if nova_service::metrics::MetricsConfig::from_conf(&conf)?.enabled {
        nova_service::metrics::install()?;
    }
    let svc = open(&runner).await?;
    let auth = match conf.str_or("api", "auth_strategy", "keystone").as_str() {
        "noauth2" | "noauth" => api::noauth(),
        "keystone" => api::keystone(
            conf.get("keystone_authtoken", "auth_url")
                .context("[api] auth_strategy = keystone needs [keystone_authtoken] auth_url")?,
        ),
        other => anyhow::bail!("[api] auth_strategy = {other}: expected keystone or noauth2"),
    };
    if let (Some(url), Some(auth_url)) = (conf.get("nova", "url"), conf.get("nova", "auth_url")) {
        let token = NovaEvents::password(
            auth_url,
            &conf.str_or("nova", "username", "nova"),
            &conf.str_or("nova", "password", ""),
            &conf.str_or("nova", "project_name", "service"),
        );
        svc.set_nova_events(NovaEvents::new(url, token));
    }
    ensure_default_network(&svc, &conf).await?;
    ensure_external_network(&svc, &conf).await?;
    start(&runner, svc, auth, port).await?;
    runner.run().await
}
