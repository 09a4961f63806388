//! Bytes/s through a console proxy against a direct TCP copy of the same
//! stream, in the same run:
//!
//! * `direct`: a TCP client reads a console server's stream (a fake guest
//!   sending `--mib` MiB, then closing) straight from its port;
//! * `proxy`: a websocket client (binary subprotocol) reads the same
//!   stream through `nova-serialproxy`'s router (`nova_consoleproxy::app`,
//!   a fixed token), which relays the TCP bytes into websocket frames.
//!
//! `--rounds` alternating runs of each; prints one JSON line per run and a
//! summary with the medians and the ratio proxy/direct (issue 17's
//! target: at least 80 %). `--base64` uses websockify's base64 mode.
//!
//! Run with: cargo bench -p nova-consoleproxy --bench console_proxy -- [--mib N] [--rounds N] [--base64]

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use nova_consoleproxy::fake_guest::{self, FakeConsole};
use nova_consoleproxy::{ConnectInfo, ProxyConfig, ProxyKind, StaticSource, app};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(name: &str) -> Option<String> {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1).cloned())
}

async fn direct(guest: SocketAddr) -> u64 {
    let mut s = tokio::net::TcpStream::connect(guest).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = s.read(&mut buf).await.unwrap();
        if k == 0 {
            return n;
        }
        n += k as u64;
    }
}

async fn proxied(proxy: SocketAddr, base64: bool) -> u64 {
    let mut req = format!("ws://{proxy}/?token=bench")
        .into_client_request()
        .unwrap();
    let proto = if base64 { "base64" } else { "binary" };
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", proto.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut n = 0u64;
    while let Some(m) = ws.next().await {
        match m {
            Ok(Message::Binary(b)) => n += b.len() as u64,
            Ok(Message::Text(t)) => n += (t.len() as u64 / 4) * 3,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    n
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mib: u64 = arg("--mib").and_then(|v| v.parse().ok()).unwrap_or(512);
    let rounds: usize = arg("--rounds").and_then(|v| v.parse().ok()).unwrap_or(3);
    let base64 = std::env::args().any(|a| a == "--base64");
    let bytes = mib << 20;
    let (guest, _g) = fake_guest::start(FakeConsole::Source(bytes)).await.unwrap();
    let source = Arc::new(StaticSource::new());
    source.insert(
        "bench",
        ConnectInfo {
            console_type: "serial".into(),
            host: guest.ip().to_string(),
            port: guest.port(),
            internal_access_path: None,
            access_url_base: "ws://127.0.0.1:6083/".into(),
            instance_uuid: "bench".into(),
        },
    );
    let cfg = ProxyConfig {
        kind: ProxyKind::Serial,
        web: None,
        allowed_origins: Vec::new(),
        stop: tokio_util::sync::CancellationToken::new(),
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app(cfg, source)).await.unwrap() });

    let (mut d, mut p) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let t = Instant::now();
        let n = direct(guest).await;
        assert_eq!(n, bytes, "direct: the whole stream");
        let rate = n as f64 / t.elapsed().as_secs_f64();
        println!(
            r#"{{"round": {round}, "path": "direct", "bytes": {n}, "mib_per_s": {:.1}}}"#,
            rate / 1048576.0
        );
        d.push(rate);
        let t = Instant::now();
        let n = proxied(proxy, base64).await;
        assert_eq!(n, bytes, "proxy: the whole stream");
        let rate = n as f64 / t.elapsed().as_secs_f64();
        println!(
            r#"{{"round": {round}, "path": "proxy", "bytes": {n}, "mib_per_s": {:.1}}}"#,
            rate / 1048576.0
        );
        p.push(rate);
    }
    let (dm, pm) = (median(&mut d), median(&mut p));
    println!(
        "console stream of {mib} MiB, median of {rounds}: direct TCP {:.0} MiB/s | through the proxy ({}) {:.0} MiB/s | {:.0} % (target >= 80 %)",
        dm / 1048576.0,
        if base64 { "base64" } else { "binary" },
        pm / 1048576.0,
        100.0 * pm / dm
    );
}
