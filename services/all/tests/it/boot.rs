//! The flow of a boot and what follows: active, list and show, reboot,
//! stop/start, delete, NoValidHost, reschedules, max_attempts, a compute
//! going down.

use std::time::Duration;

use nova_objects::{Instance, InstanceMapping, ListQuery, Lookup};
use nova_rpc::RequestContext;
use reqwest::Method;
use serde_json::json;

use crate::cluster::Cluster;

fn admin() -> RequestContext {
    RequestContext::new().with_admin(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_list_show_reboot_stop_start_delete() {
    let c = Cluster::start(2, &[]).await;
    let id = c.boot("demo", "web-1", "1").await;
    let s = c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(s["OS-EXT-STS:vm_state"], "active");
    assert_eq!(s["OS-EXT-STS:power_state"], 1);
    assert_eq!(s["flavor"]["original_name"], "m1.tiny");
    assert_eq!(s["tenant_id"], "demo");
    assert!(s["OS-SRV-USG:launched_at"].is_string());
    // Placement holds exactly the flavor.
    assert_eq!(c.total_usage("MEMORY_MB").await, 512);
    assert_eq!(c.total_usage("VCPU").await, 1);
    // List: brief, detail, name filter (regex), status, pagination.
    let id2 = c.boot("demo", "db-1", "2").await;
    c.wait_status("demo", &id2, "ACTIVE").await;
    let r = c.get("/v2.1/servers", "demo").await;
    assert_eq!(r.body["servers"].as_array().unwrap().len(), 2);
    assert!(r.body["servers"][0].get("status").is_none(), "brief view");
    let r = c.get("/v2.1/servers/detail?name=web", "demo").await;
    let names: Vec<&str> = r.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["web-1"]);
    let r = c
        .get(
            "/v2.1/servers/detail?deleted=False&status=ACTIVE&sort_key=display_name&sort_dir=asc",
            "demo",
        )
        .await;
    let names: Vec<&str> = r.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["db-1", "web-1"]);
    let r = c
        .get(
            "/v2.1/servers/detail?limit=1&sort_key=display_name&sort_dir=asc",
            "demo",
        )
        .await;
    assert_eq!(r.body["servers"].as_array().unwrap().len(), 1);
    let next = r.body["servers_links"][0]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(next.contains(&format!("marker={id2}")), "{next}");
    let r = c
        .get(
            &format!(
                "/v2.1/servers/detail?limit=1&sort_key=display_name&sort_dir=asc&marker={id2}"
            ),
            "demo",
        )
        .await;
    assert_eq!(r.body["servers"][0]["name"], "web-1");
    let r = c
        .get(
            "/v2.1/servers?marker=6f0e3ad8-8b44-4d4f-9a2b-3c0f4d9b7e11",
            "demo",
        )
        .await;
    assert_eq!(r.status, 400, "unknown marker");
    let r = c.get("/v2.1/servers/detail?sort_key=bogus", "demo").await;
    assert_eq!(r.status, 400);
    // Update.
    let r = c
        .call(
            Method::PUT,
            &format!("/v2.1/servers/{id}"),
            "demo",
            "2.19",
            Some(json!({"server": {"name": "web-renamed", "description": "front"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["server"]["name"], "web-renamed");
    assert_eq!(r.body["server"]["description"], "front");
    // Reboot (soft, hard), stop, start; invalid transitions are 409.
    let action_path = format!("/v2.1/servers/{id}/action");
    let act = |body: serde_json::Value| c.post(&action_path, "demo", body);
    assert_eq!(act(json!({"reboot": {"type": "SOFT"}})).await.status, 202);
    c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(act(json!({"reboot": {"type": "HARD"}})).await.status, 202);
    c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(
        act(json!({"os-start": null})).await.status,
        409,
        "start an active server"
    );
    assert_eq!(act(json!({"os-stop": null})).await.status, 202);
    let s = c.wait_status("demo", &id, "SHUTOFF").await;
    assert_eq!(s["OS-EXT-STS:power_state"], 4);
    let r = act(json!({"reboot": {"type": "SOFT"}})).await;
    assert_eq!(r.status, 409);
    let (name, msg) = r.fault();
    assert_eq!(name, "conflictingRequest");
    assert!(msg.contains("while it is in vm_state stopped"), "{msg}");
    assert_eq!(act(json!({"os-start": null})).await.status, 202);
    c.wait_status("demo", &id, "ACTIVE").await;
    let r = act(json!({"reboot": {"type": "SIDEWAYS"}})).await;
    assert_eq!(r.status, 400);
    let r = act(json!({"fly": null})).await;
    assert_eq!(r.status, 400);
    // Delete both: gone, allocations back to zero.
    for i in [&id, &id2] {
        let r = c.delete(&format!("/v2.1/servers/{i}"), "demo").await;
        assert_eq!(r.status, 204);
    }
    c.wait_gone("demo", &id).await;
    c.wait_gone("demo", &id2).await;
    assert_eq!(c.total_usage("MEMORY_MB").await, 0);
    assert_eq!(c.total_usage("VCPU").await, 0);
    for comp in &c.all.computes {
        let fake = comp.fake.as_ref().unwrap();
        use nova_virt::ComputeDriver as _;
        assert!(
            fake.list_instance_uuids().await.unwrap().is_empty(),
            "{} still runs guests",
            comp.host
        );
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_valid_host_buries_the_instance_in_cell0() {
    let c = Cluster::start(2, &[]).await;
    let r = c.call(Method::POST, "/v2.1/flavors", "admin", "2.61", Some(json!({"flavor": {"name": "huge", "ram": 10_000_000, "vcpus": 1, "disk": 1, "id": "huge"}}))).await;
    assert_eq!(r.status, 200);
    // Quota would refuse it for demo (ram): the admin project has room? no: raise via admin project quotas is not needed,
    // admin boots it (quota counts the admin project, whose ram quota is 51200).
    let r = c.post("/v2.1/servers", "admin", json!({"server": {"name": "big", "flavorRef": "huge", "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none"}})).await;
    assert_eq!(r.status, 403, "quota refuses first: {}", r.body);
    c.stop().await;

    let c = Cluster::start(2, &[("quota", "ram", "-1"), ("fake", "memory_mb", "4096")]).await;
    let r = c.call(Method::POST, "/v2.1/flavors", "admin", "2.61", Some(json!({"flavor": {"name": "huge", "ram": 8192, "vcpus": 1, "disk": 1, "id": "huge"}}))).await;
    assert_eq!(r.status, 200);
    let r = c.post("/v2.1/servers", "demo", json!({"server": {"name": "big", "flavorRef": "huge", "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none"}})).await;
    assert_eq!(r.status, 202);
    let id = r.body["server"]["id"].as_str().unwrap().to_owned();
    let s = c.wait_status("demo", &id, "ERROR").await;
    let msg = s["fault"]["message"].as_str().unwrap();
    assert!(msg.contains("No valid host was found"), "{msg}");
    assert_eq!(s["fault"]["code"], 500);
    let m: InstanceMapping = c
        .all
        .objects
        .get(&admin(), Lookup::field("instance_uuid", id.as_str()))
        .await
        .unwrap();
    assert_eq!(
        m.cell_mapping().as_ref().unwrap().uuid(),
        nova_service::cells::CELL0_UUID
    );
    assert_eq!(c.total_usage("MEMORY_MB").await, 0, "nothing allocated");
    // Deleting it works without a compute.
    let r = c.delete(&format!("/v2.1/servers/{id}"), "demo").await;
    assert_eq!(r.status, 204);
    c.wait_gone("demo", &id).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_spawn_reschedules_on_an_alternate() {
    let c = Cluster::start(3, &[]).await;
    // Two hosts fail every spawn of m1.small; the third works.
    for host in ["fake-compute-1", "fake-compute-2"] {
        c.all
            .compute(host)
            .unwrap()
            .fake
            .as_ref()
            .unwrap()
            .set_faults(nova_virt::Faults {
                fail_spawn_for_flavor: Some("m1.small".into()),
                ..Default::default()
            });
    }
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(c.boot("demo", &format!("r{n}"), "2").await);
    }
    for id in &ids {
        let s = c.wait_status("demo", id, "ACTIVE").await;
        assert_eq!(
            c.get(&format!("/v2.1/servers/{id}"), "admin").await.body["server"]["OS-EXT-SRV-ATTR:host"],
            "fake-compute-3",
            "{s}"
        );
    }
    assert_eq!(c.usage_on("fake-compute-3", "MEMORY_MB").await, 3 * 2048);
    assert_eq!(
        c.usage_on("fake-compute-1", "MEMORY_MB").await,
        0,
        "failed hosts keep nothing"
    );
    assert_eq!(c.usage_on("fake-compute-2", "MEMORY_MB").await, 0);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_attempts_exhausted_ends_in_error_and_frees_everything() {
    let c = Cluster::start(3, &[("scheduler", "max_attempts", "2")]).await;
    for comp in &c.all.computes {
        comp.fake.as_ref().unwrap().set_faults(nova_virt::Faults {
            fail_spawn_for_flavor: Some("m1.small".into()),
            ..Default::default()
        });
    }
    let id = c.boot("demo", "doomed", "2").await;
    let s = c.wait_status("demo", &id, "ERROR").await;
    let msg = s["fault"]["message"].as_str().unwrap();
    assert!(
        msg.contains("Exceeded maximum number of retries") || msg.contains("Exhausted all hosts"),
        "{msg}"
    );
    assert_eq!(c.total_usage("MEMORY_MB").await, 0);
    // How many hosts were tried: max_attempts.
    let tried: usize = {
        use nova_virt::ComputeDriver as _;
        let mut n = 0;
        for comp in &c.all.computes {
            n += comp
                .fake
                .as_ref()
                .unwrap()
                .list_instance_uuids()
                .await
                .unwrap()
                .len();
        }
        n
    };
    assert_eq!(tried, 0, "failed spawns leave no guest behind");
    let inst: Instance = c.all.objects.get_by_uuid(&admin(), &id).await.unwrap();
    assert!(inst.host().is_none() || inst.vm_state().as_deref() == Some("error"));
    // With max_attempts 1 there is no reschedule at all.
    c.stop().await;
    let c = Cluster::start(2, &[("scheduler", "max_attempts", "1")]).await;
    for comp in &c.all.computes {
        comp.fake.as_ref().unwrap().set_faults(nova_virt::Faults {
            fail_spawn_on_call: Some(1),
            ..Default::default()
        });
    }
    let id = c.boot("demo", "once", "1").await;
    let s = c.wait_status("demo", &id, "ERROR").await;
    assert!(
        s["fault"]["message"]
            .as_str()
            .unwrap()
            .contains("Build of instance"),
        "{}",
        s["fault"]
    );
    assert_eq!(c.total_usage("MEMORY_MB").await, 0);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compute_that_goes_down_is_excluded() {
    let mut c = Cluster::start(3, &[]).await;
    c.all.stop_compute("fake-compute-2").await;
    // service_down_time is 4 s in the fixture.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = c
            .call(
                Method::GET,
                "/v2.1/os-services?binary=nova-compute",
                "admin",
                "2.69",
                None,
            )
            .await;
        let down: Vec<String> = r.body["services"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["state"] == "down")
            .map(|s| s["host"].as_str().unwrap().to_owned())
            .collect();
        if down == vec!["fake-compute-2".to_owned()] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "compute never went down: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = c.post("/v2.1/servers", "demo", json!({"server": {"name": "s", "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none", "min_count": 6, "max_count": 6}})).await;
    assert_eq!(r.status, 202);
    let r = c.get("/v2.1/servers?name=^s-", "demo").await;
    let ids: Vec<String> = r.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 6);
    for id in &ids {
        c.wait_status("demo", id, "ACTIVE").await;
        let host = c.get(&format!("/v2.1/servers/{id}"), "admin").await.body["server"]["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_owned();
        assert_ne!(host, "fake-compute-2");
    }
    assert_eq!(
        c.usage_on("fake-compute-1", "MEMORY_MB").await,
        3 * 512,
        "spread evenly over the two up hosts"
    );
    assert_eq!(c.usage_on("fake-compute-3", "MEMORY_MB").await, 3 * 512);
    // A disabled compute is excluded too.
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-services?host=fake-compute-1",
            "admin",
            "2.69",
            None,
        )
        .await;
    let sid = r.body["services"][0]["id"].as_str().unwrap().to_owned();
    let r = c
        .call(
            Method::PUT,
            &format!("/v2.1/os-services/{sid}"),
            "admin",
            "2.53",
            Some(json!({"status": "disabled", "disabled_reason": "maintenance"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["service"]["status"], "disabled");
    tokio::time::sleep(Duration::from_millis(1100)).await; // the scheduler's host view refreshes every second
    let id = c.boot("demo", "after", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let host =
        c.get(&format!("/v2.1/servers/{id}"), "admin").await.body["server"]["OS-EXT-SRV-ATTR:host"]
            .as_str()
            .unwrap()
            .to_owned();
    assert_eq!(host, "fake-compute-3");
    // Deleting a server on the down compute: the API deletes it locally.
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_recovers_instances_left_in_transition() {
    let c = Cluster::start(1, &[]).await;
    let id = c.boot("demo", "t", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    // Leave it mid-reboot in the database, as a crash would.
    let mut inst: Instance = c.all.objects.get_by_uuid(&admin(), &id).await.unwrap();
    inst.set_task_state(Some("rebooting".into()));
    c.all.objects.save(&admin(), &mut inst).await.unwrap();
    let building = {
        let mut b = Instance::new()
            .with_uuid(uuid::Uuid::new_v4().to_string())
            .with_project_id(Some("demo".into()))
            .with_user_id(Some("demo".into()))
            .with_display_name(Some("half-built".into()))
            .with_host(inst.host().clone())
            .with_node(inst.node().clone())
            .with_flavor(inst.flavor().clone())
            .with_vm_state(Some("building".into()))
            .with_task_state(Some("spawning".into()))
            .with_locked(false);
        c.all.objects.create(&admin(), &mut b).await.unwrap();
        b.uuid().clone()
    };
    c.all.computes[0].manager.recover_instances().await;
    let s = c.wait_status("demo", &id, "ACTIVE").await;
    assert!(s["OS-EXT-STS:task_state"].is_null());
    let b: Instance = c
        .all
        .objects
        .get_by_uuid(&admin(), &building)
        .await
        .unwrap();
    assert_eq!(b.vm_state().as_deref(), Some("error"));
    assert!(b.task_state().is_none());
    let listed: Vec<Instance> = c
        .all
        .objects
        .list(&admin(), &ListQuery::new())
        .await
        .unwrap();
    assert!(
        listed.iter().all(|i| i.task_state().is_none()),
        "no instance left in a transient state"
    );
    c.stop().await;
}

/// A compute that has just registered is a candidate for the very next
/// request: the scheduler reloads its host view when Placement proposes
/// a compute node it does not have, instead of leaving it out until the
/// next periodic refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compute_that_just_registered_is_scheduled_at_once() {
    let mut c = Cluster::start(1, &[]).await;
    // One boot, so the scheduler's view is loaded (with one host).
    let id = c.boot("demo", "first", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    c.all
        .add_computes(&["fake-compute-new".to_owned()])
        .await
        .unwrap();
    nova_manage::discover_hosts(&c.all.objects, &c.all.conf)
        .await
        .unwrap();
    let r = c.post("/v2.1/servers", "demo", json!({"server": {"name": "n", "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none", "min_count": 3, "max_count": 3}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = c.get("/v2.1/servers?name=^n-", "demo").await;
    for s in r.body["servers"].as_array().unwrap() {
        c.wait_status("demo", s["id"].as_str().unwrap(), "ACTIVE")
            .await;
    }
    // The RAM weigher prefers the empty host.
    assert!(
        c.usage_on("fake-compute-new", "MEMORY_MB").await >= 512,
        "the new compute was chosen"
    );
    assert_eq!(c.total_usage("MEMORY_MB").await, 4 * 512);
    c.stop().await;
}
