//! The host's network tools (`ip`, `dnsmasq`) as subprocesses, and the CIDR
//! arithmetic the datapath needs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, bail};
use tokio::process::Command;

/// Runs `prog args…`; its stdout, or an error carrying its stderr.
pub(crate) async fn run(prog: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {prog}"))?;
    if !out.status.success() {
        bail!(
            "{prog} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip args…` (iproute2).
pub(crate) async fn ip(args: &[&str]) -> anyhow::Result<String> {
    run("ip", args).await
}

/// Whether the host namespace has a link `name`.
pub(crate) fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Whether the named network namespace exists (`ip netns` keeps them in /run/netns).
pub(crate) fn netns_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// Whether namespace `ns` has a link `name`.
pub(crate) async fn link_exists_in(ns: &str, name: &str) -> bool {
    ip(&["-n", ns, "link", "show", "dev", name]).await.is_ok()
}

/// Keeps the host's IPv6 stack off a link (no link-local address on a
/// bridge or veth end that only carries guest traffic).
pub(crate) fn disable_ipv6(dev: &str) {
    let p = Path::new("/proc/sys/net/ipv6/conf")
        .join(dev)
        .join("disable_ipv6");
    if p.exists()
        && let Err(e) = std::fs::write(&p, "1")
    {
        tracing::debug!(dev, error = %e, "cannot disable IPv6");
    }
}

/// An IP network: its (masked) address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    pub(crate) addr: IpAddr,
    pub(crate) prefix: u8,
}

impl Cidr {
    /// `a.b.c.d/n` or `x::/n`; host bits are masked off.
    pub(crate) fn parse(s: &str) -> anyhow::Result<Cidr> {
        let (a, p) = s
            .trim()
            .split_once('/')
            .with_context(|| format!("{s:?} is not a CIDR"))?;
        let addr: IpAddr = a.parse().with_context(|| format!("{s:?}: bad address"))?;
        let prefix: u8 = p.parse().with_context(|| format!("{s:?}: bad prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            bail!("{s:?}: prefix longer than {max}");
        }
        let addr = match addr {
            IpAddr::V4(v) => IpAddr::V4(Ipv4Addr::from(u32::from(v) & mask32(prefix))),
            IpAddr::V6(v) => IpAddr::V6(Ipv6Addr::from(u128::from(v) & mask128(prefix))),
        };
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` lies in this network.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => u32::from(a) & mask32(self.prefix) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(a)) => u128::from(a) & mask128(self.prefix) == u128::from(n),
            _ => false,
        }
    }

    /// The last usable host address (IPv4: before the broadcast address).
    pub(crate) fn last_host(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(n) => {
                let bcast = u32::from(n) | !mask32(self.prefix);
                IpAddr::V4(Ipv4Addr::from(if self.prefix >= 31 {
                    bcast
                } else {
                    bcast - 1
                }))
            }
            IpAddr::V6(n) => {
                let last = u128::from(n) | !mask128(self.prefix);
                IpAddr::V6(Ipv6Addr::from(if self.prefix >= 127 {
                    last
                } else {
                    last - 1
                }))
            }
        }
    }

    /// The IPv4 netmask (`255.255.255.0`).
    pub(crate) fn netmask_v4(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask32(self.prefix))
    }

    /// How many addresses the network holds (saturating).
    pub(crate) fn size(&self) -> u64 {
        let bits = if self.addr.is_ipv4() { 32 } else { 128 } - u32::from(self.prefix);
        1u64.checked_shl(bits).unwrap_or(u64::MAX)
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_are_parsed_masked_and_measured() {
        let c = Cidr::parse("10.1.2.77/24").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.addr,
            "10.1.2.0"
                .parse::<IpAddr>()
                .unwrap_or_else(|e| panic!("{e}"))
        );
        assert_eq!(c.prefix, 24);
        assert_eq!(c.netmask_v4(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(c.last_host().to_string(), "10.1.2.254");
        assert_eq!(c.size(), 256);
        assert!(c.contains("10.1.2.9".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(!c.contains("10.1.3.9".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(!c.contains("fd00::1".parse().unwrap_or_else(|e| panic!("{e}"))));
        let z = Cidr::parse("0.0.0.0/0").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(z.netmask_v4(), Ipv4Addr::UNSPECIFIED);
        assert!(z.contains("192.0.2.1".parse().unwrap_or_else(|e| panic!("{e}"))));
        let v6 = Cidr::parse("fd00:1::5/64").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v6.addr.to_string(), "fd00:1::");
        assert_eq!(v6.last_host().to_string(), "fd00:1::ffff:ffff:ffff:fffe");
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "x/24",
            "10.0.0.0/-1",
            "fd00::/129",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
