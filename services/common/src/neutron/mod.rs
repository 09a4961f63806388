//! nova's network API client (`nova/network/neutron.py`): a Neutron v2.0
//! HTTP client ([`NeutronClient`], on the same [`KeystoneSession`] the
//! Placement client uses) configured by `[neutron]`; the create body's
//! requested networks checked as nova's API does (`requests.rs`); ports
//! created or taken, bound and released for an instance (`allocate.rs`);
//! nova's network model as the info cache keeps it (`model.rs`).

mod allocate;
mod model;
mod requests;

use nova_placement::{KeystoneSession, ServiceAuth};
use reqwest::Method;
use serde_json::Value;

use crate::Conf;

pub use allocate::{
    Allocation, AttachRefused, deallocate_for_instance, release_port, unbind_ports,
};
pub use model::{preserved_ports, vif_of_port, vifs_of_cache};
pub use requests::{NetworkError, parse_requested_networks, validate_networks};

/// A Neutron answer that is not a success, or no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeutronFailure {
    /// The HTTP status (0: unreachable).
    pub status: u16,
    /// Neutron's `NeutronError.type` (`PortNotFound`, ...).
    pub kind: String,
    /// Its message.
    pub message: String,
}

impl std::fmt::Display for NeutronFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.status == 0 {
            write!(f, "network service unreachable: {}", self.message)
        } else {
            write!(f, "{} ({}): {}", self.kind, self.status, self.message)
        }
    }
}

impl std::error::Error for NeutronFailure {}

impl NeutronFailure {
    fn down(e: impl std::fmt::Display) -> Self {
        NeutronFailure {
            status: 0,
            kind: String::new(),
            message: e.to_string(),
        }
    }

    /// Whether Neutron said 404.
    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }
}

/// Result of a Neutron call.
pub type NResult<T> = Result<T, NeutronFailure>;

/// A Neutron v2.0 client (nova's admin client: the service's credentials).
#[derive(Debug)]
pub struct NeutronClient {
    session: KeystoneSession,
}

impl NeutronClient {
    /// A client authenticating with `auth` (endpoint: service type `network`).
    pub fn new(auth: ServiceAuth) -> Self {
        NeutronClient {
            session: KeystoneSession::new(auth, "network"),
        }
    }

    /// From `[neutron]`: `auth_url`/`username`/`password`/`project_name`/
    /// domains/`region_name`/`valid_interfaces` (the endpoint from the
    /// catalog) or `endpoint_override` (also `url`) with `auth_type = noauth`
    /// and `token`; `None` when none of them is set (no network service).
    pub fn from_conf(conf: &Conf) -> Option<Self> {
        let get = |k: &str| {
            conf.get("neutron", k)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .or_else(|| {
                    (k == "endpoint_override")
                        .then(|| conf.get("neutron", "url").filter(|v| !v.is_empty()))
                        .flatten()
                        .map(str::to_owned)
                })
        };
        ServiceAuth::from_options(get).map(Self::new)
    }

    /// One call: the answer's JSON on 2xx, else Neutron's fault.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> NResult<Value> {
        for attempt in 0..2 {
            let (endpoint, token) = self
                .session
                .get(attempt > 0)
                .await
                .map_err(NeutronFailure::down)?;
            let mut rb = self
                .session
                .http()
                .request(method.clone(), format!("{endpoint}{path}"))
                .header("x-auth-token", token)
                .header("accept", "application/json");
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let r = rb.send().await.map_err(NeutronFailure::down)?;
            let status = r.status().as_u16();
            if status == 401 && attempt == 0 && self.session.renews() {
                continue;
            }
            let bytes = r.bytes().await.map_err(NeutronFailure::down)?;
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if (200..300).contains(&status) {
                return Ok(v);
            }
            let e = &v["NeutronError"];
            return Err(NeutronFailure {
                status,
                kind: e["type"].as_str().unwrap_or_default().to_owned(),
                message: e["message"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()),
            });
        }
        Err(NeutronFailure::down(
            "the network service refuses the credentials",
        ))
    }

    /// `GET /v2.0/<kind>s` with `query`: the list.
    pub async fn list(&self, kind: &str, query: &[(&str, &str)]) -> NResult<Vec<Value>> {
        let q = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in query {
                q.append_pair(k, v);
            }
            q.finish()
        };
        let coll = collection(kind);
        let path = if q.is_empty() {
            format!("/v2.0/{coll}")
        } else {
            format!("/v2.0/{coll}?{q}")
        };
        let v = self.call(Method::GET, &path, None).await?;
        Ok(v[format!("{kind}s")]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// `GET /v2.0/<kind>s/{id}`.
    pub async fn show(&self, kind: &str, id: &str) -> NResult<Value> {
        let v = self
            .call(
                Method::GET,
                &format!("/v2.0/{}/{}", collection(kind), enc(id)),
                None,
            )
            .await?;
        Ok(v[kind].clone())
    }

    /// `POST /v2.0/ports` with the port's attributes.
    pub async fn create_port(&self, port: Value) -> NResult<Value> {
        let v = self
            .call(
                Method::POST,
                "/v2.0/ports",
                Some(&serde_json::json!({ "port": port })),
            )
            .await?;
        Ok(v["port"].clone())
    }

    /// `PUT /v2.0/ports/{id}` with the attributes to change.
    pub async fn update_port(&self, id: &str, port: Value) -> NResult<Value> {
        let v = self
            .call(
                Method::PUT,
                &format!("/v2.0/ports/{}", enc(id)),
                Some(&serde_json::json!({ "port": port })),
            )
            .await?;
        Ok(v["port"].clone())
    }

    /// `DELETE /v2.0/ports/{id}`; one already gone is not an error.
    pub async fn delete_port(&self, id: &str) -> NResult<()> {
        match self
            .call(Method::DELETE, &format!("/v2.0/ports/{}", enc(id)), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The URL collection of `kind` (`security_group` → `security-groups`).
fn collection(kind: &str) -> String {
    format!("{}s", kind.replace('_', "-"))
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
