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
    assert_eq!(
        p.provider_consumers_async("rp-1").await.unwrap(),
        vec!["vm-1".to_owned()],
        "the provider's consumers"
    );
    assert!(
        p.provider_consumers_async("rp-x")
            .await
            .unwrap_or_default()
            .is_empty()
    );
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

/// Batch writes (`POST /allocations`, the reshaper): all or nothing, and
/// Placement's generations — the reshaper bumps a provider for the
/// interim inventories, once for the allocations, once for the final
/// inventories; the allocations bump each provider once however many
/// consumers use it.
pub(crate) async fn batch_writes(p: &dyn PlacementService) {
    use nova_scheduler::placement::{ConsumerWrite, InventoryWrite};
    // Uuids, so a real Placement takes them too.
    const ROOT: &str = "b0000000-0000-4000-8000-000000000001";
    const CHILD: &str = "b0000000-0000-4000-8000-000000000002";
    const C1: &str = "b0000000-0000-4000-8000-0000000000c1";
    const C2: &str = "b0000000-0000-4000-8000-0000000000c2";
    const C3: &str = "b0000000-0000-4000-8000-0000000000c3";
    let write = |c: &str, a: Allocations, generation: Option<u64>| ConsumerWrite {
        consumer: c.to_owned(),
        allocations: a,
        project_id: "p".into(),
        user_id: "u".into(),
        generation,
    };
    let both = |a: Allocations, b: Allocations| -> Allocations {
        let mut out = a;
        for (rp, res) in b {
            out.entry(rp).or_default().extend(res);
        }
        out
    };
    p.create_provider_async(ROOT, "bw-root", None)
        .await
        .unwrap();
    let inv = BTreeMap::from([
        ("VCPU".to_owned(), InventoryRecord::new(8)),
        ("DISK_GB".to_owned(), InventoryRecord::new(100)),
    ]);
    p.set_inventories_async(ROOT, 0, &inv).await.unwrap();
    let a1 = both(alloc(ROOT, "VCPU", 2), alloc(ROOT, "DISK_GB", 10));
    p.put_allocations_async(C1, &a1, "p", "u", None)
        .await
        .unwrap();
    p.put_allocations_async(C2, &alloc(ROOT, "VCPU", 1), "p", "u", None)
        .await
        .unwrap();
    p.create_provider_async(CHILD, "bw-child", Some(ROOT))
        .await
        .unwrap();
    let root_gen = p.get_provider_async(ROOT).await.unwrap().generation;
    assert_eq!(root_gen, 3);
    let reshape = |disk: i64| {
        (
            vec![
                InventoryWrite {
                    provider: ROOT.into(),
                    generation: 3,
                    inventories: BTreeMap::from([(
                        "DISK_GB".to_owned(),
                        InventoryRecord {
                            max_unit: 1000,
                            ..InventoryRecord::new(100)
                        },
                    )]),
                },
                InventoryWrite {
                    provider: CHILD.into(),
                    generation: 0,
                    inventories: BTreeMap::from([("VCPU".to_owned(), InventoryRecord::new(8))]),
                },
            ],
            vec![
                write(
                    C1,
                    both(alloc(ROOT, "DISK_GB", disk), alloc(CHILD, "VCPU", 2)),
                    Some(1),
                ),
                write(C2, alloc(CHILD, "VCPU", 1), Some(1)),
            ],
        )
    };
    // Over capacity at the end: nothing written.
    let before = (
        p.inventories_async(ROOT).await.unwrap(),
        p.inventories_async(CHILD).await.unwrap(),
        p.allocations_async(C1).await.unwrap(),
        p.allocations_async(C2).await.unwrap(),
    );
    let (invs, cons) = reshape(1000);
    let r = p.write_many_async(&invs, &cons).await;
    assert!(
        matches!(r, Err(PlacementError::CapacityExceeded(_))),
        "{r:?}"
    );
    // The VCPU still in use on the root when it loses its inventory.
    let (invs, mut cons) = reshape(10);
    cons.pop();
    assert!(matches!(
        p.write_many_async(&invs, &cons).await,
        Err(PlacementError::InventoryInUse(_))
    ));
    let after = (
        p.inventories_async(ROOT).await.unwrap(),
        p.inventories_async(CHILD).await.unwrap(),
        p.allocations_async(C1).await.unwrap(),
        p.allocations_async(C2).await.unwrap(),
    );
    assert_eq!(before, after, "a failed batch leaves no trace");
    // The reshape: each provider +3 (interim, allocations, final).
    let (invs, cons) = reshape(10);
    assert_eq!(
        p.write_many_async(&invs, &cons).await.unwrap(),
        vec![Some(2), Some(2)]
    );
    assert_eq!(p.get_provider_async(ROOT).await.unwrap().generation, 6);
    assert_eq!(p.get_provider_async(CHILD).await.unwrap().generation, 3);
    assert_eq!(
        p.usages_async(ROOT).await.unwrap(),
        BTreeMap::from([("DISK_GB".to_owned(), 10)])
    );
    assert_eq!(
        p.usages_async(CHILD).await.unwrap(),
        BTreeMap::from([("VCPU".to_owned(), 3)])
    );
    // Allocations only: c1 released (its providers bumped), c3 new; the
    // child bumped once for both c1's release and c3.
    assert_eq!(
        p.write_many_async(
            &[],
            &[
                write(C1, Allocations::new(), Some(2)),
                write(C3, alloc(CHILD, "VCPU", 4), None),
            ],
        )
        .await
        .unwrap(),
        vec![None, Some(1)]
    );
    assert_eq!(p.get_provider_async(ROOT).await.unwrap().generation, 7);
    assert_eq!(p.get_provider_async(CHILD).await.unwrap().generation, 4);
    assert_eq!(
        p.allocations_async(C1).await.unwrap().consumer_generation,
        None
    );
    // A stale consumer generation anywhere: nothing written.
    assert!(matches!(
        p.write_many_async(
            &[],
            &[
                write(C2, alloc(CHILD, "VCPU", 2), Some(2)),
                write(C3, alloc(CHILD, "VCPU", 1), Some(7)),
            ],
        )
        .await,
        Err(PlacementError::ConcurrentUpdate(_))
    ));
    assert_eq!(
        p.allocations_async(C2).await.unwrap().allocations,
        alloc(CHILD, "VCPU", 1)
    );
    assert_eq!(p.get_provider_async(CHILD).await.unwrap().generation, 4);
}

