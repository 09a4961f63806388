//! What the datapath tests share: preconditions, names, an echoing
//! metadata upstream, shell helpers and cleanup.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Uri};
use nova_network::{LinuxDatapath, LinuxDatapathConfig, NetworkSpec, bridge_name};
use uuid::Uuid;

/// Fails loudly when the host cannot run these tests.
pub(crate) fn require_host() {
    assert!(
        nix_is_root(),
        "the datapath tests need root (bridges, namespaces, dnsmasq)"
    );
    for tool in ["ip", "dnsmasq", "ping", "busybox", "curl"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool} >/dev/null")])
                .status()
                .is_ok_and(|s| s.success()),
            "{tool} is missing: scripts/test installs dnsmasq-base iproute2 iputils-ping busybox"
        );
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs a command; its stdout, or a panic with its stderr.
pub(crate) fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a command succeeds.
pub(crate) fn ok(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A network of the test's own: a fresh id and a /24 picked from it.
pub(crate) fn network(mtu: u32) -> NetworkSpec {
    let id = Uuid::new_v4();
    let b = id.as_bytes();
    let prefix = format!("10.{}.{}", 100 + b[0] % 100, b[1]);
    NetworkSpec {
        network_id: id,
        bridge: bridge_name(id),
        cidr: format!("{prefix}.0/24"),
        gateway_ip: Some(format!("{prefix}.1").parse().unwrap()),
        dhcp: true,
        mtu,
    }
}

/// The first three octets of a /24 network's CIDR.
pub(crate) fn prefix24(net: &NetworkSpec) -> String {
    net.cidr.trim_end_matches(".0/24").to_owned()
}

/// The datapath under test, its state in a directory of the test's own.
pub(crate) fn datapath(tag: &str, upstream: Option<String>) -> (LinuxDatapath, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "nova-network-{tag}-{}-{}",
        std::process::id(),
        Uuid::new_v4().simple()
    ));
    let dp = LinuxDatapath::new(LinuxDatapathConfig {
        state_dir: dir.clone(),
        metadata_upstream: upstream,
        ..LinuxDatapathConfig::default()
    });
    (dp, dir)
}

/// A stand-in for nova-api-metadata: answers with what it was asked and
/// by whom, and (`/openstack/latest/meta_data.json`) with the uuid of the
/// instance whose fixed address is `X-Forwarded-For`, as nova's lookup by
/// fixed address does.
#[derive(Debug, Clone, Default)]
pub(crate) struct Upstream {
    pub(crate) by_ip: Arc<Mutex<HashMap<String, String>>>,
}

impl Upstream {
    pub(crate) async fn start(&self) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let app = Router::new().fallback(answer).with_state(self.clone());
        tokio::spawn(async move {
            axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>())
                .await
                .unwrap();
        });
        format!("http://{addr}")
    }
}

async fn answer(
    State(u): State<Upstream>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> axum::Json<serde_json::Value> {
    let h = |n: &str| {
        headers
            .get_all(n)
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };
    let ff = h("x-forwarded-for");
    let uuid = ff
        .first()
        .and_then(|ip| u.by_ip.lock().unwrap().get(ip).cloned());
    axum::Json(serde_json::json!({
        "uuid": uuid,
        "path": uri.to_string(),
        "forwarded_for": ff,
        "network": h("x-neutron-network-id"),
        "instance_id": h("x-instance-id"),
        "peer": peer.ip().to_string(),
    }))
}

/// Removes whatever a test made, also when it fails half-way.
#[derive(Debug, Default)]
pub(crate) struct Cleanup(pub(crate) Vec<String>);

impl Cleanup {
    pub(crate) fn network(&mut self, id: Uuid, state: &std::path::Path) {
        let ns = format!("qdhcp-{id}");
        let s = &id.to_string()[..11];
        self.0.push(format!(
            "for p in $(ip netns pids {ns} 2>/dev/null); do kill -9 $p; done; ip netns del {ns}; \
             ip link del dhcp{s}; ip link del brq{s}; rm -rf {}",
            state.display()
        ));
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in self.0.iter().rev() {
            let _ = Command::new("sh")
                .args(["-c", &format!("{{ {c}; }} >/dev/null 2>&1")])
                .status();
        }
    }
}
