//! `[service_user]` (nova's `nova/service_auth.py`): with
//! `send_service_user_token = true`, the calls a service makes to another
//! OpenStack service on a user's behalf (the image service's API, the
//! network service's) carry the user's token in `X-Auth-Token` and the
//! service user's own token in `X-Service-Token`, as keystoneauth's
//! `ServiceTokenAuthWrapper` does. The receiving service then accepts the
//! call even when the user's token expires while it is under way (a long
//! snapshot upload), and knows a service made it.
//!
//! The service user logs in with Keystone v3 password auth from the
//! `[service_user]` options keystoneauth's `password` plugin reads
//! (`auth_type`, `auth_url`, `username` or `user_id`, `password`,
//! `project_name` or `project_id`, `user_domain_name` / `user_domain_id`,
//! `project_domain_name` / `project_domain_id`, `system_scope`, `timeout`).
//! Its token is cached until shortly before it expires (keystoneauth's
//! two minutes), shared by every call of the process.
//!
//! As in nova, `send_service_user_token = true` without an `auth_type` is
//! a misconfiguration that is logged; the calls then carry the user's
//! token only.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::{Conf, ConfError};

/// The options' section.
pub const SECTION: &str = "service_user";

/// A token this close to its expiry is renewed first (keystoneauth's
/// `MIN_TOKEN_LIFE_SECONDS`).
const MIN_TOKEN_LIFE: chrono::TimeDelta = chrono::TimeDelta::seconds(120);

/// Who the service user is, by id or by name in a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// `*_id`.
    Id(String),
    /// `*_name` in a domain (`{"id": …}` or `{"name": …}`).
    Name(String, Value),
}

impl Named {
    fn json(&self) -> Value {
        match self {
            Named::Id(id) => json!({"id": id}),
            Named::Name(name, domain) => json!({"name": name, "domain": domain}),
        }
    }
}

/// The scope of the service user's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A project (the usual `project_name = service`).
    Project(Named),
    /// `system_scope = all`.
    System,
    /// No scope (Keystone's unscoped token).
    None,
}

/// Keystone v3 password credentials (`[service_user]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordAuth {
    /// Keystone (`http://keystone/identity` or `.../v3`).
    pub auth_url: String,
    /// The user.
    pub user: Named,
    /// Its password.
    pub password: String,
    /// The token's scope.
    pub scope: Scope,
}

impl PasswordAuth {
    /// The v3 root (`auth_url` with `/v3`).
    pub fn v3(&self) -> String {
        let base = self.auth_url.trim_end_matches('/');
        if base.ends_with("/v3") {
            base.to_owned()
        } else {
            format!("{base}/v3")
        }
    }

    /// keystoneauth's password options of `section`; `None` without an
    /// `auth_url`.
    pub fn from_conf(conf: &Conf, section: &str) -> Result<Option<Self>, ConfError> {
        let Some(auth_url) = conf.get(section, "auth_url").filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let get = |k: &str| conf.get(section, k).filter(|v| !v.is_empty());
        // keystoneauth: `*_domain_*`, else `default_domain_*`.
        let domain = |kind: &str| match (
            get(&format!("{kind}_domain_id")),
            get(&format!("{kind}_domain_name")),
            get("default_domain_id"),
            get("default_domain_name"),
        ) {
            (Some(id), ..) => json!({"id": id}),
            (None, Some(name), ..) => json!({"name": name}),
            (None, None, Some(id), _) => json!({"id": id}),
            (None, None, None, Some(name)) => json!({"name": name}),
            (None, None, None, None) => json!({"id": "default"}),
        };
        let user = match (get("user_id"), get("username")) {
            (Some(id), _) => Named::Id(id.to_owned()),
            (None, Some(name)) => Named::Name(name.to_owned(), domain("user")),
            (None, None) => {
                return Err(ConfError(format!(
                    "[{section}] needs username or user_id for password auth"
                )));
            }
        };
        let scope = match (
            get("project_id"),
            get("project_name").or(get("tenant_name")),
            get("system_scope"),
        ) {
            (Some(id), ..) => Scope::Project(Named::Id(id.to_owned())),
            (None, Some(name), _) => {
                Scope::Project(Named::Name(name.to_owned(), domain("project")))
            }
            (None, None, Some("all")) => Scope::System,
            (None, None, Some(other)) => {
                return Err(ConfError(format!(
                    "invalid value '{other}' for [{section}] system_scope: expected all"
                )));
            }
            (None, None, None) => Scope::None,
        };
        Ok(Some(PasswordAuth {
            auth_url: auth_url.to_owned(),
            user,
            password: conf.str_or(section, "password", ""),
            scope,
        }))
    }

    /// `POST /v3/auth/tokens`: the new token and its expiry.
    pub async fn login(
        &self,
        http: &reqwest::Client,
    ) -> Result<(String, DateTime<Utc>), ServiceAuthError> {
        let mut auth = json!({"identity": {"methods": ["password"], "password": {
            "user": self.user.json()}}});
        auth["identity"]["password"]["user"]["password"] = json!(self.password);
        match &self.scope {
            Scope::Project(p) => auth["scope"] = json!({"project": p.json()}),
            Scope::System => auth["scope"] = json!({"system": {"all": true}}),
            Scope::None => {}
        }
        let url = format!("{}/auth/tokens?nocatalog", self.v3());
        let resp = http
            .post(&url)
            .json(&json!({"auth": auth}))
            .send()
            .await
            .map_err(|e| ServiceAuthError(format!("cannot reach Keystone at {url}: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ServiceAuthError(format!(
                "Keystone at {} refused the service user's credentials: {status}",
                self.auth_url
            )));
        }
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| ServiceAuthError("Keystone sent no X-Subject-Token".into()))?;
        let body: Value = resp
            .json()
            .await
            .map_err(|e| ServiceAuthError(format!("Keystone's token body: {e}")))?;
        let expires = body["token"]["expires_at"]
            .as_str()
            .and_then(|e| DateTime::parse_from_rfc3339(e).ok())
            .map(|e| e.with_timezone(&Utc))
            .ok_or_else(|| ServiceAuthError("Keystone's token has no expires_at".into()))?;
        Ok((token, expires))
    }
}

