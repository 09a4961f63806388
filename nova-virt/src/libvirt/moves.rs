//! Resize and cold migration (nova's libvirt `migrate_disk_and_power_off`,
//! `finish_migration`, `confirm_migration`, `finish_revert_migration`).
//! The source keeps the domain's definition aside (`resize.xml`). On the
//! guest's own host the root disk is kept aside too (`disk.resize`) and
//! grown in place with `qemu-img resize` (never shrunk); to another host
//! it is copied into that host's instance directory (`peer_instances_path`
//! when the two computes share this machine, else the same path, which
//! nova reaches over ssh and this driver only as a local path) and the
//! copy grown, the source's disk left as it was for a revert. The
//! destination defines the domain at the new size.

use std::path::Path;

use super::{LibvirtDriver, failed};
use crate::driver::{InstanceSpec, ResizeTarget, Transition};
use crate::error::{Error, Result};
use crate::libvirt::xml::{DomainPlan, domain_xml};

const GIB: u64 = 1 << 30;

/// The virtual size of a disk image (`qemu-img info`).
async fn virtual_size(op: &'static str, uuid: &str, disk: &Path) -> Result<u64> {
    let out = tokio::process::Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(disk)
        .output()
        .await
        .map_err(|e| failed(op, uuid, format!("qemu-img: {e}")))?;
    if !out.status.success() {
        return Err(failed(
            op,
            uuid,
            format!(
                "qemu-img info: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| failed(op, uuid, format!("qemu-img info: {e}")))?;
    v["virtual-size"]
        .as_u64()
        .ok_or_else(|| failed(op, uuid, "qemu-img info: no virtual-size"))
}

/// A disk copied from another host names that host's base file: it is
/// pointed at this host's copy of the same image (`qemu-img rebase -u`, the
/// header only: the two base files hold the same bytes), as nova's
/// destination finds its own `_base` file at the same path.
async fn rebase_onto(op: &'static str, uuid: &str, disk: &Path, base: &str) -> Result<()> {
    let out = tokio::process::Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(disk)
        .output()
        .await
        .map_err(|e| failed(op, uuid, format!("qemu-img: {e}")))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let now = v["full-backing-filename"]
        .as_str()
        .or_else(|| v["backing-filename"].as_str());
    if now.is_none_or(|b| b == base) {
        return Ok(());
    }
    let out = tokio::process::Command::new("qemu-img")
        .args(["rebase", "-u", "-F", "qcow2", "-b", base])
        .arg(disk)
        .output()
        .await
        .map_err(|e| failed(op, uuid, format!("qemu-img: {e}")))?;
    if !out.status.success() {
        return Err(failed(
            op,
            uuid,
            format!(
                "qemu-img rebase: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(())
}

impl LibvirtDriver {
    /// The guest's own host takes it; another takes it when it has no
    /// files of it yet.
    pub(super) async fn resize_prep(&self, spec: &InstanceSpec) -> Result<()> {
        let u = spec.uuid.clone();
        let here = self
            .blocking(move |c| Ok(c.lookup_domain_by_uuid_string(&u).is_ok()))
            .await?;
        if !here && self.instance_dir(&spec.uuid).exists() {
            return Err(failed(
                "prep_resize",
                &spec.uuid,
                "the guest's instance directory already exists on the destination",
            ));
        }
        Ok(())
    }

    /// Whether a move to `dest` leaves this host (unknown host: stays).
    fn leaves(&self, dest: &str) -> bool {
        self.host.get().is_some_and(|h| h != dest)
    }

    /// Power off, keep the definition and the disk aside, grow the disk.
    pub(super) async fn resize_power_off(
        &self,
        uuid: &str,
        dest: &str,
        target: &ResizeTarget,
    ) -> Result<()> {
        const OP: &str = "migrate_disk_and_power_off";
        let dir = self.instance_dir(uuid);
        let elsewhere = self.leaves(dest).then(|| self.peer_dir(uuid));
        let disk = dir.join("disk");
        let grow_to = if disk.exists() && target.root_gb > 0 {
            let now = virtual_size(OP, uuid, &disk).await?;
            let want = target.root_gb * GIB;
            if want < now {
                return Err(Error::ResizeRefused {
                    uuid: uuid.to_owned(),
                    reason: "Unable to resize disk down.".into(),
                });
            }
            (want > now).then_some(want)
        } else {
            None
        };
        let (u, saved, wait) = (
            uuid.to_owned(),
            dir.join("resize.xml"),
            self.cfg.soft_reboot_timeout,
        );
        self.blocking(move |c| {
            let d = Self::lookup(c, &u)?;
            let xml = d
                .xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE)
                .map_err(|e| failed(OP, &u, e.message()))?;
            std::fs::write(&saved, xml)
                .map_err(|e| failed(OP, &u, format!("{}: {e}", saved.display())))?;
            let clean = d.is_active().unwrap_or(false)
                && d.shutdown().is_ok()
                && Self::wait_shutoff(&d, wait);
            if !clean && d.is_active().unwrap_or(false) {
                d.destroy().map_err(|e| failed(OP, &u, e.message()))?;
            }
            Ok(())
        })
        .await?;
        self.emit(uuid, Transition::Stopped);
        // The disk to grow: the copy on the other host, or this one with
        // the original kept aside.
        let disk = match &elsewhere {
            Some(there) => {
                let copy = there.join("disk");
                self.copy_to_peer(OP, uuid, &dir, there, disk.exists())?;
                copy
            }
            None => {
                if disk.exists() {
                    std::fs::copy(&disk, dir.join("disk.resize")).map_err(|e| {
                        failed(OP, uuid, format!("cannot keep the disk aside: {e}"))
                    })?;
                }
                disk
            }
        };
        if let Some(bytes) = grow_to.filter(|_| disk.exists()) {
            let out = tokio::process::Command::new("qemu-img")
                .args(["resize", "-q"])
                .arg(&disk)
                .arg(bytes.to_string())
                .output()
                .await
                .map_err(|e| failed(OP, uuid, format!("qemu-img: {e}")))?;
            if !out.status.success() {
                return Err(failed(
                    OP,
                    uuid,
                    format!(
                        "qemu-img resize: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The domain redefined at its new size, started when asked.
    pub(super) async fn resize_finish(&self, spec: &InstanceSpec, power_on: bool) -> Result<()> {
        const OP: &str = "finish_migration";
        let dir = self.instance_dir(&spec.uuid);
        let disk = dir.join("disk");
        if let Some(base) = spec.image_path.as_deref().filter(|_| disk.exists()) {
            rebase_onto(OP, &spec.uuid, &disk, base).await?;
        }
        let plan = DomainPlan {
            virt_type: self.cfg.virt_type.clone(),
            disk_path: disk.exists().then(|| disk.display().to_string()),
            console_log: self.console_log(&spec.uuid).display().to_string(),
            vnc_listen: self.cfg.vnc_listen.clone(),
            rescued_disk: None,
            config_drive: Some(dir.join(super::config_drive::FILE))
                .filter(|p| p.exists())
                .map(|p| p.display().to_string()),
            consoles: self.console_plan(&spec.uuid)?,
        };
        let xml = domain_xml(spec, &plan);
        self.plug_vifs(&spec.uuid, &spec.network_info).await?;
        let u = spec.uuid.clone();
        self.blocking(move |c| {
            let d = c
                .define_domain_xml(&xml)
                .map_err(|e| failed(OP, &u, e.message()))?;
            if power_on && !d.is_active().unwrap_or(false) {
                d.create().map_err(|e| failed(OP, &u, e.message()))?;
            }
            Ok(())
        })
        .await?;
        if power_on {
            self.emit(&spec.uuid, Transition::Started);
        }
        Ok(())
    }

    /// Confirmed: what a revert needed goes; after a move to another host
    /// the old domain and its files too.
    pub(super) async fn resize_confirm(&self, uuid: &str, same_host: bool) -> Result<()> {
        let dir = self.instance_dir(uuid);
        if !same_host {
            let u = uuid.to_owned();
            self.blocking(move |c| {
                if let Ok(d) = c.lookup_domain_by_uuid_string(&u) {
                    if d.is_active().unwrap_or(false) {
                        let _ = d.destroy();
                    }
                    d.undefine()
                        .map_err(|e| failed("confirm_migration", &u, e.message()))?;
                }
                Ok(())
            })
            .await?;
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(());
        }
        let _ = std::fs::remove_file(dir.join("resize.xml"));
        let _ = std::fs::remove_file(dir.join("disk.resize"));
        Ok(())
    }

    /// The guest's files (root disk, config drive) copied into the other
    /// host's instance directory, owned as that directory's parent is.
    fn copy_to_peer(
        &self,
        op: &'static str,
        uuid: &str,
        dir: &Path,
        there: &Path,
        has_disk: bool,
    ) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let io = |e: std::io::Error| failed(op, uuid, format!("copy to {}: {e}", there.display()));
        std::fs::create_dir_all(there).map_err(io)?;
        let owner = there
            .parent()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| (m.uid(), m.gid()));
        let mut files = vec![there.to_owned()];
        for name in ["disk", super::config_drive::FILE] {
            if (name != "disk" || has_disk) && dir.join(name).exists() {
                std::fs::copy(dir.join(name), there.join(name)).map_err(io)?;
                files.push(there.join(name));
            }
        }
        if let Some((uid, gid)) = owner {
            for f in files {
                std::os::unix::fs::chown(&f, Some(uid), Some(gid)).map_err(io)?;
            }
        }
        Ok(())
    }

    /// Reverted: the kept disk and definition back, started when asked.
    pub(super) async fn resize_revert(&self, spec: &InstanceSpec, power_on: bool) -> Result<()> {
        const OP: &str = "finish_revert_migration";
        let dir = self.instance_dir(&spec.uuid);
        let saved = dir.join("resize.xml");
        let xml = std::fs::read_to_string(&saved)
            .map_err(|e| failed(OP, &spec.uuid, format!("{}: {e}", saved.display())))?;
        let u = spec.uuid.clone();
        self.blocking(move |c| {
            let d = Self::lookup(c, &u)?;
            if d.is_active().unwrap_or(false) {
                d.destroy().map_err(|e| failed(OP, &u, e.message()))?;
            }
            Ok(())
        })
        .await?;
        let kept = dir.join("disk.resize");
        if kept.exists() {
            std::fs::rename(&kept, dir.join("disk"))
                .map_err(|e| failed(OP, &spec.uuid, format!("cannot restore the disk: {e}")))?;
        }
        self.plug_domain_vifs(&spec.uuid, &xml).await?;
        let u = spec.uuid.clone();
        self.blocking(move |c| {
            let d = c
                .define_domain_xml(&xml)
                .map_err(|e| failed(OP, &u, e.message()))?;
            if power_on {
                d.create().map_err(|e| failed(OP, &u, e.message()))?;
            }
            Ok(())
        })
        .await?;
        let _ = std::fs::remove_file(&saved);
        if power_on {
            self.emit(&spec.uuid, Transition::Started);
        }
        Ok(())
    }
}
