//! The real `openstack` CLI moving servers between two fake computes of
//! `nova-all`: `server resize` (confirm, revert), `server migrate`
//! (confirm), `server migrate --live-migration`, `server migration list`.

use std::time::Duration;

use serde_json::Value;

use super::Cli;

fn json(cli: &Cli, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-f", "json"]);
    let out = cli.run(&a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The server's status and host (admin view), once its task is done.
fn settled(cli: &Cli, name: &str, status: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = json(cli, &["server", "show", name]);
        if s["status"] == status && s["OS-EXT-STS:task_state"].is_null() {
            return s["OS-EXT-SRV-ATTR:host"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never {status}: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_openstack_cli_resizes_and_migrates_servers() {
    let Some((_all, cli)) = super::launch(2, &[]) else {
        return;
    };
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
            "mv-1",
        ],
        "status",
    );
    assert_eq!(status, "ACTIVE");
    let first = settled(&cli, "mv-1", "ACTIVE");

    // Resize, confirm.
    cli.run(&["server", "resize", "--flavor", "m1.small", "--wait", "mv-1"]);
    let second = settled(&cli, "mv-1", "VERIFY_RESIZE");
    assert_ne!(second, first);
    cli.run(&["server", "resize", "confirm", "mv-1"]);
    assert_eq!(settled(&cli, "mv-1", "ACTIVE"), second);
    let s = json(&cli, &["server", "show", "mv-1"]);
    assert!(
        s["flavor"].to_string().contains("m1.small"),
        "{}",
        s["flavor"]
    );

    // Resize, revert.
    cli.run(&[
        "server",
        "resize",
        "--flavor",
        "m1.medium",
        "--wait",
        "mv-1",
    ]);
    assert_eq!(settled(&cli, "mv-1", "VERIFY_RESIZE"), first);
    cli.run(&["server", "resize", "revert", "mv-1"]);
    assert_eq!(settled(&cli, "mv-1", "ACTIVE"), second);
    let s = json(&cli, &["server", "show", "mv-1"]);
    assert!(
        s["flavor"].to_string().contains("m1.small"),
        "{}",
        s["flavor"]
    );

    // Cold migration, confirmed.
    cli.run(&["server", "migrate", "--wait", "mv-1"]);
    assert_eq!(settled(&cli, "mv-1", "VERIFY_RESIZE"), first);
    cli.run(&["server", "migration", "confirm", "mv-1"]);
    assert_eq!(settled(&cli, "mv-1", "ACTIVE"), first);

    // Live migration.
    cli.run(&["server", "migrate", "--live-migration", "--wait", "mv-1"]);
    assert_eq!(settled(&cli, "mv-1", "ACTIVE"), second);

    // The migrations, newest first (2.59+ as the client negotiates it).
    let list = json(
        &cli,
        &[
            "--os-compute-api-version",
            "2.80",
            "server",
            "migration",
            "list",
            "--server",
            "mv-1",
        ],
    );
    let rows = list.as_array().unwrap();
    let kinds: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["Type"].as_str().unwrap_or_default(),
                r["Status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("live-migration", "completed"),
            ("migration", "confirmed"),
            ("resize", "reverted"),
            ("resize", "confirmed"),
        ],
        "{list}"
    );
    let filtered = json(
        &cli,
        &[
            "--os-compute-api-version",
            "2.80",
            "server",
            "migration",
            "list",
            "--type",
            "resize",
            "--status",
            "reverted",
        ],
    );
    assert_eq!(filtered.as_array().unwrap().len(), 1, "{filtered}");
    cli.run(&["server", "delete", "--wait", "mv-1"]);
}
