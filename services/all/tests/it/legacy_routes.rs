//! The routes tempest exercises below 2.36 that need no network service:
//! nova's image proxy and image metadata, `os-hosts`, the hypervisor
//! `statistics` / `search` / `servers` routes, `os-simple-tenant-usage`,
//! `os-instance_usage_audit_log` and `extensions`, each with the
//! microversion that removed it.

use reqwest::Method;
use serde_json::json;

use crate::cluster::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_proxy_lists_shows_deletes_and_keeps_metadata() {
    let c = Cluster::start(0, &[]).await;
    let id = nova_all::FAKE_IMAGE_ID;
    let r = c
        .call(Method::GET, "/v2.1/images", "demo", "2.1", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body["images"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == id)
    );
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/images/{id}"),
            "demo",
            "2.1",
            None,
        )
        .await;
    let img = &r.body["image"];
    assert_eq!(img["status"], "ACTIVE");
    assert_eq!(img["progress"], 100);
    assert_eq!(img["OS-EXT-IMG-SIZE:size"], 1024);
    assert_eq!(img["links"].as_array().unwrap().len(), 3);
    let r = c
        .call(
            Method::GET,
            "/v2.1/images/detail?name=fake-image",
            "demo",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.body["images"].as_array().unwrap().len(), 1, "{}", r.body);
    let r = c
        .call(
            Method::GET,
            "/v2.1/images/detail?name=other",
            "demo",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.body["images"], json!([]));
    // Gone from 2.36.
    let r = c
        .call(Method::GET, "/v2.1/images", "demo", "2.36", None)
        .await;
    assert_eq!(r.status, 404);
    // Metadata: the image's custom properties, the owner (admin) writes.
    let md = format!("/v2.1/images/{id}/metadata");
    let r = c
        .call(
            Method::POST,
            &md,
            "admin",
            "2.1",
            Some(json!({"metadata": {"os_distro": "cirros", "k": "v"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["metadata"], json!({"os_distro": "cirros", "k": "v"}));
    let r = c
        .call(
            Method::PUT,
            &format!("{md}/k"),
            "admin",
            "2.1",
            Some(json!({"meta": {"k": "w"}})),
        )
        .await;
    assert_eq!(r.body, json!({"meta": {"k": "w"}}));
    let r = c
        .call(
            Method::PUT,
            &format!("{md}/k"),
            "admin",
            "2.1",
            Some(json!({"meta": {"x": "w"}})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = c
        .call(Method::GET, &format!("{md}/k"), "demo", "2.1", None)
        .await;
    assert_eq!(r.body, json!({"meta": {"k": "w"}}));
    // Another project may read a public image's metadata, not change it.
    let r = c
        .call(Method::DELETE, &format!("{md}/k"), "demo", "2.1", None)
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = c
        .call(Method::DELETE, &format!("{md}/k"), "admin", "2.1", None)
        .await;
    assert_eq!(r.status, 204);
    let r = c.call(Method::GET, &md, "demo", "2.1", None).await;
    assert_eq!(r.body, json!({"metadata": {"os_distro": "cirros"}}));
    let r = c
        .call(
            Method::PUT,
            &md,
            "admin",
            "2.1",
            Some(json!({"metadata": {"a": "b"}})),
        )
        .await;
    assert_eq!(r.body, json!({"metadata": {"a": "b"}}));
    let r = c
        .call(Method::GET, &format!("{md}/os_distro"), "demo", "2.1", None)
        .await;
    assert_eq!(r.status, 404);
    let r = c.call(Method::GET, &md, "demo", "2.39", None).await;
    assert_eq!(r.status, 404);
    // Delete through the proxy: not the caller's image → 403; the owner's → gone.
    let r = c
        .call(
            Method::DELETE,
            &format!("/v2.1/images/{id}"),
            "demo",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 403);
    let r = c
        .call(
            Method::DELETE,
            &format!("/v2.1/images/{id}"),
            "admin",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/images/{id}"),
            "demo",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_hypervisor_routes_usage_audit_and_extensions() {
    let c = Cluster::start(2, &[]).await;
    let server = c.boot("demo", "u1", "1").await;
    c.wait_status("demo", &server, "ACTIVE").await;
    // os-hosts: every enabled service but the API, per zone.
    let r = c
        .call(Method::GET, "/v2.1/os-hosts", "admin", "2.1", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let hosts = r.body["hosts"].as_array().unwrap().clone();
    let computes: Vec<_> = hosts.iter().filter(|h| h["service"] == "compute").collect();
    assert_eq!(computes.len(), 2, "{hosts:?}");
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-hosts?zone=nova",
            "admin",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.body["hosts"].as_array().unwrap().len(), 2, "{}", r.body);
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-hosts?zone=nowhere",
            "admin",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.body["hosts"], json!([]));
    let r = c
        .call(Method::GET, "/v2.1/os-hosts", "demo", "2.1", None)
        .await;
    assert_eq!(r.status, 403);
    let r = c
        .call(Method::GET, "/v2.1/os-hosts", "admin", "2.43", None)
        .await;
    assert_eq!(r.status, 404);
    let shown = c.get(&format!("/v2.1/servers/{server}"), "admin").await;
    let host = shown.body["server"]["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/os-hosts/{host}"),
            "admin",
            "2.1",
            None,
        )
        .await;
    let res = r.body["host"].as_array().unwrap();
    assert_eq!(res[0]["resource"]["project"], "(total)");
    assert_eq!(res[2]["resource"]["project"], "(used_max)");
    assert_eq!(res[3]["resource"]["project"], "demo");
    assert!(res[3]["resource"]["memory_mb"].as_i64().unwrap() > 0);
    let r = c
        .call(Method::GET, "/v2.1/os-hosts/nowhere", "admin", "2.1", None)
        .await;
    assert_eq!(r.status, 404);
    // Hypervisor statistics, search, servers.
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-hypervisors/statistics",
            "admin",
            "2.1",
            None,
        )
        .await;
    let s = &r.body["hypervisor_statistics"];
    assert_eq!(s["count"], 2, "{s}");
    assert!(s["memory_mb"].as_i64().unwrap() > 0, "{s}");
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-hypervisors/statistics",
            "admin",
            "2.88",
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let node = shown.body["server"]["OS-EXT-SRV-ATTR:hypervisor_hostname"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/os-hypervisors/{node}/servers"),
            "admin",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let with = &r.body["hypervisors"][0];
    assert_eq!(with["servers"][0]["uuid"], server.as_str(), "{with}");
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/os-hypervisors/{node}/search"),
            "admin",
            "2.1",
            None,
        )
        .await;
    assert_eq!(
        r.body["hypervisors"][0]["hypervisor_hostname"],
        node.as_str()
    );
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-hypervisors/no-such-node/search",
            "admin",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/os-hypervisors/{node}/search"),
            "admin",
            "2.53",
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    // Usage: the server counted for its project.
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-simple-tenant-usage?start=2020-01-01T00:00:00&detailed=1",
            "admin",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let u = &r.body["tenant_usages"][0];
    assert_eq!(u["tenant_id"], "demo");
    assert_eq!(u["server_usages"][0]["instance_id"], server.as_str());
    assert_eq!(u["server_usages"][0]["state"], "active");
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-simple-tenant-usage/demo?start=2020-01-01T00:00:00",
            "demo",
            "2.40",
            None,
        )
        .await;
    assert_eq!(
        r.body["tenant_usage"]["server_usages"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-simple-tenant-usage/demo?start=2030-01-01T00:00:00&end=2020-01-01T00:00:00",
            "demo",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-simple-tenant-usage/admin",
            "demo",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 403);
    // The audit log: our computes run no usage audit.
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-instance_usage_audit_log",
            "admin",
            "2.1",
            None,
        )
        .await;
    let log = &r.body["instance_usage_audit_logs"];
    assert_eq!(log["num_hosts"], 2, "{log}");
    assert_eq!(log["num_hosts_not_run"], 2);
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-instance_usage_audit_log/2026-03-10%2010:00:00",
            "admin",
            "2.1",
            None,
        )
        .await;
    assert_eq!(
        r.body["instance_usage_audit_log"]["period_beginning"],
        "2026-02-01 00:00:00"
    );
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-instance_usage_audit_log/yesterday",
            "admin",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 400);
    // Extensions.
    let r = c
        .call(Method::GET, "/v2.1/extensions", "demo", "2.1", None)
        .await;
    assert!(r.body["extensions"].as_array().unwrap().len() > 50);
    let r = c
        .call(
            Method::GET,
            "/v2.1/extensions/os-hypervisors",
            "demo",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.body["extension"]["alias"], "os-hypervisors");
    let r = c
        .call(Method::GET, "/v2.1/extensions/nope", "demo", "2.1", None)
        .await;
    assert_eq!(r.status, 404);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_updates_power_actions_and_uptime_go_to_the_compute() {
    let c = Cluster::start(1, &[]).await;
    let r = c
        .call(Method::GET, "/v2.1/os-hosts", "admin", "2.1", None)
        .await;
    let host = r.body["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["service"] == "compute")
        .unwrap()["host_name"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v2.1/os-hosts/{host}");
    // The fake driver answers as nova's does.
    let r = c
        .call(
            Method::PUT,
            &path,
            "admin",
            "2.1",
            Some(json!({"status": "disable", "maintenance_mode": "Enable"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"host": host, "status": "disabled", "maintenance_mode": "on_maintenance"})
    );
    for (action, want) in [
        ("reboot", "reboot"),
        ("shutdown", "shutdown"),
        ("startup", "startup"),
    ] {
        let r = c
            .call(
                Method::GET,
                &format!("{path}/{action}"),
                "admin",
                "2.1",
                None,
            )
            .await;
        assert_eq!(
            r.body,
            json!({"host": host, "power_action": want}),
            "{action}"
        );
    }
    // Refusals: bad values, nothing asked, users, unknown hosts, 2.43.
    for body in [
        json!({"status": "on"}),
        json!({}),
        json!({"other": "enable"}),
    ] {
        let r = c.call(Method::PUT, &path, "admin", "2.1", Some(body)).await;
        assert_eq!(r.status, 400, "{}", r.body);
    }
    let r = c
        .call(
            Method::PUT,
            &path,
            "demo",
            "2.1",
            Some(json!({"status": "enable"})),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = c
        .call(Method::GET, &format!("{path}/reboot"), "demo", "2.1", None)
        .await;
    assert_eq!(r.status, 403);
    let r = c
        .call(
            Method::PUT,
            "/v2.1/os-hosts/nowhere",
            "admin",
            "2.1",
            Some(json!({"status": "enable"})),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-hosts/nowhere/startup",
            "admin",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = c
        .call(
            Method::GET,
            &format!("{path}/reboot"),
            "admin",
            "2.43",
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    // The fake driver has no uptime: 501, as nova's fake driver.
    let r = c
        .call(Method::GET, "/v2.1/os-hypervisors", "admin", "2.1", None)
        .await;
    let id = r.body["hypervisors"][0]["id"].clone();
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/os-hypervisors/{id}/uptime"),
            "admin",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 501, "{}", r.body);
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/os-hypervisors/{id}/uptime"),
            "demo",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 403);
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-hypervisors/999/uptime",
            "admin",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    c.stop().await;
}
