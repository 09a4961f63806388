//! The proxies in front of a real QEMU guest (TCG) that the libvirt
//! driver boots with VNC, SPICE and a TCP serial port: through each a
//! websocket client gets what the guest sends (the RFB greeting and
//! ServerInit, the SPICE link reply, a shell's answer on ttyS0), the
//! console log keeps working, and headless Chromium opens the noVNC page
//! and shows the guest's screen. Needs `scripts/libvirt-setup` (the guest,
//! libvirtd) and Debian's `novnc` and `chromium` (scripts/test installs
//! them); fails, saying so, when they are missing. `NOVA_RS_CONSOLE_SCREENSHOT=FILE`
//! keeps the screenshot.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nova_consoleproxy::{ConnectInfo, ProxyConfig, ProxyKind, StaticSource, app};
use nova_virt::libvirt::{ConsoleConfig, LibvirtConfig, LibvirtDriver};
use nova_virt::{ComputeDriver, InstanceSpec};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Reap(String);

impl Drop for Reap {
    fn drop(&mut self) {
        for args in [
            &["destroy", self.0.as_str()][..],
            &["undefine", "--managed-save", self.0.as_str()][..],
        ] {
            let _ = std::process::Command::new("virsh")
                .args(["-q", "-c", "qemu:///system"])
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

async fn proxy(kind: ProxyKind, web: Option<&str>, token: &str, info: ConnectInfo) -> SocketAddr {
    let source = Arc::new(StaticSource::new());
    source.insert(token, info);
    let cfg = ProxyConfig {
        kind,
        web: web.map(PathBuf::from),
        allowed_origins: Vec::new(),
        stop: tokio_util::sync::CancellationToken::new(),
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app(cfg, source)).await.unwrap() });
    addr
}

fn info(ty: &str, c: &nova_virt::Console, base: &str) -> ConnectInfo {
    ConnectInfo {
        console_type: ty.into(),
        host: c.host.clone(),
        port: c.port,
        internal_access_path: c.internal_access_path.clone(),
        access_url_base: base.into(),
        instance_uuid: "real".into(),
    }
}

async fn open(addr: SocketAddr, token: &str) -> Ws {
    let mut req = format!("ws://{addr}/?token={token}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "binary".parse().unwrap());
    req.headers_mut()
        .insert("Origin", format!("http://{addr}").parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

async fn read_n(ws: &mut Ws, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("the guest answers within 30 s")
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

/// Reads until `needle` shows up (or 60 s), returning what came.
async fn read_until(ws: &mut Ws, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while !String::from_utf8_lossy(&out).contains(needle) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => out.extend_from_slice(&b),
            Ok(Some(Ok(_))) => {}
            other => panic!(
                "no {needle:?} on the serial console ({other:?}); got: {}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The shares of pure black pixels (the guest's VGA text console) and of
/// light ones (its text) in a screenshot. noVNC's own page, connected or
/// not, has no black: its background is grey.
fn console_shares(png_path: &Path) -> (f64, f64) {
    let dec = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let (mut black, mut light, mut n) = (0usize, 0usize, 0usize);
    for p in buf[..info.buffer_size()].chunks(px) {
        n += 1;
        if p[..3] == [0, 0, 0] {
            black += 1;
        } else if p[..3].iter().all(|&c| c > 150) {
            light += 1;
        }
    }
    (black as f64 / n as f64, light as f64 / n as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxies_reach_a_real_qemu_guest() {
    let guest = PathBuf::from(
        std::env::var("NOVA_RS_GUEST_DIR").unwrap_or_else(|_| "/var/tmp/nova-rs/guest".into()),
    );
    for f in ["vmlinuz", "initrd.img", "base.qcow2"] {
        assert!(
            guest.join(f).exists(),
            "{} missing: run scripts/libvirt-setup (scripts/test does)",
            guest.join(f).display()
        );
    }
    assert!(
        Path::new("/run/libvirt/libvirt-sock").exists(),
        "libvirtd is not running: run scripts/libvirt-setup"
    );
    for p in ["/usr/share/novnc/vnc_lite.html", "/usr/bin/chromium"] {
        assert!(
            Path::new(p).exists(),
            "{p} missing: scripts/test installs Debian's novnc and chromium"
        );
    }
    let dir = std::env::temp_dir().join(format!("nova-consoles-qemu-{}", std::process::id()));
    let cfg = LibvirtConfig {
        connection_uri: "qemu:///system".into(),
        virt_type: "qemu".into(),
        instances_path: dir.clone(),
        vnc_listen: Some("127.0.0.1".into()),
        consoles: ConsoleConfig {
            spice_listen: Some("127.0.0.1".into()),
            serial: Some(("127.0.0.1".into(), (10000, 20000))),
            ..ConsoleConfig::default()
        },
        ..LibvirtConfig::default()
    };
    let d = LibvirtDriver::connect(cfg).unwrap();
    let caps = d.capabilities();
    assert!(
        caps.supports_vnc_console && caps.supports_spice_console && caps.supports_serial_console
    );
    let spec = InstanceSpec {
        uuid: format!("6a1f0c3e-0000-4d2b-8c1a-c0{:010x}", std::process::id()),
        name: "console-guest".into(),
        flavor_name: "m1.nano".into(),
        vcpus: 1,
        memory_mb: 128,
        root_gb: 0,
        image_path: Some(guest.join("base.qcow2").display().to_string()),
        kernel_path: Some(guest.join("vmlinuz").display().to_string()),
        ramdisk_path: Some(guest.join("initrd.img").display().to_string()),
        kernel_cmdline: Some("console=tty0 console=ttyS0".into()),
        ..InstanceSpec::default()
    };
    let _reap = Reap(spec.uuid.clone());
    let u = spec.uuid.clone();
    d.spawn(&spec).await.unwrap();
    // The console log keeps working with the TCP serial port (its <log>).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let log = d.get_console_output(&u).await.unwrap();
        if log.contains("NOVA-RS GUEST BOOTED") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no boot marker; log: {log}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // noVNC: the guest's RFB greeting, the negotiation, its ServerInit.
    let vnc = d.get_vnc_console(&u).await.unwrap();
    let pv = proxy(
        ProxyKind::NoVnc,
        Some("/usr/share/novnc"),
        "v",
        info("novnc", &vnc, "http://127.0.0.1/vnc_lite.html"),
    )
    .await;
    let mut ws = open(pv, "v").await;
    assert_eq!(read_n(&mut ws, 12).await, b"RFB 003.008\n");
    ws.send(Message::Binary(b"RFB 003.008\n".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(read_n(&mut ws, 2).await, [1, 1]);
    ws.send(Message::Binary(vec![1].into())).await.unwrap();
    assert_eq!(
        read_n(&mut ws, 4).await,
        [0, 0, 0, 0],
        "SecurityResult OK from QEMU"
    );
    ws.send(Message::Binary(vec![1].into())).await.unwrap();
    let init = read_n(&mut ws, 24).await;
    let (w, h) = (
        u16::from_be_bytes([init[0], init[1]]),
        u16::from_be_bytes([init[2], init[3]]),
    );
    assert!(w >= 320 && h >= 200, "a framebuffer of {w}x{h}");
    drop(ws);

    // SPICE: the server's link reply.
    let spice = d.get_spice_console(&u).await.unwrap();
    let ps = proxy(
        ProxyKind::SpiceHtml5,
        Some("/usr/share/spice-html5"),
        "s",
        info("spice-html5", &spice, "http://127.0.0.1/spice_auto.html"),
    )
    .await;
    let mut ws = open(ps, "s").await;
    let mut mess = b"REDQ".to_vec();
    mess.extend_from_slice(&2u32.to_le_bytes());
    mess.extend_from_slice(&2u32.to_le_bytes());
    mess.extend_from_slice(&18u32.to_le_bytes());
    mess.extend_from_slice(&0u32.to_le_bytes()); // connection id
    mess.extend_from_slice(&[1, 0]); // main channel, id 0
    mess.extend_from_slice(&0u32.to_le_bytes()); // common caps
    mess.extend_from_slice(&0u32.to_le_bytes()); // channel caps
    mess.extend_from_slice(&18u32.to_le_bytes()); // caps offset
    ws.send(Message::Binary(mess.into())).await.unwrap();
    let reply = read_n(&mut ws, 20).await;
    assert_eq!(&reply[..4], b"REDQ", "a SpiceLinkReply: {reply:?}");
    assert_eq!(
        u32::from_le_bytes(reply[4..8].try_into().unwrap()),
        2,
        "SPICE 2.x"
    );
    assert_eq!(
        u32::from_le_bytes(reply[16..20].try_into().unwrap()),
        0,
        "link error OK"
    );
    drop(ws);

    // Serial: a shell on ttyS0 answers.
    let serial = d.get_serial_console(&u).await.unwrap();
    assert!((10000..20000).contains(&serial.port), "{serial:?}");
    let pe = proxy(
        ProxyKind::Serial,
        None,
        "t",
        info("serial", &serial, "ws://127.0.0.1/"),
    )
    .await;
    let mut ws = open(pe, "t").await;
    ws.send(Message::Binary(
        b"\necho nova-$((6*7))-serial\n".to_vec().into(),
    ))
    .await
    .unwrap();
    let out = read_until(&mut ws, "nova-42-serial").await;
    assert!(out.contains("nova-42-serial"), "{out}");
    drop(ws);

    // Headless Chromium opens the noVNC page; its screenshot shows the
    // guest's console (not noVNC's empty grey screen). The first frame can
    // come after Chromium's time budget on a busy machine: a few tries.
    let shot = dir.join("novnc.png");
    let page = format!("http://{pv}/vnc_lite.html?path=%3Ftoken%3Dv&scale=true");
    let mut shares = (0.0, 0.0);
    for budget in [10_000, 20_000, 40_000] {
        let _ = std::fs::remove_file(&shot);
        let out = tokio::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1024,768",
            ])
            .arg(format!("--virtual-time-budget={budget}"))
            .arg(format!(
                "--user-data-dir={}",
                dir.join("chromium-profile").display()
            ))
            .arg(format!("--screenshot={}", shot.display()))
            .arg(&page)
            .output()
            .await
            .unwrap();
        assert!(
            shot.exists(),
            "chromium made no screenshot: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Ok(keep) = std::env::var("NOVA_RS_CONSOLE_SCREENSHOT") {
            std::fs::copy(&shot, keep).unwrap();
        }
        shares = console_shares(&shot);
        if shares.0 > 0.25 && shares.1 > 0.005 {
            break;
        }
    }
    let (black, light) = shares;
    assert!(
        black > 0.25 && light > 0.005,
        "the noVNC screenshot does not show the guest's console (black {black:.3}, text {light:.3}): {}",
        shot.display()
    );

    d.destroy(&u).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
