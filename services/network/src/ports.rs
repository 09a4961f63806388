//! Ports: fixed IPs from the subnets' pools, MACs, device owner, the
//! `binding:*` attributes and status (DOWN until bound to a host, then
//! ACTIVE, which nova hears of as `network-vif-plugged`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::{Map, Value, json};

use crate::datapath::HostEntry;
use crate::error::{NResult, NeutronError};
use crate::events::Event;
use crate::ipam::{self, Cidr};
use crate::service::{
    Caller, FLOATINGIP, NETWORK, NetworkService, PORT, SECURITY_GROUP, SUBNET, body_of, only,
    opt_bool, opt_str, owner_of, standard, touch,
};
use crate::store::Rows;

const UPDATABLE: &[&str] = &[
    "name",
    "admin_state_up",
    "device_id",
    "device_owner",
    "fixed_ips",
    "security_groups",
    "binding:host_id",
    "binding:profile",
    "binding:vnic_type",
    "port_security_enabled",
    "description",
    "allowed_address_pairs",
    "dns_name",
    "mac_address",
    "extra_dhcp_opts",
];

/// The DHCP entries of the ports on `net_id`.
pub(crate) fn host_entries(rows: &Rows, net_id: &str) -> Vec<HostEntry> {
    let mut out = vec![];
    for p in rows.get(PORT).into_iter().flat_map(|m| m.values()) {
        if p["network_id"].as_str() != Some(net_id) {
            continue;
        }
        let Ok(port_id) = p["id"].as_str().unwrap_or_default().parse() else {
            continue;
        };
        for ip in p["fixed_ips"].as_array().into_iter().flatten() {
            if let Some(a) = ip["ip_address"]
                .as_str()
                .and_then(|s| s.parse::<IpAddr>().ok())
            {
                out.push(HostEntry {
                    port_id,
                    mac: p["mac_address"].as_str().unwrap_or_default().to_owned(),
                    ip: a,
                    hostname: format!("host-{}", a.to_string().replace(['.', ':'], "-")),
                });
            }
        }
    }
    out
}

/// Addresses in use on `subnet_id` (ports' fixed IPs and the gateway).
fn used_on(rows: &Rows, subnet: &Value, except_port: Option<&str>) -> BTreeSet<IpAddr> {
    let sid = subnet["id"].as_str().unwrap_or_default();
    let mut used: BTreeSet<IpAddr> = rows
        .get(PORT)
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|p| p["id"].as_str() != except_port || except_port.is_none())
        .flat_map(|p| p["fixed_ips"].as_array().cloned().unwrap_or_default())
        .filter(|ip| ip["subnet_id"].as_str() == Some(sid))
        .filter_map(|ip| ip["ip_address"].as_str().and_then(|s| s.parse().ok()))
        .collect();
    if let Some(g) = subnet["gateway_ip"].as_str().and_then(|s| s.parse().ok()) {
        used.insert(g);
    }
    used
}

fn pools_of(subnet: &Value) -> Vec<(IpAddr, IpAddr)> {
    subnet["allocation_pools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p["start"].as_str()?.parse().ok()?,
                p["end"].as_str()?.parse().ok()?,
            ))
        })
        .collect()
}

fn exhausted(net_id: &str) -> NeutronError {
    NeutronError::conflict(
        "IpAddressGenerationFailure",
        format!("No more IP addresses available on network {net_id}."),
    )
}

