//! keystonemiddleware's `auth_token` for the services' HTTP APIs: a real
//! OpenStack Keystone validates each request's `X-Auth-Token`.
//!
//! Configured as keystonemiddleware is, by `[keystone_authtoken]`:
//! `auth_url` (Keystone, with or without `/v3`), `username`, `password`,
//! `project_name`, `user_domain_name`, `project_domain_name` (the
//! service's own credentials, Keystone v3 password auth),
//! `www_authenticate_uri` (what a 401 points at, default `auth_url`) and
//! `token_cache_time` (seconds a validated token is remembered, default
//! 300; -1 caches nothing).
//!
//! The [`middleware`] does what keystonemiddleware does in front of a
//! WSGI app: it drops any identity headers the client sent, validates the
//! token (`GET /v3/auth/tokens` with the service's token and
//! `X-Subject-Token`), and on success hands the request on with
//! `X-Identity-Status: Confirmed`, `X-User-Id`, `X-User-Name`,
//! `X-Project-Id`, `X-Project-Name`, `X-Roles` and, for a system-scoped
//! token, `OpenStack-System-Scope: all`. A missing, unknown or expired
//! token is a 401 with `WWW-Authenticate: Keystone uri="…"`; Keystone
//! unreachable is a 503. Paths listed as public (a version document) pass
//! without a token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::Conf;
use crate::service_auth::{Named, Scope};

/// The identity headers this middleware sets (and drops from clients).
const IDENTITY_HEADERS: [&str; 12] = [
    "x-identity-status",
    "x-user-id",
    "x-user-name",
    "x-user-domain-id",
    "x-user-domain-name",
    "x-project-id",
    "x-project-name",
    "x-project-domain-id",
    "x-project-domain-name",
    "x-roles",
    "x-service-roles",
    "openstack-system-scope",
];

/// `[keystone_authtoken]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthTokenOptions {
    /// Keystone's URL (`http://keystone:5000` or `.../v3`).
    pub auth_url: String,
    /// The service's user.
    pub username: String,
    /// Its password.
    pub password: String,
    /// Its project.
    pub project_name: String,
    /// The user's domain (name).
    pub user_domain_name: String,
    /// The project's domain (name).
    pub project_domain_name: String,
    /// What a 401's `WWW-Authenticate` names.
    pub www_authenticate_uri: String,
    /// How long a validated token is remembered (`None`: not at all).
    pub cache_time: Option<Duration>,
}

impl AuthTokenOptions {
    /// From `[keystone_authtoken]`; `None` when `auth_url` is not set.
    pub fn from_conf(conf: &Conf) -> Result<Option<Self>, crate::ConfError> {
        let s = "keystone_authtoken";
        let Some(auth_url) = conf.get(s, "auth_url").filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let cache: i64 = conf.parse_or(s, "token_cache_time", 300)?;
        Ok(Some(AuthTokenOptions {
            auth_url: auth_url.to_owned(),
            username: conf.str_or(s, "username", ""),
            password: conf.str_or(s, "password", ""),
            project_name: conf.str_or(s, "project_name", "service"),
            user_domain_name: conf.str_or(s, "user_domain_name", "Default"),
            project_domain_name: conf.str_or(s, "project_domain_name", "Default"),
            www_authenticate_uri: conf.str_or(s, "www_authenticate_uri", auth_url),
            cache_time: u64::try_from(cache).ok().map(Duration::from_secs),
        }))
    }

    fn v3(&self) -> String {
        let base = self.auth_url.trim_end_matches('/');
        if base.ends_with("/v3") {
            base.to_owned()
        } else {
            format!("{base}/v3")
        }
    }
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// User id.
    pub user_id: String,
    /// User name.
    pub user_name: String,
    /// Project id (empty when not project-scoped).
    pub project_id: String,
    /// Project name.
    pub project_name: String,
    /// Role names.
    pub roles: Vec<String>,
    /// A system-scoped token.
    pub system: bool,
}

