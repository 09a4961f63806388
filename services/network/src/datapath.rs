//! What the network service asks of a host's datapath: a network's bridge,
//! DHCP and metadata path made to exist, its DHCP hosts replaced, and all of
//! it removed. [`NoopDatapath`] is the datapath of deployments whose guests
//! are plugged elsewhere (the fake driver, a real Neutron).

use std::net::IpAddr;

use async_trait::async_trait;
use uuid::Uuid;

/// One network as the datapath builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// The network's id.
    pub network_id: Uuid,
    /// Its Linux bridge: `"brq"` + the first 11 characters of the id.
    pub bridge: String,
    /// The (first) subnet's CIDR.
    pub cidr: String,
    /// The subnet's gateway address, if it has one.
    pub gateway_ip: Option<IpAddr>,
    /// Whether the subnet has DHCP enabled.
    pub dhcp: bool,
    /// The network's MTU.
    pub mtu: u32,
}

/// One port as DHCP serves it (a `--dhcp-hostsfile` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// The port's id.
    pub port_id: Uuid,
    /// Its MAC address.
    pub mac: String,
    /// Its fixed address.
    pub ip: IpAddr,
    /// The host name DHCP hands out.
    pub hostname: String,
}

/// A host's datapath for networks.
#[async_trait]
pub trait Datapath: Send + Sync + std::fmt::Debug {
    /// Makes `net`'s datapath exist as described (idempotent).
    async fn ensure_network(&self, net: &NetworkSpec) -> anyhow::Result<()>;
    /// Replaces the DHCP hosts of a network.
    async fn set_hosts(&self, network_id: Uuid, hosts: &[HostEntry]) -> anyhow::Result<()>;
    /// Removes everything `ensure_network` made (idempotent).
    async fn delete_network(&self, network_id: Uuid) -> anyhow::Result<()>;
}

/// The datapath that does nothing.
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
