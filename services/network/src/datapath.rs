//! What the network service asks of the host's datapath: a bridge (and
//! whatever serves DHCP) per network, the DHCP host entries of its ports,
//! and removal. `[network] datapath = noop` (the default) does nothing;
//! `linux` is the Linux bridge + `qdhcp-<network id>` namespace + dnsmasq
//! implementation.

use std::net::IpAddr;

use async_trait::async_trait;
use uuid::Uuid;

/// A network with a subnet, as the datapath builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// The network's id.
    pub network_id: Uuid,
    /// The Linux bridge: `brq` + the first 11 characters of the id.
    pub bridge: String,
    /// The subnet's CIDR.
    pub cidr: String,
    /// The subnet's gateway.
    pub gateway_ip: Option<IpAddr>,
    /// Whether the subnet has DHCP enabled.
    pub dhcp: bool,
    /// The network's MTU.
    pub mtu: u32,
}

/// One port's DHCP entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// The port's id.
    pub port_id: Uuid,
    /// Its MAC address.
    pub mac: String,
    /// Its fixed IP on the network's subnet.
    pub ip: IpAddr,
    /// The host name DHCP gives it.
    pub hostname: String,
}

/// The host side of the network service.
#[async_trait]
pub trait Datapath: Send + Sync + std::fmt::Debug {
    /// Makes `net` exist (idempotent).
    async fn ensure_network(&self, net: &NetworkSpec) -> anyhow::Result<()>;
    /// Replaces the DHCP host entries of `network_id`.
    async fn set_hosts(&self, network_id: Uuid, hosts: &[HostEntry]) -> anyhow::Result<()>;
    /// Removes what [`Datapath::ensure_network`] made (idempotent).
    async fn delete_network(&self, network_id: Uuid) -> anyhow::Result<()>;
}

/// The default datapath: stores nothing, does nothing (ports are records
/// only; nothing on the host changes).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopDatapath;

#[async_trait]
impl Datapath for NoopDatapath {
    async fn ensure_network(&self, _net: &NetworkSpec) -> anyhow::Result<()> {
        Ok(())
    }
    async fn set_hosts(&self, _network_id: Uuid, _hosts: &[HostEntry]) -> anyhow::Result<()> {
        Ok(())
    }
    async fn delete_network(&self, _network_id: Uuid) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The bridge name of a network (`brq` + the first 11 characters of its
/// id), as Neutron's Linux bridge agent names it.
pub fn bridge_name(network_id: Uuid) -> String {
    format!("brq{}", &network_id.to_string()[..11])
}

/// The tap device of a port (`tap` + the first 11 characters of its id).
pub fn tap_name(port_id: &str) -> String {
    format!("tap{}", port_id.chars().take(11).collect::<String>())
}