impl TokenInfo {
    fn from_doc(doc: &Value) -> Option<Self> {
        let t = &doc["token"];
        let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        Some(TokenInfo {
            user_id: t["user"]["id"].as_str()?.to_owned(),
            user_name: s(&t["user"]["name"]),
            project_id: s(&t["project"]["id"]),
            project_name: s(&t["project"]["name"]),
            roles: t["roles"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|r| r["name"].as_str())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            system: t["system"].is_object(),
        })
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthTokenError {
    /// Unknown, expired or revoked (401).
    Invalid,
    /// Keystone could not be asked, or refused the service (503).
    Unavailable(String),
}

/// The validator: the service's own token and a cache of validated ones.
#[derive(Debug)]
pub struct AuthToken {
    http: reqwest::Client,
    opts: AuthTokenOptions,
    public_paths: Vec<String>,
    service_token: Mutex<Option<String>>,
    cache: Mutex<HashMap<String, (TokenInfo, Instant)>>,
}

impl AuthToken {
    /// A validator; `public_paths` (exact paths, e.g. `/`) need no token.
    pub fn new(opts: AuthTokenOptions, public_paths: &[&str]) -> Arc<Self> {
        Arc::new(AuthToken {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            opts,
            public_paths: public_paths.iter().map(|p| (*p).to_owned()).collect(),
            service_token: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn down(e: impl std::fmt::Display) -> AuthTokenError {
        AuthTokenError::Unavailable(format!("identity service unreachable: {e}"))
    }

    /// The service's own token (password auth), fetched when needed.
    async fn service_token(&self, renew: bool) -> Result<String, AuthTokenError> {
        if !renew
            && let Some(t) = self
                .service_token
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        {
            return Ok(t);
        }
        let o = &self.opts;
        let login = crate::service_auth::PasswordAuth {
            auth_url: o.auth_url.clone(),
            user: Named::Name(o.username.clone(), json!({"name": o.user_domain_name})),
            password: o.password.clone(),
            scope: Scope::Project(Named::Name(
                o.project_name.clone(),
                json!({"name": o.project_domain_name}),
            )),
        };
        let (t, _) = login.login(&self.http).await.map_err(|e| {
            AuthTokenError::Unavailable(format!("[keystone_authtoken] {}: {}", o.username, e.0))
        })?;
        *self.service_token.lock().unwrap_or_else(|e| e.into_inner()) = Some(t.clone());
        Ok(t)
    }

    /// Validates `token` (from the cache when it is fresh there).
    pub async fn validate(&self, token: &str) -> Result<TokenInfo, AuthTokenError> {
        if let Some(ttl) = self.opts.cache_time {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((info, at)) = cache.get(token)
                && at.elapsed() < ttl
            {
                return Ok(info.clone());
            }
        }
        let mut renew = false;
        loop {
            let service = self.service_token(renew).await?;
            let r = self
                .http
                .get(format!("{}/auth/tokens?nocatalog", self.opts.v3()))
                .header("x-auth-token", &service)
                .header("x-subject-token", token)
                .send()
                .await
                .map_err(Self::down)?;
            match r.status() {
                StatusCode::OK => {
                    let doc: Value = r.json().await.map_err(Self::down)?;
                    let info = TokenInfo::from_doc(&doc).ok_or(AuthTokenError::Invalid)?;
                    if let Some(ttl) = self.opts.cache_time {
                        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                        if cache.len() > 10_000 {
                            cache.retain(|_, (_, at)| at.elapsed() < ttl);
                        }
                        cache.insert(token.to_owned(), (info.clone(), Instant::now()));
                    }
                    return Ok(info);
                }
                // Our own token expired: once more with a new one.
                StatusCode::UNAUTHORIZED if !renew => renew = true,
                StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST => {
                    return Err(AuthTokenError::Invalid);
                }
                s => {
                    return Err(AuthTokenError::Unavailable(format!(
                        "the identity service answered {s} to a token validation"
                    )));
                }
            }
        }
    }

    fn unauthorized(&self) -> Response {
        let mut r = (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {
                "code": 401,
                "title": "Unauthorized",
                "message": "The request you have made requires authentication.",
            }})),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&format!(
            "Keystone uri=\"{}\"",
            self.opts.www_authenticate_uri
        )) {
            r.headers_mut().insert("www-authenticate", v);
        }
        r
    }
}

fn set(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// The `auth_token` middleware (`axum::middleware::from_fn_with_state`
/// with the [`AuthToken`]).
pub async fn middleware(State(a): State<Arc<AuthToken>>, mut req: Request, next: Next) -> Response {
    let h = req.headers_mut();
    for name in IDENTITY_HEADERS {
        h.remove(name);
    }
    if a.public_paths.iter().any(|p| p == req.uri().path()) {
        return next.run(req).await;
    }
    let Some(token) = req
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
    else {
        return a.unauthorized();
    };
    match a.validate(&token).await {
        Ok(info) => {
            let h = req.headers_mut();
            set(h, "x-identity-status", "Confirmed");
            set(h, "x-user-id", &info.user_id);
            set(h, "x-user-name", &info.user_name);
            set(h, "x-roles", &info.roles.join(","));
            if info.system {
                set(h, "openstack-system-scope", "all");
            } else {
                set(h, "x-project-id", &info.project_id);
                set(h, "x-project-name", &info.project_name);
            }
            next.run(req).await
        }
        Err(AuthTokenError::Invalid) => a.unauthorized(),
        Err(AuthTokenError::Unavailable(why)) => {
            tracing::error!(%why, "token validation failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": {
                    "code": 503,
                    "title": "Service Unavailable",
                    "message": "The identity service cannot validate the token.",
                }})),
            )
                .into_response()
        }
    }
}
