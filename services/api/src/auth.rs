//! Who is calling: the built-in identity service (a Keystone v3 subset
//! real clients accept), token validation, the `noauth2` dev mode, and the
//! request context handlers see.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use nova_rpc::RequestContext;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::keystone::{AuthError, AuthToken, TokenInfo};

/// `X-Service-Token`, when sent.
fn service_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-service-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// A user of the built-in identity service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Name (also its id).
    pub name: String,
    /// Password.
    pub password: String,
    /// The project it is scoped to (name, also the id).
    pub project: String,
    /// Roles (`admin` implies `member`, which implies `reader`).
    pub roles: Vec<String>,
}

impl User {
    /// Parses `NAME:PASSWORD:PROJECT:ROLE[+ROLE…]`.
    pub fn parse(s: &str) -> Result<User, String> {
        let parts: Vec<&str> = s.trim().splitn(4, ':').collect();
        if parts.len() != 4 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!("'{s}' is not NAME:PASSWORD:PROJECT:ROLE[+ROLE...]"));
        }
        Ok(User {
            name: parts[0].to_owned(),
            password: parts[1].to_owned(),
            project: parts[2].to_owned(),
            roles: parts[3].split('+').map(str::to_owned).collect(),
        })
    }
}

/// How the compute API authenticates requests (`[api] auth_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStrategy {
    /// Tokens from the built-in identity service (default).
    Keystone,
    /// Dev mode: the token is `user:project` (admin when user is `admin`).
    NoAuth,
}

/// One endpoint of the service catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Service type (`compute`, `image`, `identity`, `placement`).
    pub service_type: String,
    /// Service name (`nova`, `glance`, `keystone`).
    pub name: String,
    /// Its URL.
    pub url: String,
}

/// The identity service's settings and its token signer.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Users.
    pub users: Vec<User>,
    /// Token lifetime (`[identity] token_ttl`, default 3600 s).
    pub token_ttl: Duration,
    /// Region of the catalog.
    pub region: String,
    /// The service catalog.
    pub catalog: Vec<CatalogEntry>,
    /// Auth strategy of the compute API.
    pub strategy: AuthStrategy,
    /// `[keystone_authtoken]`: a real Keystone validates the tokens
    /// instead of the built-in identity (`keystone` strategy).
    pub keystone: Option<Arc<AuthToken>>,
    /// `[oslo_policy]`: the rules requests are authorised by.
    pub policy: crate::policy::Policy,
    secret: Arc<Vec<u8>>,
}

/// Why a request has no caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unauthenticated {
    /// No token, or one that is not valid (401).
    Invalid,
    /// The identity service could not be asked (503).
    Unavailable(String),
}

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ctx {
    /// User id.
    pub user_id: String,
    /// Project id.
    pub project_id: String,
    /// Roles (implied ones included).
    pub roles: Vec<String>,
    /// Request id (`req-<uuid>`).
    pub request_id: String,
    /// The caller's token and the image endpoint, which nova's context
    /// carries over RPC (`auth_token`, `service_catalog`): the compute
    /// fetches the image with them.
    pub auth: Option<Arc<CallerAuth>>,
    /// The domain of a domain-scoped token (Keystone).
    pub domain_id: Option<String>,
    /// `all` for a system-scoped token (Keystone).
    pub system_scope: Option<String>,
    /// The roles of a valid `X-Service-Token` (keystonemiddleware's
    /// `X-Service-Roles`).
    pub service_roles: Vec<String>,
    /// The rules the caller's requests are authorised by
    /// (`[oslo_policy]`; nova 34's defaults unless set).
    pub policy: crate::policy::Policy,
}

/// The caller's token and the endpoints the compute needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerAuth {
    /// `X-Auth-Token`.
    pub token: String,
    /// The image API's URL (the catalog's `image` entry).
    pub image_url: Option<String>,
}

