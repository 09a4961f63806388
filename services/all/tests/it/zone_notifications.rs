//! `aggregate.*` and `server_group.*` notifications, received by a real
//! Python oslo.messaging listener and compared with nova's samples (as
//! `notifications.rs` does for the instance events), and the legacy
//! `aggregate.*` / `servergroup.*` ones.

use reqwest::Method;
use serde_json::{Value, json};

use crate::notifications::{check_against_sample, notifying_cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_and_server_group_notifications_match_novas_samples() {
    let (_vhost, listener, c) = notifying_cluster("nova-rs-zones", 1, &[]).await;
    let r = c
        .post(
            "/v2.1/os-aggregates",
            "admin",
            json!({"aggregate": {"name": "agg", "availability_zone": "az1"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["aggregate"]["id"].as_i64().unwrap();
    let path = format!("/v2.1/os-aggregates/{id}/action");
    let action = |body: Value| c.post(&path, "admin", body);
    assert_eq!(
        action(json!({"add_host": {"host": "fake-compute-1"}}))
            .await
            .status,
        200
    );
    assert_eq!(
        action(json!({"set_metadata": {"metadata": {"ssd": "true"}}}))
            .await
            .status,
        200
    );
    let r = c
        .call(
            Method::PUT,
            &format!("/v2.1/os-aggregates/{id}"),
            "admin",
            "2.41",
            Some(json!({"aggregate": {"name": "agg-2"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        action(json!({"remove_host": {"host": "fake-compute-1"}}))
            .await
            .status,
        200
    );
    assert_eq!(
        c.delete(&format!("/v2.1/os-aggregates/{id}"), "admin")
            .await
            .status,
        200
    );
    let r = c
        .post("/v2.1/os-server-groups", "demo", json!({"server_group": {"name": "g", "policy": "anti-affinity", "rules": {"max_server_per_host": 3}}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let gid = r.body["server_group"]["id"].as_str().unwrap().to_owned();
    let r = c
        .post("/v2.1/servers", "demo", json!({"server": {"name": "member", "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none"},
            "os:scheduler_hints": {"group": gid}}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let sid = r.body["server"]["id"].as_str().unwrap().to_owned();
    c.wait_status("demo", &sid, "ACTIVE").await;
    c.delete(&format!("/v2.1/servers/{sid}"), "demo").await;
    c.wait_gone("demo", &sid).await;
    assert_eq!(
        c.delete(&format!("/v2.1/os-server-groups/{gid}"), "demo")
            .await
            .status,
        204
    );

    let versioned = [
        "aggregate.create.start",
        "aggregate.create.end",
        "aggregate.add_host.start",
        "aggregate.add_host.end",
        "aggregate.update_metadata.start",
        "aggregate.update_metadata.end",
        "aggregate.update_prop.start",
        "aggregate.update_prop.end",
        "aggregate.remove_host.start",
        "aggregate.remove_host.end",
        "aggregate.delete.start",
        "aggregate.delete.end",
        "server_group.create",
        "server_group.add_member",
        "server_group.delete",
    ];
    let legacy = [
        "aggregate.create.start",
        "aggregate.create.end",
        "aggregate.addhost.end",
        "aggregate.updatemetadata.end",
        "aggregate.updateprop.end",
        "aggregate.removehost.end",
        "aggregate.delete.end",
        "servergroup.create",
        "servergroup.addmember",
        "servergroup.delete",
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
                .is_some_and(|e| e.starts_with("aggregate.") || e.starts_with("server_group."))
    }) {
        errors.extend(check_against_sample(n));
    }
    assert!(
        errors.is_empty(),
        "differences from nova's samples:\n{}",
        errors.join("\n")
    );
    let find = |topic: &str, event: &str| {
        seen.iter()
            .find(|n| n["event_type"] == event && n["topic"] == topic)
            .unwrap()["payload"]
            .clone()
    };
    // What the payloads say is true.
    let added = find("versioned_notifications", "aggregate.add_host.end");
    assert_eq!(
        added["nova_object.data"]["hosts"],
        json!(["fake-compute-1"])
    );
    assert_eq!(
        added["nova_object.data"]["metadata"],
        json!({"availability_zone": "az1"})
    );
    let start = find("versioned_notifications", "aggregate.create.start");
    assert!(start["nova_object.data"]["id"].is_null());
    let member = find("versioned_notifications", "server_group.add_member");
    assert_eq!(member["nova_object.data"]["members"], json!([sid]));
    assert_eq!(
        member["nova_object.data"]["rules"],
        json!({"max_server_per_host": "3"})
    );
    let legacy_add = find("notifications", "aggregate.addhost.end");
    assert_eq!(legacy_add["host_name"], "fake-compute-1");
    assert_eq!(legacy_add["name"], "agg");
    let legacy_member = find("notifications", "servergroup.addmember");
    assert_eq!(legacy_member["instance_uuids"], json!([sid]));
    c.stop().await;
}
