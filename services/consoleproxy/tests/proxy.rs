//! The proxies over fixed tokens and fake console servers: what a
//! websocket client gets through each, websockify's subprotocols, the
//! refusals, the web client's pages.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use nova_consoleproxy::fake_guest::{self, FakeConsole};
use nova_consoleproxy::{ConnectInfo, ProxyConfig, ProxyKind, StaticSource, app};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn proxy(
    kind: ProxyKind,
    web: Option<std::path::PathBuf>,
    tokens: &[(&str, ConnectInfo)],
) -> SocketAddr {
    let source = Arc::new(StaticSource::new());
    for (t, i) in tokens {
        source.insert(t, i.clone());
    }
    let cfg = ProxyConfig {
        kind,
        web,
        allowed_origins: vec!["console.example".into()],
        stop: tokio_util::sync::CancellationToken::new(),
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app(cfg, source)).await.unwrap() });
    addr
}

fn info(ty: &str, guest: SocketAddr, base: &str) -> ConnectInfo {
    ConnectInfo {
        console_type: ty.into(),
        host: guest.ip().to_string(),
        port: guest.port(),
        internal_access_path: None,
        access_url_base: base.into(),
        instance_uuid: "11111111-2222-3333-4444-555555555555".into(),
    }
}

async fn open(
    addr: SocketAddr,
    path: &str,
    protocol: Option<&str>,
    origin: Option<&str>,
) -> Result<Ws, WsError> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    if let Some(o) = origin {
        req.headers_mut().insert("Origin", o.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// Reads binary frames until `n` bytes came.
async fn read_n(ws: &mut Ws, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("data within 10 s")
            .expect("socket open")
            .unwrap();
        match m {
            Message::Binary(b) => out.extend_from_slice(&b),
            Message::Text(t) => out.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(t.as_str())
                    .unwrap(),
            ),
            Message::Close(_) => panic!("closed after {} bytes: {:?}", out.len(), out),
            _ => {}
        }
    }
    out
}

