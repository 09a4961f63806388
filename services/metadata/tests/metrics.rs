//! `nova-api-metadata` with `[metrics] enabled`: `/metrics` on the
//! metadata port counts its requests by tree (never the raw path) and
//! status, and reads the database pool and instances by state.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use nova_service::metrics::sample_sum;
use nova_service::testing::Daemon;

async fn start() -> (Daemon, u16) {
    let mut d = Daemon::new("metadata-metrics");
    let port = d.port();
    let url = d.nova_database().await;
    let conf = d.write(
        "nova.conf",
        &format!(
            "[DEFAULT]\nmetadata_listen = 127.0.0.1\nmetadata_listen_port = {port}\n\
             [database]\nconnection = {url}\n[metrics]\nenabled = true\n"
        ),
    );
    d.spawn(
        Command::new(env!("CARGO_BIN_EXE_nova-api-metadata"))
            .arg("--config")
            .arg(&conf),
    );
    d.listening(port).await;
    (d, port)
}

#[tokio::test]
async fn requests_pool_and_instances_are_served() {
    let (_server, port) = start().await;
    let base = format!("http://127.0.0.1:{port}");
    let r = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // No instance has this address: refused, counted under its tree.
    let path = "/openstack/2012-08-10/meta_data.json";
    let r = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = r.status().as_u16().to_string();
    assert_ne!(status, "200");

    let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    let counted = |route: &str, status: &str| {
        sample_sum(
            &text,
            "nova_http_requests_total",
            &[
                ("api", "metadata"),
                ("method", "GET"),
                ("route", route),
                ("status", status),
            ],
        )
    };
    assert_eq!(counted("/", "200"), 1.0, "{text}");
    assert_eq!(counted("/openstack/{path}", &status), 1.0, "{text}");
    assert!(
        !text.contains("2012-08-10"),
        "a raw path in a label:\n{text}"
    );
    // The database's gauges, read at the scrape.
    let pool = [("database", "nova")];
    assert!(
        sample_sum(
            &text,
            "nova_db_pool_connections",
            &[pool[0], ("state", "max")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("nova_db_pool_connections{")
                && l.contains("database=\"nova\"")
                && l.contains("state=\"in_use\"")),
        "{text}"
    );
    assert!(
        text.contains("nova_instances{vm_state=\"active\"} 0"),
        "{text}"
    );
}
