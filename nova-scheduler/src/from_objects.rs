//! Building the scheduler's inputs from nova's objects (feature `objects`):
//! what nova's `HostManager` does with `ComputeNode`, `Service` and
//! `Aggregate`, and the scheduling view of a `RequestSpec`.

use std::collections::{BTreeMap, BTreeSet};

use nova_objects::{ComputeNode, DateTime, Service, VersionedObject};
use serde_json::Value;

use crate::host_state::{Aggregate, HostState, ServiceInfo};
use crate::request::{Destination, FlavorSpec, Request, ServerGroup};

/// A nova `Aggregate` as the scheduler sees it.
pub fn aggregate(a: &nova_objects::Aggregate) -> Aggregate {
    Aggregate {
        id: *a.id(),
        uuid: a.uuid().clone(),
        name: a.name().clone(),
        metadata: a.metadata().clone().unwrap_or_default(),
    }
}

/// The field values an object has set, as its primitive's data (strings,
/// numbers, lists).
fn data_of<T: VersionedObject>(o: &T) -> serde_json::Map<String, Value> {
    match o.obj_to_primitive().get(nova_objects::primitive::DATA_KEY) {
        Some(Value::Object(m)) => m.clone(),
        _ => serde_json::Map::new(),
    }
}

/// The scheduling view of a `RequestSpec` for `instance_uuids` (nova's
/// `select_destinations(spec, instance_uuids)`).
pub fn request(spec: &nova_objects::RequestSpec, instance_uuids: &[String]) -> Request {
    let f = spec.flavor();
    let flavor = FlavorSpec {
        name: f.name().clone().unwrap_or_default(),
        vcpus: *f.vcpus(),
        memory_mb: *f.memory_mb(),
        root_gb: *f.root_gb(),
        ephemeral_gb: *f.ephemeral_gb(),
        swap: *f.swap(),
        extra_specs: f.extra_specs().clone(),
    };
    let (image_id, image_disk_format, image_properties) = match spec.image() {
        Some(img) => (
            img.id().clone(),
            img.obj_attr_is_set("disk_format")
                .then(|| img.disk_format().clone()),
            data_of(img.properties())
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
        ),
        None => (String::new(), None, BTreeMap::new()),
    };
    let group = spec.instance_group().as_ref().map(|g| {
        let policy = g
            .policy()
            .clone()
            .or_else(|| g.policies().as_ref().and_then(|p| p.first().cloned()))
            .unwrap_or_default();
        ServerGroup {
            uuid: g.uuid().clone(),
            policy,
            max_server_per_host: g
                .rules()
                .get("max_server_per_host")
                .and_then(|v| v.parse().ok()),
            members: g
                .members()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect::<BTreeSet<_>>(),
            hosts: g.hosts().clone().unwrap_or_default(),
        }
    });
    let requested_destination = spec.requested_destination().as_ref().map(|d| Destination {
        host: d.host().clone(),
        node: d.node().clone(),
        cell_uuid: d.cell().as_ref().map(|c| c.uuid().clone()),
        allow_cross_cell_move: *d.allow_cross_cell_move(),
    });
    Request {
        project_id: spec.project_id().clone().unwrap_or_default(),
        user_id: spec.user_id().clone().unwrap_or_default(),
        flavor,
        image_id,
        image_disk_format,
        image_properties,
        availability_zone: spec.availability_zone().clone(),
        scheduler_hints: spec.scheduler_hints().clone().unwrap_or_default(),
        group,
        instance_uuids: if instance_uuids.is_empty() {
            vec![spec.instance_uuid().clone()]
        } else {
            instance_uuids.to_vec()
        },
        ignore_hosts: spec.ignore_hosts().clone().unwrap_or_default(),
        force_hosts: spec.force_hosts().clone().unwrap_or_default(),
        force_nodes: spec.force_nodes().clone().unwrap_or_default(),
        requested_destination,
        is_bfv: *spec.is_bfv(),
    }
}

/// Nova's `HostState.update(compute, service, aggregates, instances)`:
/// `aggregates` are indices into the scheduler's aggregate list.
pub fn host_state(
    cn: &ComputeNode,
    service: Option<&Service>,
    aggregates: Vec<usize>,
    instances: BTreeSet<String>,
    cell_uuid: &str,
    now: DateTime,
) -> HostState {
    let host = cn.host().clone().unwrap_or_default();
    let mut h = HostState::new(&host);
    h.nodename = cn
        .hypervisor_hostname()
        .clone()
        .unwrap_or_else(|| host.clone());
    h.uuid = cn.uuid().clone();
    h.cell_uuid = cell_uuid.to_owned();
    h.vcpus_total = *cn.vcpus();
    h.vcpus_used = *cn.vcpus_used();
    h.total_usable_ram_mb = *cn.memory_mb();
    h.free_ram_mb = cn
        .free_ram_mb()
        .unwrap_or(*cn.memory_mb() - *cn.memory_mb_used());
    h.total_usable_disk_gb = *cn.local_gb();
    let mut free_gb = cn
        .free_disk_gb()
        .unwrap_or(*cn.local_gb() - *cn.local_gb_used());
    if let Some(least) = *cn.disk_available_least() {
        free_gb = free_gb.min(least);
    }
    h.free_disk_mb = free_gb * 1024;
    h.disk_mb_used = *cn.local_gb_used() * 1024;
    h.cpu_allocation_ratio = *cn.cpu_allocation_ratio();
    h.ram_allocation_ratio = *cn.ram_allocation_ratio();
    h.disk_allocation_ratio = *cn.disk_allocation_ratio();
    h.hypervisor_type = cn.hypervisor_type().clone();
    h.hypervisor_version = *cn.hypervisor_version();
    h.cpu_info = cn
        .cpu_info()
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Object(Default::default()));
    h.supported_instances = cn
        .supported_hv_specs()
        .iter()
        .map(|s| [s.arch().clone(), s.hv_type().clone(), s.vm_mode().clone()])
        .collect();
    h.host_ip = cn.host_ip().clone().unwrap_or_default();
    h.stats = cn
        .stats()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    let stat = |k: &str| {
        h.stats
            .get(k)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    h.num_instances = stat("num_instances");
    h.num_io_ops = stat("io_workload");
    h.failed_builds = stat("failed_builds");
    if let Some(Ok(Value::Array(ms))) = cn.metrics().as_deref().map(serde_json::from_str::<Value>) {
        for m in ms {
            if let (Some(n), Some(v)) = (
                m.get("name").and_then(Value::as_str),
                m.get("value").and_then(Value::as_f64),
            ) {
                h.metrics.insert(
                    n.to_owned(),
                    if n.ends_with(".percent") {
                        v * 100.0
                    } else {
                        v
                    },
                );
            }
        }
    }
    h.aggregates = aggregates;
    h.instances = instances;
    if let Some(s) = service {
        let seen = (*s.last_seen_up()).or(*s.created_at());
        h.service = ServiceInfo {
            disabled: *s.disabled(),
            disabled_reason: s.disabled_reason().clone(),
            forced_down: *s.forced_down(),
            seconds_since_heartbeat: seen.map_or(f64::INFINITY, |t| {
                (now - t).num_milliseconds() as f64 / 1000.0
            }),
        };
    }
    h
}
