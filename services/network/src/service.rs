//! The network service's state and the operations every resource shares:
//! who sees what, filters, `fields`, write-through persistence, and
//! networks and subnets themselves (ports, security groups and floating
//! IPs: their own files).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use crate::datapath::{Datapath, NetworkSpec, bridge_name};
use crate::error::{NResult, NeutronError};
use crate::events::NovaEvents;
use crate::ipam::Cidr;
use crate::store::{Rows, Store};

/// Resource kinds (the store's `kind` column and the JSON collection keys).
pub const NETWORK: &str = "network";
/// Subnets.
pub const SUBNET: &str = "subnet";
/// Ports.
pub const PORT: &str = "port";
/// Security groups.
pub const SECURITY_GROUP: &str = "security_group";
/// Security group rules.
pub const SECURITY_GROUP_RULE: &str = "security_group_rule";
/// Floating IPs.
pub const FLOATINGIP: &str = "floatingip";

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// User id.
    pub user_id: String,
    /// Project id.
    pub project_id: String,
    /// Roles.
    pub roles: Vec<String>,
}

impl Caller {
    /// An admin (or a service user, as nova's admin client is).
    pub fn privileged(&self) -> bool {
        self.roles.iter().any(|r| r == "admin" || r == "service")
    }
    /// The admin context the service itself uses.
    pub fn admin() -> Self {
        Caller {
            user_id: "neutron".into(),
            project_id: "admin".into(),
            roles: vec!["admin".into()],
        }
    }
}

/// The built-in Neutron.
#[derive(Debug)]
pub struct NetworkService {
    pub(crate) rows: Mutex<Rows>,
    store: Store,
    pub(crate) datapath: Arc<dyn Datapath>,
    pub(crate) events: OnceLock<NovaEvents>,
}

pub(crate) fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The standard attributes every resource has.
pub(crate) fn standard(id: &str, project: &str, description: &str) -> Map<String, Value> {
    let t = now();
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("tenant_id".into(), json!(project));
    m.insert("project_id".into(), json!(project));
    m.insert("description".into(), json!(description));
    m.insert("tags".into(), json!([]));
    m.insert("created_at".into(), json!(t));
    m.insert("updated_at".into(), json!(t));
    m.insert("revision_number".into(), json!(0));
    m
}

/// Marks `m` changed (`updated_at`, `revision_number`).
pub(crate) fn touch(m: &mut Value) {
    m["updated_at"] = json!(now());
    let r = m["revision_number"].as_i64().unwrap_or(0);
    m["revision_number"] = json!(r + 1);
}

/// The request body's resource (`{"network": {...}}`), or 400.
pub fn body_of(body: &Value, kind: &str) -> NResult<Map<String, Value>> {
    body.get(kind)
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| NeutronError::bad_request(format!("Resource body required: '{kind}'")))
}

/// Refuses attributes outside `allowed`.
pub(crate) fn only(m: &Map<String, Value>, allowed: &[&str]) -> NResult<()> {
    let bad: Vec<&str> = m
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(NeutronError::bad_request(format!(
            "Unrecognized attribute(s) '{}'",
            bad.join(", ")
        )))
    }
}

pub(crate) fn opt_str(m: &Map<String, Value>, k: &str) -> NResult<Option<String>> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= 255 => Ok(Some(s.clone())),
        Some(v) => Err(NeutronError::bad_request(format!(
            "Invalid input for {k}. Reason: '{v}' is not a valid string."
        ))),
    }
}

pub(crate) fn opt_bool(m: &Map<String, Value>, k: &str) -> NResult<Option<bool>> {
    match m.get(k) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(NeutronError::bad_request(format!(
            "Invalid input for {k}. Reason: '{v}' cannot be converted to boolean."
        ))),
    }
}

