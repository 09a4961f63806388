//! Plugging VIFs: nova's `bridge` VIF type (`LibvirtGenericVIFDriver`
//! `plug_bridge`). libvirt makes each tap device and adds it to the bridge
//! named in the domain XML when the domain starts; the driver makes sure
//! that bridge exists first (nova's `ensure_bridge`: created without an
//! address, forward delay 0, up, at the network's MTU). Every start plugs
//! again (spawn, hard reboot, power on, resize, rescue), so a host that
//! lost its bridges (a reboot) gets them back. Unplugging leaves the bridge
//! (the network's) and removes a tap libvirt left behind.

use tokio::process::Command;

use super::LibvirtDriver;
use crate::driver::Vif;
use crate::error::{Error, Result};

/// Linux's longest interface name.
const IFNAMSIZ: usize = 15;

async fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| Error::Hypervisor(format!("cannot run ip: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Hypervisor(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= IFNAMSIZ
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// nova's `ensure_bridge`: the bridge exists and is up (at `mtu` when given).
pub(super) async fn ensure_bridge(bridge: &str, mtu: Option<u32>) -> Result<()> {
    if !valid_ifname(bridge) {
        return Err(Error::Hypervisor(format!("bad bridge name {bridge:?}")));
    }
    if !link_exists(bridge)
        && let Err(e) = ip(&["link", "add", "name", bridge, "type", "bridge"]).await
        && !link_exists(bridge)
    {
        return Err(e);
    }
    let p = std::path::Path::new("/proc/sys/net/ipv6/conf")
        .join(bridge)
        .join("disable_ipv6");
    if p.exists() {
        let _ = std::fs::write(p, "1");
    }
    ip(&[
        "link",
        "set",
        "dev",
        bridge,
        "type",
        "bridge",
        "forward_delay",
        "0",
    ])
    .await?;
    match mtu {
        Some(m) => ip(&["link", "set", "dev", bridge, "mtu", &m.to_string(), "up"]).await,
        None => ip(&["link", "set", "dev", bridge, "up"]).await,
    }
}

impl LibvirtDriver {
    /// Whether VIFs are plugged on this host (not with libvirt's test driver).
    fn plugs_vifs(&self) -> bool {
        !self.cfg.connection_uri.starts_with("test:")
    }

    /// Plugs the bridge VIFs of `vifs` (nova's `plug_vifs`).
    pub(super) async fn plug_vifs(&self, uuid: &str, vifs: &[Vif]) -> Result<()> {
        if !self.plugs_vifs() {
            return Ok(());
        }
        for v in vifs {
            if let Some(br) = &v.bridge {
                ensure_bridge(br, v.mtu).await.map_err(|e| {
                    Error::Hypervisor(format!("instance {uuid}: cannot plug VIF {}: {e}", v.id))
                })?;
            }
        }
        Ok(())
    }

    /// Plugs the bridges a defined domain's XML names (hard reboot, power
    /// on and revert start a domain without the instance's network info).
    pub(super) async fn plug_domain_vifs(&self, uuid: &str, domain_xml: &str) -> Result<()> {
        if !self.plugs_vifs() {
            return Ok(());
        }
        for (br, mtu) in super::xml::bridges(domain_xml) {
            ensure_bridge(&br, mtu).await.map_err(|e| {
                Error::Hypervisor(format!("instance {uuid}: cannot plug bridge {br}: {e}"))
            })?;
        }
        Ok(())
    }

    /// Plugs the bridges of the instance's defined domain.
    pub(super) async fn plug_defined(&self, uuid: &str) -> Result<()> {
        if !self.plugs_vifs() {
            return Ok(());
        }
        let u = uuid.to_owned();
        let xml = self
            .blocking(move |c| {
                Self::lookup(c, &u)?
                    .xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE)
                    .map_err(super::hv)
            })
            .await?;
        self.plug_domain_vifs(uuid, &xml).await
    }

    /// Unplugs `taps` after the domain is gone: a tap libvirt left behind
    /// (a crashed QEMU) is removed; the bridges stay (they are the networks').
    pub(super) async fn unplug_taps(&self, taps: &[String]) {
        if !self.plugs_vifs() {
            return;
        }
        for t in taps {
            if valid_ifname(t)
                && link_exists(t)
                && let Err(e) = ip(&["link", "del", "dev", t]).await
            {
                tracing::warn!(tap = t, error = %e, "cannot remove a leftover tap");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked() {
        for ok in ["brq5d2c1b0a-9f", "tap0b7e9c55-1f", "br_int.10"] {
            assert!(valid_ifname(ok), "{ok}");
        }
        for bad in ["", "..", "a-name-that-is-too-long", "br q", "br/q", "br;rm"] {
            assert!(!valid_ifname(bad), "{bad}");
        }
    }
}
