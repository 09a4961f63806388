//! `nova-manage placement heal_allocations | audit | sync_aggregates` on
//! SQLite in memory and the in-memory Placement.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use nova_objects::db::{Database, DbConfig};
use nova_objects::{Aggregate, ComputeNode, Instance, Objects};
use nova_placement::PlacementHandle;
use nova_scheduler::placement::InventoryRecord;
use nova_service::context::admin;

const NODE: &str = "d1d1d1d1-0000-4000-8000-000000000001";
const AGG: &str = "e1e1e1e1-0000-4000-8000-000000000001";

async fn setup() -> (Objects, PlacementHandle) {
    let db = Database::connect(&DbConfig::memory()).await.unwrap();
    db.sync().await.unwrap();
    let objects = Objects::new(db);
    let placement = PlacementHandle::memory();
    let mut n = ComputeNode::new()
        .with_uuid(NODE.to_owned())
        .with_host(Some("cmp-1".into()))
        .with_hypervisor_hostname(Some("cmp-1-node".into()))
        .with_vcpus(8)
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
    objects.create(&admin(), &mut n).await.unwrap();
    let rp = placement
        .create_provider_async(NODE, "cmp-1-node", None)
        .await
        .unwrap();
    let inv = BTreeMap::from([
        ("VCPU".to_owned(), InventoryRecord::new(8)),
        ("MEMORY_MB".to_owned(), InventoryRecord::new(8192)),
        ("DISK_GB".to_owned(), InventoryRecord::new(100)),
    ]);
    placement
        .set_inventories_async(NODE, rp.generation, &inv)
        .await
        .unwrap();
    (objects, placement)
}

async fn instance(objects: &Objects, on_host: bool) -> String {
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut i = Instance::new()
        .with_uuid(uuid.clone())
        .with_project_id(Some("p".into()))
        .with_user_id(Some("u".into()))
        .with_vcpus(Some(2))
        .with_memory_mb(Some(1024))
        .with_root_gb(Some(10))
        .with_ephemeral_gb(Some(5))
        .with_locked(false);
    if on_host {
        i = i
            .with_host(Some("cmp-1".into()))
            .with_node(Some("cmp-1-node".into()));
    }
    objects.create(&admin(), &mut i).await.unwrap();
    uuid
}

#[tokio::test]
async fn heal_allocations_creates_what_is_missing() {
    let (objects, placement) = setup().await;
    let vm = instance(&objects, true).await;
    let _unscheduled = instance(&objects, false).await;
    let dry = nova_manage::placement::heal_allocations(&objects, &placement, true)
        .await
        .unwrap();
    assert_eq!(dry.count, 1);
    assert!(
        placement
            .allocations_async(&vm)
            .await
            .unwrap()
            .allocations
            .is_empty()
    );
    let done = nova_manage::placement::heal_allocations(&objects, &placement, false)
        .await
        .unwrap();
    assert_eq!(done.count, 1, "{:?}", done.lines);
    let a = placement.allocations_async(&vm).await.unwrap();
    let res = &a.allocations[NODE];
    assert_eq!(
        (res["VCPU"], res["MEMORY_MB"], res["DISK_GB"]),
        (2, 1024, 15)
    );
    assert_eq!((a.project_id.as_str(), a.user_id.as_str()), ("p", "u"));
    let again = nova_manage::placement::heal_allocations(&objects, &placement, false)
        .await
        .unwrap();
    assert_eq!(again.count, 0, "nothing left to heal");
}

#[tokio::test]
async fn audit_finds_and_deletes_orphans() {
    let (objects, placement) = setup().await;
    let vm = instance(&objects, true).await;
    nova_manage::placement::heal_allocations(&objects, &placement, false)
        .await
        .unwrap();
    let orphan = uuid::Uuid::new_v4().to_string();
    let alloc = BTreeMap::from([(NODE.into(), BTreeMap::from([("VCPU".into(), 1)]))]);
    placement
        .put_allocations_async(&orphan, &alloc, "p", "u", None)
        .await
        .unwrap();
    let found = nova_manage::placement::audit(&objects, &placement, false)
        .await
        .unwrap();
    assert_eq!(found.count, 1);
    assert!(found.lines[0].contains(&orphan), "{:?}", found.lines);
    let deleted = nova_manage::placement::audit(&objects, &placement, true)
        .await
        .unwrap();
    assert_eq!(deleted.count, 1);
    assert!(
        placement
            .allocations_async(&orphan)
            .await
            .unwrap()
            .allocations
            .is_empty()
    );
    assert!(
        !placement
            .allocations_async(&vm)
            .await
            .unwrap()
            .allocations
            .is_empty(),
        "the instance's stay"
    );
    assert_eq!(placement.usages_async(NODE).await.unwrap()["VCPU"], 2);
}

#[tokio::test]
async fn sync_aggregates_adds_providers_to_their_hosts_aggregates() {
    let (objects, placement) = setup().await;
    let mut a = Aggregate::new()
        .with_uuid(AGG.to_owned())
        .with_name("agg-1".to_owned())
        .with_hosts(Some(vec!["cmp-1".into()]));
    objects.create(&admin(), &mut a).await.unwrap();
    let out = nova_manage::placement::sync_aggregates(&objects, &placement)
        .await
        .unwrap();
    assert_eq!(out.count, 1, "{:?}", out.lines);
    assert_eq!(
        placement.aggregates_async(NODE).await.unwrap().1,
        BTreeSet::from([AGG.to_owned()])
    );
    let again = nova_manage::placement::sync_aggregates(&objects, &placement)
        .await
        .unwrap();
    assert_eq!(again.count, 0);
}
