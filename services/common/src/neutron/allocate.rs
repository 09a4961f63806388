//! An instance's ports on a compute (nova's `allocate_for_instance`,
//! `setup_instance_network_on_host`, `deallocate_for_instance`): ports
//! created for the requested networks (or the one available network) or
//! taken as given, checked as nova does, then bound to the host with the
//! instance as their device; at delete the ports nova made are deleted and
//! the ones the user gave are unbound (`preserve_on_delete`).

use nova_objects::{Instance, NetworkRequestList};
use serde_json::{Value, json};

use super::requests::{auto_allocate, available_networks, no_allocate};
use super::{NResult, NetworkError, NeutronClient, vif_of_port};

/// The ports an instance is to have, before they are bound.
#[derive(Debug, Clone, Default)]
pub struct Allocation {
    /// Each port as the network service shows it, and whether it was given
    /// (kept at delete) rather than created by nova.
    pub ports: Vec<(Value, bool)>,
    /// The device tag each port was requested with (`networks[].tag`,
    /// 2.32), in the order of `ports`: nova's `VirtualInterface.tag`.
    pub tags: Vec<Option<String>>,
}

impl Allocation {
    /// The ports not ACTIVE yet: their `network-vif-plugged` is awaited
    /// (nova waits for the VIFs whose `active` is false).
    pub fn to_wait_for(&self) -> Vec<String> {
        self.ports
            .iter()
            .filter(|(p, _)| p["status"] != "ACTIVE")
            .filter_map(|(p, _)| p["id"].as_str().map(str::to_owned))
            .collect()
    }
}

/// A port to make (network id, fixed address) or a given port as is.
type PortPlan = Result<(String, Option<String>), Value>;

fn refuse(m: String) -> NetworkError {
    NetworkError::BadRequest(m)
}