/// The project a create is for: the caller's, or (admins) the body's.
pub(crate) fn owner_of(caller: &Caller, m: &Map<String, Value>) -> NResult<String> {
    let asked = opt_str(m, "project_id")?.or(opt_str(m, "tenant_id")?);
    match asked {
        Some(p) if p != caller.project_id && !caller.privileged() => {
            Err(NeutronError::bad_request(
                "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges",
            ))
        }
        Some(p) => Ok(p),
        None => Ok(caller.project_id.clone()),
    }
}

/// Query parameters that are not filters.
const NOT_FILTERS: &[&str] = &[
    "fields",
    "limit",
    "marker",
    "sort_key",
    "sort_dir",
    "page_reverse",
    "verbose",
];

/// Whether `v` matches one of the filter `values` (strings as the query
/// gives them).
fn matches(v: &Value, values: &[String]) -> bool {
    values.iter().any(|want| match v {
        Value::String(s) => s == want,
        Value::Bool(b) => want.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        Value::Number(n) => n.to_string() == *want,
        Value::Null => want.is_empty() || want == "None",
        Value::Array(items) => items.iter().any(|i| match i {
            Value::String(s) => s == want,
            _ => false,
        }),
        Value::Object(_) => false,
    })
}

/// Whether a port's `fixed_ips` matches `fixed_ips=ip_address=X` /
/// `fixed_ips=subnet_id=Y` filters.
fn fixed_ips_match(v: &Value, values: &[String]) -> bool {
    values.iter().all(|f| {
        let Some((k, want)) = f.split_once('=') else {
            return false;
        };
        v.as_array().into_iter().flatten().any(|ip| {
            ip[k].as_str() == Some(want)
                || (k == "ip_address_substr"
                    && ip["ip_address"].as_str().is_some_and(|a| a.contains(want)))
        })
    })
}

/// Query parameters, repeated keys kept.
pub type Query = Vec<(String, String)>;

/// Applies the query's filters to `items` and its `fields` to each.
pub fn filter_and_select(items: Vec<Value>, query: &Query) -> Vec<Value> {
    let mut filters: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (k, v) in query {
        if !NOT_FILTERS.contains(&k.as_str()) {
            filters.entry(k.as_str()).or_default().push(v.clone());
        }
    }
    let fields: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "fields")
        .flat_map(|(_, v)| v.split(','))
        .filter(|s| !s.is_empty())
        .collect();
    let mut out: Vec<Value> = items
        .into_iter()
        .filter(|item| {
            filters.iter().all(|(k, vals)| {
                if *k == "fixed_ips" {
                    return fixed_ips_match(&item["fixed_ips"], vals);
                }
                match item.get(*k) {
                    Some(v) => matches(v, vals),
                    // Neutron ignores filters on attributes it does not know.
                    None => true,
                }
            })
        })
        .collect();
    if let Some((_, marker)) = query.iter().find(|(k, _)| k == "marker")
        && let Some(i) = out.iter().position(|x| x["id"].as_str() == Some(marker))
    {
        out.drain(..=i);
    }
    if let Some(limit) = query
        .iter()
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .filter(|l| *l > 0)
    {
        out.truncate(limit);
    }
    if !fields.is_empty() {
        for item in &mut out {
            select(item, &fields);
        }
    }
    out
}

/// Keeps only `fields` of `item`.
pub fn select(item: &mut Value, fields: &[&str]) {
    if let Some(m) = item.as_object_mut() {
        m.retain(|k, _| fields.contains(&k.as_str()));
    }
}

impl NetworkService {
    /// A service over `store` (its rows loaded) and `datapath`.
    pub async fn open(store: Store, datapath: Arc<dyn Datapath>) -> anyhow::Result<Arc<Self>> {
        let rows = store.load().await?;
        let me = Arc::new(NetworkService {
            rows: Mutex::new(rows),
            store,
            datapath,
            events: OnceLock::new(),
        });
        me.resync_datapath().await;
        Ok(me)
    }

    /// Sets where the service sends nova's external events.
    pub fn set_nova_events(&self, events: NovaEvents) {
        let _ = self.events.set(events);
    }

