//! nova-scheduler: filter + weigh over 1k, 10k and 100k hosts (nova's
//! default filters with the Placement checks emulated, all 13 weighers) on
//! scenarios from `sched_gen.py`; with the in-memory Placement: allocation
//! candidates at 10k and 100k providers, one claim, and sustained
//! placements/s against 10k hosts (candidates limited to
//! `max_placement_results` = 1000, filters, weighers, claim); and the
//! anchor from the same run: nova 34's real filters and weighers
//! (`sched_oracle.py`) on the 1k and 10k scenarios.
//!
//! Run with: cargo bench --bench scheduler
//! (NOVA_RS_PYTHON: the oracle virtualenv's Python; NOVA_RS_SHARED: ../shared)

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use nova_scheduler::placement::{MemoryPlacement, Placement};
use nova_scheduler::{Scenario, Scheduler};
use serde_json::{Value, json};

fn shared() -> PathBuf {
    std::env::var_os("NOVA_RS_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared")))
}

fn python() -> String {
    std::env::var("NOVA_RS_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles/bin/python".into())
}

/// A generated scenario with nova's default filters + emulated Placement and all weighers.
fn scenario(hosts: usize) -> (PathBuf, Value) {
    let out = Command::new("python3")
        .arg(shared().join("oracles/sched_gen.py"))
        .args([
            "--hosts",
            &hosts.to_string(),
            "--seed",
            "7",
            "--group-policy",
            "none",
        ])
        .output()
        .expect("python3 runs sched_gen.py");
    assert!(out.status.success(), "sched_gen.py failed");
    let mut doc: Value = serde_json::from_slice(&out.stdout).expect("scenario JSON");
    let c = &mut doc["config"];
    c.as_object_mut().expect("config").remove("enabled_filters");
    c["emulate_placement"] = json!(true);
    c["weighers"] = json!("all");
    c.as_object_mut()
        .expect("config")
        .remove("weight_multipliers");
    doc["request"]
        .as_object_mut()
        .expect("request")
        .remove("availability_zone");
    let path = std::env::temp_dir().join(format!("nova-sched-bench-{hosts}.json"));
    std::fs::write(&path, doc.to_string()).expect("write scenario");
    (path, doc)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut anchors = serde_json::Map::new();
    for n in [1_000usize, 10_000, 100_000] {
        let (path, doc) = scenario(n);
        let sc = Scenario::parse(&doc).expect("scenario");
        let sched: Scheduler = sc.scheduler().expect("scheduler");
        let runs = if n >= 100_000 { 15 } else { 51 };
        let mut times = Vec::new();
        let mut passed = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let r = black_box(sched.rank(black_box(&sc.request)));
            times.push(t.elapsed().as_secs_f64() * 1e3);
            passed = r.passed.len();
        }
        println!(
            "{}",
            json!({"impl": "nova-scheduler", "hosts": n, "passed": passed,
                   "filter_plus_weigh_ms": (median(times) * 1000.0).round() / 1000.0})
        );
        if n <= 10_000 {
            let out = Command::new(python())
                .arg(shared().join("oracles/sched_oracle.py"))
                .arg(&path)
                .arg("--summary")
                .output();
            let anchor = match out {
                Ok(o) if !o.stdout.is_empty() => serde_json::from_slice::<Value>(&o.stdout)
                    .map(|v| v["timing_ms"]["first_filter_plus_weigh"].clone())
                    .unwrap_or(Value::Null),
                _ => Value::Null,
            };
            anchors.insert(n.to_string(), anchor);
        }
        if n >= 10_000 {
            // Placement: candidates for the request, and claims.
            let placement = MemoryPlacement::new();
            sc.populate(&placement).expect("populate");
            let sched = sc.scheduler().expect("scheduler");
            let mut query = sched.candidates_request(&sc.request).expect("query");
            query.limit = None;
            let mut times = Vec::new();
            let mut found = 0;
            for _ in 0..(if n >= 100_000 { 9 } else { 31 }) {
                let t = Instant::now();
                let c = black_box(
                    placement
                        .allocation_candidates(black_box(&query))
                        .expect("candidates"),
                );
                times.push(t.elapsed().as_secs_f64() * 1e3);
                found = c.len();
            }
            let cands_ms = median(times);
            let cands = placement.allocation_candidates(&query).expect("candidates");
            let claims = 2_000.min(cands.len());
            let allocs: Vec<_> = (0..claims).map(|i| cands.allocations(i)).collect();
            let t = Instant::now();
            for (i, a) in allocs.iter().enumerate() {
                placement
                    .put_allocations(&format!("claim-{i}"), a, "p", "u", None)
                    .expect("claim");
            }
            let claim_us = t.elapsed().as_secs_f64() * 1e6 / claims as f64;
            println!(
                "{}",
                json!({"impl": "nova-scheduler MemoryPlacement", "providers": n, "candidates": found,
                       "allocation_candidates_ms": (cands_ms * 1000.0).round() / 1000.0,
                       "claim_us": (claim_us * 100.0).round() / 100.0})
            );
            if n == 10_000 {
                // Sustained: a stream of one-instance requests, each with candidates
                // (limit 1000), nova's default filters (Placement did the rest),
                // all weighers and a claim.
                let mut cfg = sc.config.clone();
                cfg.enabled_filters = nova_scheduler::DEFAULT_FILTERS
                    .iter()
                    .map(|f| (*f).to_owned())
                    .collect();
                let mut sched = Scenario {
                    config: cfg,
                    ..sc.clone()
                }
                .scheduler()
                .expect("scheduler");
                let mut req = sc.request.clone();
                let count = 3_000;
                let t = Instant::now();
                let mut ok = 0;
                for i in 0..count {
                    req.instance_uuids = vec![format!("stream-{i}")];
                    if sched.select_destinations_with(&placement, &req).is_ok() {
                        ok += 1;
                    }
                }
                let secs = t.elapsed().as_secs_f64();
                println!(
                    "{}",
                    json!({"impl": "nova-scheduler + MemoryPlacement", "hosts": n, "placements": ok,
                           "placements_per_s": (ok as f64 / secs).round(),
                           "note": "one thread; candidates (limit 1000) + default filters + weighers + claim per placement"})
                );
            }
        }
        std::fs::remove_file(&path).ok();
    }
    println!(
        "{}",
        json!({"anchor": "nova 34 sched_oracle.py first_filter_plus_weigh_ms", "by_hosts": anchors})
    );
}
