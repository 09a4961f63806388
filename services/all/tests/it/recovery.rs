//! Crashes and restarts: every build ends ACTIVE or ERROR, an interrupted
//! delete finishes, and no allocation outlives its instance — without an
//! operator (nova's `instance_build_timeout`, `init_host` recovery, the
//! resource tracker's healing).

use std::time::Duration;

use nova_objects::{Instance, Objects};
use nova_service::states::{TaskState, VmState};
use serde_json::json;

use crate::cluster::Cluster;

fn admin() -> nova_rpc::RequestContext {
    nova_service::context::admin()
}

async fn instance(objects: &Objects, id: &str) -> Instance {
    objects.get_by_uuid::<Instance>(&admin(), id).await.unwrap()
}

/// Leaves `id` as a crash while it was waiting to be scheduled would:
/// building, no host, its allocation held.
async fn make_unscheduled(c: &Cluster, id: &str) {
    let mut inst = instance(&c.all.objects, id).await;
    inst.set_vm_state(Some(VmState::Building.into()));
    inst.set_task_state(Some(TaskState::Scheduling.into()));
    inst.set_host(None);
    inst.set_node(None);
    inst.set_launched_at(None);
    c.all.objects.save(&admin(), &mut inst).await.unwrap();
}

async fn allocated(c: &Cluster, id: &str) -> bool {
    !c.all
        .placement
        .allocations_async(id)
        .await
        .unwrap()
        .allocations
        .is_empty()
}

