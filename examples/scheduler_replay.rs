//! scheduler-replay: runs nova-scheduler over a scenario file
//! (`nova-sched-scenario/1`, see ../shared/specs/scheduler-scenario.md)
//! and prints the decision as one JSON object in the shape of nova's
//! oracle (`sched_oracle.py`): `passed` with weights, `filter_counts`,
//! `selected`, `selections` with alternates, `error`, `rounds`, and
//! `timing_ms` (`filter`, `weigh`, `schedule_total`; start-up and parsing
//! excluded). Exit status 3 on NoValidHost, 1 on a bad scenario.
//!
//! Run with: cargo run --release --example scheduler_replay -- scenario.json [--pretty] [--summary]

use std::process::ExitCode;
use std::time::Instant;

use nova::scheduler::{Scenario, scenario::decision_json};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: scheduler_replay SCENARIO.json [--pretty] [--summary]");
        return ExitCode::from(1);
    };
    let text = match if path == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    } {
        Ok(t) => t,
        Err(e) => {
            eprintln!("scheduler_replay: {path}: {e}");
            return ExitCode::from(1);
        }
    };
    let scenario = match serde_json::from_str(&text)
        .map_err(|e| e.to_string())
        .and_then(|v| Scenario::parse(&v).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("scheduler_replay: {path}: {e}");
            return ExitCode::from(1);
        }
    };
    let mut sched = match scenario.scheduler() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("scheduler_replay: {e}");
            return ExitCode::from(1);
        }
    };
    let t = Instant::now();
    let outcome = sched.schedule(&scenario.request);
    let total_ms = t.elapsed().as_secs_f64() * 1e3;
    let rounds = match &outcome {
        Ok(d) => d.rounds.clone(),
        Err(_) => sched.last_rounds().to_vec(),
    };
    let mut out = decision_json(
        &sched,
        &outcome,
        &rounds,
        scenario.request.instance_uuids.len(),
    );
    let first = rounds.first();
    out["timing_ms"] = serde_json::json!({
        "filter": first.map_or(0.0, |r| r.filter_ms),
        "weigh": first.map_or(0.0, |r| r.weigh_ms),
        "schedule_total": total_ms,
    });
    if args.iter().any(|a| a == "--summary")
        && let Some(r) = out["rounds"].as_array_mut()
    {
        r.truncate(1);
    }
    let text = if args.iter().any(|a| a == "--pretty") {
        serde_json::to_string_pretty(&out)
    } else {
        serde_json::to_string(&out)
    };
    println!("{}", text.unwrap_or_default());
    if outcome.is_err() {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}
