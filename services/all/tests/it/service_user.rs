//! `[service_user] send_service_user_token` against the real Keystone 30:
//! the compute's calls to the image API on a user's behalf (a snapshot's
//! upload) carry the user's token and the service user's, and what the
//! receiving side gets as `X-Service-Token` is a Keystone token of the
//! service user with the `service` role, reused while it is valid.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method as AxMethod, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::cluster::free_port;
use crate::keystone::{Keystone, call};

/// One request the image API was sent: method, path, `X-Auth-Token`,
/// `X-Service-Token`.
type Seen = (String, String, Option<String>, Option<String>);

#[derive(Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    upstream: String,
    http: reqwest::Client,
}

/// The receiving side: records each request's tokens and hands it on to
/// nova-all's image API.
async fn record(
    State(r): State<Recorder>,
    method: AxMethod,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    r.seen.lock().unwrap().push((
        method.to_string(),
        uri.path().to_owned(),
        h("x-auth-token"),
        h("x-service-token"),
    ));
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut rb = r.http.request(
        Method::from_bytes(method.as_str().as_bytes()).unwrap(),
        format!("{}{path}", r.upstream),
    );
    for k in ["x-auth-token", "x-service-token", "content-type"] {
        if let Some(v) = h(k) {
            rb = rb.header(k, v);
        }
    }
    let Ok(resp) = rb.body(body).send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let bytes = resp.bytes().await.unwrap_or_default();
    (status, [("content-type", ctype)], Body::from(bytes)).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_on_a_users_behalf_carry_the_service_token() {
    let compute_port = free_port();
    let image_port = free_port();
    // The catalog's image endpoint is the recorder in front of the image API.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let recorder_url = format!("http://{}", listener.local_addr().unwrap());
    let recorder = Recorder {
        seen: Arc::default(),
        upstream: format!("http://127.0.0.1:{image_port}"),
        http: reqwest::Client::new(),
    };
    let app = axum::Router::new()
        .fallback(record)
        .with_state(recorder.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let compute_url = format!("http://127.0.0.1:{compute_port}");
    let ks = Keystone::start(&[
        format!("compute={compute_url}/v2.1"),
        format!("image={recorder_url}"),
    ])
    .await;
    let auth_url = format!("{}/v3", ks.url);
    let (cp, ip) = (compute_port.to_string(), image_port.to_string());
    let mut conf = vec![
        ("DEFAULT", "osapi_compute_listen_port", cp.as_str()),
        ("image", "bind_port", ip.as_str()),
        ("keystone_authtoken", "auth_url", auth_url.as_str()),
        ("keystone_authtoken", "username", "nova"),
        ("keystone_authtoken", "password", "nova"),
        ("keystone_authtoken", "project_name", "service"),
        ("keystone_authtoken", "region_name", "RegionOne"),
    ];
    conf.extend([
        ("service_user", "send_service_user_token", "true"),
        ("service_user", "auth_type", "password"),
        ("service_user", "auth_url", ks.url.as_str()),
        ("service_user", "username", "nova"),
        ("service_user", "password", "nova"),
        ("service_user", "project_name", "service"),
        ("service_user", "user_domain_name", "Default"),
        ("service_user", "project_domain_name", "Default"),
    ]);
    let c = Cluster::start(1, &conf).await;

    let demo = ks.token("demo", "demo").await;
    let (s, _, body) = call(
        &c,
        Method::POST,
        "/v2.1/servers",
        &demo,
        &[],
        Some(
            json!({"server": {"name": "su-vm", "imageRef": nova_all::FAKE_IMAGE_ID,
            "flavorRef": "1", "networks": "none"}}),
        ),
    )
    .await;
    assert_eq!(s, 202, "{body}");
    let id = body["server"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v2.1/servers/{id}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, b) = call(&c, Method::GET, &path, &demo, &[], None).await;
        if b["server"]["status"] == "ACTIVE" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Two snapshots: the compute uploads each with both tokens.
    let mut images = Vec::new();
    for name in ["snap-1", "snap-2"] {
        let (s, _, b) = call(
            &c,
            Method::POST,
            &format!("{path}/action"),
            &demo,
            &[],
            Some(json!({"createImage": {"name": name}})),
        )
        .await;
        assert_eq!(s, 202, "{b}");
        let image = b["image_id"].as_str().unwrap().to_owned();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r: Value = c
                .http
                .get(format!("http://127.0.0.1:{image_port}/v2/images/{image}"))
                .header("x-auth-token", &demo)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if r["status"] == "active" {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{r}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        images.push(image);
    }

    let seen = recorder.seen.lock().unwrap().clone();
    let uploads: Vec<&Seen> = seen
        .iter()
        .filter(|(m, p, ..)| m == "PUT" && p.ends_with("/file"))
        .collect();
    assert_eq!(uploads.len(), 2, "{seen:?}");
    for (image, (_, p, user, _)) in images.iter().zip(&uploads) {
        assert_eq!(p, &format!("/v2/images/{image}/file"));
        assert_eq!(user.as_deref(), Some(demo.as_str()), "the caller's token");
    }
    // Every call the compute made carries a service token, the same one
    // (cached, not a login per call), and it is not the user's.
    let services: Vec<&str> = seen.iter().filter_map(|s| s.3.as_deref()).collect();
    assert_eq!(services.len(), seen.len(), "{seen:?}");
    assert!(services.iter().all(|t| *t == services[0]), "{seen:?}");
    assert_ne!(services[0], demo);

    // Keystone says it is the service user's, with the service role.
    let admin = ks.token("admin", "admin").await;
    let r = c
        .http
        .get(format!("{}/v3/auth/tokens", ks.url))
        .header("x-auth-token", &admin)
        .header("x-subject-token", services[0])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["token"]["user"]["name"], "nova", "{doc}");
    assert_eq!(doc["token"]["project"]["name"], "service", "{doc}");
    let roles: Vec<&str> = doc["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(roles.contains(&"service"), "{roles:?}");

    // nova-api itself accepts the pair as a user call made by a service.
    let (s, ..) = call(
        &c,
        Method::GET,
        "/v2.1/servers",
        &demo,
        &[("X-Service-Token", services[0])],
        None,
    )
    .await;
    assert_eq!(s, 200);
}
