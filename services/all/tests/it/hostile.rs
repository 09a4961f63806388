//! Hostile input over real sockets: what a client that lies about its
//! body or uses the wrong method gets (nova's fault bodies), and bodies
//! that must be refused before anything is written.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::cluster::Cluster;

/// Sends `head` + `body` on a fresh connection, half-closes it, and reads
/// the whole answer: (status, body).
async fn raw(c: &Cluster, head: &str, body: &[u8]) -> (u16, String) {
    let addr = c
        .all
        .api
        .compute_url
        .trim_start_matches("http://")
        .to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_owned();
    (status, body)
}

fn fault_name(body: &str) -> String {
    // A chunked body may carry chunk sizes around the JSON.
    let start = body.find('{').unwrap_or(0);
    let end = body.rfind('}').map_or(body.len(), |e| e + 1);
    let v: Value = serde_json::from_str(&body[start..end]).unwrap_or(Value::Null);
    v.as_object()
        .and_then(|o| o.keys().next().cloned())
        .unwrap_or_default()
}

#[tokio::test]
async fn lying_clients_and_wrong_methods_get_nova_faults() {
    let c = Cluster::start(1, &[]).await;
    let tok = c.token("demo").await;
    // A body shorter than its Content-Length: the client went away.
    let head = format!(
        "POST /v2.1/os-keypairs HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {tok}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    );
    let (status, body) = raw(&c, &head, b"{\"keypair\": {\"name\": \"trunc").await;
    assert_ne!(status, 413, "a truncated body is not too large: {body}");
    if status != 0 {
        assert_eq!(status, 400, "{body}");
        assert_eq!(fault_name(&body), "badRequest", "{body}");
    }
    // The same with a chunked body cut in the middle of a chunk.
    let head = format!(
        "POST /v2.1/os-keypairs HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {tok}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let (status, body) = raw(&c, &head, b"40\r\n{\"keypair\": {\"name\": \"trunc").await;
    assert_ne!(status, 413, "a truncated body is not too large: {body}");
    let r = c.get("/v2.1/os-keypairs", "demo").await;
    assert_eq!(r.body["keypairs"], json!([]), "nothing was written");

    // Wrong methods: nova's badMethod fault, with a body.
    for (m, path) in [
        ("PATCH", "/v2.1/servers"),
        ("POST", "/v2.1/flavors/detail"),
        ("DELETE", "/v2.1/os-hypervisors"),
        ("POST", "/"),
        ("PUT", "/v2.1/"),
    ] {
        let head = format!(
            "{m} {path} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {tok}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let (status, body) = raw(&c, &head, b"").await;
        assert_eq!(status, 405, "{m} {path}: {body}");
        assert_eq!(fault_name(&body), "badMethod", "{m} {path}: {body:?}");
    }
    let r = c
        .call(Method::GET, "/v2.1/servers", "demo", "3.0", None)
        .await;
    assert_eq!(r.status, 406);
    assert_eq!(r.fault().0, "computeFault");
    c.stop().await;
}
