//! Another orchestrator embedding nova-scheduler: its own hosts and a
//! request, no Nova objects, RPC or database.
//!
//! Run with: cargo run --example embed_scheduler

use nova::scheduler::{FlavorSpec, HostState, Request, Scheduler, SchedulerConfig};

fn main() -> Result<(), nova::scheduler::Error> {
    let mut config = SchedulerConfig::default();
    config.set(
        "enabled_filters",
        "ComputeFilter,RamFilter,CoreFilter,DiskFilter,NumInstancesFilter",
    )?;
    config.set("ram_weight_multiplier", "-1.0")?; // stack: fill hosts before using new ones
    let mut sched = Scheduler::new(config)?;
    for (i, free_gb) in [8, 32, 64, 16].into_iter().enumerate() {
        let mut h = HostState::new(&format!("rack1-node{i}"));
        h.total_usable_ram_mb = 64 * 1024;
        h.free_ram_mb = free_gb * 1024;
        sched.upsert_host(h);
    }
    let req = Request {
        flavor: FlavorSpec {
            vcpus: 4,
            memory_mb: 12 * 1024,
            root_gb: 40,
            ..FlavorSpec::default()
        },
        instance_uuids: vec!["job-a".into(), "job-b".into()],
        ..Request::default()
    };
    for (job, picks) in req
        .instance_uuids
        .iter()
        .zip(sched.select_destinations(&req)?)
    {
        let alts: Vec<&str> = picks[1..].iter().map(|s| s.host.as_str()).collect();
        println!("{job} -> {} (alternates {alts:?})", picks[0].host);
    }
    Ok(())
}
