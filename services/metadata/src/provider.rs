//! The metadata provider path (nova's `_handle_instance_id_request_from_lb`
//! and `_get_instance_id_from_lb`): a metadata provider on a Neutron
//! provider network (a load balancer, an edge appliance) forwards the
//! guest's request with `X-Metadata-Provider` (its id),
//! `X-Metadata-Provider-Signature` (HMAC-SHA256 of the id with `[neutron]
//! metadata_proxy_shared_secret`) and `X-Forwarded-For` (the guest's
//! fixed address). The instance is the `device_id` of the one port that
//! holds that address on a network whose subnets the provider serves
//! (Neutron's `advanced_service_providers`).
//!
//! The two Neutron queries are a [`PortLookup`]; [`NeutronPorts`] asks a
//! Neutron API with nova's Neutron client and its `[neutron]` settings
//! (Keystone password auth and the catalog, or `endpoint_override` with a
//! fixed token, as Neutron's noauth).

use std::fmt::Debug;

use async_trait::async_trait;
use nova_placement::ServiceAuth;
use nova_service::neutron::NeutronClient;
use serde_json::Value;

/// nova's `MAX_QUERY_NETWORKS`: networks per port query.
pub const MAX_QUERY_NETWORKS: usize = 100;

/// Neutron's answers the provider path needs.
#[async_trait]
pub trait PortLookup: Send + Sync + Debug {
    /// The networks of the subnets `provider` serves
    /// (`GET /v2.0/subnets?advanced_service_providers=…&fields=network_id`).
    async fn provider_networks(&self, provider: &str) -> anyhow::Result<Vec<String>>;

    /// `(device_id, tenant_id)` of the ports on `networks` with the fixed
    /// IP `address` (`GET /v2.0/ports?fixed_ips=ip_address=…&network_id=…`).
    async fn ports_with_address(
        &self,
        address: &str,
        networks: &[String],
    ) -> anyhow::Result<Vec<(String, String)>>;
}

/// A refusal of the provider path: the status and nova's explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400 for every lookup failure, as nova.
    pub status: u16,
    /// nova's message.
    pub explanation: String,
}

fn bad_request(explanation: String) -> Refusal {
    Refusal {
        status: 400,
        explanation,
    }
}

/// nova's `_get_instance_id_from_lb`: `(instance_id, tenant_id)` of the
/// one port matching `provider` and `address`.
pub async fn instance_of(
    ports: &dyn PortLookup,
    provider: &str,
    address: &str,
) -> Result<(String, String), Refusal> {
    let networks = ports.provider_networks(provider).await.map_err(|e| {
        tracing::error!(provider, error = %e, "cannot list the provider's subnets");
        bad_request("An unknown error has occurred. Please try your request again.".into())
    })?;
    if networks.is_empty() {
        tracing::error!(provider, "no subnets for the metadata provider");
        return Err(bad_request(format!(
            "Could not find any subnets for provider {provider}"
        )));
    }
    let mut found = Vec::new();
    for chunk in networks.chunks(MAX_QUERY_NETWORKS) {
        let mut some = ports
            .ports_with_address(address, chunk)
            .await
            .map_err(|e| {
                tracing::error!(provider, requester = address, error = %e,
                    "failed to get the instance id for a metadata request");
                bad_request("An unknown error has occurred. Please try your request again.".into())
            })?;
        found.append(&mut some);
    }
    if found.len() != 1 {
        let msg = format!(
            "Expected a single port matching provider {provider} and IP {address}. Found {}.",
            found.len()
        );
        tracing::error!("{msg}");
        return Err(bad_request(msg));
    }
    Ok(found.remove(0))
}

/// [`PortLookup`] over Neutron's API, with nova's Neutron client: the
/// `[neutron]` keystoneauth options (`auth_url`, `username`, `password`,
/// `project_name`, the domains, `region_name`, `valid_interfaces`: the
/// endpoint of service type `network` from the token's catalog, the
/// token renewed after a 401), or `endpoint_override` with
/// `auth_type = noauth` and `token`.
#[derive(Debug)]
pub struct NeutronPorts {
    client: NeutronClient,
}

