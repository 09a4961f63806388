//! LibvirtDriver: the contract on libvirt's `test:///default` (no daemon)
//! and on a real QEMU guest (TCG) under libvirtd. The real guest needs
//! `scripts/libvirt-setup` (scripts/test runs it); without it the test
//! fails and says so.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nova_virt::InstanceSpec;
use nova_virt::libvirt::{LibvirtConfig, LibvirtDriver};

use crate::contract::{Profile, lifecycle};

fn instances_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("nova-virt-{tag}-{}", std::process::id()))
}

/// The test guest's files (`NOVA_RS_GUEST_DIR`) with libvirtd running;
/// without them the test fails and says what to run.
pub(crate) fn guest_dir() -> PathBuf {
    let guest = PathBuf::from(
        std::env::var("NOVA_RS_GUEST_DIR").unwrap_or_else(|_| "/var/tmp/nova-rs/guest".into()),
    );
    for f in ["vmlinuz", "initrd.img", "base.qcow2"] {
        assert!(
            guest.join(f).exists(),
            "{} missing: run scripts/libvirt-setup (scripts/test does) to install libvirt + QEMU and build the test guest",
            guest.join(f).display()
        );
    }
    assert!(
        std::path::Path::new("/run/libvirt/libvirt-sock").exists(),
        "libvirtd is not running: run scripts/libvirt-setup (it starts virtlogd and libvirtd)"
    );
    guest
}

/// The test guest as `name` (`uuid`): one vCPU, 128 MiB, its kernel and
/// initrd booted directly, its root disk a qcow2 overlay on `base.qcow2`
/// (`root_gb`, 0: the image's size).
pub(crate) fn guest_spec(guest: &Path, uuid: String, name: &str, root_gb: u64) -> InstanceSpec {
    InstanceSpec {
        uuid,
        name: name.into(),
        flavor_name: "m1.nano".into(),
        vcpus: 1,
        memory_mb: 128,
        root_gb,
        image_path: Some(guest.join("base.qcow2").display().to_string()),
        kernel_path: Some(guest.join("vmlinuz").display().to_string()),
        ramdisk_path: Some(guest.join("initrd.img").display().to_string()),
        kernel_cmdline: Some("console=ttyS0 quiet".into()),
        ..InstanceSpec::default()
    }
}

#[tokio::test]
async fn libvirt_test_driver_meets_the_contract() {
    let cfg = LibvirtConfig {
        connection_uri: "test:///default".into(),
        virt_type: "test".into(),
        instances_path: instances_dir("test"),
        vnc_listen: None,
        soft_reboot_timeout: Duration::from_secs(2),
        event_poll_interval: Duration::from_millis(100),
        ..LibvirtConfig::default()
    };
    let d = LibvirtDriver::connect(cfg).unwrap();
    assert!(d.has_libvirt_events(), "lifecycle events come from libvirt");
    let spec = InstanceSpec {
        uuid: "6a1f0c3e-0000-4d2b-8c1a-000000000001".into(),
        name: "contract".into(),
        flavor_name: "m1.tiny".into(),
        vcpus: 1,
        memory_mb: 128,
        ..InstanceSpec::default()
    };
    let p = Profile {
        patience: Duration::from_secs(5),
        boot_marker: None,
        vnc_answers: false,
        password_needs_agent: false,
    };
    lifecycle(Arc::new(d), spec, &p).await;
}

#[tokio::test]
async fn libvirt_reports_unknown_uri_clearly() {
    let e = LibvirtDriver::connect(LibvirtConfig {
        connection_uri: "nosuch:///x".into(),
        ..LibvirtConfig::default()
    })
    .unwrap_err();
    assert!(
        e.to_string().contains("cannot connect to nosuch:///x"),
        "{e}"
    );
}

/// A real guest: QEMU under libvirtd, TCG (these machines have no usable
/// KVM), direct kernel boot with a qcow2 overlay root disk, through the
/// driver API only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_qemu_guest_meets_the_contract() {
    let guest = guest_dir();
    let cfg = LibvirtConfig {
        connection_uri: "qemu:///system".into(),
        virt_type: "qemu".into(),
        instances_path: instances_dir("qemu"),
        vnc_listen: Some("127.0.0.1".into()),
        soft_reboot_timeout: Duration::from_secs(20),
        event_poll_interval: Duration::from_millis(250),
        ..LibvirtConfig::default()
    };
    let d = LibvirtDriver::connect(cfg).unwrap();
    assert!(d.has_libvirt_events(), "lifecycle events come from libvirt");
    let spec = guest_spec(
        &guest,
        format!("6a1f0c3e-0000-4d2b-8c1a-{:012x}", std::process::id()),
        "real-guest",
        0,
    );
    let _reap = Reap(spec.uuid.clone());
    let p = Profile {
        patience: Duration::from_secs(90),
        boot_marker: Some("NOVA-RS GUEST BOOTED"),
        vnc_answers: true,
        password_needs_agent: true,
    };
    lifecycle(Arc::new(d), spec, &p).await;
}