/// The fixed IPs for a port on `net_id`: as asked (`[{subnet_id?,
/// ip_address?}]`), or one from the first IPv4 subnet with room and one
/// from each IPv6 subnet.
fn allocate(
    rows: &Rows,
    net_id: &str,
    asked: Option<&Value>,
    port_id: &str,
) -> NResult<Vec<Value>> {
    let mut subnets: Vec<&Value> = rows
        .get(SUBNET)
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|s| s["network_id"].as_str() == Some(net_id))
        .collect();
    subnets.sort_by_key(|s| (s["ip_version"].as_u64(), s["created_at"].to_string()));
    let mut out: Vec<Value> = vec![];
    let mut taken: BTreeSet<IpAddr> = BTreeSet::new();
    match asked {
        None | Some(Value::Null) => {
            let mut got_v4 = false;
            for s in &subnets {
                let v4 = s["ip_version"].as_u64() == Some(4);
                if v4 && got_v4 {
                    continue;
                }
                let used = used_on(rows, s, Some(port_id));
                if let Some(ip) = ipam::next_free(&pools_of(s), &used) {
                    out.push(json!({"subnet_id": s["id"], "ip_address": ip.to_string()}));
                    got_v4 |= v4;
                }
            }
            if !subnets.is_empty() && out.is_empty() {
                return Err(exhausted(net_id));
            }
        }
        Some(Value::Array(list)) => {
            for want in list {
                let ip: Option<IpAddr> = match want.get("ip_address") {
                    None => None,
                    Some(v) => Some(v.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
                        NeutronError::bad_request(format!(
                            "Invalid input for fixed_ips. Reason: '{v}' is not a valid IP address."
                        ))
                    })?),
                };
                let subnet = match want.get("subnet_id").and_then(Value::as_str) {
                    Some(sid) => *subnets
                        .iter()
                        .find(|s| s["id"].as_str() == Some(sid))
                        .ok_or_else(|| {
                            NeutronError::bad_request(format!(
                                "Invalid input for operation: IP allocation requires subnet_id or ip_address; subnet {sid} is not on network {net_id}."
                            ))
                        })?,
                    None => {
                        let ip = ip.ok_or_else(|| {
                            NeutronError::bad_request(
                                "Invalid input for operation: IP allocation requires subnet_id or ip_address.",
                            )
                        })?;
                        *subnets
                            .iter()
                            .find(|s| {
                                Cidr::parse(s["cidr"].as_str().unwrap_or_default())
                                    .is_ok_and(|c| c.contains(ip))
                            })
                            .ok_or_else(|| {
                                NeutronError::bad_request(format!(
                                    "Invalid input for operation: IP address {ip} is not a valid IP for any of the subnets on the specified network."
                                ))
                            })?
                    }
                };
                let mut used = used_on(rows, subnet, Some(port_id));
                used.extend(taken.iter().copied());
                let ip = match ip {
                    Some(ip) => {
                        let cidr = Cidr::parse(subnet["cidr"].as_str().unwrap_or_default())
                            .map_err(NeutronError::bad_request)?;
                        if !cidr.contains(ip) {
                            return Err(NeutronError::bad_request(format!(
                                "Invalid input for operation: IP address {ip} is not a valid IP for the specified subnet."
                            )));
                        }
                        if used.contains(&ip) {
                            return Err(NeutronError::conflict(
                                "IpAddressAlreadyAllocated",
                                format!(
                                    "IP address {ip} already allocated in subnet {}",
                                    subnet["id"].as_str().unwrap_or_default()
                                ),
                            ));
                        }
                        ip
                    }
                    None => ipam::next_free(&pools_of(subnet), &used)
                        .ok_or_else(|| exhausted(net_id))?,
                };
                taken.insert(ip);
                out.push(json!({"subnet_id": subnet["id"], "ip_address": ip.to_string()}));
            }
        }
        Some(v) => {
            return Err(NeutronError::bad_request(format!(
                "Invalid input for fixed_ips. Reason: '{v}' is not a list."
            )));
        }
    }
    Ok(out)
}

fn mac_in_use(rows: &Rows, net_id: &str, mac: &str, except: &str) -> bool {
    rows.get(PORT)
        .into_iter()
        .flat_map(|m| m.values())
        .any(|p| {
            p["network_id"].as_str() == Some(net_id)
                && p["id"].as_str() != Some(except)
                && p["mac_address"]
                    .as_str()
                    .is_some_and(|m| m.eq_ignore_ascii_case(mac))
        })
}