impl NeutronPorts {
    /// Neutron at `endpoint` (`http://neutron:9696`), with the fixed `token`.
    pub fn new(endpoint: &str, token: &str) -> Self {
        let endpoint = endpoint.trim_end_matches('/');
        NeutronPorts {
            client: NeutronClient::new(ServiceAuth::Token {
                endpoint: endpoint
                    .strip_suffix("/v2.0")
                    .unwrap_or(endpoint)
                    .to_owned(),
                token: token.to_owned(),
            }),
        }
    }

    /// Neutron as `auth` reaches it.
    pub fn with_auth(auth: ServiceAuth) -> Self {
        NeutronPorts {
            client: NeutronClient::new(auth),
        }
    }

    /// From `[neutron]`, as nova's other Neutron calls
    /// ([`NeutronClient::from_conf`]); `None` when neither `auth_url` nor
    /// an endpoint is configured.
    pub fn from_conf(conf: &nova_service::Conf) -> Option<Self> {
        NeutronClient::from_conf(conf).map(|client| NeutronPorts { client })
    }

    async fn list(&self, kind: &str, query: &[(&str, &str)]) -> anyhow::Result<Vec<Value>> {
        self.client
            .list(kind, query)
            .await
            .map_err(|e| anyhow::anyhow!("neutron: GET {kind}s: {e}"))
    }
}

#[async_trait]
impl PortLookup for NeutronPorts {
    async fn provider_networks(&self, provider: &str) -> anyhow::Result<Vec<String>> {
        let subnets = self
            .list(
                "subnet",
                &[
                    ("advanced_service_providers", provider),
                    ("fields", "network_id"),
                ],
            )
            .await?;
        Ok(subnets
            .iter()
            .filter_map(|s| s["network_id"].as_str().map(str::to_owned))
            .collect())
    }