/// Destroys and undefines the real guest when the test ends, also when it
/// fails half-way: a failed run must not leave a QEMU process eating the
/// machine's CPU (an already-destroyed guest makes these no-ops).
struct Reap(String);

impl Drop for Reap {
    fn drop(&mut self) {
        for args in [
            &["destroy", self.0.as_str()][..],
            &["undefine", "--managed-save", self.0.as_str()][..],
        ] {
            let _ = std::process::Command::new("virsh")
                .args(["-q", "-c", "qemu:///system"])
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// A real guest resized on its own host: the disk grown (never shrunk),
/// the domain redefined with the new vCPUs and memory, a revert back to
/// the kept disk and definition, a confirm dropping them; another host's
/// guest is taken at `prep_resize` unless its files are here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_qemu_guest_resizes_on_its_host() {
    use nova_virt::{ComputeDriver, PowerState, ResizeTarget};
    let guest = guest_dir();
    let dir = instances_dir("resize");
    let cfg = LibvirtConfig {
        connection_uri: "qemu:///system".into(),
        virt_type: "qemu".into(),
        instances_path: dir.clone(),
        soft_reboot_timeout: Duration::from_secs(2),
        event_poll_interval: Duration::from_millis(250),
        ..LibvirtConfig::default()
    };
    let d = LibvirtDriver::connect(cfg).unwrap();
    let spec = guest_spec(
        &guest,
        format!("6a1f0c3e-0001-4d2b-8c1a-{:012x}", std::process::id()),
        "resize-guest",
        1,
    );
    let _reap = Reap(spec.uuid.clone());
    async fn figures(
        d: &LibvirtDriver,
        uuid: String,
    ) -> (usize, Option<i64>, nova_virt::PowerState) {
        let g = d.get_instance_diagnostics(&uuid).await.unwrap();
        (g.cpus.len(), g.memory_max_kib, g.state)
    }
    d.spawn(&spec).await.unwrap();
    let disk = dir.join(&spec.uuid).join("disk");
    let size = |p: &std::path::Path| {
        let out = std::process::Command::new("qemu-img")
            .args(["info", "--output=json", "-U"])
            .arg(p)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["virtual-size"].as_u64().unwrap()
    };
    assert_eq!(size(&disk), 1 << 30);
    let bigger = InstanceSpec {
        vcpus: 2,
        memory_mb: 192,
        root_gb: 2,
        flavor_name: "m1.micro".into(),
        ..spec.clone()
    };
    // Resize, revert.
    d.prep_resize(&bigger).await.unwrap();
    let target = ResizeTarget {
        vcpus: 2,
        memory_mb: 192,
        root_gb: 2,
    };
    d.migrate_disk_and_power_off(&spec.uuid, "here", &target)
        .await
        .unwrap();
    assert_eq!(
        d.get_info(&spec.uuid).await.unwrap().state,
        PowerState::Shutdown
    );
    assert_eq!(size(&disk), 2 << 30, "the disk grew");
    d.finish_migration(&bigger, true).await.unwrap();
    assert_eq!(
        figures(&d, spec.uuid.clone()).await,
        (2, Some(192 * 1024), PowerState::Running)
    );
    d.finish_revert_migration(&spec, true).await.unwrap();
    assert_eq!(
        figures(&d, spec.uuid.clone()).await,
        (1, Some(128 * 1024), PowerState::Running)
    );
    assert_eq!(size(&disk), 1 << 30, "the kept disk is back");

    // Resize, confirm: nothing kept aside afterwards.
    d.migrate_disk_and_power_off(&spec.uuid, "here", &target)
        .await
        .unwrap();
    d.finish_migration(&bigger, true).await.unwrap();
    d.confirm_migration(&spec.uuid, true).await.unwrap();
    assert!(!dir.join(&spec.uuid).join("disk.resize").exists());
    assert!(!dir.join(&spec.uuid).join("resize.xml").exists());
    assert_eq!(
        figures(&d, spec.uuid.clone()).await,
        (2, Some(192 * 1024), PowerState::Running)
    );

    // A smaller disk is refused, nothing changed.
    let small = ResizeTarget {
        vcpus: 1,
        memory_mb: 128,
        root_gb: 1,
    };
    let e = d
        .migrate_disk_and_power_off(&spec.uuid, "here", &small)
        .await
        .unwrap_err();
    assert!(matches!(e, nova_virt::Error::ResizeRefused { .. }), "{e}");
    assert_eq!(
        d.get_info(&spec.uuid).await.unwrap().state,
        PowerState::Running
    );
    // Another host's guest comes in (a cold migration), unless files of
    // it are here already.
    let stranger = InstanceSpec {
        uuid: "6a1f0c3e-0002-4d2b-8c1a-000000000000".into(),
        ..spec.clone()
    };
    d.prep_resize(&stranger).await.unwrap();
    std::fs::create_dir_all(dir.join(&stranger.uuid)).unwrap();
    assert!(d.prep_resize(&stranger).await.is_err());
    d.destroy(&spec.uuid).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
