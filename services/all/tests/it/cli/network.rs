//! The real `openstack network` / `subnet` / `port` / `security group` /
//! `floating ip` CLI against nova-all's built-in network service (found
//! through the identity's service catalog).

use serde_json::Value;

use super::Cli;

fn json(cli: &Cli, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-f", "json"]);
    let out = cli.run(&a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn the_openstack_cli_manages_networks_subnets_and_ports() {
    let Some((_all, cli)) = super::launch(1, &[]) else {
        return;
    };
    // The shared flat network nova-all made at start.
    let nets = json(&cli, &["network", "list"]);
    let names: Vec<&str> = nets
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["Name"].as_str())
        .collect();
    assert_eq!(names, ["private"], "{nets}");
    let private = json(&cli, &["network", "show", "private"]);
    assert_eq!(private["shared"], true, "{private}");

    // A network of the user's own, a subnet, a port with a fixed address.
    let net = json(&cli, &["network", "create", "blue"]);
    assert_eq!(net["status"], "ACTIVE", "{net}");
    let sub = json(
        &cli,
        &[
            "subnet",
            "create",
            "--network",
            "blue",
            "--subnet-range",
            "192.168.50.0/24",
            "blue-sub",
        ],
    );
    assert_eq!(sub["gateway_ip"], "192.168.50.1", "{sub}");
    assert_eq!(sub["cidr"], "192.168.50.0/24", "{sub}");
    let port = json(
        &cli,
        &[
            "port",
            "create",
            "--network",
            "blue",
            "--fixed-ip",
            "subnet=blue-sub,ip-address=192.168.50.10",
            "p1",
        ],
    );
    assert_eq!(port["status"], "DOWN", "{port}");
    let fixed = port["fixed_ips"].to_string();
    assert!(fixed.contains("192.168.50.10"), "{port}");
    assert!(
        port["mac_address"]
            .as_str()
            .unwrap()
            .starts_with("fa:16:3e:"),
        "{port}"
    );
    let ports = json(&cli, &["port", "list", "--network", "blue"]);
    assert_eq!(ports.as_array().unwrap().len(), 1, "{ports}");
    let shown = json(&cli, &["port", "show", "p1"]);
    assert_eq!(shown["id"], port["id"], "{shown}");
    // The same address again is refused with Neutron's conflict.
    let again = std::process::Command::new(&cli.exe)
        .args([
            "--os-cloud",
            "nova-rs",
            "port",
            "create",
            "--network",
            "blue",
        ])
        .args(["--fixed-ip", "ip-address=192.168.50.10", "p2"])
        .env("OS_CLIENT_CONFIG_FILE", &cli.clouds)
        .output()
        .unwrap();
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already allocated"), "{err}");

    // Security groups and a rule.
    json(&cli, &["security", "group", "create", "web"]);
    let rule = json(
        &cli,
        &[
            "security",
            "group",
            "rule",
            "create",
            "--protocol",
            "tcp",
            "--dst-port",
            "80",
            "web",
        ],
    );
    assert_eq!(rule["port_range_min"], 80, "{rule}");
    let groups = json(&cli, &["security", "group", "list"]);
    assert_eq!(
        groups.as_array().unwrap().len(),
        2,
        "default and web: {groups}"
    );

    // A server on the shared network: its port is bound, `addresses` and
    // `server show` tell its fixed IP, delete removes the port.
    let server = json(
        &cli,
        &[
            "server",
            "create",
            "--flavor",
            "m1.tiny",
            "--image",
            "fake-image",
            "--network",
            "private",
            "--wait",
            "vm-net",
        ],
    );
    let id = server["id"].as_str().unwrap().to_owned();
    let ports = json(&cli, &["port", "list", "--server", &id]);
    let ports = ports.as_array().unwrap();
    assert_eq!(ports.len(), 1, "{ports:?}");
    let ip = ports[0]["Fixed IP Addresses"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = json(&cli, &["server", "show", "vm-net"]);
    assert_eq!(shown["addresses"]["private"][0], ip.as_str(), "{shown}");
    cli.run(&["server", "delete", "--wait", "vm-net"]);
    let ports = json(&cli, &["port", "list", "--device-id", &id]);
    assert_eq!(ports.as_array().unwrap().len(), 0, "{ports}");

    // Deleting the port, the subnet and the network.
    cli.run(&["port", "delete", "p1"]);
    cli.run(&["subnet", "delete", "blue-sub"]);
    cli.run(&["network", "delete", "blue"]);
    let nets = json(&cli, &["network", "list"]);
    assert_eq!(nets.as_array().unwrap().len(), 1, "{nets}");
}
