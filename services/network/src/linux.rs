//! [`LinuxDatapath`]: what Neutron's Linux bridge and DHCP agents build on a
//! host, made with iproute2 and dnsmasq.
//!
//! Per network `N` (id `<id>`, `<id11>` its first 11 characters):
//! * the bridge `brq<id11>` (no address, IPv6 off: the host's own stack
//!   never takes part in a guest network);
//! * the namespace `qdhcp-<id>`, joined to the bridge by the veth pair
//!   `dhcp<id11>` (host side, a bridge port) / `ns-<id11>` (inside), which
//!   holds the subnet's gateway address (or, without a gateway, the
//!   subnet's last host address) and 169.254.169.254/32;
//! * with DHCP, a dnsmasq inside the namespace answering only the hosts of
//!   `<state_dir>/<id>/host` (`mac,hostname,ip` lines; `set_hosts` rewrites
//!   them and sends SIGHUP), its pid file, leases and log beside it;
//! * with a metadata upstream, the forwarder of `metadata_proxy` on
//!   169.254.169.254:80 inside the namespace.
//!
//! Every step checks what exists first, so running `ensure_network` again
//! (after a crash half-way, a changed subnet, a dnsmasq that died) converges
//! on the description; `delete_network` removes whatever of it exists.

use std::collections::HashMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::datapath::{Datapath, HostEntry, NetworkSpec, bridge_name};
use crate::metadata_proxy::{self, METADATA_ADDR, MetadataProxy};
use crate::netcmd::{Cidr, disable_ipv6, ip, link_exists, link_exists_in, netns_exists};

/// A network's DHCP namespace: `qdhcp-<network id>` (Neutron's name).
pub fn namespace_name(network_id: Uuid) -> String {
    format!("qdhcp-{network_id}")
}

fn short(network_id: Uuid) -> String {
    network_id.to_string()[..11].to_owned()
}

/// The veth pair joining the namespace to the bridge: (host side, namespace side).
fn veth_names(network_id: Uuid) -> (String, String) {
    let s = short(network_id);
    (format!("dhcp{s}"), format!("ns-{s}"))
}

/// How a [`LinuxDatapath`] runs.
#[derive(Debug, Clone)]
pub struct LinuxDatapathConfig {
    /// Where each network keeps its dnsmasq files (`<state_dir>/<network id>/`).
    pub state_dir: PathBuf,
    /// nova-api-metadata's base URL (`http://127.0.0.1:8775`); `None`: no
    /// metadata forwarder.
    pub metadata_upstream: Option<String>,
    /// DHCP lease time (Neutron's `dhcp_lease_duration`, 86400 s).
    pub lease_secs: u32,
    /// The DNS domain dnsmasq gives guests (Neutron's `dns_domain`).
    pub dns_domain: String,
    /// The dnsmasq binary.
    pub dnsmasq: PathBuf,
}

impl Default for LinuxDatapathConfig {
    fn default() -> Self {
        LinuxDatapathConfig {
            state_dir: PathBuf::from("/var/lib/nova-rs/network"),
            metadata_upstream: Some("http://127.0.0.1:8775".into()),
            lease_secs: 86400,
            dns_domain: "openstacklocal".into(),
            dnsmasq: PathBuf::from("dnsmasq"),
        }
    }
}

/// Neutron's DHCP agent and Linux bridge plumbing on this host (needs root).
#[derive(Debug)]
pub struct LinuxDatapath {
    cfg: LinuxDatapathConfig,
    /// The running metadata forwarders, by network; the lock also
    /// serializes the datapath's changes.
    proxies: Mutex<HashMap<Uuid, MetadataProxy>>,
}

impl LinuxDatapath {
    /// A datapath keeping its state under `cfg.state_dir`.
    pub fn new(cfg: LinuxDatapathConfig) -> Self {
        LinuxDatapath {
            cfg,
            proxies: Mutex::new(HashMap::new()),
        }
    }

    /// The directory of a network's dnsmasq files.
    pub fn network_dir(&self, network_id: Uuid) -> PathBuf {
        self.cfg.state_dir.join(network_id.to_string())
    }

    /// The pid of the network's dnsmasq, when one runs.
    pub fn dnsmasq_pid(&self, network_id: Uuid) -> Option<u32> {
        let pid = read_pid(&self.network_dir(network_id).join("pid"))?;
        alive(pid).then_some(pid)
    }

    async fn ensure_bridge(&self, net: &NetworkSpec) -> anyhow::Result<()> {
        let br = &net.bridge;
        if !link_exists(br)
            && let Err(e) = ip(&["link", "add", "name", br, "type", "bridge"]).await
            && !link_exists(br)
        {
            return Err(e);
        }
        disable_ipv6(br);
        let mtu = net.mtu.to_string();
        ip(&[
            "link",
            "set",
            "dev",
            br,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ])
        .await?;
        ip(&["link", "set", "dev", br, "mtu", &mtu, "up"]).await?;
        Ok(())
    }

