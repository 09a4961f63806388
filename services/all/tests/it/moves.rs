//! Moves end to end on fake computes: resize (confirm, revert, the
//! automatic confirmation), cold migration (2.56 target host), live
//! migration (scheduled, forced, aborted, forced to complete), each
//! failure point (a refused prep rescheduled or exhausted, a disk that
//! cannot shrink, the destination failing to finish, the destination
//! refusing a live migration), the refusals with nothing written, and
//! `os-migrations` / `/servers/{id}/migrations` per microversion. Every
//! test ends with Placement's books checked: each live server has
//! exactly one allocation, against its current host's node, and no
//! other consumer (a migration's) is left.

use std::collections::BTreeMap;
use std::time::Duration;

use nova_objects::{InstanceFault, ListQuery};
use nova_virt::Faults;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::{Cluster, Reply};

pub(crate) async fn act(c: &Cluster, user: &str, mv: &str, id: &str, body: Value) -> Reply {
    c.call(
        Method::POST,
        &format!("/v2.1/servers/{id}/action"),
        user,
        mv,
        Some(body),
    )
    .await
}

/// The server as admin sees it.
pub(crate) async fn server(c: &Cluster, id: &str) -> Value {
    let r = c.get(&format!("/v2.1/servers/{id}"), "admin").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["server"].clone()
}