    /// Writes and applies a change: `puts` replace rows, `deletes` remove
    /// them; in the database first, then in memory.
    pub(crate) async fn commit(
        &self,
        rows: &mut Rows,
        puts: Vec<(&'static str, Value)>,
        deletes: Vec<(&'static str, String)>,
    ) -> NResult<()> {
        let p: Vec<(&str, &Value)> = puts.iter().map(|(k, v)| (*k, v)).collect();
        let d: Vec<(&str, &str)> = deletes.iter().map(|(k, i)| (*k, i.as_str())).collect();
        self.store
            .write(&p, &d)
            .await
            .map_err(NeutronError::unavailable)?;
        for (k, id) in deletes {
            if let Some(m) = rows.get_mut(k) {
                m.remove(&id);
            }
        }
        for (k, v) in puts {
            let id = v["id"].as_str().unwrap_or_default().to_owned();
            rows.entry(k.to_owned()).or_default().insert(id, v);
        }
        Ok(())
    }

    /// Whether `caller` sees `item` of `kind`.
    pub(crate) fn visible(rows: &Rows, caller: &Caller, kind: &str, item: &Value) -> bool {
        if caller.privileged() || item["project_id"].as_str() == Some(&caller.project_id) {
            return true;
        }
        let net_public = |net_id: &str| {
            rows.get(NETWORK)
                .and_then(|n| n.get(net_id))
                .is_some_and(|n| n["shared"] == json!(true) || n["router:external"] == json!(true))
        };
        match kind {
            NETWORK => item["shared"] == json!(true) || item["router:external"] == json!(true),
            SUBNET => net_public(item["network_id"].as_str().unwrap_or_default()),
            _ => false,
        }
    }

    /// The view of `item` for `caller` (admin-only attributes removed).
    pub(crate) fn view(caller: &Caller, kind: &str, item: &Value) -> Value {
        let mut v = item.clone();
        if !caller.privileged()
            && let Some(m) = v.as_object_mut()
        {
            match kind {
                PORT => m.retain(|k, _| !k.starts_with("binding:")),
                NETWORK => m.retain(|k, _| !k.starts_with("provider:")),
                _ => {}
            }
        }
        v
    }

    /// Lists `kind` for `caller` with the query's filters and fields.
    pub async fn list(&self, caller: &Caller, kind: &'static str, query: &Query) -> Vec<Value> {
        if kind == SECURITY_GROUP || kind == SECURITY_GROUP_RULE {
            // Neutron makes a project's default group when it first looks.
            let _ = self.ensure_default_group(&caller.project_id).await;
        }
        let rows = self.rows.lock().await;
        let items: Vec<Value> = rows
            .get(kind)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(|v| Self::visible(&rows, caller, kind, v))
            .map(|v| Self::view(caller, kind, v))
            .collect();
        filter_and_select(items, query)
    }

    /// One `kind` by id, as `caller` sees it (404 when not visible).
    pub async fn show(
        &self,
        caller: &Caller,
        kind: &'static str,
        id: &str,
        query: &Query,
    ) -> NResult<Value> {
        let rows = self.rows.lock().await;
        let mut v = Self::get_visible(&rows, caller, kind, id)?;
        let fields: Vec<&str> = query
            .iter()
            .filter(|(k, _)| k == "fields")
            .flat_map(|(_, v)| v.split(','))
            .collect();
        if !fields.is_empty() {
            select(&mut v, &fields);
        }
        Ok(v)
    }

    pub(crate) fn get_visible(
        rows: &Rows,
        caller: &Caller,
        kind: &'static str,
        id: &str,
    ) -> NResult<Value> {
        rows.get(kind)
            .and_then(|m| m.get(id))
            .filter(|v| Self::visible(rows, caller, kind, v))
            .map(|v| Self::view(caller, kind, v))
            .ok_or_else(|| not_found(kind, id))
    }

    /// An item `caller` may change: visible and theirs (or an admin's).
    pub(crate) fn get_owned(
        rows: &Rows,
        caller: &Caller,
        kind: &'static str,
        id: &str,
    ) -> NResult<Value> {
        let v = rows
            .get(kind)
            .and_then(|m| m.get(id))
            .filter(|v| Self::visible(rows, caller, kind, v))
            .cloned()
            .ok_or_else(|| not_found(kind, id))?;
        if caller.privileged() || v["project_id"].as_str() == Some(&caller.project_id) {
            Ok(v)
        } else {
            Err(NeutronError::forbidden(format!(
                "Tenant {} not allowed to modify {kind} {id}",
                caller.project_id
            )))
        }
    }

    // ---- networks ----

    /// `POST /v2.0/networks`.
    pub async fn create_network(&self, caller: &Caller, body: &Value) -> NResult<Value> {
        let m = body_of(body, NETWORK)?;
        only(
            &m,
            &[
                "name",
                "admin_state_up",
                "shared",
                "router:external",
                "description",
                "project_id",
                "tenant_id",
                "mtu",
                "port_security_enabled",
                "provider:network_type",
                "provider:physical_network",
                "provider:segmentation_id",
                "availability_zone_hints",
                "dns_domain",
                "is_default",
            ],
        )?;
        let project = owner_of(caller, &m)?;
        let shared = opt_bool(&m, "shared")?.unwrap_or(false);
        let external = opt_bool(&m, "router:external")?.unwrap_or(false);
        let provider = m.keys().any(|k| k.starts_with("provider:"));
        if (shared || external || provider) && !caller.privileged() {
            return Err(NeutronError::forbidden(
                "(rule:create_network) is disallowed by policy",
            ));
        }
        let mtu = match m.get("mtu") {
            None => 1500,
            Some(v) => v
                .as_u64()
                .filter(|n| (68..=9000).contains(n))
                .ok_or_else(|| NeutronError::bad_request(format!("Invalid input for mtu: {v}")))?,
        };
        let id = uuid::Uuid::new_v4().to_string();
        let mut n = standard(
            &id,
            &project,
            &opt_str(&m, "description")?.unwrap_or_default(),
        );
        n.insert(
            "name".into(),
            json!(opt_str(&m, "name")?.unwrap_or_default()),
        );
        n.insert(
            "admin_state_up".into(),
            json!(opt_bool(&m, "admin_state_up")?.unwrap_or(true)),
        );
        n.insert("status".into(), json!("ACTIVE"));
        n.insert("subnets".into(), json!([]));
        n.insert("shared".into(), json!(shared));
        n.insert("router:external".into(), json!(external));
        n.insert("mtu".into(), json!(mtu));
        n.insert(
            "port_security_enabled".into(),
            json!(opt_bool(&m, "port_security_enabled")?.unwrap_or(true)),
        );
        n.insert(
            "provider:network_type".into(),
            json!(opt_str(&m, "provider:network_type")?.unwrap_or_else(|| "flat".into())),
        );
        n.insert(
            "provider:physical_network".into(),
            json!(opt_str(&m, "provider:physical_network")?.unwrap_or_else(|| "physnet1".into())),
        );
        n.insert(
            "provider:segmentation_id".into(),
            m.get("provider:segmentation_id")
                .cloned()
                .unwrap_or(Value::Null),
        );
        n.insert("availability_zone_hints".into(), json!([]));
        n.insert("availability_zones".into(), json!(["nova"]));
        n.insert("ipv4_address_scope".into(), Value::Null);
        n.insert("ipv6_address_scope".into(), Value::Null);
        n.insert("is_default".into(), json!(false));
        n.insert("l2_adjacency".into(), json!(true));
        n.insert("dns_domain".into(), json!(""));
        let n = Value::Object(n);
        let mut rows = self.rows.lock().await;
        self.commit(&mut rows, vec![(NETWORK, n.clone())], vec![])
            .await?;
        Ok(Self::view(caller, NETWORK, &n))
    }

    /// `PUT /v2.0/networks/{id}`.
    pub async fn update_network(&self, caller: &Caller, id: &str, body: &Value) -> NResult<Value> {
        let m = body_of(body, NETWORK)?;
        only(
            &m,
            &[
                "name",
                "admin_state_up",
                "shared",
                "router:external",
                "description",
                "mtu",
                "port_security_enabled",
                "dns_domain",
                "is_default",
            ],
        )?;
        let mut rows = self.rows.lock().await;
        let mut n = Self::get_owned(&rows, caller, NETWORK, id)?;
        if (m.contains_key("shared") || m.contains_key("router:external")) && !caller.privileged() {
            return Err(NeutronError::forbidden(
                "(rule:update_network) is disallowed by policy",
            ));
        }
        for k in ["name", "description", "dns_domain"] {
            if let Some(s) = opt_str(&m, k)? {
                n[k] = json!(s);
            }
        }
        for k in [
            "admin_state_up",
            "shared",
            "router:external",
            "port_security_enabled",
            "is_default",
        ] {
            if let Some(b) = opt_bool(&m, k)? {
                n[k] = json!(b);
            }
        }
        if let Some(v) = m.get("mtu") {
            n["mtu"] = json!(
                v.as_u64()
                    .filter(|n| (68..=9000).contains(n))
                    .ok_or_else(|| NeutronError::bad_request(format!(
                        "Invalid input for mtu: {v}"
                    )))?
            );
        }
        touch(&mut n);
        self.commit(&mut rows, vec![(NETWORK, n.clone())], vec![])
            .await?;
        Ok(Self::view(caller, NETWORK, &n))
    }

    /// `DELETE /v2.0/networks/{id}`: 409 while ports other than the
    /// network's own are on it; its subnets go with it.
    pub async fn delete_network(&self, caller: &Caller, id: &str) -> NResult<()> {
        let mut rows = self.rows.lock().await;
        Self::get_owned(&rows, caller, NETWORK, id)?;
        let in_use = rows
            .get(PORT)
            .into_iter()
            .flat_map(|m| m.values())
            .any(|p| {
                p["network_id"].as_str() == Some(id)
                    && !p["device_owner"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with("network:")
            });
        if in_use {
            return Err(NeutronError::conflict(
                "NetworkInUse",
                format!(
                    "Unable to complete operation on network {id}. There are one or more ports still in use on the network."
                ),
            ));
        }
        let mut deletes = vec![(NETWORK, id.to_owned())];
        for kind in [SUBNET, PORT] {
            for (sid, s) in rows.get(kind).into_iter().flatten() {
                if s["network_id"].as_str() == Some(id) {
                    deletes.push((kind, sid.clone()));
                }
            }
        }
        self.commit(&mut rows, vec![], deletes).await?;
        drop(rows);
        if let Ok(u) = id.parse()
            && let Err(e) = self.datapath.delete_network(u).await
        {
            tracing::warn!(network = id, error = %e, "datapath could not remove the network");
        }
        Ok(())
    }

    // ---- subnets ----

    /// `POST /v2.0/subnets`.
    pub async fn create_subnet(&self, caller: &Caller, body: &Value) -> NResult<Value> {
        let m = body_of(body, SUBNET)?;
        only(
            &m,
            &[
                "name",
                "network_id",
                "ip_version",
                "cidr",
                "gateway_ip",
                "allocation_pools",
                "enable_dhcp",
                "dns_nameservers",
                "host_routes",
                "description",
                "project_id",
                "tenant_id",
                "ipv6_ra_mode",
                "ipv6_address_mode",
                "subnetpool_id",
                "service_types",
                "segment_id",
                "dns_publish_fixed_ip",
            ],
        )?;
        let net_id = opt_str(&m, "network_id")?.ok_or_else(|| {
            NeutronError::bad_request(
                "Failed to parse request. Required attribute 'network_id' not specified",
            )
        })?;
        let cidr_s = opt_str(&m, "cidr")?.ok_or_else(|| {
            NeutronError::bad_request("Bad subnets request: a cidr must be specified.")
        })?;
        let cidr = Cidr::parse(&cidr_s).map_err(|e| {
            NeutronError::bad_request(format!("Invalid input for cidr. Reason: {e}."))
        })?;
        let version = match m.get("ip_version") {
            None => cidr.version(),
            Some(v) => match v.as_u64() {
                Some(4) => 4,
                Some(6) => 6,
                _ => {
                    return Err(NeutronError::bad_request(format!(
                        "Invalid input for ip_version. Reason: {v} is not in [4, 6]."
                    )));
                }
            },
        };
        if version != cidr.version() {
            return Err(NeutronError::bad_request(
                "Invalid input for operation: Cidr and ip_version do not match.",
            ));
        }
        let gateway = match m.get("gateway_ip") {
            None => cidr.default_gateway(),
            Some(Value::Null) => None,
            Some(Value::String(g)) => {
                let ip: IpAddr = g.parse().map_err(|_| {
                    NeutronError::bad_request(format!(
                        "Invalid input for gateway_ip. Reason: '{g}' is not a valid IP address."
                    ))
                })?;
                if !cidr.contains(ip) {
                    return Err(NeutronError::bad_request(format!(
                        "Invalid input for operation: Gateway IP {g} is not in subnet {cidr_s}."
                    )));
                }
                Some(ip)
            }
            Some(v) => {
                return Err(NeutronError::bad_request(format!(
                    "Invalid input for gateway_ip: {v}"
                )));
            }
        };
        let pools = match m.get("allocation_pools") {
            None | Some(Value::Null) => cidr.default_pools(gateway),
            Some(Value::Array(list)) => {
                let mut out = vec![];
                for p in list {
                    let ip = |k: &str| -> NResult<IpAddr> {
                        p[k].as_str()
                            .and_then(|s| s.parse().ok())
                            .filter(|a| cidr.contains(*a))
                            .ok_or_else(|| {
                                NeutronError::bad_request(format!(
                                    "The allocation pool {p} spans beyond the subnet cidr {cidr_s}."
                                ))
                            })
                    };
                    let (s, e) = (ip("start")?, ip("end")?);
                    if s > e {
                        return Err(NeutronError::bad_request(format!(
                            "Invalid allocation pool {p}"
                        )));
                    }
                    if let Some(g) = gateway
                        && crate::ipam::in_pools(&[(s, e)], g)
                    {
                        return Err(NeutronError::conflict(
                            "GatewayConflictWithAllocationPools",
                            format!("Gateway ip {g} conflicts with allocation pool {p}"),
                        ));
                    }
                    out.push((s, e));
                }
                out
            }
            Some(v) => {
                return Err(NeutronError::bad_request(format!(
                    "Invalid input for allocation_pools: {v}"
                )));
            }
        };
        let mut rows = self.rows.lock().await;
        let mut net = Self::get_visible(&rows, caller, NETWORK, &net_id)?;
        net = rows[NETWORK][&net_id]
            .clone()
            .as_object()
            .map_or(net, |o| Value::Object(o.clone()));
        let owner = owner_of(caller, &m)?;
        if !caller.privileged() && net["project_id"].as_str() != Some(&caller.project_id) {
            return Err(NeutronError::forbidden(
                "(rule:create_subnet) is disallowed by policy",
            ));
        }
        // No overlap with the network's other subnets.
        for s in rows.get(SUBNET).into_iter().flat_map(|m| m.values()) {
            if s["network_id"].as_str() == Some(&net_id)
                && let Ok(other) = Cidr::parse(s["cidr"].as_str().unwrap_or_default())
                && (other.contains(cidr.net) || cidr.contains(other.net))
            {
                return Err(NeutronError::bad_request(format!(
                    "Invalid input for operation: Requested subnet with cidr: {cidr_s} for network: {net_id} overlaps with another subnet."
                )));
            }
        }
        let id = uuid::Uuid::new_v4().to_string();
        let mut s = standard(
            &id,
            &owner,
            &opt_str(&m, "description")?.unwrap_or_default(),
        );
        s.insert(
            "name".into(),
            json!(opt_str(&m, "name")?.unwrap_or_default()),
        );
        s.insert("network_id".into(), json!(net_id));
        s.insert("ip_version".into(), json!(version));
        s.insert(
            "cidr".into(),
            json!(format!("{}/{}", cidr.net, cidr.prefix)),
        );
        s.insert("gateway_ip".into(), json!(gateway.map(|g| g.to_string())));
        s.insert(
            "allocation_pools".into(),
            json!(
                pools
                    .iter()
                    .map(|(a, b)| json!({"start": a.to_string(), "end": b.to_string()}))
                    .collect::<Vec<_>>()
            ),
        );
        s.insert(
            "enable_dhcp".into(),
            json!(opt_bool(&m, "enable_dhcp")?.unwrap_or(true)),
        );
        s.insert(
            "dns_nameservers".into(),
            m.get("dns_nameservers").cloned().unwrap_or(json!([])),
        );
        s.insert(
            "host_routes".into(),
            m.get("host_routes").cloned().unwrap_or(json!([])),
        );
        for k in [
            "ipv6_ra_mode",
            "ipv6_address_mode",
            "subnetpool_id",
            "segment_id",
        ] {
            s.insert(k.into(), m.get(k).cloned().unwrap_or(Value::Null));
        }
        s.insert("service_types".into(), json!([]));
        let s = Value::Object(s);
        if let Some(list) = net["subnets"].as_array_mut() {
            list.push(json!(id));
        }
        touch(&mut net);
        self.commit(
            &mut rows,
            vec![(SUBNET, s.clone()), (NETWORK, net.clone())],
            vec![],
        )
        .await?;
        drop(rows);
        self.sync_network(&net_id).await;
        Ok(s)
    }

    /// `PUT /v2.0/subnets/{id}` (name, description, gateway, DHCP, DNS).
    pub async fn update_subnet(&self, caller: &Caller, id: &str, body: &Value) -> NResult<Value> {
        let m = body_of(body, SUBNET)?;
        only(
            &m,
            &[
                "name",
                "description",
                "enable_dhcp",
                "dns_nameservers",
                "host_routes",
                "gateway_ip",
            ],
        )?;
        let mut rows = self.rows.lock().await;
        let mut s = Self::get_owned(&rows, caller, SUBNET, id)?;
        for k in ["name", "description"] {
            if let Some(v) = opt_str(&m, k)? {
                s[k] = json!(v);
            }
        }
        if let Some(b) = opt_bool(&m, "enable_dhcp")? {
            s["enable_dhcp"] = json!(b);
        }
        for k in ["dns_nameservers", "host_routes"] {
            if let Some(v) = m.get(k) {
                if !v.is_array() {
                    return Err(NeutronError::bad_request(format!("Invalid input for {k}")));
                }
                s[k] = v.clone();
            }
        }
        if let Some(g) = m.get("gateway_ip") {
            let cidr = Cidr::parse(s["cidr"].as_str().unwrap_or_default())
                .map_err(NeutronError::bad_request)?;
            match g {
                Value::Null => s["gateway_ip"] = Value::Null,
                Value::String(t) if t.parse::<IpAddr>().is_ok_and(|ip| cidr.contains(ip)) => {
                    s["gateway_ip"] = json!(t)
                }
                _ => {
                    return Err(NeutronError::bad_request(format!(
                        "Invalid input for gateway_ip: {g}"
                    )));
                }
            }
        }
        touch(&mut s);
        self.commit(&mut rows, vec![(SUBNET, s.clone())], vec![])
            .await?;
        let net_id = s["network_id"].as_str().unwrap_or_default().to_owned();
        drop(rows);
        self.sync_network(&net_id).await;
        Ok(s)
    }

    /// `DELETE /v2.0/subnets/{id}`: 409 while a port has an address on it.
    pub async fn delete_subnet(&self, caller: &Caller, id: &str) -> NResult<()> {
        let mut rows = self.rows.lock().await;
        let s = Self::get_owned(&rows, caller, SUBNET, id)?;
        let used = rows
            .get(PORT)
            .into_iter()
            .flat_map(|m| m.values())
            .any(|p| {
                p["fixed_ips"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|ip| ip["subnet_id"].as_str() == Some(id))
            });
        if used {
            return Err(NeutronError::conflict(
                "SubnetInUse",
                format!(
                    "Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."
                ),
            ));
        }
        let net_id = s["network_id"].as_str().unwrap_or_default().to_owned();
        let mut puts = vec![];
        if let Some(mut net) = rows.get(NETWORK).and_then(|m| m.get(&net_id)).cloned() {
            if let Some(list) = net["subnets"].as_array_mut() {
                list.retain(|x| x.as_str() != Some(id));
            }
            touch(&mut net);
            puts.push((NETWORK, net));
        }
        self.commit(&mut rows, puts, vec![(SUBNET, id.to_owned())])
            .await?;
        Ok(())
    }

    /// The datapath's view of `net_id`: its first IPv4 subnet (else its
    /// first subnet), or None without subnets.
    pub(crate) fn spec_of(rows: &Rows, net_id: &str) -> Option<NetworkSpec> {
        let net = rows.get(NETWORK)?.get(net_id)?;
        let mut subnets: Vec<&Value> = rows
            .get(SUBNET)?
            .values()
            .filter(|s| s["network_id"].as_str() == Some(net_id))
            .collect();
        subnets.sort_by_key(|s| (s["ip_version"].as_u64(), s["created_at"].to_string()));
        let s = subnets.first()?;
        let network_id = net_id.parse().ok()?;
        Some(NetworkSpec {
            network_id,
            bridge: bridge_name(network_id),
            cidr: s["cidr"].as_str()?.to_owned(),
            gateway_ip: s["gateway_ip"].as_str().and_then(|g| g.parse().ok()),
            dhcp: s["enable_dhcp"].as_bool().unwrap_or(true),
            mtu: net["mtu"].as_u64().unwrap_or(1500) as u32,
        })
    }

    /// Brings the datapath in line with `net_id`: the network, then its
    /// ports' DHCP entries. Failures are logged (the records stand).
    pub(crate) async fn sync_network(&self, net_id: &str) {
        let (spec, hosts) = {
            let rows = self.rows.lock().await;
            (
                Self::spec_of(&rows, net_id),
                crate::ports::host_entries(&rows, net_id),
            )
        };
        let Some(spec) = spec else { return };
        if let Err(e) = self.datapath.ensure_network(&spec).await {
            tracing::warn!(network = net_id, error = %e, "datapath could not set up the network");
            return;
        }
        if let Err(e) = self.datapath.set_hosts(spec.network_id, &hosts).await {
            tracing::warn!(network = net_id, error = %e, "datapath could not set the DHCP hosts");
        }
    }

    /// At start: every network with a subnet set up again.
    async fn resync_datapath(&self) {
        let ids: Vec<String> = {
            let rows = self.rows.lock().await;
            rows.get(NETWORK)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default()
        };
        for id in ids {
            self.sync_network(&id).await;
        }
    }
}

/// `<Kind>NotFound`.
pub(crate) fn not_found(kind: &str, id: &str) -> NeutronError {
    let (k, what) = match kind {
        NETWORK => ("NetworkNotFound", "Network"),
        SUBNET => ("SubnetNotFound", "Subnet"),
        PORT => ("PortNotFound", "Port"),
        SECURITY_GROUP => ("SecurityGroupNotFound", "Security group"),
        SECURITY_GROUP_RULE => ("SecurityGroupRuleNotFound", "Security group rule"),
        _ => ("FloatingIPNotFound", "Floating IP"),
    };
    NeutronError::not_found(k, what, id)
}