impl Ctx {
    /// An admin: passes the policy's `context_is_admin` (nova's
    /// `context.is_admin`; by default the admin role).
    pub fn is_admin(&self) -> bool {
        self.policy.is_admin(self)
    }
    /// Has `role`.
    pub fn has(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
    /// May read in its project.
    pub fn can_read(&self) -> bool {
        self.has("reader") || self.has("member") || self.is_admin()
    }
    /// May change things in its project.
    pub fn can_write(&self) -> bool {
        self.has("member") || self.is_admin()
    }
    /// The RPC context for this caller.
    pub fn rpc(&self) -> RequestContext {
        let c = RequestContext::new()
            .with_user(self.user_id.clone())
            .with_project(self.project_id.clone())
            .with_roles(self.roles.iter().cloned())
            .with_admin(self.is_admin())
            .with_request_id(self.request_id.clone());
        let mut c = c;
        if let Some(d) = &self.domain_id {
            c.set("domain", d.clone());
        }
        if let Some(s) = &self.system_scope {
            c.set("system_scope", s.clone());
        }
        if !self.service_roles.is_empty() {
            c.set("service_roles", self.service_roles.clone());
        }
        match &self.auth {
            Some(a) => {
                let mut c = c;
                c.set("auth_token", a.token.clone());
                if let Some(url) = &a.image_url {
                    c.set(
                        "service_catalog",
                        serde_json::json!([{"type": "image", "name": "glance",
                            "endpoints": [{"interface": "public", "url": url}]}]),
                    );
                }
                c
            }
            None => c,
        }
    }
}

/// Keystone's implied roles: admin ⇒ member ⇒ reader.
pub fn with_implied(roles: &[String]) -> Vec<String> {
    let mut out: Vec<String> = roles.to_vec();
    let mut add = |r: &str| {
        if !out.iter().any(|x| x == r) {
            out.push(r.to_owned());
        }
    };
    if roles.iter().any(|r| r == "admin") {
        add("member");
        add("reader");
    }
    if roles.iter().any(|r| r == "member") {
        add("reader");
    }
    out
}

type HmacSha256 = Hmac<Sha256>;

impl Identity {
    /// An identity service for `users`, signing tokens with `secret`
    /// (every API process that must accept the tokens shares it).
    pub fn new(users: Vec<User>, secret: &[u8], strategy: AuthStrategy) -> Self {
        Identity {
            users,
            token_ttl: Duration::from_secs(3600),
            region: "RegionOne".into(),
            catalog: Vec::new(),
            strategy,
            keystone: None,
            policy: crate::policy::Policy::default(),
            secret: Arc::new(secret.to_vec()),
        }
    }

