//! nova-network's datapath on this host, for real: bridges, namespaces and
//! dnsmasq made with iproute2 (needs root, `dnsmasq`, `ping`, `busybox`,
//! `curl`; scripts/test installs them), fake guests in namespaces of their
//! own, and (feature `libvirt`) a real QEMU guest on a network's bridge.
#![allow(clippy::unwrap_used)]

mod datapath;
#[cfg(feature = "libvirt")]
mod guest;
mod support;
