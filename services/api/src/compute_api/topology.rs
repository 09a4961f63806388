//! `GET /servers/{id}/topology` (2.78): nova's `_get_numa_topology` over
//! the instance's `InstanceNUMATopology` primitive.

use nova_objects::{Instance, VersionedObject};
use serde_json::{Map, Value, json};

/// The topology document; `show_host` adds each node's host NUMA node
/// and CPU pinning (nova's `topology:host:index` rule).
pub(crate) fn topology(inst: &Instance, show_host: bool) -> Value {
    let topo = if inst.obj_attr_is_set("numa_topology") {
        inst.numa_topology().as_ref().map(|t| &t.0)
    } else {
        None
    };
    let Some(cells) = topo.and_then(|t| t["nova_object.data"]["cells"].as_array()) else {
        return json!({"nodes": [], "pagesize_kb": null});
    };
    let mut pagesize_kb = Value::Null;
    let nodes: Vec<Value> = cells
        .iter()
        .map(|c| {
            let d = &c["nova_object.data"];
            let ints = |v: &Value| -> Vec<i64> {
                v.as_array()
                    .map(|a| a.iter().filter_map(Value::as_i64).collect())
                    .unwrap_or_default()
            };
            // `total_cpus`: cpuset | pcpuset.
            let mut cpus = ints(&d["cpuset"]);
            cpus.extend(ints(&d["pcpuset"]));
            cpus.sort_unstable();
            cpus.dedup();
            // `siblings`: the CPUs in groups of the topology's threads
            // (none when one thread per core).
            let threads = d["cpu_topology"]["nova_object.data"]["threads"]
                .as_u64()
                .unwrap_or(0) as usize;
            let siblings: Vec<Vec<i64>> = if threads > 1 {
                cpus.chunks_exact(threads).map(<[i64]>::to_vec).collect()
            } else {
                Vec::new()
            };
            let mut node = json!({
                "vcpu_set": cpus,
                "siblings": siblings,
                "memory_mb": d["memory"],
            });
            if show_host {
                node["host_node"] = d["id"].clone();
                // `cpu_pinning_raw` maps vCPU → host CPU (string keys).
                let pinning: Map<String, Value> = d["cpu_pinning_raw"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                node["cpu_pinning"] = Value::Object(pinning);
            }
            if let Some(p) = d["pagesize"].as_i64().filter(|p| *p != 0) {
                pagesize_kb = json!(p);
            }
            node
        })
        .collect();
    json!({"nodes": nodes, "pagesize_kb": pagesize_kb})
}

#[cfg(test)]
mod tests {
    use super::*;
    use nova_objects::RawObject;

    fn cell(id: i64, cpus: &[i64], pinning: Value) -> Value {
        json!({"nova_object.name": "InstanceNUMACell", "nova_object.namespace": "nova",
               "nova_object.version": "1.6", "nova_object.data": {
                   "id": id, "cpuset": [], "pcpuset": cpus, "memory": 1024,
                   "pagesize": 2048, "cpu_pinning_raw": pinning,
                   "cpu_topology": {"nova_object.name": "VirtCPUTopology",
                       "nova_object.namespace": "nova", "nova_object.version": "1.0",
                       "nova_object.data": {"sockets": 1, "cores": 1, "threads": 2}}}})
    }

    #[test]
    fn nodes_come_from_the_numa_cells() {
        let none = Instance::new().with_numa_topology(None);
        assert_eq!(
            topology(&none, true),
            json!({"nodes": [], "pagesize_kb": null})
        );
        let topo = json!({"nova_object.name": "InstanceNUMATopology", "nova_object.namespace": "nova",
            "nova_object.version": "1.3", "nova_object.data": {
                "instance_uuid": "u", "cells": [cell(0, &[0, 1], json!({"0": 5, "1": 6})), cell(1, &[2, 3], Value::Null)]}});
        let inst = Instance::new().with_numa_topology(Some(RawObject(topo)));
        let user = topology(&inst, false);
        assert_eq!(user["pagesize_kb"], 2048);
        assert_eq!(
            user["nodes"][0],
            json!({"vcpu_set": [0, 1], "siblings": [[0, 1]], "memory_mb": 1024})
        );
        let admin = topology(&inst, true);
        assert_eq!(admin["nodes"][0]["host_node"], 0);
        assert_eq!(admin["nodes"][0]["cpu_pinning"], json!({"0": 5, "1": 6}));
        assert_eq!(admin["nodes"][1]["cpu_pinning"], json!({}));
    }
}
