//! nova's network model (`nova/network/model.py`) as the instance info
//! cache stores it: one VIF per port (`_build_vif_model`), its network
//! with the subnets the port has addresses on (`_nw_info_build_network`,
//! `_get_subnets_from_port`).

use serde_json::{Value, json};

/// Length of a Linux device name nova allows (`NIC_NAME_LEN`).
const NIC_NAME_LEN: usize = 14;

fn version_of(addr: &str) -> u8 {
    if addr.contains(':') { 6 } else { 4 }
}

fn ip(addr: &str, kind: &str) -> Value {
    json!({"address": addr, "type": kind, "version": version_of(addr), "meta": {}})
}

/// The VIF of `port` on `network` with the `subnets` of that network;
/// `preserve_on_delete` for ports the user gave (unbound, not deleted, when
/// the server goes); `floating` are the floating IPs on the port.
pub fn vif_of_port(
    port: &Value,
    network: &Value,
    subnets: &[Value],
    floating: &[Value],
    preserve_on_delete: bool,
) -> Value {
    let port_id = port["id"].as_str().unwrap_or_default();
    let net_id = port["network_id"].as_str().unwrap_or_default();
    let vif_type = port["binding:vif_type"].as_str().unwrap_or("unbound");
    let details = port
        .get("binding:vif_details")
        .filter(|d| d.is_object())
        .cloned()
        .unwrap_or(json!({}));
    let bridge = match vif_type {
        "bridge" => Some(
            details["bridge_name"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("brq{net_id}"))
                .chars()
                .take(NIC_NAME_LEN)
                .collect::<String>(),
        ),
        "ovs" => Some(
            details["bridge_name"]
                .as_str()
                .unwrap_or("br-int")
                .to_owned(),
        ),
        _ => None,
    };
    let fixed: Vec<(&str, &str)> = port["fixed_ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| Some((f["subnet_id"].as_str()?, f["ip_address"].as_str()?)))
        .collect();
    let subnets: Vec<Value> = subnets
        .iter()
        .filter(|s| fixed.iter().any(|(sid, _)| s["id"].as_str() == Some(sid)))
        .map(|s| {
            let sid = s["id"].as_str().unwrap_or_default();
            let ips: Vec<Value> = fixed
                .iter()
                .filter(|(id, _)| *id == sid)
                .map(|(_, addr)| {
                    let mut v = ip(addr, "fixed");
                    v["floating_ips"] = json!(
                        floating
                            .iter()
                            .filter(|f| f["fixed_ip_address"].as_str() == Some(addr))
                            .filter_map(|f| f["floating_ip_address"].as_str())
                            .map(|a| ip(a, "floating"))
                            .collect::<Vec<_>>()
                    );
                    v
                })
                .collect();
            let gateway = s["gateway_ip"]
                .as_str()
                .map(|g| ip(g, "gateway"))
                .unwrap_or(json!({"address": null, "type": "gateway", "version": null, "meta": {}}));
            let dns: Vec<Value> = s["dns_nameservers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|a| ip(a, "dns"))
                .collect();
            let routes: Vec<Value> = s["host_routes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    json!({"cidr": r["destination"], "gateway": ip(r["nexthop"].as_str().unwrap_or_default(), "gateway"),
                        "interface": null, "meta": {}})
                })
                .collect();
            let mut meta = json!({});
            if s["enable_dhcp"].as_bool().unwrap_or(false) {
                // nova: the DHCP port's address, else the gateway.
                if let Some(g) = s["gateway_ip"].as_str() {
                    meta["dhcp_server"] = json!(g);
                }
            }
            json!({"cidr": s["cidr"], "dns": dns, "gateway": gateway, "ips": ips,
                "routes": routes, "version": s["ip_version"], "meta": meta})
        })
        .collect();
    let physnet = network["provider:physical_network"].clone();
    let tunneled = matches!(
        network["provider:network_type"].as_str(),
        Some("vxlan" | "gre" | "geneve")
    );
    json!({
        "id": port_id,
        "address": port["mac_address"],
        "network": {
            "id": net_id,
            "bridge": bridge,
            "label": network["name"],
            "subnets": subnets,
            "meta": {"injected": false, "tenant_id": network["project_id"].as_str().or(network["tenant_id"].as_str()),
                "mtu": network["mtu"], "physical_network": physnet, "tunneled": tunneled},
        },
        "type": vif_type,
        "details": details,
        "devname": format!("tap{port_id}").chars().take(NIC_NAME_LEN).collect::<String>(),
        "ovs_interfaceid": (vif_type == "ovs").then_some(port_id),
        "qbh_params": null,
        "qbg_params": null,
        "active": port["status"] == "ACTIVE",
        "vnic_type": port["binding:vnic_type"].as_str().unwrap_or("normal"),
        "profile": port.get("binding:profile").filter(|p| p.is_object()).cloned().unwrap_or(json!({})),
        "preserve_on_delete": preserve_on_delete,
        "delegate_create": true,
        "meta": {},
    })
}

/// The VIFs of an info cache's `network_info` JSON (none when unset).
pub fn vifs_of_cache(network_info: Option<&str>) -> Vec<Value> {
    network_info
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// The ports of `vifs` the user gave (`preserve_on_delete`: unbound, not
/// deleted, when the server goes).
pub fn preserved_ports(vifs: &[Value]) -> Vec<String> {
    vifs.iter()
        .filter(|v| v["preserve_on_delete"].as_bool() == Some(true))
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_port_is_a_bridge_vif_with_its_fixed_address_on_its_subnet() {
        let port = json!({"id": "0123456789abcdef", "network_id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            "mac_address": "fa:16:3e:00:00:01", "status": "DOWN", "binding:vif_type": "bridge",
            "binding:vif_details": {"port_filter": false},
            "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.0.0.5"}]});
        let net = json!({"id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "name": "private", "project_id": "p", "mtu": 1500});
        let subnets = [
            json!({"id": "s1", "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1", "ip_version": 4,
                "enable_dhcp": true, "dns_nameservers": ["10.0.0.9"]}),
            json!({"id": "s2", "cidr": "fd00::/64", "ip_version": 6}),
        ];
        let fip = [json!({"fixed_ip_address": "10.0.0.5", "floating_ip_address": "172.24.4.7"})];
        let v = vif_of_port(&port, &net, &subnets, &fip, true);
        assert_eq!(v["network"]["bridge"], "brqaaaaaaaa-bb");
        assert_eq!(v["devname"], "tap0123456789a");
        assert_eq!(v["active"], false);
        assert_eq!(v["preserve_on_delete"], true);
        assert_eq!(v["network"]["label"], "private");
        let subnets = v["network"]["subnets"].as_array().unwrap();
        assert_eq!(subnets.len(), 1, "{v}");
        assert_eq!(subnets[0]["ips"][0]["address"], "10.0.0.5");
        assert_eq!(
            subnets[0]["ips"][0]["floating_ips"][0]["address"],
            "172.24.4.7"
        );
        assert_eq!(subnets[0]["gateway"]["address"], "10.0.0.1");
        assert_eq!(subnets[0]["dns"][0]["address"], "10.0.0.9");
        assert_eq!(subnets[0]["meta"]["dhcp_server"], "10.0.0.1");
    }
}
