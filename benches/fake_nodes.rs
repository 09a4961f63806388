//! nova-virt FakeDriver at scale: 1,000 fake compute nodes in one process,
//! 20 instances each; memory per node (resident set growth) and
//! operations per second.
//!
//! Run with: cargo bench --bench fake_nodes

use std::time::{Duration, Instant};

use nova_virt::{ComputeDriver, FakeConfig, FakeDriver, InstanceSpec};
use serde_json::json;

/// Resident set size in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (nodes, per_node) = (1_000usize, 20usize);
        let before = rss_kib();
        let drivers: Vec<FakeDriver> = (0..nodes)
            .map(|i| FakeDriver::new(FakeConfig { hypervisor_hostname: format!("fake-{i:04}"), ..FakeConfig::default() }))
            .collect();
        let empty = rss_kib();
        let t = Instant::now();
        let mut ops = 0u64;
        for (n, d) in drivers.iter().enumerate() {
            d.init_host(&format!("fake-{n:04}")).await.expect("init");
            for k in 0..per_node {
                let spec = InstanceSpec {
                    uuid: format!("{n:04}-{k:04}"),
                    name: "vm".into(),
                    vcpus: 1,
                    memory_mb: 512,
                    root_gb: 1,
                    ..InstanceSpec::default()
                };
                d.spawn(&spec).await.expect("spawn");
                ops += 1;
            }
        }
        let spawn_s = t.elapsed().as_secs_f64();
        let full = rss_kib();
        let t = Instant::now();
        for d in &drivers {
            for u in d.list_instance_uuids().await.expect("list") {
                d.power_off(&u, Duration::ZERO).await.expect("off");
                d.power_on(&u).await.expect("on");
            }
            let _ = d.host_resources().await.expect("resources");
        }
        let cycle_s = t.elapsed().as_secs_f64();
        println!(
            "{}",
            json!({"impl": "nova-virt FakeDriver", "nodes": nodes, "instances_per_node": per_node,
                   "kib_per_empty_node": (empty.saturating_sub(before)) as f64 / nodes as f64,
                   "kib_per_node_with_instances": (full.saturating_sub(before)) as f64 / nodes as f64,
                   "spawns_per_s": (ops as f64 / spawn_s).round(),
                   "power_cycles_plus_reports_per_s": ((nodes * per_node) as f64 / cycle_s).round()})
        );
    });
}
