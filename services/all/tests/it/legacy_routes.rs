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
    // The audit log: no compute has audited the last period yet.
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
    usage_audit_log_reads_the_task_logs(&c, &server).await;
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
    // The fake driver's uptime is its machine's (`uptime`'s output).
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
    assert_eq!(r.status, 200, "{}", r.body);
    let up = r.body["hypervisor"]["uptime"].as_str().unwrap_or_default();
    assert!(
        up.contains(" up ") && up.contains("load average"),
        "{}",
        r.body
    );
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

/// December 2026 audited: the server's compute runs the usage audit, the
/// other compute's audit is still running, then done; the log reports
/// each host's task log as nova's `_get_audit_task_logs` does.
async fn usage_audit_log_reads_the_task_logs(c: &Cluster, server: &str) {
    use nova_objects::field::parse_datetime;
    use nova_service::task_log::{INSTANCE_USAGE_AUDIT, task_log_begin_task, task_log_end_task};
    let ctx = nova_service::context::admin();
    let r = c.get(&format!("/v2.1/servers/{server}"), "admin").await;
    let host = r.body["server"]["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mine, other) = if c.all.computes[0].host == host {
        (&c.all.computes[0], &c.all.computes[1])
    } else {
        (&c.all.computes[1], &c.all.computes[0])
    };
    // The server ran in December 2026 whenever this test runs.
    let mut inst: nova_objects::Instance = c.all.objects.get_by_uuid(&ctx, server).await.unwrap();
    inst.set_launched_at(parse_datetime("2026-12-10T08:00:00Z"));
    c.all.objects.save(&ctx, &mut inst).await.unwrap();
    let log = mine
        .manager
        .instance_usage_audit(parse_datetime("2027-01-05T00:00:00Z").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*log.task_items(), 1);
    let path = "/v2.1/os-instance_usage_audit_log/2027-01-05%2000:00:00";
    let r = c.call(Method::GET, path, "admin", "2.1", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let l = &r.body["instance_usage_audit_log"];
    assert_eq!(l["period_beginning"], "2026-12-01 00:00:00", "{l}");
    assert_eq!(l["period_ending"], "2027-01-01 00:00:00");
    assert_eq!(l["num_hosts"], 2);
    assert_eq!(l["num_hosts_done"], 1);
    assert_eq!(l["num_hosts_running"], 0);
    assert_eq!(l["num_hosts_not_run"], 1);
    assert_eq!(l["hosts_not_run"], json!([other.host]));
    assert_eq!(l["total_instances"], 1);
    assert_eq!(l["total_errors"], 0);
    assert_eq!(l["overall_status"], "1 of 2 hosts done. 0 errors.");
    let entry = &l["log"][&host];
    assert_eq!(entry["state"], "DONE", "{l}");
    assert_eq!(entry["instances"], 1);
    assert_eq!(entry["errors"], 0);
    assert!(
        entry["message"].as_str().unwrap().starts_with(&format!(
            "Instance usage audit ran for host {host}, 1 instances in "
        )),
        "{entry}"
    );
    // The other compute's audit under way, then ended with 2 errors.
    let period = (
        parse_datetime("2026-12-01T00:00:00Z").unwrap().naive_utc(),
        parse_datetime("2027-01-01T00:00:00Z").unwrap().naive_utc(),
    );
    task_log_begin_task(
        &c.all.objects,
        &ctx,
        INSTANCE_USAGE_AUDIT,
        period,
        &other.host,
        3,
        "Instance usage audit started...",
    )
    .await
    .unwrap();
    let r = c.call(Method::GET, path, "admin", "2.1", None).await;
    let l = &r.body["instance_usage_audit_log"];
    assert_eq!(l["num_hosts_running"], 1, "{l}");
    assert_eq!(l["num_hosts_not_run"], 0);
    assert_eq!(l["hosts_not_run"], json!([]));
    assert_eq!(l["total_instances"], 4);
    assert_eq!(l["log"][&other.host]["state"], "RUNNING");
    assert_eq!(
        l["log"][&other.host]["message"],
        "Instance usage audit started..."
    );
    assert_eq!(l["overall_status"], "1 of 2 hosts done. 0 errors.");
    task_log_end_task(
        &c.all.objects,
        &ctx,
        INSTANCE_USAGE_AUDIT,
        period,
        &other.host,
        2,
        None,
    )
    .await
    .unwrap();
    let r = c.call(Method::GET, path, "admin", "2.1", None).await;
    let l = &r.body["instance_usage_audit_log"];
    assert_eq!(l["num_hosts_done"], 2, "{l}");
    assert_eq!(l["total_errors"], 2);
    assert_eq!(l["overall_status"], "ALL hosts done. 2 errors.");
    // A second audit of the period on the same host does nothing.
    assert!(
        mine.manager
            .instance_usage_audit(parse_datetime("2027-01-20T00:00:00Z").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}
