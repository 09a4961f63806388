//! Evacuate end to end on fake computes: refused while the source compute
//! is up, by members, to the same host; from a forced-down or stopped
//! compute through the scheduler (the destination claimed next to the
//! source allocation) or to a named host; the `evacuation` Migration;
//! and the source compute, back, cleaning up (its allocation removed,
//! the Migration completed).

use std::time::Duration;

use nova_objects::{Instance, ListQuery, Migration};
use nova_rpc::RequestContext;
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

async fn allocated_on(c: &Cluster, id: &str) -> Vec<String> {
    let a = c.all.placement.allocations_async(id).await.unwrap();
    let mut v: Vec<String> = a.allocations.keys().map(|k| k.to_string()).collect();
    v.sort();
    v
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

async fn migrations(c: &Cluster, id: &str) -> Vec<Migration> {
    c.all
        .objects
        .list(&admin(), &ListQuery::new().filter("instance_uuid", id))
        .await
        .unwrap()
}

pub(crate) async fn force_down(c: &Cluster, host: &str, down: bool) {
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
            Some(json!({"forced_down": down})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn wait_on(c: &Cluster, id: &str, host: &str, vm: &str) -> Instance {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let i = instance(c, id).await;
        if i.host().as_deref() == Some(host)
            && i.vm_state().as_deref() == Some(vm)
            && i.task_state().is_none()
        {
            return i;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id}: {:?} {:?} {:?}",
            i.host(),
            i.vm_state(),
            i.task_state()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evacuate_from_a_failed_host_and_clean_up_when_it_returns() {
    let mut c = Cluster::start(2, &[]).await;
    let id = c.boot("demo", "ev-1", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let src = instance(&c, &id).await.host().clone().unwrap();
    let dst = c
        .all
        .computes
        .iter()
        .map(|x| x.host.clone())
        .find(|h| *h != src)
        .unwrap();
    let (src_node, dst_node) = (node_of(&c, &src).await, node_of(&c, &dst).await);

    // Refused: the source is up; members; the same host.
    let r = act(&c, "admin", "2.29", &id, json!({"evacuate": {}})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.fault().1,
        format!("Compute service of {src} is still in use.")
    );
    let r = act(&c, "demo", "2.29", &id, json!({"evacuate": {}})).await;
    assert_eq!(r.status, 403);
    let r = act(&c, "admin", "2.29", &id, json!({"evacuate": {"host": src}})).await;
    assert_eq!(r.status, 400);
    let r = act(
        &c,
        "admin",
        "2.29",
        &id,
        json!({"evacuate": {"host": "no-such-host"}}),
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(migrations(&c, &id).await.is_empty());
    assert!(instance(&c, &id).await.task_state().is_none());

    // The source fails: its compute stops (and is forced down).
    c.all.stop_compute(&src).await;
    force_down(&c, &src, true).await;
    let r = act(&c, "admin", "2.29", &id, json!({"evacuate": {}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let i = wait_on(&c, &id, &dst, "active").await;
    assert_eq!(*i.power_state(), Some(1));
    // Both allocations until the source comes back (as nova).
    let mut both = vec![src_node.clone(), dst_node.clone()];
    both.sort();
    assert_eq!(allocated_on(&c, &id).await, both);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let m = loop {
        let m = migrations(&c, &id).await;
        if m.iter().all(|m| m.status().as_deref() == Some("done")) {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "{m:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].migration_type(), "evacuation");
    assert_eq!(m[0].source_compute().as_deref(), Some(src.as_str()));
    assert_eq!(m[0].dest_compute().as_deref(), Some(dst.as_str()));
    assert_eq!(m[0].status().as_deref(), Some("done"));
    let dst_fake = c.all.compute(&dst).unwrap().fake.clone().unwrap();
    use nova_virt::ComputeDriver as _;
    assert!(dst_fake.list_instance_uuids().await.unwrap().contains(&id));
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/servers/{id}/os-instance-actions"),
            "admin",
            "2.1",
            None,
        )
        .await;
    assert_eq!(r.body["instanceActions"][0]["action"], "evacuate");

    // The source returns: it cleans up what was evacuated from it.
    force_down(&c, &src, false).await;
    c.all
        .add_computes(std::slice::from_ref(&src))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while allocated_on(&c, &id).await != vec![dst_node.clone()] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "source allocation kept"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let m = migrations(&c, &id).await;
    assert_eq!(m[0].status().as_deref(), Some("completed"));
    assert_eq!(
        instance(&c, &id).await.host().as_deref(),
        Some(dst.as_str())
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evacuate_to_a_named_host_and_to_shutoff_at_2_95() {
    let c = Cluster::start(3, &[]).await;
    let id = c.boot("demo", "ev-2", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let src = instance(&c, &id).await.host().clone().unwrap();
    let others: Vec<String> = c
        .all
        .computes
        .iter()
        .map(|x| x.host.clone())
        .filter(|h| *h != src)
        .collect();
    force_down(&c, &src, true).await;
    // 2.29 force: straight to the host, its allocation claimed there.
    let target = others[1].clone();
    // The target is in another zone: the server follows its host there.
    let r = c
        .post(
            "/v2.1/os-aggregates",
            "admin",
            json!({"aggregate": {"name": "ev-zone", "availability_zone": "az-ev"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let agg = r.body["aggregate"]["id"].as_i64().unwrap();
    let r = c
        .post(
            &format!("/v2.1/os-aggregates/{agg}/action"),
            "admin",
            json!({"add_host": {"host": target}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = act(
        &c,
        "admin",
        "2.29",
        &id,
        json!({"evacuate": {"host": target, "force": true}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let i = wait_on(&c, &id, &target, "active").await;
    assert_eq!(i.availability_zone().as_deref(), Some("az-ev"));
    let r = c.get(&format!("/v2.1/servers/{id}"), "admin").await;
    assert_eq!(r.body["server"]["OS-EXT-AZ:availability_zone"], "az-ev");
    let mut want = vec![node_of(&c, &src).await, node_of(&c, &target).await];
    want.sort();
    assert_eq!(allocated_on(&c, &id).await, want);

    // 2.95: the evacuated server lands stopped (the scheduler picks the
    // named host as its requested destination).
    force_down(&c, &target, true).await;
    let back = others[0].clone();
    let r = act(
        &c,
        "admin",
        "2.95",
        &id,
        json!({"evacuate": {"host": back}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.is_null(), "{}", r.body);
    let i = wait_on(&c, &id, &back, "stopped").await;
    assert_eq!(*i.power_state(), Some(4));
    assert_eq!(
        i.availability_zone().as_deref(),
        Some("nova"),
        "the default zone again"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_evacuation_leaves_the_server_on_its_host_in_error() {
    let c = Cluster::start(2, &[]).await;
    let id = c.boot("demo", "ev-3", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let src = instance(&c, &id).await.host().clone().unwrap();
    let dst = c
        .all
        .computes
        .iter()
        .map(|x| x.host.clone())
        .find(|h| *h != src)
        .unwrap();
    let src_node = node_of(&c, &src).await;
    force_down(&c, &src, true).await;
    // The destination's spawn fails: ERROR, back on the source with its
    // allocation only, the Migration failed.
    let fake = c.all.compute(&dst).unwrap().fake.clone().unwrap();
    fake.set_faults(nova_virt::Faults {
        fail_spawn_for_image: Some(nova_all::FAKE_IMAGE_ID.into()),
        ..nova_virt::Faults::default()
    });
    let r = act(&c, "admin", "2.29", &id, json!({"evacuate": {}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let i = wait_on(&c, &id, &src, "error").await;
    let _ = i;
    assert_eq!(allocated_on(&c, &id).await, vec![src_node.clone()]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while migrations(&c, &id).await[0].status().as_deref() != Some("failed") {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // No other host at all: NoValidHost, ERROR, the Migration in error.
    force_down(&c, &dst, true).await;
    // The scheduler's view of the services is at most a second old.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = act(&c, "admin", "2.29", &id, json!({"evacuate": {}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = migrations(&c, &id).await;
        if m.iter().any(|m| m.status().as_deref() == Some("error")) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{m:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let i = wait_on(&c, &id, &src, "error").await;
    assert!(i.task_state().is_none());
    assert_eq!(allocated_on(&c, &id).await, vec![src_node]);
    c.stop().await;
}
