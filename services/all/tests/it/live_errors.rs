//! How a live migration's failure leaves the server, as nova's conductor
//! decides it (`ComputeTaskManager._live_migrate`): an expected failure
//! (no host takes it: `NoValidHost`) keeps it ACTIVE with no task state;
//! any other (the guest gone from its hypervisor: the source's check
//! raises `InstanceNotFound`) puts it in ERROR. Both send
//! `compute_task.migrate_server.error` (compared with nova's sample) and
//! the legacy `compute_task.migrate_server` whose `reason` is the
//! exception's `repr` as oslo's serializer sends it. Placement's books
//! stay right after both.

use nova_virt::Faults;
use serde_json::{Value, json};

use crate::moves::{
    act, assert_books, boot_active, fake, faults_of, host_of, wait_for, wait_migration, wait_stable,
};
use crate::notifications::{check_against_sample, notifying_cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_migration_failures_keep_the_server_or_put_it_in_error_as_nova() {
    let (_vhost, listener, c) = notifying_cluster("nova-rs-live-errors", 2, &[]).await;
    let live = json!({"os-migrateLive": {"host": null, "block_migration": "auto"}});

    // Expected: the only other host refuses in its checks, no host is left.
    let (kept, src) = boot_active(&c, "kept", "1").await;
    let other = c
        .all
        .computes
        .iter()
        .map(|h| h.host.clone())
        .find(|h| *h != src)
        .unwrap();
    fake(&c, &other).set_faults(Faults {
        fail_operations: vec!["check_can_live_migrate_destination".into()],
        ..Faults::default()
    });
    let r = act(&c, "admin", "2.25", &kept, live.clone()).await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_migration(&c, &kept, "error").await;
    let s = wait_stable(&c, &kept, "ACTIVE").await;
    assert_eq!(host_of(&s), src);
    assert_books(&c).await;
    // The fault's code is `exc.kwargs['code']`: NoValidHost is a plain
    // NovaException, 500 (nova's `exception_to_dict`).
    let faults: Vec<nova_objects::InstanceFault> = c
        .all
        .objects
        .list(
            &nova_service::context::admin(),
            &nova_objects::ListQuery::new().filter("instance_uuid", kept.as_str()),
        )
        .await
        .unwrap();
    let no_host: Vec<i64> = faults
        .iter()
        .filter(|f| {
            f.message()
                .as_deref()
                .is_some_and(|m| m.starts_with("No valid host was found."))
        })
        .map(|f| *f.code())
        .collect();
    assert_eq!(no_host, vec![500], "{faults:?}");
    fake(&c, &other).set_faults(Faults::default());

    // Unexpected: the guest is gone from the source's hypervisor; the
    // source's check raises InstanceNotFound through the destination.
    let (lost, lost_src) = boot_active(&c, "lost", "1").await;
    assert!(fake(&c, &lost_src).lose_instance(&lost));
    let r = act(&c, "admin", "2.25", &lost, live).await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_migration(&c, &lost, "error").await;
    let s = wait_for(&c, &lost, "ERROR", |s| {
        s["status"] == "ERROR" && s["OS-EXT-STS:task_state"].is_null()
    })
    .await;
    assert_eq!(host_of(&s), lost_src, "it never left its host");
    assert_eq!(s["fault"]["code"], 404, "{}", s["fault"]);
    assert!(
        faults_of(&c, &lost)
            .await
            .iter()
            .any(|f| f == &format!("Instance {lost} could not be found.")),
        "{:?}",
        faults_of(&c, &lost).await
    );
    assert_books(&c).await;

    let seen = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for id in [kept.clone(), lost.clone()] {
            for topic in ["versioned_notifications", "notifications"] {
                listener.until_one(&mut seen, "migrate_server error", |n: &Value| {
                    n["topic"] == topic
                        && n["event_type"]
                            .as_str()
                            .is_some_and(|e| e.starts_with("compute_task.migrate_server"))
                        && (n["payload"]["nova_object.data"]["instance_uuid"] == json!(id)
                            || n["payload"]["instance_id"] == json!(id))
                });
            }
        }
        (seen, kept, lost)
    })
    .await
    .unwrap();
    let (seen, kept, lost) = seen;
    let find = |topic: &str, id: &str| -> Value {
        seen.iter()
            .find(|n| {
                n["topic"] == topic
                    && n["event_type"]
                        .as_str()
                        .is_some_and(|e| e.starts_with("compute_task.migrate_server"))
                    && (n["payload"]["nova_object.data"]["instance_uuid"] == json!(id)
                        || n["payload"]["instance_id"] == json!(id))
            })
            .cloned()
            .unwrap()
    };
    for id in [&kept, &lost] {
        let n = find("versioned_notifications", id);
        assert_eq!(n["event_type"], "compute_task.migrate_server.error");
        let errors = check_against_sample(&n);
        assert!(
            errors.is_empty(),
            "differences from nova's sample:\n{}",
            errors.join("\n")
        );
    }
    let v = find("versioned_notifications", &kept);
    assert_eq!(v["payload"]["nova_object.data"]["state"], "active");
    // A live migration's request spec as nova's `_live_migrate` passes it
    // (`{'instance_properties': {'uuid': …}}`), hydrated by
    // `RequestSpec.from_primitives` (nova 34's payload, printed by nova).
    assert_eq!(
        v["payload"]["nova_object.data"]["request_spec"]["nova_object.data"],
        json!({
            "instance_uuid": kept, "project_id": null, "user_id": null,
            "availability_zone": null, "flavor": null, "force_hosts": null,
            "force_nodes": null, "ignore_hosts": null, "instance_group": null,
            "image": null, "numa_topology": null, "pci_requests": null,
            "num_instances": 1, "requested_destination": null, "retry": null,
            "scheduler_hints": {}, "security_groups": []
        })
    );
    assert_eq!(
        v["payload"]["nova_object.data"]["reason"]["nova_object.data"]["exception"],
        "NoValidHost"
    );
    let v = find("versioned_notifications", &lost);
    assert_eq!(v["payload"]["nova_object.data"]["state"], "error");
    assert_eq!(
        v["payload"]["nova_object.data"]["reason"]["nova_object.data"]["exception"],
        "InstanceNotFound_Remote"
    );
    // The legacy payloads: the exception's repr, kwargs with nova's code.
    let l = find("notifications", &kept);
    assert_eq!(l["event_type"], "compute_task.migrate_server");
    assert_eq!(l["payload"]["state"], "active");
    assert_eq!(
        l["payload"]["request_spec"],
        json!({"instance_properties": {"uuid": kept}})
    );
    assert_eq!(l["payload"]["instance_properties"], json!({"uuid": kept}));
    let reason = l["payload"]["reason"].as_str().unwrap();
    assert_eq!(
        reason,
        "{'kwargs': {'reason': 'There are not enough hosts available.', 'code': 500}, 'message': 'No valid host was found. There are not enough hosts available.', 'class': 'NoValidHost'}"
    );
    let l = find("notifications", &lost);
    assert_eq!(l["payload"]["state"], "error");
    assert_eq!(
        l["payload"]["reason"],
        format!(
            "{{'kwargs': {{'instance_id': '{lost}', 'code': 404}}, 'message': 'Instance {lost} could not be found.', 'class': 'InstanceNotFound_Remote'}}"
        )
    );
    c.stop().await;
}
