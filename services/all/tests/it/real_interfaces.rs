//! Interface hot-plug on a real guest (issue 21): nova-all's libvirt
//! compute (QEMU, TCG) on the built-in network service with its Linux
//! datapath (a bridge, a `qdhcp-` namespace, dnsmasq). A guest booted on
//! the flat network `private` gets a second port through `POST
//! /servers/{id}/os-interface`: the domain (live and persistent) has its
//! `bridge` interface (the network's bridge, the port's MAC, `virtio`,
//! nova's tap name), the port is ACTIVE and bound to the compute, and the
//! guest sees the NIC, gets the port's fixed IP on it by DHCP and answers
//! ping there from the network's namespace. `DELETE
//! /servers/{id}/os-interface/{port}` takes it out of the live domain and
//! the definition, the guest loses the NIC, and the user's port is unbound
//! (kept), as nova does. A paused guest keeps a device: the detach fails
//! after `[libvirt] device_detach_attempts` waits; a stopped server's
//! definition alone changes. The guest's shell is reached on its TCP serial
//! port (`[serial_console] enabled`).

use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use crate::cluster::Cluster;
use crate::network_boot::{neutron, private_net};
use crate::real_guest::{Reap, boot_active, guest_dir, libvirt_cluster, upload_image, virsh};

fn ok(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("{{ {cmd}; }} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn out(cmd: &str) -> String {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Removes the network's datapath (namespace, dnsmasq, bridge) and the
/// cluster's state, also after a failure.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in self.0.iter().rev() {
            let _ = ok(c);
        }
    }
}

/// The `<interface>` element of `xml` with MAC `mac`.
fn interface_of(xml: &str, mac: &str) -> Option<String> {
    xml.split("<interface ")
        .skip(1)
        .map(|s| s.split("</interface>").next().unwrap_or_default())
        .find(|s| s.contains(&format!("<mac address='{mac}'/>")))
        .map(str::to_owned)
}

