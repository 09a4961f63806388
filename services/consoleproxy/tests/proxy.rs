//! The proxies over fixed tokens and fake console servers: what a
//! websocket client gets through each, websockify's subprotocols, the
//! refusals, the web client's pages.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
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
    // A ping is answered with its payload.
    ws.send(Message::Ping(b"still there?".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong(b"still there?".to_vec().into()));
    // A close is answered with a close (its code echoed).
    ws.close(None).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap();
    assert!(matches!(end, Some(Ok(Message::Close(_))) | None), "{end:?}");
}

/// A CA and a certificate for `localhost` / 127.0.0.1 signed by it
/// (openssl): `(ca.pem, cert.pem, key.pem)`.
fn test_certificates(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (Debian's openssl package)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=nova-rs test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "key.pem",
            "-out",
            "cert.csr",
            "-subj",
            "/CN=localhost",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

/// A TLS client trusting `ca`.
fn tls_connector(ca: &std::path::Path) -> tokio_rustls::TlsConnector {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// `[DEFAULT] ssl_only`, `cert`, `key`: the proxy's listener speaks TLS
/// (a client verifying the certificate gets the guest's echo over `wss`),
/// and refuses plain connections; without `ssl_only` both are served on
/// the one port, and without the certificate TLS is refused.
#[tokio::test]
async fn the_proxy_listens_with_tls_and_ssl_only_refuses_plain_connections() {
    let dir = std::env::temp_dir().join(format!("nova-rs-proxy-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = test_certificates(&dir);
    let (guest, _g) = fake_guest::start(FakeConsole::SerialEcho).await.unwrap();
    let source = Arc::new(StaticSource::new());
    source.insert("s", info("serial", guest, "wss://localhost:6083/"));
    let serve = |opts: nova_consoleproxy::TlsOptions| {
        let source = source.clone();
        async move {
            let cfg = ProxyConfig {
                kind: ProxyKind::Serial,
                web: None,
                allowed_origins: Vec::new(),
                stop: tokio_util::sync::CancellationToken::new(),
            };
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let stop = cfg.stop.clone();
            let app = app(cfg, source);
            opts.acceptor().unwrap();
            tokio::spawn(nova_consoleproxy::serve_tls(l, app, opts, stop));
            addr
        }
    };
    let wss = |addr: SocketAddr| {
        let connector = tls_connector(&ca);
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let tls = connector.connect(name, tcp).await?;
            let req = format!("wss://localhost:{}/?token=s", addr.port())
                .into_client_request()
                .unwrap();
            tokio_tungstenite::client_async(req, tls)
                .await
                .map(|(ws, _)| ws)
                .map_err(std::io::Error::other)
        }
    };
    let addr = serve(nova_consoleproxy::TlsOptions {
        ssl_only: true,
        cert: cert.clone(),
        key: Some(key.clone()),
    })
    .await;
    let mut ws = wss(addr).await.unwrap();
    let line = b"echo over tls\n";
    ws.send(Message::Binary(line.to_vec().into()))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < line.len() {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Message::Binary(b) => got.extend_from_slice(&b),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, line);
    ws.close(None).await.unwrap();
    // ssl_only: a plain websocket gets no answer but a closed connection.
    let plain = open(addr, "/?token=s", Some("binary"), None).await;
    assert!(plain.is_err(), "a plain connection is refused");
    // Without ssl_only, one port serves both.
    let addr = serve(nova_consoleproxy::TlsOptions {
        ssl_only: false,
        cert: cert.clone(),
        key: Some(key.clone()),
    })
    .await;
    assert!(wss(addr).await.is_ok());
    assert!(open(addr, "/?token=s", Some("binary"), None).await.is_ok());
    // No certificate: plain only; ssl_only without one does not start.
    let missing = nova_consoleproxy::TlsOptions {
        ssl_only: false,
        cert: dir.join("self.pem"),
        key: None,
    };
    let addr = serve(missing.clone()).await;
    assert!(wss(addr).await.is_err(), "TLS without a certificate");
    assert!(open(addr, "/?token=s", Some("binary"), None).await.is_ok());
    let only = nova_consoleproxy::TlsOptions {
        ssl_only: true,
        ..missing
    };
    assert!(only.acceptor().is_err());
    let _ = std::fs::remove_dir_all(dir);
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
