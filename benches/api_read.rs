//! The API's read path against a bare axum handler, in the same run:
//!
//! * `nova`: `GET /v2.1/servers/{id}` with a valid token on `nova-all` in
//!   this process (memory transport, SQLite file, one fake compute), the
//!   server booted and ACTIVE;
//! * `bare`: an axum server built here whose one handler returns the same
//!   JSON document (nova's body, captured once, serialized per request).
//!
//! Both are driven by `wrk` (Debian package `wrk`) with the same settings
//! (`-t1 -c8 -d5s` by default), one after the other, `--rounds` times.
//! Prints one JSON line per round and a summary line with the medians and
//! the ratio nova/bare (issue 14's target: at least 30 %).
//!
//! With `--breakdown`, also the CPU time per request of its parts in
//! this process, without HTTP or wrk: a plain instance read
//! (`Objects::get_by_uuid`), the show's read (`Objects::get_instance`
//! with its info cache, one joined statement) and the whole router
//! (`oneshot`), 8 callers.
//!
//! Run with: cargo bench --bench api_read -- [--duration S] [--connections N] [--threads N] [--rounds N] [--microversion X.Y] [--breakdown]
//! (Logging is nova-all's: INFO to stderr, `RUST_LOG` filters.)

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

// The allocator of the service binaries (nova-all runs in this process).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn arg_or(name: &str, default: usize) -> usize {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Wrk {
    threads: usize,
    connections: usize,
    duration: usize,
}

impl Wrk {
    /// Requests per second `wrk` measured on `url` (every response a 2xx).
    async fn run(&self, url: &str, headers: &[(&str, &str)]) -> f64 {
        let mut cmd = tokio::process::Command::new("wrk");
        cmd.arg(format!("-t{}", self.threads))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", self.duration));
        for (k, v) in headers {
            cmd.arg("-H").arg(format!("{k}: {v}"));
        }
        let out = cmd.arg(url).output().await.expect("wrk");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "wrk failed: {text}");
        assert!(
            !text.contains("Non-2xx"),
            "{url}: responses that are not 2xx:\n{text}"
        );
        text.lines()
            .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"))
    }
}

/// CPU time of this process so far (user + system), in ms.
fn cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .map_or(0.0, |ticks| ticks * 10.0)
}

/// `n` calls of `op` from 8 concurrent callers: (CPU µs, wall µs) per call.
async fn per_call<F, Fut>(n: usize, op: F) -> (f64, f64)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let (cpu, wall) = (cpu_ms(), Instant::now());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                for _ in 0..n / 8 {
                    op().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("caller");
    }
    let n = (n / 8 * 8) as f64;
    (
        ((cpu_ms() - cpu) * 1000.0 / n).round(),
        (wall.elapsed().as_secs_f64() * 1e6 / n).round(),
    )
}

