//! The metadata API's `meta_data.json` against a bare axum handler, in the
//! same run:
//!
//! * `nova`: `GET /openstack/latest/meta_data.json` on nova-all's metadata
//!   API in this process (`[neutron] service_metadata_proxy` with a shared
//!   secret: every request carries `X-Instance-ID`, `X-Tenant-ID` and the
//!   HMAC-SHA256 `X-Instance-ID-Signature`, checked per request; the
//!   instance's metadata cached per `metadata_cache_expiration`, 15 s;
//!   a fresh 512-byte `random_seed` per answer, as nova);
//! * `bare`: an axum server built here whose one handler returns the same
//!   document (captured once, serialized per request).
//!
//! Both are driven by `wrk` (Debian package `wrk`), `-t1 -c8 -d5s` by
//! default, one after the other, `--rounds` times; one JSON line per round
//! and a summary with the medians (issue 17's target: ≥ 20,000 requests/s
//! on the 2-core box).
//!
//! Run with: cargo bench --bench metadata -- [--duration S] [--connections N] [--threads N] [--rounds N]

use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &str = "bench-shared-secret";

fn arg_or(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Requests/s `wrk` measured on `url` (every answer a 2xx).
async fn wrk(t: usize, c: usize, d: usize, url: &str, headers: &[(String, String)]) -> f64 {
    let mut cmd = tokio::process::Command::new("wrk");
    cmd.arg(format!("-t{t}"))
        .arg(format!("-c{c}"))
        .arg(format!("-d{d}s"));
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    let out = cmd.arg(url).output().await.expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}");
    assert!(
        !text.contains("Non-2xx"),
        "{url}: answers that are not 2xx:\n{text}"
    );
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"))
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

async fn run() {
    if std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("metadata: wrk is missing (Debian: apt-get install -y wrk)");
        std::process::exit(2);
    }
    let (t, c, d) = (
        arg_or("--threads", 1),
        arg_or("--connections", 8),
        arg_or("--duration", 5),
    );
    let rounds = arg_or("--rounds", 2).max(1);
    let dir = std::env::temp_dir().join(format!(
        "nova-rs-bench-md-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut conf = nova_service::Conf::new();
    for (s, k, v) in [
        ("DEFAULT", "osapi_compute_listen_port", "0"),
        ("image", "bind_port", "0"),
        ("DEFAULT", "enabled_apis", "osapi_compute,metadata"),
        ("DEFAULT", "metadata_listen_port", "0"),
        ("neutron", "service_metadata_proxy", "true"),
        ("neutron", "metadata_proxy_shared_secret", SECRET),
    ] {
        conf.set(s, k, v);
    }
    let conf = nova_all::embedded_defaults(conf, &dir);
    let all = nova_all::AllInOne::start(conf, 1).await.expect("start");
    nova_all::seed(&all).await.expect("seed");
    let http = reqwest::Client::new();
    // One ACTIVE server (noauth would do; the identity is there).
    let auth = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": "admin"}}}, "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
    let r = http
        .post(format!("{}/auth/tokens", all.api.identity_url))
        .json(&auth)
        .send()
        .await
        .expect("token");
    let tok = r.headers()["x-subject-token"]
        .to_str()
        .expect("token")
        .to_owned();
    let r: Value = http
        .post(format!("{}/v2.1/servers", all.api.compute_url))
        .header("X-Auth-Token", &tok)
        .header("OpenStack-API-Version", "compute 2.100")
        .json(&json!({"server": {"name": "md-bench", "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none"}}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("create json");
    let id = r["server"]["id"].as_str().expect("id").to_owned();
    let mut project = String::new();
    for _ in 0..1000 {
        let s: Value = http
            .get(format!("{}/v2.1/servers/{id}", all.api.compute_url))
            .header("X-Auth-Token", &tok)
            .send()
            .await
            .expect("show")
            .json()
            .await
            .expect("show json");
        if s["server"]["status"] == "ACTIVE" {
            project = s["server"]["tenant_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!project.is_empty(), "the server did not become ACTIVE");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("hmac");
    mac.update(id.as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    let headers = vec![
        ("X-Instance-ID".to_owned(), id.clone()),
        ("X-Tenant-ID".to_owned(), project.clone()),
        ("X-Instance-ID-Signature".to_owned(), sig),
    ];
    let url = format!(
        "http://{}/openstack/latest/meta_data.json",
        all.metadata.expect("metadata API")
    );
    let mut req = http.get(&url);
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    let doc: Value = req
        .send()
        .await
        .expect("meta_data.json")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["uuid"], json!(id));
    let bare = {
        let doc = std::sync::Arc::new(doc);
        let app = axum::Router::new().route(
            "/openstack/latest/meta_data.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}/openstack/latest/meta_data.json")
    };
    wrk(t, c, 1, &url, &headers).await;
    wrk(t, c, 1, &bare, &headers).await;
    let (mut ours, mut anchor) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let n = wrk(t, c, d, &url, &headers).await;
        let b = wrk(t, c, d, &bare, &headers).await;
        println!(
            "{}",
            json!({"bench": "metadata", "round": round, "path": "/openstack/latest/meta_data.json",
                   "signed_headers": true, "nova_rps": n.round(), "bare_axum_rps": b.round(),
                   "ratio": (n / b * 1000.0).round() / 1000.0, "wrk": format!("-t{t} -c{c} -d{d}s")})
        );
        ours.push(n);
        anchor.push(b);
    }
    let (n, b) = (median(&mut ours), median(&mut anchor));
    println!(
        "{}",
        json!({"bench": "metadata", "summary": true, "nova_rps_median": n.round(),
               "bare_axum_rps_median": b.round(), "ratio": (n / b * 1000.0).round() / 1000.0,
               "target_rps": 20000, "meets_target": n >= 20000.0})
    );
    all.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}
