//! `LinuxDatapath` alone: what `ensure_network` builds, DHCP and metadata
//! for a fake guest (a namespace of its own with a veth on the bridge),
//! convergence after crashes, and a delete that leaves nothing.

use std::time::Duration;

use nova_network::{Datapath, HostEntry, LinuxDatapath, namespace_name};
use uuid::Uuid;

use crate::support::{Cleanup, Upstream, datapath, network, ok, prefix24, require_host, sh};

fn dnsmasq_pid(dp: &LinuxDatapath, id: Uuid) -> u32 {
    dp.dnsmasq_pid(id).expect("dnsmasq runs")
}

/// A fake guest: namespace `g`, a veth whose host end is on `bridge`, MAC `mac`.
fn fake_guest(c: &mut Cleanup, bridge: &str, mac: &str) -> (String, String) {
    let tag = &Uuid::new_v4().simple().to_string()[..8];
    let (g, host, inner) = (
        format!("nrs-guest-{tag}"),
        format!("nrsg{tag}"),
        format!("nrsi{tag}"),
    );
    c.0.push(format!("ip netns del {g}; ip link del {host}"));
    sh(&format!(
        "ip netns add {g} && ip link add {host} type veth peer name {inner} && \
         ip link set {inner} netns {g} && ip -n {g} link set {inner} address {mac} up && \
         ip -n {g} link set lo up && ip link set {host} master {bridge} up"
    ));
    (g, inner)
}