async fn breakdown(all: &nova_all::AllInOne, path: &str, headers: &[(&str, &str)]) {
    use tower::ServiceExt as _;
    let n = 20_000;
    let uuid = path.rsplit('/').next().expect("uuid").to_owned();
    let objects = all.objects.clone();
    let ctx = nova_rpc::RequestContext::new().with_admin(true);
    let read = move || {
        let (objects, ctx, uuid) = (objects.clone(), ctx.clone(), uuid.clone());
        async move {
            objects
                .get_by_uuid::<nova_objects::Instance>(&ctx, &uuid)
                .await
                .expect("instance");
        }
    };
    per_call(n / 10, read.clone()).await;
    let (read_cpu, read_wall) = per_call(n, read).await;
    let (objects, ctx) = (
        all.objects.clone(),
        nova_rpc::RequestContext::new().with_admin(true),
    );
    let uuid = path.rsplit('/').next().expect("uuid").to_owned();
    let show_read = move || {
        let (objects, ctx, uuid) = (objects.clone(), ctx.clone(), uuid.clone());
        async move {
            objects
                .get_instance(&ctx, &uuid, &["info_cache"])
                .await
                .expect("instance and info cache");
        }
    };
    per_call(n / 10, show_read.clone()).await;
    let (show_cpu, show_wall) = per_call(n, show_read).await;
    let app = nova_api::router(all.api.state.clone());
    let mut req = axum::http::Request::get(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = Arc::new(req.body(()).expect("request"));
    let call = move || {
        let (app, req) = (app.clone(), req.clone());
        async move {
            let mut r = axum::http::Request::new(axum::body::Body::empty());
            *r.method_mut() = req.method().clone();
            *r.uri_mut() = req.uri().clone();
            *r.headers_mut() = req.headers().clone();
            let resp = app.oneshot(r).await.expect("router");
            assert!(resp.status().is_success(), "{}", resp.status());
            axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .expect("body");
        }
    };
    per_call(n / 10, call.clone()).await;
    let (router_cpu, router_wall) = per_call(n, call).await;
    println!(
        "{}",
        json!({"bench": "api_read", "breakdown": "in-process, 8 callers, per request",
               "instance_read_cpu_us": read_cpu, "instance_read_wall_us": read_wall,
               "show_read_cpu_us": show_cpu, "show_read_wall_us": show_wall,
               "router_cpu_us": router_cpu, "router_wall_us": router_wall})
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

async fn token(http: &reqwest::Client, identity: &str) -> String {
    let auth = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": "admin"}}}, "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
    let r = http
        .post(format!("{identity}/auth/tokens"))
        .json(&auth)
        .send()
        .await
        .expect("token");
    assert_eq!(r.status().as_u16(), 201, "token");
    r.headers()["x-subject-token"]
        .to_str()
        .expect("token")
        .to_owned()
}

/// Boots one server and waits until it is ACTIVE; returns its URL.
async fn boot(http: &reqwest::Client, compute: &str, tok: &str) -> String {
    let r = http
        .post(format!("{compute}/v2.1/servers"))
        .header("X-Auth-Token", tok)
        .header("OpenStack-API-Version", "compute 2.100")
        .json(&json!({"server": {"name": "read-bench", "flavorRef": "1",
                                 "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none"}}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status().as_u16(), 202, "create");
    let body: Value = r.json().await.expect("create json");
    let url = format!(
        "{compute}/v2.1/servers/{}",
        body["server"]["id"].as_str().expect("id")
    );
    for _ in 0..1000 {
        let s: Value = http
            .get(&url)
            .header("X-Auth-Token", tok)
            .send()
            .await
            .expect("show")
            .json()
            .await
            .expect("show json");
        match s["server"]["status"].as_str() {
            Some("ACTIVE") => return url,
            Some("ERROR") => panic!("the server went to ERROR: {s}"),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    panic!("the server did not become ACTIVE");
}

/// The bare handler's server: `GET /` returns `doc` as JSON.
async fn bare_server(doc: Value) -> String {
    use axum::routing::get;
    let doc = std::sync::Arc::new(doc);
    let app = axum::Router::new().route(
        "/v2.1/servers/{id}",
        get(move || {
            let doc = doc.clone();
            async move { axum::Json((*doc).clone()) }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await });
    format!("http://{addr}")
}

async fn run() {
    if std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("api_read: wrk is missing (Debian: apt-get install -y wrk)");
        std::process::exit(2);
    }
    let wrk = Wrk {
        threads: arg_or("--threads", 1),
        connections: arg_or("--connections", 8),
        duration: arg_or("--duration", 5),
    };
    let rounds = arg_or("--rounds", 2).max(1);
    let microversion = arg("--microversion");

    let dir = std::env::temp_dir().join(format!(
        "nova-rs-bench-read-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut conf = nova_service::Conf::new();
    conf.set("DEFAULT", "osapi_compute_listen_port", "0");
    conf.set("image", "bind_port", "0");
    let conf = nova_all::embedded_defaults(conf, &dir);
    let all = nova_all::AllInOne::start(conf, 1).await.expect("start");
    nova_all::seed(&all).await.expect("seed");
    let http = reqwest::Client::new();
    let tok = token(&http, &all.api.identity_url).await;
    let url = boot(&http, &all.api.compute_url, &tok).await;
    let path = url
        .strip_prefix(&all.api.compute_url)
        .expect("path")
        .to_owned();

    let mv = microversion.as_ref().map(|m| format!("compute {m}"));
    let mut headers = vec![("X-Auth-Token", tok.as_str())];
    if let Some(m) = &mv {
        headers.push(("OpenStack-API-Version", m.as_str()));
    }
    // The document nova returns, captured once for the bare handler.
    let mut req = http.get(&url);
    for (k, v) in &headers {
        req = req.header(*k, *v);
    }
    let body = req.send().await.expect("show").bytes().await.expect("body");
    let doc: Value = serde_json::from_slice(&body).expect("show json");
    let bare = format!("{}{path}", bare_server(doc).await);

    // Warm-up (connections, caches, the pool's connections).
    let warm = Wrk { duration: 1, ..wrk };
    warm.run(&url, &headers).await;
    warm.run(&bare, &headers).await;
    let wrk = Wrk {
        duration: wrk.duration,
        ..warm
    };

    let (mut nova, mut bare_rps) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let n = wrk.run(&url, &headers).await;
        let b = wrk.run(&bare, &headers).await;
        println!(
            "{}",
            json!({"bench": "api_read", "round": round, "nova_req_per_s": n.round(),
                   "bare_req_per_s": b.round(), "ratio": (n / b * 1000.0).round() / 1000.0})
        );
        nova.push(n);
        bare_rps.push(b);
    }
    let (n, b) = (median(&mut nova), median(&mut bare_rps));
    println!(
        "{}",
        json!({"bench": "api_read", "summary": "median", "request": "GET /v2.1/servers/{id}",
               "microversion": microversion.as_deref().unwrap_or("2.1"), "body_bytes": body.len(),
               "wrk": format!("-t{} -c{} -d{}s", wrk.threads, wrk.connections, wrk.duration),
               "rounds": rounds, "nova_req_per_s": n.round(), "bare_req_per_s": b.round(),
               "ratio": (n / b * 1000.0).round() / 1000.0, "target_ratio": 0.30})
    );
    if std::env::args().any(|a| a == "--breakdown") {
        breakdown(&all, &path, &headers).await;
    }
    all.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    // Logging as nova-all sets it up (INFO, `RUST_LOG` filters): its
    // per-request span is part of the read path.
    nova_service::init_tracing(false);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}
