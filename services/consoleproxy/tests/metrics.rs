//! `nova-novncproxy` with `[metrics] enabled`: `/metrics` on a listener of
//! its own (`[metrics] port`, not the proxy's browser-facing port) counts
//! the proxy's requests — web client files and console connections — by
//! kind and status, never by raw path or token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use nova_service::metrics::sample_sum;
use nova_service::testing::{Daemon, free_port};

#[tokio::test]
async fn proxy_requests_are_counted_on_the_metrics_port() {
    let mut d = Daemon::new("novnc-metrics");
    let (port, metrics_port) = (d.port(), free_port());
    let dir = d.dir().to_path_buf();
    std::fs::create_dir_all(dir.join("web")).unwrap();
    std::fs::write(dir.join("web/vnc.html"), "<html></html>").unwrap();
    let url = d.nova_database().await;
    let conf = d.write(
        "nova.conf",
        &format!(
            "[DEFAULT]\nweb = {}/web\n[vnc]\nnovncproxy_host = 127.0.0.1\nnovncproxy_port = {port}\n\
             [database]\nconnection = {url}\n[metrics]\nenabled = true\nport = {metrics_port}\n",
            dir.display()
        ),
    );
    d.spawn(
        Command::new(env!("CARGO_BIN_EXE_nova-novncproxy"))
            .arg("--config")
            .arg(&conf),
    );
    d.listening(port).await;
    d.listening(metrics_port).await;

    let base = format!("http://127.0.0.1:{port}");
    let r = reqwest::get(format!("{base}/vnc.html")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = reqwest::get(format!("{base}/no-such-file.js"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // A console connection with a token no one issued.
    let r = reqwest::Client::new()
        .get(format!("{base}/websockify?token=not-a-token"))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // `/metrics` is not on the browser-facing port.
    let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(r.status().as_u16(), 404);

    let r = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    let counted = |route: &str, status: &str| {
        sample_sum(
            &text,
            "nova_http_requests_total",
            &[
                ("api", "novncproxy"),
                ("method", "GET"),
                ("route", route),
                ("status", status),
            ],
        )
    };
    assert_eq!(counted("/{file}", "200"), 1.0, "{text}");
    // The 404 of the browser-facing `/metrics` too.
    assert_eq!(counted("/{file}", "404"), 2.0, "{text}");
    assert_eq!(counted("/{websocket}", "403"), 1.0, "{text}");
    assert!(
        !text.contains("no-such-file") && !text.contains("not-a-token"),
        "a raw path or token in a label:\n{text}"
    );
}
