//! `nova-policy policy check`: the rules a caller passes, under nova 34's
//! defaults and a policy file's overrides.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn check(conf: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nova-policy"))
        .args(["--config", conf.to_str().unwrap(), "policy", "check"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn nova_policy_check_lists_the_rules_a_caller_passes() {
    let dir = std::env::temp_dir().join(format!("nova-policy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "\"os_compute_api:os-services:list\": \"role:member\"\n",
    )
    .unwrap();
    let conf = dir.join("nova.conf");
    std::fs::write(
        &conf,
        format!("[oslo_policy]\npolicy_file = {}\n", policy.display()),
    )
    .unwrap();
    let member = [
        "--os-roles",
        "member,reader",
        "--os-user-id",
        "u1",
        "--os-tenant-id",
        "p1",
    ];
    let (ok, out) = check(&conf, &member);
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Available policies:");
    assert!(lines.contains(&"os_compute_api:servers:create"), "{out}");
    assert!(lines.contains(&"os_compute_api:os-services:list"), "{out}");
    assert!(
        !lines.contains(&"os_compute_api:os-flavor-manage:create"),
        "{out}"
    );
    // Another project's server is not a member's.
    let mut other = member.to_vec();
    other.extend([
        "--target-project-id",
        "p2",
        "--api-name",
        "os_compute_api:servers:show",
    ]);
    let (ok, out) = check(&conf, &other);
    assert!(ok);
    assert_eq!(out.trim(), "Available policies:");
    // Unknown rule names are an error.
    let (ok, _) = check(&conf, &["--api-name", "os_compute_api:nope"]);
    assert!(!ok);
    let _ = std::fs::remove_dir_all(&dir);
}
