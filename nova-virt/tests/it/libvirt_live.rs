//! LibvirtDriver's live migration of a real QEMU guest between two libvirt
//! daemons of this machine: the system libvirtd and a session libvirtd run
//! as `nobody` (its own host UUID), which `scripts/libvirt-setup` starts
//! (socket `/var/tmp/nova-rs/libvirt-peer/run/libvirt/libvirt-sock`, or
//! `NOVA_RS_LIBVIRT_PEER_DIR`). There and back through the driver API only,
//! the rollback of a prepared destination, and the refusals.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nova_virt::libvirt::{LibvirtConfig, LibvirtDriver};
use nova_virt::{ComputeDriver, InstanceSpec, PowerState};

use crate::libvirt::guest_spec;

fn peer_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("NOVA_RS_LIBVIRT_PEER_DIR")
            .unwrap_or_else(|_| "/var/tmp/nova-rs/libvirt-peer".into()),
    )
}

/// Destroys and undefines the guest on both daemons when the test ends.
struct Reap(String, String);

impl Drop for Reap {
    fn drop(&mut self) {
        for uri in ["qemu:///system", self.1.as_str()] {
            for args in [
                &["destroy", self.0.as_str()][..],
                &["undefine", self.0.as_str()][..],
            ] {
                let _ = std::process::Command::new("virsh")
                    .args(["-q", "-c", uri])
                    .args(args)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

async fn figures(d: &LibvirtDriver, uuid: &str) -> (usize, Option<i64>, PowerState) {
    let g = d.get_instance_diagnostics(uuid).await.unwrap();
    (g.cpus.len(), g.memory_max_kib, g.state)
}

async fn wait_for_text(path: &Path, text: &str, patience: Duration) {
    let t = std::time::Instant::now();
    while t.elapsed() < patience {
        if std::fs::read_to_string(path).is_ok_and(|s| s.contains(text)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{} never showed {text:?}", path.display());
}

/// Two drivers on this machine's two daemons, each migrating to the
/// other: `src` on the system libvirtd (instances in a fresh temp dir,
/// `here`), `dst` on the session libvirtd run as `nobody` (instances in a
/// fresh directory of its instances, `there`, owned by its user).
struct TwoDaemons {
    guest: PathBuf,
    peer_uri: String,
    here: PathBuf,
    there: PathBuf,
    src: LibvirtDriver,
    dst: LibvirtDriver,
}

impl TwoDaemons {
    /// `tag` names the instance directories; `tune` adjusts both
    /// drivers' settings.
    fn start(tag: &str, tune: impl Fn(&mut LibvirtConfig)) -> TwoDaemons {
        let guest = crate::libvirt::guest_dir();
        let peer = peer_dir();
        let peer_socket = peer.join("run/libvirt/libvirt-sock");
        assert!(
            peer_socket.exists(),
            "the second (session) libvirtd is missing: run scripts/libvirt-setup (scripts/test does)"
        );
        let peer_uri = format!("qemu:///session?socket={}", peer_socket.display());
        let tag = format!("{tag}-{}", std::process::id());
        let here = std::env::temp_dir().join(format!("nova-virt-{tag}"));
        let there = peer.join("instances").join(&tag);
        std::fs::create_dir_all(&here).unwrap();
        std::fs::create_dir_all(&there).unwrap();
        let owner = std::fs::metadata(peer.join("instances")).unwrap();
        std::os::unix::fs::chown(&there, Some(owner.uid()), Some(owner.gid())).unwrap();
        let cfg = |uri: &str, dir: &Path, to: &str, peer_dir: &Path| {
            let mut c = LibvirtConfig {
                connection_uri: uri.into(),
                virt_type: "qemu".into(),
                instances_path: dir.to_owned(),
                vnc_listen: Some("127.0.0.1".into()),
                soft_reboot_timeout: Duration::from_secs(2),
                event_poll_interval: Duration::from_millis(250),
                live_migration_uri: to.into(),
                peer_instances_path: Some(peer_dir.to_owned()),
                ..LibvirtConfig::default()
            };
            tune(&mut c);
            c
        };
        let src = LibvirtDriver::connect(cfg("qemu:///system", &here, &peer_uri, &there)).unwrap();
        let dst = LibvirtDriver::connect(cfg(&peer_uri, &there, "qemu:///system", &here)).unwrap();
        TwoDaemons {
            guest,
            peer_uri,
            here,
            there,
            src,
            dst,
        }
    }
}

impl Drop for TwoDaemons {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.here);
        let _ = std::fs::remove_dir_all(&self.there);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_qemu_guest_live_migrates_to_a_second_daemon_and_back() {
    let pair = TwoDaemons::start("live", |_| {});
    let TwoDaemons {
        guest,
        peer_uri,
        here,
        there,
        src,
        dst,
    } = &pair;
    let spec = guest_spec(
        guest,
        format!(
            "6a1f0c3e-0000-4d2b-8c1a-{:012x}",
            std::process::id() as u64 + (1 << 40)
        ),
        "live-guest",
        1,
    );
    let uuid = spec.uuid.clone();
    let _reap = Reap(uuid.clone(), peer_uri.clone());
    src.spawn(&spec).await.unwrap();
    wait_for_text(
        &here.join(&uuid).join("console.log"),
        "NOVA-RS GUEST BOOTED",
        Duration::from_secs(120),
    )
    .await;

    // Refusals: the destination already has it; the source lacks it.
    assert!(
        src.check_can_live_migrate_destination(&spec, true)
            .await
            .is_err()
    );
    assert!(matches!(
        dst.check_can_live_migrate_source(&uuid).await,
        Err(nova_virt::Error::InstanceNotFound(_))
    ));
    // A prepared destination rolled back leaves nothing.
    dst.check_can_live_migrate_destination(&spec, true)
        .await
        .unwrap();
    dst.pre_live_migration(&spec).await.unwrap();
    assert!(there.join(&uuid).join("disk").exists());
    dst.rollback_live_migration_at_destination(&uuid)
        .await
        .unwrap();
    assert!(!there.join(&uuid).exists());

    // There: the guest keeps running (no new boot on the destination's
    // console), its definition there, nothing left here.
    src.check_can_live_migrate_source(&uuid).await.unwrap();
    dst.check_can_live_migrate_destination(&spec, true)
        .await
        .unwrap();
    dst.pre_live_migration(&spec).await.unwrap();
    src.live_migration(&uuid, "peer").await.unwrap();
    dst.post_live_migration_at_destination(&spec).await.unwrap();
    assert!(matches!(
        src.get_info(&uuid).await,
        Err(nova_virt::Error::InstanceNotFound(_))
    ));
    assert!(!here.join(&uuid).exists(), "the source's files are gone");
    assert_eq!(
        dst.get_info(&uuid).await.unwrap().state,
        PowerState::Running
    );
    assert!(dst.list_instance_uuids().await.unwrap().contains(&uuid));
    // The same guest (its QEMU process is new, its memory moved): its
    // serial output on the destination shows no boot.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let console =
        std::fs::read_to_string(there.join(&uuid).join("console.log")).unwrap_or_default();
    assert!(
        !console.contains("NOVA-RS GUEST BOOTED"),
        "no boot on the destination: {console}"
    );

    // And back.
    src.check_can_live_migrate_destination(&spec, true)
        .await
        .unwrap();
    dst.check_can_live_migrate_source(&uuid).await.unwrap();
    src.pre_live_migration(&spec).await.unwrap();
    dst.live_migration(&uuid, "home").await.unwrap();
    src.post_live_migration_at_destination(&spec).await.unwrap();
    assert_eq!(
        src.get_info(&uuid).await.unwrap().state,
        PowerState::Running
    );
    assert!(!there.join(&uuid).exists());
    let console = std::fs::read_to_string(here.join(&uuid).join("console.log")).unwrap_or_default();
    assert!(
        !console.contains("NOVA-RS GUEST BOOTED"),
        "no boot back home: {console}"
    );

    src.destroy(&uuid).await.unwrap();
}

/// Cold migration with a resize to the second daemon: the disk copied into
/// its instance directory and grown there (the source's left as it was),
/// the domain defined there at the new size; a revert brings the guest
/// back at its old size, a confirm drops the source's domain and files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_qemu_guest_cold_migrates_to_a_second_daemon() {
    use nova_virt::ResizeTarget;
    let pair = TwoDaemons::start("cold", |_| {});
    let TwoDaemons {
        guest,
        peer_uri,
        here,
        there,
        src,
        dst,
    } = &pair;
    src.init_host("home").await.unwrap();
    dst.init_host("peer").await.unwrap();
    let spec = guest_spec(
        guest,
        format!(
            "6a1f0c3e-0000-4d2b-8c1a-{:012x}",
            std::process::id() as u64 + (2 << 40)
        ),
        "cold-guest",
        1,
    );
    let uuid = spec.uuid.clone();
    let _reap = Reap(uuid.clone(), peer_uri.clone());
    let bigger = InstanceSpec {
        vcpus: 2,
        memory_mb: 192,
        root_gb: 2,
        flavor_name: "m1.micro".into(),
        ..spec.clone()
    };
    let target = ResizeTarget {
        vcpus: 2,
        memory_mb: 192,
        root_gb: 2,
    };
    let size = |p: &Path| {
        let out = std::process::Command::new("qemu-img")
            .args(["info", "--output=json", "-U"])
            .arg(p)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["virtual-size"].as_u64().unwrap()
    };
    src.spawn(&spec).await.unwrap();

    // There, then reverted.
    dst.prep_resize(&bigger).await.unwrap();
    src.migrate_disk_and_power_off(&uuid, "peer", &target)
        .await
        .unwrap();
    assert_eq!(
        src.get_info(&uuid).await.unwrap().state,
        PowerState::Shutdown
    );
    assert_eq!(
        size(&there.join(&uuid).join("disk")),
        2 << 30,
        "the copy grew"
    );
    assert_eq!(
        size(&here.join(&uuid).join("disk")),
        1 << 30,
        "the source's stays"
    );
    dst.finish_migration(&bigger, true).await.unwrap();
    assert_eq!(
        figures(dst, &uuid).await,
        (2, Some(192 * 1024), PowerState::Running)
    );
    dst.destroy(&uuid).await.unwrap();
    src.finish_revert_migration(&spec, true).await.unwrap();
    assert_eq!(
        figures(src, &uuid).await,
        (1, Some(128 * 1024), PowerState::Running)
    );
    assert!(!there.join(&uuid).exists());

    // There, confirmed: nothing of it stays here.
    dst.prep_resize(&bigger).await.unwrap();
    src.migrate_disk_and_power_off(&uuid, "peer", &target)
        .await
        .unwrap();
    dst.finish_migration(&bigger, true).await.unwrap();
    src.confirm_migration(&uuid, false).await.unwrap();
    assert!(matches!(
        src.get_info(&uuid).await,
        Err(nova_virt::Error::InstanceNotFound(_))
    ));
    assert!(!here.join(&uuid).exists());
    assert_eq!(
        figures(dst, &uuid).await,
        (2, Some(192 * 1024), PowerState::Running)
    );
    // A destination that already holds its files refuses it.
    assert!(
        src.prep_resize(&spec).await.is_ok(),
        "nothing of it left here"
    );
    std::fs::create_dir_all(here.join(&uuid)).unwrap();
    assert!(src.prep_resize(&spec).await.is_err());
    dst.destroy(&uuid).await.unwrap();
}

/// A running live migration aborted (`virDomainAbortJob`): held to 1 MiB/s
/// (`[libvirt] live_migration_bandwidth`) so it is still copying when the
/// abort comes; the migration returns the cancellation, the guest keeps
/// running here, nothing of it is defined there, and the destination's
/// rollback removes what it prepared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_qemu_guest_live_migration_is_aborted() {
    let pair = TwoDaemons::start("abort", |c| c.live_migration_bandwidth = 1);
    let TwoDaemons {
        guest,
        peer_uri,
        here,
        there,
        src,
        dst,
    } = &pair;
    let spec = guest_spec(
        guest,
        format!(
            "6a1f0c3e-0000-4d2b-8c1a-{:012x}",
            std::process::id() as u64 + (3 << 40)
        ),
        "abort-guest",
        1,
    );
    let uuid = spec.uuid.clone();
    let _reap = Reap(uuid.clone(), peer_uri.clone());
    // Nothing runs: nothing to abort.
    src.spawn(&spec).await.unwrap();
    assert!(src.live_migration_abort(&uuid).await.is_err());
    wait_for_text(
        &here.join(&uuid).join("console.log"),
        "NOVA-RS GUEST BOOTED",
        Duration::from_secs(120),
    )
    .await;
    dst.pre_live_migration(&spec).await.unwrap();
    let started = std::time::Instant::now();
    let abort = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        src.live_migration_abort(&uuid).await
    };
    let (migrated, aborted) = tokio::join!(src.live_migration(&uuid, "peer"), abort);
    aborted.unwrap();
    let e = migrated.unwrap_err().to_string();
    assert!(e.contains("cancel") || e.contains("abort"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the abort ended it: {:?}",
        started.elapsed()
    );
    assert_eq!(
        src.get_info(&uuid).await.unwrap().state,
        PowerState::Running
    );
    assert!(matches!(
        dst.get_info(&uuid).await,
        Err(nova_virt::Error::InstanceNotFound(_))
    ));
    dst.rollback_live_migration_at_destination(&uuid)
        .await
        .unwrap();
    assert!(!there.join(&uuid).exists());
    assert!(here.join(&uuid).join("disk").exists());
    src.destroy(&uuid).await.unwrap();
}