/// Runs busybox's DHCP client in the fake guest: the lease it got.
fn dhcp_lease(g: &str, dev: &str) -> String {
    let script = std::env::temp_dir().join(format!("nrs-udhcpc-{}.sh", Uuid::new_v4().simple()));
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] && echo \"LEASE ip=$ip mask=$mask router=$router mtu=$mtu hostname=$hostname staticroutes=$staticroutes\"\nexit 0\n",
    )
    .unwrap();
    sh(&format!("chmod 755 {}", script.display()));
    let out = sh(&format!(
        "ip netns exec {g} busybox udhcpc -f -q -n -t 8 -T 1 -O mtu -O staticroutes -i {dev} -s {}",
        script.display()
    ));
    let _ = std::fs::remove_file(&script);
    out.lines()
        .find(|l| l.starts_with("LEASE "))
        .unwrap_or_else(|| panic!("no lease: {out}"))
        .to_owned()
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_gets_bridge_namespace_dhcp_and_metadata_and_is_removed() {
    require_host();
    let upstream = Upstream::default();
    let up = upstream.start().await;
    let (dp, state) = datapath("net", Some(up.clone()));
    let net = network(1400);
    let id = net.network_id;
    let (ns, br, p) = (namespace_name(id), net.bridge.clone(), prefix24(&net));
    let mut c = Cleanup::default();
    c.network(id, &state);

    dp.ensure_network(&net).await.unwrap();
    // The bridge: up, the network's MTU, no address of the host's.
    assert_eq!(sh(&format!("cat /sys/class/net/{br}/mtu")).trim(), "1400");
    let host_addrs = sh(&format!("ip -o addr show dev {br}"));
    assert!(!host_addrs.contains("inet"), "{host_addrs}");
    assert!(
        !sh("ip -o -4 addr show").contains(&format!("{p}.")),
        "a guest subnet address on the host"
    );
    let veth = format!("dhcp{}", &id.to_string()[..11]);
    assert_eq!(
        sh(&format!(
            "basename $(readlink /sys/class/net/{veth}/master)"
        ))
        .trim(),
        br
    );
    // The namespace: the gateway and the metadata address.
    let inside = sh(&format!("ip -n {ns} -o -4 addr show"));
    assert!(inside.contains(&format!("{p}.1/24")), "{inside}");
    assert!(inside.contains("169.254.169.254/32"), "{inside}");
    // dnsmasq inside it, on our files.
    let pid = dnsmasq_pid(&dp, id);
    assert!(
        sh(&format!("ip netns pids {ns}"))
            .split_whitespace()
            .any(|x| x == pid.to_string())
    );
    let cmd = sh(&format!("tr '\\0' ' ' < /proc/{pid}/cmdline"));
    let dir = state.join(id.to_string());
    for want in [
        format!("--dhcp-hostsfile={}/host", dir.display()),
        format!("--pid-file={}/pid", dir.display()),
        "--no-resolv".to_owned(),
        format!(
            "--dhcp-range=set:subnet-{},{p}.0,static,255.255.255.0,86400s",
            &id.to_string()[..11]
        ),
        format!("option:router,{p}.1"),
        "option:mtu,1400".to_owned(),
    ] {
        assert!(cmd.contains(&want), "{want} not in {cmd}");
    }

    // Idempotent: the same dnsmasq, the same addresses.
    dp.ensure_network(&net).await.unwrap();
    assert_eq!(dnsmasq_pid(&dp, id), pid);
    assert_eq!(sh(&format!("ip -n {ns} -o -4 addr show")), inside);

    // Hosts: written, dnsmasq told (SIGHUP, same process), a fake guest leased.
    let mac = "fa:16:3e:5a:00:07";
    let hosts = [
        HostEntry {
            port_id: Uuid::new_v4(),
            mac: mac.into(),
            ip: format!("{p}.7").parse().unwrap(),
            hostname: "vm-7".into(),
        },
        HostEntry {
            port_id: Uuid::new_v4(),
            mac: "fa:16:3e:5a:00:08".into(),
            ip: format!("{p}.8").parse().unwrap(),
            hostname: "vm-8".into(),
        },
    ];
    dp.set_hosts(id, &hosts).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("host")).unwrap(),
        format!("{mac},vm-7,{p}.7\nfa:16:3e:5a:00:08,vm-8,{p}.8\n")
    );
    let log = dir.join("dnsmasq.log");
    wait_for("dnsmasq to re-read its hosts", || {
        std::fs::read_to_string(&log)
            .is_ok_and(|l| l.contains(&format!("read {}/host", dir.display())))
    })
    .await;
    assert_eq!(dnsmasq_pid(&dp, id), pid);
    let (g, dev) = fake_guest(&mut c, &br, mac);
    let lease = dhcp_lease(&g, &dev);
    assert!(
        lease.contains(&format!(
            "ip={p}.7 mask=24 router={p}.1 mtu=1400 hostname=vm-7"
        )),
        "{lease}"
    );
    // A MAC that is not a port gets nothing (static ranges only).
    let (g2, dev2) = fake_guest(&mut c, &br, "fa:16:3e:5a:00:99");
    assert!(!ok(&format!(
        "ip netns exec {g2} busybox udhcpc -f -q -n -t 2 -T 1 -i {dev2} -s /bin/true"
    )));

    // The guest at its address: ping from the namespace, metadata by its address.
    sh(&format!(
        "ip -n {g} addr add {p}.7/24 dev {dev} && ip -n {g} route add default via {p}.1"
    ));
    sh(&format!("ip netns exec {ns} ping -c 1 -W 5 {p}.7"));
    upstream
        .by_ip
        .lock()
        .unwrap()
        .insert(format!("{p}.7"), "the-instance".into());
    let md = sh(&format!(
        "ip netns exec {g} curl -sS -m 10 -H 'X-Forwarded-For: 10.9.9.9' -H 'X-Instance-ID: forged' \
         http://169.254.169.254/openstack/latest/meta_data.json?x=1"
    ));
    let md: serde_json::Value = serde_json::from_str(&md).unwrap();
    assert_eq!(md["uuid"], "the-instance", "{md}");
    assert_eq!(
        md["forwarded_for"],
        serde_json::json!([format!("{p}.7")]),
        "{md}"
    );
    assert_eq!(md["network"], serde_json::json!([id.to_string()]), "{md}");
    assert_eq!(md["instance_id"], serde_json::json!([]), "{md}");
    assert_eq!(md["path"], "/openstack/latest/meta_data.json?x=1");
    // The test guest's client: busybox wget.
    let md = sh(&format!(
        "ip netns exec {g} busybox wget -q -O - http://169.254.169.254/openstack/latest/meta_data.json"
    ));
    assert!(md.contains("\"uuid\":\"the-instance\""), "{md}");

    // Crashes converge: dnsmasq killed, the veth pair gone, the process restarted.
    sh(&format!("kill -9 {pid}"));
    sh(&format!("ip link del {veth}"));
    drop(dp);
    let dp = LinuxDatapath::new(nova_network::LinuxDatapathConfig {
        state_dir: state.clone(),
        metadata_upstream: Some(up.clone()),
        ..Default::default()
    });
    dp.ensure_network(&net).await.unwrap();
    let pid2 = dnsmasq_pid(&dp, id);
    assert_ne!(pid2, pid);
    assert_eq!(
        std::fs::read_to_string(dir.join("host"))
            .unwrap()
            .lines()
            .count(),
        2,
        "the hosts survive"
    );
    sh(&format!("ip netns exec {ns} ping -c 1 -W 5 {p}.7"));
    let md = sh(&format!(
        "ip netns exec {g} curl -sS -m 10 http://169.254.169.254/openstack/latest/meta_data.json"
    ));
    assert!(md.contains("\"the-instance\""), "{md}");

    // A changed subnet: the old address goes, dnsmasq restarts on the new one.
    let mut moved = net.clone();
    moved.cidr = format!("{p}.128/25");
    moved.gateway_ip = Some(format!("{p}.129").parse().unwrap());
    dp.ensure_network(&moved).await.unwrap();
    let inside = sh(&format!("ip -n {ns} -o -4 addr show"));
    assert!(
        inside.contains(&format!("{p}.129/25")) && !inside.contains(&format!("{p}.1/24")),
        "{inside}"
    );
    let pid3 = dnsmasq_pid(&dp, id);
    assert_ne!(pid3, pid2);
    assert!(
        sh(&format!("tr '\\0' ' ' < /proc/{pid3}/cmdline"))
            .contains(&format!("{p}.128,static,255.255.255.128"))
    );

    // Delete: nothing left, and again is fine.
    dp.delete_network(id).await.unwrap();
    assert!(!std::path::Path::new(&format!("/run/netns/{ns}")).exists());
    for dev in [&br, &veth] {
        assert!(
            !std::path::Path::new(&format!("/sys/class/net/{dev}")).exists(),
            "{dev}"
        );
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{pid3}/cmdline")).exists()
            || !ok(&format!("grep -q {} /proc/{pid3}/cmdline", dir.display()))
    );
    assert!(!dir.exists());
    dp.delete_network(id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_gateway_metadata_is_routed_to_the_namespace_and_without_dhcp_no_dnsmasq() {
    require_host();
    let (dp, state) = datapath("nogw", Some("http://127.0.0.1:9".into()));
    let mut net = network(1500);
    net.gateway_ip = None;
    let id = net.network_id;
    let p = prefix24(&net);
    let mut c = Cleanup::default();
    c.network(id, &state);
    dp.ensure_network(&net).await.unwrap();
    let ns = namespace_name(id);
    assert!(sh(&format!("ip -n {ns} -o -4 addr show")).contains(&format!("{p}.254/24")));
    let mac = "fa:16:3e:5b:00:05";
    dp.set_hosts(
        id,
        &[HostEntry {
            port_id: Uuid::new_v4(),
            mac: mac.into(),
            ip: format!("{p}.5").parse().unwrap(),
            hostname: "solo".into(),
        }],
    )
    .await
    .unwrap();
    let (g, dev) = fake_guest(&mut c, &net.bridge, mac);
    let lease = dhcp_lease(&g, &dev);
    assert!(
        lease.contains(&format!("ip={p}.5 mask=24 router= ")),
        "{lease}"
    );
    assert!(
        lease.contains(&format!("staticroutes=169.254.169.254/32 {p}.254")),
        "{lease}"
    );
    // The upstream is down: the guest gets a 502, not a hang.
    sh(&format!(
        "ip -n {g} addr add {p}.5/24 dev {dev} && ip -n {g} route add 169.254.169.254/32 via {p}.254"
    ));
    let code = sh(&format!(
        "ip netns exec {g} curl -s -o /dev/null -w '%{{http_code}}' -m 10 http://169.254.169.254/"
    ));
    assert_eq!(code, "502");

    net.dhcp = false;
    dp.ensure_network(&net).await.unwrap();
    assert_eq!(dp.dnsmasq_pid(id), None);
    assert!(sh(&format!("ip netns pids {ns}")).trim().is_empty());
    dp.delete_network(id).await.unwrap();
    assert!(!std::path::Path::new(&format!("/sys/class/net/{}", net.bridge)).exists());
}

#[tokio::test]
async fn bad_networks_are_refused_before_anything_is_made() {
    let (dp, _) = datapath("bad", None);
    let mut net = network(1500);
    net.cidr = "10.0.0.0/33".into();
    assert!(dp.ensure_network(&net).await.is_err());
    let mut net = network(1500);
    net.gateway_ip = Some("192.0.2.1".parse().unwrap());
    let e = dp.ensure_network(&net).await.unwrap_err();
    assert!(e.to_string().contains("outside"), "{e}");
    assert!(!std::path::Path::new(&format!("/sys/class/net/{}", net.bridge)).exists());
    let e = dp
        .set_hosts(
            net.network_id,
            &[HostEntry {
                port_id: Uuid::new_v4(),
                mac: "fa:16:3e:00:00:01\n--x".into(),
                ip: "10.0.0.2".parse().unwrap(),
                hostname: "x".into(),
            }],
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("bad MAC"), "{e}");
}
