//! Remote consoles through the whole cluster: the API asks the compute
//! (fake driver) for a console, the compute authorizes a token, the
//! proxies nova-all runs validate it (hashed record, expiry, the
//! compute's `validate_console_port`) and relay to the console the
//! driver reports (fake console servers here; a real QEMU guest in
//! `services/consoleproxy/tests/real_guest.rs`).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nova_consoleproxy::fake_guest::{self, FakeConsole};
use nova_objects::{ConsoleAuthToken, ListQuery};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::cluster::{Cluster, free_port};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The websocket URL a console URL leads to (noVNC's page turns its
/// `path` parameter into the websocket path; the others carry `token`).
fn ws_url(console_url: &str) -> String {
    let (base, query) = console_url.split_once('?').unwrap();
    let origin = base
        .replacen("http://", "ws://", 1)
        .split('/')
        .take(3)
        .collect::<Vec<_>>()
        .join("/");
    let pairs: Vec<(String, String)> = form_pairs(query);
    if let Some((_, path)) = pairs.iter().find(|(k, _)| k == "path") {
        return format!("{origin}/{}", path.trim_start_matches('/'));
    }
    let token = &pairs.iter().find(|(k, _)| k == "token").unwrap().1;
    format!("{origin}/?token={token}")
}

fn form_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let v = v
                .replace("%3F", "?")
                .replace("%3D", "=")
                .replace("%2F", "/");
            (k.to_owned(), v)
        })
        .collect()
}

fn token_of(url: &str) -> String {
    let ws = ws_url(url);
    ws.rsplit("token=").next().unwrap().to_owned()
}

