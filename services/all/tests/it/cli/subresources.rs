//! The real `openstack` CLI on the server sub-resources: properties
//! (metadata), tags (2.26) and the tag list filters, diagnostics, topology.

use serde_json::Value;

use super::{Cli, NovaAll};

impl Cli {
    /// `openstack ARGS -f json`, parsed.
    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-f", "json"]);
        let out = self.run(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

/// `nova-all` with one fake compute, and a CLI on its clouds.yaml.
fn start() -> Option<(NovaAll, Cli)> {
    super::launch(1, &[])
}

fn names(list: &Value) -> Vec<String> {
    let mut n: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Name"].as_str().unwrap().to_owned())
        .collect();
    n.sort();
    n
}

#[test]
fn the_openstack_cli_sets_properties_and_tags_and_reads_diagnostics() {
    let Some((_all, cli)) = start() else { return };
    for name in ["sub-a", "sub-b"] {
        let status = cli.value(
            &[
                "server",
                "create",
                "--flavor",
                "m1.tiny",
                "--image",
                "fake-image",
                "--nic",
                "none",
                "--property",
                "role=web",
                "--wait",
                name,
            ],
            "status",
        );
        assert_eq!(status, "ACTIVE");
    }
    // Properties are the server's metadata.
    cli.run(&["server", "set", "--property", "tier=2", "sub-a"]);
    let props = &cli.json(&["server", "show", "sub-a"])["properties"];
    assert_eq!(props["role"], "web", "{props}");
    assert_eq!(props["tier"], "2", "{props}");
    cli.run(&["server", "unset", "--property", "role", "sub-a"]);
    let props = &cli.json(&["server", "show", "sub-a"])["properties"];
    assert!(
        props.get("role").is_none() && props["tier"] == "2",
        "{props}"
    );

    // Tags (2.26) and the list filters.
    let v = ["--os-compute-api-version", "2.26"];
    let with =
        |args: &[&str]| -> Vec<String> { v.iter().chain(args).map(|s| s.to_string()).collect() };
    let run = |args: &[&str]| {
        let a = with(args);
        cli.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let json = |args: &[&str]| {
        let a = with(args);
        cli.json(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    run(&["server", "set", "--tag", "prod", "--tag", "blue", "sub-a"]);
    run(&["server", "set", "--tag", "prod", "sub-b"]);
    let tags = &json(&["server", "show", "sub-a"])["tags"];
    assert_eq!(tags, &serde_json::json!(["blue", "prod"]), "{tags}");
    assert_eq!(
        names(&json(&["server", "list", "--tags", "prod"])),
        ["sub-a", "sub-b"]
    );
    assert_eq!(
        names(&json(&["server", "list", "--tags", "prod,blue"])),
        ["sub-a"]
    );
    assert_eq!(
        names(&json(&["server", "list", "--not-tags", "blue"])),
        ["sub-b"]
    );
    run(&["server", "unset", "--tag", "blue", "sub-a"]);
    assert_eq!(
        names(&json(&["server", "list", "--tags", "blue"])),
        Vec::<String>::new()
    );

    // Diagnostics (admin) and topology (2.78).
    let diag = cli.run(&["server", "show", "--diagnostics", "sub-a"]);
    assert!(
        diag.contains("num_cpus") && diag.contains("running"),
        "{diag}"
    );
    let topo = cli.run(&[
        "--os-compute-api-version",
        "2.78",
        "server",
        "show",
        "--topology",
        "sub-a",
    ]);
    assert!(topo.contains("topology"), "{topo}");

    for name in ["sub-a", "sub-b"] {
        cli.run(&["server", "delete", "--wait", name]);
    }
}
