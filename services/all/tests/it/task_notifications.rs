//! The conductor's, the scheduler's and the usage audit's notifications
//! (`compute_task.*.error`, `scheduler.select_destinations.*`,
//! `instance.exists`) and those of rebuild, snapshot and shelving, received
//! by a real Python oslo.messaging listener from RabbitMQ and compared with
//! nova's samples (as `notifications.rs` does); with the rebuild
//! image-trait check that ends one of them.

use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::notifications::{check_against_sample, notifying_cluster};
use crate::rebuild::second_image;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn task_scheduler_and_audit_notifications_match_novas_samples() {
    let (_vhost, listener, c) = notifying_cluster("nova-rs-tasks", 1, &[]).await;
    let act = |id: String, body: Value| {
        let c = &c;
        async move {
            let r = c
                .call(
                    Method::POST,
                    &format!("/v2.1/servers/{id}/action"),
                    "demo",
                    "2.45",
                    Some(body),
                )
                .await;
            assert!(r.status == 202 || r.status == 200, "{}", r.body);
            r.body
        }
    };
    // A boot: the scheduler's select_destinations.
    let id = c.boot("demo", "audited", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    // A rebuild to a new image: instance.exists, rebuild_scheduled, rebuild.*.
    let plain = second_image(&c, "plain", &[]);
    act(id.clone(), json!({"rebuild": {"imageRef": plain}})).await;
    c.wait_status("demo", &id, "ACTIVE").await;
    // A snapshot.
    let snap = act(id.clone(), json!({"createImage": {"name": "snap"}})).await;
    assert!(snap["image_id"].is_string(), "{snap}");
    c.wait_status("demo", &id, "ACTIVE").await;
    // Shelve (offloaded at once, shelved_offload_time 0) and unshelve.
    act(id.clone(), json!({"shelve": null})).await;
    c.wait_status("demo", &id, "SHELVED_OFFLOADED").await;
    act(id.clone(), json!({"unshelve": null})).await;
    c.wait_status("demo", &id, "ACTIVE").await;
    // A cold migration with no other host: compute_task.migrate_server.error,
    // the server stays ACTIVE.
    let r = c
        .post(
            &format!("/v2.1/servers/{id}/action"),
            "admin",
            json!({"migrate": null}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    c.wait_status("demo", &id, "ACTIVE").await;
    // A rebuild to an image whose required trait the host lacks:
    // compute_task.rebuild_server.error, the server in ERROR with nova's
    // reason, its image unchanged.
    let gold = second_image(&c, "gold", &[("trait:CUSTOM_GOLD", json!("required"))]);
    act(id.clone(), json!({"rebuild": {"imageRef": gold}})).await;
    let s = c.wait_status("demo", &id, "ERROR").await;
    assert!(
        s["fault"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Image traits cannot be satisfied by the current resource providers"),
        "{}",
        s["fault"]
    );
    assert_eq!(s["image"]["id"], json!(plain), "the image is rolled back");
    // A boot nothing can hold (a root disk larger than any host's; disk
    // has no quota): compute_task.build_instances.error.
    let r = c
        .post(
            "/v2.1/flavors",
            "admin",
            json!({"flavor": {"name": "huge", "ram": 64, "vcpus": 1, "disk": 10_000_000}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let huge = r.body["flavor"]["id"].as_str().unwrap().to_owned();
    let big = c.boot("demo", "too-big", &huge).await;
    c.wait_status("demo", &big, "ERROR").await;

    let versioned = [
        "scheduler.select_destinations.start",
        "scheduler.select_destinations.end",
        "instance.exists",
        "instance.rebuild_scheduled",
        "instance.rebuild.start",
        "instance.rebuild.end",
        "instance.snapshot.start",
        "instance.snapshot.end",
        "instance.shelve.start",
        "instance.shelve.end",
        "instance.shelve_offload.start",
        "instance.shelve_offload.end",
        "instance.unshelve.start",
        "instance.unshelve.end",
        "compute_task.migrate_server.error",
        "compute_task.rebuild_server.error",
        "compute_task.build_instances.error",
    ];
    let legacy = [
        "scheduler.select_destinations.start",
        "scheduler.select_destinations.end",
        "compute.instance.exists",
        "compute_task.migrate_server",
        "compute_task.rebuild_server",
        "compute_task.build_instances",
    ];
    let seen = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        listener.until(&mut seen, "versioned_notifications", &versioned);
        listener.until(&mut seen, "notifications", &legacy);
        seen
    })
    .await
    .unwrap();
    let mut errors = Vec::new();
    for n in seen.iter().filter(|n| {
        n["topic"] == "versioned_notifications"
            && n["event_type"]
                .as_str()
                .is_some_and(|e| versioned.contains(&e))
    }) {
        errors.extend(check_against_sample(n));
    }
    assert!(
        errors.is_empty(),
        "differences from nova's samples:\n{}",
        errors.join("\n")
    );
    let all = |topic: &str, event: &str| -> Vec<Value> {
        seen.iter()
            .filter(|n| n["event_type"] == event && n["topic"] == topic)
            .map(|n| n["payload"].clone())
            .collect()
    };
    let of = |topic: &str, event: &str| all(topic, event).into_iter().next().unwrap();
    // What the payloads say is true.
    let start = of(
        "versioned_notifications",
        "scheduler.select_destinations.start",
    );
    let d = &start["nova_object.data"];
    assert_eq!(d["instance_uuid"], json!(id));
    assert_eq!(d["project_id"], "demo");
    assert_eq!(d["num_instances"], 1);
    assert_eq!(d["flavor"]["nova_object.data"]["flavorid"], "1");
    assert_eq!(
        d["image"]["nova_object.data"]["id"],
        nova_all::FAKE_IMAGE_ID
    );
    let exists = all("versioned_notifications", "instance.exists");
    assert!(exists.len() >= 2, "one per rebuild and shelve: {exists:?}");
    let first = &exists[0]["nova_object.data"];
    assert_eq!(first["uuid"], json!(id));
    assert_eq!(first["task_state"], "rebuilding");
    let period = &first["audit_period"]["nova_object.data"];
    assert!(
        period["audit_period_beginning"]
            .as_str()
            .unwrap()
            .ends_with("-01T00:00:00Z"),
        "the current month: {period}"
    );
    let migrate = of(
        "versioned_notifications",
        "compute_task.migrate_server.error",
    );
    let d = &migrate["nova_object.data"];
    assert_eq!(d["instance_uuid"], json!(id));
    assert_eq!(d["state"], "active");
    assert_eq!(d["reason"]["nova_object.data"]["exception"], "NoValidHost");
    let rebuild = of(
        "versioned_notifications",
        "compute_task.rebuild_server.error",
    );
    let d = &rebuild["nova_object.data"];
    assert_eq!(d["state"], "error");
    assert_eq!(
        d["request_spec"]["nova_object.data"]["image"]["nova_object.data"]["properties"]["nova_object.data"]
            ["traits_required"],
        json!(["CUSTOM_GOLD"])
    );
    let build = of(
        "versioned_notifications",
        "compute_task.build_instances.error",
    );
    let d = &build["nova_object.data"];
    assert_eq!(d["instance_uuid"], json!(big));
    assert_eq!(d["state"], "error");
    assert_eq!(d["reason"]["nova_object.data"]["exception"], "NoValidHost");
    assert_eq!(
        d["request_spec"]["nova_object.data"]["flavor"]["nova_object.data"]["root_gb"],
        10_000_000
    );
    let legacy_build = of("notifications", "compute_task.build_instances");
    assert_eq!(legacy_build["instance_id"], json!(big));
    assert_eq!(legacy_build["method"], "build_instances");
    let legacy_exists = of("notifications", "compute.instance.exists");
    assert_eq!(legacy_exists["instance_id"], json!(id));
    assert!(legacy_exists["audit_period_beginning"].is_string());
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_to_an_image_whose_traits_the_host_has_goes_ahead() {
    let c = Cluster::start(1, &[]).await;
    let id = c.boot("demo", "gold", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    // The trait on the compute's provider (an operator's `openstack
    // resource provider trait set`).
    let p = &c.all.placement;
    let rps = p.list_providers_async(None, None).await.unwrap();
    let rp = &rps.first().unwrap().uuid;
    let (generation, mut traits) = p.traits_async(rp).await.unwrap();
    traits.insert("CUSTOM_GOLD".into());
    p.add_custom_name_async(nova_placement::Custom::Traits, "CUSTOM_GOLD")
        .await
        .unwrap();
    p.set_traits_async(rp, generation, &traits).await.unwrap();
    let gold = second_image(&c, "gold", &[("trait:CUSTOM_GOLD", json!("required"))]);
    let r = c
        .post(
            &format!("/v2.1/servers/{id}/action"),
            "demo",
            json!({"rebuild": {"imageRef": gold}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(s["image"]["id"], json!(gold));
    c.stop().await;
}