/// Applies a binding change to `p` (host set: nova's `bridge` VIF, ACTIVE;
/// host cleared: unbound, DOWN); returns the event nova should hear.
fn apply_binding(p: &mut Value) -> Option<Event> {
    let host = p["binding:host_id"].as_str().unwrap_or_default().to_owned();
    let was = p["status"].as_str().unwrap_or("DOWN").to_owned();
    if host.is_empty() {
        p["binding:vif_type"] = json!("unbound");
        p["binding:vif_details"] = json!({});
        p["status"] = json!("DOWN");
    } else {
        p["binding:vif_type"] = json!("bridge");
        p["binding:vif_details"] = json!({"port_filter": false, "connectivity": "l2"});
        let up = p["admin_state_up"].as_bool().unwrap_or(true);
        p["status"] = json!(if up { "ACTIVE" } else { "DOWN" });
    }
    let now = p["status"].as_str().unwrap_or("DOWN");
    let server = p["device_id"].as_str().unwrap_or_default();
    let to_nova = p["device_owner"]
        .as_str()
        .unwrap_or_default()
        .starts_with("compute:")
        && !server.is_empty();
    if !to_nova || was == now {
        return None;
    }
    Some(Event {
        name: if now == "ACTIVE" {
            "network-vif-plugged"
        } else {
            "network-vif-unplugged"
        },
        server_uuid: server.to_owned(),
        tag: p["id"].as_str().unwrap_or_default().to_owned(),
        status: "completed",
    })
}

impl NetworkService {
    fn security_groups_for(
        rows: &Rows,
        caller: &Caller,
        asked: Option<&Value>,
        default_group: Option<String>,
    ) -> NResult<Value> {
        match asked {
            None => Ok(json!(default_group.into_iter().collect::<Vec<_>>())),
            Some(Value::Array(list)) => {
                let mut out = vec![];
                for g in list {
                    let id = g.as_str().unwrap_or_default();
                    let found = rows
                        .get(SECURITY_GROUP)
                        .and_then(|m| m.get(id))
                        .filter(|v| Self::visible(rows, caller, SECURITY_GROUP, v))
                        .or_else(|| {
                            // A name, as the clients sometimes send.
                            rows.get(SECURITY_GROUP)?.values().find(|v| {
                                v["name"].as_str() == Some(id)
                                    && v["project_id"].as_str() == Some(&caller.project_id)
                            })
                        })
                        .ok_or_else(|| crate::service::not_found(SECURITY_GROUP, id))?;
                    out.push(found["id"].clone());
                }
                Ok(json!(out))
            }
            Some(v) => Err(NeutronError::bad_request(format!(
                "Invalid input for security_groups: {v}"
            ))),
        }
    }

