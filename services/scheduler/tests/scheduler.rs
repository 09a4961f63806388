//! The scheduler manager alone, called through its typed client on a
//! memory transport: SQLite in memory holds the compute nodes and
//! services, in-memory Placement the providers. No cluster.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use nova_objects::db::{Database, DbConfig};
use nova_objects::{ComputeNode, Flavor, Objects, RequestSpec};
use nova_placement::PlacementHandle;
use nova_rpc::{MemoryTransport, RequestContext, RpcServer, Transport, Version};
use nova_rpcapi::scheduler::{Destinations, SchedulerApi};
use nova_scheduler::SchedulerConfig;
use nova_scheduler::placement::InventoryRecord;
use nova_scheduler_service::SchedulerManager;
use serde_json::json;

fn ctx() -> RequestContext {
    nova_service::context::admin()
}

struct World {
    placement: PlacementHandle,
    api: SchedulerApi,
    transport: Arc<dyn Transport>,
    nodes: BTreeMap<String, String>,
    server: RpcServer,
}

/// Hosts `(name, vcpus)`, each with a compute service, a ComputeNode and a
/// Placement provider (the node's uuid) with VCPU, MEMORY_MB and DISK_GB.
async fn world(hosts: &[(&str, i64)]) -> World {
    let transport: Arc<dyn Transport> = MemoryTransport::new();
    let db = Database::connect(&DbConfig::new("sqlite::memory:"))
        .await
        .unwrap();
    db.sync().await.unwrap();
    let placement = PlacementHandle::memory();
    let objects = Objects::new(db);
    let mut nodes = BTreeMap::new();
    for (host, vcpus) in hosts {
        let service = nova_service::register_service(
            &objects,
            &Default::default(),
            host,
            "nova-compute",
            "compute",
        )
        .await
        .unwrap();
        let uuid = uuid::Uuid::new_v4().to_string();
        let mut n = ComputeNode::new()
            .with_uuid(uuid.clone())
            .with_host(Some((*host).to_owned()))
            .with_service_id(Some(*service.id()))
            .with_hypervisor_hostname(Some(format!("{host}-node")))
            .with_vcpus(*vcpus)
            .with_memory_mb(8192)
            .with_local_gb(100)
            .with_vcpus_used(0)
            .with_memory_mb_used(0)
            .with_local_gb_used(0)
            .with_hypervisor_type("fake".to_owned())
            .with_hypervisor_version(1)
            .with_cpu_info("{}".to_owned())
            .with_running_vms(Some(0))
            .with_cpu_allocation_ratio(1.0)
            .with_ram_allocation_ratio(1.0)
            .with_disk_allocation_ratio(1.0)
            .with_mapped(0);
        objects.create(&ctx(), &mut n).await.unwrap();
        let rp = placement
            .create_provider_async(&uuid, &format!("{host}-node"), None)
            .await
            .unwrap();
        let inv = BTreeMap::from([
            ("VCPU".to_owned(), InventoryRecord::new(*vcpus)),
            ("MEMORY_MB".to_owned(), InventoryRecord::new(8192)),
            ("DISK_GB".to_owned(), InventoryRecord::new(100)),
        ]);
        placement
            .set_inventories_async(&uuid, rp.generation, &inv)
            .await
            .unwrap();
        nodes.insert(uuid, (*host).to_owned());
    }
    let manager = SchedulerManager::new(
        SchedulerConfig::default(),
        objects,
        placement.clone(),
        "cell1",
    )
    .unwrap();
    let server = nova_scheduler_service::serve(transport.clone(), &manager, "sched-1")
        .await
        .unwrap();
    World {
        placement,
        api: SchedulerApi::new(transport.clone()),
        transport,
        nodes,
        server,
    }
}

fn spec(vcpus: i64) -> RequestSpec {
    let flavor = Flavor::new()
        .with_id(1)
        .with_flavorid("1".to_owned())
        .with_name(Some("f".into()))
        .with_vcpus(vcpus)
        .with_memory_mb(512)
        .with_root_gb(1)
        .with_ephemeral_gb(0)
        .with_swap(0)
        .with_extra_specs(BTreeMap::new());
    RequestSpec::new()
        .with_instance_uuid(uuid::Uuid::new_v4().to_string())
        .with_flavor(flavor)
        .with_num_instances(1)
        .with_project_id(Some("p".into()))
        .with_user_id(Some("u".into()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_destinations_claims_the_best_host_and_returns_alternates() {
    let w = world(&[("big", 8), ("small", 2)]).await;
    let s = spec(2);
    let uuid = s.instance_uuid().clone();
    let out = w
        .api
        .select_destinations(&ctx(), &s, &[uuid.clone()].to_vec(), &true, &true)
        .await
        .unwrap();
    let Destinations::Selections(lists) = out else {
        panic!("Selection objects were asked for");
    };
    assert_eq!(lists.len(), 1);
    let hosts: Vec<&str> = lists[0].iter().map(|s| s.service_host().as_str()).collect();
    // nova's default weighers: the most free RAM ties, the most free vCPUs wins… both hosts fit.
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    let chosen = &lists[0][0];
    assert_eq!(w.nodes[chosen.compute_node_uuid()], *chosen.service_host());
    // The chosen host is claimed; the alternate is not.
    let allocs = w.placement.allocations_async(&uuid).await.unwrap();
    let claimed: Vec<String> = allocs.allocations.keys().map(|k| k.to_string()).collect();
    assert_eq!(claimed, vec![chosen.compute_node_uuid().clone()]);
    let request: serde_json::Value =
        serde_json::from_str(lists[0][1].allocation_request().as_deref().unwrap()).unwrap();
    assert_eq!(
        request["allocations"][lists[0][1].compute_node_uuid()]["resources"]["VCPU"],
        2
    );
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_host_fits_is_no_valid_host() {
    let w = world(&[("small", 2)]).await;
    let s = spec(4);
    let err = w
        .api
        .select_destinations(&ctx(), &s, &vec![s.instance_uuid().clone()], &true, &true)
        .await
        .unwrap_err();
    let remote = err.remote().expect("a remote error");
    // As nova raises it: oslo rebuilds nova.exception.NoValidHost from this.
    assert_eq!(remote.class, "NoValidHost");
    assert_eq!(remote.module, "nova.exception");
    assert!(
        remote.message.starts_with("No valid host was found."),
        "{remote:?}"
    );
    let allocs = w
        .placement
        .allocations_async(s.instance_uuid())
        .await
        .unwrap();
    assert!(allocs.allocations.is_empty(), "nothing is claimed");
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_capped_at_4_4_gets_nova_s_legacy_host_dicts() {
    let w = world(&[("only", 4)]).await;
    let api = SchedulerApi::new(w.transport.clone()).version_cap(Some(Version::new(4, 4)));
    let s = spec(1);
    let out = api
        .select_destinations(&ctx(), &s, &vec![s.instance_uuid().clone()], &false, &false)
        .await
        .unwrap();
    assert_eq!(
        out,
        Destinations::Legacy(vec![
            json!({"host": "only", "nodename": "only-node", "limits": {}})
        ])
    );
    w.server.stop().await;
}
