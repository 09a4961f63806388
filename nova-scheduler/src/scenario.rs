//! The scenario format `nova-sched-scenario/1` (hosts, aggregates, a
//! request and configuration in one JSON document) and the decision in
//! the oracle's output shape, so our scheduler and nova's can be run and
//! compared on the same input.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::config::{ALL_WEIGHERS, SchedulerConfig};
use crate::error::{Error, Result};
use crate::host_state::{Aggregate, HostState, Inventory, ServiceInfo};
use crate::request::{Destination, FlavorSpec, Request, ServerGroup};
use crate::scheduler::{Decision, Round, Scheduler};

/// A parsed scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Scheduler configuration.
    pub config: SchedulerConfig,
    /// Aggregates.
    pub aggregates: Vec<Aggregate>,
    /// Hosts, in scenario order.
    pub hosts: Vec<HostState>,
    /// The request.
    pub request: Request,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Scenario(msg.into())
}

fn obj<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

fn int(v: &Value, key: &str, default: i64) -> Result<i64> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x
            .as_i64()
            .ok_or_else(|| bad(format!("{key} must be an integer, not {x}"))),
    }
}

fn float(v: &Value, key: &str, default: f64) -> Result<f64> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x
            .as_f64()
            .ok_or_else(|| bad(format!("{key} must be a number, not {x}"))),
    }
}

fn string(v: &Value, key: &str, default: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_owned()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().map(scalar_string).collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![scalar_string(other)],
    }
}

fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn option_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(scalar_string).collect::<Vec<_>>().join(","),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