fn domain_xml(name: &str, inactive: bool) -> String {
    let mut args = vec!["dumpxml", name];
    if inactive {
        args.push("--inactive");
    }
    let o = virsh(&args);
    assert!(o.status.success(), "virsh dumpxml {name}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

async fn port(c: &Cluster, id: &str) -> (u16, Value) {
    let (s, b) = neutron(c, "admin", Method::GET, &format!("ports/{id}"), None).await;
    (s, b["port"].clone())
}

/// Polls `f` every 500 ms until it gives `Some` (`secs` seconds: TCG
/// guests on shared cores are slow).
async fn until<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The guest's shell on its TCP serial port (what it prints lands in the
/// console log, read through `os-getConsoleOutput`).
struct Shell(tokio::net::tcp::OwnedWriteHalf);

impl Shell {
    async fn open(live_xml: &str) -> Shell {
        let (host, port) = nova_virt::libvirt::xml::serial_tcp(live_xml)
            .unwrap_or_else(|| panic!("no TCP serial port in {live_xml}"));
        let s = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .unwrap();
        let (mut r, w) = s.into_split();
        // Drains what the guest echoes (the log file keeps it).
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut r, &mut tokio::io::sink()).await;
        });
        let mut sh = Shell(w);
        sh.line("").await;
        sh
    }

    async fn line(&mut self, cmd: &str) {
        self.0
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_is_hot_plugged_into_a_real_guest_and_hot_unplugged_again() {
    let guest = guest_dir();
    assert!(
        ok("command -v dnsmasq && command -v ip && command -v ping"),
        "dnsmasq, ip and ping are needed (scripts/test installs dnsmasq-base)"
    );
    let state = crate::cluster::temp_dir("hotplug-net");
    let state_s = state.display().to_string();
    let c = libvirt_cluster(&[
        ("network", "enabled", "true"),
        ("network", "bind_port", "0"),
        ("network", "datapath", "linux"),
        ("network", "state_path", &state_s),
        ("network", "metadata_url", ""),
        ("serial_console", "enabled", "true"),
        ("serial_console", "serialproxy_host", "127.0.0.1"),
        ("libvirt", "device_detach_attempts", "2"),
        ("libvirt", "device_detach_timeout", "5"),
    ])
    .await;
    let net = private_net(&c).await;
    let s = &net[..11];
    let ns = format!("qdhcp-{net}");
    let _cleanup = Cleanup(vec![format!(
        "for p in $(ip netns pids {ns}); do kill -9 $p; done; ip netns del {ns}; \
             ip link del dhcp{s}; ip link del brq{s}; rm -rf {state_s}"
    )]);
    let image = upload_image(&c, "nova-rs-guest", &guest.join("base.qcow2")).await;
    let server = boot_active(&c, &image, json!({"networks": [{"uuid": net}]})).await;
    let id = server["id"].as_str().unwrap().to_owned();
    let name = server["OS-EXT-SRV-ATTR:instance_name"]
        .as_str()
        .unwrap()
        .to_owned();
    let host = server["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_owned();
    let _reap = Reap(name.clone());
    let first_ip = server["addresses"]["private"][0]["addr"]
        .as_str()
        .unwrap_or_else(|| panic!("a fixed IP on private: {server}"))
        .to_owned();
    // The boot NIC gets its address from the network's dnsmasq.
    crate::real_guest::wait_console(&c, &id, &format!("NOVA-RS NET eth0 ip={first_ip}/")).await;

    // A port of the user's, attached to the running guest.
    let (st, b) = neutron(
        &c,
        "admin",
        Method::POST,
        "ports",
        Some(json!({"port": {"network_id": net, "name": "hotplug"}})),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let pid = b["port"]["id"].as_str().unwrap().to_owned();
    let mac = b["port"]["mac_address"].as_str().unwrap().to_owned();
    let ip = b["port"]["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_owned();
    let tap = format!("tap{}", &pid[..11]);
    let r = c
        .post(
            &format!("/v2.1/servers/{id}/os-interface"),
            "admin",
            json!({"interfaceAttachment": {"port_id": pid}}),
        )
        .await;
    assert_eq!(r.status, 200, "attach: {}", r.body);
    let a = &r.body["interfaceAttachment"];
    assert_eq!(a["port_id"], pid.as_str(), "{a}");
    assert_eq!(a["mac_addr"], mac.as_str(), "{a}");
    assert_eq!(a["fixed_ips"][0]["ip_address"], ip.as_str(), "{a}");

    // The domain has it, live and in its definition: nova's bridge VIF.
    for inactive in [false, true] {
        let xml = domain_xml(&name, inactive);
        let i = interface_of(&xml, &mac)
            .unwrap_or_else(|| panic!("no interface {mac} (inactive: {inactive}): {xml}"));
        assert!(i.starts_with("type='bridge'"), "{i}");
        assert!(i.contains(&format!("<source bridge='brq{s}'/>")), "{i}");
        assert!(i.contains(&format!("<target dev='{tap}'/>")), "{i}");
        assert!(i.contains("<model type='virtio'/>"), "{i}");
    }
    // libvirt made nova's tap and put it on the network's bridge.
    assert!(
        std::path::Path::new(&format!("/sys/class/net/brq{s}/brif/{tap}")).exists(),
        "{tap} is not on brq{s}"
    );
    // The port is bound to the compute and ACTIVE.
    let (st, p) = port(&c, &pid).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["status"], "ACTIVE", "{p}");
    assert_eq!(p["binding:host_id"], host.as_str(), "{p}");
    assert_eq!(p["device_id"], id.as_str(), "{p}");
    assert_eq!(p["device_owner"], "compute:nova", "{p}");
    let r = c
        .get(&format!("/v2.1/servers/{id}/os-interface"), "admin")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["interfaceAttachments"].as_array().map(Vec::len),
        Some(2),
        "{}",
        r.body
    );

    // The guest sees a NIC with the port's MAC and gets the port's fixed
    // IP on it from dnsmasq (which serves that MAC only that address);
    // with arp_ignore only the new NIC answers ARP for it.
    let mut sh = Shell::open(&domain_xml(&name, false)).await;
    sh.line(&format!(
        "d=; i=0; while [ -z \"$d\" ] && [ $i -lt 120 ]; do for n in /sys/class/net/*; do \
         [ \"$(cat $n/address)\" = {mac} ] && d=${{n##*/}}; done; i=$((i+1)); sleep 1; done; \
         echo \"HOTPLUG NIC=$d\""
    ))
    .await;
    let console = crate::real_guest::wait_console(&c, &id, "HOTPLUG NIC=eth").await;
    let dev = console
        .split("HOTPLUG NIC=")
        .filter_map(|t| t.split_whitespace().next())
        .find(|d| d.starts_with("eth"))
        .unwrap()
        .to_owned();
    assert_ne!(dev, "eth0", "the boot NIC is eth0");
    sh.line(&format!(
        "echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore; ip link set {dev} up; \
         udhcpc -i {dev} -s /etc/udhcpc.script -n -q -t 15 -T 2 >/dev/null 2>&1 &"
    ))
    .await;
    crate::real_guest::wait_console(&c, &id, &format!("NOVA-RS NET {dev} ip={ip}/")).await;
    until(60, &format!("{ip} answers ping from {ns}"), || {
        let cmd = format!("ip netns exec {ns} ping -c 1 -W 1 {ip}");
        async move { ok(&cmd).then_some(()) }
    })
    .await;
    let neigh = out(&format!("ip -n {ns} neigh show {ip}"));
    assert!(neigh.contains(&mac), "{ip} is at {mac}: {neigh}");

    // Detach: out of the live domain and the definition, out of the guest.
    let r = c
        .call(
            Method::DELETE,
            &format!("/v2.1/servers/{id}/os-interface/{pid}"),
            "admin",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 202, "detach: {}", r.body);
    let (n, m) = (name.clone(), mac.clone());
    until(120, "the interface leaves the live domain", || {
        let x = domain_xml(&n, false);
        let gone = interface_of(&x, &m).is_none();
        async move { gone.then_some(()) }
    })
    .await;
    let xml = domain_xml(&name, true);
    assert!(interface_of(&xml, &mac).is_none(), "still defined: {xml}");
    assert!(
        !std::path::Path::new(&format!("/sys/class/net/{tap}")).exists(),
        "{tap} left on the host"
    );
    // The user's port is unbound and kept (nova deletes only the ports it made).
    let p = until(60, "the port is unbound", || {
        let c = &c;
        let pid = pid.clone();
        async move {
            let (st, p) = port(c, &pid).await;
            assert_eq!(st, 200, "the given port is kept: {p}");
            (p["device_id"] == "").then_some(p)
        }
    })
    .await;
    assert_eq!(p["binding:host_id"], "", "{p}");
    assert_eq!(p["device_owner"], "", "{p}");
    let r = c
        .get(&format!("/v2.1/servers/{id}/os-interface"), "admin")
        .await;
    assert_eq!(
        r.body["interfaceAttachments"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.body
    );
    sh.line(&format!(
        "i=0; while [ -e /sys/class/net/{dev} ] && [ $i -lt 120 ]; do i=$((i+1)); sleep 1; done; \
         [ -e /sys/class/net/{dev} ] || echo \"HOTPLUG GONE {dev} $((40+2))\""
    ))
    .await;
    crate::real_guest::wait_console(&c, &id, &format!("HOTPLUG GONE {dev} 42")).await;
    assert!(
        !ok(&format!("ip netns exec {ns} ping -c 2 -W 1 {ip}")),
        "{ip} still answers after the detach"
    );
    // The boot NIC is untouched.
    assert!(ok(&format!("ip netns exec {ns} ping -c 2 -W 2 {first_ip}")));

    // A paused guest cannot release a device: each live detach request
    // waits `device_detach_timeout`, and after `device_detach_attempts`
    // the detach fails (nova's DeviceDetachFailed): the port stays bound
    // and the server's. Once the guest runs again a detach succeeds and
    // deletes the port nova made for the attach.
    let r = c
        .post(
            &format!("/v2.1/servers/{id}/os-interface"),
            "admin",
            json!({"interfaceAttachment": {"net_id": net}}),
        )
        .await;
    assert_eq!(r.status, 200, "attach by network: {}", r.body);
    let made = r.body["interfaceAttachment"]["port_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let made_mac = r.body["interfaceAttachment"]["mac_addr"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(interface_of(&domain_xml(&name, false), &made_mac).is_some());
    let r = c
        .post(
            &format!("/v2.1/servers/{id}/action"),
            "admin",
            json!({"pause": null}),
        )
        .await;
    assert_eq!(r.status, 202, "pause: {}", r.body);
    c.wait_status("admin", &id, "PAUSED").await;
    let detach = |port: String| {
        let c = &c;
        let id = id.clone();
        async move {
            let r = c
                .call(
                    Method::DELETE,
                    &format!("/v2.1/servers/{id}/os-interface/{port}"),
                    "admin",
                    "2.1",
                    None,
                )
                .await;
            assert_eq!(r.status, 202, "detach: {}", r.body);
        }
    };
    detach(made.clone()).await;
    until(180, "the detach from the paused guest fails", || async {
        let ev = crate::interfaces::action_events(&c, &id, "detach_interface").await;
        match ev.first().map(|e| e["result"].clone()) {
            Some(r) if r == "Error" => Some(()),
            Some(r) if r == "Success" => panic!("detached from a paused guest: {ev:?}"),
            _ => None,
        }
    })
    .await;
    assert!(
        interface_of(&domain_xml(&name, false), &made_mac).is_some(),
        "the paused guest still has the device"
    );
    let made_tap = format!("tap{}", &made[..11]);
    assert!(
        std::path::Path::new(&format!("/sys/class/net/brq{s}/brif/{made_tap}")).exists(),
        "the device's tap stays on the bridge"
    );
    let (st, p) = port(&c, &made).await;
    assert_eq!(st, 200, "the port is kept: {p}");
    assert_eq!(p["device_id"], id.as_str(), "{p}");
    assert_eq!(p["binding:host_id"], host.as_str(), "{p}");
    let r = c
        .get(&format!("/v2.1/servers/{id}/os-interface"), "admin")
        .await;
    assert_eq!(
        r.body["interfaceAttachments"].as_array().map(Vec::len),
        Some(2),
        "{}",
        r.body
    );
    let r = c
        .post(
            &format!("/v2.1/servers/{id}/action"),
            "admin",
            json!({"unpause": null}),
        )
        .await;
    assert_eq!(r.status, 202, "unpause: {}", r.body);
    c.wait_status("admin", &id, "ACTIVE").await;
    detach(made.clone()).await;
    until(180, "the port nova made is deleted", || async {
        (port(&c, &made).await.0 == 404).then_some(())
    })
    .await;
    assert!(interface_of(&domain_xml(&name, false), &made_mac).is_none());
    assert!(interface_of(&domain_xml(&name, true), &made_mac).is_none());
    assert!(
        !std::path::Path::new(&format!("/sys/class/net/{made_tap}")).exists(),
        "{made_tap} left on the host"
    );
    let r = c
        .get(&format!("/v2.1/servers/{id}/os-interface"), "admin")
        .await;
    assert_eq!(
        r.body["interfaceAttachments"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.body
    );

    // A stopped server: attach and detach change its definition only.
    let r = c
        .post(
            &format!("/v2.1/servers/{id}/action"),
            "admin",
            json!({"os-stop": null}),
        )
        .await;
    assert_eq!(r.status, 202, "stop: {}", r.body);
    until(120, "the server is SHUTOFF", || async {
        let r = c.get(&format!("/v2.1/servers/{id}"), "admin").await;
        let s = &r.body["server"];
        (s["status"] == "SHUTOFF" && s["OS-EXT-STS:task_state"].is_null()).then_some(())
    })
    .await;
    let r = c
        .post(
            &format!("/v2.1/servers/{id}/os-interface"),
            "admin",
            json!({"interfaceAttachment": {"net_id": net}}),
        )
        .await;
    assert_eq!(r.status, 200, "attach to a stopped server: {}", r.body);
    let (cold, cold_mac) = (
        r.body["interfaceAttachment"]["port_id"]
            .as_str()
            .unwrap()
            .to_owned(),
        r.body["interfaceAttachment"]["mac_addr"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    assert!(!virsh(&["domstate", &name]).stdout.starts_with(b"running"));
    let i = interface_of(&domain_xml(&name, true), &cold_mac).expect("defined");
    assert!(i.contains(&format!("<source bridge='brq{s}'/>")), "{i}");
    detach(cold.clone()).await;
    until(
        120,
        "the port nova made for the stopped server is deleted",
        || async { (port(&c, &cold).await.0 == 404).then_some(()) },
    )
    .await;
    assert!(interface_of(&domain_xml(&name, true), &cold_mac).is_none());

    let r = c.delete(&format!("/v2.1/servers/{id}"), "admin").await;
    assert_eq!(r.status, 204);
    c.wait_gone("admin", &id).await;
    assert!(!virsh(&["domuuid", &name]).status.success(), "domain left");
    c.stop().await;
}