    async fn ensure_namespace(&self, net: &NetworkSpec) -> anyhow::Result<()> {
        let ns = namespace_name(net.network_id);
        if !netns_exists(&ns)
            && let Err(e) = ip(&["netns", "add", &ns]).await
            && !netns_exists(&ns)
        {
            return Err(e);
        }
        ip(&["-n", &ns, "link", "set", "dev", "lo", "up"]).await?;
        let (host, inner) = veth_names(net.network_id);
        let mtu = net.mtu.to_string();
        if !link_exists(&host) {
            // A namespace end left in the host by a crash between the
            // pair's creation and its move has lost its peer: drop it.
            if link_exists(&inner) {
                let _ = ip(&["link", "del", "dev", &inner]).await;
            }
            if link_exists_in(&ns, &inner).await {
                let _ = ip(&["-n", &ns, "link", "del", "dev", &inner]).await;
            }
            ip(&[
                "link", "add", "name", &host, "mtu", &mtu, "type", "veth", "peer", "name", &inner,
                "mtu", &mtu,
            ])
            .await?;
        }
        if link_exists(&inner) {
            ip(&["link", "set", "dev", &inner, "netns", &ns]).await?;
        }
        disable_ipv6(&host);
        ip(&[
            "link",
            "set",
            "dev",
            &host,
            "master",
            &net.bridge,
            "mtu",
            &mtu,
            "up",
        ])
        .await?;
        ip(&["-n", &ns, "link", "set", "dev", &inner, "mtu", &mtu, "up"]).await?;
        Ok(())
    }

    /// The namespace's addresses: exactly `want` (others, e.g. of an
    /// earlier subnet, are removed).
    async fn ensure_addresses(&self, net: &NetworkSpec, want: &[String]) -> anyhow::Result<()> {
        let ns = namespace_name(net.network_id);
        let (_, inner) = veth_names(net.network_id);
        for a in want {
            ip(&["-n", &ns, "addr", "replace", a, "dev", &inner]).await?;
        }
        let shown = ip(&["-j", "-n", &ns, "addr", "show", "dev", &inner]).await?;
        let shown: serde_json::Value = serde_json::from_str(&shown).context("ip -j addr show")?;
        let infos = shown
            .get(0)
            .and_then(|l| l.get("addr_info"))
            .and_then(|a| a.as_array())
            .cloned()
            .unwrap_or_default();
        for i in infos {
            let (Some(local), Some(len), Some(scope)) = (
                i.get("local").and_then(|v| v.as_str()),
                i.get("prefixlen").and_then(serde_json::Value::as_u64),
                i.get("scope").and_then(|v| v.as_str()),
            ) else {
                continue;
            };
            let have = format!("{local}/{len}");
            if scope != "link" && !want.contains(&have) {
                ip(&["-n", &ns, "addr", "del", &have, "dev", &inner]).await?;
            }
        }
        Ok(())
    }

    fn dnsmasq_args(&self, net: &NetworkSpec, cidr: &Cidr, own: IpAddr) -> Vec<String> {
        let dir = self.network_dir(net.network_id);
        let f = |n: &str| dir.join(n).display().to_string();
        let (_, inner) = veth_names(net.network_id);
        let tag = format!("subnet-{}", short(net.network_id));
        let mut a = vec![
            "--no-hosts".to_owned(),
            "--no-resolv".to_owned(),
            "--conf-file=/dev/null".to_owned(),
            format!("--pid-file={}", f("pid")),
            format!("--dhcp-hostsfile={}", f("host")),
            format!("--dhcp-leasefile={}", f("leases")),
            format!("--log-facility={}", f("dnsmasq.log")),
            "--log-dhcp".to_owned(),
            format!("--interface={inner}"),
            "--except-interface=lo".to_owned(),
            "--bind-interfaces".to_owned(),
            format!(
                "--dhcp-range=set:{tag},{},static,{},{}s",
                cidr.addr,
                cidr.netmask_v4(),
                self.cfg.lease_secs
            ),
            format!("--dhcp-lease-max={}", cidr.size().min(1 << 24)),
            format!("--domain={}", self.cfg.dns_domain),
            format!("--dhcp-option-force=tag:{tag},option:mtu,{}", net.mtu),
        ];
        match net.gateway_ip {
            Some(gw) => a.push(format!("--dhcp-option=tag:{tag},option:router,{gw}")),
            None => {
                // No router: the guest still reaches metadata through the
                // namespace's own address (Neutron's isolated metadata).
                a.push(format!("--dhcp-option=tag:{tag},option:router"));
                if self.cfg.metadata_upstream.is_some() {
                    a.push(format!(
                        "--dhcp-option=tag:{tag},option:classless-static-route,{METADATA_ADDR}/32,{own}"
                    ));
                }
            }
        }
        a
    }

