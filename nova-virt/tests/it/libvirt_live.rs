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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_qemu_guest_live_migrates_to_a_second_daemon_and_back() {
    let guest = PathBuf::from(
        std::env::var("NOVA_RS_GUEST_DIR").unwrap_or_else(|_| "/var/tmp/nova-rs/guest".into()),
    );
    let peer = peer_dir();
    let peer_socket = peer.join("run/libvirt/libvirt-sock");
    assert!(
        guest.join("base.qcow2").exists()
            && Path::new("/run/libvirt/libvirt-sock").exists()
            && peer_socket.exists(),
        "the test guest, libvirtd or the second (session) libvirtd is missing: run scripts/libvirt-setup (scripts/test does)"
    );
    let peer_uri = format!("qemu:///session?socket={}", peer_socket.display());
    let tag = format!("live-{}", std::process::id());
    let here = std::env::temp_dir().join(format!("nova-virt-{tag}"));
    let there = peer.join("instances").join(&tag);
    std::fs::create_dir_all(&here).unwrap();
    std::fs::create_dir_all(&there).unwrap();
    let owner = std::fs::metadata(peer.join("instances")).unwrap();
    std::os::unix::fs::chown(&there, Some(owner.uid()), Some(owner.gid())).unwrap();
    let cfg = |uri: &str, dir: &Path, to: &str, peer_dir: &Path| LibvirtConfig {
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
    let src = LibvirtDriver::connect(cfg("qemu:///system", &here, &peer_uri, &there)).unwrap();
    let dst = LibvirtDriver::connect(cfg(&peer_uri, &there, "qemu:///system", &here)).unwrap();
    let spec = InstanceSpec {
        uuid: format!(
            "6a1f0c3e-0000-4d2b-8c1a-{:012x}",
            std::process::id() as u64 + (1 << 40)
        ),
        name: "live-guest".into(),
        flavor_name: "m1.nano".into(),
        vcpus: 1,
        memory_mb: 128,
        root_gb: 1,
        image_path: Some(guest.join("base.qcow2").display().to_string()),
        kernel_path: Some(guest.join("vmlinuz").display().to_string()),
        ramdisk_path: Some(guest.join("initrd.img").display().to_string()),
        kernel_cmdline: Some("console=ttyS0 quiet".into()),
        ..InstanceSpec::default()
    };
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
    let _ = std::fs::remove_dir_all(&here);
    let _ = std::fs::remove_dir_all(&there);
}
