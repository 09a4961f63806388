//! `nova-network-api` with `[metrics] enabled`: `/metrics` on the network
//! API's port counts its requests by route template and status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use nova_service::metrics::sample_sum;
use nova_service::testing::Daemon;

async fn start() -> (Daemon, u16) {
    let mut d = Daemon::new("network-metrics");
    let port = d.port();
    let conf = d.write(
        "network.conf",
        &format!(
            "[network]\nconnection = sqlite:///{}/network.db\n[api]\nauth_strategy = noauth2\n\
             [metrics]\nenabled = true\n",
            d.dir().display()
        ),
    );
    d.serve(env!("CARGO_BIN_EXE_nova-network-api"), &conf).await;
    (d, port)
}

#[tokio::test]
async fn requests_are_counted_by_route_and_status() {
    let (_server, port) = start().await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{base}{path}"))
            .header("x-auth-token", "admin")
            .send()
    };
    assert_eq!(get("/v2.0/networks").await.unwrap().status().as_u16(), 200);
    let missing = "/v2.0/networks/0f3c9f0e-5d43-4e4b-9d51-1c1d6c0b7a11";
    assert_eq!(get(missing).await.unwrap().status().as_u16(), 404);

    let r = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    let counted = |route: &str, status: &str| {
        sample_sum(
            &text,
            "nova_http_requests_total",
            &[
                ("api", "network"),
                ("method", "GET"),
                ("route", route),
                ("status", status),
            ],
        )
    };
    assert_eq!(counted("/v2.0/{collection}", "200"), 1.0, "{text}");
    assert_eq!(counted("/v2.0/{collection}/{id}", "404"), 1.0, "{text}");
    assert!(!text.contains("0f3c9f0e"), "a raw path in a label:\n{text}");
    // Its own database's pool (`[network] connection`).
    assert!(
        sample_sum(
            &text,
            "nova_db_pool_connections",
            &[("database", "network"), ("state", "max")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        sample_sum(
            &text,
            "nova_http_request_duration_seconds_count",
            &[("api", "network"), ("route", "/v2.0/{collection}")]
        ) >= 1.0,
        "{text}"
    );
}
