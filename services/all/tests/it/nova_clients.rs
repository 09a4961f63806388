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
