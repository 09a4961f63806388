//! Live migration (nova's libvirt `check_can_live_migrate_*`,
//! `pre_live_migration`, `live_migration`,
//! `post_live_migration_at_destination`,
//! `rollback_live_migration_at_destination`) as a block migration: the
//! destination creates the guest's qcow2 overlay on the same base image
//! (nova's `_create_images_and_backing`), the source migrates the running
//! domain with its disk's top layer copied (`VIR_MIGRATE_NON_SHARED_INC`),
//! the definition persisted there and dropped here.
//!
//! The destination's libvirt is `[libvirt] live_migration_uri` with `%s`
//! the destination host (nova's option; default `qemu+tcp://%s/system`).
//! Unlike nova (`VIR_MIGRATE_PEER2PEER`), this driver holds both
//! connections itself (libvirt's managed direct migration): a system
//! libvirtd asked to reach a second daemon on the same machine (a session
//! daemon's socket) would take the URI as its own and refuse ("Attempt to
//! migrate guest to the same host"). The destination's instance directory
//! is `peer_instances_path` when it is not this host's `instances_path`
//! (two computes on one machine; nova assumes one path everywhere).
//! `[libvirt] live_migration_bandwidth` caps the copy (MiB/s); a running
//! migration is aborted with `virDomainAbortJob` (`jobs.rs`), and forced to
//! complete as nova's driver does: post-copy when
//! `live_migration_permit_post_copy` allowed it, else the guest paused
//! here (libvirt resumes it on the destination).
//! Not done: a guest with a config drive (nova refuses an iso9660 one
//! without shared storage too).

use std::path::PathBuf;

use super::{LibvirtDriver, failed};
use crate::driver::{InstanceSpec, Transition};
use crate::error::{Error, Result};

/// The flags of a block live migration: live, the disks' top layers
/// copied, persistent on the destination, undefined here.
const MIGRATE_FLAGS: u32 = virt::sys::VIR_MIGRATE_LIVE
    | virt::sys::VIR_MIGRATE_NON_SHARED_INC
    | virt::sys::VIR_MIGRATE_PERSIST_DEST
    | virt::sys::VIR_MIGRATE_UNDEFINE_SOURCE;

impl LibvirtDriver {
    /// The destination's libvirt URI for host `dest`.
    fn peer_uri(&self, dest: &str) -> String {
        self.cfg.live_migration_uri.replace("%s", dest)
    }

    /// The guest's directory on the destination.
    pub(super) fn peer_dir(&self, uuid: &str) -> PathBuf {
        self.cfg
            .peer_instances_path
            .as_ref()
            .unwrap_or(&self.cfg.instances_path)
            .join(uuid)
    }

    /// On the destination: the guest is not here already.
    pub(super) async fn live_check_destination(&self, spec: &InstanceSpec) -> Result<()> {
        let u = spec.uuid.clone();
        let here = self
            .blocking(move |c| Ok(c.lookup_domain_by_uuid_string(&u).is_ok()))
            .await?;
        if here {
            return Err(failed(
                "check_can_live_migrate_destination",
                &spec.uuid,
                "the guest is already defined on the destination",
            ));
        }
        Ok(())
    }

    /// On the source: the guest runs here and has no config drive.
    pub(super) async fn live_check_source(&self, uuid: &str) -> Result<()> {
        const OP: &str = "check_can_live_migrate_source";
        let u = uuid.to_owned();
        let running = self
            .blocking(move |c| Ok(Self::lookup(c, &u)?.is_active().unwrap_or(false)))
            .await?;
        if !running {
            return Err(failed(OP, uuid, "the guest is not running"));
        }
        if self
            .instance_dir(uuid)
            .join(super::config_drive::FILE)
            .exists()
        {
            return Err(failed(
                OP,
                uuid,
                "a guest with a config drive cannot be live migrated without shared storage",
            ));
        }
        Ok(())
    }

