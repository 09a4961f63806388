//! The `Cluster` fixture: every service in this process, on loopback
//! ports, a private SQLite file, fake computes; plus an HTTP client that
//! speaks to it as a user.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use nova_all::AllInOne;
use nova_service::Conf;
use reqwest::Method;
use serde_json::{Value, json};

pub(crate) struct Cluster {
    pub(crate) all: AllInOne,
    pub(crate) http: reqwest::Client,
    pub(crate) dir: PathBuf,
    tokens: tokio::sync::Mutex<HashMap<String, String>>,
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

impl Reply {
    /// The fault name and message of an error reply.
    pub(crate) fn fault(&self) -> (String, String) {
        let obj = self.body.as_object().cloned().unwrap_or_default();
        let (name, inner) = obj
            .into_iter()
            .next()
            .unwrap_or_else(|| ("".into(), json!({})));
        assert_eq!(
            inner["code"],
            json!(self.status),
            "fault code matches status: {}",
            self.body
        );
        (
            name,
            inner["message"].as_str().unwrap_or_default().to_owned(),
        )
    }
}

/// A loopback TCP port nothing listens on, for a service a test configures
/// before it starts. Taken below the kernel's ephemeral range: a port a
/// listener bound to port 0 gets (every cluster's APIs, in this and the
/// other test processes) comes from that range, so it cannot be handed out
/// again between this check and the service's own bind.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768)
        .clamp(12000, 65535);
    let span = low - 10000;
    // Spread over the range per process (tests run as processes of their own).
    let seed = std::process::id().wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 10000 + seed.wrapping_add(n.wrapping_mul(7919)) % span;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below {low}")
}

pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nova-rs-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Cluster {
    /// `computes` fake computes; `extra` overrides nova.conf options.
    pub(crate) async fn start(computes: usize, extra: &[(&str, &str, &str)]) -> Cluster {
        Self::start_in(temp_dir("cluster"), computes, extra).await
    }

    /// As [`Cluster::start`], on the state (SQLite file) in `dir`: a
    /// restart when an earlier cluster ran there.
    pub(crate) async fn start_in(
        dir: PathBuf,
        computes: usize,
        extra: &[(&str, &str, &str)],
    ) -> Cluster {
        let mut conf = Conf::new();
        for (s, k, v) in [
            ("DEFAULT", "osapi_compute_listen_port", "0"),
            ("image", "bind_port", "0"),
            ("DEFAULT", "report_interval", "1"),
            ("DEFAULT", "service_down_time", "4"),
        ] {
            conf.set(s, k, v);
        }
        for (s, k, v) in extra {
            conf.set(s, k, v);
        }
        let conf = nova_all::embedded_defaults(conf, &dir);
        let all = AllInOne::start(conf, computes)
            .await
            .expect("cluster starts");
        nova_all::seed(&all).await.expect("seed");
        Cluster {
            all,
            http: reqwest::Client::new(),
            dir,
            tokens: Default::default(),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.all.api.compute_url)
    }

    pub(crate) async fn token(&self, user: &str) -> String {
        let mut t = self.tokens.lock().await;
        if let Some(tok) = t.get(user) {
            return tok.clone();
        }
        let u = self
            .all
            .api
            .users
            .iter()
            .find(|u| u.name == user)
            .expect("known user");
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": u.name, "domain": {"name": "Default"}, "password": u.password}}},
            "scope": {"project": {"name": u.project, "domain": {"name": "Default"}}}}});
        let r = self
            .http
            .post(format!("{}/auth/tokens", self.all.api.identity_url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "token for {user}");
        let tok = r.headers()["x-subject-token"].to_str().unwrap().to_owned();
        t.insert(user.to_owned(), tok.clone());
        tok
    }

    /// A compute API request as `user` at microversion `mv`.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        user: &str,
        mv: &str,
        body: Option<Value>,
    ) -> Reply {
        let tok = self.token(user).await;
        let mut rb = self
            .http
            .request(method, self.url(path))
            .header("X-Auth-Token", tok)
            .header("OpenStack-API-Version", format!("compute {mv}"));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn get(&self, path: &str, user: &str) -> Reply {
        self.call(Method::GET, path, user, "2.100", None).await
    }

    pub(crate) async fn post(&self, path: &str, user: &str, body: Value) -> Reply {
        self.call(Method::POST, path, user, "2.100", Some(body))
            .await
    }

    pub(crate) async fn delete(&self, path: &str, user: &str) -> Reply {
        self.call(Method::DELETE, path, user, "2.100", None).await
    }

    /// Boots one server; returns its id.
    pub(crate) async fn boot(&self, user: &str, name: &str, flavor: &str) -> String {
        let r = self
            .post(
                "/v2.1/servers",
                user,
                json!({"server": {"name": name, "flavorRef": flavor, "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none"}}),
            )
            .await;
        assert_eq!(r.status, 202, "boot: {}", r.body);
        r.body["server"]["id"].as_str().unwrap().to_owned()
    }

    /// Polls until the server has `status` (panics after 20 s or on
    /// another stable status).
    pub(crate) async fn wait_status(&self, user: &str, id: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.get(&format!("/v2.1/servers/{id}"), user).await;
            assert_eq!(r.status, 200, "show {id}: {}", r.body);
            let s = r.body["server"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let task = r.body["server"]["OS-EXT-STS:task_state"].clone();
            if s == status && task.is_null() {
                return r.body["server"].clone();
            }
            if s == "ERROR" && status != "ERROR" {
                panic!("server {id} went to ERROR: {}", r.body["server"]["fault"]);
            }
            if tokio::time::Instant::now() > deadline {
                panic!("server {id} stuck in {s} (task {task}) waiting for {status}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Polls until the server is gone (404).
    pub(crate) async fn wait_gone(&self, user: &str, id: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.get(&format!("/v2.1/servers/{id}"), user).await;
            if r.status == 404 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "server {id} not deleted: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Placement usage of `resource` summed over every compute node.
    pub(crate) async fn total_usage(&self, resource: &str) -> i64 {
        let mut total = 0;
        for c in &self.all.computes {
            let node = c.manager.node_uuid().await.expect("node");
            total += self
                .all
                .placement
                .usages_async(&node)
                .await
                .unwrap()
                .get(resource)
                .copied()
                .unwrap_or(0);
        }
        total
    }

    /// Placement usage of `resource` on `host`'s node.
    pub(crate) async fn usage_on(&self, host: &str, resource: &str) -> i64 {
        let node = self
            .all
            .compute(host)
            .expect("host")
            .manager
            .node_uuid()
            .await
            .expect("node");
        self.all
            .placement
            .usages_async(&node)
            .await
            .unwrap()
            .get(resource)
            .copied()
            .unwrap_or(0)
    }

    /// Stops every service and keeps the state directory (for
    /// [`Cluster::start_in`]).
    pub(crate) async fn stop_keeping_state(self) -> PathBuf {
        self.all.shutdown().await;
        self.dir
    }

    pub(crate) async fn stop(self) {
        self.all.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
