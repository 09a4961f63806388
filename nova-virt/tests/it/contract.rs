//! The driver contract: spawn → running → reboot → power off → power on →
//! pause → crash dump → admin password → rescue → unrescue → suspend →
//! resume → diagnostics → console output → destroy, lifecycle events,
//! host resources, and the error cases (unknown instance, double spawn,
//! destroy of a missing instance). Run against every driver.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nova_virt::{ComputeDriver, EventSink, InstanceSpec, LifecycleEvent, PowerState, Transition};

/// Records events.
#[derive(Debug, Default)]
pub(crate) struct Recorder(pub Mutex<Vec<LifecycleEvent>>);

impl EventSink for Recorder {
    fn emit(&self, event: LifecycleEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorder {
    pub(crate) async fn wait_for(&self, uuid: &str, t: Transition, within: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < within {
            if self
                .0
                .lock()
                .unwrap()
                .iter()
                .any(|e| e.uuid == uuid && e.transition == t)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// What a driver under test needs beyond the contract.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    /// How long state changes and events may take.
    pub patience: Duration,
    /// A line the guest prints once booted (real guests only).
    pub boot_marker: Option<&'static str>,
    /// Whether the VNC console must answer the RFB greeting.
    pub vnc_answers: bool,
    /// Whether setting the admin password needs a guest agent the guest
    /// lacks (a real guest without the QEMU agent channel): the driver
    /// must then say so (`AgentNotEnabled`, nova's 409).
    pub password_needs_agent: bool,
}

async fn wait_state(d: &dyn ComputeDriver, uuid: &str, want: PowerState, within: Duration) {
    let start = Instant::now();
    loop {
        let s = d.get_info(uuid).await.unwrap().state;
        if s == want {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{uuid}: still {s:?} after {within:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_console(
    d: &dyn ComputeDriver,
    uuid: &str,
    marker: &str,
    occurrences: usize,
    within: Duration,
) {
    let start = Instant::now();
    loop {
        let out = d.get_console_output(uuid).await.unwrap();
        if out.matches(marker).count() >= occurrences || (occurrences == 1 && out.contains(marker))
        {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{uuid}: {marker:?} not on the console after {within:?}:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The figures of a running instance: its state, one entry per vCPU, its
/// memory, named disks; a real guest has used CPU time, and its root disk
/// and memory statistics are read. An unknown instance is `InstanceNotFound`.
async fn check_diagnostics(d: &dyn ComputeDriver, spec: &InstanceSpec, p: &Profile) {
    let mut g = d.get_instance_diagnostics(&spec.uuid).await.unwrap();
    // A guest that was just resumed may not have run a whole clock tick on
    // its vCPU thread yet (the kernel counts thread time in ticks): it
    // will, as long as it runs.
    for _ in 0..120 {
        if p.boot_marker.is_none() || g.cpus.iter().all(|c| c.time.is_some_and(|t| t > 0)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        g = d.get_instance_diagnostics(&spec.uuid).await.unwrap();
    }
    assert_eq!(g.state, PowerState::Running, "{g:?}");
    assert_eq!(g.cpus.len(), spec.vcpus as usize, "{g:?}");
    assert_eq!(
        g.memory_max_kib,
        Some(spec.memory_mb as i64 * 1024),
        "{g:?}"
    );
    assert!(g.disks.iter().all(|k| !k.device.is_empty()), "{g:?}");
    if p.boot_marker.is_some() {
        assert!(
            g.cpus.iter().all(|c| c.time.is_some_and(|t| t > 0)),
            "{g:?}"
        );
        // Its root disk with libvirt's counters (this guest runs from its
        // initrd: it need not have read it).
        assert!(
            g.disks
                .iter()
                .any(|k| k.device == "vda" && k.read_requests.is_some()),
            "{g:?}"
        );
        assert!(g.memory_stats.contains_key("rss"), "{g:?}");
    }
    let e = d
        .get_instance_diagnostics("6a1f0c3e-ffff-4d2b-8c1a-000000000000")
        .await
        .unwrap_err();
    assert!(matches!(e, nova_virt::Error::InstanceNotFound(_)), "{e:?}");
}

/// The whole lifecycle through the driver API.
pub(crate) async fn lifecycle(d: Arc<dyn ComputeDriver>, spec: InstanceSpec, p: &Profile) {
    let rec = Arc::new(Recorder::default());
    d.register_event_sink(rec.clone());
    d.init_host("test-host").await.unwrap();
    let uuid = spec.uuid.clone();
    let u = uuid.as_str();

    d.spawn(&spec).await.unwrap();
    assert!(d.instance_exists(u).await.unwrap());
    assert!(d.list_instance_uuids().await.unwrap().contains(&uuid));
    wait_state(&*d, u, PowerState::Running, p.patience).await;
    assert!(
        rec.wait_for(u, Transition::Started, p.patience).await,
        "a Started event"
    );
    if let Some(m) = p.boot_marker {
        wait_console(&*d, u, m, 1, p.patience).await;
    }
    let err = d.spawn(&spec).await.unwrap_err();
    assert!(
        matches!(err, nova_virt::Error::InstanceExists(_)),
        "double spawn: {err:?}"
    );

    let host = d.host_resources().await.unwrap();
    for rc in ["VCPU", "MEMORY_MB"] {
        assert!(
            host.inventories.get(rc).is_some_and(|i| i.total > 0),
            "{rc} inventory: {host:?}"
        );
    }
    assert!(!host.supported_instances.is_empty());
    assert!(
        host.vcpus_used >= i64::from(spec.vcpus),
        "usage counts the instance: {host:?}"
    );

    d.reboot(u, false).await.unwrap();
    wait_state(&*d, u, PowerState::Running, p.patience).await;
    d.reboot(u, true).await.unwrap();
    wait_state(&*d, u, PowerState::Running, p.patience).await;
    if let Some(m) = p.boot_marker {
        wait_console(&*d, u, m, 1, p.patience).await;
    }

    d.power_off(u, p.patience).await.unwrap();
    wait_state(&*d, u, PowerState::Shutdown, p.patience).await;
    assert!(
        rec.wait_for(u, Transition::Stopped, p.patience).await,
        "a Stopped event"
    );
    d.power_on(u).await.unwrap();
    wait_state(&*d, u, PowerState::Running, p.patience).await;

    d.pause(u).await.unwrap();
    wait_state(&*d, u, PowerState::Paused, p.patience).await;
    assert!(
        rec.wait_for(u, Transition::Paused, p.patience).await,
        "a Paused event"
    );
    d.unpause(u).await.unwrap();
    wait_state(&*d, u, PowerState::Running, p.patience).await;

    // A crash dump (NMI) leaves a running guest running.
    d.trigger_crash_dump(u).await.unwrap();
    wait_state(&*d, u, PowerState::Running, p.patience).await;
    let r = d.set_admin_password(u, "root", "n3w-pass").await;
    if p.password_needs_agent {
        assert!(
            matches!(r, Err(nova_virt::Error::AgentNotEnabled(_))),
            "no guest agent: {r:?}"
        );
    } else {
        r.unwrap();
    }
    let e = d
        .trigger_crash_dump("6a1f0c3e-ffff-4d2b-8c1a-00000000ffff")
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "crash dump of a missing guest: {e}");

    // Rescue: the guest runs again (from the rescue disk, its own
    // attached); unrescue brings its own disk back; neither twice.
    let boots = |out: String| p.boot_marker.map_or(0, |m| out.matches(m).count());
    let before = boots(d.get_console_output(u).await.unwrap());
    d.rescue(&spec, "rescue-image").await.unwrap();
    wait_state(&*d, u, PowerState::Running, p.patience).await;
    if let Some(m) = p.boot_marker {
        wait_console(&*d, u, m, before + 1, p.patience).await;
    }
    assert!(
        d.rescue(&spec, "rescue-image").await.is_err(),
        "rescue twice"
    );
    d.unrescue(u).await.unwrap();
    wait_state(&*d, u, PowerState::Running, p.patience).await;
    if let Some(m) = p.boot_marker {
        wait_console(&*d, u, m, before + 2, p.patience).await;
    }
    assert!(d.unrescue(u).await.is_err(), "unrescue twice");

    d.suspend(u).await.unwrap();
    wait_state(&*d, u, PowerState::Suspended, p.patience).await;
    d.resume(u).await.unwrap();
    wait_state(&*d, u, PowerState::Running, p.patience).await;
    check_diagnostics(&*d, &spec, p).await;

    let console = d.get_console_output(u).await.unwrap();
    if let Some(m) = p.boot_marker {
        assert!(console.contains(m), "console: {console}");
    }
    if p.vnc_answers {
        let c = d.get_vnc_console(u).await.unwrap();
        let mut s = tokio::net::TcpStream::connect((c.host.as_str(), c.port))
            .await
            .unwrap();
        let mut greeting = [0u8; 12];
        tokio::time::timeout(
            p.patience,
            tokio::io::AsyncReadExt::read_exact(&mut s, &mut greeting),
        )
        .await
        .expect("the VNC server answers")
        .unwrap();
        assert_eq!(&greeting, b"RFB 003.008\n");
    }

    if p.boot_marker.is_some() {
        // The guest stops behind the driver's back (as when it crashes or
        // an operator stops it): compute still hears of it.
        let stopped = |r: &Recorder| {
            r.0.lock()
                .unwrap()
                .iter()
                .filter(|e| e.uuid == u && e.transition == Transition::Stopped)
                .count()
        };
        let before = stopped(&rec);
        let name = format!("instance-{u}");
        let out = std::process::Command::new("virsh")
            .args(["-c", "qemu:///system", "destroy", &name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "virsh shutdown: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_state(&*d, u, PowerState::Shutdown, p.patience).await;
        let start = Instant::now();
        while stopped(&rec) == before {
            assert!(
                start.elapsed() < p.patience,
                "no Stopped event for a guest stopped behind the driver's back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    d.destroy(u).await.unwrap();
    assert!(!d.instance_exists(u).await.unwrap());
    let err = d.get_info(u).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = d.destroy(u).await.unwrap_err();
    assert!(err.is_not_found(), "destroying a missing instance: {err:?}");
    let err = d
        .power_on("00000000-0000-0000-0000-00000000dead")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}