pub(crate) fn host_of(s: &Value) -> String {
    s["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits until `f` holds for the server (admin view), 20 s at most.
pub(crate) async fn wait_for(
    c: &Cluster,
    id: &str,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = server(c, id).await;
        if f(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server {id} never got {what}: status {} task {} fault {}",
            s["status"],
            s["OS-EXT-STS:task_state"],
            s["fault"]
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub(crate) async fn wait_stable(c: &Cluster, id: &str, status: &str) -> Value {
    wait_for(c, id, status, |s| {
        s["status"] == status && s["OS-EXT-STS:task_state"].is_null()
    })
    .await
}

/// The migrations of a server (`os-migrations`, newest first).
async fn migrations_of(c: &Cluster, id: &str) -> Vec<Value> {
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/os-migrations?instance_uuid={id}"),
            "admin",
            "2.80",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["migrations"].as_array().unwrap().clone()
}

/// Waits until the server's newest migration has `status`.
pub(crate) async fn wait_migration(c: &Cluster, id: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = migrations_of(c, id).await;
        if let Some(first) = m.first()
            && first["status"] == status
        {
            return first.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "migration of {id} never {status}: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Placement's books: every live server has exactly one allocation, on
/// its current host's node, sized by its flavor; no other consumer.
pub(crate) async fn assert_books(c: &Cluster) {
    let r = c.get("/v2.1/servers/detail?all_tenants=1", "admin").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let servers = r.body["servers"].as_array().unwrap().clone();
    let mut nodes = BTreeMap::new();
    for comp in &c.all.computes {
        nodes.insert(comp.host.clone(), comp.manager.node_uuid().await.unwrap());
    }
    let consumers = c.all.placement.consumers_async(None, None).await.unwrap();
    let live: Vec<String> = servers
        .iter()
        .filter(|s| s["status"] != "ERROR" || !host_of(s).is_empty())
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    for (consumer, allocs) in &consumers {
        assert!(
            live.contains(consumer),
            "a consumer that is no live server holds allocations (leak): {consumer} {:?}",
            allocs.allocations
        );
    }
    for s in &servers {
        let id = s["id"].as_str().unwrap();
        let host = host_of(s);
        if host.is_empty() {
            continue;
        }
        let a = c.all.placement.allocations_async(id).await.unwrap();
        assert_eq!(
            a.allocations.len(),
            1,
            "server {id} has one allocation: {:?}",
            a.allocations
        );
        let (rp, res) = a.allocations.iter().next().unwrap();
        assert_eq!(
            rp.to_string(),
            nodes[&host],
            "server {id}'s allocation is on its host {host}"
        );
        // Sized by its flavor — but a server in ERROR after a failed
        // finish keeps, as in nova, the destination's claim of the new
        // flavor while its record went back to the old one.
        if s["status"] == "ERROR" {
            continue;
        }
        let flavor = &s["flavor"];
        assert_eq!(
            res.get("MEMORY_MB").copied(),
            flavor["ram"].as_i64(),
            "{id}: {res:?} vs {flavor}"
        );
        assert_eq!(
            res.get("VCPU").copied(),
            flavor["vcpus"].as_i64(),
            "{id}: {res:?} vs {flavor}"
        );
    }
}

pub(crate) async fn boot_active(c: &Cluster, name: &str, flavor: &str) -> (String, String) {
    let id = c.boot("demo", name, flavor).await;
    let s = c.wait_status("demo", &id, "ACTIVE").await;
    let _ = s;
    let host = host_of(&server(c, &id).await);
    (id, host)
}

pub(crate) fn fake<'a>(c: &'a Cluster, host: &str) -> &'a nova_virt::FakeDriver {
    c.all.compute(host).unwrap().fake.as_deref().unwrap()
}

pub(crate) async fn faults_of(c: &Cluster, id: &str) -> Vec<String> {
    let f: Vec<InstanceFault> = c
        .all
        .objects
        .list(
            &nova_service::context::admin(),
            &ListQuery::new().filter("instance_uuid", id),
        )
        .await
        .unwrap();
    f.iter().filter_map(|f| f.message().clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_confirm_then_revert_with_nova_bookkeeping() {
    let c = Cluster::start(2, &[]).await;
    let (id, src) = boot_active(&c, "rs-1", "1").await;
    assert_books(&c).await;

    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"resize": {"flavorRef": "2"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = wait_stable(&c, &id, "VERIFY_RESIZE").await;
    let dest = host_of(&s);
    assert_ne!(dest, src, "allow_resize_to_same_host is off: another host");
    assert_eq!(s["flavor"]["original_name"], "m1.small");
    // During the resize: the migration holds the old flavor on the
    // source, the instance the new one on the destination.
    let m = wait_migration(&c, &id, "finished").await;
    assert_eq!(m["migration_type"], "resize");
    assert_eq!(m["source_compute"], src.as_str());
    assert_eq!(m["dest_compute"], dest.as_str());
    assert_eq!(m["old_instance_type_id"], json!(1));
    assert_eq!(m["new_instance_type_id"], json!(2));
    assert_eq!(m["user_id"], "demo");
    let held = c
        .all
        .placement
        .allocations_async(m["uuid"].as_str().unwrap())
        .await
        .unwrap();
    let src_node = c
        .all
        .compute(&src)
        .unwrap()
        .manager
        .node_uuid()
        .await
        .unwrap();
    assert_eq!(held.allocations.len(), 1);
    let (rp, res) = held.allocations.iter().next().unwrap();
    assert_eq!(rp.to_string(), src_node);
    assert_eq!(res.get("MEMORY_MB"), Some(&512));
    assert_eq!(c.usage_on(&dest, "MEMORY_MB").await, 2048);
    // The source's resource tracker still counts the old flavor (nova's
    // usage from migrations), also after its periodic pass.
    c.all
        .compute(&src)
        .unwrap()
        .manager
        .update_available_resource()
        .await
        .unwrap();
    let nodes: Vec<nova_objects::ComputeNode> = c
        .all
        .objects
        .list(
            &nova_service::context::admin(),
            &ListQuery::new().filter("host", src.as_str()),
        )
        .await
        .unwrap();
    assert_eq!(
        *nodes[0].memory_mb_used(),
        512 + 512,
        "reserved + the old flavor"
    );
    // The guests: the destination's runs the new size.
    assert_eq!(fake(&c, &dest).guest(&id).map(|g| g.1), Some(2048));
    // Nova's instance record during the resize.
    let inst: nova_objects::Instance = c
        .all
        .objects
        .get_by_uuid(&nova_service::context::admin(), &id)
        .await
        .unwrap();
    assert_eq!(
        inst.old_flavor().as_ref().map(|f| *f.memory_mb()),
        Some(512)
    );
    assert_eq!(
        inst.new_flavor().as_ref().map(|f| *f.memory_mb()),
        Some(2048)
    );
    assert!(inst.migration_context().is_some());

    let r = act(&c, "demo", "2.1", &id, json!({"confirmResize": null})).await;
    assert_eq!(r.status, 204, "{}", r.body);
    wait_stable(&c, &id, "ACTIVE").await;
    wait_migration(&c, &id, "confirmed").await;
    assert!(
        fake(&c, &src).guest(&id).is_none(),
        "the source's guest is gone"
    );
    assert_books(&c).await;
    let inst: nova_objects::Instance = c
        .all
        .objects
        .get_by_uuid(&nova_service::context::admin(), &id)
        .await
        .unwrap();
    assert!(inst.old_flavor().is_none() && inst.new_flavor().is_none());
    // Confirming again: not resized (409 from the state check).
    let r = act(&c, "demo", "2.1", &id, json!({"confirmResize": null})).await;
    assert_eq!(r.status, 409, "{}", r.body);

    // Now back to the first host with a revert.
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"resize": {"flavorRef": "3"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = wait_stable(&c, &id, "VERIFY_RESIZE").await;
    assert_eq!(host_of(&s), src);
    assert_eq!(s["flavor"]["original_name"], "m1.medium");
    let r = act(&c, "demo", "2.1", &id, json!({"revertResize": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = wait_stable(&c, &id, "ACTIVE").await;
    assert_eq!(host_of(&s), dest, "reverted to where it was");
    assert_eq!(s["flavor"]["original_name"], "m1.small");
    wait_migration(&c, &id, "reverted").await;
    assert!(
        fake(&c, &src).guest(&id).is_none(),
        "the resized guest is gone"
    );
    assert_eq!(fake(&c, &dest).guest(&id).map(|g| g.1), Some(2048));
    assert_books(&c).await;

    // Instance actions as nova records them.
    let r = c
        .get(&format!("/v2.1/servers/{id}/os-instance-actions"), "demo")
        .await;
    let names: Vec<&str> = r.body["instanceActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "revertResize",
            "resize",
            "confirmResize",
            "resize",
            "create"
        ]
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_refusals_write_nothing() {
    let c = Cluster::start(2, &[("quota", "cores", "2")]).await;
    let (id, _) = boot_active(&c, "rr-1", "2").await;
    let before = server(&c, &id).await;
    for (body, status, msg) in [
        (
            json!({"resize": {"flavorRef": "2"}}),
            400,
            "When resizing, instances must change flavor!",
        ),
        (
            json!({"resize": {"flavorRef": "99"}}),
            400,
            "Flavor 99 could not be found.",
        ),
        (json!({"resize": {}}), 400, ""),
        (
            json!({"resize": {"flavorRef": "4"}}),
            403,
            "Quota exceeded for cores: Requested 3, but already used 1 of 2 cores",
        ),
        (
            json!({"confirmResize": null}),
            409,
            "Cannot 'confirmResize' instance",
        ),
        (
            json!({"revertResize": null}),
            409,
            "Cannot 'revertResize' instance",
        ),
        (
            json!({"migrate": null}),
            403,
            "os_compute_api:os-migrate-server:migrate",
        ),
        (
            json!({"os-migrateLive": {"host": null, "block_migration": "auto"}}),
            403,
            "migrate_live",
        ),
    ] {
        let r = act(&c, "demo", "2.30", &id, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        let (_, m) = r.fault();
        assert!(m.contains(msg), "{body}: {m}");
    }
    // Admin-only refusals.
    let src = host_of(&before);
    for (body, mv, status, msg) in [
        (
            json!({"migrate": {"host": src}}),
            "2.56",
            400,
            "Cannot migrate to the host where the server exists.",
        ),
        (
            json!({"migrate": {"host": "nowhere"}}),
            "2.56",
            400,
            "Compute host nowhere could not be found.",
        ),
        (json!({"migrate": {"host": "x"}}), "2.55", 400, ""),
        (
            json!({"os-migrateLive": {"host": null, "block_migration": "auto", "force": true}}),
            "2.68",
            400,
            "",
        ),
        (
            json!({"os-migrateLive": {"host": null, "block_migration": "auto"}}),
            "2.24",
            400,
            "",
        ),
        (
            json!({"os-migrateLive": {"host": "nowhere", "block_migration": "auto"}}),
            "2.25",
            400,
            "Compute host nowhere could not be found.",
        ),
    ] {
        let r = act(&c, "admin", mv, &id, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        let (_, m) = r.fault();
        assert!(m.contains(msg), "{body}: {m}");
    }
    let after = server(&c, &id).await;
    assert_eq!(after["status"], "ACTIVE");
    assert_eq!(after["OS-EXT-STS:task_state"], Value::Null);
    assert!(
        migrations_of(&c, &id).await.is_empty(),
        "no migration recorded"
    );
    assert_books(&c).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_migration_to_a_host_and_same_host_resize() {
    let c = Cluster::start(3, &[("DEFAULT", "allow_resize_to_same_host", "true")]).await;
    let (id, src) = boot_active(&c, "cm-1", "1").await;
    let target = c
        .all
        .computes
        .iter()
        .map(|h| h.host.clone())
        .find(|h| *h != src)
        .unwrap();
    let r = act(
        &c,
        "admin",
        "2.56",
        &id,
        json!({"migrate": {"host": target}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = wait_stable(&c, &id, "VERIFY_RESIZE").await;
    assert_eq!(host_of(&s), target);
    let m = wait_migration(&c, &id, "finished").await;
    assert_eq!(m["migration_type"], "migration");
    assert_eq!(m["old_instance_type_id"], m["new_instance_type_id"]);
    let r = act(&c, "demo", "2.1", &id, json!({"confirmResize": null})).await;
    assert_eq!(r.status, 204, "{}", r.body);
    wait_stable(&c, &id, "ACTIVE").await;
    assert_books(&c).await;

    // A stopped server migrates and stays stopped.
    let r = act(&c, "demo", "2.1", &id, json!({"os-stop": null})).await;
    assert_eq!(r.status, 202);
    wait_stable(&c, &id, "SHUTOFF").await;
    let r = act(&c, "admin", "2.1", &id, json!({"migrate": null})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = wait_stable(&c, &id, "VERIFY_RESIZE").await;
    assert_ne!(host_of(&s), target, "a cold migration never stays");
    assert_eq!(s["OS-EXT-STS:power_state"], json!(4), "not powered on");
    let r = act(&c, "demo", "2.1", &id, json!({"confirmResize": null})).await;
    assert_eq!(r.status, 204);
    wait_stable(&c, &id, "SHUTOFF").await;
    assert_books(&c).await;

    // With allow_resize_to_same_host, a resize may stay: fill the other
    // hosts' memory so this one is the only choice.
    let here = host_of(&server(&c, &id).await);
    let r = act(&c, "demo", "2.1", &id, json!({"os-start": null})).await;
    assert_eq!(r.status, 202);
    wait_stable(&c, &id, "ACTIVE").await;
    for comp in &c.all.computes {
        if comp.host != here {
            comp.fake.as_ref().unwrap().set_faults(Faults {
                fail_operations: vec!["prep_resize".into()],
                ..Faults::default()
            });
        }
    }
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"resize": {"flavorRef": "2"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let s = wait_stable(&c, &id, "VERIFY_RESIZE").await;
    assert_eq!(host_of(&s), here, "resized where it was");
    assert_eq!(fake(&c, &here).guest(&id).map(|g| g.1), Some(2048));
    // Both flavors counted on the one host while the resize waits.
    assert_eq!(c.usage_on(&here, "MEMORY_MB").await, 512 + 2048);
    let r = act(&c, "demo", "2.1", &id, json!({"revertResize": null})).await;
    assert_eq!(r.status, 202);
    let s = wait_stable(&c, &id, "ACTIVE").await;
    assert_eq!(host_of(&s), here);
    assert_eq!(
        fake(&c, &here).guest(&id).map(|g| g.1),
        Some(512),
        "the guest back at its size"
    );
    assert_eq!(c.usage_on(&here, "MEMORY_MB").await, 512);
    assert_books(&c).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_prep_reschedules_then_runs_out_of_hosts() {
    let c = Cluster::start(3, &[]).await;
    let (id, src) = boot_active(&c, "pr-1", "1").await;
    let others: Vec<String> = c
        .all
        .computes
        .iter()
        .map(|h| h.host.clone())
        .filter(|h| *h != src)
        .collect();
    // One destination refuses: wherever the scheduler starts, the
    // instance ends on the other.
    fake(&c, &others[0]).set_faults(Faults {
        fail_operations: vec!["prep_resize".into()],
        ..Faults::default()
    });
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"resize": {"flavorRef": "2"}}),
    )
    .await;
    assert_eq!(r.status, 202);
    let s = wait_stable(&c, &id, "VERIFY_RESIZE").await;
    assert_eq!(host_of(&s), others[1]);
    let r = act(&c, "demo", "2.1", &id, json!({"revertResize": null})).await;
    assert_eq!(r.status, 202);
    wait_stable(&c, &id, "ACTIVE").await;
    assert_books(&c).await;

    // Both refuse: a reschedule, then the hosts run out; the server is
    // back as it was, with a fault, the migration in error.
    fake(&c, &others[1]).set_faults(Faults {
        fail_operations: vec!["prep_resize".into()],
        ..Faults::default()
    });
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"resize": {"flavorRef": "2"}}),
    )
    .await;
    assert_eq!(r.status, 202);
    wait_migration(&c, &id, "error").await;
    let s = wait_stable(&c, &id, "ACTIVE").await;
    assert_eq!(host_of(&s), src);
    assert_eq!(s["flavor"]["original_name"], "m1.tiny");
    let faults = faults_of(&c, &id).await;
    assert!(
        faults
            .iter()
            .filter(|f| f.contains("injected failure of prep_resize"))
            .count()
            >= 2,
        "both destinations tried: {faults:?}"
    );
    assert!(
        faults.iter().any(|f| f.contains("Exhausted all hosts")
            || f.contains("Exceeded maximum number of retries")),
        "{faults:?}"
    );
    assert_books(&c).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_mid_resize_put_everything_back() {
    let c = Cluster::start(2, &[]).await;
    let (id, src) = boot_active(&c, "fm-1", "2").await;
    let dest = c
        .all
        .computes
        .iter()
        .map(|h| h.host.clone())
        .find(|h| *h != src)
        .unwrap();

    // The source cannot shrink the disk (m1.small 20 GB → m1.tiny 1 GB):
    // nova's rollback, the server as it was.
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"resize": {"flavorRef": "1"}}),
    )
    .await;
    assert_eq!(r.status, 202);
    wait_migration(&c, &id, "error").await;
    let s = wait_stable(&c, &id, "ACTIVE").await;
    assert_eq!(host_of(&s), src);
    assert_eq!(s["flavor"]["original_name"], "m1.small");
    assert!(
        faults_of(&c, &id)
            .await
            .iter()
            .any(|f| f.contains("Unable to resize disk down."))
    );
    assert_eq!(
        fake(&c, &src).guest(&id).map(|g| g.3),
        Some(nova_virt::PowerState::Running)
    );
    assert_books(&c).await;

    // The destination dies finishing the resize: the server is in ERROR
    // there (its host now), holding only the destination's allocation.
    fake(&c, &dest).set_faults(Faults {
        fail_operations: vec!["finish_migration".into()],
        ..Faults::default()
    });
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"resize": {"flavorRef": "3"}}),
    )
    .await;
    assert_eq!(r.status, 202);
    let s = wait_for(&c, &id, "ERROR", |s| s["status"] == "ERROR").await;
    assert_eq!(host_of(&s), dest);
    wait_migration(&c, &id, "error").await;
    assert_books(&c).await;
    // A revert after the failed finish is refused (not resized).
    let r = act(&c, "demo", "2.1", &id, json!({"revertResize": null})).await;
    assert_eq!(r.status, 409, "{}", r.body);
    // Deleting it frees everything.
    let r = c.delete(&format!("/v2.1/servers/{id}"), "demo").await;
    assert_eq!(r.status, 204);
    c.wait_gone("demo", &id).await;
    assert!(
        c.all
            .placement
            .consumers_async(None, None)
            .await
            .unwrap()
            .is_empty(),
        "nothing leaks"
    );

    // A failure reverting on the source: ERROR on the source, with the
    // source's allocation back.
    fake(&c, &dest).set_faults(Faults::default());
    let (id, src) = boot_active(&c, "fm-2", "1").await;
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"resize": {"flavorRef": "2"}}),
    )
    .await;
    assert_eq!(r.status, 202);
    wait_stable(&c, &id, "VERIFY_RESIZE").await;
    fake(&c, &src).set_faults(Faults {
        fail_operations: vec!["finish_revert_migration".into()],
        ..Faults::default()
    });
    let r = act(&c, "demo", "2.1", &id, json!({"revertResize": null})).await;
    assert_eq!(r.status, 202);
    let s = wait_for(&c, &id, "ERROR", |s| s["status"] == "ERROR").await;
    assert_eq!(host_of(&s), src);
    assert_books(&c).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resizes_are_confirmed_after_the_window() {
    let c = Cluster::start(2, &[("DEFAULT", "resize_confirm_window", "1")]).await;
    let (id, _) = boot_active(&c, "aw-1", "1").await;
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"resize": {"flavorRef": "2"}}),
    )
    .await;
    assert_eq!(r.status, 202);
    wait_for(&c, &id, "VERIFY_RESIZE", |s| s["status"] == "VERIFY_RESIZE").await;
    // Nobody confirms: the destination's periodic task does.
    let s = wait_stable(&c, &id, "ACTIVE").await;
    assert_eq!(s["flavor"]["original_name"], "m1.small");
    wait_migration(&c, &id, "confirmed").await;
    assert_books(&c).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_migration_scheduled_forced_and_rolled_back() {
    let c = Cluster::start(3, &[]).await;
    let (id, src) = boot_active(&c, "lm-1", "1").await;
    let r = act(
        &c,
        "admin",
        "2.25",
        &id,
        json!({"os-migrateLive": {"host": null, "block_migration": "auto"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let m = wait_migration(&c, &id, "completed").await;
    assert_eq!(m["migration_type"], "live-migration");
    let s = wait_stable(&c, &id, "ACTIVE").await;
    let dest = host_of(&s);
    assert_ne!(dest, src);
    assert_eq!(m["dest_compute"], dest.as_str());
    assert!(fake(&c, &src).guest(&id).is_none());
    assert_eq!(
        fake(&c, &dest).guest(&id).map(|g| g.3),
        Some(nova_virt::PowerState::Running)
    );
    assert_books(&c).await;

    // Forced to a host (2.30 force), no scheduler.
    let third = c
        .all
        .computes
        .iter()
        .map(|h| h.host.clone())
        .find(|h| *h != src && *h != dest)
        .unwrap();
    let r = act(
        &c,
        "admin",
        "2.30",
        &id,
        json!({"os-migrateLive": {"host": third, "block_migration": false, "force": true}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_migration(&c, &id, "completed").await;
    let s = wait_stable(&c, &id, "ACTIVE").await;
    assert_eq!(host_of(&s), third);
    assert_books(&c).await;

    // The destination fails preparing: rolled back, still here.
    fake(&c, &src).set_faults(Faults {
        fail_operations: vec!["pre_live_migration".into()],
        ..Faults::default()
    });
    let r = act(
        &c,
        "admin",
        "2.68",
        &id,
        json!({"os-migrateLive": {"host": src, "block_migration": "auto"}}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_migration(&c, &id, "error").await;
    let s = wait_stable(&c, &id, "ACTIVE").await;
    assert_eq!(host_of(&s), third);
    assert_eq!(
        fake(&c, &third).guest(&id).map(|g| g.3),
        Some(nova_virt::PowerState::Running)
    );
    assert!(
        fake(&c, &src).guest(&id).is_none(),
        "the destination dropped what it prepared"
    );
    assert_books(&c).await;

    // The destination refuses in its checks: no migration runs.
    fake(&c, &src).set_faults(Faults {
        fail_operations: vec!["check_can_live_migrate_destination".into()],
        ..Faults::default()
    });
    let r = act(
        &c,
        "admin",
        "2.68",
        &id,
        json!({"os-migrateLive": {"host": src, "block_migration": "auto"}}),
    )
    .await;
    assert_eq!(r.status, 202);
    // The previous migration already says `error`: wait for this one's
    // fault, then for the server to settle. The host asked for (2.68, not
    // forced) is the scheduler's requested destination: refused there,
    // nova schedules again without it and finds no host (NoValidHost,
    // expected: the server stays ACTIVE).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !faults_of(&c, &id)
        .await
        .iter()
        .any(|f| f == "No valid host was found. There are not enough hosts available.")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no NoValidHost fault: {:?}",
            faults_of(&c, &id).await
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    wait_migration(&c, &id, "error").await;
    let s = wait_stable(&c, &id, "ACTIVE").await;
    assert_eq!(host_of(&s), third);
    assert_books(&c).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_migration_abort_and_force_complete() {
    let c = Cluster::start(2, &[]).await;
    let (id, src) = boot_active(&c, "la-1", "1").await;
    fake(&c, &src).set_faults(Faults {
        live_migration_time: Some(Duration::from_secs(30)),
        ..Faults::default()
    });
    let r = act(
        &c,
        "admin",
        "2.25",
        &id,
        json!({"os-migrateLive": {"host": null, "block_migration": "auto"}}),
    )
    .await;
    assert_eq!(r.status, 202);
    let m = wait_migration(&c, &id, "running").await;
    let mid = m["id"].as_i64().unwrap();
    assert!(
        m["links"].is_array(),
        "2.23 links of a live migration in progress: {m}"
    );
    // /servers/{id}/migrations shows it (2.23), not before.
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/servers/{id}/migrations"),
            "admin",
            "2.22",
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/servers/{id}/migrations"),
            "admin",
            "2.80",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r.body["migrations"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["server_uuid"], id.as_str());
    assert_eq!(list[0]["status"], "running");
    assert!(list[0]["memory_total_bytes"].is_null());
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/servers/{id}/migrations/{mid}"),
            "admin",
            "2.80",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["migration"]["id"], json!(mid));
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/servers/{id}/migrations/{mid}"),
            "demo",
            "2.80",
            None,
        )
        .await;
    assert_eq!(r.status, 403);
    // Abort (2.24): cancelled, the server stays.
    let r = c
        .call(
            Method::DELETE,
            &format!("/v2.1/servers/{id}/migrations/{mid}"),
            "admin",
            "2.24",
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_migration(&c, &id, "cancelled").await;
    let s = wait_stable(&c, &id, "ACTIVE").await;
    assert_eq!(host_of(&s), src);
    assert_books(&c).await;
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/servers/{id}/migrations/{mid}"),
            "admin",
            "2.80",
            None,
        )
        .await;
    assert_eq!(r.status, 404, "not in progress any more");

    // Force complete (2.22): it finishes at once.
    let r = act(
        &c,
        "admin",
        "2.25",
        &id,
        json!({"os-migrateLive": {"host": null, "block_migration": "auto"}}),
    )
    .await;
    assert_eq!(r.status, 202);
    let m = wait_migration(&c, &id, "running").await;
    let mid = m["id"].as_i64().unwrap();
    let r = c
        .call(
            Method::POST,
            &format!("/v2.1/servers/{id}/migrations/{mid}/action"),
            "admin",
            "2.22",
            Some(json!({"force_complete": null})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_migration(&c, &id, "completed").await;
    let s = wait_stable(&c, &id, "ACTIVE").await;
    assert_ne!(host_of(&s), src);
    assert_books(&c).await;
    // Force complete of a finished migration: 409 (state) — the server is
    // not migrating.
    let r = c
        .call(
            Method::POST,
            &format!("/v2.1/servers/{id}/migrations/{mid}/action"),
            "admin",
            "2.22",
            Some(json!({"force_complete": null})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn os_migrations_filters_versions_and_paging() {
    let c = Cluster::start(2, &[]).await;
    let (a, _) = boot_active(&c, "om-1", "1").await;
    let (b, _) = boot_active(&c, "om-2", "1").await;
    for id in [&a, &b] {
        let r = act(&c, "demo", "2.1", id, json!({"resize": {"flavorRef": "2"}})).await;
        assert_eq!(r.status, 202);
        wait_stable(&c, id, "VERIFY_RESIZE").await;
        let r = act(&c, "demo", "2.1", id, json!({"confirmResize": null})).await;
        assert_eq!(r.status, 204);
        wait_stable(&c, id, "ACTIVE").await;
    }
    let get = |mv: &'static str, q: &'static str, user: &'static str| {
        let c = &c;
        async move {
            c.call(
                Method::GET,
                &format!("/v2.1/os-migrations{q}"),
                user,
                mv,
                None,
            )
            .await
        }
    };
    let r = get("2.1", "", "demo").await;
    assert_eq!(r.status, 403);
    let r = get("2.1", "", "admin").await;
    assert_eq!(r.status, 200);
    let m = &r.body["migrations"][0];
    assert!(
        m.get("migration_type").is_none() && m.get("uuid").is_none() && m.get("user_id").is_none()
    );
    assert!(
        m["created_at"].as_str().unwrap().contains('.'),
        "nova's microseconds: {m}"
    );
    let r = get("2.23", "?migration_type=resize&status=confirmed", "admin").await;
    assert_eq!(r.body["migrations"].as_array().unwrap().len(), 2);
    assert!(
        r.body["migrations"][0].get("links").is_none(),
        "only live migrations link"
    );
    let r = get("2.23", "?migration_type=live-migration", "admin").await;
    assert!(r.body["migrations"].as_array().unwrap().is_empty());
    // 2.59: uuid, newest first, marker and limit.
    let r = get("2.59", "?limit=1", "admin").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let first = r.body["migrations"][0].clone();
    assert_eq!(first["instance_uuid"], b.as_str(), "newest first");
    let next = r.body["migrations_links"][0]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        next.contains(&format!("marker={}", first["uuid"].as_str().unwrap())),
        "{next}"
    );
    let q = next.split("os-migrations").nth(1).unwrap().to_owned();
    let r = c
        .call(
            Method::GET,
            &format!("/v2.1/os-migrations{q}"),
            "admin",
            "2.59",
            None,
        )
        .await;
    assert_eq!(r.body["migrations"][0]["instance_uuid"], a.as_str());
    let r = get("2.59", "?marker=nope", "admin").await;
    assert_eq!(r.status, 400);
    let r = get(
        "2.66",
        "?changes-since=2030-01-01T00:00:00Z&changes-before=2020-01-01T00:00:00Z",
        "admin",
    )
    .await;
    assert_eq!(r.status, 400);
    let r = get("2.59", "?changes-since=2099-01-01T00:00:00Z", "admin").await;
    assert!(r.body["migrations"].as_array().unwrap().is_empty());
    // 2.80: user and project, and their filters.
    let r = get("2.80", "?user_id=demo", "admin").await;
    assert_eq!(r.body["migrations"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["migrations"][0]["project_id"], "demo");
    let r = get("2.80", "?user_id=admin", "admin").await;
    assert!(r.body["migrations"].as_array().unwrap().is_empty());
    assert_books(&c).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_valid_host_and_a_source_that_went_down() {
    let c = Cluster::start(1, &[]).await;
    let (id, host) = boot_active(&c, "nv-1", "1").await;
    // One host and no same-host resize: the scheduler finds nothing; the
    // server stays as it was, its allocation back, with nova's fault.
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"resize": {"flavorRef": "2"}}),
    )
    .await;
    assert_eq!(r.status, 202);
    wait_migration(&c, &id, "error").await;
    let s = wait_stable(&c, &id, "ACTIVE").await;
    assert_eq!(host_of(&s), host);
    assert_eq!(s["flavor"]["original_name"], "m1.tiny");
    assert!(
        faults_of(&c, &id)
            .await
            .iter()
            .any(|f| f.contains("No valid host was found")),
        "{:?}",
        faults_of(&c, &id).await
    );
    assert_books(&c).await;
    let r = act(
        &c,
        "admin",
        "2.25",
        &id,
        json!({"os-migrateLive": {"host": null, "block_migration": "auto"}}),
    )
    .await;
    assert_eq!(r.status, 202);
    wait_migration(&c, &id, "error").await;
    let s = wait_stable(&c, &id, "ACTIVE").await;
    assert_eq!(host_of(&s), host);
    assert_books(&c).await;
    c.stop().await;

    // A resize waiting for its confirmation whose source compute went
    // down: confirm is refused (409), nothing changes.
    let mut c = Cluster::start(2, &[]).await;
    let (id, src) = boot_active(&c, "nv-2", "1").await;
    let r = act(
        &c,
        "demo",
        "2.1",
        &id,
        json!({"resize": {"flavorRef": "2"}}),
    )
    .await;
    assert_eq!(r.status, 202);
    wait_stable(&c, &id, "VERIFY_RESIZE").await;
    c.all.stop_compute(&src).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = c
            .get(
                &format!("/v2.1/os-services?binary=nova-compute&host={src}"),
                "admin",
            )
            .await;
        if r.body["services"][0]["state"] == "down" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{src} never went down: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = act(&c, "demo", "2.1", &id, json!({"confirmResize": null})).await;
    assert_eq!(r.status, 409, "{}", r.body);
    let (_, m) = r.fault();
    assert!(m.contains("unavailable"), "{m}");
    let s = server(&c, &id).await;
    assert_eq!(s["status"], "VERIFY_RESIZE");
    assert_eq!(migrations_of(&c, &id).await[0]["status"], "finished");
    // nova's `hidden` filter: no move here hides its record.
    for (hidden, n) in [("1", 0), ("false", 1)] {
        let r = c
            .call(
                Method::GET,
                &format!("/v2.1/os-migrations?instance_uuid={id}&hidden={hidden}"),
                "admin",
                "2.80",
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.body["migrations"].as_array().unwrap().len(),
            n,
            "{}",
            r.body
        );
    }
    c.stop().await;
}
