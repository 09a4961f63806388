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
    // The binaries' listener (no certificate: plain TCP only), whose
    // upgraded connections are the TCP sockets themselves.
    let stop = cfg.stop.clone();
    let opts = nova_consoleproxy::TlsOptions::default();
    tokio::spawn(nova_consoleproxy::serve_tls(
        l,
        app(cfg, source),
        opts,
        stop,
    ));
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
async fn read_n<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, n: usize) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
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
    assert_eq!(read_n(&mut ws, line.len()).await, line);
    // A large message both ways over TLS: echoed whole, in order.
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    ws.send(Message::Binary(big.clone().into())).await.unwrap();
    assert_eq!(read_n(&mut ws, big.len()).await, big);
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

/// The byte at `offset` of a [`FakeConsole::Source`] stream.
fn source_byte(offset: usize) -> u8 {
    ((offset % (64 * 1024)) % 251) as u8
}

/// A websocket client that refuses frames above `max_frame` bytes (and,
/// as tungstenite does, masked or reserved-bit frames from a server).
async fn open_strict(url: &str, max_frame: usize) -> Ws {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_frame_size(Some(max_frame))
        .max_message_size(Some(max_frame));
    tokio_tungstenite::connect_async_with_config(url, Some(config), false)
        .await
        .unwrap()
        .0
}

/// Reads a whole [`FakeConsole::Source`] stream of `n` bytes: every frame
/// binary and its bytes where the stream has them, then a close (1000).
async fn read_source(ws: &mut Ws, n: usize) {
    let mut at = 0;
    let mut frames = 0;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a frame within 30 s")
            .expect("the socket open until the close frame")
            .unwrap();
        match m {
            Message::Binary(b) => {
                assert!(!b.is_empty(), "an empty frame at {at}");
                assert!(at + b.len() <= n, "more than the stream: {}", at + b.len());
                if let Some(i) = (0..b.len()).find(|&i| b[i] != source_byte(at + i)) {
                    panic!("byte {} differs", at + i);
                }
                at += b.len();
                frames += 1;
            }
            Message::Close(c) => {
                let c = c.expect("a close code");
                assert_eq!(u16::from(c.code), 1000);
                break;
            }
            other => panic!("unexpected {other:?} at {at}"),
        }
    }
    assert_eq!(at, n, "the whole stream, in {frames} frames");
}

/// The guest's stream to a plain-TCP client (the binaries' listener): 48 MiB
/// arrive byte-exact in binary frames none larger than 1 MiB, unmasked,
/// then the guest's close as a close frame (1000); base64 carries it
/// too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_stream_arrives_byte_exact_in_well_formed_frames() {
    let n = 48 << 20;
    let (guest, _g) = fake_guest::start(FakeConsole::Source(n as u64))
        .await
        .unwrap();
    let addr = proxy(
        ProxyKind::Serial,
        None,
        &[("s", info("serial", guest, "ws://127.0.0.1:6083/"))],
    )
    .await;
    let mut ws = open_strict(&format!("ws://{addr}/?token=s"), 1 << 20).await;
    read_source(&mut ws, n).await;
    let mut ws = open(addr, "/?token=s", Some("base64"), None).await.unwrap();
    let got = read_n(&mut ws, 1 << 20).await;
    assert!((0..got.len()).all(|i| got[i] == source_byte(i)));
}

/// A guest that sends until its connection fails: its address, the bytes
/// its socket took so far, and word when a write failed (the proxy closed
/// the connection).
async fn flood_guest() -> (
    SocketAddr,
    Arc<std::sync::atomic::AtomicU64>,
    tokio::sync::oneshot::Receiver<()>,
) {
    use tokio::io::AsyncWriteExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (closed, on_close) = tokio::sync::oneshot::channel();
    let counter = sent.clone();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        while let Ok(k) = s.write(&chunk).await {
            counter.fetch_add(k as u64, std::sync::atomic::Ordering::Relaxed);
        }
        let _ = closed.send(());
    });
    (addr, sent, on_close)
}

/// The largest buffer `net.ipv4.NAME` lets a TCP socket grow to.
fn sysctl_max(name: &str) -> u64 {
    let v = std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}")).unwrap();
    v.split_whitespace().last().unwrap().parse().unwrap()
}

/// Backpressure and cleanup, in binary and base64 frames: a client that stops reading stops the guest once the
/// buffers on the way are full (the proxy does not read ahead without
/// bound), and a client that goes away mid-stream ends the relay: the
/// proxy closes the guest's connection (with it goes the relay's task).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_holds_the_guest_back_and_one_that_leaves_ends_the_relay() {
    use std::sync::atomic::Ordering::Relaxed;
    for protocol in ["binary", "base64"] {
        let (guest, sent, closed) = flood_guest().await;
        let addr = proxy(
            ProxyKind::Serial,
            None,
            &[("s", info("serial", guest, "ws://127.0.0.1:6083/"))],
        )
        .await;
        let mut ws = open(addr, "/?token=s", Some(protocol), None).await.unwrap();
        let read = read_n(&mut ws, 4 << 20).await.len() as u64;
        // The client reads no more: the guest must come to a stop.
        let mut last = sent.load(Relaxed);
        let mut still = false;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = sent.load(Relaxed);
            if now - last < 64 * 1024 {
                still = true;
                break;
            }
            last = now;
        }
        let held = sent.load(Relaxed) - read;
        assert!(
            still,
            "{protocol}: the guest never stopped ({held} bytes ahead of the client)"
        );
        // At most the kernel's socket buffers on both hops (a send and a
        // receive buffer each, at their sysctl maxima) and the relay's
        // chunk, with the client library's read-ahead.
        let bound = 2 * (sysctl_max("tcp_rmem") + sysctl_max("tcp_wmem")) + (8 << 20);
        assert!(
            held < bound,
            "{protocol}: {held} bytes held between the guest and the client (bound {bound})"
        );
        drop(ws);
        tokio::time::timeout(Duration::from_secs(10), closed)
            .await
            .unwrap_or_else(|_| panic!("{protocol}: the guest's connection stays open"))
            .unwrap();
    }
}
