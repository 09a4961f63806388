//! Floating IPs: addresses from an external network's subnet, associated
//! with a port's fixed IP (recorded; no NAT is set up on the host).

use serde_json::{Value, json};

use crate::error::{NResult, NeutronError};
use crate::ipam;
use crate::service::{
    Caller, FLOATINGIP, NETWORK, NetworkService, PORT, SUBNET, body_of, only, opt_str, owner_of,
    standard, touch,
};
use crate::store::Rows;

/// Sets `f`'s association to `port_id` (None: dissociate).
fn associate(
    rows: &Rows,
    caller: &Caller,
    f: &mut Value,
    port_id: Option<&str>,
    fixed: Option<String>,
) -> NResult<()> {
    let Some(pid) = port_id else {
        f["port_id"] = Value::Null;
        f["fixed_ip_address"] = Value::Null;
        f["status"] = json!("DOWN");
        f["port_details"] = Value::Null;
        return Ok(());
    };
    let p = NetworkService::get_owned(rows, caller, PORT, pid)?;
    let ips: Vec<&str> = p["fixed_ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip_address"].as_str())
        .filter(|a| !a.contains(':'))
        .collect();
    let fixed = match fixed {
        Some(a) if ips.contains(&a.as_str()) => a,
        Some(a) => {
            return Err(NeutronError::bad_request(format!(
                "Port {pid} does not have fixed ip {a}"
            )));
        }
        None => ips.first().map(|s| (*s).to_owned()).ok_or_else(|| {
            NeutronError::bad_request(format!(
                "Bad floatingip request: Port {pid} does not have any IPv4 address."
            ))
        })?,
    };
    let taken = rows
        .get(FLOATINGIP)
        .into_iter()
        .flat_map(|m| m.values())
        .any(|o| {
            o["id"] != f["id"]
                && o["port_id"].as_str() == Some(pid)
                && o["fixed_ip_address"].as_str() == Some(&fixed)
        });
    if taken {
        return Err(NeutronError::conflict(
            "FloatingIPPortAlreadyAssociated",
            format!(
                "Cannot associate floating IP with port {pid} using fixed IP {fixed}, as that fixed IP already has a floating IP."
            ),
        ));
    }
    f["port_id"] = json!(pid);
    f["fixed_ip_address"] = json!(fixed);
    f["status"] = json!("ACTIVE");
    f["port_details"] = json!({
        "name": p["name"], "network_id": p["network_id"], "mac_address": p["mac_address"],
        "admin_state_up": p["admin_state_up"], "status": p["status"],
        "device_id": p["device_id"], "device_owner": p["device_owner"]});
    Ok(())
}

