//! Rebuild end to end on fake computes: the new image through the
//! scheduler's rebuild check on the same host, the body per microversion,
//! refused requests writing nothing, driver failures (ERROR with a fault,
//! nova's allocation clean-up), a stopped server staying stopped, and
//! Placement: the server's allocation stays on its host, unchanged.

use std::time::Duration;

use nova_objects::{Instance, ListQuery, Lookup, RequestSpec};
use nova_rpc::RequestContext;
use nova_virt::{ComputeDriver as _, Faults};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::{Cluster, Reply};

fn admin() -> RequestContext {
    RequestContext::new().with_admin(true)
}

async fn act(c: &Cluster, user: &str, mv: &str, id: &str, body: Value) -> Reply {
    c.call(
        Method::POST,
        &format!("/v2.1/servers/{id}/action"),
        user,
        mv,
        Some(body),
    )
    .await
}

/// A second public, active image; its id.
pub(crate) fn second_image(c: &Cluster, name: &str, extra: &[(&str, Value)]) -> String {
    let admin = nova_api::Ctx {
        user_id: "admin".into(),
        project_id: "admin".into(),
        roles: vec!["admin".into()],
        request_id: String::new(),
        ..Default::default()
    };
    let mut body = serde_json::Map::new();
    body.insert("name".into(), json!(name));
    body.insert("disk_format".into(), json!("qcow2"));
    body.insert("container_format".into(), json!("bare"));
    body.insert("visibility".into(), json!("public"));
    for (k, v) in extra {
        body.insert((*k).into(), v.clone());
    }
    let images = &c.all.api.state.images;
    let img = images.create(&admin, &body).unwrap();
    let id = img["id"].as_str().unwrap().to_owned();
    images.put_data(&id, &[1u8; 512]).unwrap();
    id
}

async fn instance(c: &Cluster, id: &str) -> Instance {
    c.all.objects.get_by_uuid(&admin(), id).await.unwrap()
}

/// The host a server runs on.
async fn host_of(c: &Cluster, id: &str) -> String {
    instance(c, id).await.host().clone().unwrap()
}

/// The providers holding the server's allocation.
async fn allocated_on(c: &Cluster, id: &str) -> Vec<String> {
    let a = c.all.placement.allocations_async(id).await.unwrap();
    a.allocations.keys().map(|k| k.to_string()).collect()
}

async fn node_of(c: &Cluster, host: &str) -> String {
    c.all
        .compute(host)
        .unwrap()
        .manager
        .node_uuid()
        .await
        .unwrap()
}

