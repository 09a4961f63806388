//! tempest 47's compute API tests (`tempest.api.compute`) against a
//! release build of `nova-all`, through `scripts/tempest.py --keystone
//! --neutron` (a real Keystone 30 holds the identities and tempest creates
//! its projects and users there: dynamic credentials; images uploaded to
//! our image service; nova-all's built-in network service as Neutron, with
//! the flat `private` network and an external `public` one for floating
//! IPs; no volume or object service; stestr at concurrency 2). About 6–11
//! minutes (Keystone's own cache on in `scripts/keystone_server.py`).
//!
//! A ratchet: every test listed in `tempest_expected.txt` must pass (a
//! regression fails); a test that passes and is not listed is printed with
//! the request to add it. Needs the test virtualenv with tempest
//! (`scripts/test` installs it); takes many minutes, so it is ignored by
//! default and `scripts/test` runs it with the ignored tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The release `nova-all`, built here (a no-op when it is fresh).
fn release_nova_all() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "--release", "-p", "nova-all", "--bin", "nova-all"])
        .current_dir(workspace())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
    assert!(status.success(), "cargo build --release -p nova-all failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join("target"));
    target.join("release/nova-all")
}

#[test]
#[ignore = "runs tempest.api.compute against nova-all (many minutes); scripts/test runs it"]
fn tempest_compute_api() {
    let python = std::env::var("NOVA_RS_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles/bin/python".into());
    let binary = release_nova_all();
    let out = std::env::temp_dir().join(format!("tempest-{}.json", std::process::id()));
    let run = Command::new(&python)
        .arg(workspace().join("scripts/tempest.py"))
        .arg(&binary)
        .arg("--keystone")
        .arg("--neutron")
        .arg("--json")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python}: {e} (scripts/test creates the virtualenv)")
        });
    println!("{}", String::from_utf8_lossy(&run.stdout));
    assert!(
        run.status.success(),
        "the tempest runner failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    let passed: BTreeSet<&str> = results["passed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    let expected: BTreeSet<&str> = include_str!("tempest_expected.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let regressions: Vec<String> = expected
        .difference(&passed)
        .map(|t| {
            let why = results["failed"][*t]
                .as_str()
                .or(results["skipped"][*t].as_str())
                .unwrap_or("did not run");
            format!("{t}: {why}")
        })
        .collect();
    let improved: Vec<&&str> = passed.difference(&expected).collect();
    if !improved.is_empty() {
        println!(
            "{} test(s) pass that services/all/tests/tempest_expected.txt does not list; \
             add them (python scripts/tempest.py --keystone --neutron --update-expected):\n{}",
            improved.len(),
            improved
                .iter()
                .map(|t| format!("  {t}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(
        regressions.is_empty(),
        "{} listed test(s) no longer pass:\n{}",
        regressions.len(),
        regressions.join("\n")
    );
}
