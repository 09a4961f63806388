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
//! Neutron API (`[neutron] endpoint_override` with a fixed token, as
//! Neutron's noauth; Keystone authentication comes with the network
//! service's client, issue 21).

use std::fmt::Debug;

use async_trait::async_trait;
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

/// [`PortLookup`] over Neutron's API.
#[derive(Debug)]
pub struct NeutronPorts {
    http: reqwest::Client,
    /// `http://neutron:9696` (without `/v2.0`).
    endpoint: String,
    /// The `X-Auth-Token` sent.
    token: String,
}

impl NeutronPorts {
    /// Neutron at `endpoint`, with `token`.
    pub fn new(endpoint: &str, token: &str) -> Self {
        let endpoint = endpoint.trim_end_matches('/');
        NeutronPorts {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            endpoint: endpoint
                .strip_suffix("/v2.0")
                .unwrap_or(endpoint)
                .to_owned(),
            token: token.to_owned(),
        }
    }

    /// From `[neutron] endpoint_override` and `token` (default `admin`);
    /// `None` when no endpoint is configured.
    pub fn from_conf(conf: &nova_service::Conf) -> Option<Self> {
        let endpoint = conf
            .get("neutron", "endpoint_override")
            .filter(|e| !e.is_empty())?;
        Some(Self::new(
            endpoint,
            &conf.str_or("neutron", "token", "admin"),
        ))
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
        let mut url = reqwest::Url::parse(&format!("{}/v2.0/{path}", self.endpoint))?;
        url.query_pairs_mut().extend_pairs(query);
        let r = self
            .http
            .get(url)
            .header("X-Auth-Token", &self.token)
            .header("Accept", "application/json")
            .send()
            .await?;
        let status = r.status();
        if !status.is_success() {
            anyhow::bail!("neutron answered {status} to GET {path}");
        }
        Ok(r.json().await?)
    }
}

#[async_trait]
impl PortLookup for NeutronPorts {
    async fn provider_networks(&self, provider: &str) -> anyhow::Result<Vec<String>> {
        let v = self
            .get(
                "subnets",
                &[
                    ("advanced_service_providers", provider),
                    ("fields", "network_id"),
                ],
            )
            .await?;
        Ok(v["subnets"]
            .as_array()
            .into_iter()
            .flatten()
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
        let v = self.get("ports", &q).await?;
        Ok(v["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["device_id"].as_str().unwrap_or_default().to_owned(),
                    p["tenant_id"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }
}
