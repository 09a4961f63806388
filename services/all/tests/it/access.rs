//! Access control through the whole stack: a requested hypervisor at
//! boot (2.74) and the files nova-all writes.

use reqwest::Method;
use serde_json::json;

use crate::cluster::Cluster;

fn boot_on(node: &str, name: &str) -> serde_json::Value {
    json!({"server": {"name": name, "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID,
                      "networks": "none", "hypervisor_hostname": node}})
}

#[tokio::test]
async fn hypervisor_hostname_at_boot_is_for_admins_and_is_honoured() {
    let c = Cluster::start(3, &[]).await;
    let before = c.get("/v2.1/servers", "admin").await.body["servers"]
        .as_array()
        .unwrap()
        .len();
    let r = c
        .call(
            Method::POST,
            "/v2.1/servers",
            "demo",
            "2.74",
            Some(boot_on("fake-compute-2", "x")),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = c
        .call(
            Method::POST,
            "/v2.1/servers",
            "demo",
            "2.74",
            Some(json!({"server": {
            "name": "x", "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID,
            "networks": "none", "host": "fake-compute-2"}})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        c.get("/v2.1/servers?all_tenants=1", "admin").await.body["servers"]
            .as_array()
            .unwrap()
            .len(),
        before,
        "nothing was created"
    );

    // An admin gets the node asked for, every time.
    let mut ids = Vec::new();
    for n in 0..4 {
        let r = c
            .call(
                Method::POST,
                "/v2.1/servers",
                "admin",
                "2.74",
                Some(boot_on("fake-compute-2", &format!("on-2-{n}"))),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        ids.push(r.body["server"]["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let s = c.wait_status("admin", id, "ACTIVE").await;
        assert_eq!(
            s["OS-EXT-SRV-ATTR:hypervisor_hostname"],
            json!("fake-compute-2"),
            "{s}"
        );
    }
    // An unknown node is a 400 (nova's ComputeHostNotFound).
    let r = c
        .call(
            Method::POST,
            "/v2.1/servers",
            "admin",
            "2.74",
            Some(boot_on("no-such-node", "x")),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.fault().1, "Compute host no-such-node could not be found.");
    // Before 2.74 the field is not in the schema.
    let r = c
        .call(
            Method::POST,
            "/v2.1/servers",
            "admin",
            "2.73",
            Some(boot_on("fake-compute-2", "x")),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    c.stop().await;
}

#[cfg(unix)]
#[tokio::test]
async fn clouds_yaml_and_the_database_are_not_world_readable() {
    use std::os::unix::fs::PermissionsExt as _;
    let c = Cluster::start(1, &[]).await;
    let clouds = c.dir.join("clouds.yaml");
    // Even over a file someone left readable.
    std::fs::write(&clouds, "old").unwrap();
    std::fs::set_permissions(&clouds, std::fs::Permissions::from_mode(0o644)).unwrap();
    c.all.write_clouds_yaml(&clouds).unwrap();
    let mode = std::fs::metadata(&clouds).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "clouds.yaml mode {mode:o}");
    assert!(
        std::fs::read_to_string(&clouds)
            .unwrap()
            .contains("password")
    );
    let db = c.dir.join("nova.sqlite");
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o007, 0, "nova.sqlite mode {mode:o}");
    assert_eq!(mode & 0o600, 0o600);
    c.stop().await;
}