    async fn ensure_dnsmasq(&self, net: &NetworkSpec, args: &[String]) -> anyhow::Result<()> {
        let dir = self.network_dir(net.network_id);
        let pid_file = dir.join("pid");
        if let Some(pid) = read_pid(&pid_file).filter(|p| alive(*p)) {
            if cmdline(pid).is_some_and(|c| c.get(1..) == Some(args)) {
                return Ok(());
            }
            // Another configuration (or a recycled pid that is not ours:
            // then its command line does not name our pid file).
            if cmdline(pid).is_some_and(|c| c.iter().any(|a| a.contains(&*dir.to_string_lossy()))) {
                stop(pid).await;
            }
        }
        let hosts = dir.join("host");
        if !hosts.exists() {
            write_atomic(&hosts, "")?;
        }
        let err_path = dir.join("dnsmasq.err");
        let err = fs::File::create(&err_path)?;
        let ns = namespace_name(net.network_id);
        let status = tokio::process::Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(&self.cfg.dnsmasq)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .status()
            .await
            .with_context(|| format!("cannot run {}", self.cfg.dnsmasq.display()))?;
        if !status.success() {
            let msg = fs::read_to_string(&err_path).unwrap_or_default();
            bail!(
                "dnsmasq for network {} failed: {}",
                net.network_id,
                msg.trim()
            );
        }
        for _ in 0..50 {
            if read_pid(&pid_file).is_some_and(alive) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "dnsmasq for network {} started but wrote no pid file",
            net.network_id
        )
    }

    async fn stop_dnsmasq(&self, network_id: Uuid) {
        let dir = self.network_dir(network_id);
        if let Some(pid) = read_pid(&dir.join("pid")).filter(|p| alive(*p))
            && cmdline(pid).is_some_and(|c| c.iter().any(|a| a.contains(&*dir.to_string_lossy())))
        {
            stop(pid).await;
        }
        let _ = fs::remove_file(dir.join("pid"));
    }
}

#[async_trait]
impl Datapath for LinuxDatapath {
    async fn ensure_network(&self, net: &NetworkSpec) -> anyhow::Result<()> {
        let cidr = Cidr::parse(&net.cidr)?;
        if net.bridge.is_empty() || net.bridge.len() > 15 {
            bail!("bad bridge name {:?}", net.bridge);
        }
        if net.mtu < 68 {
            bail!("MTU {} is below IPv4's minimum of 68", net.mtu);
        }
        let own = net.gateway_ip.unwrap_or_else(|| cidr.last_host());
        if !cidr.contains(own) {
            bail!("gateway {own} is outside {}", net.cidr);
        }
        let mut proxies = self.proxies.lock().await;
        let ns = namespace_name(net.network_id);
        fs::create_dir_all(self.network_dir(net.network_id))?;
        self.ensure_bridge(net).await?;
        self.ensure_namespace(net).await?;
        let mut want = vec![format!("{own}/{}", cidr.prefix)];
        if self.cfg.metadata_upstream.is_some() {
            want.push(format!("{METADATA_ADDR}/32"));
        }
        self.ensure_addresses(net, &want).await?;
        if net.dhcp && cidr.addr.is_ipv4() {
            let args = self.dnsmasq_args(net, &cidr, own);
            self.ensure_dnsmasq(net, &args).await?;
        } else {
            if net.dhcp {
                tracing::warn!(network = %net.network_id, cidr = net.cidr, "DHCPv6 is not served");
            }
            self.stop_dnsmasq(net.network_id).await;
        }
        match &self.cfg.metadata_upstream {
            Some(up) => {
                if !proxies.get(&net.network_id).is_some_and(|p| p.serves(&ns)) {
                    proxies.remove(&net.network_id);
                    let p = metadata_proxy::start(&ns, net.network_id, up).await?;
                    proxies.insert(net.network_id, p);
                }
            }
            None => {
                proxies.remove(&net.network_id);
            }
        }
        tracing::info!(network = %net.network_id, bridge = net.bridge, namespace = ns, "network datapath ready");
        Ok(())
    }

