//! The real `openstack` CLI on aggregates, availability zones and server
//! groups: an operator makes a zone, a user boots into it and asks for
//! anti-affinity.

use serde_json::Value;

use super::{Cli, NovaAll};

/// `nova-all` with two fake computes, and a CLI on its clouds.yaml.
fn start() -> Option<(NovaAll, Cli)> {
    super::launch(2, &[])
}

fn json(cli: &Cli, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-f", "json"]);
    let out = cli.run(&a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn the_openstack_cli_makes_zones_and_server_groups() {
    let Some((_all, cli)) = start() else { return };
    // An operator makes zone az1 of fake-compute-1.
    let agg = json(&cli, &["aggregate", "create", "--zone", "az1", "rack-1"]);
    assert_eq!(agg["availability_zone"], "az1", "{agg}");
    cli.run(&["aggregate", "add", "host", "rack-1", "fake-compute-1"]);
    cli.run(&["aggregate", "set", "--property", "ssd=true", "rack-1"]);
    let agg = json(&cli, &["aggregate", "show", "rack-1"]);
    assert_eq!(agg["hosts"], serde_json::json!(["fake-compute-1"]), "{agg}");
    let props = agg["properties"].to_string();
    assert!(props.contains("ssd"), "{agg}");
    let zones = json(&cli, &["availability", "zone", "list", "--compute"]);
    let names: Vec<&str> = zones
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["Zone Name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"az1") && names.contains(&"nova"), "{zones}");
    // A server booted into az1 lands on its host.
    let s = json(
        &cli,
        &[
            "server",
            "create",
            "--flavor",
            "m1.tiny",
            "--image",
            "fake-image",
            "--nic",
            "none",
            "--availability-zone",
            "az1",
            "--wait",
            "in-az1",
        ],
    );
    assert_eq!(s["status"], "ACTIVE", "{s}");
    assert_eq!(s["OS-EXT-AZ:availability_zone"], "az1", "{s}");
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], "fake-compute-1", "{s}");

    // A user's anti-affinity group spreads its members.
    let g = json(
        &cli,
        &[
            "server",
            "group",
            "create",
            "--policy",
            "anti-affinity",
            "apart",
        ],
    );
    let gid = g["id"].as_str().unwrap().to_owned();
    let hint = format!("group={gid}");
    let mut hosts = Vec::new();
    for name in ["apart-1", "apart-2"] {
        let s = json(
            &cli,
            &[
                "server",
                "create",
                "--flavor",
                "m1.tiny",
                "--image",
                "fake-image",
                "--nic",
                "none",
                "--hint",
                &hint,
                "--wait",
                name,
            ],
        );
        assert_eq!(s["status"], "ACTIVE", "{s}");
        hosts.push(s["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_owned());
    }
    assert_ne!(hosts[0], hosts[1]);
    let g = json(&cli, &["server", "group", "show", "apart"]);
    assert_eq!(g["policy"], "anti-affinity", "{g}");
    let members = g["members"].to_string();
    assert_eq!(
        g["members"]
            .as_array()
            .map(Vec::len)
            .unwrap_or_else(|| members.split(',').count()),
        2,
        "{g}"
    );

    for name in ["in-az1", "apart-1", "apart-2"] {
        cli.run(&["server", "delete", "--wait", name]);
    }
    cli.run(&["aggregate", "remove", "host", "rack-1", "fake-compute-1"]);
    cli.run(&["aggregate", "delete", "rack-1"]);
    cli.run(&["server", "group", "delete", "apart"]);
}