    /// `POST /v2.0/ports`.
    pub async fn create_port(&self, caller: &Caller, body: &Value) -> NResult<Value> {
        let m = body_of(body, PORT)?;
        let mut allowed = UPDATABLE.to_vec();
        allowed.extend(["network_id", "project_id", "tenant_id"]);
        only(&m, &allowed)?;
        if m.keys().any(|k| k.starts_with("binding:")) && !caller.privileged() {
            return Err(NeutronError::forbidden(
                "(rule:create_port:binding:host_id) is disallowed by policy",
            ));
        }
        let net_id = opt_str(&m, "network_id")?.ok_or_else(|| {
            NeutronError::bad_request(
                "Failed to parse request. Required attribute 'network_id' not specified",
            )
        })?;
        let project = owner_of(caller, &m)?;
        let default_group = self.ensure_default_group(&project).await?;
        let mut rows = self.rows.lock().await;
        let net = Self::get_visible(&rows, caller, NETWORK, &net_id)?;
        let id = uuid::Uuid::new_v4().to_string();
        let mac = match opt_str(&m, "mac_address")? {
            Some(mac) => {
                if !ipam::valid_mac(&mac) {
                    return Err(NeutronError::bad_request(format!(
                        "Invalid input for mac_address. Reason: '{mac}' is not a valid MAC address."
                    )));
                }
                if mac_in_use(&rows, &net_id, &mac, &id) {
                    return Err(NeutronError::conflict(
                        "MacAddressInUse",
                        format!(
                            "Unable to complete operation for network {net_id}. The mac address {mac} is in use."
                        ),
                    ));
                }
                mac.to_ascii_lowercase()
            }
            None => loop {
                let mac = ipam::random_mac();
                if !mac_in_use(&rows, &net_id, &mac, &id) {
                    break mac;
                }
            },
        };
        let fixed_ips = allocate(&rows, &net_id, m.get("fixed_ips"), &id)?;
        let security = opt_bool(&m, "port_security_enabled")?
            .unwrap_or_else(|| net["port_security_enabled"].as_bool().unwrap_or(true));
        let groups = if security {
            Self::security_groups_for(&rows, caller, m.get("security_groups"), default_group)?
        } else {
            json!([])
        };
        let mut p: Map<String, Value> = standard(
            &id,
            &project,
            &opt_str(&m, "description")?.unwrap_or_default(),
        );
        p.insert(
            "name".into(),
            json!(opt_str(&m, "name")?.unwrap_or_default()),
        );
        p.insert("network_id".into(), json!(net_id));
        p.insert("mac_address".into(), json!(mac));
        p.insert(
            "admin_state_up".into(),
            json!(opt_bool(&m, "admin_state_up")?.unwrap_or(true)),
        );
        p.insert("status".into(), json!("DOWN"));
        p.insert(
            "device_id".into(),
            json!(opt_str(&m, "device_id")?.unwrap_or_default()),
        );
        p.insert(
            "device_owner".into(),
            json!(opt_str(&m, "device_owner")?.unwrap_or_default()),
        );
        p.insert("fixed_ips".into(), json!(fixed_ips));
        p.insert(
            "allowed_address_pairs".into(),
            m.get("allowed_address_pairs").cloned().unwrap_or(json!([])),
        );
        p.insert(
            "extra_dhcp_opts".into(),
            m.get("extra_dhcp_opts").cloned().unwrap_or(json!([])),
        );
        p.insert("security_groups".into(), groups);
        p.insert("port_security_enabled".into(), json!(security));
        p.insert(
            "dns_name".into(),
            json!(opt_str(&m, "dns_name")?.unwrap_or_default()),
        );
        p.insert("dns_assignment".into(), json!([]));
        p.insert(
            "binding:host_id".into(),
            json!(opt_str(&m, "binding:host_id")?.unwrap_or_default()),
        );
        p.insert(
            "binding:profile".into(),
            m.get("binding:profile").cloned().unwrap_or(json!({})),
        );
        p.insert(
            "binding:vnic_type".into(),
            json!(opt_str(&m, "binding:vnic_type")?.unwrap_or_else(|| "normal".into())),
        );
        p.insert("binding:vif_type".into(), json!("unbound"));
        p.insert("binding:vif_details".into(), json!({}));
        let mut p = Value::Object(p);
        let event = apply_binding(&mut p);
        self.commit(&mut rows, vec![(PORT, p.clone())], vec![])
            .await?;
        drop(rows);
        self.sync_network(&net_id).await;
        self.send_events(event.into_iter().collect());
        Ok(Self::view(caller, PORT, &p))
    }

