//! Prometheus metrics (`[metrics] enabled`): after a boot, a NoValidHost
//! and a delete on nova-all, `/metrics` on the API port says so, with route
//! templates (never raw paths), RPC methods and outcomes, the scheduler's
//! decisions, Placement claims and instances by state; the exposition is
//! read with the Python `prometheus_client` parser.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cluster::Cluster;

/// One sample: its name, its labels, its value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed scrape: the families' types and every sample.
#[derive(Debug)]
struct Scrape {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Scrape {
    /// The sum of the samples named `name` whose labels include `want`.
    fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                want.iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    fn has(&self, name: &str, want: &[(&str, &str)]) -> bool {
        self.samples.iter().any(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

/// The text format parsed by `prometheus_client` (a parse error fails the
/// test): families' types and samples as JSON.
fn parse(text: &str) -> Scrape {
    let python = std::env::var("NOVA_RS_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles/bin/python".into());
    let script = r#"
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
types, samples = {}, []
for fam in text_string_to_metric_families(sys.stdin.read()):
    types[fam.name] = fam.type
    for s in fam.samples:
        v = s.value
        samples.append({"name": s.name, "labels": s.labels,
                        "value": None if math.isnan(v) or math.isinf(v) else v})
print(json.dumps({"types": types, "samples": samples}))
"#;
    let mut child = std::process::Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python}: {e} (scripts/test creates the virtualenv)"));
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client cannot parse the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let types = v["types"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, t)| (k.clone(), t.as_str().unwrap().to_owned()))
        .collect();
    let samples = v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Sample {
            name: s["name"].as_str().unwrap().to_owned(),
            labels: s["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, l)| (k.clone(), l.as_str().unwrap().to_owned()))
                .collect(),
            value: s["value"].as_f64().unwrap_or(f64::NAN),
        })
        .collect();
    Scrape { types, samples }
}

async fn scrape(c: &Cluster) -> (String, Scrape) {
    let r = reqwest::get(c.url("/metrics")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().await.unwrap();
    let parsed = parse(&text);
    (text, parsed)
}

/// Scrapes until `ok` holds (what a service records after answering can
/// land just after the client saw the answer), at most 20 s.
async fn scrape_until(c: &Cluster, what: &str, ok: impl Fn(&Scrape) -> bool) -> (String, Scrape) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (text, s) = scrape(c).await;
        if ok(&s) {
            return (text, s);
        }
        assert!(Instant::now() < deadline, "{what} never showed:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const HTTP: &str = "nova_http_requests_total";
const RPC_CLIENT: &str = "nova_rpc_client_requests_total";
const RPC_SERVER: &str = "nova_rpc_server_requests_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_no_valid_host_and_delete_move_the_counters() {
    let c = Cluster::start(
        2,
        &[
            ("metrics", "enabled", "true"),
            ("quota", "ram", "-1"),
            ("fake", "memory_mb", "4096"),
        ],
    )
    .await;
    let (_, before) = scrape(&c).await;
    let post_servers = [
        ("api", "compute"),
        ("method", "POST"),
        ("route", "/v2.1/servers"),
        ("status", "202"),
    ];
    let base_posts = before.sum(HTTP, &post_servers);

    // A boot that lands, and one no host can take.
    let id = c.boot("demo", "m-1", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let r = c
        .call(
            reqwest::Method::POST,
            "/v2.1/flavors",
            "admin",
            "2.61",
            Some(json!({"flavor": {"name": "huge", "ram": 8192, "vcpus": 1, "disk": 1, "id": "huge"}})),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = c
        .post(
            "/v2.1/servers",
            "demo",
            json!({"server": {"name": "big", "flavorRef": "huge",
                "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none"}}),
        )
        .await;
    assert_eq!(r.status, 202);
    let big = r.body["server"]["id"].as_str().unwrap().to_owned();
    c.wait_status("demo", &big, "ERROR").await;
    let r = c.get(&format!("/v2.1/servers/{id}"), "demo").await;
    assert_eq!(r.status, 200);
    let r = c.get("/v2.1/servers/no-such-server", "demo").await;
    assert_eq!(r.status, 404);

    let (mid_text, mid) = scrape_until(&c, "one active and one error instance", |s| {
        s.sum("nova_instances", &[("vm_state", "active")]) == 1.0
            && s.sum("nova_instances", &[("vm_state", "error")]) == 1.0
    })
    .await;
    // HTTP: route templates and statuses, with a latency histogram.
    assert_eq!(mid.sum(HTTP, &post_servers) - base_posts, 2.0);
    let show = [
        ("api", "compute"),
        ("method", "GET"),
        ("route", "/v2.1/servers/{id}"),
    ];
    assert!(mid.sum(HTTP, &[show[0], show[1], show[2], ("status", "200")]) >= 1.0);
    assert!(mid.sum(HTTP, &[show[0], show[1], show[2], ("status", "404")]) >= 1.0);
    assert!(mid.sum("nova_http_request_duration_seconds_count", &show) >= 2.0);
    assert!(mid.has(
        "nova_http_request_duration_seconds_bucket",
        &[show[0], show[1], show[2], ("le", "+Inf")]
    ));
    assert_eq!(
        mid.types
            .get("nova_http_request_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    assert_eq!(
        mid.types.get("nova_http_requests").map(String::as_str),
        Some("counter")
    );
    for s in &mid.samples {
        if let Some(route) = s.labels.get("route") {
            assert!(
                !route.contains(&id) && !route.contains("no-such-server"),
                "a raw path in a label: {route}"
            );
        }
    }
    // RPC, both sides: the conductor's call to the scheduler answered once
    // and failed once (NoValidHost); the API's casts to the conductor.
    let sel = [("topic", "scheduler"), ("method", "select_destinations")];
    assert!(
        mid.sum(
            RPC_CLIENT,
            &[("kind", "call"), sel[0], sel[1], ("outcome", "ok")]
        ) >= 1.0
    );
    assert!(
        mid.sum(
            RPC_CLIENT,
            &[
                ("kind", "call"),
                sel[0],
                sel[1],
                ("outcome", "remote_error")
            ]
        ) >= 1.0
    );
    assert!(mid.sum(RPC_SERVER, &[sel[0], sel[1], ("outcome", "ok")]) >= 1.0);
    assert!(mid.sum(RPC_SERVER, &[sel[0], sel[1], ("outcome", "error")]) >= 1.0);
    assert!(mid.sum("nova_rpc_client_duration_seconds_count", &sel) >= 2.0);
    assert!(
        mid.sum(
            RPC_CLIENT,
            &[
                ("kind", "cast"),
                ("topic", "conductor"),
                ("method", "schedule_and_build_instances"),
                ("outcome", "ok")
            ]
        ) >= 2.0
    );
    assert!(
        mid.sum(
            RPC_SERVER,
            &[
                ("kind", "cast"),
                ("topic", "compute"),
                ("method", "build_and_run_instance"),
                ("outcome", "ok")
            ]
        ) >= 1.0
    );
    // The scheduler's decisions and Placement's claims.
    assert!(mid.sum("nova_scheduler_decisions_total", &[("outcome", "selected")]) >= 1.0);
    assert!(
        mid.sum(
            "nova_scheduler_decisions_total",
            &[("outcome", "no_valid_host")]
        ) >= 1.0
    );
    assert!(mid.sum("nova_scheduler_no_valid_host_total", &[]) >= 1.0);
    assert!(mid.sum("nova_placement_claims_total", &[("outcome", "claimed")]) >= 1.0);
    // Heartbeats, the database pool.
    for host in ["fake-compute-1", "fake-compute-2"] {
        let age = mid.sum("nova_compute_heartbeat_age_seconds", &[("host", host)]);
        assert!(mid.has("nova_compute_heartbeat_age_seconds", &[("host", host)]));
        assert!((0.0..10.0).contains(&age), "{host}: {age}");
        assert!(
            mid.has(
                "nova_service_heartbeat_timestamp_seconds",
                &[("binary", "nova-compute"), ("host", host)]
            ),
            "{mid_text}"
        );
    }
    assert!(mid.sum("nova_db_pool_connections", &[("state", "max")]) >= 1.0);
    assert!(mid.has("nova_db_pool_connections", &[("state", "in_use")]));

    // A Placement generation conflict (a stale provider generation).
    let r = c
        .call(
            reqwest::Method::GET,
            "/placement/resource_providers",
            "admin",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let rp = r.body["resource_providers"][0]["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .call(
            reqwest::Method::PUT,
            &format!("/placement/resource_providers/{rp}/inventories"),
            "admin",
            "2.1",
            Some(json!({"resource_provider_generation": 99999,
                "inventories": {"VCPU": {"total": 8}}})),
        )
        .await;
    assert_eq!(r.status, 409);
    let (_, conflicted) = scrape_until(&c, "the Placement conflict", |s| {
        s.sum(
            "nova_placement_conflicts_total",
            &[("code", "placement.concurrent_update")],
        ) >= 1.0
    })
    .await;
    assert!(conflicted.sum(HTTP, &[("method", "PUT"), ("status", "409")]) >= 1.0);
    for s in &conflicted.samples {
        if let Some(route) = s.labels.get("route") {
            assert!(!route.contains(&rp), "a raw path in a label: {route}");
        }
    }

    // The delete.
    let r = c.delete(&format!("/v2.1/servers/{id}"), "demo").await;
    assert_eq!(r.status, 204);
    c.wait_gone("demo", &id).await;
    let (_, after) = scrape_until(&c, "the delete", |s| {
        s.sum("nova_instances", &[("vm_state", "active")]) == 0.0
            && s.sum(
                RPC_SERVER,
                &[
                    ("topic", "compute"),
                    ("method", "terminate_instance"),
                    ("outcome", "ok"),
                ],
            ) >= 1.0
    })
    .await;
    assert!(
        after.sum(
            HTTP,
            &[
                ("method", "DELETE"),
                ("route", "/v2.1/servers/{id}"),
                ("status", "204")
            ]
        ) >= 1.0
    );
    assert_eq!(after.sum("nova_instances", &[("vm_state", "error")]), 1.0);
    assert_eq!(after.sum("nova_instances", &[("vm_state", "deleted")]), 0.0);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_an_api_serves_metrics_on_its_own_port() {
    use nova_service::{Conf, Runner, metrics};
    let off = Runner::new(Conf::new());
    assert_eq!(
        metrics::serve(&off, metrics::CONDUCTOR_PORT).await.unwrap(),
        None
    );
    let mut conf = Conf::new();
    conf.set("metrics", "enabled", "true");
    conf.set("metrics", "port", "0");
    let runner = Runner::new(conf);
    let addr = metrics::serve(&runner, metrics::CONDUCTOR_PORT)
        .await
        .unwrap()
        .expect("listening");
    // Whatever this process records is served.
    ::metrics::counter!("nova_scheduler_no_valid_host_total").increment(1);
    let r = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    let s = parse(&text);
    assert!(s.has("nova_scheduler_no_valid_host_total", &[]), "{text}");
    runner.shutdown().await;
}
