//! [`KeystoneSession`]: how a service client (Placement's, Neutron's)
//! finds its endpoint and token, as nova's keystoneauth adapters do:
//! Keystone v3 password auth with the endpoint of the client's service type
//! from the token's catalog (`region_name`, `valid_interfaces`) or a fixed
//! `endpoint_override`; a fixed token at a fixed endpoint (noauth); or
//! tokens issued in-process (the all-in-one's identity).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// Tokens made in-process (the all-in-one's identity).
pub type TokenIssuer =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync>;

/// How a [`KeystoneSession`] authenticates.
#[derive(Clone)]
pub enum ServiceAuth {
    /// A fixed token at a fixed endpoint (noauth2: `admin`).
    Token {
        /// The endpoint (`http://host:8778`).
        endpoint: String,
        /// The `X-Auth-Token`.
        token: String,
    },
    /// Keystone v3 password auth, the endpoint from the catalog (or
    /// `endpoint_override`).
    Password {
        /// `auth_url` (`http://keystone/identity/v3` or without `/v3`).
        auth_url: String,
        /// `username`.
        username: String,
        /// `password`.
        password: String,
        /// `project_name`.
        project_name: String,
        /// `user_domain_name`.
        user_domain_name: String,
        /// `project_domain_name`.
        project_domain_name: String,
        /// `region_name` (`None`: any).
        region_name: Option<String>,
        /// `valid_interfaces` (first match wins; default internal, public).
        interfaces: Vec<String>,
        /// `endpoint_override`.
        endpoint_override: Option<String>,
    },
    /// Tokens from `issue` (asked again after a 401), at a fixed endpoint.
    Issued {
        /// The endpoint.
        endpoint: String,
        /// Makes a token.
        issue: TokenIssuer,
    },
}

impl std::fmt::Debug for ServiceAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceAuth::Token { endpoint, .. } => f
                .debug_struct("Token")
                .field("endpoint", endpoint)
                .finish_non_exhaustive(),
            ServiceAuth::Password {
                auth_url, username, ..
            } => f
                .debug_struct("Password")
                .field("auth_url", auth_url)
                .field("username", username)
                .finish_non_exhaustive(),
            ServiceAuth::Issued { endpoint, .. } => f
                .debug_struct("Issued")
                .field("endpoint", endpoint)
                .finish_non_exhaustive(),
        }
    }
}

impl PartialEq for ServiceAuth {
    fn eq(&self, other: &Self) -> bool {
        format!("{self:?}") == format!("{other:?}")
    }
}

impl ServiceAuth {
    /// From a nova.conf section's keystoneauth values (`get(key)`):
    /// `auth_type` none/noauth or `endpoint_override` without `auth_url`:
    /// a fixed `token` (default `admin`); else password auth. `None` when
    /// neither `auth_url` nor an endpoint is set.
    pub fn from_options(get: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let endpoint = get("endpoint_override");
        let auth_type = get("auth_type").unwrap_or_else(|| "password".into());
        if auth_type == "none"
            || auth_type == "noauth"
            || (get("auth_url").is_none() && endpoint.is_some())
        {
            return Some(ServiceAuth::Token {
                endpoint: endpoint?,
                token: get("token").unwrap_or_else(|| "admin".into()),
            });
        }
        let auth_url = get("auth_url")?;
        Some(ServiceAuth::Password {
            auth_url,
            username: get("username").unwrap_or_default(),
            password: get("password").unwrap_or_default(),
            project_name: get("project_name").unwrap_or_else(|| "service".into()),
            user_domain_name: get("user_domain_name").unwrap_or_else(|| "Default".into()),
            project_domain_name: get("project_domain_name").unwrap_or_else(|| "Default".into()),
            region_name: get("region_name"),
            interfaces: get("valid_interfaces")
                .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
                .unwrap_or_else(|| vec!["internal".into(), "public".into()]),
            endpoint_override: endpoint,
        })
    }
}

/// An authenticated session for one service type: (endpoint, token),
/// made on first use and again when asked to renew (after a 401).
#[derive(Debug)]
pub struct KeystoneSession {
    http: reqwest::Client,
    auth: ServiceAuth,
    service_type: String,
    cached: Mutex<Option<(String, String)>>,
}

impl KeystoneSession {
    /// A session for `service_type` (`placement`, `network`).
    pub fn new(auth: ServiceAuth, service_type: &str) -> Self {
        KeystoneSession {
            http: reqwest::Client::new(),
            auth,
            service_type: service_type.to_owned(),
            cached: Mutex::new(None),
        }
    }

    /// The HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether a new token may help after a 401.
    pub fn renews(&self) -> bool {
        !matches!(self.auth, ServiceAuth::Token { .. })
    }

    /// (endpoint without a trailing `/`, token); `renew` asks for a new
    /// token. The error says why none could be had.
    pub async fn get(&self, renew: bool) -> Result<(String, String), String> {
        if !renew
            && let Some(s) = self
                .cached
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        {
            return Ok(s);
        }
        let s = match &self.auth {
            ServiceAuth::Token { endpoint, token } => {
                (endpoint.trim_end_matches('/').to_owned(), token.clone())
            }
            ServiceAuth::Issued { endpoint, issue } => {
                (endpoint.trim_end_matches('/').to_owned(), issue().await?)
            }
            ServiceAuth::Password {
                auth_url,
                username,
                password,
                project_name,
                user_domain_name,
                project_domain_name,
                region_name,
                interfaces,
                endpoint_override,
            } => {
                let base = auth_url.trim_end_matches('/');
                let url = if base.ends_with("/v3") {
                    format!("{base}/auth/tokens")
                } else {
                    format!("{base}/v3/auth/tokens")
                };
                let body = json!({"auth": {
                    "identity": {"methods": ["password"], "password": {"user": {
                        "name": username, "password": password,
                        "domain": {"name": user_domain_name}}}},
                    "scope": {"project": {"name": project_name, "domain": {"name": project_domain_name}}},
                }});
                let r = self
                    .http
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if !r.status().is_success() {
                    return Err(format!(
                        "keystone refused the {} credentials: {}",
                        self.service_type,
                        r.status()
                    ));
                }
                let token = r
                    .headers()
                    .get("x-subject-token")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .ok_or("keystone sent no X-Subject-Token")?;
                let doc: Value = r.json().await.map_err(|e| e.to_string())?;
                let endpoint = match endpoint_override {
                    Some(e) => e.trim_end_matches('/').to_owned(),
                    None => catalog_endpoint(
                        &doc,
                        &self.service_type,
                        region_name.as_deref(),
                        interfaces,
                    )
                    .ok_or_else(|| {
                        format!("no {} endpoint in the service catalog", self.service_type)
                    })?,
                };
                (endpoint, token)
            }
        };
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = Some(s.clone());
        Ok(s)
    }
}

/// The endpoint of `service_type` in a Keystone token's catalog.
pub fn catalog_endpoint(
    doc: &Value,
    service_type: &str,
    region: Option<&str>,
    interfaces: &[String],
) -> Option<String> {
    let catalog = doc["token"]["catalog"].as_array()?;
    let svc = catalog.iter().find(|s| s["type"] == service_type)?;
    let eps = svc["endpoints"].as_array()?;
    for want in interfaces {
        for e in eps {
            let region_ok = region.is_none_or(|r| e["region"] == r || e["region_id"] == r);
            if e["interface"] == want.as_str() && region_ok {
                return e["url"]
                    .as_str()
                    .map(|u| u.trim_end_matches('/').to_owned());
            }
        }
    }
    None
}
