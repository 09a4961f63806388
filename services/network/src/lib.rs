//! nova-network: the built-in network service's host side.
//!
//! * [`datapath`]: the [`Datapath`] contract and [`NoopDatapath`].
//! * `linux`: [`LinuxDatapath`], Neutron's DHCP agent on one host: per
//!   network a Linux bridge, a `qdhcp-<network id>` namespace joined to it by
//!   a veth pair (the gateway address and 169.254.169.254 live there, never on
//!   the host), a dnsmasq serving the ports' fixed addresses, and a metadata
//!   forwarder (`metadata_proxy`) passing the guest's address to
//!   nova-api-metadata as `X-Forwarded-For`.

pub mod datapath;
mod linux;
mod metadata_proxy;
mod netcmd;

pub use datapath::{Datapath, HostEntry, NetworkSpec, NoopDatapath, bridge_name};
pub use linux::{LinuxDatapath, LinuxDatapathConfig, namespace_name};