    fn sign(&self, payload: &str) -> String {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(payload.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Issues a token for `user`: (token, expiry).
    pub fn issue(&self, user: &User) -> (String, chrono::DateTime<chrono::Utc>) {
        let expires = chrono::Utc::now()
            + chrono::Duration::from_std(self.token_ttl).unwrap_or(chrono::Duration::hours(1));
        self.issue_until(user, expires)
    }

    /// Issues a token for `user` that expires at `expires` (a token
    /// re-issued from another keeps that one's expiry, as Keystone's).
    pub fn issue_until(
        &self,
        user: &User,
        expires: chrono::DateTime<chrono::Utc>,
    ) -> (String, chrono::DateTime<chrono::Utc>) {
        let payload = format!(
            "{}|{}|{}|{}|{}",
            user.name,
            user.project,
            user.roles.join("+"),
            expires.timestamp(),
            uuid::Uuid::new_v4().simple()
        );
        let enc = URL_SAFE_NO_PAD.encode(payload.as_bytes());
        let sig = self.sign(&enc);
        (format!("{enc}.{sig}"), expires)
    }

    /// The user, project, roles and expiry of a valid token.
    pub fn validate(&self, token: &str) -> Option<(String, String, Vec<String>, i64)> {
        let (enc, sig) = token.split_once('.')?;
        let want = self.sign(enc);
        // Constant-time enough for hex of equal length.
        if want.len() != sig.len()
            || want
                .bytes()
                .zip(sig.bytes())
                .fold(0u8, |a, (x, y)| a | (x ^ y))
                != 0
        {
            return None;
        }
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(enc).ok()?).ok()?;
        let parts: Vec<&str> = payload.split('|').collect();
        if parts.len() != 5 {
            return None;
        }
        let exp: i64 = parts[3].parse().ok()?;
        if exp <= chrono::Utc::now().timestamp() {
            return None;
        }
        let roles: Vec<String> = parts[2]
            .split('+')
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect();
        // Keystone's revocation: a token of a user who is gone, or who
        // lost the token's project or one of its roles, is no longer valid.
        let user = self.users.iter().find(|u| u.name == parts[0])?;
        if user.project != parts[1] || !roles.iter().all(|r| user.roles.contains(r)) {
            return None;
        }
        Some((parts[0].to_owned(), parts[1].to_owned(), roles, exp))
    }

    /// The caller of a compute request, from its `X-Auth-Token`; with a
    /// real Keystone, only from what [`Identity::authenticate_async`] put
    /// in the token cache.
    pub fn authenticate(&self, headers: &HeaderMap, request_id: &str) -> Option<Ctx> {
        let token = headers.get("x-auth-token")?.to_str().ok()?.trim();
        if let Some(ks) = &self.keystone {
            let user = ks.cached(token)??;
            let service = match service_token(headers) {
                Some(t) => Some(ks.cached(t)??).filter(|s| ks.service_roles_ok(s)),
                None => None,
            };
            return Some(self.keystone_ctx(token, &user, service.as_ref(), request_id));
        }
        let (user, project, roles) = match self.strategy {
            AuthStrategy::NoAuth => {
                let (u, p) = token.split_once(':').unwrap_or((token, token));
                let p = if p.is_empty() { u } else { p };
                let roles = if u == "admin" {
                    vec!["admin".to_owned()]
                } else {
                    vec!["member".to_owned()]
                };
                (u.to_owned(), p.to_owned(), roles)
            }
            AuthStrategy::Keystone => {
                let (u, p, r, _) = self.validate(token)?;
                (u, p, r)
            }
        };
        Some(Ctx {
            user_id: user,
            project_id: project,
            roles: with_implied(&roles),
            request_id: request_id.to_owned(),
            auth: Some(Arc::new(CallerAuth {
                token: token.to_owned(),
                image_url: self
                    .catalog
                    .iter()
                    .find(|e| e.service_type == "image")
                    .map(|e| e.url.clone()),
            })),
            policy: self.policy.clone(),
            ..Ctx::default()
        })
    }

    /// The caller of a request: with a real Keystone, its `X-Auth-Token`
    /// (and `X-Service-Token`) checked there, as keystonemiddleware does;
    /// otherwise [`Identity::authenticate`].
    pub async fn authenticate_async(
        &self,
        headers: &HeaderMap,
        request_id: &str,
    ) -> Result<Ctx, Unauthenticated> {
        let Some(ks) = &self.keystone else {
            return self
                .authenticate(headers, request_id)
                .ok_or(Unauthenticated::Invalid);
        };
        let token = headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Unauthenticated::Invalid)?;
        let check = |r: Result<TokenInfo, AuthError>| match r {
            Ok(i) => Ok(i),
            Err(AuthError::Invalid) => Err(Unauthenticated::Invalid),
            Err(AuthError::Unavailable(e)) => {
                tracing::warn!(error = %e, "token validation failed");
                Err(Unauthenticated::Unavailable(e))
            }
        };
        let user = check(ks.validate(token).await)?;
        // A service token that is sent must be valid (and, when
        // `service_token_roles_required`, have a service role).
        let service = match service_token(headers) {
            Some(t) => {
                let s = check(ks.validate(t).await)?;
                if !ks.service_roles_ok(&s) {
                    return Err(Unauthenticated::Invalid);
                }
                Some(s)
            }
            None => None,
        };
        Ok(self.keystone_ctx(token, &user, service.as_ref(), request_id))
    }

    /// The `WWW-Authenticate` value a 401 carries (a real Keystone's URI).
    pub fn www_authenticate(&self) -> Option<String> {
        self.keystone
            .as_ref()
            .map(|k| k.config().www_authenticate())
    }

