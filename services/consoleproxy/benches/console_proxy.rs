//! Bytes/s through a console proxy against a direct TCP copy of the same
//! stream, in the same run:
//!
//! * `direct`: a TCP client reads a console server's stream (a fake guest
//!   sending `--mib` MiB, then closing) straight from its port;
//! * `proxy`: a websocket client (binary subprotocol) reads the same
//!   stream through `nova-serialproxy`'s router (`nova_consoleproxy::app`,
//!   a fixed token) on the binaries' listener (`serve_tls`, plain TCP),
//!   which relays the TCP bytes into websocket frames; the client reads the socket as `direct` does and walks the
//!   frame headers in place (see [`proxied`]), so the difference is the
//!   proxy's.
//!
//! `--rounds` alternating runs of each; prints one JSON line per run (with
//! the process's CPU time, getrusage: guest, client and, for `proxy`, the
//! proxy, all in this process) and a summary with the medians, the ratio
//! proxy/direct (issue 17's target: at least 80 %) and the CPU time per
//! GiB of each path (less distorted than bytes/s by a loaded box).
//! `--base64` uses websockify's base64 mode.
//!
//! Run with: cargo bench -p nova-consoleproxy --bench console_proxy -- [--mib N] [--rounds N] [--base64]

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use nova_consoleproxy::fake_guest::{self, FakeConsole};
use nova_consoleproxy::{ConnectInfo, ProxyConfig, ProxyKind, StaticSource, app};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// The websocket client: it frames nothing and copies nothing, it reads
/// the socket into one buffer as [`direct`] does and walks the frame
/// headers in place, so what the two paths differ by is the proxy (a
/// general websocket library's client costs as much as the proxy: the
/// bench would measure it). Counts the payload bytes (decoded, for
/// base64 text frames) up to the close frame.
async fn proxied(proxy: SocketAddr, base64: bool) -> u64 {
    let mut s = tokio::net::TcpStream::connect(proxy).await.unwrap();
    s.set_nodelay(true).unwrap();
    let proto = if base64 { "base64" } else { "binary" };
    s.write_all(
        format!(
            "GET /?token=bench HTTP/1.1\r\nHost: {proxy}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {proto}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0;
    let body = loop {
        let k = s.read(&mut buf[have..]).await.unwrap();
        assert!(k > 0, "the proxy closed during the handshake");
        have += k;
        if let Some(i) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    assert!(
        buf.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&buf[..body])
    );
    let mut frames = Frames::default();
    if frames.feed(&buf[body..have]) {
        return frames.bytes;
    }
    loop {
        let k = s.read(&mut buf).await.unwrap();
        if k == 0 || frames.feed(&buf[..k]) {
            return frames.bytes;
        }
    }
}

/// Server frames (unmasked) walked as they arrive.
#[derive(Default)]
struct Frames {
    /// The header being read.
    head: Vec<u8>,
    /// Payload bytes left in the current frame.
    left: u64,
    /// Its opcode.
    opcode: u8,
    /// The last two payload bytes of a text frame (its base64 padding).
    tail: [u8; 2],
    /// The current text frame's length.
    text: u64,
    /// Payload bytes counted (decoded).
    bytes: u64,
}

impl Frames {
    /// Takes `data`; true at the close frame.
    fn feed(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            if self.left > 0 {
                let k = (self.left as usize).min(data.len());
                let payload = &data[..k];
                match self.opcode {
                    2 => self.bytes += k as u64,
                    1 => {
                        self.text += k as u64;
                        for &b in &payload[k.saturating_sub(2)..] {
                            self.tail = [self.tail[1], b];
                        }
                    }
                    _ => {}
                }
                self.left -= k as u64;
                data = &data[k..];
                if self.left == 0 && self.opcode == 1 {
                    let pad = self.tail.iter().filter(|&&b| b == b'=').count() as u64;
                    self.bytes += self.text / 4 * 3 - pad;
                    self.text = 0;
                }
                continue;
            }
            self.head.push(data[0]);
            data = &data[1..];
            let need = match self.head.get(1).map(|b| b & 0x7f) {
                None => continue,
                Some(126) => 4,
                Some(127) => 10,
                Some(_) => 2,
            };
            if self.head.len() < need {
                continue;
            }
            self.opcode = self.head[0] & 0x0f;
            self.left = match need {
                4 => u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
                10 => u64::from_be_bytes(self.head[2..10].try_into().unwrap()),
                _ => u64::from(self.head[1] & 0x7f),
            };
            self.head.clear();
            self.tail = [0, 0];
            if self.opcode == 8 {
                return true;
            }
        }
        false
    }
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
    let stop = cfg.stop.clone();
    tokio::spawn(nova_consoleproxy::serve_tls(
        l,
        app(cfg, source),
        nova_consoleproxy::TlsOptions::default(),
        stop,
    ));

    let (mut d, mut p) = (Vec::new(), Vec::new());
    let (mut dc, mut pc) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for path in ["direct", "proxy"] {
            let (t, cpu) = (Instant::now(), cpu_seconds());
            let n = if path == "direct" {
                direct(guest).await
            } else {
                proxied(proxy, base64).await
            };
            assert_eq!(n, bytes, "{path}: the whole stream");
            let rate = n as f64 / t.elapsed().as_secs_f64();
            let cpu = cpu_seconds() - cpu;
            println!(
                r#"{{"round": {round}, "path": "{path}", "bytes": {n}, "mib_per_s": {:.1}, "cpu_ms": {:.1}}}"#,
                rate / 1048576.0,
                cpu * 1e3
            );
            let per_gib = cpu * (1u64 << 30) as f64 / n as f64;
            if path == "direct" {
                d.push(rate);
                dc.push(per_gib);
            } else {
                p.push(rate);
                pc.push(per_gib);
            }
        }
    }
    let (dm, pm) = (median(&mut d), median(&mut p));
    println!(
        "console stream of {mib} MiB, median of {rounds}: direct TCP {:.0} MiB/s | through the proxy ({}) {:.0} MiB/s | {:.0} % (target >= 80 %) | CPU per GiB: direct {:.0} ms, proxy {:.0} ms",
        dm / 1048576.0,
        if base64 { "base64" } else { "binary" },
        pm / 1048576.0,
        100.0 * pm / dm,
        median(&mut dc) * 1e3,
        median(&mut pc) * 1e3,
    );
}

/// This process's CPU time so far (user + system), in seconds.
fn cpu_seconds() -> f64 {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 * 1e-6;
    secs(u.user_time()) + secs(u.system_time())
}