    /// `PUT /v2.0/ports/{id}`.
    pub async fn update_port(&self, caller: &Caller, id: &str, body: &Value) -> NResult<Value> {
        let m = body_of(body, PORT)?;
        only(&m, UPDATABLE)?;
        if (m.keys().any(|k| k.starts_with("binding:")) || m.contains_key("mac_address"))
            && !caller.privileged()
        {
            return Err(NeutronError::forbidden(
                "(rule:update_port:binding:host_id) is disallowed by policy",
            ));
        }
        let mut rows = self.rows.lock().await;
        let mut p = Self::get_owned(&rows, caller, PORT, id)?;
        let net_id = p["network_id"].as_str().unwrap_or_default().to_owned();
        for k in [
            "name",
            "description",
            "device_id",
            "device_owner",
            "dns_name",
            "binding:host_id",
            "binding:vnic_type",
        ] {
            if m.contains_key(k) {
                p[k] = json!(opt_str(&m, k)?.unwrap_or_default());
            }
        }
        for k in ["admin_state_up", "port_security_enabled"] {
            if let Some(b) = opt_bool(&m, k)? {
                p[k] = json!(b);
            }
        }
        for k in [
            "binding:profile",
            "allowed_address_pairs",
            "extra_dhcp_opts",
        ] {
            if let Some(v) = m.get(k) {
                p[k] = if v.is_null() { json!({}) } else { v.clone() };
            }
        }
        if let Some(mac) = opt_str(&m, "mac_address")? {
            if !ipam::valid_mac(&mac) {
                return Err(NeutronError::bad_request(format!(
                    "Invalid input for mac_address. Reason: '{mac}' is not a valid MAC address."
                )));
            }
            if mac_in_use(&rows, &net_id, &mac, id) {
                return Err(NeutronError::conflict(
                    "MacAddressInUse",
                    format!(
                        "Unable to complete operation for network {net_id}. The mac address {mac} is in use."
                    ),
                ));
            }
            p["mac_address"] = json!(mac.to_ascii_lowercase());
        }
        if m.contains_key("fixed_ips") {
            p["fixed_ips"] = json!(allocate(&rows, &net_id, m.get("fixed_ips"), id)?);
        }
        if m.contains_key("security_groups") {
            if p["port_security_enabled"] == json!(false)
                && m["security_groups"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            {
                return Err(NeutronError::conflict(
                    "PortSecurityAndIPRequiredForSecurityGroups",
                    "Port security must be enabled and port must have an IP address in order to use security groups.",
                ));
            }
            p["security_groups"] =
                Self::security_groups_for(&rows, caller, m.get("security_groups"), None)?;
        }
        let event = apply_binding(&mut p);
        touch(&mut p);
        self.commit(&mut rows, vec![(PORT, p.clone())], vec![])
            .await?;
        drop(rows);
        self.sync_network(&net_id).await;
        self.send_events(event.into_iter().collect());
        Ok(Self::view(caller, PORT, &p))
    }

    /// `DELETE /v2.0/ports/{id}`: its floating IPs are disassociated; nova
    /// hears `network-vif-deleted` for a server's port.
    pub async fn delete_port(&self, caller: &Caller, id: &str) -> NResult<()> {
        let mut rows = self.rows.lock().await;
        let p = Self::get_owned(&rows, caller, PORT, id)?;
        let mut puts = vec![];
        for f in rows.get(FLOATINGIP).into_iter().flat_map(|m| m.values()) {
            if f["port_id"].as_str() == Some(id) {
                let mut f = f.clone();
                f["port_id"] = Value::Null;
                f["fixed_ip_address"] = Value::Null;
                f["status"] = json!("DOWN");
                touch(&mut f);
                puts.push((FLOATINGIP, f));
            }
        }
        self.commit(&mut rows, puts, vec![(PORT, id.to_owned())])
            .await?;
        drop(rows);
        let net_id = p["network_id"].as_str().unwrap_or_default();
        self.sync_network(net_id).await;
        let server = p["device_id"].as_str().unwrap_or_default();
        if p["device_owner"]
            .as_str()
            .unwrap_or_default()
            .starts_with("compute:")
            && !server.is_empty()
        {
            self.send_events(vec![Event {
                name: "network-vif-deleted",
                server_uuid: server.to_owned(),
                tag: id.to_owned(),
                status: "completed",
            }]);
        }
        Ok(())
    }
}
