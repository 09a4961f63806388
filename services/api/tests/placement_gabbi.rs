//! Placement 16's own functional suite (the gabbi YAML files shipped in the
//! openstack-placement 16.0.0 wheel) over HTTP against `nova-placement-api`,
//! through `scripts/placement_gabbi.py` (one fresh server per file; the
//! files' data fixtures replayed over the API).
//!
//! Every file must pass at least as many tests as recorded in
//! `placement_gabbi_expected.txt` (a ratchet: raise the numbers as gaps
//! close). Needs the test virtualenv with openstack-placement and gabbi
//! (`scripts/test` installs them); takes minutes, so it is ignored by
//! default and `scripts/test` runs it with the ignored tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Command;

#[test]
#[ignore = "runs Placement's 79 gabbi files against the server (minutes); scripts/test runs it"]
fn placement_gabbi_suite() {
    let python = std::env::var("NOVA_RS_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles/bin/python".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/placement_gabbi.py"
    );
    let out = std::env::temp_dir().join(format!("placement-gabbi-{}.json", std::process::id()));
    let run = Command::new(&python)
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_nova-placement-api"))
        .arg("--json")
        .arg(&out)
        .env("OS_DEBUG", "0")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python}: {e} (scripts/test creates the virtualenv)")
        });
    let text = String::from_utf8_lossy(&run.stdout);
    let summary: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" passed ") && l.contains(" failed "))
        .collect();
    println!("{}", summary.join("\n"));
    assert!(
        run.status.success(),
        "the runner failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let results: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    let expected = include_str!("placement_gabbi_expected.txt");
    let mut regressions = Vec::new();
    let mut files = 0;
    for line in expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut it = line.split_whitespace();
        let (Some(file), Some(counts)) = (it.next(), it.next()) else {
            panic!("bad line in placement_gabbi_expected.txt: {line}");
        };
        let want: u64 = counts.split('/').next().unwrap().parse().unwrap();
        files += 1;
        let r = results
            .get(file)
            .unwrap_or_else(|| panic!("{file} did not run"));
        let passed = r["passed"].as_u64().unwrap();
        if passed < want {
            regressions.push(format!(
                "{file}: {passed} passed, {want} expected; failures: {}",
                r["failures"]
            ));
        }
    }
    assert_eq!(files, results.len(), "every file of the suite is listed");
    assert!(regressions.is_empty(), "{}", regressions.join("\n"));
}
