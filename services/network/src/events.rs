//! Telling nova about ports, as Neutron's nova notifier does: `POST
//! /v2.1/os-server-external-events` with `network-vif-plugged` (a bound
//! port went ACTIVE), `network-vif-unplugged`, `network-vif-deleted`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::json;

use crate::service::NetworkService;

/// One external event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `network-vif-plugged`, ...
    pub name: &'static str,
    /// The server (the port's `device_id`).
    pub server_uuid: String,
    /// The port id.
    pub tag: String,
    /// `completed` or `failed`.
    pub status: &'static str,
}

/// A token for nova's API.
pub type TokenSource =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = anyhow::Result<String>> + Send>> + Send + Sync>;

/// Where the events go: nova's compute endpoint (`http://host:8774`,
/// without `/v2.1`) and how to authenticate.
#[derive(Clone)]
pub struct NovaEvents {
    /// The compute API's root URL.
    pub url: String,
    /// Tokens.
    pub token: TokenSource,
    http: reqwest::Client,
    /// nova's compute API router when nova runs in this process: the same
    /// request, handed to it without a socket.
    local: Option<axum::Router>,
}

impl std::fmt::Debug for NovaEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NovaEvents")
            .field("url", &self.url)
            .finish()
    }
}

impl NovaEvents {
    /// Events to `url` with tokens from `token`.
    pub fn new(url: &str, token: TokenSource) -> Self {
        NovaEvents {
            url: url
                .trim_end_matches('/')
                .trim_end_matches("/v2.1")
                .to_owned(),
            token,
            http: reqwest::Client::new(),
            local: None,
        }
    }

    /// Events go to `app` (nova's compute API in this process, at the root
    /// of its endpoint) instead of over HTTP.
    pub fn in_process(mut self, app: axum::Router) -> Self {
        self.local = Some(app);
        self
    }

    /// POSTs `body` to the events API: the answer's status.
    async fn post(&self, token: &str, body: &serde_json::Value) -> anyhow::Result<u16> {
        const PATH: &str = "/v2.1/os-server-external-events";
        if let Some(app) = &self.local {
            use tower::ServiceExt as _;
            let req = axum::http::Request::post(PATH)
                .header("x-auth-token", token)
                .header("content-type", "application/json")
                .body(axum::body::Body::from(serde_json::to_vec(body)?))?;
            return Ok(app.clone().oneshot(req).await?.status().as_u16());
        }
        let r = self
            .http
            .post(format!("{}{PATH}", self.url))
            .header("x-auth-token", token)
            .json(body)
            .send()
            .await?;
        Ok(r.status().as_u16())
    }

    /// Tokens from a Keystone v3 (`auth_url`) for a user (Neutron's `[nova]`
    /// section: username, password, project_name).
    pub fn password(auth_url: &str, user: &str, password: &str, project: &str) -> TokenSource {
        let (url, body) = (
            format!("{}/auth/tokens", auth_url.trim_end_matches('/')),
            json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"name": "Default"}, "password": password}}},
                "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}),
        );
        let http = reqwest::Client::new();
        Arc::new(move || {
            let (url, body, http) = (url.clone(), body.clone(), http.clone());
            Box::pin(async move {
                let r = http.post(&url).json(&body).send().await?;
                anyhow::ensure!(r.status().is_success(), "{url}: {}", r.status());
                r.headers()
                    .get("x-subject-token")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow::anyhow!("{url}: no X-Subject-Token"))
            })
        })
    }

    /// Sends `events` (two tries); failures are logged.
    pub async fn send(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let body = json!({"events": events.iter().map(|e| json!({
            "name": e.name, "server_uuid": e.server_uuid, "tag": e.tag, "status": e.status,
        })).collect::<Vec<_>>()});
        for attempt in 0..2 {
            let result = async {
                let token = (self.token)().await?;
                let status = self.post(&token, &body).await?;
                // 207: some servers unknown (deleted meanwhile) — delivered.
                anyhow::ensure!((200..300).contains(&status) || status == 404, "{status}");
                Ok::<_, anyhow::Error>(())
            }
            .await;
            match result {
                Ok(()) => return,
                Err(e) if attempt == 0 => {
                    tracing::debug!(error = %e, "nova events: retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, url = %self.url, "nova did not take the events")
                }
            }
        }
    }
}

impl NetworkService {
    /// Sends `events` to nova in the background (when nova is configured).
    pub(crate) fn send_events(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        if let Some(n) = self.events.get().cloned() {
            tokio::spawn(async move { n.send(&events).await });
        }
    }
}
