//! The server sub-resources on a running cluster: metadata and tags on a
//! real server (and the list filters), diagnostics from the compute's
//! driver over RPC (refused once the guest is off), os-server-password,
//! topology, and host_status following the compute service.

use reqwest::Method;
use serde_json::json;

use crate::cluster::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_resources_of_a_running_server() {
    let c = Cluster::start(1, &[]).await;
    let id = c.boot("demo", "sub-1", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let other = c.boot("demo", "sub-2", "1").await;
    c.wait_status("demo", &other, "ACTIVE").await;
    let srv = format!("/v2.1/servers/{id}");

    // Metadata.
    let r = c
        .call(
            Method::POST,
            &format!("{srv}/metadata"),
            "demo",
            "2.1",
            Some(json!({"metadata": {"role": "web", "tier": "1"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .call(
            Method::PUT,
            &format!("{srv}/metadata/tier"),
            "demo",
            "2.1",
            Some(json!({"meta": {"tier": "2"}})),
        )
        .await;
    assert_eq!(r.body, json!({"meta": {"tier": "2"}}));
    let r = c.delete(&format!("{srv}/metadata/role"), "demo").await;
    assert_eq!(r.status, 204);
    let r = c.get(&srv, "demo").await;
    assert_eq!(r.body["server"]["metadata"], json!({"tier": "2"}));

    // Tags, and the list filters.
    let r = c
        .call(
            Method::PUT,
            &format!("{srv}/tags"),
            "demo",
            "2.26",
            Some(json!({"tags": ["prod", "web"]})),
        )
        .await;
    assert_eq!(r.body, json!({"tags": ["prod", "web"]}));
    let r = c
        .call(
            Method::PUT,
            &format!("/v2.1/servers/{other}/tags/prod"),
            "demo",
            "2.26",
            None,
        )
        .await;
    assert_eq!(r.status, 201);
    let ids = |r: &crate::cluster::Reply| -> Vec<String> {
        let mut v: Vec<String> = r.body["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let mut both = vec![id.clone(), other.clone()];
    both.sort();
    let r = c.get("/v2.1/servers?tags=prod", "demo").await;
    assert_eq!(ids(&r), both);
    let r = c.get("/v2.1/servers/detail?tags=prod,web", "demo").await;
    assert_eq!(ids(&r), vec![id.clone()]);
    assert_eq!(r.body["servers"][0]["tags"], json!(["prod", "web"]));
    let r = c.get("/v2.1/servers?not-tags-any=web", "demo").await;
    assert_eq!(ids(&r), vec![other.clone()]);

    // Diagnostics: the fake driver's figures for the flavor (1 vCPU,
    // 512 MiB), in nova's 2.48 document and the driver's own dict.
    let r = c
        .call(
            Method::GET,
            &format!("{srv}/diagnostics"),
            "admin",
            "2.48",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body;
    assert_eq!(d["state"], "running");
    assert_eq!(
        d["driver"], "libvirt",
        "nova's enum: its fake says libvirt too"
    );
    assert_eq!(d["hypervisor"], "fake");
    assert_eq!(d["num_cpus"], 1);
    assert_eq!(d["cpu_details"].as_array().unwrap().len(), 1);
    assert_eq!(d["num_disks"], 1);
    assert_eq!(d["memory_details"]["maximum"], 512);
    assert_eq!(d["config_drive"], false);
    assert!(d["uptime"].as_i64().is_some_and(|u| u >= 0), "{d}");
    let r = c
        .call(
            Method::GET,
            &format!("{srv}/diagnostics"),
            "admin",
            "2.47",
            None,
        )
        .await;
    assert_eq!(r.body["memory"], 512 * 1024, "{}", r.body);
    assert_eq!(r.body["cpu0_time"], 0);
    assert!(r.body.get("vda_read").is_some(), "{}", r.body);
    let r = c.get(&format!("{srv}/diagnostics"), "demo").await;
    assert_eq!(r.status, 403);

    // Password: nothing set yet; clearing works.
    let r = c.get(&format!("{srv}/os-server-password"), "demo").await;
    assert_eq!(r.body, json!({"password": ""}));
    let r = c.delete(&format!("{srv}/os-server-password"), "demo").await;
    assert_eq!(r.status, 204);

    // Topology: no NUMA topology on this flavor.
    let r = c.get(&format!("{srv}/topology"), "demo").await;
    assert_eq!(r.body, json!({"nodes": [], "pagesize_kb": null}));

    // host_status: UP, then DOWN once the compute is forced down.
    let r = c.call(Method::GET, &srv, "admin", "2.16", None).await;
    assert_eq!(r.body["server"]["host_status"], "UP");
    let host = r.body["server"]["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/os-services?binary=nova-compute&host={host}"),
            "admin",
            "2.53",
            None,
        )
        .await;
    let svc = r.body["services"][0]["id"].as_str().unwrap().to_owned();
    let r = c
        .call(
            Method::PUT,
            &format!("/v2.1/os-services/{svc}"),
            "admin",
            "2.53",
            Some(json!({"forced_down": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c.call(Method::GET, &srv, "admin", "2.16", None).await;
    assert_eq!(r.body["server"]["host_status"], "DOWN");
    let r = c
        .call(
            Method::PUT,
            &format!("/v2.1/os-services/{svc}"),
            "admin",
            "2.53",
            Some(json!({"forced_down": false, "status": "disabled"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .call(Method::GET, "/v2.1/servers/detail", "admin", "2.16", None)
        .await;
    assert!(
        r.body["servers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["host_status"] == "MAINTENANCE"),
        "{}",
        r.body
    );
    c.call(
        Method::PUT,
        &format!("/v2.1/os-services/{svc}"),
        "admin",
        "2.53",
        Some(json!({"status": "enabled"})),
    )
    .await;

    // Stopped: diagnostics refused as nova does; metadata still allowed.
    let r = c
        .post(&format!("{srv}/action"), "demo", json!({"os-stop": null}))
        .await;
    assert_eq!(r.status, 202);
    c.wait_status("demo", &id, "SHUTOFF").await;
    let r = c
        .call(
            Method::GET,
            &format!("{srv}/diagnostics"),
            "admin",
            "2.48",
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        r.fault().1,
        format!("Cannot 'get_diagnostics' instance {id} while it is in power state shutdown")
    );
    let r = c
        .call(
            Method::POST,
            &format!("{srv}/metadata"),
            "demo",
            "2.1",
            Some(json!({"metadata": {"stopped": "yes"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    for s in [&id, &other] {
        c.delete(&format!("/v2.1/servers/{s}"), "demo").await;
        c.wait_gone("demo", s).await;
    }
    c.stop().await;
}
