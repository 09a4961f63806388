//! The create body's `networks` (nova's `_get_requested_networks`) and
//! nova's API-side checks of them (`validate_networks`,
//! `_ports_needed_per_instance`, the multiple-instance rules), each failure
//! the status and message nova answers with.

use nova_objects::{NetworkRequest, NetworkRequestList};
use serde_json::Value;

use super::{NeutronClient, NeutronFailure};

/// Why requested networks cannot be used: nova's 400s and 409s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkError {
    /// 400.
    BadRequest(String),
    /// 409.
    Conflict(String),
    /// The network service failed (nova: 500).
    Unavailable(String),
}

impl std::fmt::Display for NetworkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetworkError::BadRequest(m)
            | NetworkError::Conflict(m)
            | NetworkError::Unavailable(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for NetworkError {}

impl From<NeutronFailure> for NetworkError {
    fn from(e: NeutronFailure) -> Self {
        NetworkError::Unavailable(e.to_string())
    }
}

fn bad(m: impl Into<String>) -> NetworkError {
    NetworkError::BadRequest(m.into())
}

/// `networks` of a create body (already schema-checked): `None` when
/// absent; `"auto"`/`"none"` one request of that network id; a list, one
/// request per entry (a port, or a network uuid with an optional fixed IP).
pub fn parse_requested_networks(
    networks: Option<&Value>,
) -> Result<Option<NetworkRequestList>, NetworkError> {
    let Some(networks) = networks.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    if let Some(s) = networks.as_str() {
        return Ok(Some(NetworkRequestList::new().with_objects(vec![
            NetworkRequest::new().with_network_id(Some(s.to_owned())),
        ])));
    }
    let list = networks
        .as_array()
        .ok_or_else(|| bad("Bad networks format"))?;
    let mut out = vec![];
    let mut ports: Vec<&str> = vec![];
    for n in list {
        let n = n.as_object().ok_or_else(|| bad("Bad networks format"))?;
        let address = n.get("fixed_ip").and_then(Value::as_str);
        let port = n.get("port").and_then(Value::as_str);
        let mut r = NetworkRequest::new()
            .with_address(address.map(str::to_owned))
            .with_tag(n.get("tag").and_then(Value::as_str).map(str::to_owned));
        if let Some(port) = port {
            if ports.contains(&port) {
                return Err(bad(format!(
                    "Port ID '{port}' was specified twice: you cannot attach a port multiple times."
                )));
            }
            if let Some(addr) = address {
                return Err(bad(format!(
                    "Specified Fixed IP '{addr}' cannot be used with port '{port}': the two cannot be specified together."
                )));
            }
            ports.push(port);
            r.set_port_id(Some(port.to_owned()));
            r.set_network_id(None);
        } else {
            let id = n
                .get("uuid")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("Bad network format: missing 'uuid'"))?;
            if uuid::Uuid::parse_str(id).is_err() {
                return Err(bad(format!(
                    "Bad networks format: network uuid is not in proper format ({id})"
                )));
            }
            r.set_network_id(Some(id.to_owned()));
        }
        out.push(r);
    }
    Ok(Some(NetworkRequestList::new().with_objects(out)))
}

/// Whether the request is `"none"` (no networks at all).
pub(crate) fn no_allocate(r: Option<&NetworkRequestList>) -> bool {
    r.is_some_and(|l| {
        l.objects().len() == 1 && l.objects()[0].network_id().as_deref() == Some("none")
    })
}

/// Whether the request is `"auto"`.
pub(crate) fn auto_allocate(r: Option<&NetworkRequestList>) -> bool {
    r.is_some_and(|l| {
        l.objects().len() == 1 && l.objects()[0].network_id().as_deref() == Some("auto")
    })
}

/// The networks `project` may use (nova's `_get_available_networks`): with
/// `ids`, those of them it sees (in the order asked); else its own
/// unshared networks, then the shared ones.
pub(crate) async fn available_networks(
    client: &NeutronClient,
    project: &str,
    admin: bool,
    ids: &[String],
) -> Result<Vec<Value>, NeutronFailure> {
    if ids.is_empty() {
        let mut nets = client
            .list("network", &[("tenant_id", project), ("shared", "False")])
            .await?;
        nets.extend(client.list("network", &[("shared", "True")]).await?);
        return Ok(nets);
    }
    let q: Vec<(&str, &str)> = ids.iter().map(|i| ("id", i.as_str())).collect();
    let found = client.list("network", &q).await?;
    Ok(ids
        .iter()
        .filter_map(|id| {
            found
                .iter()
                .find(|n| n["id"].as_str() == Some(id.as_str()))
                .filter(|n| {
                    admin
                        || n["shared"].as_bool() == Some(true)
                        || n["project_id"].as_str().or(n["tenant_id"].as_str()) == Some(project)
                })
                .cloned()
        })
        .collect())
}

