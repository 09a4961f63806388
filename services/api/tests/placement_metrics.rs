//! `nova-placement-api` with `[metrics] enabled`: `/metrics` on its own
//! port counts its requests by route template and status, and a provider
//! generation conflict (409 `placement.concurrent_update`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use nova_service::metrics::sample_sum;
use nova_service::testing::Daemon;
use serde_json::json;

async fn start() -> (Daemon, u16) {
    let mut d = Daemon::new("placement-metrics");
    let port = d.port();
    let conf = d.write(
        "placement.conf",
        &format!(
            "[placement_database]\nconnection = sqlite:///{}/p.db\n[api]\nauth_strategy = noauth2\n\
             [metrics]\nenabled = true\n",
            d.dir().display()
        ),
    );
    d.serve(env!("CARGO_BIN_EXE_nova-placement-api"), &conf)
        .await;
    (d, port)
}

#[tokio::test]
async fn requests_and_generation_conflicts_are_counted() {
    let (_server, port) = start().await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let uuid = "9a1f4a4b-8f5e-4d0a-9f5b-1f1c3a5e2b7d";
    let r = http
        .post(format!("{base}/resource_providers"))
        .header("x-auth-token", "admin")
        .json(&json!({"name": "cn1", "uuid": uuid}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    // Generation 0 is current: 7 is a conflict.
    let r = http
        .put(format!("{base}/resource_providers/{uuid}/inventories"))
        .header("x-auth-token", "admin")
        .json(&json!({"resource_provider_generation": 7,
            "inventories": {"VCPU": {"total": 8}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    // No token: refused, and still counted.
    let r = http
        .get(format!("{base}/resource_providers/{uuid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // `/metrics` needs no token, as on nova-api's port.
    let r = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().await.unwrap();
    let counted = |route: &str, method: &str, status: &str| {
        sample_sum(
            &text,
            "nova_http_requests_total",
            &[
                ("api", "placement"),
                ("method", method),
                ("route", route),
                ("status", status),
            ],
        )
    };
    assert_eq!(counted("/resource_providers", "POST", "201"), 1.0, "{text}");
    assert_eq!(
        counted("/resource_providers/{uuid}/inventories", "PUT", "409"),
        1.0,
        "{text}"
    );
    assert_eq!(
        counted("/resource_providers/{uuid}", "GET", "401"),
        1.0,
        "{text}"
    );
    assert!(!text.contains(uuid), "a raw path in a label:\n{text}");
    assert_eq!(
        sample_sum(
            &text,
            "nova_http_request_duration_seconds_count",
            &[("api", "placement"), ("route", "/resource_providers")]
        ),
        1.0,
        "{text}"
    );
    // Its own database's pool (`[placement_database]`).
    assert!(
        sample_sum(
            &text,
            "nova_db_pool_connections",
            &[("database", "placement"), ("state", "max")]
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(
        sample_sum(
            &text,
            "nova_placement_conflicts_total",
            &[("code", "placement.concurrent_update")]
        ),
        1.0,
        "{text}"
    );
}