    async fn set_hosts(&self, network_id: Uuid, hosts: &[HostEntry]) -> anyhow::Result<()> {
        let _guard = self.proxies.lock().await;
        let mut text = String::new();
        for h in hosts {
            text.push_str(&host_line(h)?);
            text.push('\n');
        }
        let dir = self.network_dir(network_id);
        fs::create_dir_all(&dir)?;
        write_atomic(&dir.join("host"), &text)?;
        if let Some(pid) = read_pid(&dir.join("pid")).filter(|p| alive(*p))
            && cmdline(pid).is_some_and(|c| c.iter().any(|a| a.contains(&*dir.to_string_lossy())))
        {
            kill(Pid::from_raw(pid as i32), Signal::SIGHUP)
                .with_context(|| format!("cannot signal dnsmasq {pid}"))?;
        }
        Ok(())
    }

    async fn delete_network(&self, network_id: Uuid) -> anyhow::Result<()> {
        let mut proxies = self.proxies.lock().await;
        proxies.remove(&network_id);
        self.stop_dnsmasq(network_id).await;
        let ns = namespace_name(network_id);
        if netns_exists(&ns) {
            // Whatever else still runs in it (a dnsmasq whose pid file was lost).
            if let Ok(pids) = ip(&["netns", "pids", &ns]).await {
                for pid in pids.split_whitespace().filter_map(|p| p.parse().ok()) {
                    stop(pid).await;
                }
            }
            ip(&["netns", "del", &ns]).await?;
        }
        let (host, inner) = veth_names(network_id);
        for dev in [host, inner, bridge_name(network_id)] {
            if link_exists(&dev)
                && let Err(e) = ip(&["link", "del", "dev", &dev]).await
                && link_exists(&dev)
            {
                return Err(e);
            }
        }
        let dir = self.network_dir(network_id);
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
        }
        tracing::info!(network = %network_id, "network datapath removed");
        Ok(())
    }
}

/// A `--dhcp-hostsfile` line: `mac,hostname,ip` (IPv6 in brackets).
fn host_line(h: &HostEntry) -> anyhow::Result<String> {
    let mac_ok = h.mac.len() == 17
        && h.mac.split(':').count() == 6
        && h.mac
            .split(':')
            .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
    if !mac_ok {
        bail!("port {}: bad MAC address {:?}", h.port_id, h.mac);
    }
    // nova's sanitized host names: letters, digits and hyphens.
    let name: String = h
        .hostname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_matches('-')
        .chars()
        .take(63)
        .collect();
    let ip = match h.ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    Ok(if name.is_empty() {
        format!("{},{ip}", h.mac.to_ascii_lowercase())
    } else {
        format!("{},{name},{ip}", h.mac.to_ascii_lowercase())
    })
}

fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).with_context(|| format!("{}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("{}", path.display()))?;
    Ok(())
}

fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` is a live process (a zombie is not).
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// SIGTERM, then SIGKILL if it is still there after 5 s.
async fn stop(pid: u32) {
    let p = Pid::from_raw(pid as i32);
    let _ = kill(p, Signal::SIGTERM);
    for _ in 0..50 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = kill(p, Signal::SIGKILL);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_lines_are_dnsmasqs() {
        let h = HostEntry {
            port_id: Uuid::nil(),
            mac: "FA:16:3E:00:00:01".into(),
            ip: "10.0.0.5".parse().unwrap_or_else(|e| panic!("{e}")),
            hostname: "web 1.example".into(),
        };
        assert_eq!(
            host_line(&h).unwrap_or_else(|e| panic!("{e}")),
            "fa:16:3e:00:00:01,web-1-example,10.0.0.5"
        );
        let v6 = HostEntry {
            ip: "fd00::5".parse().unwrap_or_else(|e| panic!("{e}")),
            hostname: String::new(),
            ..h.clone()
        };
        assert_eq!(
            host_line(&v6).unwrap_or_else(|e| panic!("{e}")),
            "fa:16:3e:00:00:01,[fd00::5]"
        );
        for bad in [
            "fa:16:3e:00:00",
            "fa:16:3e:00:00:0g",
            "fa-16-3e-00-00-01",
            "x,y",
        ] {
            let b = HostEntry {
                mac: bad.into(),
                ..h.clone()
            };
            assert!(host_line(&b).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_follow_neutron() {
        let id: Uuid = "6a1f0c3e-0000-4d2b-8c1a-0123456789ab"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bridge_name(id), "brq6a1f0c3e-00");
        assert_eq!(
            namespace_name(id),
            "qdhcp-6a1f0c3e-0000-4d2b-8c1a-0123456789ab"
        );
        let (h, n) = veth_names(id);
        assert_eq!(
            (h.as_str(), n.as_str()),
            ("dhcp6a1f0c3e-00", "ns-6a1f0c3e-00")
        );
        assert!(h.len() <= 15 && n.len() <= 15);
    }
}
