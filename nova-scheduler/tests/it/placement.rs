//! The Placement model: capacity arithmetic, generations, usage rules,
//! allocation candidates, and atomic claims under contention.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use nova_scheduler::placement::{
    Allocations, CandidatesRequest, GroupPolicy, InventoryRecord, MemoryPlacement, Placement,
    PlacementError, RequestGroup,
};
use proptest::prelude::*;

fn inv(pairs: &[(&str, InventoryRecord)]) -> BTreeMap<String, InventoryRecord> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn compute(p: &MemoryPlacement, uuid: &str, vcpus: i64, mem: i64) {
    let rp = p
        .create_provider(uuid, &format!("name-{uuid}"), None)
        .unwrap();
    p.set_inventories(
        uuid,
        rp.generation,
        &inv(&[
            ("VCPU", InventoryRecord::new(vcpus).with_ratio(4.0)),
            ("MEMORY_MB", InventoryRecord::new(mem).with_reserved(512)),
            ("DISK_GB", InventoryRecord::new(100)),
        ]),
    )
    .unwrap();
}

fn group(res: &[(&str, i64)]) -> RequestGroup {
    RequestGroup {
        resources: res.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        ..RequestGroup::default()
    }
}

fn alloc(rp: &str, res: &[(&str, i64)]) -> Allocations {
    BTreeMap::from([(
        rp.into(),
        res.iter().map(|(k, v)| ((*k).into(), *v)).collect(),
    )])
}

#[test]
fn capacity_counts_reserved_ratio_and_unit_rules() {
    let r = InventoryRecord {
        total: 10,
        reserved: 2,
        min_unit: 2,
        max_unit: 6,
        step_size: 2,
        allocation_ratio: 1.5,
    };
    assert_eq!(r.capacity(), 12);
    assert!(r.admits(0, 6));
    assert!(!r.admits(0, 7), "above max_unit");
    assert!(!r.admits(0, 1), "below min_unit");
    assert!(!r.admits(0, 3), "not a multiple of step_size");
    assert!(r.admits(6, 6));
    assert!(!r.admits(8, 6), "capacity");
    assert!(InventoryRecord::new(0).validate().is_err());
}

#[test]
fn stale_generations_are_conflicts() {
    let p = MemoryPlacement::new();
    let rp = p.create_provider("rp", "cmp", None).unwrap();
    let g1 = p
        .set_inventories(
            "rp",
            rp.generation,
            &inv(&[("VCPU", InventoryRecord::new(4))]),
        )
        .unwrap();
    assert_eq!(g1, rp.generation + 1);
    let err = p
        .set_inventories(
            "rp",
            rp.generation,
            &inv(&[("VCPU", InventoryRecord::new(8))]),
        )
        .unwrap_err();
    assert_eq!(err.code(), "placement.concurrent_update");
    assert_eq!(err.status(), 409);
    let err = p
        .set_traits(
            "rp",
            rp.generation,
            &BTreeSet::from(["HW_CPU_X86_AVX2".to_owned()]),
        )
        .unwrap_err();
    assert!(matches!(err, PlacementError::ConcurrentUpdate(_)));
    let g2 = p
        .set_traits("rp", g1, &BTreeSet::from(["HW_CPU_X86_AVX2".to_owned()]))
        .unwrap();
    let g3 = p
        .set_aggregates("rp", g2, &BTreeSet::from(["agg-1".to_owned()]))
        .unwrap();
    assert_eq!(p.get_provider("rp").unwrap().generation, g3);
    // Allocations bump the generation too.
    p.put_allocations("c", &alloc("rp", &[("VCPU", 1)]), "p", "u", None)
        .unwrap();
    assert_eq!(p.get_provider("rp").unwrap().generation, g3 + 1);
    assert!(matches!(
        p.create_provider("rp", "other", None),
        Err(PlacementError::Duplicate(_))
    ));
    assert!(matches!(
        p.create_provider("rp2", "cmp", None),
        Err(PlacementError::Duplicate(_))
    ));
    assert!(matches!(
        p.set_inventories("rp", g3 + 1, &inv(&[("vcpu", InventoryRecord::new(1))])),
        Err(PlacementError::BadRequest(_))
    ));
}

