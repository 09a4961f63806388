//! `nova-placement-api` with `[api] auth_strategy = keystone` behind a real
//! OpenStack Keystone (PyPI keystone on SQLite, `scripts/keystone_server.py`):
//! tokens are validated by Keystone as keystonemiddleware does, roles come
//! from the token (Placement's default policy), forged identity headers
//! are ignored, a revoked token is refused, and the real osc-placement CLI
//! finds Placement in Keystone's catalog and drives it with a password.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// A child process and its directory, both gone on drop.
struct Proc(Child, std::path::PathBuf);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn python() -> String {
    std::env::var("NOVA_RS_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles/bin/python".into())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real Keystone with `users`, Placement at `placement` in its catalog.
fn keystone(users: &[&str], placement: &str) -> (Proc, String) {
    let dir = std::env::temp_dir().join(format!(
        "placement-keystone-{}-{}",
        std::process::id(),
        free_port()
    ));
    let mut cmd = Command::new(python());
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/keystone_server.py"
    ))
    .arg(&dir)
    .arg("--endpoint")
    .arg(format!("placement={placement}"));
    for u in users {
        cmd.arg("--user").arg(u);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (scripts/test installs keystone)",
                python()
            )
        });
    let out = child.stdout.take().unwrap();
    let proc = Proc(child, dir);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("listening ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(600))
        .expect("Keystone did not start (is keystone installed in the test virtualenv?)");
    (proc, url)
}

fn placement(port: u16, keystone: &str) -> Proc {
    let dir = std::env::temp_dir().join(format!("placement-ks-api-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("placement.conf");
    std::fs::write(
        &conf,
        format!(
            "[placement_database]\nconnection = sqlite://{}/p.db\n[api]\nauth_strategy = keystone\n\
             [keystone_authtoken]\nauth_url = {keystone}\nusername = placement\npassword = pw\n\
             project_name = service\ntoken_cache_time = -1\n",
            dir.display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_nova-placement-api"))
        .arg("--config")
        .arg(&conf)
        .arg("--port")
        .arg(port.to_string())
        .spawn()
        .unwrap();
    let p = Proc(child, dir);
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return p;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nova-placement-api did not listen");
}

/// A project-scoped token for `user` (password `pw`, or `admin`'s).
async fn token(http: &reqwest::Client, ks: &str, user: &str, project: &str) -> String {
    let password = if user == "admin" { "admin" } else { "pw" };
    let r = http
        .post(format!("{ks}/v3/auth/tokens"))
        .json(&json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "password": password, "domain": {"id": "default"}}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{user}: {}", r.text().await.unwrap());
    r.headers()["x-subject-token"].to_str().unwrap().to_owned()
}

async fn call(
    http: &reqwest::Client,
    m: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut r = http
        .request(m, url)
        .header("openstack-api-version", "placement 1.39");
    if let Some(t) = token {
        r = r.header("x-auth-token", t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn real_keystone_validates_placement_tokens() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let (_ks, ks) = keystone(
        &[
            "placement:pw:service:service",
            "alice:pw:proj1:member",
            "reed:pw:proj1:reader",
        ],
        &base,
    );
    let _placement = placement(port, &ks);
    let http = reqwest::Client::new();
    let get = reqwest::Method::GET;

    // The version document needs no token; everything else does.
    let (s, _, doc) = call(&http, get.clone(), format!("{base}/"), None, None).await;
    assert_eq!(s, 200);
    assert_eq!(doc["versions"][0]["max_version"], "1.39");
    let rps = format!("{base}/resource_providers");
    let (s, h, _) = call(&http, get.clone(), rps.clone(), None, None).await;
    assert_eq!(s, 401);
    assert_eq!(
        h["www-authenticate"].to_str().unwrap(),
        format!("Keystone uri=\"{ks}\"")
    );
    let (s, _, _) = call(&http, get.clone(), rps.clone(), Some("not-a-token"), None).await;
    assert_eq!(s, 401);

    // Keystone's admin: Placement's admin.
    let admin = token(&http, &ks, "admin", "admin").await;
    let (s, _, rp) = call(
        &http,
        reqwest::Method::POST,
        rps.clone(),
        Some(&admin),
        Some(json!({"name": "cn1"})),
    )
    .await;
    assert_eq!(s, 200, "{rp}");
    let (s, _, list) = call(&http, get.clone(), rps.clone(), Some(&admin), None).await;
    assert_eq!(s, 200);
    assert_eq!(list["resource_providers"][0]["name"], "cn1");

    // The service role (nova's credentials) may too.
    let service = token(&http, &ks, "placement", "service").await;
    let (s, _, _) = call(&http, get.clone(), rps.clone(), Some(&service), None).await;
    assert_eq!(s, 200);

    // A member may not, and forged identity headers change nothing.
    let alice = token(&http, &ks, "alice", "proj1").await;
    let (s, _, _) = call(&http, get.clone(), rps.clone(), Some(&alice), None).await;
    assert_eq!(s, 403);
    let forged = http
        .get(&rps)
        .header("x-auth-token", &alice)
        .header("x-roles", "admin")
        .header("x-identity-status", "Confirmed")
        .header("x-user-id", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    // A reader reads its own project's usages, not another's.
    let reed = token(&http, &ks, "reed", "proj1").await;
    let proj1 = {
        let r = http
            .get(format!("{ks}/v3/projects?name=proj1"))
            .header("x-auth-token", &admin)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        v["projects"][0]["id"].as_str().unwrap().to_owned()
    };
    let usages = |p: &str| format!("{base}/usages?project_id={p}");
    let (s, _, u) = call(&http, get.clone(), usages(&proj1), Some(&reed), None).await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["usages"], json!({}));
    let (s, _, _) = call(&http, get.clone(), usages("other"), Some(&reed), None).await;
    assert_eq!(s, 403);

    // A revoked token is refused at once (token_cache_time = -1).
    let r = http
        .delete(format!("{ks}/v3/auth/tokens"))
        .header("x-auth-token", &admin)
        .header("x-subject-token", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (s, _, _) = call(&http, get.clone(), usages(&proj1), Some(&alice), None).await;
    assert_eq!(s, 401);

    // The real osc-placement: password auth, Placement from the catalog.
    let openstack = std::path::Path::new(&python()).with_file_name("openstack");
    let ks_url = ks.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&openstack)
            .args(["resource", "provider", "list", "-f", "json"])
            .env("OS_AUTH_URL", format!("{ks_url}/v3"))
            .env("OS_USERNAME", "admin")
            .env("OS_PASSWORD", "admin")
            .env("OS_PROJECT_NAME", "admin")
            .env("OS_USER_DOMAIN_NAME", "Default")
            .env("OS_PROJECT_DOMAIN_NAME", "Default")
            .env("OS_IDENTITY_API_VERSION", "3")
            .env("OS_PLACEMENT_API_VERSION", "1.39")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "openstack resource provider list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["name"], "cn1", "{listed}");
}