    async fn ports_with_address(
        &self,
        address: &str,
        networks: &[String],
    ) -> anyhow::Result<Vec<(String, String)>> {
        let fixed = format!("ip_address={address}");
        let mut q = vec![
            ("fixed_ips", fixed.as_str()),
            ("fields", "device_id"),
            ("fields", "tenant_id"),
        ];
        q.extend(networks.iter().map(|n| ("network_id", n.as_str())));
        let ports = self.list("port", &q).await?;
        Ok(ports
            .iter()
            .map(|p| {
                (
                    p["device_id"].as_str().unwrap_or_default().to_owned(),
                    p["tenant_id"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::{Arc, Mutex};

    use axum::Json;
    use axum::extract::{RawQuery, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use serde_json::json;

    use super::*;

    #[derive(Clone, Default)]
    struct Fake {
        /// The endpoint served (set once bound).
        base: Arc<Mutex<String>>,
        /// Tokens issued so far.
        issued: Arc<Mutex<Vec<Value>>>,
        /// Neutron's requests: (token, path and query).
        asked: Arc<Mutex<Vec<(String, String)>>>,
    }

    async fn tokens(State(f): State<Fake>, Json(body): Json<Value>) -> Response {
        let ident = &body["auth"]["identity"]["password"]["user"];
        if ident["name"] != "neutron" || ident["password"] != "secret" {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let n = {
            let mut issued = f.issued.lock().unwrap();
            issued.push(body.clone());
            issued.len()
        };
        let base = f.base.lock().unwrap().clone();
        let catalog = json!([
            {"type": "compute", "endpoints": [
                {"interface": "internal", "region": "RegionOne", "url": "http://nowhere:1"}]},
            {"type": "network", "endpoints": [
                {"interface": "public", "region": "RegionOne", "url": "http://nowhere:2"},
                {"interface": "internal", "region": "RegionTwo", "url": "http://nowhere:3"},
                {"interface": "internal", "region": "RegionOne", "url": format!("{base}/neutron/")}]},
        ]);
        (
            StatusCode::CREATED,
            [("x-subject-token", format!("tok-{n}"))],
            Json(json!({"token": {"catalog": catalog}})),
        )
            .into_response()
    }

    async fn neutron(
        State(f): State<Fake>,
        headers: HeaderMap,
        uri: axum::http::Uri,
        RawQuery(q): RawQuery,
    ) -> Response {
        let token = headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        f.asked.lock().unwrap().push((
            token.clone(),
            format!("{}?{}", uri.path(), q.unwrap_or_default()),
        ));
        // The first token has expired by the time it is used.
        if token != "tok-2" {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        if uri.path().ends_with("/subnets") {
            Json(json!({"subnets": [{"network_id": "net-1"}, {"network_id": "net-2"}]}))
                .into_response()
        } else {
            Json(json!({"ports": [{"device_id": "vm-1", "tenant_id": "proj-1"}]})).into_response()
        }
    }

    /// The provider path's Neutron calls authenticate as nova's Neutron
    /// client does: Keystone v3 password auth with `[neutron]`'s options,
    /// the `network` endpoint of `valid_interfaces` in `region_name` from
    /// the catalog, a new token after a 401.
    #[tokio::test]
    async fn the_provider_lookup_uses_neutrons_keystone_settings() {
        let f = Fake::default();
        let app = axum::Router::new()
            .route("/identity/v3/auth/tokens", post(tokens))
            .route("/neutron/v2.0/subnets", get(neutron))
            .route("/neutron/v2.0/ports", get(neutron))
            .with_state(f.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        *f.base.lock().unwrap() = base.clone();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        let conf = nova_service::Conf::parse(&format!(
            "[neutron]\nauth_type = password\nauth_url = {base}/identity\nusername = neutron\n\
             password = secret\nproject_name = service\nuser_domain_name = Default\n\
             project_domain_name = Default\nregion_name = RegionOne\nvalid_interfaces = internal\n\
             service_metadata_proxy = true\n"
        ))
        .unwrap();
        let ports = NeutronPorts::from_conf(&conf).expect("a Neutron client from [neutron]");
        let found = instance_of(&ports, "lb-1", "10.0.0.5").await.unwrap();
        assert_eq!(found, ("vm-1".to_owned(), "proj-1".to_owned()));
        let issued = f.issued.lock().unwrap().clone();
        assert_eq!(issued.len(), 2, "one token, renewed after the 401");
        assert_eq!(
            issued[0]["auth"]["scope"]["project"],
            json!({"name": "service", "domain": {"name": "Default"}})
        );
        let asked = f.asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 3, "{asked:?}");
        assert_eq!(asked[0].0, "tok-1");
        assert_eq!(
            asked[1],
            (
                "tok-2".to_owned(),
                "/neutron/v2.0/subnets?advanced_service_providers=lb-1&fields=network_id"
                    .to_owned()
            )
        );
        assert_eq!(
            asked[2],
            (
                "tok-2".to_owned(),
                "/neutron/v2.0/ports?fixed_ips=ip_address%3D10.0.0.5&fields=device_id&fields=tenant_id&network_id=net-1&network_id=net-2".to_owned()
            )
        );
        // Wrong credentials: the lookup fails as nova's, a 400.
        let conf = nova_service::Conf::parse(&format!(
            "[neutron]\nauth_url = {base}/identity\nusername = neutron\npassword = wrong\n"
        ))
        .unwrap();
        let ports = NeutronPorts::from_conf(&conf).unwrap();
        let refused = instance_of(&ports, "lb-1", "10.0.0.5").await.unwrap_err();
        assert_eq!(refused.status, 400);
        // Nothing configured: no provider path.
        assert!(
            NeutronPorts::from_conf(&nova_service::Conf::parse("[neutron]\n").unwrap()).is_none()
        );
    }
}
