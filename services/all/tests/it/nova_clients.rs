//! Real nova 34 RPC clients (`nova.scheduler.rpcapi.SchedulerAPI`,
//! `nova.compute.rpcapi.ComputeAPI`, `nova.conductor.rpcapi.ComputeTaskAPI`,
//! from PyPI) call our scheduler, compute and conductor over RabbitMQ: the
//! wire our typed interfaces speak is nova's.

use std::process::Command;

use nova_objects::{Flavor, Instance, InstanceMapping, ListQuery};
use nova_rpc::RequestContext;
use serde_json::Value;

use crate::cluster::{Cluster, temp_dir};
use crate::vhost::Vhost;

fn admin() -> RequestContext {
    RequestContext::new().with_admin(true)
}

/// Runs `nova_rpcapi_client.py` with the real nova package and returns its JSON line.
fn python(url: &str, args: &[&str]) -> Value {
    let python = std::env::var("NOVA_RS_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles/bin/python".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/nova_rpcapi_client.py"
    );
    let out = Command::new(&python)
        .arg(script)
        .arg(url)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python}: {e} (scripts/test creates the virtualenv)")
        });
    assert!(
        out.status.success(),
        "nova's client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// An instance as nova-api writes it before its cast: `building`/`scheduling`, flavor m1.tiny.
async fn scheduling_instance(c: &Cluster) -> Instance {
    let flavors: Vec<Flavor> = c
        .all
        .objects
        .list(&admin(), &ListQuery::new().filter("flavorid", "1"))
        .await
        .unwrap();
    let mut inst = Instance::new()
        .with_uuid(uuid::Uuid::new_v4().to_string())
        .with_project_id(Some("py-project".into()))
        .with_user_id(Some("py-user".into()))
        .with_display_name(Some("from-python".into()))
        .with_flavor(flavors[0].clone())
        .with_vcpus(Some(1))
        .with_memory_mb(Some(512))
        .with_root_gb(Some(1))
        .with_vm_state(Some("building".into()))
        .with_task_state(Some("scheduling".into()))
        .with_locked(false);
    c.all.objects.create(&admin(), &mut inst).await.unwrap();
    inst
}

/// Waits until the instance is ACTIVE.
async fn active(c: &Cluster, uuid: &str) -> Instance {
    for _ in 0..200 {
        let i: Instance = c.all.objects.get_by_uuid(&admin(), uuid).await.unwrap();
        if i.vm_state().as_deref() == Some("active") {
            return i;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("instance {uuid} did not become active");
}

async fn cluster_on_rabbit(tag: &str) -> (Cluster, Vhost) {
    let amqp = std::env::var("NOVA_RS_AMQP_URL")
        .unwrap_or_else(|_| "rabbit://guest:guest@127.0.0.1:5672/".into());
    let vhost = Vhost::create(
        &amqp,
        &format!("nova-rs-{tag}-{}", uuid::Uuid::new_v4().simple()),
    );
    let dir = temp_dir(tag);
    let db = format!("sqlite:{}", dir.join("nova.sqlite").display());
    let c = Cluster::start(
        2,
        &[
            ("DEFAULT", "transport_url", &vhost.url),
            ("database", "connection", &db),
        ],
    )
    .await;
    (c, vhost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nova_scheduler_client_selects_destinations_from_our_scheduler() {
    let (c, vhost) = cluster_on_rabbit("py-sched").await;
    let uuid = uuid::Uuid::new_v4().to_string();
    let url = vhost.url.clone();
    let out = tokio::task::spawn_blocking({
        let (url, uuid) = (url.clone(), uuid.clone());
        move || python(&url, &["select_destinations", &uuid])
    })
    .await
    .unwrap();
    let alts = out[0]
        .as_array()
        .expect("one Selection list for the instance");
    assert!(!alts.is_empty(), "{out}");
    let hosts: Vec<&str> = c.all.computes.iter().map(|h| h.host.as_str()).collect();
    for s in alts {
        assert_eq!(
            s["class"], "Selection",
            "nova decoded Selection objects: {out}"
        );
        assert!(
            hosts.contains(&s["service_host"].as_str().unwrap()),
            "{out}"
        );
    }
    // The chosen host is claimed in Placement for the instance, as the
    // allocation request nova received says.
    let allocs = c.all.placement.allocations_async(&uuid).await.unwrap();
    let chosen = alts[0]["compute_node_uuid"].as_str().unwrap();
    let claimed: Vec<String> = allocs.allocations.keys().map(|k| k.to_string()).collect();
    assert_eq!(claimed, vec![chosen.to_owned()], "{out}");
    assert_eq!(
        alts[0]["allocation_request"]["allocations"][chosen]["resources"]["MEMORY_MB"],
        512
    );
    // Nothing fits: nova's client raises nova.exception.NoValidHost, the
    // exception nova's conductor catches to bury the instance in cell0.
    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            python(
                &url,
                &[
                    "select_destinations",
                    &uuid::Uuid::new_v4().to_string(),
                    "1000000",
                ],
            )
        }
    })
    .await
    .unwrap();
    // (oslo rebuilds a remote exception as a `_Remote` subclass of nova's.)
    assert_eq!(out["no_valid_host"], true, "{out}");
    assert_eq!(out["error"], "NoValidHost_Remote", "{out}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nova_compute_client_builds_on_our_compute() {
    let (c, vhost) = cluster_on_rabbit("py-compute").await;
    let inst = scheduling_instance(&c).await;
    let host = c.all.computes[1].host.clone();
    let driver = c.all.computes[1].manager.driver().clone();
    let node = driver.host_resources().await.unwrap().hypervisor_hostname;
    let (id, uuid) = (inst.id().to_string(), inst.uuid().clone());
    let out = tokio::task::spawn_blocking({
        let (url, host, node, id, uuid) = (
            vhost.url.clone(),
            host.clone(),
            node.clone(),
            id,
            uuid.clone(),
        );
        move || python(&url, &["build_and_run_instance", &host, &node, &id, &uuid])
    })
    .await
    .unwrap();
    assert_eq!(out["cast"], "build_and_run_instance");
    // Our compute decoded nova's Instance and built it on the host nova named.
    let built = active(&c, &uuid).await;
    assert_eq!(built.host().as_deref(), Some(host.as_str()));
    assert_eq!(built.node().as_deref(), Some(node.as_str()));
    assert!(built.task_state().is_none());
    assert!(built.launched_at().is_some());
    let guest = driver
        .get_info(&uuid)
        .await
        .expect("the guest exists on that host");
    assert_eq!(guest.state, nova_virt::PowerState::Running);
    // nova's client reads the guest's diagnostics from our compute: a
    // Diagnostics object it decodes, and the driver's dict.
    let d = tokio::task::spawn_blocking({
        let (url, host, id) = (vhost.url.clone(), host.clone(), built.id().to_string());
        move || python(&url, &["get_instance_diagnostics", &host, &id, &uuid])
    })
    .await
    .unwrap();
    assert_eq!(d["class"], "Diagnostics", "{d}");
    assert_eq!(d["state"], "running");
    assert_eq!(d["hypervisor"], "fake");
    assert_eq!(d["num_cpus"], 1);
    assert_eq!(d["memory_maximum"], 512);
    assert_eq!(d["legacy_memory"], 512 * 1024);
    // A compute shutting down stops its `compute` server first; nova's
    // client sends the steps of work under way (here a console proxy's
    // check) to `compute-alt`, which still answers.
    assert!(
        c.all
            .runner
            .stop_rpc_server(nova_rpcapi::compute::TOPIC, &host)
            .await
    );
    let v = tokio::task::spawn_blocking({
        let (url, host, id) = (vhost.url.clone(), host.clone(), built.id().to_string());
        let uuid = built.uuid().clone();
        move || python(&url, &["validate_console_port", &host, &id, &uuid, "6969"])
    })
    .await
    .unwrap();
    assert_eq!(v["valid"], true, "{v}");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nova_conductor_client_schedules_and_builds_through_our_services() {
    let (c, vhost) = cluster_on_rabbit("py-conductor").await;
    let inst = scheduling_instance(&c).await;
    let mut map = InstanceMapping::new()
        .with_instance_uuid(inst.uuid().clone())
        .with_project_id("py-project".to_owned())
        .with_cell_mapping(None)
        .with_queued_for_delete(false);
    c.all.objects.create(&admin(), &mut map).await.unwrap();
    let (id, uuid) = (inst.id().to_string(), inst.uuid().clone());
    let out = tokio::task::spawn_blocking({
        let (url, id, uuid) = (vhost.url.clone(), id, uuid.clone());
        move || python(&url, &["schedule_and_build_instances", &id, &uuid])
    })
    .await
    .unwrap();
    assert_eq!(out["cast"], "schedule_and_build_instances");
    // Our conductor decoded nova's BuildRequests and RequestSpecs, our
    // scheduler placed the instance and a compute built it.
    let built = active(&c, &uuid).await;
    let host = built.host().clone().expect("on a host");
    assert!(c.all.computes.iter().any(|h| h.host == host));
    let allocs = c.all.placement.allocations_async(&uuid).await.unwrap();
    assert_eq!(allocs.allocations.len(), 1, "claimed on one provider");
    let maps: Vec<InstanceMapping> = c
        .all
        .objects
        .list(
            &admin(),
            &ListQuery::new().filter("instance_uuid", uuid.as_str()),
        )
        .await
        .unwrap();
    assert!(maps[0].cell_mapping().is_some(), "mapped to a cell");
    c.stop().await;
}

/// Polls the instance until `ok` holds (30 s).
async fn until(c: &Cluster, uuid: &str, what: &str, ok: impl Fn(&Instance) -> bool) -> Instance {
    for _ in 0..600 {
        let i: Instance = c.all.objects.get_by_uuid(&admin(), uuid).await.unwrap();
        if ok(&i) {
            return i;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("instance {uuid} never got {what}");
}

/// Sets the states nova-api writes before it sends `method`, then has
/// nova's own client send it with the instance as nova-api holds it.
async fn send_as_nova_api(
    c: &Cluster,
    url: &str,
    uuid: &str,
    states: (&str, &str),
    image_ref: Option<&str>,
    method: &str,
    args: Value,
) {
    let mut i: Instance = c.all.objects.get_by_uuid(&admin(), uuid).await.unwrap();
    i.set_vm_state(Some(states.0.into()));
    i.set_task_state(Some(states.1.into()));
    if let Some(img) = image_ref {
        i.set_image_ref(Some(img.into()));
    }
    c.all.objects.save(&admin(), &mut i).await.unwrap();
    let fields = serde_json::json!({
        "id": i.id(), "uuid": i.uuid(), "host": i.host(), "node": i.node(),
        "vm_state": i.vm_state(), "task_state": i.task_state(), "power_state": i.power_state(),
        "image_ref": i.image_ref(), "display_name": i.display_name(),
        "project_id": i.project_id(), "user_id": i.user_id(), "vcpus": 1, "memory_mb": 512,
        "root_gb": 1, "ephemeral_gb": 0, "locked": false, "metadata": {}, "system_metadata": {},
    });
    let out = tokio::task::spawn_blocking({
        let (url, method) = (url.to_owned(), method.to_owned());
        move || {
            python(
                &url,
                &[
                    "instance_action",
                    &method,
                    &fields.to_string(),
                    &args.to_string(),
                ],
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(out["sent"], method, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nova_clients_rebuild_shelve_unshelve_and_migrate_through_our_services() {
    let (c, vhost) = cluster_on_rabbit("py-lifecycle").await;
    let url = vhost.url.clone();
    let uuid = c.boot("demo", "py-life", "1").await;
    c.wait_status("demo", &uuid, "ACTIVE").await;
    // compute.rebuild_instance (6.2) to a new image, on the same host.
    let image = crate::rebuild::second_image(&c, "py-rebuild", &[]);
    let before = active(&c, &uuid).await;
    // launched_at is stored to the second: a rebuild must show a later one.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    send_as_nova_api(
        &c,
        &url,
        &uuid,
        ("active", "rebuilding"),
        Some(&image),
        "compute.rebuild_instance",
        serde_json::json!({"image_ref": image, "orig_image_ref": nova_all::FAKE_IMAGE_ID}),
    )
    .await;
    let rebuilt = until(&c, &uuid, "rebuilt", |i| {
        i.task_state().is_none() && i.vm_state().as_deref() == Some("active")
    })
    .await;
    assert_eq!(rebuilt.image_ref().as_deref(), Some(image.as_str()));
    assert_eq!(rebuilt.host(), before.host(), "a rebuild stays on its host");
    assert!(
        rebuilt.launched_at() > before.launched_at(),
        "the compute spawned the guest again: {:?} then {:?}",
        before.launched_at(),
        rebuilt.launched_at()
    );
    let guest = c
        .all
        .computes
        .iter()
        .find(|h| Some(&h.host) == before.host().as_ref())
        .unwrap()
        .manager
        .driver()
        .clone();
    assert!(guest.instance_exists(&uuid).await.unwrap());
    // compute.shelve_offload_instance: the guest and the allocation go.
    send_as_nova_api(
        &c,
        &url,
        &uuid,
        ("shelved", "shelving_offloading"),
        None,
        "compute.shelve_offload_instance",
        serde_json::json!({}),
    )
    .await;
    let offloaded = until(&c, &uuid, "shelved_offloaded", |i| {
        i.vm_state().as_deref() == Some("shelved_offloaded") && i.task_state().is_none()
    })
    .await;
    assert!(offloaded.host().is_none());
    assert!(!guest.instance_exists(&uuid).await.unwrap());
    let allocs = c.all.placement.allocations_async(&uuid).await.unwrap();
    assert!(allocs.allocations.is_empty(), "offloading frees the host");
    // conductor.unshelve_instance (1.14): scheduled again, built again.
    send_as_nova_api(
        &c,
        &url,
        &uuid,
        ("shelved_offloaded", "unshelving"),
        None,
        "conductor.unshelve_instance",
        serde_json::json!({}),
    )
    .await;
    let back = active(&c, &uuid).await;
    assert!(back.host().is_some());
    let allocs = c.all.placement.allocations_async(&uuid).await.unwrap();
    assert_eq!(allocs.allocations.len(), 1, "claimed again");
    // conductor.migrate_server (a call): a cold migration to the other host.
    let source = back.host().clone().unwrap();
    send_as_nova_api(
        &c,
        &url,
        &uuid,
        ("active", "resize_prep"),
        None,
        "conductor.migrate_server",
        serde_json::json!({}),
    )
    .await;
    let moved = until(&c, &uuid, "resized", |i| {
        i.vm_state().as_deref() == Some("resized") && i.task_state().is_none()
    })
    .await;
    assert_ne!(
        moved.host().as_deref(),
        Some(source.as_str()),
        "on the other host"
    );
    c.stop().await;
}
