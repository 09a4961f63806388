//! Decision parity with nova 34: every scenario in `tests/golden/` was run
//! through the real nova filters and weighers (`sched_oracle.py`, see
//! `tests/golden/README.md`); ours must pass the same hosts in the same
//! order with weights equal within 1e-9 (relative), count the same hosts
//! through each filter, and make the same selections with the same
//! alternates (or fail with NoValidHost where nova does).

use std::path::PathBuf;

use nova_scheduler::Scenario;
use nova_scheduler::scenario::decision_json;
use serde_json::Value;

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300)
}

fn compare(name: &str, ours: &Value, theirs: &Value, problems: &mut Vec<String>) -> usize {
    let hosts = |v: &Value, k: &str| -> Vec<(String, String, f64)> {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        (
                            p["host"].as_str().unwrap_or("").to_owned(),
                            p["nodename"].as_str().unwrap_or("").to_owned(),
                            p["weight"].as_f64().unwrap_or(0.0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (o, t) = (hosts(ours, "passed"), hosts(theirs, "passed"));
    if o.len() != t.len() {
        problems.push(format!(
            "{name}: {} hosts passed, nova passed {}",
            o.len(),
            t.len()
        ));
    }
    for (i, (a, b)) in o.iter().zip(&t).enumerate() {
        if a.0 != b.0 || a.1 != b.1 {
            problems.push(format!(
                "{name}: passed[{i}] is {} (weight {}), nova has {} (weight {})",
                a.0, a.2, b.0, b.2
            ));
            break;
        }
        if !close(a.2, b.2) {
            problems.push(format!(
                "{name}: weight of {} is {}, nova {}",
                a.0, a.2, b.2
            ));
            break;
        }
    }
    let counts = |v: &Value| -> Vec<(String, u64, u64)> {
        v["filter_counts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        (
                            c["filter"].as_str().unwrap_or("").to_owned(),
                            c["start"].as_u64().unwrap_or(0),
                            c["end"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    if counts(ours) != counts(theirs) {
        problems.push(format!(
            "{name}: filter counts {:?}, nova {:?}",
            counts(ours),
            counts(theirs)
        ));
    }
    if ours["selections"] != theirs["selections"] {
        problems.push(format!(
            "{name}: selections {}, nova {}",
            ours["selections"], theirs["selections"]
        ));
    }
    let class = |v: &Value| v["error"]["class"].as_str().map(str::to_owned);
    if class(ours) != class(theirs) {
        problems.push(format!(
            "{name}: error {:?}, nova {:?}",
            class(ours),
            class(theirs)
        ));
    }
    t.len()
}

#[test]
fn decisions_match_nova_34_on_every_golden_scenario() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".scenario.json"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 10,
        "golden scenarios missing in {}",
        dir.display()
    );
    let mut problems = Vec::new();
    let (mut compared, mut selected) = (0, 0);
    for path in &names {
        let name = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".scenario.json", "");
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.expected.json"))).unwrap(),
        )
        .unwrap();
        let scenario = Scenario::parse(&doc).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut s = scenario.scheduler().unwrap();
        let outcome = s.schedule(&scenario.request);
        let rounds = match &outcome {
            Ok(d) => d.rounds.clone(),
            Err(_) => s.last_rounds().to_vec(),
        };
        let ours = decision_json(&s, &outcome, &rounds, scenario.request.instance_uuids.len());
        compared += compare(&name, &ours, &expected, &mut problems);
        if expected["error"].is_null() {
            selected += 1;
        }
    }
    assert!(
        compared > 300 && selected >= 10,
        "the fixtures compare too little: {compared} hosts, {selected} placements"
    );
    assert!(
        problems.is_empty(),
        "{} differences from nova 34:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
