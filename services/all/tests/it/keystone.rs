//! nova-all in a real OpenStack cloud: Keystone 30 (PyPI keystone on
//! SQLite, `scripts/keystone_server.py`) issues the tokens, and nova-api
//! checks them there through `[keystone_authtoken]` with its service user:
//! roles and projects from Keystone, nova's policy on top, a 401 with
//! `WWW-Authenticate`, revoked tokens refused once the cache expires,
//! `X-Service-Token`, the image API and Placement behind the same check,
//! and the openstack CLI finding nova through Keystone's catalog.

use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

use crate::cluster::{Cluster, free_port, temp_dir};

/// The users the tests log in as (password = name): `nova` (service, in
/// project `service`), `demo` (member), `viewer` (reader) and `boss`
/// (manager) in project `demo`, `alt` (member) in project `alt`.
pub(crate) const USERS: [&str; 5] = [
    "nova:nova:service:service",
    "demo:demo:demo:member",
    "viewer:viewer:demo:reader",
    "boss:boss:demo:manager",
    "alt:alt:alt:member",
];

/// A running Keystone 30 (killed on drop) and its URL.
pub(crate) struct Keystone {
    _child: tokio::process::Child,
    pub(crate) url: String,
    http: reqwest::Client,
}

impl Keystone {
    /// Starts Keystone with public endpoints `TYPE=URL` in its catalog.
    pub(crate) async fn start(endpoints: &[String]) -> Keystone {
        let python = std::env::var("NOVA_RS_PYTHON")
            .unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles/bin/python".into());
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/keystone_server.py"
        );
        let port = free_port();
        let mut child = tokio::process::Command::new(&python)
            .arg(script)
            .arg(temp_dir("keystone"))
            .arg("--port")
            .arg(port.to_string())
            .args(USERS.iter().flat_map(|u| ["--user", u]))
            .args(endpoints.iter().flat_map(|e| ["--endpoint", e.as_str()]))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {python}: {e} (scripts/test installs keystone)")
            });
        let mut line = String::new();
        tokio::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .await
            .unwrap();
        assert_eq!(
            line.trim(),
            format!("listening http://127.0.0.1:{port}"),
            "Keystone 30 did not start (is PyPI keystone in the test virtualenv?)"
        );
        Keystone {
            _child: child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        }
    }

    /// A project-scoped token of `user` (password = name) in `project`.
    pub(crate) async fn token(&self, user: &str, project: &str) -> String {
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": user}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}});
        let r = self
            .http
            .post(format!("{}/v3/auth/tokens", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "Keystone token for {user}");
        r.headers()["x-subject-token"].to_str().unwrap().to_owned()
    }

    /// Revokes `token` (as admin).
    async fn revoke(&self, token: &str) {
        let admin = self.token("admin", "admin").await;
        let r = self
            .http
            .delete(format!("{}/v3/auth/tokens", self.url))
            .header("x-auth-token", admin)
            .header("x-subject-token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204, "revocation");
    }
}

pub(crate) async fn call(
    c: &Cluster,
    method: Method,
    path: &str,
    token: &str,
    extra: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut rb = c
        .http
        .request(method, c.url(path))
        .header("OpenStack-API-Version", "compute 2.90");
    if !token.is_empty() {
        rb = rb.header("X-Auth-Token", token);
    }
    for (k, v) in extra {
        rb = rb.header(*k, *v);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_roles_and_the_catalog_come_from_keystone() {
    let compute_port = free_port();
    let image_port = free_port();
    let compute_url = format!("http://127.0.0.1:{compute_port}");
    let ks = Keystone::start(&[
        format!("compute={compute_url}/v2.1"),
        format!("image=http://127.0.0.1:{image_port}"),
        format!("placement={compute_url}/placement"),
    ])
    .await;
    let auth_url = format!("{}/v3", ks.url);
    let compute_port_s = compute_port.to_string();
    let image_port_s = image_port.to_string();
    let c = Cluster::start(
        1,
        &[
            ("DEFAULT", "osapi_compute_listen_port", &compute_port_s),
            ("image", "bind_port", &image_port_s),
            ("keystone_authtoken", "www_authenticate_uri", &ks.url),
            ("keystone_authtoken", "auth_url", &auth_url),
            ("keystone_authtoken", "auth_type", "password"),
            ("keystone_authtoken", "username", "nova"),
            ("keystone_authtoken", "password", "nova"),
            ("keystone_authtoken", "project_name", "service"),
            ("keystone_authtoken", "user_domain_name", "Default"),
            ("keystone_authtoken", "project_domain_name", "Default"),
            ("keystone_authtoken", "region_name", "RegionOne"),
            ("keystone_authtoken", "token_cache_time", "1"),
        ],
    )
    .await;

    // No token, or one Keystone does not know: 401 naming Keystone.
    for tok in ["", "not-a-keystone-token"] {
        let (s, h, body) = call(&c, Method::GET, "/v2.1/servers", tok, &[], None).await;
        assert_eq!(s, 401, "{body}");
        assert_eq!(
            h["www-authenticate"].to_str().unwrap(),
            format!("Keystone uri=\"{}\"", ks.url)
        );
    }
    // The built-in identity's tokens mean nothing here.
    let (s, ..) = call(&c, Method::GET, "/v2.1/servers", "admin:admin", &[], None).await;
    assert_eq!(s, 401);

    let demo = ks.token("demo", "demo").await;
    let viewer = ks.token("viewer", "demo").await;
    let alt = ks.token("alt", "alt").await;
    let admin = ks.token("admin", "admin").await;

    // A member boots: the compute fetches the image from the image API
    // with the caller's Keystone token and the catalog's image endpoint.
    let (s, _, body) = call(
        &c,
        Method::POST,
        "/v2.1/servers",
        &demo,
        &[],
        Some(
            json!({"server": {"name": "ks-vm", "imageRef": nova_all::FAKE_IMAGE_ID,
            "flavorRef": "1", "networks": "none"}}),
        ),
    )
    .await;
    assert_eq!(s, 202, "{body}");
    let id = body["server"]["id"].as_str().unwrap().to_owned();
    let mut status = String::new();
    for _ in 0..120 {
        let (_, _, b) = call(
            &c,
            Method::GET,
            &format!("/v2.1/servers/{id}"),
            &demo,
            &[],
            None,
        )
        .await;
        status = b["server"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if status == "ACTIVE" || status == "ERROR" {
            let demo_project = b["server"]["tenant_id"].as_str().unwrap().to_owned();
            assert_ne!(
                demo_project, "demo",
                "the project id is Keystone's, not a name"
            );
            assert_eq!(b["server"]["user_id"].as_str().unwrap().len(), 32, "{b}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, "ACTIVE");

    // A reader of the project sees it but may not create; another
    // project does not see it; an admin does.
    let (s, _, b) = call(&c, Method::GET, "/v2.1/servers", &viewer, &[], None).await;
    assert_eq!((s, b["servers"].as_array().unwrap().len()), (200, 1), "{b}");
    let (s, _, b) = call(
        &c,
        Method::POST,
        "/v2.1/servers",
        &viewer,
        &[],
        Some(
            json!({"server": {"name": "no", "imageRef": nova_all::FAKE_IMAGE_ID,
            "flavorRef": "1", "networks": "none"}}),
        ),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(
        b["forbidden"]["message"],
        "Policy doesn't allow os_compute_api:servers:create to be performed."
    );
    let (s, ..) = call(
        &c,
        Method::GET,
        &format!("/v2.1/servers/{id}"),
        &alt,
        &[],
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _, b) = call(
        &c,
        Method::GET,
        "/v2.1/servers/detail?all_tenants=1",
        &admin,
        &[],
        None,
    )
    .await;
    assert_eq!((s, b["servers"].as_array().unwrap().len()), (200, 1), "{b}");
    let (s, ..) = call(&c, Method::GET, "/os-services", &demo, &[], None).await;
    assert_eq!(s, 404, "not under /v2.1");
    let (s, ..) = call(&c, Method::GET, "/v2.1/os-services", &demo, &[], None).await;
    assert_eq!(s, 403);
    let (s, ..) = call(&c, Method::GET, "/v2.1/os-services", &admin, &[], None).await;
    assert_eq!(s, 200);

    // The image API and Placement check the same tokens.
    let r = c
        .http
        .get(format!("http://127.0.0.1:{image_port}/v2/images"))
        .header("x-auth-token", &demo)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = c
        .http
        .get(format!("http://127.0.0.1:{image_port}/v2/images"))
        .header("x-auth-token", "bogus")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = c
        .http
        .get(format!("{compute_url}/placement/resource_providers"))
        .header("x-auth-token", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // X-Service-Token: a valid one adds service roles; a bad one is a 401.
    let nova = ks.token("nova", "service").await;
    let (s, ..) = call(
        &c,
        Method::GET,
        "/v2.1/servers",
        &demo,
        &[("X-Service-Token", &nova)],
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, ..) = call(
        &c,
        Method::GET,
        "/v2.1/servers",
        &demo,
        &[("X-Service-Token", "bogus")],
        None,
    )
    .await;
    assert_eq!(s, 401);

    // A revoked token is refused once the cache (1 s here) lets go of it.
    ks.revoke(&viewer).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (s, ..) = call(&c, Method::GET, "/v2.1/servers", &viewer, &[], None).await;
    assert_eq!(s, 401);

    // The openstack CLI logs in at Keystone and finds nova in its catalog.
    if let Some(exe) = crate::cli::openstack() {
        let run = |args: &[&str]| {
            let out = std::process::Command::new(&exe)
                .args(args)
                .env("OS_AUTH_URL", &auth_url)
                .env("OS_USERNAME", "demo")
                .env("OS_PASSWORD", "demo")
                .env("OS_PROJECT_NAME", "demo")
                .env("OS_USER_DOMAIN_ID", "default")
                .env("OS_PROJECT_DOMAIN_ID", "default")
                .env("OS_REGION_NAME", "RegionOne")
                .env("OS_IDENTITY_API_VERSION", "3")
                .env_remove("OS_CLOUD")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "openstack {}: {stdout}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            stdout
        };
        let list =
            tokio::task::block_in_place(|| run(&["server", "list", "-f", "value", "-c", "Name"]));
        assert_eq!(list.trim(), "ks-vm");
        let flavors =
            tokio::task::block_in_place(|| run(&["flavor", "list", "-f", "value", "-c", "Name"]));
        assert!(flavors.contains("m1.tiny"), "{flavors}");
    }
}