impl NetworkService {
    /// `POST /v2.0/floatingips`.
    pub async fn create_floatingip(&self, caller: &Caller, body: &Value) -> NResult<Value> {
        let m = body_of(body, FLOATINGIP)?;
        only(
            &m,
            &[
                "floating_network_id",
                "floating_ip_address",
                "port_id",
                "fixed_ip_address",
                "description",
                "project_id",
                "tenant_id",
                "subnet_id",
            ],
        )?;
        let net_id = opt_str(&m, "floating_network_id")?.ok_or_else(|| {
            NeutronError::bad_request(
                "Failed to parse request. Required attribute 'floating_network_id' not specified",
            )
        })?;
        let project = owner_of(caller, &m)?;
        let mut rows = self.rows.lock().await;
        let net = Self::get_visible(&rows, caller, NETWORK, &net_id)?;
        if net["router:external"] != json!(true) {
            return Err(NeutronError::bad_request(format!(
                "Bad floatingip request: Network {net_id} is not a valid external network."
            )));
        }
        let used: std::collections::BTreeSet<std::net::IpAddr> = rows
            .get(FLOATINGIP)
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|f| f["floating_ip_address"].as_str()?.parse().ok())
            .collect();
        let mut address = None;
        for s in rows.get(SUBNET).into_iter().flat_map(|m| m.values()) {
            if s["network_id"].as_str() != Some(&net_id) || s["ip_version"] != json!(4) {
                continue;
            }
            let mut taken = used.clone();
            for p in rows.get(PORT).into_iter().flat_map(|m| m.values()) {
                for ip in p["fixed_ips"].as_array().into_iter().flatten() {
                    if let Some(a) = ip["ip_address"].as_str().and_then(|a| a.parse().ok()) {
                        taken.insert(a);
                    }
                }
            }
            if let Some(g) = s["gateway_ip"].as_str().and_then(|a| a.parse().ok()) {
                taken.insert(g);
            }
            let pools: Vec<_> = s["allocation_pools"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    Some((
                        p["start"].as_str()?.parse().ok()?,
                        p["end"].as_str()?.parse().ok()?,
                    ))
                })
                .collect();
            address = match opt_str(&m, "floating_ip_address")? {
                Some(a) => {
                    let ip: std::net::IpAddr = a.parse().map_err(|_| {
                        NeutronError::bad_request(format!("'{a}' is not a valid IP address."))
                    })?;
                    if taken.contains(&ip) {
                        return Err(NeutronError::conflict(
                            "IpAddressAlreadyAllocated",
                            format!(
                                "IP address {a} already allocated in subnet {}",
                                s["id"].as_str().unwrap_or_default()
                            ),
                        ));
                    }
                    ipam::in_pools(&pools, ip).then_some(ip)
                }
                None => ipam::next_free(&pools, &taken),
            };
            if address.is_some() {
                break;
            }
        }
        let address = address.ok_or_else(|| {
            NeutronError::conflict(
                "IpAddressGenerationFailure",
                format!("No more IP addresses available on network {net_id}."),
            )
        })?;
        let id = uuid::Uuid::new_v4().to_string();
        let mut f = standard(
            &id,
            &project,
            &opt_str(&m, "description")?.unwrap_or_default(),
        );
        f.insert("floating_ip_address".into(), json!(address.to_string()));
        f.insert("floating_network_id".into(), json!(net_id));
        f.insert("router_id".into(), Value::Null);
        f.insert("port_forwardings".into(), json!([]));
        f.insert("dns_domain".into(), json!(""));
        f.insert("dns_name".into(), json!(""));
        let mut f = Value::Object(f);
        associate(
            &rows,
            caller,
            &mut f,
            opt_str(&m, "port_id")?.as_deref(),
            opt_str(&m, "fixed_ip_address")?,
        )?;
        self.commit(&mut rows, vec![(FLOATINGIP, f.clone())], vec![])
            .await?;
        Ok(f)
    }

    /// `PUT /v2.0/floatingips/{id}`: `port_id` associates (null
    /// dissociates).
    pub async fn update_floatingip(
        &self,
        caller: &Caller,
        id: &str,
        body: &Value,
    ) -> NResult<Value> {
        let m = body_of(body, FLOATINGIP)?;
        only(&m, &["port_id", "fixed_ip_address", "description"])?;
        let mut rows = self.rows.lock().await;
        let mut f = Self::get_owned(&rows, caller, FLOATINGIP, id)?;
        if m.contains_key("port_id") {
            associate(
                &rows,
                caller,
                &mut f,
                opt_str(&m, "port_id")?.as_deref(),
                opt_str(&m, "fixed_ip_address")?,
            )?;
        }
        if let Some(d) = opt_str(&m, "description")? {
            f["description"] = json!(d);
        }
        touch(&mut f);
        self.commit(&mut rows, vec![(FLOATINGIP, f.clone())], vec![])
            .await?;
        Ok(f)
    }

    /// `DELETE /v2.0/floatingips/{id}`.
    pub async fn delete_floatingip(&self, caller: &Caller, id: &str) -> NResult<()> {
        let mut rows = self.rows.lock().await;
        Self::get_owned(&rows, caller, FLOATINGIP, id)?;
        self.commit(&mut rows, vec![], vec![(FLOATINGIP, id.to_owned())])
            .await
    }
}
