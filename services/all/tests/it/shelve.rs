//! Shelving, snapshots and backups end to end on fake computes: the
//! snapshot image in the image service with nova's properties, the
//! offload (at once, never, or by the periodic task) freeing the host's
//! allocation, unshelve through the conductor and the scheduler (2.77
//! zone, 2.91 host), createImage / createBackup (2.45, rotation), and
//! driver failures.

use std::time::Duration;

use nova_objects::{Instance, ListQuery};
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

async fn instance(c: &Cluster, id: &str) -> Instance {
    c.all.objects.get_by_uuid(&admin(), id).await.unwrap()
}

/// Waits until the server's vm_state is `vm` with no task.
async fn wait_vm(c: &Cluster, id: &str, vm: &str) -> Instance {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let i = instance(c, id).await;
        if i.vm_state().as_deref() == Some(vm) && i.task_state().is_none() {
            return i;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server {id} in {:?}/{:?}, waiting for {vm}",
            i.vm_state(),
            i.task_state()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
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

/// Every guest on every fake compute.
async fn guests(c: &Cluster) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for comp in &c.all.computes {
        for u in comp
            .fake
            .clone()
            .unwrap()
            .list_instance_uuids()
            .await
            .unwrap()
        {
            out.push((comp.host.clone(), u));
        }
    }
    out
}

fn image(c: &Cluster, id: &str) -> Option<Value> {
    c.all.api.state.images.get(id)
}

/// Images whose `instance_uuid` is the server's.
fn images_of(c: &Cluster, id: &str) -> Vec<Value> {
    let dir = c.dir.join("images");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            if v["instance_uuid"] == json!(id) {
                out.push(v);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shelve_offloads_at_once_and_unshelve_schedules_again() {
    let c = Cluster::start(2, &[]).await;
    let id = c.boot("demo", "sh-1", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let host = instance(&c, &id).await.host().clone().unwrap();

    let r = act(&c, "demo", "2.1", &id, json!({"shelve": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let i = wait_vm(&c, &id, "shelved_offloaded").await;
    let s = c.wait_status("demo", &id, "SHELVED_OFFLOADED").await;
    assert_eq!(s["OS-EXT-STS:power_state"], 0);
    // Offloaded: no host, no guest, no allocation.
    assert!(i.host().is_none() && i.node().is_none(), "{:?}", i.host());
    assert!(allocated_on(&c, &id).await.is_empty());
    assert!(guests(&c).await.iter().all(|(_, u)| *u != id));
    // The snapshot: `<name>-shelved`, active, with nova's properties.
    let image_id = i
        .system_metadata()
        .get("shelved_image_id")
        .cloned()
        .flatten()
        .unwrap();
    assert_eq!(
        i.system_metadata().get("shelved_host"),
        Some(&Some(host.clone()))
    );
    let img = image(&c, &image_id).expect("shelved image");
    assert_eq!(img["name"], "sh-1-shelved");
    assert_eq!(img["status"], "active");
    assert_eq!(img["image_type"], "snapshot");
    assert_eq!(img["instance_uuid"], json!(id));
    assert_eq!(img["base_image_ref"], nova_all::FAKE_IMAGE_ID);
    assert_eq!(img["visibility"], "private");
    assert_eq!(img["disk_format"], "raw");
    assert!(img["size"].as_u64().unwrap() > 0);

    // Unshelve: scheduled and claimed again, spawned from the snapshot,
    // which is then deleted.
    let r = act(&c, "demo", "2.1", &id, json!({"unshelve": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let i = wait_vm(&c, &id, "active").await;
    let now = i.host().clone().unwrap();
    assert_eq!(allocated_on(&c, &id).await, vec![node_of(&c, &now).await]);
    assert!(guests(&c).await.contains(&(now.clone(), id.clone())));
    assert!(image(&c, &image_id).is_none());
    assert!(!i.system_metadata().contains_key("shelved_image_id"));
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/servers/{id}/os-instance-actions"),
            "demo",
            "2.1",
            None,
        )
        .await;
    let names: Vec<&str> = r.body["instanceActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(names[..2], ["unshelve", "shelve"]);
    // Refused: unshelve of an active server, shelveOffload by a member.
    let r = act(&c, "demo", "2.1", &id, json!({"unshelve": null})).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.fault().1,
        format!("Cannot 'unshelve' instance {id} while it is in vm_state active")
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shelved_servers_stay_until_offloaded_and_unshelve_where_asked() {
    let c = Cluster::start(2, &[("DEFAULT", "shelved_offload_time", "-1")]).await;
    let id = c.boot("demo", "sh-2", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let host = instance(&c, &id).await.host().clone().unwrap();
    let node = node_of(&c, &host).await;
    let r = act(&c, "demo", "2.1", &id, json!({"shelve": {}})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let i = wait_vm(&c, &id, "shelved").await;
    // Still on its host, powered off, its allocation kept.
    assert_eq!(i.host().as_deref(), Some(host.as_str()));
    assert_eq!(*i.power_state(), Some(4));
    assert_eq!(allocated_on(&c, &id).await, vec![node.clone()]);
    let image_id = i
        .system_metadata()
        .get("shelved_image_id")
        .cloned()
        .flatten()
        .unwrap();
    // Zone and host are for offloaded servers only.
    let r = act(
        &c,
        "admin",
        "2.91",
        &id,
        json!({"unshelve": {"host": host}}),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    // Unshelve in place: powered on, the snapshot deleted.
    let r = act(&c, "demo", "2.1", &id, json!({"unshelve": null})).await;
    assert_eq!(r.status, 202);
    let i = wait_vm(&c, &id, "active").await;
    assert_eq!(i.host().as_deref(), Some(host.as_str()));
    assert_eq!(allocated_on(&c, &id).await, vec![node.clone()]);
    assert!(image(&c, &image_id).is_none());

    // shelveOffload is the admins'.
    let r = act(&c, "demo", "2.1", &id, json!({"shelve": null})).await;
    assert_eq!(r.status, 202);
    wait_vm(&c, &id, "shelved").await;
    let r = act(&c, "demo", "2.1", &id, json!({"shelveOffload": null})).await;
    assert_eq!(r.status, 403);
    let r = act(&c, "admin", "2.1", &id, json!({"shelveOffload": null})).await;
    assert_eq!(r.status, 202);
    wait_vm(&c, &id, "shelved_offloaded").await;
    assert!(allocated_on(&c, &id).await.is_empty());

    // 2.77: an unknown zone is refused, nothing changes.
    let r = act(
        &c,
        "demo",
        "2.77",
        &id,
        json!({"unshelve": {"availability_zone": "nowhere"}}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(instance(&c, &id).await.task_state().is_none());
    // 2.91: to the other host, as an admin.
    let other = c
        .all
        .computes
        .iter()
        .map(|x| x.host.clone())
        .find(|h| *h != host)
        .unwrap();
    let r = act(
        &c,
        "demo",
        "2.91",
        &id,
        json!({"unshelve": {"host": other}}),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = act(
        &c,
        "admin",
        "2.91",
        &id,
        json!({"unshelve": {"host": other, "availability_zone": null}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let i = wait_vm(&c, &id, "active").await;
    assert_eq!(i.host().as_deref(), Some(other.as_str()));
    assert_eq!(allocated_on(&c, &id).await, vec![node_of(&c, &other).await]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_task_offloads_after_shelved_offload_time() {
    let c = Cluster::start(
        1,
        &[
            ("DEFAULT", "shelved_offload_time", "1"),
            ("DEFAULT", "shelved_poll_interval", "1"),
        ],
    )
    .await;
    let id = c.boot("demo", "sh-3", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let r = act(&c, "demo", "2.1", &id, json!({"shelve": null})).await;
    assert_eq!(r.status, 202);
    wait_vm(&c, &id, "shelved").await;
    assert_eq!(allocated_on(&c, &id).await.len(), 1);
    let i = wait_vm(&c, &id, "shelved_offloaded").await;
    assert!(i.host().is_none());
    // As nova's `_shelve_offload_instance`, the allocation goes after the
    // instance is saved offloaded and hostless: soon, not at once.
    crate::interfaces::eventually("the offloaded server's allocation is removed", || async {
        allocated_on(&c, &id).await.is_empty()
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_image_and_backups_upload_into_the_image_service() {
    let c = Cluster::start(1, &[]).await;
    let id = c.boot("demo", "img-1", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let host = instance(&c, &id).await.host().clone().unwrap();
    let node = node_of(&c, &host).await;

    // 2.45: the image id in the body.
    let r = act(
        &c,
        "demo",
        "2.45",
        &id,
        json!({"createImage": {"name": "snap-1", "metadata": {"purpose": "test"}}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let snap = r.body["image_id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while image(&c, &snap).unwrap()["status"] != "active" {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let img = image(&c, &snap).unwrap();
    assert_eq!(img["name"], "snap-1");
    assert_eq!(img["purpose"], "test");
    assert_eq!(img["image_type"], "snapshot");
    assert_eq!(img["instance_uuid"], json!(id));
    assert_eq!(img["user_id"], "demo");
    assert_eq!(img["base_image_ref"], nova_all::FAKE_IMAGE_ID);
    let i = wait_vm(&c, &id, "active").await;
    assert!(i.task_state().is_none());
    assert_eq!(allocated_on(&c, &id).await, vec![node.clone()]);
    // Before 2.45: the Location header.
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"createImage": {"name": "snap-2"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let loc = r.headers["location"].to_str().unwrap().to_owned();
    assert!(loc.contains("/images/"), "{loc}");
    wait_vm(&c, &id, "active").await;

    // Backups: rotation 2 keeps the newest two.
    let mut backups = Vec::new();
    for n in 0..3 {
        let r = act(
            &c,
            "demo",
            "2.45",
            &id,
            json!({"createBackup": {"name": format!("b-{n}"), "backup_type": "daily", "rotation": 2}}),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.body);
        backups.push(r.body["image_id"].as_str().unwrap().to_owned());
        wait_vm(&c, &id, "active").await;
        // Glance's created_at is to the second: the next backup is newer.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while image(&c, &backups[0]).is_some() {
        assert!(tokio::time::Instant::now() < deadline, "oldest backup kept");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for b in &backups[1..] {
        let img = image(&c, b).unwrap();
        assert_eq!(img["image_type"], "backup");
        assert_eq!(img["backup_type"], "daily");
    }
    let left: Vec<Value> = images_of(&c, &id)
        .into_iter()
        .filter(|i| i["image_type"] == "backup")
        .collect();
    assert_eq!(left.len(), 2);

    // A failing snapshot: the image deleted, a fault, the server active.
    let fake = c.all.compute(&host).unwrap().fake.clone().unwrap();
    fake.set_faults(Faults {
        fail_operations: vec!["snapshot".into()],
        ..Faults::default()
    });
    let r = act(
        &c,
        "demo",
        "2.45",
        &id,
        json!({"createImage": {"name": "snap-bad"}}),
    )
    .await;
    assert_eq!(r.status, 202);
    let bad = r.body["image_id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while image(&c, &bad).is_some() {
        assert!(tokio::time::Instant::now() < deadline, "failed image kept");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let i = wait_vm(&c, &id, "active").await;
    assert!(i.task_state().is_none());
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
            .any(|f| f.message().as_deref().unwrap_or("").contains("Snapshot")),
        "{faults:?}"
    );
    // Refused: a paused server can be imaged, a rescued one cannot.
    fake.set_faults(Faults::default());
    let r = act(&c, "demo", "2.1", &id, json!({"rescue": null})).await;
    assert_eq!(r.status, 200);
    wait_vm(&c, &id, "rescued").await;
    let r = act(
        &c,
        "demo",
        "2.45",
        &id,
        json!({"createImage": {"name": "no"}}),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_unshelve_ends_in_error_without_an_allocation() {
    let c = Cluster::start(1, &[]).await;
    let id = c.boot("demo", "sh-4", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let host = instance(&c, &id).await.host().clone().unwrap();
    let r = act(&c, "demo", "2.1", &id, json!({"shelve": null})).await;
    assert_eq!(r.status, 202);
    let i = wait_vm(&c, &id, "shelved_offloaded").await;
    let image_id = i
        .system_metadata()
        .get("shelved_image_id")
        .cloned()
        .flatten()
        .unwrap();
    let fake = c.all.compute(&host).unwrap().fake.clone().unwrap();
    fake.set_faults(Faults {
        fail_spawn_for_image: Some(image_id.clone()),
        ..Faults::default()
    });
    let r = act(&c, "demo", "2.1", &id, json!({"unshelve": null})).await;
    assert_eq!(r.status, 202);
    let i = wait_vm(&c, &id, "error").await;
    assert!(i.host().is_none());
    assert!(allocated_on(&c, &id).await.is_empty());
    assert!(guests(&c).await.is_empty());
    c.stop().await;
}