fn status_of(e: WsError) -> u16 {
    match e {
        WsError::Http(r) => r.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test]
async fn novnc_proxy_negotiates_rfb_security_and_relays_the_server_init() {
    let (guest, _g) = fake_guest::start(FakeConsole::Vnc).await.unwrap();
    let addr = proxy(
        ProxyKind::NoVnc,
        None,
        &[(
            "tok",
            info("novnc", guest, "http://127.0.0.1:6080/vnc_auto.html"),
        )],
    )
    .await;
    let mut ws = open(addr, "/?token=tok", Some("binary"), None)
        .await
        .unwrap();
    assert_eq!(read_n(&mut ws, 12).await, b"RFB 003.008\n");
    ws.send(Message::Binary(b"RFB 003.008\n".to_vec().into()))
        .await
        .unwrap();
    // The proxy offers only None (1) to the client.
    assert_eq!(read_n(&mut ws, 2).await, [1, 1]);
    ws.send(Message::Binary(vec![1].into())).await.unwrap();
    // SecurityResult OK comes from the server, relayed.
    assert_eq!(read_n(&mut ws, 4).await, [0, 0, 0, 0]);
    ws.send(Message::Binary(vec![1].into())).await.unwrap();
    let init = read_n(&mut ws, 24 + 8).await;
    assert_eq!(&init[..4], &[2, 128, 1, 224], "640x480");
    assert_eq!(&init[24..], b"fake-vnc");
}

#[tokio::test]
async fn novnc_proxy_refuses_a_client_asking_for_another_security_type() {
    let (guest, _g) = fake_guest::start(FakeConsole::Vnc).await.unwrap();
    let addr = proxy(
        ProxyKind::NoVnc,
        None,
        &[(
            "tok",
            info("novnc", guest, "http://127.0.0.1:6080/vnc_auto.html"),
        )],
    )
    .await;
    let mut ws = open(addr, "/?token=tok", None, None).await.unwrap();
    read_n(&mut ws, 12).await;
    ws.send(Message::Binary(b"RFB 003.008\n".to_vec().into()))
        .await
        .unwrap();
    read_n(&mut ws, 2).await;
    ws.send(Message::Binary(vec![2].into())).await.unwrap();
    let fail = read_n(&mut ws, 8).await;
    assert_eq!(&fail[..4], &[0, 0, 0, 1], "SecurityResult failed");
}

#[tokio::test]
async fn spice_proxy_relays_the_link_reply_in_base64_when_asked() {
    let (guest, _g) = fake_guest::start(FakeConsole::Spice).await.unwrap();
    let addr = proxy(
        ProxyKind::SpiceHtml5,
        None,
        &[(
            "s",
            info(
                "spice-html5",
                guest,
                "http://127.0.0.1:6082/spice_auto.html",
            ),
        )],
    )
    .await;
    let mut ws = open(addr, "/?token=s", Some("base64"), None).await.unwrap();
    // SpiceLinkHeader (magic, 2.2, size) + a SpiceLinkMess body.
    let mut mess = b"REDQ".to_vec();
    mess.extend_from_slice(&2u32.to_le_bytes());
    mess.extend_from_slice(&2u32.to_le_bytes());
    mess.extend_from_slice(&18u32.to_le_bytes());
    mess.extend_from_slice(&[0u8; 18]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&mess);
    ws.send(Message::Text(b64.into())).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Message::Text(t) = m else {
        panic!("base64 mode answers in text frames: {m:?}")
    };
    let reply = base64::engine::general_purpose::STANDARD
        .decode(t.as_str())
        .unwrap();
    assert_eq!(&reply[..4], b"REDQ");
    assert_eq!(
        u32::from_le_bytes(reply[16..20].try_into().unwrap()),
        0,
        "link error: OK"
    );
}

#[tokio::test]
async fn serial_proxy_relays_both_ways() {
    let (guest, _g) = fake_guest::start(FakeConsole::SerialEcho).await.unwrap();
    let addr = proxy(
        ProxyKind::Serial,
        None,
        &[("s", info("serial", guest, "ws://127.0.0.1:6083/"))],
    )
    .await;
    let mut ws = open(
        addr,
        "/?token=s",
        Some("binary"),
        Some("http://127.0.0.1:6083"),
    )
    .await
    .unwrap();
    for line in ["echo one\n", "echo two\n"] {
        ws.send(Message::Binary(line.as_bytes().to_vec().into()))
            .await
            .unwrap();
        assert_eq!(read_n(&mut ws, line.len()).await, line.as_bytes());
    }
    // A big write arrives whole, in order.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    ws.send(Message::Binary(big.clone().into())).await.unwrap();
    assert_eq!(read_n(&mut ws, big.len()).await, big);
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn refusals_unknown_token_wrong_proxy_and_foreign_origin() {
    let (guest, _g) = fake_guest::start(FakeConsole::SerialEcho).await.unwrap();
    let addr = proxy(
        ProxyKind::Serial,
        None,
        &[
            ("s", info("serial", guest, "ws://127.0.0.1:6083/")),
            (
                "v",
                info("novnc", guest, "http://127.0.0.1:6080/vnc_auto.html"),
            ),
        ],
    )
    .await;
    assert_eq!(
        status_of(open(addr, "/?token=nope", None, None).await.unwrap_err()),
        403
    );
    assert_eq!(
        status_of(open(addr, "/", None, None).await.unwrap_err()),
        403
    );
    assert_eq!(
        status_of(open(addr, "/?token=v", None, None).await.unwrap_err()),
        403,
        "a noVNC token does not open the serial proxy"
    );
    assert_eq!(
        status_of(
            open(addr, "/?token=s", None, Some("http://evil.example"))
                .await
                .unwrap_err()
        ),
        403
    );
    assert_eq!(
        status_of(
            open(addr, "/?token=s", None, Some("https://127.0.0.1"))
                .await
                .unwrap_err()
        ),
        403,
        "https origin for a ws:// base"
    );
    // The request's own host, and an allowed origin, pass.
    let mut ws = open(addr, "/?token=s", None, Some("http://127.0.0.1"))
        .await
        .unwrap();
    ws.send(Message::Binary(b"ping\n".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(read_n(&mut ws, 5).await, b"ping\n");
    let mut ws = open(addr, "/?token=s", None, Some("http://console.example"))
        .await
        .unwrap();
    ws.send(Message::Binary(b"pong\n".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(read_n(&mut ws, 5).await, b"pong\n");
}

#[tokio::test]
async fn the_web_client_pages_are_served_from_the_web_directory() {
    let dir = std::env::temp_dir().join(format!("nova-consoleproxy-web-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(dir.join("vnc_lite.html"), "<html>noVNC</html>").unwrap();
    std::fs::write(dir.join("app/ui.js"), "export {}").unwrap();
    let addr = proxy(ProxyKind::NoVnc, Some(dir.clone()), &[]).await;
    let get = |p: &str| {
        let url = format!("http://{addr}{p}");
        async move {
            let r = reqwest::get(url).await.unwrap();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), ct, r.text().await.unwrap())
        }
    };
    let (s, ct, body) = get("/vnc_lite.html").await;
    assert_eq!((s, body.as_str()), (200, "<html>noVNC</html>"));
    assert_eq!(ct.as_deref(), Some("text/html; charset=utf-8"));
    let (s, ct, _) = get("/app/ui.js").await;
    assert_eq!((s, ct.as_deref()), (200, Some("application/javascript")));
    assert_eq!(get("/../etc/passwd").await.0, 404);
    assert_eq!(get("/nope.html").await.0, 404);
    let _ = std::fs::remove_dir_all(dir);
}
