//! What Prometheus metrics cost, on and off in the same run, rounds
//! alternating (the recorder stays installed; "off" is what a service
//! without `[metrics] enabled` runs: no HTTP layer, nova-rpc's measurements
//! off):
//!
//! * `http`: a request through an axum router (`GET /v2.1/servers/{id}`,
//!   a small JSON body, `oneshot`, no socket) with and without
//!   `nova_service::metrics::instrument` (route template, status, latency
//!   histogram);
//! * `rpc`: a call on the memory transport (client and server in this
//!   process, so "on" records both sides: two counters, two histograms).
//!
//! Prints one JSON line per round and mode, then a summary per kind: the
//! medians of the per-operation time (1 caller) and of the throughput (8
//! callers), and the difference.
//!
//! Run with: cargo bench -p nova-service --bench metrics_overhead -- [--rounds N] [--n N]

#[path = "../../../benches/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use nova_rpc::{
    Dispatcher, Endpoint, MemoryTransport, RequestContext, RpcClient, RpcServer, Target, Version,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tower::ServiceExt as _;

#[derive(Serialize, Deserialize, Clone, PartialEq)]
struct Echo {
    value: String,
}

fn arg_or(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn router() -> Router {
    let doc = json!({"server": {"id": "6a3e3f5c-5e39-4c1e-9d2b-6f1f0e5c0a11", "name": "web-1",
        "status": "ACTIVE", "tenant_id": "demo", "metadata": {}, "links": []}});
    Router::new().route(
        "/v2.1/servers/{id}",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc) }
        }),
    )
}

/// Sequential time per operation (ns) and the figures with 8 callers.
async fn measure<F, Fut>(n: usize, op: F) -> (f64, harness::Figures)
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let t = Instant::now();
    for _ in 0..n {
        assert!(op().await);
    }
    let ns = t.elapsed().as_secs_f64() * 1e9 / n as f64;
    let f = harness::load(n, 8, op).await;
    assert_eq!(f.errors, 0);
    (ns, f)
}

fn main() {
    let rounds = arg_or("--rounds", 5);
    let n = arg_or("--n", 100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        nova_service::metrics::install().expect("recorder");
        let plain = router();
        let instrumented = nova_service::metrics::instrument(router(), "compute");

        let transport = MemoryTransport::new();
        let endpoint = Endpoint::new(Some("bench"), Version::new(1, 0))
            .method("echo", |_c, e: Echo| async move { Ok(e) });
        let server = RpcServer::start(
            transport.clone(),
            Target::topic("bench").with_server("s1"),
            Dispatcher::new(vec![endpoint]),
        )
        .await
        .expect("server");
        let client = RpcClient::new(transport, Target::topic("bench").with_namespace("bench"))
            .timeout(Duration::from_secs(30));
        let ctx = RequestContext::new()
            .with_user("bench")
            .with_project("bench");
        let payload = Echo {
            value: "x".repeat(16),
        };

        let mut figures: Vec<(&str, &str, f64, f64)> = Vec::new();
        for round in 0..rounds {
            for on in [false, true] {
                let mode = if on { "on" } else { "off" };
                let app = if on {
                    instrumented.clone()
                } else {
                    plain.clone()
                };
                let (ns, f) = measure(n, move || {
                    let app = app.clone();
                    async move {
                        let req =
                            Request::get("/v2.1/servers/6a3e3f5c-5e39-4c1e-9d2b-6f1f0e5c0a11")
                                .body(Body::empty())
                                .expect("request");
                        app.oneshot(req).await.is_ok_and(|r| r.status() == 200)
                    }
                })
                .await;
                let mut line = f.json("http", mode, 8);
                line["round"] = json!(round);
                line["ns_per_op_1"] = json!(ns.round());
                println!("{line}");
                figures.push(("http", mode, ns, f.per_s));

                nova_rpc::metrics::set_enabled(on);
                let (client, ctx, payload) = (client.clone(), ctx.clone(), payload.clone());
                let (ns, f) = measure(n / 4, move || {
                    let (client, ctx, payload) = (client.clone(), ctx.clone(), payload.clone());
                    async move {
                        client
                            .call::<Echo>(&ctx, "echo", &payload)
                            .await
                            .is_ok_and(|r| r == payload)
                    }
                })
                .await;
                let mut line = f.json("rpc", mode, 8);
                line["round"] = json!(round);
                line["ns_per_op_1"] = json!(ns.round());
                println!("{line}");
                figures.push(("rpc", mode, ns, f.per_s));
            }
        }
        for kind in ["http", "rpc"] {
            let pick = |mode: &str, i: usize| {
                median(
                    figures
                        .iter()
                        .filter(|f| f.0 == kind && f.1 == mode)
                        .map(|f| if i == 0 { f.2 } else { f.3 })
                        .collect(),
                )
            };
            let (off_ns, on_ns) = (pick("off", 0), pick("on", 0));
            let (off_s, on_s) = (pick("off", 1), pick("on", 1));
            println!(
                "{}",
                json!({"summary": kind, "rounds": rounds,
                    "ns_per_op_off": off_ns.round(), "ns_per_op_on": on_ns.round(),
                    "added_ns": (on_ns - off_ns).round(),
                    "per_s_8_off": off_s.round(), "per_s_8_on": on_s.round(),
                    "throughput_change_pct": ((on_s / off_s - 1.0) * 1000.0).round() / 10.0})
            );
        }
        server.stop().await;
    });
}