/// nova's API checks of `requested` for `max_count` servers of `project`
/// (`admin`: it may name any network): the multiple-instance rules, ports
/// that exist, are free and have an address, fixed IPs not in use, networks
/// that exist (visible) with a subnet, an unambiguous default network.
pub async fn validate_networks(
    client: &NeutronClient,
    project: &str,
    admin: bool,
    requested: Option<&NetworkRequestList>,
    max_count: i64,
) -> Result<(), NetworkError> {
    if no_allocate(requested) {
        return Ok(());
    }
    let list = requested
        .map(|l| l.objects().as_slice())
        .unwrap_or_default();
    if max_count > 1 {
        if list.iter().any(|r| r.port_id().is_some()) {
            return Err(bad(
                "Failed to launch instances: Unable to launch multiple instances with a single configured port ID. Please launch your instance one by one with different ports.",
            ));
        }
        if list
            .iter()
            .any(|r| r.network_id().is_some() && r.address().is_some())
        {
            return Err(bad(
                "Failed to launch instances: max_count cannot be greater than 1 if an fixed_ip is specified.",
            ));
        }
    }
    if list.is_empty() || auto_allocate(requested) {
        let nets = available_networks(client, project, admin, &[]).await?;
        if nets.len() > 1 {
            return Err(NetworkError::Conflict(
                "Multiple possible networks found, use a Network ID to be more specific.".into(),
            ));
        }
        if nets.is_empty() && auto_allocate(requested) {
            return Err(bad(format!(
                "Unable to automatically allocate a network for project {project}"
            )));
        }
        return Ok(());
    }
    let mut net_ids = vec![];
    for r in list {
        if let Some(port_id) = r.port_id() {
            // Another project's port is not the user's to see (nova asks
            // with the user's token).
            let port = match client.show("port", port_id).await {
                Ok(p)
                    if admin
                        || p["project_id"].as_str().or(p["tenant_id"].as_str())
                            == Some(project) =>
                {
                    p
                }
                Ok(_) => return Err(bad(format!("Port id {port_id} could not be found."))),
                Err(e) if e.is_not_found() => {
                    return Err(bad(format!("Port id {port_id} could not be found.")));
                }
                Err(e) => return Err(e.into()),
            };
            if port["device_id"].as_str().is_some_and(|d| !d.is_empty()) {
                return Err(NetworkError::Conflict(format!(
                    "Port {port_id} is still in use."
                )));
            }
            let ipless = matches!(port["ip_allocation"].as_str(), Some("deferred" | "none"));
            if !ipless && port["fixed_ips"].as_array().is_none_or(Vec::is_empty) {
                return Err(bad(format!(
                    "Port {port_id} requires a FixedIP in order to be used."
                )));
            }
            continue;
        }
        let Some(net) = r.network_id().clone() else {
            continue;
        };
        if let Some(addr) = r.address() {
            let filter = format!("ip_address={addr}");
            let used = client
                .list(
                    "port",
                    &[("network_id", net.as_str()), ("fixed_ips", filter.as_str())],
                )
                .await?;
            if let Some(p) = used.first() {
                return Err(bad(format!(
                    "Fixed IP address {addr} is already in use on instance {}.",
                    p["device_id"].as_str().unwrap_or_default()
                )));
            }
        }
        net_ids.push(net);
    }
    if !net_ids.is_empty() {
        let nets = available_networks(client, project, admin, &net_ids).await?;
        for n in &nets {
            if n["subnets"].as_array().is_none_or(Vec::is_empty) {
                return Err(bad(format!(
                    "Network {} requires a subnet in order to boot instances on.",
                    n["id"].as_str().unwrap_or_default()
                )));
            }
        }
        let missing: Vec<&str> = net_ids
            .iter()
            .filter(|id| !nets.iter().any(|n| n["id"].as_str() == Some(id.as_str())))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            let mut uniq = missing.clone();
            uniq.dedup();
            return Err(bad(format!(
                "Network {} could not be found.",
                uniq.join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requested_networks_follow_novas_rules() {
        let net = "3cb9bc59-5699-4588-a4b1-b87f96708bc6";
        let r = parse_requested_networks(Some(
            &json!([{"uuid": net, "fixed_ip": "10.0.0.9"}, {"port": "p1"}]),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(r.objects()[0].network_id().as_deref(), Some(net));
        assert_eq!(r.objects()[0].address().as_deref(), Some("10.0.0.9"));
        assert_eq!(r.objects()[1].port_id().as_deref(), Some("p1"));
        assert_eq!(r.objects()[1].network_id(), &None);
        assert!(parse_requested_networks(None).unwrap().is_none());
        let auto = parse_requested_networks(Some(&json!("auto"))).unwrap();
        assert!(auto_allocate(auto.as_ref()) && !no_allocate(auto.as_ref()));
        let e = |v: Value| parse_requested_networks(Some(&v)).unwrap_err().to_string();
        assert_eq!(
            e(json!([{"port": "p1"}, {"port": "p1"}])),
            "Port ID 'p1' was specified twice: you cannot attach a port multiple times."
        );
        assert_eq!(
            e(json!([{"port": "p1", "fixed_ip": "10.0.0.3"}])),
            "Specified Fixed IP '10.0.0.3' cannot be used with port 'p1': the two cannot be specified together."
        );
        assert_eq!(
            e(json!([{"fixed_ip": "10.0.0.3"}])),
            "Bad network format: missing 'uuid'"
        );
        assert_eq!(
            e(json!([{"uuid": "nope"}])),
            "Bad networks format: network uuid is not in proper format (nope)"
        );
    }
}
