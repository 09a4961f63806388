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
pub struct NeutronClient {
    session: KeystoneSession,
    /// The network service's router when it runs in this process (the
    /// all-in-one's built-in one): the same requests, tokens and answers,
    /// handed to it without a socket.
    local: Option<axum::Router>,
}

impl std::fmt::Debug for NeutronClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeutronClient")
            .field("session", &self.session)
            .field("in_process", &self.local.is_some())
            .finish()
    }
}

impl NeutronClient {
    /// A client authenticating with `auth` (endpoint: service type `network`).
    pub fn new(auth: ServiceAuth) -> Self {
        NeutronClient {
            session: KeystoneSession::new(auth, "network"),
            local: None,
        }
    }

    /// Requests go to `router` (the network service in this process, at
    /// the root of its endpoint) instead of over HTTP; authentication is
    /// the same.
    pub fn in_process(mut self, router: axum::Router) -> Self {
        self.local = Some(router);
        self
    }

    /// `method path` with `body` to the network service: status and body.
    async fn send(
        &self,
        endpoint: &str,
        token: &str,
        method: &Method,
        path: &str,
        body: Option<&Value>,
    ) -> NResult<(u16, axum::body::Bytes)> {
        if let Some(router) = &self.local {
            use tower::ServiceExt as _;
            let mut req = axum::http::Request::builder()
                .method(method.as_str())
                .uri(path)
                .header("x-auth-token", token)
                .header("accept", "application/json");
            let body = match body {
                Some(b) => {
                    req = req.header("content-type", "application/json");
                    axum::body::Body::from(serde_json::to_vec(b).map_err(NeutronFailure::down)?)
                }
                None => axum::body::Body::empty(),
            };
            let req = req.body(body).map_err(NeutronFailure::down)?;
            let r = router
                .clone()
                .oneshot(req)
                .await
                .map_err(NeutronFailure::down)?;
            let status = r.status().as_u16();
            let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .map_err(NeutronFailure::down)?;
            return Ok((status, bytes));
        }
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
        let bytes = r.bytes().await.map_err(NeutronFailure::down)?;
        Ok((status, bytes))
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
            let (status, bytes) = self.send(&endpoint, &token, &method, path, body).await?;
            if status == 401 && attempt == 0 && self.session.renews() {
                continue;
            }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Json;
    use axum::extract::Request;
    use axum::http::StatusCode;
    use axum::response::IntoResponse as _;
    use axum::routing::any;
    use serde_json::json;

    use super::*;

    /// A network service in this process: it sees the client's token, path
    /// and body as HTTP would carry them; a stale token is renewed once;
    /// its faults read as Neutron's.
    #[tokio::test]
    async fn in_process_requests_carry_what_http_would() {
        let issued = Arc::new(AtomicUsize::new(0));
        let router = axum::Router::new().route(
            "/{*rest}",
            any(|req: Request| async move {
                let token = req.headers()["x-auth-token"].to_str().unwrap().to_owned();
                if token == "t1" {
                    return (StatusCode::UNAUTHORIZED, Json(json!({}))).into_response();
                }
                let (method, uri) = (req.method().to_string(), req.uri().to_string());
                let typed = req.headers().get("content-type").is_some();
                let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap();
                if uri.starts_with("/v2.0/ports/gone") {
                    let e = json!({"NeutronError": {"type": "PortNotFound", "message": "Port gone could not be found."}});
                    return (StatusCode::NOT_FOUND, Json(e)).into_response();
                }
                let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                Json(json!({"port": {"method": method, "uri": uri, "token": token,
                    "typed": typed, "sent": sent}}))
                .into_response()
            }),
        );
        let n = issued.clone();
        let client = NeutronClient::new(ServiceAuth::Issued {
            endpoint: "http://unused.invalid:9696".into(),
            issue: Arc::new(move || {
                let i = n.fetch_add(1, Ordering::SeqCst) + 1;
                Box::pin(async move { Ok(format!("t{i}")) })
            }),
        })
        .in_process(router);

        let p = client
            .update_port("p 1", json!({"name": "x"}))
            .await
            .unwrap();
        assert_eq!(
            p,
            json!({"method": "PUT", "uri": "/v2.0/ports/p+1", "token": "t2", "typed": true,
                "sent": {"port": {"name": "x"}}})
        );
        assert_eq!(
            issued.load(Ordering::SeqCst),
            2,
            "renewed once after the 401"
        );
        let ports = client
            .list("port", &[("device_id", "d")])
            .await
            .unwrap_or_default();
        assert!(ports.is_empty(), "a show-shaped answer has no list");
        let e = client.show("port", "gone").await.unwrap_err();
        assert_eq!((e.status, e.kind.as_str()), (404, "PortNotFound"));
        assert_eq!(e.message, "Port gone could not be found.");
        client.delete_port("gone").await.unwrap();
    }
}