/// Polls until `id` shows `status`, for up to `secs`.
async fn wait_for(c: &Cluster, id: &str, status: &str, secs: u64) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let r = c.get(&format!("/v2.1/servers/{id}"), "admin").await;
        if r.body["server"]["status"] == json!(status) {
            return r.body["server"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server {id} not {status}: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_build_lost_in_a_restart_ends_in_error_and_releases_its_allocation() {
    let c = Cluster::start(1, &[]).await;
    let id = c.boot("admin", "lost", "1").await;
    c.wait_status("admin", &id, "ACTIVE").await;
    make_unscheduled(&c, &id).await;
    assert!(allocated(&c, &id).await);
    let dir = c.stop_keeping_state().await;

    // The memory transport's queues died with the process: the conductor
    // that starts again ends the build.
    let c = Cluster::start_in(dir, 1, &[]).await;
    let server = wait_for(&c, &id, "ERROR", 10).await;
    assert!(
        server["fault"]["message"]
            .as_str()
            .unwrap()
            .contains("build request was lost"),
        "{server}"
    );
    assert!(!allocated(&c, &id).await, "the allocation was released");
    // It can be deleted.
    assert_eq!(
        c.delete(&format!("/v2.1/servers/{id}"), "admin")
            .await
            .status,
        204
    );
    c.wait_gone("admin", &id).await;
    c.stop().await;
}

#[tokio::test]
async fn builds_older_than_instance_build_timeout_end_in_error() {
    let c = Cluster::start(1, &[("DEFAULT", "instance_build_timeout", "2")]).await;
    // One still waiting for a host (the conductor's watch), one its
    // compute holds as spawning (the compute's).
    let waiting = c.boot("admin", "waiting", "1").await;
    let spawning = c.boot("admin", "spawning", "1").await;
    c.wait_status("admin", &waiting, "ACTIVE").await;
    c.wait_status("admin", &spawning, "ACTIVE").await;
    make_unscheduled(&c, &waiting).await;
    let mut inst = instance(&c.all.objects, &spawning).await;
    inst.set_vm_state(Some(VmState::Building.into()));
    inst.set_task_state(Some(TaskState::Spawning.into()));
    c.all.objects.save(&admin(), &mut inst).await.unwrap();

    for id in [&waiting, &spawning] {
        let server = wait_for(&c, id, "ERROR", 10).await;
        assert_eq!(
            server["fault"]["message"],
            json!("Instance build timed out. Set to error state."),
            "{server}"
        );
    }
    assert!(!allocated(&c, &waiting).await);
    // A fresh build is not touched.
    let fresh = c.boot("admin", "fresh", "1").await;
    c.wait_status("admin", &fresh, "ACTIVE").await;
    c.stop().await;
}

#[tokio::test]
async fn a_delete_interrupted_by_a_crash_is_finished_by_repeating_it() {
    let c = Cluster::start(1, &[]).await;
    let id = c.boot("admin", "half-deleted", "1").await;
    c.wait_status("admin", &id, "ACTIVE").await;
    // The API saved `deleting`, then its cast was lost.
    let mut inst = instance(&c.all.objects, &id).await;
    inst.set_task_state(Some(TaskState::Deleting.into()));
    c.all.objects.save(&admin(), &mut inst).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = c.get(&format!("/v2.1/servers/{id}"), "admin").await;
    assert_eq!(r.body["server"]["OS-EXT-STS:task_state"], json!("deleting"));

    assert_eq!(
        c.delete(&format!("/v2.1/servers/{id}"), "admin")
            .await
            .status,
        204
    );
    c.wait_gone("admin", &id).await;
    assert!(!allocated(&c, &id).await);
    assert_eq!(c.total_usage("MEMORY_MB").await, 0);
    c.stop().await;
}

#[tokio::test]
async fn a_delete_interrupted_by_a_crash_is_finished_by_the_restart() {
    let c = Cluster::start(1, &[]).await;
    let id = c.boot("admin", "half-deleted", "1").await;
    c.wait_status("admin", &id, "ACTIVE").await;
    let mut inst = instance(&c.all.objects, &id).await;
    inst.set_task_state(Some(TaskState::Deleting.into()));
    c.all.objects.save(&admin(), &mut inst).await.unwrap();
    let dir = c.stop_keeping_state().await;

    let c = Cluster::start_in(dir, 1, &[]).await;
    c.wait_gone("admin", &id).await;
    assert!(!allocated(&c, &id).await);
    c.stop().await;
}

/// Re-creates the allocation `id` held (as a scheduler claiming for an
/// instance deleted meanwhile would) after `id` is deleted.
async fn allocation_outliving(c: &Cluster, id: &str) {
    let held = c.all.placement.allocations_async(id).await.unwrap();
    assert!(!held.allocations.is_empty());
    assert_eq!(
        c.delete(&format!("/v2.1/servers/{id}"), "admin")
            .await
            .status,
        204
    );
    c.wait_gone("admin", id).await;
    assert!(!allocated(c, id).await);
    c.all
        .placement
        .put_allocations_async(id, &held.allocations, &held.project_id, &held.user_id, None)
        .await
        .unwrap();
    assert!(allocated(c, id).await);
}

#[tokio::test]
async fn the_allocation_of_an_instance_deleted_while_scheduled_is_healed() {
    let c = Cluster::start(1, &[]).await;
    let gone = c.boot("admin", "gone", "1").await;
    let kept = c.boot("admin", "kept", "1").await;
    c.wait_status("admin", &gone, "ACTIVE").await;
    c.wait_status("admin", &kept, "ACTIVE").await;
    allocation_outliving(&c, &gone).await;

    // The resource tracker's periodic pass heals it; the live server's stays.
    c.all.computes[0]
        .manager
        .update_available_resource()
        .await
        .unwrap();
    assert!(
        !allocated(&c, &gone).await,
        "the deleted instance's allocation is gone"
    );
    assert!(
        allocated(&c, &kept).await,
        "a live server's allocation stays"
    );
    c.stop().await;
}

#[tokio::test]
async fn placement_audit_finds_and_deletes_the_allocation_of_a_deleted_instance() {
    let c = Cluster::start(1, &[]).await;
    let gone = c.boot("admin", "gone", "1").await;
    let kept = c.boot("admin", "kept", "1").await;
    c.wait_status("admin", &gone, "ACTIVE").await;
    c.wait_status("admin", &kept, "ACTIVE").await;
    allocation_outliving(&c, &gone).await;

    let found = nova_manage::placement::audit(&c.all.objects, &c.all.placement, false)
        .await
        .unwrap();
    assert_eq!(found.count, 1, "{:?}", found.lines);
    assert!(found.lines[0].contains(&gone));
    let done = nova_manage::placement::audit(&c.all.objects, &c.all.placement, true)
        .await
        .unwrap();
    assert_eq!(done.count, 1);
    assert!(!allocated(&c, &gone).await);
    assert!(allocated(&c, &kept).await);
    c.stop().await;
}

#[tokio::test]
async fn after_a_restart_a_compute_that_did_not_come_back_gets_no_build() {
    let c = Cluster::start(2, &[("DEFAULT", "service_down_time", "30")]).await;
    let dir = c.stop_keeping_state().await;
    // fake-compute-2 does not start again; its last heartbeat is seconds
    // old, within service_down_time, but from the previous process.
    let c = Cluster::start_in(dir, 1, &[("DEFAULT", "service_down_time", "30")]).await;
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(c.boot("admin", &format!("after-restart-{n}"), "1").await);
    }
    for id in &ids {
        let s = c.wait_status("admin", id, "ACTIVE").await;
        assert_eq!(s["OS-EXT-SRV-ATTR:host"], json!("fake-compute-1"));
    }
    c.stop().await;
}

#[tokio::test]
async fn a_server_on_a_compute_nobody_serves_is_deleted_at_once() {
    // Its record says up for a minute more; on the memory transport no
    // one will ever take a cast to it.
    let c = Cluster::start(2, &[("DEFAULT", "service_down_time", "60")]).await;
    let r = c
        .call(
            reqwest::Method::POST,
            "/v2.1/servers",
            "admin",
            "2.74",
            Some(json!({"server": {"name": "orphan", "flavorRef": "1",
                "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none",
                "hypervisor_hostname": "fake-compute-2"}})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_owned();
    c.wait_status("admin", &id, "ACTIVE").await;
    let mut c = c;
    c.all.stop_compute("fake-compute-2").await;
    assert_eq!(
        c.delete(&format!("/v2.1/servers/{id}"), "admin")
            .await
            .status,
        204
    );
    c.wait_gone("admin", &id).await;
    assert!(!allocated(&c, &id).await);
    c.stop().await;
}
