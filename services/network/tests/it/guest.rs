//! A real QEMU guest (the test guest of scripts/libvirt-setup, TCG) plugged
//! by nova-virt's libvirt driver into a network `LinuxDatapath` built: it
//! gets its fixed address from the network's dnsmasq, answers ping from the
//! network's namespace, reads the metadata service at 169.254.169.254 by
//! that address, and gets it all back after a hard reboot.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nova_network::{Datapath, HostEntry, namespace_name};
use nova_virt::libvirt::{LibvirtConfig, LibvirtDriver};
use nova_virt::{ComputeDriver, InstanceSpec, Vif};
use uuid::Uuid;

use crate::support::{Cleanup, Upstream, datapath, network, ok, prefix24, require_host, sh};

async fn console_until(d: &LibvirtDriver, uuid: &str, what: &str, times: usize, within: Duration) {
    let t = Instant::now();
    let mut last = String::new();
    while t.elapsed() < within {
        last = d.get_console_output(uuid).await.unwrap_or_default();
        if last.matches(what).count() >= times {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{what:?} not seen {times}× on the console within {within:?}:\n{last}");
}

async fn ping(ns: &str, ip: &str, within: Duration) {
    let t = Instant::now();
    while t.elapsed() < within {
        if ok(&format!("ip netns exec {ns} ping -c 1 -W 1 {ip}")) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{ip} does not answer ping from {ns}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_guest_gets_its_fixed_ip_by_dhcp_answers_ping_and_reads_metadata() {
    require_host();
    let guest = PathBuf::from(
        std::env::var("NOVA_RS_GUEST_DIR").unwrap_or_else(|_| "/var/tmp/nova-rs/guest".into()),
    );
    for f in ["vmlinuz", "initrd.img", "base.qcow2"] {
        assert!(
            guest.join(f).exists(),
            "{} missing: run scripts/libvirt-setup (scripts/test does)",
            guest.join(f).display()
        );
    }
    assert!(
        std::path::Path::new("/run/libvirt/libvirt-sock").exists(),
        "libvirtd is not running: run scripts/libvirt-setup"
    );
    let upstream = Upstream::default();
    let up = upstream.start().await;
    let (dp, state) = datapath("guest", Some(up));
    let net = network(1450);
    let id = net.network_id;
    let (ns, p) = (namespace_name(id), prefix24(&net));
    let mut c = Cleanup::default();
    c.network(id, &state);
    dp.ensure_network(&net).await.unwrap();

    let port = Uuid::new_v4();
    let b = port.as_bytes();
    let mac = format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2]);
    let ip = format!("{p}.10");
    dp.set_hosts(
        id,
        &[HostEntry {
            port_id: port,
            mac: mac.clone(),
            ip: ip.parse().unwrap(),
            hostname: "net-guest".into(),
        }],
    )
    .await
    .unwrap();
    let uuid = format!(
        "6a1f0c3e-0000-4d2b-8c1a-{}",
        &Uuid::new_v4().simple().to_string()[..12]
    );
    upstream
        .by_ip
        .lock()
        .unwrap()
        .insert(ip.clone(), uuid.clone());
    let tap = format!("tap{}", &port.to_string()[..11]);
    c.0.push(format!(
        "virsh -q -c qemu:///system destroy {uuid}; virsh -q -c qemu:///system undefine --managed-save {uuid}"
    ));

    let d = LibvirtDriver::connect(LibvirtConfig {
        connection_uri: "qemu:///system".into(),
        virt_type: "qemu".into(),
        instances_path: state.join("instances"),
        vnc_listen: None,
        soft_reboot_timeout: Duration::from_secs(5),
        event_poll_interval: Duration::from_millis(250),
        ..LibvirtConfig::default()
    })
    .unwrap();
    let spec = InstanceSpec {
        uuid: uuid.clone(),
        instance_name: format!("datapath-{}", &uuid[24..]),
        name: "net-guest".into(),
        flavor_name: "m1.nano".into(),
        vcpus: 1,
        memory_mb: 128,
        image_path: Some(guest.join("base.qcow2").display().to_string()),
        kernel_path: Some(guest.join("vmlinuz").display().to_string()),
        ramdisk_path: Some(guest.join("initrd.img").display().to_string()),
        kernel_cmdline: Some("console=ttyS0 quiet".into()),
        network_info: vec![Vif {
            id: port.to_string(),
            address: mac.clone(),
            vif_type: "bridge".into(),
            bridge: Some(net.bridge.clone()),
            devname: Some(tap.clone()),
            fixed_ips: vec![ip.clone()],
            mtu: Some(1450),
        }],
        ..InstanceSpec::default()
    };
    d.spawn(&spec).await.unwrap();
    // libvirt made the tap on the network's bridge, at its MTU.
    assert_eq!(
        sh(&format!("basename $(readlink /sys/class/net/{tap}/master)")).trim(),
        net.bridge
    );
    assert_eq!(sh(&format!("cat /sys/class/net/{tap}/mtu")).trim(), "1450");

    let lease = format!("NOVA-RS NET eth0 ip={ip}/24 router={p}.1 mtu=1450");
    console_until(&d, &uuid, &lease, 1, Duration::from_secs(180)).await;
    ping(&ns, &ip, Duration::from_secs(30)).await;
    console_until(
        &d,
        &uuid,
        &format!("NOVA-RS METADATA uuid={uuid}"),
        1,
        Duration::from_secs(60),
    )
    .await;
    let leases = std::fs::read_to_string(state.join(id.to_string()).join("leases")).unwrap();
    assert!(leases.contains(&mac) && leases.contains(&ip), "{leases}");

    // A hard reboot plugs again: the guest comes back on its address.
    d.reboot(&uuid, true).await.unwrap();
    console_until(&d, &uuid, &lease, 2, Duration::from_secs(180)).await;
    ping(&ns, &ip, Duration::from_secs(30)).await;

    d.destroy(&uuid).await.unwrap();
    assert!(!std::path::Path::new(&format!("/sys/class/net/{tap}")).exists());
    assert!(!ok(&format!("ip netns exec {ns} ping -c 1 -W 1 {ip}")));
    dp.delete_network(id).await.unwrap();
    assert!(!std::path::Path::new(&format!("/sys/class/net/{}", net.bridge)).exists());
}