fn parse_config(c: &Value) -> Result<SchedulerConfig> {
    let mut cfg = SchedulerConfig::default();
    if let Some(f) = c.get("enabled_filters") {
        cfg.enabled_filters = strings(Some(f));
    }
    if c.get("emulate_placement").and_then(Value::as_bool) == Some(true) {
        let pre = [
            "PlacementFilter",
            "CoreFilter",
            "RamFilter",
            "DiskFilter",
            "AvailabilityZoneFilter",
        ];
        let mut names: Vec<String> = pre
            .iter()
            .filter(|p| !cfg.enabled_filters.iter().any(|f| f == *p))
            .map(|p| (*p).to_owned())
            .collect();
        names.append(&mut cfg.enabled_filters);
        cfg.enabled_filters = names;
    }
    match c.get("weighers") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "all" => {
            cfg.weighers = ALL_WEIGHERS.iter().map(|s| (*s).to_owned()).collect()
        }
        Some(w) => cfg.weighers = strings(Some(w)),
    }
    for group in ["filter_scheduler", "scheduler", "metrics"] {
        if let Some(m) = obj(c, group) {
            for (k, v) in m {
                let name = if group == "metrics" && k == "weight_multiplier" {
                    "metrics_weight_multiplier"
                } else {
                    k.as_str()
                };
                if group == "metrics" && k == "weight_setting" {
                    cfg.set("weight_setting", &option_string(v))?;
                    continue;
                }
                match cfg.set(name, &option_string(v)) {
                    Ok(()) => {}
                    // Options that do not change decisions here are accepted and ignored.
                    Err(Error::Config(m)) if m.starts_with("unknown") => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    if let Some(m) = obj(c, "weight_multipliers") {
        for (k, v) in m {
            let name = if k.ends_with("_weight_multiplier") {
                k.clone()
            } else {
                format!("{k}_weight_multiplier")
            };
            cfg.set(&name, &option_string(v))?;
        }
    }
    cfg.service_down_time = float(c, "service_down_time", 60.0)?;
    cfg.return_alternates = c
        .get("return_alternates")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    cfg.seed = c.get("seed").and_then(Value::as_u64).unwrap_or(0);
    Ok(cfg)
}

fn parse_host(h: &Value, aggs: &BTreeMap<String, usize>, down_time: f64) -> Result<HostState> {
    let name = h
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a host has no name"))?;
    let mut s = HostState::new(name);
    s.nodename = string(h, "nodename", name);
    s.uuid = string(h, "uuid", &format!("node:{name}/{}", s.nodename));
    s.cell_uuid = format!("cell:{}", string(h, "cell", "cell1"));
    s.vcpus_total = int(h, "vcpus", 16)?;
    s.vcpus_used = int(h, "vcpus_used", 0)?;
    s.total_usable_ram_mb = int(h, "memory_mb", 32768)?;
    let mem_used = int(h, "memory_mb_used", 0)?;
    s.free_ram_mb = int(h, "free_ram_mb", s.total_usable_ram_mb - mem_used)?;
    s.total_usable_disk_gb = int(h, "local_gb", 500)?;
    let disk_used = int(h, "local_gb_used", 0)?;
    let mut free_gb = int(h, "free_disk_gb", s.total_usable_disk_gb - disk_used)?;
    if let Some(least) = h.get("disk_available_least").and_then(Value::as_i64) {
        free_gb = free_gb.min(least);
    }
    s.free_disk_mb = free_gb * 1024;
    s.disk_mb_used = disk_used * 1024;
    s.cpu_allocation_ratio = float(h, "cpu_allocation_ratio", 4.0)?;
    s.ram_allocation_ratio = float(h, "ram_allocation_ratio", 1.0)?;
    s.disk_allocation_ratio = float(h, "disk_allocation_ratio", 1.0)?;
    s.hypervisor_type = string(h, "hypervisor_type", "QEMU");
    s.hypervisor_version = int(h, "hypervisor_version", 8_002_000)?;
    if let Some(Value::Array(sup)) = h.get("supported_instances") {
        s.supported_instances = sup
            .iter()
            .map(|t| {
                let t = strings(Some(t));
                [
                    t.first().cloned().unwrap_or_default(),
                    t.get(1).cloned().unwrap_or_default(),
                    t.get(2).cloned().unwrap_or_default(),
                ]
            })
            .collect();
    }
    s.cpu_info = match h.get("cpu_info") {
        Some(Value::String(js)) => serde_json::from_str(js).unwrap_or(Value::String(js.clone())),
        Some(v) => v.clone(),
        None => json!({}),
    };
    s.host_ip = string(h, "host_ip", "192.0.2.1");
    s.instances = strings(h.get("instances")).into_iter().collect();
    s.num_instances = int(h, "num_instances", s.instances.len() as i64)?;
    s.num_io_ops = int(h, "num_io_ops", 0)?;
    s.failed_builds = int(h, "failed_builds", 0)?;
    if let Some(m) = obj(h, "stats") {
        s.stats = m
            .iter()
            .map(|(k, v)| (k.clone(), option_string(v)))
            .collect();
    }
    s.stats
        .insert("num_instances".into(), s.num_instances.to_string());
    s.stats
        .insert("io_workload".into(), s.num_io_ops.to_string());
    s.stats
        .insert("failed_builds".into(), s.failed_builds.to_string());
    if let Some(Value::Array(ms)) = h.get("metrics") {
        for m in ms {
            let (Some(n), Some(v)) = (
                m.get("name").and_then(Value::as_str),
                m.get("value").and_then(Value::as_f64),
            ) else {
                return Err(bad(format!(
                    "host {name}: a metric needs a name and a numeric value"
                )));
            };
            let v = if n.ends_with(".percent") {
                v * 100.0
            } else {
                v
            };
            s.metrics.insert(n.to_owned(), v);
        }
    }
    for a in strings(h.get("aggregates")) {
        let i = aggs
            .get(&a)
            .ok_or_else(|| bad(format!("host {name}: unknown aggregate {a:?}")))?;
        if !s.aggregates.contains(i) {
            s.aggregates.push(*i);
        }
    }
    if let Some(svc) = h.get("service") {
        let up = svc.get("up").and_then(Value::as_bool).unwrap_or(true);
        s.service = ServiceInfo {
            disabled: svc
                .get("disabled")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            disabled_reason: svc
                .get("disabled_reason")
                .and_then(Value::as_str)
                .map(str::to_owned),
            forced_down: svc
                .get("forced_down")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            seconds_since_heartbeat: float(
                svc,
                "seconds_since_heartbeat",
                if up { 0.0 } else { 10.0 * down_time + 1.0 },
            )?,
        };
    }
    if let Some(r) = h.get("reserved") {
        s.reserved_vcpus = int(r, "vcpus", 0)?;
        s.reserved_memory_mb = int(r, "memory_mb", 0)?;
        s.reserved_disk_gb = int(r, "disk_gb", 0)?;
    }
    if let Some(inv) = obj(h, "inventories") {
        for (rc, i) in inv {
            let total = int(i, "total", 0)?;
            s.inventories.insert(
                rc.clone(),
                Inventory {
                    total,
                    reserved: int(i, "reserved", 0)?,
                    allocation_ratio: float(i, "allocation_ratio", 1.0)?,
                    used: float(i, "used", 0.0)?,
                    max_unit: int(i, "max_unit", total)?,
                },
            );
        }
    }
    s.traits = strings(h.get("traits")).into_iter().collect();
    Ok(s)
}

fn parse_request(r: &Value, hosts: &[HostState]) -> Result<Request> {
    let f = r.get("flavor").cloned().unwrap_or(json!({}));
    let flavor = FlavorSpec {
        name: string(&f, "name", "flavor"),
        vcpus: int(&f, "vcpus", 1)?,
        memory_mb: int(&f, "memory_mb", 512)?,
        root_gb: int(&f, "root_gb", 1)?,
        ephemeral_gb: int(&f, "ephemeral_gb", 0)?,
        swap: int(&f, "swap", 0)?,
        extra_specs: obj(&f, "extra_specs")
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), option_string(v)))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let image = r.get("image").cloned().unwrap_or(json!({}));
    let n = usize::try_from(int(r, "num_instances", 1)?.max(1)).unwrap_or(1);
    let uuids = match r.get("instance_uuids") {
        Some(v @ Value::Array(_)) => strings(Some(v)),
        _ => {
            let first = string(r, "instance_uuid", "instance:req-0");
            std::iter::once(first)
                .chain((1..n).map(|i| format!("instance:req-{i}")))
                .collect()
        }
    };
    let mut hints = BTreeMap::new();
    if let Some(m) = obj(r, "scheduler_hints") {
        for (k, v) in m {
            let vals = match v {
                Value::Object(_) => vec![v.to_string()],
                other => strings(Some(other)),
            };
            hints.insert(k.clone(), vals);
        }
    }
    let group = match r.get("server_group") {
        Some(g @ Value::Object(_)) => {
            let policy = g
                .get("policy")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("server_group needs a policy"))?
                .to_owned();
            let mut members: Vec<String> = strings(g.get("members"));
            if g.get("add_request_instances")
                .and_then(Value::as_bool)
                .unwrap_or(true)
            {
                for u in &uuids {
                    if !members.contains(u) {
                        members.push(u.clone());
                    }
                }
            }
            let members: BTreeSet<String> = members.into_iter().collect();
            let ghosts = match g.get("hosts") {
                Some(h) => strings(Some(h)),
                None => {
                    let mut out: Vec<String> = Vec::new();
                    for h in hosts {
                        if h.instances.iter().any(|u| members.contains(u)) && !out.contains(&h.host)
                        {
                            out.push(h.host.clone());
                        }
                    }
                    out
                }
            };
            let max = g
                .get("rules")
                .and_then(|r| r.get("max_server_per_host"))
                .and_then(|v| {
                    v.as_i64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                });
            Some(ServerGroup {
                uuid: string(g, "uuid", "group"),
                policy,
                max_server_per_host: max,
                members,
                hosts: ghosts,
            })
        }
        _ => None,
    };
    let dest = r
        .get("requested_destination")
        .filter(|d| d.is_object())
        .map(|d| Destination {
            host: string(d, "host", ""),
            node: d.get("node").and_then(Value::as_str).map(str::to_owned),
            cell_uuid: None,
            allow_cross_cell_move: false,
        });
    Ok(Request {
        project_id: string(r, "project_id", "project"),
        user_id: string(r, "user_id", "user"),
        flavor,
        image_id: string(&image, "id", "image:default"),
        image_disk_format: image
            .get("disk_format")
            .and_then(Value::as_str)
            .map(str::to_owned),
        image_properties: obj(&image, "properties")
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default(),
        availability_zone: r
            .get("availability_zone")
            .and_then(Value::as_str)
            .map(str::to_owned),
        scheduler_hints: hints,
        group,
        instance_uuids: uuids,
        ignore_hosts: strings(r.get("ignore_hosts")),
        force_hosts: strings(r.get("force_hosts")),
        force_nodes: strings(r.get("force_nodes")),
        requested_destination: dest,
        is_bfv: r.get("is_bfv").and_then(Value::as_bool).unwrap_or(false),
    })
}