    /// On the destination: the instance directory and the root disk's
    /// overlay on the same base image, at the flavor's size; the VIFs'
    /// bridges.
    pub(super) async fn live_pre(&self, spec: &InstanceSpec) -> Result<()> {
        const OP: &str = "pre_live_migration";
        let dir = self.instance_dir(&spec.uuid);
        std::fs::create_dir_all(&dir)
            .map_err(|e| failed(OP, &spec.uuid, format!("{}: {e}", dir.display())))?;
        if let Some(base) = &spec.image_path {
            let mut cmd = tokio::process::Command::new("qemu-img");
            cmd.args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base])
                .arg(dir.join("disk"));
            if spec.root_gb > 0 {
                cmd.arg(format!("{}G", spec.root_gb));
            }
            let out = cmd
                .output()
                .await
                .map_err(|e| failed(OP, &spec.uuid, format!("qemu-img: {e}")))?;
            if !out.status.success() {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(failed(
                    OP,
                    &spec.uuid,
                    format!(
                        "qemu-img create: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                ));
            }
        }
        // A daemon running as another user (a session libvirtd) opens
        // these: they take the instances directory's owner.
        if let Ok(meta) = std::fs::metadata(&self.cfg.instances_path) {
            use std::os::unix::fs::MetadataExt;
            let (uid, gid) = (Some(meta.uid()), Some(meta.gid()));
            for p in [dir.clone(), dir.join("disk")] {
                if p.exists() {
                    std::os::unix::fs::chown(&p, uid, gid).map_err(|e| {
                        failed(OP, &spec.uuid, format!("chown {}: {e}", p.display()))
                    })?;
                }
            }
        }
        self.plug_vifs(&spec.uuid, &spec.network_info).await
    }

    /// On the source: the running guest moved to `dest` (its disks' top
    /// layers copied), its definition there; here it is gone, its
    /// directory too.
    pub(super) async fn live_migrate(&self, uuid: &str, dest: &str) -> Result<()> {
        const OP: &str = "live_migration";
        let (here, there) = (self.instance_dir(uuid), self.peer_dir(uuid));
        let _running = Migrating::start(self, uuid);
        let (u, uri) = (uuid.to_owned(), self.peer_uri(dest));
        let bandwidth = Some(self.cfg.live_migration_bandwidth).filter(|b| *b > 0);
        let flags = if self.cfg.live_migration_permit_post_copy {
            MIGRATE_FLAGS | virt::sys::VIR_MIGRATE_POSTCOPY
        } else {
            MIGRATE_FLAGS
        };
        self.blocking(move |c| {
            let d = Self::lookup(c, &u)?;
            let xml = d
                .xml_desc(virt::sys::VIR_DOMAIN_XML_MIGRATABLE)
                .map_err(|e| failed(OP, &u, e.message()))?;
            let dest_xml = xml.replace(&here.display().to_string(), &there.display().to_string());
            let disks: Vec<String> = super::xml::io_devices(&xml)
                .0
                .into_iter()
                .filter(|t| t.starts_with("vd"))
                .collect();
            let peer = virt::connect::Connect::open(Some(&uri))
                .map_err(|e| failed(OP, &u, format!("cannot connect to {uri}: {}", e.message())))?;
            let params = virt::domain::MigrateParameters {
                dest_xml: Some(dest_xml.clone()),
                persist_xml: Some(dest_xml),
                migrate_disks: disks,
                // Both daemons of one machine: migrate over loopback.
                uri: local_socket(&uri).then(|| "tcp://127.0.0.1".to_owned()),
                bandwidth,
                ..Default::default()
            };
            // The connection closes when dropped.
            d.migrate3(&peer, params, flags)
                .map_err(|e| failed(OP, &u, e.message()))?;
            Ok(())
        })
        .await?;
        self.emit(uuid, Transition::Stopped);
        let _ = std::fs::remove_dir_all(self.instance_dir(uuid));
        self.serial_ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uuid);
        Ok(())
    }

    /// On the destination, after the move: the guest runs here.
    pub(super) async fn live_post(&self, spec: &InstanceSpec) -> Result<()> {
        let u = spec.uuid.clone();
        let running = self
            .blocking(move |c| Ok(Self::lookup(c, &u)?.is_active().unwrap_or(false)))
            .await?;
        if !running {
            return Err(Error::InvalidState {
                uuid: spec.uuid.clone(),
                state: crate::PowerState::Shutdown,
                operation: "post_live_migration_at_destination",
            });
        }
        self.emit(&spec.uuid, Transition::Started);
        Ok(())
    }

    /// On the destination, after a failed move: what `live_pre` made (and
    /// a definition the migration may have left) goes.
    pub(super) async fn live_rollback(&self, uuid: &str) -> Result<()> {
        let u = uuid.to_owned();
        self.blocking(move |c| {
            if let Ok(d) = c.lookup_domain_by_uuid_string(&u) {
                if d.is_active().unwrap_or(false) {
                    let _ = d.destroy();
                }
                let _ = d.undefine();
            }
            Ok(())
        })
        .await?;
        let _ = std::fs::remove_dir_all(self.instance_dir(uuid));
        Ok(())
    }

    /// Force complete, as nova's migration monitor does it: post-copy when
    /// the migration permits it, else the guest paused here so its memory
    /// stops changing and the copy converges.
    pub(super) async fn live_force_complete(&self, uuid: &str) -> Result<()> {
        const OP: &str = "live_migration_force_complete";
        let (u, post_copy) = (uuid.to_owned(), self.cfg.live_migration_permit_post_copy);
        self.blocking(move |c| {
            let d = Self::lookup(c, &u)?;
            if post_copy {
                super::jobs::start_post_copy(&d).map_err(|e| failed(OP, &u, e))
            } else {
                d.suspend().map_err(|e| failed(OP, &u, e.message()))
            }
        })
        .await
    }

    /// Abort: the running migration job cancelled (`virDomainAbortJob`);
    /// the guest keeps running here and `live_migration` returns the
    /// cancellation.
    ///
    /// An abort that comes while this driver's migration of the guest is
    /// still starting (libvirt's job not begun: "no job is active") waits
    /// for the job, for at most `ABORT_PATIENCE`.
    pub(super) async fn live_abort(&self, uuid: &str) -> Result<()> {
        const ABORT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);
        let t = std::time::Instant::now();
        loop {
            let u = uuid.to_owned();
            let r = self
                .blocking(move |c| {
                    let d = Self::lookup(c, &u)?;
                    super::jobs::abort_job(&d).map_err(|e| failed("live_migration_abort", &u, e))
                })
                .await;
            let starting = self
                .migrating
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(uuid);
            if r.is_ok() || !starting || t.elapsed() > ABORT_PATIENCE {
                return r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

/// Marks a guest's live migration as running in this driver while it lives.
struct Migrating<'a>(&'a LibvirtDriver, String);

impl<'a> Migrating<'a> {
    fn start(d: &'a LibvirtDriver, uuid: &str) -> Self {
        d.migrating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uuid.to_owned());
        Migrating(d, uuid.to_owned())
    }
}

impl Drop for Migrating<'_> {
    fn drop(&mut self) {
        self.0
            .migrating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

/// Whether a libvirt URI names a local daemon's socket (no host).
fn local_socket(uri: &str) -> bool {
    uri.split_once(":///").is_some()
}
