//! `[keystone_authtoken]`: user tokens validated against a real Keystone,
//! as keystonemiddleware's `auth_token` does it. The service logs in with
//! its own user (`auth_type = password`), asks Keystone's
//! `GET /v3/auth/tokens` about each user token (and an `X-Service-Token`),
//! caches the answer for `token_cache_time`, and puts user, project,
//! domain, system scope, roles, service roles and catalog into the
//! request context. An unknown, revoked or expired token is a 401 with
//! `WWW-Authenticate: Keystone uri="<www_authenticate_uri>"`; a Keystone
//! that cannot be reached is a 503.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nova_service::service_auth::{Named, PasswordAuth, Scope};
use serde_json::{Value, json};

/// `[keystone_authtoken]` as keystonemiddleware reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthTokenConfig {
    /// `www_authenticate_uri`: what a 401 tells clients to log in at.
    pub www_authenticate_uri: String,
    /// `auth_url`: where the service user logs in and tokens are checked.
    pub auth_url: String,
    /// `username` of the service user.
    pub username: String,
    /// `password`.
    pub password: String,
    /// `project_name` the service user scopes to.
    pub project_name: String,
    /// `user_domain_name` (or `user_domain_id`).
    pub user_domain: Domain,
    /// `project_domain_name` (or `project_domain_id`).
    pub project_domain: Domain,
    /// `region_name`: the catalog region the context's endpoints come from.
    pub region_name: Option<String>,
    /// `token_cache_time` (300 s; negative: no cache).
    pub token_cache_time: Option<Duration>,
    /// `service_token_roles` (`service`): any of them makes a service token.
    pub service_token_roles: Vec<String>,
    /// `service_token_roles_required` (false): a service token without
    /// those roles is refused.
    pub service_token_roles_required: bool,
    /// `http_request_max_retries` (3) when Keystone cannot be reached.
    pub max_retries: u32,
}

/// A domain named by id or name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Domain {
    /// `*_domain_id`.
    Id(String),
    /// `*_domain_name`.
    Name(String),
}

impl Domain {
    fn json(&self) -> Value {
        match self {
            Domain::Id(i) => json!({"id": i}),
            Domain::Name(n) => json!({"name": n}),
        }
    }
}

impl AuthTokenConfig {
    /// From nova.conf; `None` when `[keystone_authtoken]` names no
    /// Keystone (`auth_url`, or `www_authenticate_uri`), which leaves the
    /// built-in identity in charge.
    pub fn from_conf(conf: &nova_service::Conf) -> anyhow::Result<Option<Self>> {
        let s = "keystone_authtoken";
        let www = conf
            .get(s, "www_authenticate_uri")
            .or_else(|| conf.get(s, "auth_uri"))
            .map(str::to_owned);
        let Some(auth_url) = conf.get(s, "auth_url").map(str::to_owned).or(www.clone()) else {
            return Ok(None);
        };
        let auth_type = conf.str_or(s, "auth_type", "password");
        if auth_type != "password" && auth_type != "v3password" {
            anyhow::bail!("[keystone_authtoken] auth_type = {auth_type}: only password is served");
        }
        let domain = |id: &str, name: &str| match (conf.get(s, id), conf.get(s, name)) {
            (Some(i), _) => Domain::Id(i.to_owned()),
            (None, Some(n)) => Domain::Name(n.to_owned()),
            (None, None) => Domain::Id("default".to_owned()),
        };
        let cache: i64 = conf.parse_or(s, "token_cache_time", 300i64)?;
        Ok(Some(AuthTokenConfig {
            www_authenticate_uri: www.unwrap_or_else(|| auth_url.clone()),
            auth_url: auth_url.trim_end_matches('/').to_owned(),
            username: conf
                .get(s, "username")
                .ok_or_else(|| anyhow::anyhow!("[keystone_authtoken] username is required"))?
                .to_owned(),
            password: conf.str_or(s, "password", ""),
            project_name: conf.str_or(s, "project_name", "service"),
            user_domain: domain("user_domain_id", "user_domain_name"),
            project_domain: domain("project_domain_id", "project_domain_name"),
            region_name: conf.get(s, "region_name").map(str::to_owned),
            token_cache_time: u64::try_from(cache).ok().map(Duration::from_secs),
            service_token_roles: conf
                .list(s, "service_token_roles")
                .unwrap_or_else(|| vec!["service".to_owned()]),
            service_token_roles_required: conf.bool_or(s, "service_token_roles_required", false)?,
            max_retries: conf.parse_or(s, "http_request_max_retries", 3u32)?,
        }))
    }

    /// The v3 root (`auth_url` with `/v3`).
    fn v3(&self) -> String {
        if self.auth_url.ends_with("/v3") {
            self.auth_url.clone()
        } else {
            format!("{}/v3", self.auth_url)
        }
    }

