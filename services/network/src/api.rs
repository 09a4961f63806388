//! Neutron's v2.0 HTTP API over a [`NetworkService`]: the version
//! document, `extensions`, and list/create/show/update/delete of
//! networks, subnets, ports, security groups and rules and floating IPs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::error::{NResult, NeutronError};
use crate::service::{
    Caller, FLOATINGIP, NETWORK, NetworkService, PORT, Query, SECURITY_GROUP, SECURITY_GROUP_RULE,
    SUBNET,
};

/// Turns a request's headers into its caller (`None`: 401).
pub type Authenticate =
    Arc<dyn Fn(HeaderMap) -> Pin<Box<dyn Future<Output = Option<Caller>> + Send>> + Send + Sync>;

/// `noauth`: `X-Auth-Token: user[:project]`, roles from `X-Roles` (else
/// `admin` is an admin).
pub fn noauth() -> Authenticate {
    Arc::new(|h: HeaderMap| {
        Box::pin(async move {
            let token = h.get("x-auth-token")?.to_str().ok()?.to_owned();
            if token.is_empty() {
                return None;
            }
            let (user, project) = match token.split_once(':') {
                Some((u, p)) if !p.is_empty() => (u.to_owned(), p.to_owned()),
                _ => (token.clone(), token.clone()),
            };
            let roles = match h.get("x-roles").and_then(|v| v.to_str().ok()) {
                Some(r) => r.split(',').map(|s| s.trim().to_owned()).collect(),
                None if user == "admin" => vec!["admin".to_owned()],
                None => vec!["member".to_owned()],
            };
            Some(Caller {
                user_id: user,
                project_id: project,
                roles,
            })
        })
    })
}

/// Keystone tokens checked by the identity service (`GET
/// {auth_url}/auth/tokens`, as keystonemiddleware does).
pub fn keystone(auth_url: &str) -> Authenticate {
    let url = format!("{}/auth/tokens", auth_url.trim_end_matches('/'));
    let http = reqwest::Client::new();
    Arc::new(move |h: HeaderMap| {
        let (url, http) = (url.clone(), http.clone());
        Box::pin(async move {
            let token = h.get("x-auth-token")?.to_str().ok()?.to_owned();
            let r = http
                .get(&url)
                .header("x-auth-token", &token)
                .header("x-subject-token", &token)
                .send()
                .await
                .ok()?;
            if !r.status().is_success() {
                return None;
            }
            let v: Value = r.json().await.ok()?;
            let t = &v["token"];
            Some(Caller {
                user_id: t["user"]["id"].as_str()?.to_owned(),
                project_id: t["project"]["id"].as_str().unwrap_or_default().to_owned(),
                roles: t["roles"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["name"].as_str().map(str::to_owned))
                    .collect(),
            })
        })
    })
}

#[derive(Clone)]
struct St {
    svc: Arc<NetworkService>,
    auth: Authenticate,
    url: String,
}

/// The extensions the service implements (`GET /v2.0/extensions`).
const EXTENSIONS: &[(&str, &str)] = &[
    ("binding", "Port Binding"),
    ("security-group", "security-group"),
    ("external-net", "Neutron external network"),
    ("port-security", "Port Security"),
    ("provider", "Provider Network"),
    ("standard-attr-description", "standard-attr-description"),
    ("standard-attr-timestamp", "Resource timestamps"),
    ("standard-attr-revisions", "Resource revision numbers"),
    ("net-mtu", "Network MTU"),
    ("allowed-address-pairs", "Allowed Address Pairs"),
    ("extra_dhcp_opt", "Neutron Extra DHCP options"),
    ("fip-port-details", "Floating IP Port Details Extension"),
];

/// The router; `url` is the service's public root (`http://host:9696`).
pub fn router(svc: Arc<NetworkService>, auth: Authenticate, url: &str) -> Router {
    let st = St {
        svc,
        auth,
        url: url.trim_end_matches('/').to_owned(),
    };
    let v2 = Router::new()
        .route("/", get(resources))
        .route("/extensions", get(extensions))
        .route("/extensions/{alias}", get(extension))
        .route("/{collection}", get(list).post(create))
        .route("/{collection}/{id}", get(show).put(update).delete(delete))
        .layer(middleware::from_fn_with_state(st.clone(), authenticate));
    Router::new()
        .route("/", get(versions))
        .nest("/v2.0", v2)
        .fallback(|| async {
            NeutronError::new(
                StatusCode::NOT_FOUND,
                "HTTPNotFound",
                "The resource could not be found.",
            )
        })
        .with_state(st)
}

async fn authenticate(State(st): State<St>, mut req: Request, next: Next) -> Response {
    match (st.auth)(req.headers().clone()).await {
        Some(c) => {
            req.extensions_mut().insert(c);
            next.run(req).await
        }
        None => NeutronError::new(
            StatusCode::UNAUTHORIZED,
            "HTTPUnauthorized",
            "The request you have made requires authentication.",
        )
        .into_response(),
    }
}

async fn versions(State(st): State<St>) -> Response {
    axum::Json(json!({"versions": [{"id": "v2.0", "status": "CURRENT",
        "links": [{"href": format!("{}/v2.0/", st.url), "rel": "self"}]}]}))
    .into_response()
}

async fn resources(State(st): State<St>) -> Response {
    let list: Vec<Value> = COLLECTIONS
        .iter()
        .map(|(c, k)| {
            json!({"name": k, "collection": c,
            "links": [{"href": format!("{}/v2.0/{c}", st.url), "rel": "self"}]})
        })
        .collect();
    axum::Json(json!({"resources": list})).into_response()
}