impl NeutronClient {
    /// The ports of `inst` for `requested`: with `already` (a build
    /// rescheduled after its ports were made), the instance's ports, those
    /// in `preserved` kept at delete; else the given ports (checked: the
    /// instance's project, not in use) and a new port per requested network
    /// (or on the one available network), with `security_groups` (names or
    /// ids; only `default`, or none: the network service's default). Ports
    /// made before a failure are deleted again.
    pub async fn prepare_ports(
        &self,
        inst: &Instance,
        requested: Option<&NetworkRequestList>,
        already: bool,
        preserved: &[String],
        security_groups: &[String],
    ) -> Result<Allocation, NetworkError> {
        let uuid = inst.uuid();
        if already {
            let ports = self.list("port", &[("device_id", uuid.as_str())]).await?;
            let tags = vec![None; ports.len()];
            return Ok(Allocation {
                ports: ports
                    .into_iter()
                    .map(|p| {
                        let keep = p["id"]
                            .as_str()
                            .is_some_and(|id| preserved.iter().any(|k| k == id));
                        (p, keep)
                    })
                    .collect(),
                tags,
            });
        }
        if no_allocate(requested) {
            return Ok(Allocation::default());
        }
        let project = inst.project_id().clone().unwrap_or_default();
        let group_ids = self.security_group_ids(&project, security_groups).await?;
        let list = requested.map(|l| l.objects().clone()).unwrap_or_default();
        // (network id, fixed address) per port to make; given ports as is;
        // each with its requested tag.
        let mut plan: Vec<(PortPlan, Option<String>)> = vec![];
        if list.is_empty() || auto_allocate(requested) {
            let nets = available_networks(self, &project, false, &[]).await?;
            if nets.len() > 1 {
                return Err(NetworkError::Conflict(
                    "Multiple possible networks found, use a Network ID to be more specific."
                        .into(),
                ));
            }
            if nets.is_empty() && auto_allocate(requested) {
                return Err(refuse(format!(
                    "Unable to automatically allocate a network for project {project}"
                )));
            }
            for n in nets {
                plan.push((
                    Ok((n["id"].as_str().unwrap_or_default().to_owned(), None)),
                    None,
                ));
            }
        } else {
            for r in &list {
                if let Some(port_id) = r.port_id() {
                    let port = self.show("port", port_id).await.map_err(|e| {
                        if e.is_not_found() {
                            refuse(format!("Port id {port_id} could not be found."))
                        } else {
                            e.into()
                        }
                    })?;
                    let owner = port["project_id"].as_str().or(port["tenant_id"].as_str());
                    if owner != Some(project.as_str()) {
                        return Err(refuse(format!(
                            "Port {port_id} not usable for instance {uuid}."
                        )));
                    }
                    if port["device_id"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty() && d != uuid.as_str())
                    {
                        return Err(NetworkError::Conflict(format!(
                            "Port {port_id} is still in use."
                        )));
                    }
                    if port["binding:vif_type"] == "binding_failed" {
                        return Err(refuse(format!(
                            "Binding failed for port {port_id}, please check neutron logs for more information."
                        )));
                    }
                    plan.push((Err(port), r.tag().clone()));
                } else if let Some(net) = r.network_id() {
                    plan.push((Ok((net.clone(), r.address().clone())), r.tag().clone()));
                }
            }
        }
        let mut out = Allocation::default();
        for (step, tag) in plan {
            match step {
                Err(port) => {
                    out.ports.push((port, true));
                    out.tags.push(tag);
                }
                Ok((net, address)) => {
                    let mut body = json!({"network_id": net, "project_id": project,
                        "tenant_id": project, "admin_state_up": true});
                    if let Some(a) = address {
                        body["fixed_ips"] = json!([{ "ip_address": a }]);
                    }
                    if let Some(ids) = &group_ids {
                        body["security_groups"] = json!(ids);
                    }
                    match self.create_port(body).await {
                        Ok(p) => {
                            out.ports.push((p, false));
                            out.tags.push(tag);
                        }
                        Err(e) => {
                            for (p, given) in &out.ports {
                                if !given && let Some(id) = p["id"].as_str() {
                                    let _ = self.delete_port(id).await;
                                }
                            }
                            return Err(match e.status {
                                409 | 400 | 404 => refuse(e.message),
                                _ => e.into(),
                            });
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// nova's `_process_security_groups`: the ids of `wanted` (names or
    /// ids) among `project`'s groups; `None` when only `default` (or
    /// nothing) is wanted, which is what a port gets without the key.
    async fn security_group_ids(
        &self,
        project: &str,
        wanted: &[String],
    ) -> Result<Option<Vec<String>>, NetworkError> {
        if wanted.iter().all(|g| g == "default") {
            return Ok(None);
        }
        let groups = self
            .list(
                "security_group",
                &[("tenant_id", project), ("fields", "id"), ("fields", "name")],
            )
            .await?;
        let mut ids = Vec::with_capacity(wanted.len());
        for w in wanted {
            let mut by_name = None;
            let mut by_id = None;
            for g in &groups {
                let id = g["id"].as_str().unwrap_or_default();
                if g["name"].as_str() == Some(w.as_str()) {
                    if by_name.is_some() {
                        return Err(NetworkError::Conflict(format!(
                            "Multiple security groups found matching '{w}'. Use an ID to be more specific."
                        )));
                    }
                    by_name = Some(id.to_owned());
                }
                if id == w {
                    by_id = Some(id.to_owned());
                }
            }
            match by_name.or(by_id) {
                Some(id) => ids.push(id),
                None => {
                    return Err(refuse(format!("Security group {w} not found.")));
                }
            }
        }
        Ok(Some(ids))
    }

    /// Network `net_id` and its subnets, read once for all the ports of a
    /// call (`seen` keeps what was read).
    async fn network_and_subnets<'a>(
        &self,
        seen: &'a mut Vec<(String, Value, Vec<Value>)>,
        net_id: &str,
    ) -> NResult<&'a (String, Value, Vec<Value>)> {
        let i = match seen.iter().position(|(n, _, _)| n == net_id) {
            Some(i) => i,
            None => {
                let net = self.show("network", net_id).await?;
                let subnets = self.list("subnet", &[("network_id", net_id)]).await?;
                seen.push((net_id.to_owned(), net, subnets));
                seen.len() - 1
            }
        };
        Ok(&seen[i])
    }

    /// Binds `alloc`'s ports to `host` with `inst` as their device (nova's
    /// `_update_ports_for_instance`); returns the network info (one VIF per
    /// port, in order).
    pub async fn bind_ports(
        &self,
        inst: &Instance,
        host: &str,
        alloc: &Allocation,
    ) -> Result<Vec<Value>, NetworkError> {
        let owner = Self::device_owner(inst);
        let mut vifs = vec![];
        let mut networks: Vec<(String, Value, Vec<Value>)> = vec![];
        for (port, given) in &alloc.ports {
            let id = port["id"].as_str().unwrap_or_default();
            let bound = self
                .update_port(
                    id,
                    json!({"device_id": inst.uuid(), "device_owner": owner,
                        "binding:host_id": host}),
                )
                .await?;
            let net_id = bound["network_id"].as_str().unwrap_or_default().to_owned();
            let (_, net, subnets) = self.network_and_subnets(&mut networks, &net_id).await?;
            let floating = if *given {
                self.list("floatingip", &[("port_id", id)])
                    .await
                    .unwrap_or_default()
            } else {
                vec![]
            };
            vifs.push(vif_of_port(&bound, net, subnets, &floating, *given));
        }
        Ok(vifs)
    }
}

/// Unbinds the ports of `instance` from their host (a rescheduled build:
/// the next host binds them again).
pub async fn unbind_ports(client: &NeutronClient, instance: &str) -> NResult<()> {
    for p in client.list("port", &[("device_id", instance)]).await? {
        if let Some(id) = p["id"].as_str() {
            client
                .update_port(id, json!({"binding:host_id": null, "binding:profile": {}}))
                .await?;
        }
    }
    Ok(())
}

/// nova's `deallocate_for_instance`: the ports of `instance` in `preserved`
/// (given by the user) are unbound and freed (device cleared), the others
/// deleted.
pub async fn deallocate_for_instance(
    client: &NeutronClient,
    instance: &str,
    preserved: &[String],
) -> NResult<()> {
    for p in client.list("port", &[("device_id", instance)]).await? {
        let Some(id) = p["id"].as_str() else { continue };
        if preserved.iter().any(|k| k == id) {
            client
                .update_port(
                    id,
                    json!({"device_id": "", "device_owner": "", "binding:host_id": null,
                        "binding:profile": {}}),
                )
                .await?;
        } else {
            client.delete_port(id).await?;
        }
    }
    Ok(())
}

/// Why an interface cannot be attached (or a fixed IP added or removed):
/// nova's exception class (in `nova.exception`) and its message; the API
/// answers by the class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRefused {
    /// nova's exception class (`PortNotFound`, `NetworkAmbiguous`, ...).
    pub class: &'static str,
    /// Its message.
    pub message: String,
}

impl std::fmt::Display for AttachRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.class, self.message)
    }
}

