//! nova-api-metadata behind nova-network's datapath: a guest on a network
//! built by `LinuxDatapath` asks 169.254.169.254 from its fixed address and
//! the metadata service (`[api] use_forwarded_for`, the forwarder's
//! `X-Forwarded-For`) answers with that instance's tree, as cloud-init's
//! own readers see it from the guest's side. The guest is a namespace of its own with a veth on
//! the network's bridge (a real QEMU guest on the same path:
//! services/network/tests/it/guest.rs).

use std::process::Command;

use nova_network::{Datapath, LinuxDatapath, LinuxDatapathConfig, NetworkSpec, bridge_name};
use nova_objects::{InstanceInfoCache, Objects};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::metadata::{
    boot_guest, check_cloud_init_view, cloud_init_read_in, metadata_cluster, vendor_conf,
};

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes the network and the fake guest, also after a failure.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in self.0.iter().rev() {
            let _ = Command::new("sh")
                .args(["-c", &format!("{{ {c}; }} >/dev/null 2>&1")])
                .status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_service_answers_a_guest_on_a_datapath_network_by_its_fixed_address() {
    assert!(
        Command::new("sh")
            .args([
                "-c",
                "command -v dnsmasq >/dev/null && command -v curl >/dev/null"
            ])
            .status()
            .is_ok_and(|s| s.success()),
        "dnsmasq and curl are needed (scripts/test installs dnsmasq-base)"
    );
    let dir = crate::cluster::temp_dir("guest-network");
    let vpath = vendor_conf(&dir);
    let (c, url) = metadata_cluster(&[
        ("api", "use_forwarded_for", "true"),
        ("api", "vendordata_jsonfile_path", &vpath),
    ])
    .await;
    let g = boot_guest(&c, json!({})).await;
    let id = Uuid::new_v4();
    let b = id.as_bytes();
    let p = format!("10.{}.{}", 100 + b[0] % 100, b[1]);
    let fixed = format!("{p}.7");
    let nw = json!([{"id": "port-1", "address": "fa:16:3e:11:22:33", "type": "bridge",
        "devname": "tapport-1", "network": {"id": id.to_string(), "bridge": bridge_name(id),
        "meta": {"mtu": 1500}, "subnets": [{"cidr": format!("{p}.0/24"), "version": 4,
        "gateway": {"address": format!("{p}.1")}, "dns": [], "routes": [], "meta": {},
        "ips": [{"address": fixed, "floating_ips": []}]}]}}]);
    let objects: &Objects = &c.all.objects;
    let mut cache = InstanceInfoCache::new()
        .with_instance_uuid(g.id.clone())
        .with_network_info(Some(nw.to_string()))
        .with_deleted(false);
    objects
        .create(&nova_service::context::admin(), &mut cache)
        .await
        .unwrap();

    let state = std::env::temp_dir().join(format!("nova-all-datapath-{}", id.simple()));
    let tag = &id.simple().to_string()[..8];
    let (gns, host, inner) = (
        format!("nrs-mdg-{tag}"),
        format!("nrsm{tag}"),
        format!("nrsn{tag}"),
    );
    let s = &id.to_string()[..11];
    let _cleanup = Cleanup(vec![
        format!(
            "for p in $(ip netns pids qdhcp-{id}); do kill -9 $p; done; ip netns del qdhcp-{id}; \
             ip link del dhcp{s}; ip link del brq{s}; rm -rf {}",
            state.display()
        ),
        format!("ip netns del {gns}; ip link del {host}"),
    ]);
    let dp = LinuxDatapath::new(LinuxDatapathConfig {
        state_dir: state.clone(),
        metadata_upstream: Some(url.clone()),
        ..LinuxDatapathConfig::default()
    });
    let net = NetworkSpec {
        network_id: id,
        bridge: bridge_name(id),
        cidr: format!("{p}.0/24"),
        gateway_ip: Some(format!("{p}.1").parse().unwrap()),
        dhcp: true,
        mtu: 1500,
    };
    dp.ensure_network(&net).await.unwrap();
    sh(&format!(
        "ip netns add {gns} && ip link add {host} type veth peer name {inner} && \
         ip link set {inner} netns {gns} && ip -n {gns} link set {inner} address fa:16:3e:11:22:33 up && \
         ip link set {host} master {} up && ip -n {gns} addr add {fixed}/24 dev {inner} && \
         ip -n {gns} route add default via {p}.1",
        net.bridge
    ));
    let get = |path: &str| {
        sh(&format!(
            "ip netns exec {gns} curl -sS -m 20 -H 'X-Forwarded-For: 10.0.0.99' http://169.254.169.254{path}"
        ))
    };
    let md: Value = serde_json::from_str(&get("/openstack/latest/meta_data.json")).unwrap();
    assert_eq!(md["uuid"], g.id, "{md}");
    assert_eq!(md["meta"]["role"], "db", "{md}");
    assert_eq!(get("/latest/meta-data/local-ipv4"), fixed);
    let nd: Value = serde_json::from_str(&get("/openstack/latest/network_data.json")).unwrap();
    assert_eq!(nd["networks"][0]["ip_address"], fixed.as_str(), "{nd}");
    // cloud-init's own readers, from the guest's namespace, see this instance.
    let (ns, fixed_ip) = (gns.clone(), fixed.clone());
    let v = tokio::task::spawn_blocking(move || {
        cloud_init_read_in(Some(&ns), "http://169.254.169.254", &json!({}))
    })
    .await
    .unwrap();
    check_cloud_init_view(&v, &g, false);
    assert_eq!(v["ec2"]["local-ipv4"], fixed_ip.as_str(), "{v}");
    // Another address of the network is nobody: 404.
    sh(&format!("ip -n {gns} addr add {p}.8/24 dev {inner}"));
    let code = sh(&format!(
        "ip netns exec {gns} curl -s -o /dev/null -w '%{{http_code}}' -m 20 --interface {p}.8 \
         http://169.254.169.254/openstack/latest/meta_data.json"
    ));
    assert_eq!(code, "404");
    dp.delete_network(id).await.unwrap();
    c.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