    /// The `WWW-Authenticate` header value of a 401.
    pub fn www_authenticate(&self) -> String {
        format!("Keystone uri=\"{}\"", self.www_authenticate_uri)
    }
}

/// What Keystone says about a valid token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenInfo {
    /// User id.
    pub user_id: String,
    /// User name.
    pub user_name: String,
    /// The user's domain id.
    pub user_domain_id: String,
    /// Project id (project-scoped tokens).
    pub project_id: Option<String>,
    /// Project name.
    pub project_name: Option<String>,
    /// The project's domain id.
    pub project_domain_id: Option<String>,
    /// Domain id (domain-scoped tokens).
    pub domain_id: Option<String>,
    /// `all` for system-scoped tokens.
    pub system_scope: Option<String>,
    /// Role names (Keystone's effective roles, implied ones included).
    pub roles: Vec<String>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// The public URL of the image service in the token's catalog.
    pub image_url: Option<String>,
    /// `is_admin_project`.
    pub is_admin_project: bool,
}

impl TokenInfo {
    /// Parses Keystone's `{"token": …}` body; `region` picks endpoints.
    pub fn parse(body: &Value, region: Option<&str>) -> Option<TokenInfo> {
        let t = body.get("token")?;
        let s = |v: &Value| v.as_str().map(str::to_owned);
        let expires_at = t["expires_at"]
            .as_str()
            .and_then(|e| DateTime::parse_from_rfc3339(e).ok())?
            .with_timezone(&Utc);
        let image_url = t["catalog"].as_array().and_then(|cat| {
            cat.iter()
                .find(|c| c["type"] == "image")?
                .get("endpoints")?
                .as_array()?
                .iter()
                .find(|e| {
                    e["interface"] == "public"
                        && region.is_none_or(|r| e["region_id"] == r || e["region"] == r)
                })
                .and_then(|e| s(&e["url"]))
        });
        Some(TokenInfo {
            user_id: s(&t["user"]["id"])?,
            user_name: s(&t["user"]["name"]).unwrap_or_default(),
            user_domain_id: s(&t["user"]["domain"]["id"]).unwrap_or_default(),
            project_id: s(&t["project"]["id"]),
            project_name: s(&t["project"]["name"]),
            project_domain_id: s(&t["project"]["domain"]["id"]),
            domain_id: s(&t["domain"]["id"]),
            system_scope: t
                .get("system")
                .and_then(|sys| sys.get("all"))
                .and_then(Value::as_bool)
                .filter(|a| *a)
                .map(|_| "all".to_owned()),
            roles: t["roles"]
                .as_array()
                .map(|r| r.iter().filter_map(|x| s(&x["name"])).collect())
                .unwrap_or_default(),
            expires_at,
            image_url,
            is_admin_project: t["is_admin_project"].as_bool().unwrap_or(true),
        })
    }
}

/// Why a token could not be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The token is unknown, revoked or expired (401).
    Invalid,
    /// Keystone could not be asked (503).
    Unavailable(String),
}

#[derive(Debug, Clone)]
struct Cached {
    info: Option<TokenInfo>,
    until: Instant,
}

/// keystonemiddleware's `auth_token` for one service.
#[derive(Debug)]
pub struct AuthToken {
    cfg: AuthTokenConfig,
    http: reqwest::Client,
    service: tokio::sync::Mutex<Option<(String, DateTime<Utc>)>>,
    cache: Mutex<HashMap<String, Cached>>,
}

