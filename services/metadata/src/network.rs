//! `network_data.json` and the EC2 addresses from nova's network model
//! (the `network_info` JSON of an instance's info cache), after nova's
//! `nova/virt/netutils.py`.

use std::net::IpAddr;

use serde_json::{Value, json};

const EXPOSED_VIF_TYPES: &[&str] = &[
    "bridge",
    "dvs",
    "ethernet",
    "ovs",
    "tap",
    "vhostuser",
    "vif",
];

fn subnets(vif: &Value) -> impl Iterator<Item = &Value> {
    vif["network"]["subnets"].as_array().into_iter().flatten()
}

fn version_of(subnet: &Value) -> Option<u8> {
    if let Some(v) = subnet["version"].as_u64() {
        return Some(v as u8);
    }
    let cidr = subnet["cidr"].as_str()?;
    Some(if cidr.contains(':') { 6 } else { 4 })
}

fn prefix_netmask(cidr: &str, v6: bool) -> String {
    let bits: u32 = cidr
        .split('/')
        .nth(1)
        .and_then(|b| b.parse().ok())
        .unwrap_or(if v6 { 128 } else { 32 });
    if v6 {
        let m: u128 = if bits == 0 {
            0
        } else {
            u128::MAX << (128 - bits.min(128))
        };
        std::net::Ipv6Addr::from(m).to_string()
    } else {
        let m: u32 = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits.min(32))
        };
        std::net::Ipv4Addr::from(m).to_string()
    }
}

fn dns(subnet: &Value) -> Vec<Value> {
    subnet["dns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|ip| json!({"type": "dns", "address": ip["address"]}))
        .collect()
}

/// nova's `get_network_metadata`; `{}` without network information (as
/// the metadata service answers then).
pub(crate) fn network_data(network_info: &Value) -> Value {
    let Some(vifs) = network_info.as_array().filter(|v| !v.is_empty()) else {
        return json!({});
    };
    let (mut links, mut nets, mut services) = (Vec::new(), Vec::new(), Vec::<Value>::new());
    let (mut ifc, mut net) = (-1i64, -1i64);
    for vif in vifs {
        if subnets(vif).next().is_none() {
            continue;
        }
        let first = |v: u8| subnets(vif).find(|s| version_of(s) == Some(v));
        let (v4, v6) = (first(4), first(6));
        ifc += 1;
        let link_id = vif["devname"]
            .as_str()
            .filter(|d| !d.is_empty())
            .map_or_else(|| format!("interface{ifc}"), str::to_owned);
        let kind = vif["type"]
            .as_str()
            .filter(|t| EXPOSED_VIF_TYPES.contains(t))
            .unwrap_or("phy");
        let mtu = if subnets(vif).any(|s| !s["meta"]["dhcp_server"].is_null()) {
            Value::Null
        } else {
            vif["network"]["meta"]["mtu"].clone()
        };
        links.push(
            json!({"id": link_id, "vif_id": vif["id"], "type": kind, "mtu": mtu,
            "ethernet_mac_address": vif["address"]}),
        );
        for (subnet, version) in [(v4, 4u8), (v6, 6u8)] {
            let Some(subnet) = subnet else { continue };
            let Some(ip) = subnet["ips"].as_array().and_then(|l| l.first()) else {
                continue;
            };
            net += 1;
            let network_id = vif["network"]["id"].clone();
            let meta = &subnet["meta"];
            let mode = meta["ipv6_address_mode"].as_str();
            if mode.is_none()
                && (!meta["dhcp_server"].is_null() || meta["enable_dhcp"] == json!(true))
            {
                nets.push(
                    json!({"id": format!("network{net}"), "type": format!("ipv{version}_dhcp"),
                    "link": link_id, "network_id": network_id}),
                );
            } else {
                let cidr = subnet["cidr"].as_str().unwrap_or_default();
                let mut routes = Vec::new();
                if let Some(gw) = subnet["gateway"]["address"].as_str() {
                    let any = if version == 4 { "0.0.0.0" } else { "::" };
                    routes.push(json!({"network": any, "netmask": any, "gateway": gw}));
                }
                for r in subnet["routes"].as_array().into_iter().flatten() {
                    let rc = r["cidr"].as_str().unwrap_or_default();
                    let addr = rc.split('/').next().unwrap_or_default();
                    routes.push(
                        json!({"network": addr, "netmask": prefix_netmask(rc, version == 6),
                        "gateway": r["gateway"]["address"]}),
                    );
                }
                let kind = match mode {
                    Some(m) => format!("ipv{version}_{m}"),
                    None => format!("ipv{version}"),
                };
                nets.push(
                    json!({"id": format!("network{net}"), "type": kind, "link": link_id,
                    "ip_address": ip["address"], "netmask": prefix_netmask(cidr, version == 6),
                    "routes": routes, "network_id": network_id, "services": dns(subnet)}),
                );
            }
            for d in dns(subnet) {
                if !services.contains(&d) {
                    services.push(d);
                }
            }
        }
    }
    json!({"links": links, "networks": nets, "services": services})
}

/// The fixed IPv4 and floating addresses of `network_info` (nova's
/// `get_ec2_ip_info`).
pub(crate) fn ec2_ip_info(network_info: &Value) -> (Vec<String>, Vec<String>) {
    let (mut fixed, mut floating) = (Vec::new(), Vec::new());
    for vif in network_info.as_array().into_iter().flatten() {
        for s in subnets(vif) {
            for ip in s["ips"].as_array().into_iter().flatten() {
                if let Some(a) = ip["address"].as_str()
                    && matches!(a.parse::<IpAddr>(), Ok(IpAddr::V4(_)))
                {
                    fixed.push(a.to_owned());
                }
                for f in ip["floating_ips"].as_array().into_iter().flatten() {
                    if let Some(a) = f["address"].as_str() {
                        floating.push(a.to_owned());
                    }
                }
            }
        }
    }
    (fixed, floating)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_static_ipv4_port_renders_as_nova() {
        let nw = json!([{"id": "p1", "address": "fa:16:3e:00:00:01", "type": "ovs", "devname": "tapp1",
            "network": {"id": "n1", "meta": {"mtu": 1450}, "subnets": [{"cidr": "10.0.0.0/24", "version": 4,
              "gateway": {"address": "10.0.0.1"}, "dns": [{"address": "8.8.8.8"}], "routes": [], "meta": {},
              "ips": [{"address": "10.0.0.5", "floating_ips": [{"address": "172.24.4.9"}]}]}]}}]);
        let d = network_data(&nw);
        assert_eq!(
            d["links"][0],
            json!({"id": "tapp1", "vif_id": "p1", "type": "ovs", "mtu": 1450, "ethernet_mac_address": "fa:16:3e:00:00:01"})
        );
        assert_eq!(d["networks"][0]["netmask"], "255.255.255.0");
        assert_eq!(d["networks"][0]["routes"][0]["gateway"], "10.0.0.1");
        assert_eq!(
            d["services"],
            json!([{"type": "dns", "address": "8.8.8.8"}])
        );
        assert_eq!(
            ec2_ip_info(&nw),
            (vec!["10.0.0.5".to_owned()], vec!["172.24.4.9".to_owned()])
        );
        assert_eq!(network_data(&Value::Null), json!({}));
    }
}
