//! Instance diagnostics (nova's `ComputeManager.get_diagnostics` and
//! `get_instance_diagnostics`): refused unless the guest is running; the
//! driver's figures rendered as nova's `Diagnostics` object (API 2.48) or
//! as the libvirt driver's own dict (before 2.48).

use nova_objects::Instance;
use nova_rpc::RemoteError;
use nova_virt::{ComputeDriver, Diagnostics, PowerState};
use serde_json::{Map, Value, json};

/// The driver's figures for a running instance; `InstanceInvalidState`
/// (nova's kwargs) when it is not running, `NotImplementedError` when the
/// driver has none.
pub(crate) async fn figures(
    driver: &dyn ComputeDriver,
    inst: &Instance,
) -> Result<Diagnostics, RemoteError> {
    let uuid = inst.uuid();
    let state = match driver.get_info(uuid).await {
        Ok(i) => i.state,
        Err(nova_virt::Error::InstanceNotFound(_)) => PowerState::NoState,
        Err(e) => return Err(RemoteError::internal("ComputeError", e.to_string())),
    };
    if state != PowerState::Running {
        let name = state.nova_name();
        return Err(RemoteError::new(
            "InstanceInvalidState",
            "nova.exception",
            format!(
                "Instance {uuid} in power state {name}. Cannot get_diagnostics while the instance is in this state."
            ),
        )
        .with_kwarg("attr", "power state")
        .with_kwarg("instance_uuid", uuid.as_str())
        .with_kwarg("state", name)
        .with_kwarg("method", "get_diagnostics"));
    }
    match driver.get_instance_diagnostics(uuid).await {
        Ok(d) => Ok(d),
        Err(nova_virt::Error::NotSupported { operation }) => Err(RemoteError::new(
            "NotImplementedError",
            "builtins",
            format!("{} driver: {operation}", driver.name()),
        )),
        Err(e) => Err(RemoteError::internal("ComputeError", e.to_string())),
    }
}

fn object(name: &str, data: Value) -> Value {
    let changes: Vec<String> = data
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    json!({"nova_object.name": name, "nova_object.namespace": "nova",
           "nova_object.version": "1.0", "nova_object.data": data,
           "nova_object.changes": changes})
}

/// nova's `configdrive.required_by` (the instance's flag).
fn config_drive(inst: &Instance) -> bool {
    inst.config_drive().as_deref().is_some_and(|c| {
        matches!(
            c.to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "on" | "t" | "y"
        )
    })
}

/// nova's `Diagnostics` (1.0) primitive: the driver's figures, the uptime
/// since the instance was launched, memory in MiB. `driver` is nova's
/// `HypervisorDriver` enum, which has no fake: the fake driver reports
/// `libvirt` there as nova's does (its `hypervisor` says `fake`), so a
/// nova client can decode the object.
pub(crate) fn standardized(driver: &str, inst: &Instance, d: &Diagnostics) -> Value {
    let driver = match driver {
        "fake" => "libvirt",
        other => other,
    };
    let uptime = inst
        .launched_at()
        .map(|t| (chrono::Utc::now() - t).num_seconds().max(0));
    let mib = |k: Option<i64>| k.map(|k| k / 1024);
    let cpus: Vec<Value> = d
        .cpus
        .iter()
        .map(|c| {
            object(
                "CpuDiagnostics",
                json!({"id": c.id, "time": c.time, "utilisation": c.utilisation}),
            )
        })
        .collect();
    let nics: Vec<Value> = d
        .nics
        .iter()
        .map(|n| {
            object(
                "NicDiagnostics",
                json!({"mac_address": n.mac_address, "rx_octets": n.rx_octets,
                       "rx_errors": n.rx_errors, "rx_drop": n.rx_drop,
                       "rx_packets": n.rx_packets, "rx_rate": null,
                       "tx_octets": n.tx_octets, "tx_errors": n.tx_errors,
                       "tx_drop": n.tx_drop, "tx_packets": n.tx_packets, "tx_rate": null}),
            )
        })
        .collect();
    let disks: Vec<Value> = d
        .disks
        .iter()
        .map(|k| {
            object(
                "DiskDiagnostics",
                json!({"read_bytes": k.read_bytes, "read_requests": k.read_requests,
                       "write_bytes": k.write_bytes, "write_requests": k.write_requests,
                       "errors_count": k.errors_count}),
            )
        })
        .collect();
    object(
        "Diagnostics",
        json!({
            "state": d.state.nova_name(),
            "driver": driver,
            "hypervisor": d.hypervisor,
            "hypervisor_os": d.hypervisor_os,
            "uptime": uptime,
            "config_drive": config_drive(inst),
            "memory_details": object("MemoryDiagnostics", json!({
                "maximum": mib(d.memory_max_kib), "used": mib(d.memory_used_kib)})),
            "num_cpus": cpus.len(),
            "num_nics": nics.len(),
            "num_disks": disks.len(),
            "cpu_details": cpus,
            "nic_details": nics,
            "disk_details": disks,
        }),
    )
}