    fn keystone_ctx(
        &self,
        token: &str,
        user: &TokenInfo,
        service: Option<&TokenInfo>,
        request_id: &str,
    ) -> Ctx {
        let service_roles = service
            .map(|s| {
                let ks = self.keystone.as_ref();
                s.roles
                    .iter()
                    .filter(|r| ks.is_none_or(|k| k.config().service_token_roles.contains(r)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        Ctx {
            user_id: user.user_id.clone(),
            project_id: user.project_id.clone().unwrap_or_default(),
            roles: user.roles.clone(),
            request_id: request_id.to_owned(),
            auth: Some(Arc::new(CallerAuth {
                token: token.to_owned(),
                image_url: user.image_url.clone(),
            })),
            domain_id: user.domain_id.clone(),
            system_scope: user.system_scope.clone(),
            service_roles,
            policy: self.policy.clone(),
        }
    }

    fn token_body(
        &self,
        user: &User,
        methods: &[&str],
        expires: chrono::DateTime<chrono::Utc>,
    ) -> Value {
        let domain = json!({"id": "default", "name": "Default"});
        let roles: Vec<Value> = with_implied(&user.roles)
            .iter()
            .map(|r| json!({"id": r, "name": r}))
            .collect();
        let catalog: Vec<Value> = self
            .catalog
            .iter()
            .map(|c| {
                let endpoints: Vec<Value> = ["public", "internal", "admin"]
                    .iter()
                    .map(|i| {
                        json!({"id": format!("{}-{i}", c.name), "interface": i,
                               "region": self.region, "region_id": self.region, "url": c.url})
                    })
                    .collect();
                json!({"id": c.name, "type": c.service_type, "name": c.name, "endpoints": endpoints})
            })
            .collect();
        let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        json!({"token": {
            "methods": methods,
            "user": {"id": user.name, "name": user.name, "domain": domain, "password_expires_at": null},
            "audit_ids": [uuid::Uuid::new_v4().simple().to_string()[..22].to_owned()],
            "expires_at": fmt(expires),
            "issued_at": fmt(chrono::Utc::now()),
            "project": {"id": user.project, "name": user.project, "domain": domain},
            "is_domain": false,
            "roles": roles,
            "catalog": catalog,
        }})
    }
}

fn keystone_error(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (
        status,
        Json(json!({"error": {"code": status.as_u16(), "message": message, "title": title}})),
    )
        .into_response()
}

fn version_doc(base: &str) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

#[derive(Debug, Clone)]
struct IdState {
    identity: Identity,
    base: String,
}

/// The identity routes (mount at `/identity`; `base` is their public URL).
pub fn router(identity: Identity, base: &str) -> Router {
    let st = IdState {
        identity,
        base: base.trim_end_matches('/').to_owned(),
    };
    Router::new()
        .route("/", get(versions))
        .route("/v3", get(v3))
        .route("/v3/", get(v3))
        .route("/v3/auth/tokens", post(issue).get(check).head(check))
        .with_state(st)
}

async fn versions(State(st): State<IdState>) -> Response {
    Json(json!({"versions": {"values": [version_doc(&st.base)]}})).into_response()
}

async fn v3(State(st): State<IdState>) -> Response {
    Json(json!({"version": version_doc(&st.base)})).into_response()
}

fn find_user<'a>(id: &'a Identity, name: &str) -> Option<&'a User> {
    id.users.iter().find(|u| u.name == name)
}

async fn issue(State(st): State<IdState>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return keystone_error(
            StatusCode::BAD_REQUEST,
            "Malformed JSON in the request body.",
        );
    };
    let id = &st.identity;
    let auth = &body["auth"]["identity"];
    let methods: Vec<&str> = auth["methods"]
        .as_array()
        .map(|m| m.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // A token re-issued from a token keeps its expiry.
    let mut expires_at = None;
    let user = if methods.contains(&"password") {
        let u = &auth["password"]["user"];
        let name = u["name"]
            .as_str()
            .or_else(|| u["id"].as_str())
            .unwrap_or("");
        let password = u["password"].as_str().unwrap_or("");
        find_user(id, name)
            .filter(|u| u.password == password)
            .cloned()
    } else if methods.contains(&"token") {
        let token = auth["token"]["id"].as_str().unwrap_or("");
        id.validate(token).and_then(|(u, _, _, exp)| {
            expires_at = chrono::DateTime::from_timestamp(exp, 0);
            find_user(id, &u).cloned()
        })
    } else {
        return keystone_error(
            StatusCode::BAD_REQUEST,
            "Expecting to find password or token in identity.",
        );
    };
    let Some(user) = user else {
        return keystone_error(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        );
    };
    // Only project scope exists here: a system or domain scope is refused
    // (Keystone: the user has no role assignment there), not silently
    // turned into a project token.
    let scopes = &body["auth"]["scope"];
    if scopes.get("system").is_some() {
        return keystone_error(
            StatusCode::UNAUTHORIZED,
            &format!("User {} has no access to the system.", user.name),
        );
    }
    if let Some(d) = scopes.get("domain") {
        let name = d["name"]
            .as_str()
            .or_else(|| d["id"].as_str())
            .unwrap_or("");
        return keystone_error(
            StatusCode::UNAUTHORIZED,
            &format!("User {} has no access to domain {name}.", user.name),
        );
    }
    if scopes.get("OS-TRUST:trust").is_some() || scopes.get("application_credential").is_some() {
        return keystone_error(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        );
    }
    // A scope naming another project than the user's is refused.
    let scope = &body["auth"]["scope"]["project"];
    if let Some(p) = scope["name"].as_str().or_else(|| scope["id"].as_str())
        && p != user.project
    {
        return keystone_error(
            StatusCode::UNAUTHORIZED,
            &format!("User {} has no access to project {p}.", user.name),
        );
    }
    let (token, expires) = match expires_at {
        Some(t) => id.issue_until(&user, t),
        None => id.issue(&user),
    };
    let mut r = (
        StatusCode::CREATED,
        Json(id.token_body(&user, &methods, expires)),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&token) {
        r.headers_mut().insert("x-subject-token", v);
    }
    r
}

async fn check(State(st): State<IdState>, headers: HeaderMap) -> Response {
    let id = &st.identity;
    let caller = headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| id.validate(t));
    let Some((caller, _, caller_roles, _)) = caller else {
        return keystone_error(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        );
    };
    let subject = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let validated = id.validate(subject);
    // Keystone's identity:validate_token: the token's own user, an admin
    // or a service.
    let privileged = with_implied(&caller_roles)
        .iter()
        .any(|r| r == "admin" || r == "service");
    if !privileged && validated.as_ref().is_some_and(|(u, ..)| *u != caller) {
        return keystone_error(
            StatusCode::FORBIDDEN,
            "You are not authorized to perform the requested action: identity:validate_token.",
        );
    }
    match validated {
        Some((u, _, _, exp)) => match find_user(id, &u) {
            Some(user) => {
                let expires = chrono::DateTime::from_timestamp(exp, 0).unwrap_or_default();
                Json(id.token_body(user, &["password"], expires)).into_response()
            }
            None => keystone_error(StatusCode::NOT_FOUND, "Could not find token."),
        },
        None => keystone_error(
            StatusCode::NOT_FOUND,
            &format!("Could not find token: {subject}."),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering_and_expiry() {
        let u = User::parse("demo:pw:demo:member").unwrap();
        let mut id = Identity::new(vec![u.clone()], b"secret", AuthStrategy::Keystone);
        let (t, _) = id.issue(&u);
        let (user, project, roles, _) = id.validate(&t).unwrap();
        assert_eq!((user.as_str(), project.as_str()), ("demo", "demo"));
        assert_eq!(roles, vec!["member".to_owned()]);
        let other = Identity::new(vec![], b"other", AuthStrategy::Keystone);
        assert!(
            other.validate(&t).is_none(),
            "another secret must not validate"
        );
        let mut bad = t.clone();
        bad.insert(0, 'x');
        assert!(id.validate(&bad).is_none());
        id.token_ttl = Duration::ZERO;
        let (old, _) = id.issue(&u);
        assert!(id.validate(&old).is_none(), "expired tokens are refused");
        assert!(User::parse("a:b:c").is_err());
        assert_eq!(
            with_implied(&["admin".to_owned()]),
            vec!["admin".to_owned(), "member".to_owned(), "reader".to_owned()]
        );
    }
}
