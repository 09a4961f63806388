//! Addresses: CIDRs, allocation pools, the next free fixed IP, and
//! Neutron's MAC addresses (`fa:16:3e:xx:xx:xx`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A parsed CIDR (`10.0.0.0/24`, `fd00::/64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address (host bits cleared).
    pub net: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v4: bool, n: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

impl Cidr {
    /// Parses `addr/prefix`; host bits must be clear unless `lenient`.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not a valid IP subnet"))?;
        let ip: IpAddr = a
            .parse()
            .map_err(|_| format!("'{s}' is not a valid IP subnet"))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| format!("'{s}' is not a valid IP subnet"))?;
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        if prefix > bits {
            return Err(format!("'{s}' is not a valid IP subnet"));
        }
        let c = Cidr { net: ip, prefix };
        let net = from_u128(ip.is_ipv4(), to_u128(ip) & c.mask());
        Ok(Cidr { net, prefix })
    }

    /// 4 or 6.
    pub fn version(&self) -> u8 {
        if self.net.is_ipv4() { 4 } else { 6 }
    }

    fn bits(&self) -> u8 {
        if self.net.is_ipv4() { 32 } else { 128 }
    }

    fn mask(&self) -> u128 {
        let host = self.bits() - self.prefix;
        let all = if self.bits() == 32 {
            u32::MAX as u128
        } else {
            u128::MAX
        };
        if host >= 128 {
            0
        } else {
            all & !((1u128 << host) - 1) & all
        }
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.net.is_ipv4() && (to_u128(ip) & self.mask()) == to_u128(self.net)
    }

    /// The first and last address.
    pub fn range(&self) -> (IpAddr, IpAddr) {
        let first = to_u128(self.net);
        let host = self.bits() - self.prefix;
        let last = if host >= 128 {
            u128::MAX
        } else {
            first | ((1u128 << host) - 1)
        };
        (self.net, from_u128(self.net.is_ipv4(), last))
    }

    /// Neutron's default gateway: the first host address.
    pub fn default_gateway(&self) -> Option<IpAddr> {
        let (first, last) = self.range();
        let g = to_u128(first) + 1;
        (g < to_u128(last)).then(|| from_u128(self.net.is_ipv4(), g))
    }

    /// Neutron's default allocation pools: every host address (IPv4 without
    /// the network and broadcast addresses; IPv6 without the subnet-router
    /// anycast address) except the gateway.
    pub fn default_pools(&self, gateway: Option<IpAddr>) -> Vec<(IpAddr, IpAddr)> {
        let (first, last) = self.range();
        let v4 = self.net.is_ipv4();
        let lo = to_u128(first) + 1;
        let hi = if v4 && self.prefix < 31 {
            to_u128(last) - 1
        } else {
            to_u128(last)
        };
        if lo > hi {
            return vec![];
        }
        match gateway.map(to_u128).filter(|g| (lo..=hi).contains(g)) {
            None => vec![(from_u128(v4, lo), from_u128(v4, hi))],
            Some(g) => {
                let mut out = vec![];
                if g > lo {
                    out.push((from_u128(v4, lo), from_u128(v4, g - 1)));
                }
                if g < hi {
                    out.push((from_u128(v4, g + 1), from_u128(v4, hi)));
                }
                out
            }
        }
    }
}

/// The first address of `pools` not in `used` (None: the pools are full).
pub fn next_free(
    pools: &[(IpAddr, IpAddr)],
    used: &std::collections::BTreeSet<IpAddr>,
) -> Option<IpAddr> {
    for (s, e) in pools {
        let v4 = s.is_ipv4();
        let (mut n, end) = (to_u128(*s), to_u128(*e));
        // Bounded: a pool is walked only as far as the addresses in use.
        let mut steps = 0usize;
        while n <= end && steps <= used.len() {
            let ip = from_u128(v4, n);
            if !used.contains(&ip) {
                return Some(ip);
            }
            n += 1;
            steps += 1;
        }
    }
    None
}

/// Whether `ip` is inside one of `pools`.
pub fn in_pools(pools: &[(IpAddr, IpAddr)], ip: IpAddr) -> bool {
    pools.iter().any(|(s, e)| {
        s.is_ipv4() == ip.is_ipv4() && (to_u128(*s)..=to_u128(*e)).contains(&to_u128(ip))
    })
}

/// A random MAC with Neutron's default base `fa:16:3e`.
pub fn random_mac() -> String {
    let b = uuid::Uuid::new_v4();
    let b = b.as_bytes();
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// Whether `s` is a MAC address (`aa:bb:cc:dd:ee:ff`, unicast).
pub fn valid_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
        && u8::from_str_radix(parts[0], 16).is_ok_and(|b| b & 1 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_defaults_leave_out_network_broadcast_and_gateway() {
        let c = Cidr::parse("10.0.0.0/24").unwrap();
        let gw = c.default_gateway();
        assert_eq!(gw, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(
            c.default_pools(gw),
            vec![("10.0.0.2".parse().unwrap(), "10.0.0.254".parse().unwrap())]
        );
        let mut used = std::collections::BTreeSet::new();
        used.insert("10.0.0.2".parse().unwrap());
        assert_eq!(
            next_free(&c.default_pools(gw), &used),
            Some("10.0.0.3".parse().unwrap())
        );
        assert!(c.contains("10.0.0.77".parse().unwrap()));
        assert!(!c.contains("10.0.1.1".parse().unwrap()));
    }

    #[test]
    fn host_bits_are_cleared_and_bad_cidrs_refused() {
        assert_eq!(
            Cidr::parse("192.168.7.9/16").unwrap().net,
            "192.168.0.0".parse::<IpAddr>().unwrap()
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0.0").is_err());
        assert!(Cidr::parse("x/8").is_err());
    }

    #[test]
    fn ipv6_and_a_full_pool() {
        let c = Cidr::parse("fd00::/64").unwrap();
        assert_eq!(c.version(), 6);
        assert_eq!(c.default_gateway(), Some("fd00::1".parse().unwrap()));
        let c = Cidr::parse("10.0.0.0/30").unwrap();
        let pools = c.default_pools(c.default_gateway());
        let used = ["10.0.0.2".parse().unwrap()].into_iter().collect();
        assert_eq!(next_free(&pools, &used), None);
    }

    #[test]
    fn macs() {
        let m = random_mac();
        assert!(m.starts_with("fa:16:3e:") && valid_mac(&m));
        assert!(!valid_mac("01:00:00:00:00:00"));
        assert!(!valid_mac("zz:00:00:00:00:00"));
    }
}
