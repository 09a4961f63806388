//! Interface hot-plug, as nova's libvirt driver does it.
//!
//! Attach (`attach_interface`): the VIF plugged (its bridge ensured), then
//! its `bridge` `<interface>` added to the domain's definition and, when
//! the guest runs or is paused, to the live domain (`persistent=True,
//! live=<running>`).
//!
//! Detach (`detach_interface` → `_detach_with_retry`): the interface is
//! found by its MAC in the live and the persistent XML (found in neither:
//! gone already, a warning as nova's). The persistent definition loses it
//! first (checked), then the live domain: a detach request the guest must
//! answer (ACPI PCI hot-unplug), so each of `[libvirt]
//! device_detach_attempts` requests waits up to `device_detach_timeout`
//! for the device to leave the live XML (nova waits for libvirt's
//! device-removed event; the XML is what that event reports). Still there
//! after the last attempt: [`Error::Hypervisor`] (nova's
//! `DeviceDetachFailed`), the tap left in place (the guest still uses it).
//! After a detach a tap libvirt left behind is removed.

use std::time::{Duration, Instant};

use virt::connect::Connect;
use virt::error::ErrorNumber;

use super::{LibvirtDriver, failed, hv, xml};
use crate::driver::Vif;
use crate::error::{Error, Result};

/// How often a live detach looks at the domain's XML.
const POLL: Duration = Duration::from_millis(250);

/// What a domain XML says about the interface of a MAC.
fn has_interface(domain_xml: &str, mac: &str) -> bool {
    xml::interface_macs(domain_xml)
        .iter()
        .any(|m| m.eq_ignore_ascii_case(mac))
}

/// The domain's XML: live (`inactive` false: the running guest's, or the
/// definition when it does not run) or its persistent definition.
fn domain_xml(conn: &Connect, uuid: &str, inactive: bool) -> Result<String> {
    let flags = if inactive {
        virt::sys::VIR_DOMAIN_XML_INACTIVE
    } else {
        0
    };
    LibvirtDriver::lookup(conn, uuid)?
        .xml_desc(flags)
        .map_err(hv)
}

/// Where the device is before a detach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Presence {
    persistent: bool,
    live: bool,
}

impl LibvirtDriver {
    pub(super) async fn attach_vif(&self, uuid: &str, vif: &Vif) -> Result<()> {
        self.plug_vifs(uuid, std::slice::from_ref(vif)).await?;
        let dev = xml::interface_xml(vif, "virtio");
        let u = uuid.to_owned();
        self.blocking(move |c| {
            let dom = Self::lookup(c, &u)?;
            let flags = Self::affect_config_and_live(&dom)?;
            dom.attach_device_flags(&dev, flags)
                .map_err(|e| failed("attach_interface", &u, e.message()))
        })
        .await
    }

    pub(super) async fn detach_vif(&self, uuid: &str, vif: &Vif) -> Result<()> {
        self.detach_with_retry(uuid, vif).await?;
        // Only once the guest let go: a tap still attached stays.
        self.unplug_taps(vif.devname.as_slice()).await;
        Ok(())
    }

    async fn detach_with_retry(&self, uuid: &str, vif: &Vif) -> Result<()> {
        let (u, mac) = (uuid.to_owned(), vif.address.clone());
        let at = self
            .blocking(move |c| {
                let dom = Self::lookup(c, &u)?;
                let running = dom.is_active().map_err(hv)?;
                Ok(Presence {
                    persistent: dom.is_persistent().map_err(hv)?
                        && has_interface(&domain_xml(c, &u, true)?, &mac),
                    live: running && has_interface(&domain_xml(c, &u, false)?, &mac),
                })
            })
            .await?;
        if !at.persistent && !at.live {
            tracing::warn!(instance = uuid, mac = %vif.address,
                "Detaching interface failed because the device is no longer found on the guest");
            return Ok(());
        }
        let dev = xml::interface_xml(vif, "virtio");
        if at.persistent {
            let (u, d, mac) = (uuid.to_owned(), dev.clone(), vif.address.clone());
            self.blocking(move |c| {
                let dom = Self::lookup(c, &u)?;
                match dom.detach_device_flags(&d, virt::sys::VIR_DOMAIN_AFFECT_CONFIG) {
                    Ok(_) => {}
                    Err(e)
                        if e.code().unwrap_or(ErrorNumber::InternalError)
                            == ErrorNumber::DeviceMissing => {}
                    Err(e) => return Err(failed("detach_interface", &u, e.message())),
                }
                if has_interface(&domain_xml(c, &u, true)?, &mac) {
                    return Err(failed(
                        "detach_interface",
                        &u,
                        format!("interface {mac} is still in the persistent domain"),
                    ));
                }
                Ok(())
            })
            .await?;
        }
        if at.live {
            self.detach_live(uuid, &vif.address, &dev).await?;
        }
        Ok(())
    }

    /// nova's `_detach_from_live_with_retry`.
    async fn detach_live(&self, uuid: &str, mac: &str, dev: &str) -> Result<()> {
        let attempts = self.cfg.device_detach_attempts.max(1);
        let timeout = self.cfg.device_detach_timeout;
        for attempt in 1..=attempts {
            tracing::debug!(
                instance = uuid,
                mac,
                attempt,
                attempts,
                "detaching an interface from the live domain"
            );
            let (u, d, m) = (uuid.to_owned(), dev.to_owned(), mac.to_owned());
            let gone = self
                .blocking(move |c| {
                    let dom = Self::lookup(c, &u)?;
                    match dom.detach_device_flags(&d, virt::sys::VIR_DOMAIN_AFFECT_LIVE) {
                        Ok(_) => {}
                        // Gone between the look and the request.
                        Err(e)
                            if e.code().unwrap_or(ErrorNumber::InternalError)
                                == ErrorNumber::DeviceMissing =>
                        {
                            return Ok(true);
                        }
                        // An earlier request is still running: wait for it.
                        Err(e) if e.message().contains("already in the process of unplug") => {}
                        Err(e) => return Err(failed("detach_interface", &u, e.message())),
                    }
                    let t = Instant::now();
                    loop {
                        if !dom.is_active().map_err(hv)?
                            || !has_interface(&domain_xml(c, &u, false)?, &m)
                        {
                            return Ok(true);
                        }
                        if t.elapsed() >= timeout {
                            return Ok(false);
                        }
                        std::thread::sleep(POLL);
                    }
                })
                .await?;
            if gone {
                tracing::info!(
                    instance = uuid,
                    mac,
                    "detached an interface from the live domain"
                );
                return Ok(());
            }
            tracing::warn!(instance = uuid, mac, attempt, attempts, timeout = ?timeout,
                "the interface is still in the live domain after a detach request");
        }
        Err(Error::Hypervisor(format!(
            "instance {uuid}: ran out of retries detaching interface {mac} from the live domain; \
             it is still attached to the guest"
        )))
    }
}