/// The libvirt driver's `get_diagnostics` dict: `cpu<N>_time`,
/// `<disk>_read[_req]`, `<disk>_write[_req]`, `<disk>_errors`,
/// `<tap>_rx[_packets|_errors|_drop]`, `<tap>_tx…`, `memory` (KiB) and
/// `memory-<stat>`; devices whose counters could not be read are left out.
pub(crate) fn legacy(d: &Diagnostics) -> Value {
    let mut out = Map::new();
    let mut put = |k: String, v: Option<i64>| {
        if let Some(v) = v {
            out.insert(k, json!(v));
        }
    };
    for c in &d.cpus {
        put(format!("cpu{}_time", c.id), c.time);
    }
    for k in &d.disks {
        let dev = &k.device;
        put(format!("{dev}_read_req"), k.read_requests);
        put(format!("{dev}_read"), k.read_bytes);
        put(format!("{dev}_write_req"), k.write_requests);
        put(format!("{dev}_write"), k.write_bytes);
        put(format!("{dev}_errors"), k.errors_count);
    }
    for n in &d.nics {
        let Some(dev) = &n.device else { continue };
        put(format!("{dev}_rx"), n.rx_octets);
        put(format!("{dev}_rx_packets"), n.rx_packets);
        put(format!("{dev}_rx_errors"), n.rx_errors);
        put(format!("{dev}_rx_drop"), n.rx_drop);
        put(format!("{dev}_tx"), n.tx_octets);
        put(format!("{dev}_tx_packets"), n.tx_packets);
        put(format!("{dev}_tx_errors"), n.tx_errors);
        put(format!("{dev}_tx_drop"), n.tx_drop);
    }
    put("memory".into(), d.memory_max_kib);
    for (k, v) in &d.memory_stats {
        put(format!("memory-{k}"), Some(*v));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nova_virt::{CpuDiagnostics, DiskDiagnostics, NicDiagnostics};

    fn figures() -> Diagnostics {
        Diagnostics {
            state: PowerState::Running,
            hypervisor: Some("qemu".into()),
            hypervisor_os: Some("linux".into()),
            memory_max_kib: Some(524_288),
            memory_used_kib: Some(262_144),
            memory_stats: [("rss".to_owned(), 1000)].into_iter().collect(),
            cpus: vec![CpuDiagnostics {
                id: 0,
                time: Some(17),
                utilisation: None,
            }],
            nics: vec![NicDiagnostics {
                device: Some("tap1".into()),
                mac_address: Some("fa:16:3e:00:00:01".into()),
                rx_octets: Some(5),
                ..NicDiagnostics::default()
            }],
            disks: vec![DiskDiagnostics {
                device: "vda".into(),
                read_bytes: Some(4096),
                read_requests: Some(2),
                ..DiskDiagnostics::default()
            }],
        }
    }

    #[test]
    fn figures_render_as_nova_renders_them() {
        let inst = Instance::new()
            .with_config_drive(Some("True".into()))
            .with_launched_at(Some(chrono::Utc::now() - chrono::Duration::seconds(90)));
        let p = standardized("libvirt", &inst, &figures());
        assert_eq!(p["nova_object.name"], "Diagnostics");
        let d = &p["nova_object.data"];
        assert_eq!(d["state"], "running");
        assert_eq!(d["config_drive"], true);
        assert!((90..100).contains(&d["uptime"].as_i64().unwrap_or(0)));
        assert_eq!(
            d["memory_details"]["nova_object.data"],
            json!({"maximum": 512, "used": 256})
        );
        assert_eq!(d["num_cpus"], 1);
        assert_eq!(d["disk_details"][0]["nova_object.data"]["read_bytes"], 4096);
        let l = legacy(&figures());
        assert_eq!(l["cpu0_time"], 17);
        assert_eq!(l["vda_read"], 4096);
        assert_eq!(l["vda_read_req"], 2);
        assert!(l.get("vda_errors").is_none());
        assert_eq!(l["tap1_rx"], 5);
        assert_eq!(l["memory"], 524_288);
        assert_eq!(l["memory-rss"], 1000);
    }
}