#[test]
fn inventory_in_use_may_shrink_but_not_go() {
    let p = MemoryPlacement::new();
    compute(&p, "rp", 2, 4096);
    p.put_allocations(
        "c",
        &alloc("rp", &[("VCPU", 2), ("MEMORY_MB", 2048)]),
        "p",
        "u",
        None,
    )
    .unwrap();
    // As Placement: capacity may drop below usage (nothing more fits).
    let (g, _) = p.inventories("rp").unwrap();
    let g = p
        .set_inventories(
            "rp",
            g,
            &inv(&[
                ("VCPU", InventoryRecord::new(1)),
                ("MEMORY_MB", InventoryRecord::new(4096)),
            ]),
        )
        .unwrap();
    assert!(matches!(
        p.put_allocations("d", &alloc("rp", &[("VCPU", 1)]), "p", "u", None),
        Err(PlacementError::CapacityExceeded(_))
    ));
    let err = p
        .set_inventories(
            "rp",
            g,
            &inv(&[("VCPU", InventoryRecord::new(2).with_ratio(4.0))]),
        )
        .unwrap_err();
    assert_eq!(
        err.code(),
        "placement.inventory.inuse",
        "dropping MEMORY_MB in use: {err}"
    );
    assert!(matches!(
        p.delete_provider("rp"),
        Err(PlacementError::ProviderInUse(_))
    ));
    p.delete_allocations("c").unwrap();
    assert_eq!(p.usages("rp").unwrap()["VCPU"], 0);
    p.delete_provider("rp").unwrap();
    assert!(matches!(
        p.get_provider("rp"),
        Err(PlacementError::NotFound(_))
    ));
}

#[test]
fn consumers_have_generations_and_replace_their_allocations() {
    let p = MemoryPlacement::new();
    compute(&p, "a", 4, 8192);
    compute(&p, "b", 4, 8192);
    let g = p
        .put_allocations("vm", &alloc("a", &[("VCPU", 2)]), "p", "u", None)
        .unwrap();
    assert_eq!(
        g,
        Some(1),
        "a new consumer is at generation 1, as in Placement"
    );
    let err = p
        .put_allocations("vm", &alloc("b", &[("VCPU", 2)]), "p", "u", None)
        .unwrap_err();
    assert!(
        err.to_string().contains("consumer generation conflict"),
        "{err}"
    );
    // A move: the new allocations replace the old ones atomically.
    p.put_allocations("vm", &alloc("b", &[("VCPU", 2)]), "p", "u", g)
        .unwrap();
    assert_eq!(p.usages("a").unwrap()["VCPU"], 0);
    assert_eq!(p.usages("b").unwrap()["VCPU"], 2);
    let cur = p.allocations("vm").unwrap();
    assert_eq!(cur.consumer_generation, Some(2));
    assert_eq!(cur.allocations["b"]["VCPU"], 2);
    let err = p
        .put_allocations("other", &alloc("a", &[("VCPU", 17)]), "p", "u", None)
        .unwrap_err();
    assert!(matches!(err, PlacementError::CapacityExceeded(_)), "{err}");
    assert_eq!(
        p.usages("a").unwrap()["VCPU"],
        0,
        "a refused claim changes nothing"
    );
}