impl std::error::Error for AttachRefused {}

fn refused(class: &'static str, message: impl Into<String>) -> AttachRefused {
    AttachRefused {
        class,
        message: message.into(),
    }
}

impl From<super::NeutronFailure> for AttachRefused {
    fn from(e: super::NeutronFailure) -> Self {
        refused("InterfaceAttachFailed", e.to_string())
    }
}

impl From<NetworkError> for AttachRefused {
    fn from(e: NetworkError) -> Self {
        refused("InterfaceAttachFailed", e.to_string())
    }
}

impl NeutronClient {
    /// The one port of an interface attach (nova's `allocate_for_instance`
    /// with one requested network): `port_id` taken (it must exist, be the
    /// instance's project's and be free), else a new port on `network_id`
    /// (visible to the project; `ip` its fixed address), else on the one
    /// network the project has; then bound to `host` with the instance as
    /// its device. Returns the port's VIF (`preserve_on_delete` for a
    /// given port). A port made here is deleted again when the binding
    /// fails.
    pub async fn allocate_port(
        &self,
        inst: &Instance,
        network_id: Option<&str>,
        port_id: Option<&str>,
        ip: Option<&str>,
        host: &str,
    ) -> Result<Value, AttachRefused> {
        let uuid = inst.uuid();
        let project = inst.project_id().clone().unwrap_or_default();
        let (port, given) = if let Some(port_id) = port_id {
            let port = self.show("port", port_id).await.map_err(|e| {
                if e.is_not_found() {
                    refused(
                        "PortNotFound",
                        format!("Port id {port_id} could not be found."),
                    )
                } else {
                    e.into()
                }
            })?;
            let owner = port["project_id"].as_str().or(port["tenant_id"].as_str());
            if owner != Some(project.as_str()) {
                return Err(refused(
                    "PortNotUsable",
                    format!("Port {port_id} not usable for instance {uuid}."),
                ));
            }
            if port["device_id"].as_str().is_some_and(|d| !d.is_empty()) {
                return Err(refused(
                    "PortInUse",
                    format!("Port {port_id} is still in use."),
                ));
            }
            (port, true)
        } else {
            let net = match network_id {
                Some(net) => {
                    let found =
                        available_networks(self, &project, false, &[net.to_owned()]).await?;
                    if found.is_empty() {
                        return Err(refused(
                            "NetworkNotFound",
                            format!("Network {net} could not be found."),
                        ));
                    }
                    net.to_owned()
                }
                None => {
                    let nets = available_networks(self, &project, false, &[]).await?;
                    match nets.as_slice() {
                        [] => {
                            return Err(refused(
                                "InterfaceAttachFailedNoNetwork",
                                format!(
                                    "No specific network was requested and none are available for project '{project}'."
                                ),
                            ));
                        }
                        [one] => one["id"].as_str().unwrap_or_default().to_owned(),
                        _ => {
                            return Err(refused(
                                "NetworkAmbiguous",
                                "More than one possible network found. Specify network ID(s) to select which one(s) to connect to.",
                            ));
                        }
                    }
                }
            };
            let mut body = json!({"network_id": net, "project_id": project,
                "tenant_id": project, "admin_state_up": true});
            if let Some(a) = ip {
                body["fixed_ips"] = json!([{ "ip_address": a }]);
            }
            let port = self
                .create_port(body)
                .await
                .map_err(|e| match e.kind.as_str() {
                    "IpAddressAlreadyAllocated" | "IpAddressInUse" => refused(
                        "FixedIpAlreadyInUse",
                        format!(
                            "Fixed IP address {} is already in use on instance {uuid}.",
                            ip.unwrap_or_default()
                        ),
                    ),
                    "IpAddressGenerationFailure" => refused(
                        "NoMoreFixedIps",
                        format!("No fixed IP addresses available for network: {net}"),
                    ),
                    "InvalidIpForNetwork" | "InvalidIpForSubnet" | "InvalidInput" => {
                        refused("InvalidInput", e.message.clone())
                    }
                    _ if e.status == 409 && ip.is_some() => refused(
                        "FixedIpAlreadyInUse",
                        format!(
                            "Fixed IP address {} is already in use on instance {uuid}.",
                            ip.unwrap_or_default()
                        ),
                    ),
                    _ => e.into(),
                })?;
            (port, false)
        };
        let alloc = Allocation {
            ports: vec![(port, given)],
            tags: vec![None],
        };
        match self.bind_ports(inst, host, &alloc).await {
            Ok(mut vifs) if vifs.len() == 1 => Ok(vifs.remove(0)),
            other => {
                let (port, _) = &alloc.ports[0];
                if let Some(id) = port["id"].as_str() {
                    let _ = release_port(self, id, given).await;
                }
                Err(match other {
                    Err(e) => e.into(),
                    Ok(_) => refused(
                        "InterfaceAttachFailed",
                        format!("Failed to attach network adapter device to {uuid}"),
                    ),
                })
            }
        }
    }