/// The instance action `name` of a server (admin view, 2.51 events).
async fn action_named(c: &Cluster, id: &str, name: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = c
            .call(
                Method::GET,
                &format!("/v2.1/servers/{id}/os-instance-actions"),
                "admin",
                "2.51",
                None,
            )
            .await;
        let req = r.body["instanceActions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["action"] == name)
            .map(|a| a["request_id"].as_str().unwrap().to_owned());
        if let Some(req) = req {
            let a = c
                .call(
                    Method::GET,
                    &format!("/v2.1/servers/{id}/os-instance-actions/{req}"),
                    "admin",
                    "2.51",
                    None,
                )
                .await;
            let events = a.body["instanceAction"]["events"].as_array().unwrap();
            if events.len() >= 2 && events.iter().all(|e| !e["finish_time"].is_null()) {
                return a.body["instanceAction"].clone();
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no action {name}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_with_a_new_image_keeps_the_host_and_its_allocation() {
    let c = Cluster::start(2, &[]).await;
    let id = c.boot("demo", "rb-1", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let host = host_of(&c, &id).await;
    let node = node_of(&c, &host).await;
    let vcpus = c.total_usage("VCPU").await;
    let image = second_image(&c, "image-2", &[("os_distro", json!("debian"))]);

    let r = act(
        &c,
        "demo",
        "2.75",
        &id,
        json!({"rebuild": {"imageRef": image, "name": "rebuilt", "metadata": {"k": "v"},
                            "adminPass": "sekrit", "user_data": "aGVsbG8="}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = &r.body["server"];
    assert_eq!(s["image"]["id"], json!(image));
    assert_eq!(s["name"], "rebuilt");
    assert_eq!(s["metadata"], json!({"k": "v"}));
    assert_eq!(s["adminPass"], "sekrit");
    assert_eq!(s["user_data"], "aGVsbG8=");
    assert_eq!(s["OS-EXT-STS:task_state"], "rebuilding");
    assert_eq!(s["status"], "REBUILD");
    // 2.75: every attribute GET shows.
    assert!(s.get("OS-SRV-USG:launched_at").is_some(), "{s}");
    assert!(s.get("config_drive").is_some(), "{s}");

    let shown = c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(shown["image"]["id"], json!(image));
    assert_eq!(shown["name"], "rebuilt");
    let inst = instance(&c, &id).await;
    assert_eq!(inst.host().as_deref(), Some(host.as_str()));
    assert_eq!(
        inst.system_metadata().get("image_base_image_ref"),
        Some(&Some(image.clone()))
    );
    assert_eq!(
        inst.system_metadata().get("image_os_distro"),
        Some(&Some("debian".to_owned()))
    );
    assert_eq!(inst.user_data().as_deref(), Some("aGVsbG8="));
    // The guest was spawned again from the new image, on the same host.
    let fake = c.all.compute(&host).unwrap().fake.clone().unwrap();
    assert!(fake.list_instance_uuids().await.unwrap().contains(&id));
    // The request spec carries the new image (nova's request_spec.save()),
    // without the rebuild check's hints.
    let spec: RequestSpec = c
        .all
        .objects
        .get(&admin(), Lookup::field("instance_uuid", id.as_str()))
        .await
        .unwrap();
    assert_eq!(spec.image().as_ref().unwrap().id(), &image);
    assert!(
        spec.scheduler_hints()
            .as_ref()
            .is_none_or(|h| !h.contains_key("_nova_check_type")),
        "{:?}",
        spec.scheduler_hints()
    );
    // Placement: the same single allocation on the same node.
    assert_eq!(allocated_on(&c, &id).await, vec![node.clone()]);
    assert_eq!(c.total_usage("VCPU").await, vcpus);
    // The instance action: the conductor's and the compute's events.
    let a = action_named(&c, &id, "rebuild").await;
    let mut events: Vec<&str> = a["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    events.sort_unstable();
    assert_eq!(events, ["compute_rebuild_instance", "rebuild_server"]);
    assert!(
        a["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["result"] == "Success"),
        "{a}"
    );

    // The same image again goes straight to the host (no scheduling).
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"rebuild": {"imageRef": image, "preserve_ephemeral": false}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    // Before 2.75 the body is the basic server.
    assert!(r.body["server"].get("OS-EXT-STS:task_state").is_none());
    assert!(r.body["server"].get("user_data").is_none());
    assert!(r.body["server"]["adminPass"].as_str().unwrap().len() >= 8);
    c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(allocated_on(&c, &id).await, vec![node]);
    assert_eq!(c.total_usage("VCPU").await, vcpus);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_rebuild_changes_nothing() {
    let c = Cluster::start(1, &[]).await;
    let id = c.boot("demo", "rb-2", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let image = second_image(&c, "image-2", &[]);
    let before = instance(&c, &id).await;
    let unchanged = |i: &Instance| {
        assert_eq!(i.image_ref(), before.image_ref());
        assert_eq!(i.display_name(), before.display_name());
        assert!(i.task_state().is_none());
    };
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "2.1",
            json!({"rebuild": {"imageRef": "4f2a6b5e-6f1b-4d8e-9c43-4c1c0c3e2b11"}}),
            400,
            "Cannot find image for rebuild",
        ),
        (
            "2.54",
            json!({"rebuild": {"imageRef": image, "key_name": "nope"}}),
            400,
            "Invalid key_name provided.",
        ),
        // personality left at 2.57.
        (
            "2.57",
            json!({"rebuild": {"imageRef": image, "personality": []}}),
            400,
            "",
        ),
        // key_name is 2.54's.
        (
            "2.53",
            json!({"rebuild": {"imageRef": image, "key_name": null}}),
            400,
            "",
        ),
        (
            "2.1",
            json!({"rebuild": {"imageRef": image, "personality": (0..6)
                .map(|n| json!({"path": format!("/f{n}"), "contents": "aGk="}))
                .collect::<Vec<_>>()}}),
            403,
            "Personality file limit exceeded",
        ),
        ("2.1", json!({"rebuild": {"name": "x"}}), 400, ""),
    ];
    for (mv, body, status, msg) in cases {
        let r = act(&c, "demo", mv, &id, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        if !msg.is_empty() {
            assert_eq!(r.fault().1, msg, "{body}");
        }
        unchanged(&instance(&c, &id).await);
    }
    // Paused: 409 with nova's message.
    let r = act(&c, "demo", "2.1", &id, json!({"pause": null})).await;
    assert_eq!(r.status, 202);
    c.wait_status("demo", &id, "PAUSED").await;
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"rebuild": {"imageRef": image}}),
    )
    .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.fault().1,
        format!("Cannot 'rebuild' instance {id} while it is in vm_state paused")
    );
    unchanged(&instance(&c, &id).await);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rebuild_ends_in_error_and_a_stopped_one_stays_stopped() {
    let c = Cluster::start(1, &[]).await;
    let id = c.boot("demo", "rb-3", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let host = host_of(&c, &id).await;
    let node = node_of(&c, &host).await;
    let good = second_image(&c, "good", &[]);
    let bad = second_image(&c, "bad", &[]);

    // A stopped server is rebuilt and stopped again.
    let r = act(&c, "demo", "2.1", &id, json!({"os-stop": null})).await;
    assert_eq!(r.status, 202);
    c.wait_status("demo", &id, "SHUTOFF").await;
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"rebuild": {"imageRef": good}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = c.wait_status("demo", &id, "SHUTOFF").await;
    assert_eq!(s["image"]["id"], json!(good));
    assert_eq!(s["OS-EXT-STS:power_state"], 4);
    assert_eq!(allocated_on(&c, &id).await, vec![node.clone()]);

    // preserve_ephemeral: the default rebuild cannot, as nova's.
    let r = act(&c, "demo", "2.1", &id, json!({"os-start": null})).await;
    assert_eq!(r.status, 202);
    c.wait_status("demo", &id, "ACTIVE").await;
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"rebuild": {"imageRef": good, "preserve_ephemeral": true}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = c.wait_status("demo", &id, "ERROR").await;
    assert!(
        s["fault"]["message"]
            .as_str()
            .unwrap()
            .contains("does not support preserving ephemeral partitions"),
        "{s}"
    );
    // The server is still this host's: its allocation stays.
    assert_eq!(allocated_on(&c, &id).await, vec![node.clone()]);

    // ERROR servers may be rebuilt; a spawn failure ends in ERROR again.
    let fake = c.all.compute(&host).unwrap().fake.clone().unwrap();
    fake.set_faults(Faults {
        fail_spawn_for_image: Some(bad.clone()),
        ..Faults::default()
    });
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"rebuild": {"imageRef": bad}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let i = instance(&c, &id).await;
        if i.task_state().is_none() && i.image_ref().as_deref() == Some(bad.as_str()) {
            assert_eq!(i.vm_state().as_deref(), Some("error"));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let faults: Vec<nova_objects::InstanceFault> = c
        .all
        .objects
        .list(
            &admin(),
            &ListQuery::new().filter("instance_uuid", id.as_str()),
        )
        .await
        .unwrap();
    assert!(
        faults
            .iter()
            .any(|f| f.message().as_deref().unwrap_or("").contains("spawn")),
        "{faults:?}"
    );
    assert_eq!(allocated_on(&c, &id).await, vec![node.clone()]);
    // A rebuild that works brings it back, on the same host.
    fake.set_faults(Faults::default());
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"rebuild": {"imageRef": good}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(host_of(&c, &id).await, host);
    assert_eq!(allocated_on(&c, &id).await, vec![node]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_spawns_as_a_build_with_its_files_and_a_config_drive() {
    let c = Cluster::start(1, &[("DEFAULT", "force_config_drive", "true")]).await;
    let id = c.boot("demo", "rb-files", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let host = host_of(&c, &id).await;
    let fake = c.all.compute(&host).unwrap().fake.clone().unwrap();
    let (files, drive) = fake.spawned_files(&id).unwrap();
    assert!(files.is_empty() && drive.is_some());
    let image = second_image(&c, "image-files", &[]);
    // Personality files go with rebuilds up to 2.56.
    let r = act(
        &c,
        "demo",
        "2.56",
        &id,
        json!({"rebuild": {"imageRef": image,
            "personality": [{"path": "/etc/motd", "contents": "aGVsbG8="}]}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_status("demo", &id, "ACTIVE").await;
    let (files, drive) = fake.spawned_files(&id).unwrap();
    assert_eq!(
        files,
        vec![nova_virt::InjectedFile {
            path: "/etc/motd".into(),
            contents: b"hello".to_vec()
        }]
    );
    // A fresh config drive: the metadata and the injected file on it.
    let drive = drive.expect("a config drive");
    assert!(
        drive
            .iter()
            .any(|f| f.path.ends_with("openstack/latest/meta_data.json")),
        "{:?}",
        drive.iter().map(|f| &f.path).collect::<Vec<_>>()
    );
    assert!(drive.iter().any(|f| f.contents == b"hello"));
    c.stop().await;
}