#[test]
fn candidates_honour_traits_aggregates_limit_and_nesting() {
    let p = MemoryPlacement::new();
    for i in 0..6 {
        compute(&p, &format!("cn{i}"), 8, 16384);
    }
    let g = p.get_provider("cn1").unwrap().generation;
    p.set_traits("cn1", g, &BTreeSet::from(["HW_CPU_X86_AVX2".to_owned()]))
        .unwrap();
    let g = p.get_provider("cn2").unwrap().generation;
    p.set_traits(
        "cn2",
        g,
        &BTreeSet::from([
            "HW_CPU_X86_AVX2".to_owned(),
            "COMPUTE_STATUS_DISABLED".to_owned(),
        ]),
    )
    .unwrap();
    let g = p.get_provider("cn3").unwrap().generation;
    p.set_aggregates("cn3", g, &BTreeSet::from(["az1".to_owned()]))
        .unwrap();
    // A GPU child under cn4.
    p.create_provider("cn4-gpu", "cn4 gpu", Some("cn4"))
        .unwrap();
    p.set_inventories("cn4-gpu", 0, &inv(&[("VGPU", InventoryRecord::new(2))]))
        .unwrap();

    let roots = |req: &CandidatesRequest| -> Vec<String> {
        let c = p.allocation_candidates(req).unwrap();
        (0..c.len()).map(|i| c.root(i).to_string()).collect()
    };
    let base = group(&[("VCPU", 2), ("MEMORY_MB", 1024)]);
    assert_eq!(
        roots(&CandidatesRequest {
            groups: vec![base.clone()],
            ..Default::default()
        })
        .len(),
        6
    );
    let mut avx = base.clone();
    avx.required_traits.insert("HW_CPU_X86_AVX2".into());
    assert_eq!(
        roots(&CandidatesRequest {
            groups: vec![avx.clone()],
            ..Default::default()
        }),
        ["cn1", "cn2"]
    );
    let req = CandidatesRequest {
        groups: vec![avx],
        root_forbidden: BTreeSet::from(["COMPUTE_STATUS_DISABLED".to_owned()]),
        ..Default::default()
    };
    assert_eq!(roots(&req), ["cn1"]);
    let mut in_az = base.clone();
    in_az
        .member_of
        .push(BTreeSet::from(["az1".to_owned(), "az9".to_owned()]));
    assert_eq!(
        roots(&CandidatesRequest {
            groups: vec![in_az],
            ..Default::default()
        }),
        ["cn3"]
    );
    let mut not_az = base.clone();
    not_az.forbidden_aggregates.insert("az1".into());
    assert_eq!(
        roots(&CandidatesRequest {
            groups: vec![not_az],
            ..Default::default()
        })
        .len(),
        5
    );
    assert_eq!(
        roots(&CandidatesRequest {
            groups: vec![base.clone()],
            limit: Some(2),
            ..Default::default()
        }),
        ["cn0", "cn1"]
    );
    let mut unknown = base.clone();
    unknown.required_traits.insert("CUSTOM_NOPE".into());
    assert!(
        roots(&CandidatesRequest {
            groups: vec![unknown],
            ..Default::default()
        })
        .is_empty()
    );

    // Granular: compute resources in the unnumbered group, a VGPU from one provider.
    let mut gpu = group(&[("VGPU", 1)]);
    gpu.suffix = "1".into();
    let req = CandidatesRequest {
        groups: vec![base.clone(), gpu.clone()],
        group_policy: GroupPolicy::Isolate,
        ..Default::default()
    };
    let c = p.allocation_candidates(&req).unwrap();
    assert_eq!(c.len(), 1);
    let a = &c.request(0);
    assert_eq!(&*a.root_provider_uuid, "cn4");
    assert_eq!(a.allocations["cn4-gpu"]["VGPU"], 1);
    assert_eq!(a.allocations["cn4"]["VCPU"], 2);
    assert_eq!(a.providers_for("1"), ["cn4-gpu"]);
    assert_eq!(&*c.summary("cn4-gpu").unwrap().root_provider_uuid, "cn4");
    assert_eq!(c.summary("cn4").unwrap().resource("VCPU"), Some((32, 0)));
    assert!(matches!(
        p.delete_provider("cn4"),
        Err(PlacementError::CannotDeleteParent(_))
    ));
    let bad = CandidatesRequest {
        groups: vec![group(&[("vcpu", 1)])],
        ..Default::default()
    };
    assert!(matches!(
        p.allocation_candidates(&bad),
        Err(PlacementError::BadRequest(_))
    ));
}