impl AuthToken {
    /// A validator for `cfg`.
    pub fn new(cfg: AuthTokenConfig) -> Self {
        AuthToken {
            cfg,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            service: tokio::sync::Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &AuthTokenConfig {
        &self.cfg
    }

    /// A cached answer about `token` (`Some(None)`: known invalid).
    pub fn cached(&self, token: &str) -> Option<Option<TokenInfo>> {
        let now = Instant::now();
        let cache = self.cache.lock().ok()?;
        let c = cache.get(token).filter(|c| c.until > now)?;
        Some(c.info.clone().filter(|i| i.expires_at > Utc::now()))
    }

    fn remember(&self, token: &str, info: Option<TokenInfo>) {
        let Some(ttl) = self.cfg.token_cache_time else {
            return;
        };
        if let Ok(mut cache) = self.cache.lock() {
            let now = Instant::now();
            if cache.len() > 10_000 {
                cache.retain(|_, c| c.until > now);
            }
            cache.insert(
                token.to_owned(),
                Cached {
                    info,
                    until: now + ttl,
                },
            );
        }
    }

    /// The service user's own token (logged in again shortly before it
    /// expires, or when `refresh`).
    async fn service_token(&self, refresh: bool) -> Result<String, AuthError> {
        let mut slot = self.service.lock().await;
        if !refresh
            && let Some((t, exp)) = slot.as_ref()
            && *exp > Utc::now() + chrono::Duration::seconds(60)
        {
            return Ok(t.clone());
        }
        let c = &self.cfg;
        let login = PasswordAuth {
            auth_url: c.auth_url.clone(),
            user: Named::Name(c.username.clone(), c.user_domain.json()),
            password: c.password.clone(),
            scope: Scope::Project(Named::Name(c.project_name.clone(), c.project_domain.json())),
        };
        // Keystone unreachable: tried again `http_request_max_retries` times.
        let mut attempt = 0;
        let (token, exp) = loop {
            match login.login(&self.http).await {
                Ok(t) => break t,
                Err(e) if attempt < c.max_retries && e.0.starts_with("cannot reach") => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(e) => {
                    return Err(AuthError::Unavailable(format!(
                        "the service user {} cannot log in to {}: {}",
                        c.username, c.auth_url, e.0
                    )));
                }
            }
        };
        *slot = Some((token.clone(), exp));
        Ok(token)
    }

    async fn send(
        &self,
        req: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, String> {
        let mut last = String::new();
        for attempt in 0..=self.cfg.max_retries {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            match req().send().await {
                Ok(r) => return Ok(r),
                Err(e) => last = format!("cannot reach Keystone at {}: {e}", self.cfg.auth_url),
            }
        }
        Err(last)
    }

    /// Keystone's answer about `token` (cached for `token_cache_time`).
    pub async fn validate(&self, token: &str) -> Result<TokenInfo, AuthError> {
        if let Some(c) = self.cached(token) {
            return c.ok_or(AuthError::Invalid);
        }
        let url = format!("{}/auth/tokens", self.cfg.v3());
        let mut refresh = false;
        loop {
            let service = self.service_token(refresh).await?;
            let resp = self
                .send(|| {
                    self.http
                        .get(&url)
                        .header("x-auth-token", &service)
                        .header("x-subject-token", token)
                })
                .await
                .map_err(AuthError::Unavailable)?;
            match resp.status().as_u16() {
                200 => {
                    let body: Value = resp
                        .json()
                        .await
                        .map_err(|e| AuthError::Unavailable(e.to_string()))?;
                    let info = TokenInfo::parse(&body, self.cfg.region_name.as_deref())
                        .filter(|i| i.expires_at > Utc::now());
                    self.remember(token, info.clone());
                    return info.ok_or(AuthError::Invalid);
                }
                // Our own token expired or was revoked: log in once more.
                401 if !refresh => refresh = true,
                404 => {
                    self.remember(token, None);
                    return Err(AuthError::Invalid);
                }
                s => {
                    return Err(AuthError::Unavailable(format!(
                        "Keystone answered {s} to a token validation"
                    )));
                }
            }
        }
    }

    /// Whether a valid service token's roles make it one
    /// (`service_token_roles`, enforced when `service_token_roles_required`).
    pub fn service_roles_ok(&self, info: &TokenInfo) -> bool {
        !self.cfg.service_token_roles_required
            || info
                .roles
                .iter()
                .any(|r| self.cfg.service_token_roles.contains(r))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn token_bodies_parse_with_scope_roles_and_catalog() {
        let body = json!({"token": {
            "user": {"id": "u1", "name": "demo", "domain": {"id": "default"}},
            "project": {"id": "p1", "name": "demo", "domain": {"id": "default"}},
            "roles": [{"id": "r1", "name": "member"}, {"id": "r2", "name": "reader"}],
            "expires_at": "2999-01-01T00:00:00.000000Z",
            "catalog": [{"type": "image", "endpoints": [
                {"interface": "internal", "region_id": "RegionOne", "url": "http://int"},
                {"interface": "public", "region_id": "RegionTwo", "url": "http://two"},
                {"interface": "public", "region_id": "RegionOne", "url": "http://one"}]}],
        }});
        let i = TokenInfo::parse(&body, Some("RegionOne")).unwrap();
        assert_eq!(i.project_id.as_deref(), Some("p1"));
        assert_eq!(i.roles, vec!["member", "reader"]);
        assert_eq!(i.image_url.as_deref(), Some("http://one"));
        assert_eq!(i.system_scope, None);
        let sys = json!({"token": {"user": {"id": "u"}, "system": {"all": true},
            "roles": [], "expires_at": "2999-01-01T00:00:00Z"}});
        let s = TokenInfo::parse(&sys, None).unwrap();
        assert_eq!(s.system_scope.as_deref(), Some("all"));
        assert_eq!(s.project_id, None);
        assert!(TokenInfo::parse(&json!({"token": {}}), None).is_none());
    }
}