/// The service user's token could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAuthError(pub String);

impl std::fmt::Display for ServiceAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "service user token: {}", self.0)
    }
}

impl std::error::Error for ServiceAuthError {}

/// The `[service_user]` wrapper: the service token sent beside a user's.
#[derive(Debug)]
pub struct ServiceUser {
    auth: PasswordAuth,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<(String, DateTime<Utc>)>>,
}

impl ServiceUser {
    /// From `[service_user]`: `None` unless `send_service_user_token` is
    /// true and `auth_type` names password auth (without one, nova logs
    /// the misconfiguration and sends the user's token alone).
    pub fn from_conf(conf: &Conf) -> Result<Option<Arc<Self>>, ConfError> {
        if !conf.bool_or(SECTION, "send_service_user_token", false)? {
            return Ok(None);
        }
        match conf.get(SECTION, "auth_type").filter(|t| !t.is_empty()) {
            None => {
                tracing::warn!(
                    "Unable to load auth from [service_user] configuration. \
                     Ensure \"auth_type\" is set."
                );
                return Ok(None);
            }
            Some("password" | "v3password") => {}
            Some(other) => {
                return Err(ConfError(format!(
                    "invalid value '{other}' for [service_user] auth_type: \
                     password and v3password are served"
                )));
            }
        }
        let auth = PasswordAuth::from_conf(conf, SECTION)?.ok_or_else(|| {
            ConfError("[service_user] send_service_user_token needs auth_url".into())
        })?;
        let timeout: u64 = conf.parse_or(SECTION, "timeout", 30)?;
        Ok(Some(Arc::new(ServiceUser {
            auth,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(timeout))
                .build()
                .unwrap_or_default(),
            token: tokio::sync::Mutex::new(None),
        })))
    }

    /// Its credentials.
    pub fn auth(&self) -> &PasswordAuth {
        &self.auth
    }

    /// The service user's token: the cached one while it has more than
    /// two minutes to live, else a new login.
    pub async fn token(&self) -> Result<String, ServiceAuthError> {
        let mut slot = self.token.lock().await;
        if let Some((t, exp)) = slot.as_ref()
            && *exp - MIN_TOKEN_LIFE > Utc::now()
        {
            return Ok(t.clone());
        }
        let (token, expires) = self.auth.login(&self.http).await?;
        tracing::debug!(%expires, "service user token obtained");
        *slot = Some((token.clone(), expires));
        Ok(token)
    }

    /// Forgets the cached token (the receiving service refused it).
    pub async fn invalidate(&self) {
        *self.token.lock().await = None;
    }
}

/// A call on a user's behalf: `X-Auth-Token: user_token` and, when the
/// service user is configured, `X-Service-Token` (failing as
/// keystoneauth does when the service user cannot log in).
pub async fn on_behalf_of(
    rb: reqwest::RequestBuilder,
    user_token: &str,
    service: Option<&ServiceUser>,
) -> Result<reqwest::RequestBuilder, ServiceAuthError> {
    let rb = rb.header("X-Auth-Token", user_token);
    match service {
        Some(s) => Ok(rb.header("X-Service-Token", s.token().await?)),
        None => Ok(rb),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn conf(text: &str) -> Conf {
        Conf::parse(text).unwrap()
    }

    #[test]
    fn off_by_default_and_without_auth_type() {
        assert!(ServiceUser::from_conf(&conf("")).unwrap().is_none());
        let c = conf("[service_user]\nsend_service_user_token = true\nauth_url = http://ks\n");
        assert!(ServiceUser::from_conf(&c).unwrap().is_none());
        let c = conf("[service_user]\nsend_service_user_token = true\nauth_type = token\n");
        assert!(ServiceUser::from_conf(&c).is_err());
        let c = conf("[service_user]\nsend_service_user_token = maybe\n");
        assert!(ServiceUser::from_conf(&c).is_err());
    }

    #[test]
    fn password_options_as_keystoneauth_reads_them() {
        let c = conf(
            "[service_user]\nsend_service_user_token = true\nauth_type = password\n\
             auth_url = http://ks/identity\nusername = nova\npassword = pw\n\
             project_name = service\nuser_domain_name = Default\nproject_domain_id = default\n",
        );
        let s = ServiceUser::from_conf(&c).unwrap().unwrap();
        let a = s.auth();
        assert_eq!(a.v3(), "http://ks/identity/v3");
        assert_eq!(
            a.user,
            Named::Name("nova".into(), json!({"name": "Default"}))
        );
        assert_eq!(
            a.scope,
            Scope::Project(Named::Name("service".into(), json!({"id": "default"})))
        );
        let c = conf(
            "[service_user]\nauth_url = http://ks/v3/\nuser_id = u1\nsystem_scope = all\n\
             default_domain_name = D\n",
        );
        let a = PasswordAuth::from_conf(&c, SECTION).unwrap().unwrap();
        assert_eq!(a.v3(), "http://ks/v3");
        assert_eq!((a.user, a.scope), (Named::Id("u1".into()), Scope::System));
        let c = conf("[service_user]\nauth_url = http://ks\npassword = x\n");
        assert!(PasswordAuth::from_conf(&c, SECTION).is_err(), "no user");
    }
}