/// Many claimants race for the last units: as many win as there are
/// units, the rest get a conflict, and usage never passes capacity.
#[test]
fn racing_claims_never_overcommit() {
    let p = Arc::new(MemoryPlacement::new());
    let rp = p.create_provider("rp", "cmp", None).unwrap();
    p.set_inventories(
        "rp",
        rp.generation,
        &inv(&[("VCPU", InventoryRecord::new(10).with_ratio(1.5))]),
    )
    .unwrap();
    let won = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let (p, won) = (p.clone(), won.clone());
            std::thread::spawn(move || {
                for i in 0..10 {
                    match p.put_allocations(
                        &format!("vm-{t}-{i}"),
                        &alloc("rp", &[("VCPU", 1)]),
                        "p",
                        "u",
                        None,
                    ) {
                        Ok(_) => {
                            won.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => assert!(e.is_conflict(), "{e}"),
                    }
                    assert!(p.usages("rp").unwrap()["VCPU"] <= 15);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(won.load(Ordering::SeqCst), 15);
    assert_eq!(p.usages("rp").unwrap()["VCPU"], 15);
}

proptest! {
    /// Any sequence of claims and releases keeps usage within capacity and
    /// equal to the sum of the consumers' allocations.
    #[test]
    fn usage_stays_within_capacity(ops in proptest::collection::vec((0usize..6, 1i64..5, proptest::bool::ANY), 1..60)) {
        let p = MemoryPlacement::new();
        compute(&p, "rp", 2, 4096);
        for (c, n, release) in ops {
            let consumer = format!("c{c}");
            if release {
                p.delete_allocations(&consumer).unwrap();
            } else {
                let generation = p.allocations(&consumer).unwrap().consumer_generation;
                let _ = p.put_allocations(&consumer, &alloc("rp", &[("VCPU", n)]), "p", "u", generation);
            }
            let used = p.usages("rp").unwrap()["VCPU"];
            prop_assert!(used <= 8);
            let sum: i64 = (0..6).map(|c| p.allocations(&format!("c{c}")).unwrap().allocations.get("rp").map_or(0, |r| r["VCPU"])).sum();
            prop_assert_eq!(used, sum);
        }
    }
}

/// `member_of` as Placement applies it (bug 1792503): an aggregate on a
/// root spans its tree for the unnumbered group only; a numbered group's
/// provider must be in the aggregate itself.
#[test]
fn root_aggregates_span_the_tree_for_the_unnumbered_group_only() {
    let p = MemoryPlacement::new();
    let rp = p.create_provider("cn", "cn", None).unwrap();
    p.set_aggregates("cn", rp.generation, &BTreeSet::from(["agg-a".to_owned()]))
        .unwrap();
    for numa in ["numa0", "numa1"] {
        p.create_provider(numa, numa, Some("cn")).unwrap();
        p.set_inventories(numa, 0, &inv(&[("VCPU", InventoryRecord::new(4))]))
            .unwrap();
    }
    let req = |suffix: &str, agg: &str| {
        let mut g = group(&[("VCPU", 1)]);
        g.suffix = suffix.into();
        g.member_of = vec![BTreeSet::from([agg.to_owned()])];
        CandidatesRequest {
            groups: vec![g],
            ..Default::default()
        }
    };
    let count = |r: &CandidatesRequest| p.allocation_candidates(r).unwrap().len();
    assert_eq!(
        count(&req("", "agg-a")),
        2,
        "the root's aggregate spans its tree"
    );
    assert_eq!(count(&req("1", "agg-a")), 0, "not for a numbered group");
    let g = p.aggregates("numa1").unwrap().0;
    p.set_aggregates("numa1", g, &BTreeSet::from(["agg-a".to_owned()]))
        .unwrap();
    assert_eq!(count(&req("1", "agg-a")), 1, "the provider itself in it");
}