impl Scenario {
    /// Parses a scenario document.
    pub fn parse(doc: &Value) -> Result<Self> {
        let config = parse_config(doc.get("config").unwrap_or(&Value::Null))?;
        let mut aggregates = Vec::new();
        let mut by_name = BTreeMap::new();
        if let Some(Value::Array(a)) = doc.get("aggregates") {
            for (i, agg) in a.iter().enumerate() {
                let name = agg
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("an aggregate has no name"))?;
                if by_name.insert(name.to_owned(), i).is_some() {
                    return Err(bad(format!("aggregate {name:?} is declared twice")));
                }
                aggregates.push(Aggregate {
                    id: int(agg, "id", i as i64 + 1)?,
                    uuid: string(agg, "uuid", &format!("agg:{name}")),
                    name: name.to_owned(),
                    metadata: obj(agg, "metadata")
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| (k.clone(), option_string(v)))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
        }
        let Some(Value::Array(hs)) = doc.get("hosts") else {
            return Err(bad("hosts is required"));
        };
        let mut hosts = Vec::with_capacity(hs.len());
        let mut seen = BTreeSet::new();
        for h in hs {
            let s = parse_host(h, &by_name, config.service_down_time)?;
            if !seen.insert((s.host.clone(), s.nodename.clone())) {
                return Err(bad(format!(
                    "duplicate host/node {}/{}",
                    s.host, s.nodename
                )));
            }
            hosts.push(s);
        }
        // Membership may be declared on the aggregate side too.
        if let Some(Value::Array(a)) = doc.get("aggregates") {
            for (i, agg) in a.iter().enumerate() {
                for hn in strings(agg.get("hosts")) {
                    for h in hosts.iter_mut().filter(|h| h.host == hn) {
                        if !h.aggregates.contains(&i) {
                            h.aggregates.push(i);
                        }
                    }
                }
            }
        }
        let request = parse_request(
            doc.get("request")
                .ok_or_else(|| bad("request is required"))?,
            &hosts,
        )?;
        Ok(Scenario {
            config,
            aggregates,
            hosts,
            request,
        })
    }

    /// Registers every host in `placement` as a root resource provider
    /// (uuid = compute node uuid) with VCPU, MEMORY_MB and DISK_GB from the
    /// node, its other inventories, traits (`COMPUTE_STATUS_DISABLED` when
    /// the service is disabled) and aggregates, and the usage the host
    /// reports as allocations of a consumer `existing:<node uuid>`.
    pub fn populate(&self, placement: &dyn crate::placement::Placement) -> Result<()> {
        use crate::placement::{Allocations, InventoryRecord};
        let perr = |e: crate::placement::PlacementError| Error::Scenario(format!("placement: {e}"));
        for h in &self.hosts {
            let rp = placement
                .create_provider(&h.uuid, &h.nodename, None)
                .map_err(perr)?;
            let mut inv = BTreeMap::new();
            let std = [
                (
                    "VCPU",
                    h.vcpus_total,
                    h.reserved_vcpus,
                    h.cpu_allocation_ratio,
                    h.vcpus_used,
                ),
                (
                    "MEMORY_MB",
                    h.total_usable_ram_mb,
                    h.reserved_memory_mb,
                    h.ram_allocation_ratio,
                    h.total_usable_ram_mb - h.free_ram_mb,
                ),
                (
                    "DISK_GB",
                    h.total_usable_disk_gb,
                    h.reserved_disk_gb,
                    h.disk_allocation_ratio,
                    h.total_usable_disk_gb - h.free_disk_mb / 1024,
                ),
            ];
            let mut used: Vec<(String, i64, i64)> = Vec::new();
            for (rc, total, reserved, ratio, u) in std {
                if total < 1 {
                    continue;
                }
                inv.insert(
                    rc.to_owned(),
                    InventoryRecord {
                        reserved: reserved.min(total),
                        ..InventoryRecord::new(total).with_ratio(ratio)
                    },
                );
                used.push((rc.to_owned(), u, total));
            }
            for (rc, i) in &h.inventories {
                if i.total < 1 {
                    continue;
                }
                inv.insert(
                    rc.clone(),
                    InventoryRecord {
                        reserved: i.reserved.min(i.total),
                        max_unit: i.max_unit.max(1),
                        ..InventoryRecord::new(i.total).with_ratio(i.allocation_ratio)
                    },
                );
                used.push((rc.clone(), i.used.ceil() as i64, i.max_unit.max(1)));
            }
            let g = placement
                .set_inventories(&h.uuid, rp.generation, &inv)
                .map_err(perr)?;
            let mut traits = h.traits.clone();
            if h.service.disabled {
                traits.insert(crate::COMPUTE_STATUS_DISABLED.to_owned());
            }
            let g = placement.set_traits(&h.uuid, g, &traits).map_err(perr)?;
            let aggs: BTreeSet<String> = h
                .aggregates
                .iter()
                .filter_map(|&a| self.aggregates.get(a))
                .map(|a| a.uuid.clone())
                .collect();
            placement.set_aggregates(&h.uuid, g, &aggs).map_err(perr)?;
            // Existing usage, in pieces no larger than max_unit.
            let mut k = 0;
            let mut left: Vec<(String, i64, i64)> = used.into_iter().filter(|u| u.1 > 0).collect();
            while !left.is_empty() {
                let mut a: Allocations = BTreeMap::new();
                let r = a.entry(h.uuid.as_str().into()).or_default();
                for (rc, amount, max_unit) in left.iter_mut() {
                    let take = (*amount).min(*max_unit);
                    r.insert(rc.as_str().into(), take);
                    *amount -= take;
                }
                left.retain(|u| u.1 > 0);
                // Usage past capacity (overcommitted hosts) cannot be
                // recorded; what fits is.
                let _ = placement.put_allocations(
                    &format!("existing:{}:{k}", h.uuid),
                    &a,
                    "existing",
                    "existing",
                    None,
                );
                k += 1;
            }
        }
        Ok(())
    }

    /// A scheduler loaded with the scenario's hosts and aggregates.
    pub fn scheduler(&self) -> Result<Scheduler> {
        let mut s = Scheduler::new(self.config.clone())?;
        s.set_aggregates(self.aggregates.clone());
        for h in &self.hosts {
            s.upsert_host(h.clone());
        }
        Ok(s)
    }
}

fn passed_json(s: &Scheduler, r: &Round) -> Value {
    Value::Array(
        r.passed
            .iter()
            .map(|w| {
                let h = &s.hosts()[w.host];
                json!({"host": h.host, "nodename": h.nodename, "weight": w.weight})
            })
            .collect(),
    )
}

fn counts_json(r: &Round) -> Value {
    Value::Array(
        r.filter_counts
            .iter()
            .map(|c| {
                json!({"filter": c.filter, "start": c.start, "end": c.end,
                            "removed": c.start - c.end, "emulated": c.emulated})
            })
            .collect(),
    )
}

/// The decision in the oracle's output shape (`passed`, `filter_counts`,
/// `selected`, `selections`, `error`, `rounds`). `outcome` is what
/// [`Scheduler::schedule`] returned; `rounds` are the traced rounds (on
/// error, from [`Scheduler::last_rounds`]).
pub fn decision_json(
    s: &Scheduler,
    outcome: &Result<Decision>,
    rounds: &[Round],
    n: usize,
) -> Value {
    let first = rounds.first();
    let (selections, error) = match outcome {
        Ok(d) => (
            d.selections
                .iter()
                .map(|v| {
                    v.iter()
                        .map(|x| json!({"host": x.host, "nodename": x.nodename}))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>(),
            Value::Null,
        ),
        Err(e) => (
            Vec::new(),
            json!({"class": if e.is_no_valid_host() { "NoValidHost" } else { "Error" }, "message": e.to_string()}),
        ),
    };
    json!({
        "engine": "nova-scheduler",
        "enabled_filters": s.filter_names(),
        "emulated_filters": s.emulated_filter_names(),
        "weighers": s.weigher_names(),
        "hosts_in": s.hosts().len(),
        "passed": first.map_or(json!([]), |r| passed_json(s, r)),
        "filter_counts": first.map_or(json!([]), counts_json),
        "selected": selections.iter().filter_map(|v| v.first().cloned()).collect::<Vec<_>>(),
        "selections": selections,
        "error": error,
        "rounds": rounds.iter().enumerate().map(|(i, r)| json!({
            "round": i, "index": r.index,
            "purpose": if i < n { format!("select instance {i}") } else { "re-sort for alternates".into() },
            "input_hosts": r.input_hosts, "filter_counts": counts_json(r), "passed": passed_json(s, r),
            "timing_ms": {"filter": r.filter_ms, "weigh": r.weigh_ms},
        })).collect::<Vec<_>>(),
    })
}