/// Placement's generation bumps for single-consumer writes: a PUT bumps
/// the providers the consumer allocates from now (or, released with an
/// empty PUT, those it had allocations on), never the ones it only left;
/// a DELETE bumps none (freeing never overcommits).
pub(crate) async fn allocation_bumps(p: &dyn PlacementService) {
    let gen_of =
        |rp: &'static str| async move { p.get_provider_async(rp).await.unwrap().generation };
    for rp in ["ab-a", "ab-b"] {
        p.create_provider_async(rp, rp, None).await.unwrap();
        let inv = BTreeMap::from([("VCPU".to_owned(), InventoryRecord::new(8))]);
        p.set_inventories_async(rp, 0, &inv).await.unwrap();
    }
    let g = p
        .put_allocations_async("ab-c", &alloc("ab-a", "VCPU", 2), "p", "u", None)
        .await
        .unwrap();
    assert_eq!((gen_of("ab-a").await, gen_of("ab-b").await), (2, 1));
    // The move: only the provider allocated from now moves.
    let g = p
        .put_allocations_async("ab-c", &alloc("ab-b", "VCPU", 2), "p", "u", g)
        .await
        .unwrap();
    assert_eq!((gen_of("ab-a").await, gen_of("ab-b").await), (2, 2));
    // Released with an empty PUT: the providers it had allocations on.
    assert_eq!(
        p.put_allocations_async("ab-c", &Allocations::new(), "p", "u", g)
            .await
            .unwrap(),
        None
    );
    assert_eq!((gen_of("ab-a").await, gen_of("ab-b").await), (2, 3));
    // DELETE: none.
    p.put_allocations_async("ab-d", &alloc("ab-a", "VCPU", 3), "p", "u", None)
        .await
        .unwrap();
    p.delete_allocations_async("ab-d").await.unwrap();
    assert_eq!((gen_of("ab-a").await, gen_of("ab-b").await), (3, 3));
    assert_eq!(
        p.usages_async("ab-a")
            .await
            .unwrap()
            .get("VCPU")
            .copied()
            .unwrap_or(0),
        0
    );
}
