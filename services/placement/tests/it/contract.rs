//! The contract of [`PlacementService`]: every implementation passes it.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use futures_util::future::join_all;
use nova_placement::{PlacementHandle, PlacementService};
use nova_scheduler::placement::{Allocations, InventoryRecord, Name, PlacementError};

pub(crate) fn alloc(rp: &str, rc: &str, n: i64) -> Allocations {
    BTreeMap::from([(Name::from(rp), BTreeMap::from([(Name::from(rc), n)]))])
}

/// Generation checks, in-use refusals, capacity, consumers, candidates.
/// `first` is the generation a new consumer gets: 1 (Placement's) in
/// every implementation.
pub(crate) async fn semantics(p: &dyn PlacementService, first: u64) {
    let rp = p
        .create_provider_async("rp-1", "node-1", None)
        .await
        .unwrap();
    assert_eq!(rp.generation, 0);
    let listed = p.list_providers_async(Some("node-1"), None).await.unwrap();
    assert_eq!(listed, vec![rp.clone()]);
    assert!(
        p.list_providers_async(None, Some("rp-x"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        p.create_provider_async("rp-2", "node-1", None).await,
        Err(PlacementError::Duplicate(_))
    ));
    let inv = BTreeMap::from([
        (
            "VCPU".to_owned(),
            InventoryRecord {
                max_unit: 8,
                ..InventoryRecord::new(4).with_ratio(2.0)
            },
        ),
        (
            "MEMORY_MB".to_owned(),
            InventoryRecord::new(4096).with_reserved(512),
        ),
    ]);
    let g = p.set_inventories_async("rp-1", 0, &inv).await.unwrap();
    assert_eq!(g, 1);
    assert!(
        matches!(
            p.set_inventories_async("rp-1", 0, &inv).await,
            Err(PlacementError::ConcurrentUpdate(_))
        ),
        "stale generation"
    );
    let g = p
        .set_traits_async(
            "rp-1",
            g,
            &BTreeSet::from(["COMPUTE_STATUS_DISABLED".to_owned()]),
        )
        .await
        .unwrap();
    assert_eq!(
        p.traits_async("rp-1").await.unwrap(),
        (g, BTreeSet::from(["COMPUTE_STATUS_DISABLED".to_owned()]))
    );
    // Allocations: capacity (4-0)*2 = 8 VCPU, 4096-512 MEMORY_MB.
    let gen_c = p
        .put_allocations_async("vm-1", &alloc("rp-1", "VCPU", 6), "p", "u", None)
        .await
        .unwrap();
    assert_eq!(gen_c, Some(first));
    assert!(matches!(
        p.put_allocations_async("vm-2", &alloc("rp-1", "VCPU", 3), "p", "u", None)
            .await,
        Err(PlacementError::CapacityExceeded(_))
    ));
    assert!(
        matches!(
            p.put_allocations_async("vm-2", &alloc("rp-1", "MEMORY_MB", 3585), "p", "u", None)
                .await,
            Err(PlacementError::CapacityExceeded(_))
        ),
        "reserved counts"
    );
    assert!(
        matches!(
            p.put_allocations_async("vm-1", &alloc("rp-1", "VCPU", 2), "p", "u", None)
                .await,
            Err(PlacementError::ConcurrentUpdate(_))
        ),
        "consumer exists: generation needed"
    );
    assert_eq!(
        p.put_allocations_async("vm-1", &alloc("rp-1", "VCPU", 8), "p", "u", Some(first))
            .await
            .unwrap(),
        Some(first + 1)
    );
    assert_eq!(p.usages_async("rp-1").await.unwrap()["VCPU"], 8);
    assert!(matches!(
        p.put_allocations_async("vm-9", &alloc("rp-x", "VCPU", 1), "p", "u", None)
            .await,
        Err(PlacementError::BadRequest(_))
    ));
    // In use: an inventory may shrink below its usage (as in Placement)
    // but not go; the provider cannot go.
    let (g, before) = p.inventories_async("rp-1").await.unwrap();
    let mut small = before.clone();
    small.insert("VCPU".to_owned(), InventoryRecord::new(2));
    let g = p.set_inventories_async("rp-1", g, &small).await.unwrap();
    let mut gone = small.clone();
    gone.remove("VCPU");
    assert!(matches!(
        p.set_inventories_async("rp-1", g, &gone).await,
        Err(PlacementError::InventoryInUse(_))
    ));
    let g = p.set_inventories_async("rp-1", g, &before).await.unwrap();
    let _ = g;
    assert!(matches!(
        p.delete_provider_async("rp-1").await,
        Err(PlacementError::ProviderInUse(_))
    ));
    p.delete_allocations_async("vm-1").await.unwrap();
    assert_eq!(
        p.allocations_async("vm-1")
            .await
            .unwrap()
            .consumer_generation,
        None
    );
    assert_eq!(
        p.usages_async("rp-1")
            .await
            .unwrap()
            .get("VCPU")
            .copied()
            .unwrap_or(0),
        0
    );
    // Candidates come from the tables.
    let mut group = nova_scheduler::placement::RequestGroup::default();
    group.resources.insert("VCPU".into(), 2);
    let req = nova_scheduler::placement::CandidatesRequest {
        groups: vec![group],
        ..Default::default()
    };
    p.invalidate();
    assert_eq!(p.allocation_candidates_async(&req).await.unwrap().len(), 1);
    p.delete_provider_async("rp-1").await.unwrap();
    assert!(matches!(
        p.get_provider_async("rp-1").await,
        Err(PlacementError::NotFound(_))
    ));
}

/// Forty claims from eight stores (independent ones where the
/// implementation allows: separate connection pools, as separate processes
/// have) race for ten units.
pub(crate) async fn no_overcommit_under_races(
    setup: &dyn PlacementService,
    stores: &[PlacementHandle],
) {
    setup
        .create_provider_async("rp-race", "race-node", None)
        .await
        .unwrap();
    setup
        .set_inventories_async(
            "rp-race",
            0,
            &BTreeMap::from([("VCPU".to_owned(), InventoryRecord::new(10))]),
        )
        .await
        .unwrap();
    let claims = (0..40).map(|i| {
        let p = stores[i % stores.len()].clone();
        async move {
            p.put_allocations_async(
                &format!("c-{i}"),
                &alloc("rp-race", "VCPU", 1),
                "p",
                "u",
                None,
            )
            .await
        }
    });
    let results = join_all(claims).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    for r in &results {
        if let Err(e) = r {
            assert!(e.is_conflict(), "losers get a conflict, not an error: {e}");
        }
    }
    let used = setup.usages_async("rp-race").await.unwrap()["VCPU"];
    assert_eq!(used, won as i64, "usage is what was granted");
    assert!(used <= 10, "overcommitted: {used} of 10");
    assert_eq!(used, 10, "every unit was eventually granted");
}
