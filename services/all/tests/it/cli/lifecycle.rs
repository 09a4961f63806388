//! The real `openstack` CLI through a server's life on `nova-all`'s fake
//! computes: `server rebuild`, `server image create`, `server shelve` /
//! `unshelve` and `server evacuate` (every command under the CLI's
//! timeout, every state waited for with a bounded poll).

use std::time::Duration;

use serde_json::Value;

use super::Cli;

fn json(cli: &Cli, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-f", "json"]);
    let out = cli.run(&a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The server (admin view) once it has `status` and no task (60 s).
fn settled(cli: &Cli, name: &str, status: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = json(cli, &["server", "show", name]);
        if s["status"] == status && s["OS-EXT-STS:task_state"].is_null() {
            return s;
        }
        assert!(
            s["status"] != "ERROR",
            "{name} went to ERROR waiting for {status}: {s}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never {status}: {s}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_openstack_cli_rebuilds_snapshots_shelves_and_evacuates_a_server() {
    let Some((all, cli)) = super::launch(2, &[]) else {
        return;
    };
    let img = all.dir.join("second.raw");
    std::fs::write(&img, vec![0u8; 64 * 1024]).unwrap();
    let second = cli.value(
        &[
            "image",
            "create",
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
            "--public",
            "--file",
            img.to_str().unwrap(),
            "second-image",
        ],
        "id",
    );
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
            "--wait",
            "life-1",
        ],
        "status",
    );
    assert_eq!(status, "ACTIVE");
    let first = settled(&cli, "life-1", "ACTIVE");
    let id = first["id"].as_str().unwrap().to_owned();
    let host = first["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_owned();

    // Rebuild to another image: same host, new image.
    cli.run(&[
        "server",
        "rebuild",
        "--image",
        "second-image",
        "--name",
        "life-1",
        "--wait",
        "life-1",
    ]);
    let s = settled(&cli, "life-1", "ACTIVE");
    // The CLI shows the image as `name (id)`.
    assert_eq!(
        s["image"].as_str().unwrap_or_default(),
        format!("second-image ({second})"),
        "{s}"
    );
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], host.as_str());

    // A snapshot: an active image with nova's properties.
    cli.run(&[
        "server",
        "image",
        "create",
        "--name",
        "life-snap",
        "--wait",
        "life-1",
    ]);
    let snap = json(&cli, &["image", "show", "life-snap"]);
    assert_eq!(snap["status"], "active", "{snap}");
    let props = &snap["properties"];
    assert_eq!(props["image_type"], "snapshot", "{snap}");
    assert_eq!(props["instance_uuid"], id.as_str(), "{snap}");
    assert_eq!(props["base_image_ref"], second.as_str(), "{snap}");
    settled(&cli, "life-1", "ACTIVE");

    // Shelve (offloaded at once: shelved_offload_time 0), unshelve.
    cli.run(&["server", "shelve", "life-1"]);
    let s = settled(&cli, "life-1", "SHELVED_OFFLOADED");
    assert!(s["OS-EXT-SRV-ATTR:host"].is_null(), "{s}");
    cli.run(&["server", "unshelve", "--wait", "life-1"]);
    let s = settled(&cli, "life-1", "ACTIVE");
    let host = s["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_owned();

    // Evacuate off a host marked down: rebuilt on the other one, in its zone.
    cli.run(&[
        "--os-compute-api-version",
        "2.11",
        "compute",
        "service",
        "set",
        "--down",
        &host,
        "nova-compute",
    ]);
    // Without `--wait`: python-openstackclient 10.5.0's evacuate waits for
    // `['ACTIVE']` while osc-lib lowercases the status it compares, so it
    // polls for ever whatever the server does (the hang of an earlier draft).
    cli.run(&[
        "--os-compute-api-version",
        "2.29",
        "server",
        "evacuate",
        "life-1",
    ]);
    let s = settled(&cli, "life-1", "ACTIVE");
    let now = s["OS-EXT-SRV-ATTR:host"].as_str().unwrap();
    assert_ne!(now, host, "{s}");
    assert_eq!(s["OS-EXT-AZ:availability_zone"], "nova", "{s}");
    let migrations = cli.run(&[
        "--os-compute-api-version",
        "2.59",
        "server",
        "migration",
        "list",
        "--server",
        "life-1",
    ]);
    assert!(migrations.contains("evacuation"), "{migrations}");
    cli.run(&["server", "delete", "--wait", "life-1"]);
    cli.run(&["image", "delete", "life-snap"]);
}