    /// The instance's network info as the network service has it now
    /// (nova's `get_instance_nw_info` with a refresh, `_build_network_info_model`):
    /// one VIF per port of the instance, in the order of `cached` (new
    /// ports last), with the floating IPs on them (one query for all);
    /// `preserve_on_delete` and a VIF's `meta` kept from `cached`.
    pub async fn instance_network_info(
        &self,
        instance: &str,
        cached: &[Value],
    ) -> NResult<Vec<Value>> {
        let mut ports = self.list("port", &[("device_id", instance)]).await?;
        let pos = |p: &Value| {
            cached
                .iter()
                .position(|v| v["id"] == p["id"])
                .unwrap_or(usize::MAX)
        };
        ports.sort_by_key(pos);
        let ids: Vec<(&str, &str)> = ports
            .iter()
            .filter_map(|p| p["id"].as_str())
            .map(|i| ("port_id", i))
            .collect();
        let floating = if ids.is_empty() {
            vec![]
        } else {
            self.list("floatingip", &ids).await?
        };
        let mut networks: Vec<(String, Value, Vec<Value>)> = vec![];
        let mut out = vec![];
        for port in &ports {
            let net_id = port["network_id"].as_str().unwrap_or_default().to_owned();
            let (_, net, subnets) = self.network_and_subnets(&mut networks, &net_id).await?;
            let old = cached.iter().find(|v| v["id"] == port["id"]);
            let preserve = old.is_some_and(|v| v["preserve_on_delete"] == true);
            let mine: Vec<Value> = floating
                .iter()
                .filter(|f| f["port_id"] == port["id"])
                .cloned()
                .collect();
            let mut vif = vif_of_port(port, net, subnets, &mine, preserve);
            if let Some(meta) = old.map(|v| &v["meta"]).filter(|m| m.is_object()) {
                vif["meta"] = meta.clone();
            }
            out.push(vif);
        }
        Ok(out)
    }
}