fn ext_doc(alias: &str, name: &str) -> Value {
    json!({"alias": alias, "name": name, "description": name,
           "updated": "2013-01-01T00:00:00-00:00", "links": []})
}

async fn extensions() -> Response {
    let list: Vec<Value> = EXTENSIONS.iter().map(|(a, n)| ext_doc(a, n)).collect();
    axum::Json(json!({"extensions": list})).into_response()
}

async fn extension(Path(alias): Path<String>) -> Response {
    match EXTENSIONS.iter().find(|(a, _)| *a == alias) {
        Some((a, n)) => axum::Json(json!({"extension": ext_doc(a, n)})).into_response(),
        None => NeutronError::new(
            StatusCode::NOT_FOUND,
            "HTTPNotFound",
            format!("Extension with alias {alias} does not exist"),
        )
        .into_response(),
    }
}

/// URL collection → resource kind.
const COLLECTIONS: &[(&str, &str)] = &[
    ("networks", NETWORK),
    ("subnets", SUBNET),
    ("ports", PORT),
    ("security-groups", SECURITY_GROUP),
    ("security-group-rules", SECURITY_GROUP_RULE),
    ("floatingips", FLOATINGIP),
];

fn kind_of(collection: &str) -> NResult<(&'static str, String)> {
    let c = collection.strip_suffix(".json").unwrap_or(collection);
    COLLECTIONS
        .iter()
        .find(|(name, _)| *name == c)
        .map(|(_, k)| (*k, format!("{k}s")))
        .ok_or_else(|| {
            NeutronError::new(
                StatusCode::NOT_FOUND,
                "HTTPNotFound",
                "The resource could not be found.",
            )
        })
}

fn query_of(q: Option<String>) -> Query {
    form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn json_body(b: &Bytes) -> NResult<Value> {
    serde_json::from_slice(b).map_err(|_| NeutronError::bad_request("Malformed request body"))
}

async fn list(
    State(st): State<St>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(collection): Path<String>,
    RawQuery(q): RawQuery,
) -> NResult<Response> {
    let (kind, plural) = kind_of(&collection)?;
    let q = query_of(q);
    let items = if kind == SECURITY_GROUP {
        st.svc.list_security_groups(&c, &q).await
    } else {
        st.svc.list(&c, kind, &q).await
    };
    Ok(axum::Json(json!({ plural: items })).into_response())
}

async fn show(
    State(st): State<St>,
    axum::Extension(c): axum::Extension<Caller>,
    Path((collection, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> NResult<Response> {
    let (kind, _) = kind_of(&collection)?;
    let q = query_of(q);
    let v = if kind == SECURITY_GROUP {
        let mut g = st.svc.show_security_group(&c, &id).await?;
        let fields: Vec<&str> = q
            .iter()
            .filter(|(k, _)| k == "fields")
            .map(|(_, v)| v.as_str())
            .collect();
        if !fields.is_empty() {
            crate::service::select(&mut g, &fields);
        }
        g
    } else {
        st.svc.show(&c, kind, &id, &q).await?
    };
    Ok(axum::Json(json!({ kind: v })).into_response())
}

async fn create(
    State(st): State<St>,
    axum::Extension(c): axum::Extension<Caller>,
    Path(collection): Path<String>,
    body: Bytes,
) -> NResult<Response> {
    let (kind, _) = kind_of(&collection)?;
    let b = json_body(&body)?;
    let s = &st.svc;
    let v = match kind {
        NETWORK => s.create_network(&c, &b).await?,
        SUBNET => s.create_subnet(&c, &b).await?,
        PORT => s.create_port(&c, &b).await?,
        SECURITY_GROUP => s.create_security_group(&c, &b).await?,
        SECURITY_GROUP_RULE => s.create_security_group_rule(&c, &b).await?,
        _ => s.create_floatingip(&c, &b).await?,
    };
    Ok((StatusCode::CREATED, axum::Json(json!({ kind: v }))).into_response())
}

async fn update(
    State(st): State<St>,
    axum::Extension(c): axum::Extension<Caller>,
    Path((collection, id)): Path<(String, String)>,
    body: Bytes,
) -> NResult<Response> {
    let (kind, _) = kind_of(&collection)?;
    let b = json_body(&body)?;
    let s = &st.svc;
    let v = match kind {
        NETWORK => s.update_network(&c, &id, &b).await?,
        SUBNET => s.update_subnet(&c, &id, &b).await?,
        PORT => s.update_port(&c, &id, &b).await?,
        SECURITY_GROUP => s.update_security_group(&c, &id, &b).await?,
        FLOATINGIP => s.update_floatingip(&c, &id, &b).await?,
        _ => {
            return Err(NeutronError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "HTTPMethodNotAllowed",
                "The method is not allowed for this resource.",
            ));
        }
    };
    Ok(axum::Json(json!({ kind: v })).into_response())
}

async fn delete(
    State(st): State<St>,
    axum::Extension(c): axum::Extension<Caller>,
    Path((collection, id)): Path<(String, String)>,
) -> NResult<Response> {
    let (kind, _) = kind_of(&collection)?;
    let s = &st.svc;
    match kind {
        NETWORK => s.delete_network(&c, &id).await?,
        SUBNET => s.delete_subnet(&c, &id).await?,
        PORT => s.delete_port(&c, &id).await?,
        SECURITY_GROUP => s.delete_security_group(&c, &id).await?,
        SECURITY_GROUP_RULE => s.delete_security_group_rule(&c, &id).await?,
        _ => s.delete_floatingip(&c, &id).await?,
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