async fn open(url: &str, origin: Option<&str>) -> Result<Ws, WsError> {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "binary".parse().unwrap());
    if let Some(o) = origin {
        req.headers_mut().insert("Origin", o.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

async fn read_n(ws: &mut Ws, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("data within 10 s")
            .expect("open")
            .unwrap()
        {
            Message::Binary(b) => out.extend_from_slice(&b),
            Message::Close(_) => panic!("closed after {out:?}"),
            _ => {}
        }
    }
    out
}

fn refused(r: Result<Ws, WsError>) -> u16 {
    match r {
        Err(WsError::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected a refusal, the websocket opened"),
    }
}

async fn console(c: &Cluster, id: &str, mv: &str, protocol: &str, ty: &str) -> (u16, Value) {
    let r = c
        .call(
            Method::POST,
            &format!("/v2.1/servers/{id}/remote-consoles"),
            "demo",
            mv,
            Some(json!({"remote_console": {"protocol": protocol, "type": ty}})),
        )
        .await;
    (r.status, r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consoles_through_the_api_and_the_proxies_of_nova_all() {
    let (vnc, _v) = fake_guest::start(FakeConsole::Vnc).await.unwrap();
    let (spice, _s) = fake_guest::start(FakeConsole::Spice).await.unwrap();
    let (serial, _e) = fake_guest::start(FakeConsole::SerialEcho).await.unwrap();
    let (pv, ps, pe) = (free_port(), free_port(), free_port());
    let (pv_s, ps_s, pe_s) = (pv.to_string(), ps.to_string(), pe.to_string());
    let (vnc_s, spice_s, serial_s) = (
        vnc.port().to_string(),
        spice.port().to_string(),
        serial.port().to_string(),
    );
    let novnc_base = format!("http://127.0.0.1:{pv}/vnc_auto.html");
    let spice_base = format!("http://127.0.0.1:{ps}/spice_auto.html");
    let serial_base = format!("ws://127.0.0.1:{pe}/");
    let c = Cluster::start(
        1,
        &[
            ("fake", "vnc_port", &vnc_s),
            ("fake", "spice_port", &spice_s),
            ("fake", "serial_port", &serial_s),
            ("vnc", "novncproxy_host", "127.0.0.1"),
            ("vnc", "novncproxy_port", &pv_s),
            ("vnc", "novncproxy_base_url", &novnc_base),
            ("spice", "enabled", "true"),
            ("spice", "html5proxy_host", "127.0.0.1"),
            ("spice", "html5proxy_port", &ps_s),
            ("spice", "html5proxy_base_url", &spice_base),
            ("serial_console", "enabled", "true"),
            ("serial_console", "serialproxy_host", "127.0.0.1"),
            ("serial_console", "serialproxy_port", &pe_s),
            ("serial_console", "base_url", &serial_base),
            ("console", "allowed_origins", "console.example"),
        ],
    )
    .await;
    let id = c.boot("demo", "console-1", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;

    // noVNC: nova's URL shape, the RFB greeting and the negotiation.
    let (s, b) = console(&c, &id, "2.6", "vnc", "novnc").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["remote_console"]["protocol"], "vnc");
    assert_eq!(b["remote_console"]["type"], "novnc");
    let url = b["remote_console"]["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{novnc_base}?path=%3Ftoken%3D")),
        "{url}"
    );
    let mut ws = open(&ws_url(&url), Some(&format!("http://127.0.0.1:{pv}")))
        .await
        .unwrap();
    assert_eq!(read_n(&mut ws, 12).await, b"RFB 003.008\n");
    ws.send(Message::Binary(b"RFB 003.008\n".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(read_n(&mut ws, 2).await, [1, 1], "None offered");
    ws.send(Message::Binary(vec![1].into())).await.unwrap();
    assert_eq!(read_n(&mut ws, 4).await, [0, 0, 0, 0]);
    drop(ws);

    // The token is stored hashed; the admin API resolves it (2.31+).
    let token = token_of(&url);
    let recs: Vec<ConsoleAuthToken> = c
        .all
        .objects
        .list(&nova_service::context::admin(), &ListQuery::new())
        .await
        .unwrap();
    assert!(
        recs.iter().all(|r| r.token() != &token),
        "no plain token stored"
    );
    assert!(
        recs.iter()
            .any(|r| r.token() == &nova_service::consoles::token_hash(&token))
    );
    let path = format!("/v2.1/os-console-auth-tokens/{token}");
    let r = c.call(Method::GET, &path, "admin", "2.31", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["console"],
        json!({"instance_uuid": id, "host": "127.0.0.1", "port": vnc.port(), "internal_access_path": null})
    );
    assert_eq!(
        c.call(Method::GET, &path, "admin", "2.30", None)
            .await
            .status,
        400
    );
    assert_eq!(
        c.call(Method::GET, &path, "demo", "2.31", None)
            .await
            .status,
        403
    );
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-console-auth-tokens/nope",
            "admin",
            "2.31",
            None,
        )
        .await;
    assert_eq!((r.status, r.fault().1.as_str()), (404, "Token not found"));

    // SPICE: the link reply through the proxy.
    let (s, b) = console(&c, &id, "2.6", "spice", "spice-html5").await;
    assert_eq!(s, 200, "{b}");
    let url = b["remote_console"]["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{spice_base}?token=")), "{url}");
    let mut ws = open(&ws_url(&url), None).await.unwrap();
    let mut mess = b"REDQ".to_vec();
    mess.extend_from_slice(&2u32.to_le_bytes());
    mess.extend_from_slice(&2u32.to_le_bytes());
    mess.extend_from_slice(&4u32.to_le_bytes());
    mess.extend_from_slice(&[0u8; 4]);
    ws.send(Message::Binary(mess.into())).await.unwrap();
    let reply = read_n(&mut ws, 20).await;
    assert_eq!(&reply[..4], b"REDQ");
    drop(ws);

    // Serial: both ways, with the legacy action at 2.5.
    let r = c
        .call(
            Method::POST,
            &format!("/v2.1/servers/{id}/action"),
            "demo",
            "2.5",
            Some(json!({"os-getSerialConsole": {"type": "serial"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["console"]["type"], "serial");
    let url = r.body["console"]["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{serial_base}?token=")), "{url}");
    let mut ws = open(&url, Some("http://console.example")).await.unwrap();
    ws.send(Message::Binary(b"echo hi\n".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(read_n(&mut ws, 8).await, b"echo hi\n");
    drop(ws);

    // Refusals: unknown token, foreign Origin, expired token (deleted).
    let unknown = format!("ws://127.0.0.1:{pe}/?token=0000");
    assert_eq!(refused(open(&unknown, None).await), 403);
    assert_eq!(refused(open(&url, Some("http://evil.example")).await), 403);
    let mut rec: ConsoleAuthToken = c
        .all
        .objects
        .get(
            &nova_service::context::admin(),
            nova_objects::Lookup::field(
                "token",
                nova_service::consoles::token_hash(&token_of(&url)),
            ),
        )
        .await
        .unwrap();
    rec.set_expires(nova_service::consoles::now_ts() - 1);
    c.all
        .objects
        .save(&nova_service::context::admin(), &mut rec)
        .await
        .unwrap();
    assert_eq!(refused(open(&url, None).await), 403, "expired");
    let left: Vec<ConsoleAuthToken> = c
        .all
        .objects
        .list(&nova_service::context::admin(), &ListQuery::new())
        .await
        .unwrap();
    assert!(
        left.iter().all(|r| r.id() != rec.id()),
        "the expired token was deleted"
    );

    // The periodic purge deletes expired records only.
    let admin = nova_service::context::admin();
    let target = nova_service::consoles::ConsoleTarget {
        console_type: "serial".into(),
        host: "127.0.0.1".into(),
        port: 1,
        tls_port: None,
        internal_access_path: None,
        instance_uuid: id.clone(),
        access_url_base: serial_base.clone(),
    };
    for _ in 0..2 {
        nova_service::consoles::authorize(&c.all.objects, &admin, &target, -5)
            .await
            .unwrap();
    }
    let before: Vec<ConsoleAuthToken> =
        c.all.objects.list(&admin, &ListQuery::new()).await.unwrap();
    let purged = nova_service::consoles::purge_expired(&c.all.objects, &admin, 100)
        .await
        .unwrap();
    assert_eq!(purged, 2);
    let after: Vec<ConsoleAuthToken> = c.all.objects.list(&admin, &ListQuery::new()).await.unwrap();
    assert_eq!(after.len(), before.len() - 2);
    assert!(
        after
            .iter()
            .all(|r| *r.expires() > nova_service::consoles::now_ts())
    );

    // nova's refusals in the API.
    let (s, b) = console(&c, &id, "2.8", "mks", "webmks").await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(
        b["badRequest"]["message"],
        "Unavailable console type webmks."
    );
    let (s, _) = console(&c, &id, "2.6", "mks", "webmks").await;
    assert_eq!(s, 400, "mks is not in the 2.6 schema");
    let (s, b) = console(&c, &id, "2.6", "rdp", "rdp-html5").await;
    assert_eq!(
        (s, b["badRequest"]["message"].as_str()),
        (400, Some("Unavailable console type rdp."))
    );
    let (s, b) = console(&c, &id, "2.6", "vnc", "spice-html5").await;
    assert_eq!(
        (s, b["badRequest"]["message"].as_str()),
        (400, Some("Invalid console type spice-html5"))
    );
    let (s, _) = console(&c, &id, "2.5", "vnc", "novnc").await;
    assert_eq!(s, 404, "remote-consoles starts at 2.6");
    let r = c
        .call(
            Method::POST,
            &format!("/v2.1/servers/{id}/action"),
            "demo",
            "2.6",
            Some(json!({"os-getVNCConsole": {"type": "novnc"}})),
        )
        .await;
    assert_eq!(r.status, 404, "the legacy actions end at 2.5");
    let r = c
        .call(
            Method::POST,
            &format!("/v2.1/servers/{id}/action"),
            "demo",
            "2.1",
            Some(json!({"os-getVNCConsole": {"type": "novnc"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body["console"]["url"]
            .as_str()
            .unwrap()
            .starts_with(&novnc_base)
    );
    let r = c
        .call(
            Method::POST,
            &format!("/v2.1/servers/{id}/action"),
            "demo",
            "2.1",
            Some(json!({"os-getVNCConsole": {"type": "bogus"}})),
        )
        .await;
    assert_eq!(r.status, 400, "schema: {}", r.body);

    // The real openstack CLI asks for a URL.
    if let Some(exe) = crate::cli::openstack() {
        let clouds = c.dir.join("clouds.yaml");
        c.all.write_clouds_yaml(&clouds).unwrap();
        let id2 = id.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(exe)
                .args([
                    "--os-cloud",
                    "nova-rs-demo",
                    "console",
                    "url",
                    "show",
                    "--novnc",
                ])
                .args(["-f", "value", "-c", "url", &id2])
                .env("OS_CLIENT_CONFIG_FILE", &clouds)
                .env_remove("OS_CLOUD")
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "openstack console url show: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            url.starts_with(&format!("{novnc_base}?path=%3Ftoken%3D")),
            "{url}"
        );
        let mut ws = open(&ws_url(&url), None).await.unwrap();
        assert_eq!(read_n(&mut ws, 12).await, b"RFB 003.008\n");
    }
    c.stop().await;
}

#[tokio::test]
async fn consoles_that_are_off_are_refused_as_nova_refuses_them() {
    let c = Cluster::start(1, &[("vnc", "enabled", "false")]).await;
    let id = c.boot("demo", "console-off", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    for (p, t) in [
        ("vnc", "novnc"),
        ("spice", "spice-html5"),
        ("serial", "serial"),
    ] {
        let (s, b) = console(&c, &id, "2.6", p, t).await;
        assert_eq!(s, 400, "{b}");
        assert_eq!(
            b["badRequest"]["message"].as_str(),
            Some(format!("Unavailable console type {t}.").as_str())
        );
    }
    c.stop().await;
}