/// A network service failure under a fixed IP change (nova lets the
/// client's exception through: a `NovaException` for the fault).
fn unreachable(e: super::NeutronFailure) -> AttachRefused {
    refused("NovaException", e.to_string())
}

impl NeutronClient {
    /// The `device_owner` nova gives the ports of `inst`.
    fn device_owner(inst: &Instance) -> String {
        let zone = inst.availability_zone().as_deref().unwrap_or("nova");
        format!("compute:{zone}")
    }

    /// nova's `add_fixed_ip_to_instance`: one more fixed IP on the
    /// instance's port on `network_id`, from the first of the network's
    /// subnets that has an address free (the port's current addresses
    /// kept). `NetworkNotFoundForInstance` when the network has no
    /// subnet, the instance no port on it, or no subnet an address left.
    pub async fn add_fixed_ip(
        &self,
        inst: &Instance,
        network_id: &str,
    ) -> Result<(), AttachRefused> {
        let uuid = inst.uuid();
        let not_found = || {
            refused(
                "NetworkNotFoundForInstance",
                format!("Network could not be found for instance {uuid}."),
            )
        };
        let subnets = self
            .list("subnet", &[("network_id", network_id)])
            .await
            .map_err(unreachable)?;
        if subnets.is_empty() {
            return Err(not_found());
        }
        let owner = Self::device_owner(inst);
        let filters = [
            ("device_id", uuid.as_str()),
            ("device_owner", owner.as_str()),
            ("network_id", network_id),
        ];
        for port in self.list("port", &filters).await.map_err(unreachable)? {
            let id = port["id"].as_str().unwrap_or_default();
            let mut ips = port["fixed_ips"].as_array().cloned().unwrap_or_default();
            for subnet in &subnets {
                ips.push(json!({"subnet_id": subnet["id"]}));
                match self.update_port(id, json!({"fixed_ips": ips})).await {
                    Ok(_) => return Ok(()),
                    Err(e) => {
                        tracing::debug!(instance = %uuid, port = id, error = %e,
                            "no fixed IP from this subnet, trying the next");
                        ips.pop();
                    }
                }
            }
        }
        Err(not_found())
    }

    /// nova's `remove_fixed_ip_from_instance`: the fixed IP `address`
    /// released from the instance's port that has it
    /// (`FixedIpNotFoundForInstance` when none has).
    pub async fn remove_fixed_ip(
        &self,
        inst: &Instance,
        address: &str,
    ) -> Result<(), AttachRefused> {
        let uuid = inst.uuid();
        let owner = Self::device_owner(inst);
        let having = format!("ip_address={address}");
        let filters = [
            ("device_id", uuid.as_str()),
            ("device_owner", owner.as_str()),
            ("fixed_ips", having.as_str()),
        ];
        let ports = self.list("port", &filters).await.map_err(unreachable)?;
        let Some(port) = ports.into_iter().next() else {
            return Err(refused(
                "FixedIpNotFoundForInstance",
                format!("Instance {uuid} does not have fixed IP '{address}'."),
            ));
        };
        let id = port["id"].as_str().unwrap_or_default();
        let kept: Vec<Value> = port["fixed_ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|ip| ip["ip_address"].as_str() != Some(address))
            .cloned()
            .collect();
        self.update_port(id, json!({"fixed_ips": kept}))
            .await
            .map_err(unreachable)?;
        Ok(())
    }
}

/// nova's `deallocate_port_for_instance`: a port the user gave
/// (`preserve`) unbound and freed, one nova made deleted.
pub async fn release_port(client: &NeutronClient, port_id: &str, preserve: bool) -> NResult<()> {
    if preserve {
        client
            .update_port(
                port_id,
                json!({"device_id": "", "device_owner": "", "binding:host_id": null,
                    "binding:profile": {}}),
            )
            .await
            .map(|_| ())
    } else {
        client.delete_port(port_id).await
    }
}
