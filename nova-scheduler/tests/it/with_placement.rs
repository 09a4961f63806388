//! The scheduler with Placement: candidates, claims, alternates with their
//! allocation requests, and what happens when claims race.

use std::path::PathBuf;

use nova_scheduler::placement::{MemoryPlacement, Placement};
use nova_scheduler::{HostState, Request, Scenario, Scheduler, SchedulerConfig};
use serde_json::Value;

fn golden(name: &str) -> (Scenario, Value) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{name}.scenario.json"))).unwrap(),
    )
    .unwrap();
    let exp: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{name}.expected.json"))).unwrap(),
    )
    .unwrap();
    (Scenario::parse(&doc).unwrap(), exp)
}

/// With the Placement checks done by Placement (not emulated as filters),
/// the decision is nova's on the same scenario, and the claims are there.
#[test]
fn placement_backed_selection_matches_nova() {
    let (mut sc, expected) = golden("var-defaults-placement-h300");
    // Placement does what the emulated filters did.
    sc.config.enabled_filters.retain(|f| {
        ![
            "PlacementFilter",
            "CoreFilter",
            "RamFilter",
            "DiskFilter",
            "AvailabilityZoneFilter",
        ]
        .contains(&f.as_str())
    });
    let placement = MemoryPlacement::new();
    sc.populate(&placement).unwrap();
    let mut s = sc.scheduler().unwrap();
    let picks = s.select_destinations_with(&placement, &sc.request).unwrap();
    let ours: Vec<Vec<(String, String)>> = picks
        .iter()
        .map(|v| {
            v.iter()
                .map(|x| (x.host.clone(), x.nodename.clone()))
                .collect()
        })
        .collect();
    let theirs: Vec<Vec<(String, String)>> = expected["selections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| {
                    (
                        x["host"].as_str().unwrap().to_owned(),
                        x["nodename"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .collect();
    assert_eq!(ours, theirs);
    for (uuid, sel) in sc.request.instance_uuids.iter().zip(&picks) {
        let claimed = placement.allocations(uuid).unwrap();
        assert_eq!(
            Some(&claimed.allocations),
            sel[0].allocation_request.as_ref(),
            "the chosen host's candidate is claimed"
        );
        assert!(
            sel[1..].iter().all(|a| a.allocation_request.is_some()),
            "alternates carry a candidate"
        );
        let rp = &sel[0].compute_node_uuid;
        assert_eq!(
            claimed.allocations[rp.as_str()]["MEMORY_MB"],
            sc.request.flavor.memory_mb
        );
    }
}

fn cluster(n: usize, vcpus: i64) -> (MemoryPlacement, Vec<HostState>) {
    let p = MemoryPlacement::new();
    let mut hosts = Vec::new();
    for i in 0..n {
        let mut h = HostState::new(&format!("cmp-{i}"));
        h.uuid = format!("rp-{i}");
        h.vcpus_total = vcpus;
        h.cpu_allocation_ratio = 1.0;
        h.free_ram_mb = 32768 - i as i64; // a stable preference order
        hosts.push(h);
    }
    let sc = Scenario {
        config: SchedulerConfig::default(),
        aggregates: Vec::new(),
        hosts: hosts.clone(),
        request: Request::default(),
    };
    sc.populate(&p).unwrap();
    (p, hosts)
}

fn scheduler(hosts: &[HostState]) -> Scheduler {
    let mut s = Scheduler::new(SchedulerConfig::default()).unwrap();
    for h in hosts {
        s.upsert_host(h.clone());
    }
    s
}

/// Two schedulers with the same (soon stale) view race for the last
/// slots: Placement lets each slot go once; the loser of a claim takes the
/// next host, and nothing is overcommitted.
#[test]
fn racing_schedulers_never_overcommit() {
    let (p, hosts) = cluster(3, 2);
    let (mut a, mut b) = (scheduler(&hosts), scheduler(&hosts));
    let req = |u: &str| Request {
        flavor: nova_scheduler::FlavorSpec {
            vcpus: 2,
            ..Default::default()
        },
        instance_uuids: vec![u.to_owned()],
        ..Request::default()
    };
    let first = a.select_destinations_with(&p, &req("vm-a")).unwrap();
    // b does not know a's placement and prefers the same host, whose claim fails.
    let second = b.select_destinations_with(&p, &req("vm-b")).unwrap();
    assert_eq!(first[0][0].host, "cmp-0");
    assert_ne!(second[0][0].host, first[0][0].host);
    let third = b.select_destinations_with(&p, &req("vm-c")).unwrap();
    assert_ne!(third[0][0].host, second[0][0].host);
    assert_ne!(third[0][0].host, first[0][0].host);
    let err = a.select_destinations_with(&p, &req("vm-d")).unwrap_err();
    assert!(err.is_no_valid_host(), "{err}");
    assert!(p.allocations("vm-d").unwrap().allocations.is_empty());
    for i in 0..3 {
        assert_eq!(p.usages(&format!("rp-{i}")).unwrap()["VCPU"], 2);
    }
}

/// A multi-instance request that cannot be completed releases every claim
/// it made and leaves the host states as they were.
#[test]
fn partial_failure_releases_claims() {
    let (p, hosts) = cluster(2, 2);
    let mut s = scheduler(&hosts);
    let before = s.hosts().to_vec();
    let req = Request {
        flavor: nova_scheduler::FlavorSpec {
            vcpus: 2,
            ..Default::default()
        },
        instance_uuids: vec!["a".into(), "b".into(), "c".into()],
        ..Request::default()
    };
    let err = s.select_destinations_with(&p, &req).unwrap_err();
    assert!(err.to_string().contains("No valid host was found"), "{err}");
    for u in ["a", "b", "c"] {
        assert!(
            p.allocations(u).unwrap().consumer_generation.is_none(),
            "{u} released"
        );
    }
    assert_eq!(s.hosts(), &before[..]);
    for i in 0..2 {
        assert_eq!(p.usages(&format!("rp-{i}")).unwrap()["VCPU"], 0);
    }
}

/// A compute Placement knows but the host view does not (it registered
/// after the view was loaded) is reported before anything is claimed when
/// the caller asks, and left out of the choice when it accepts.
#[test]
fn hosts_missing_from_the_view_are_reported_before_claiming() {
    let (p, hosts) = cluster(3, 4);
    let mut s = scheduler(&hosts[..2]);
    let req = Request {
        flavor: nova_scheduler::FlavorSpec {
            vcpus: 1,
            memory_mb: 1024,
            ..Default::default()
        },
        instance_uuids: vec!["a".into(), "b".into(), "c".into()],
        ..Request::default()
    };
    let mut asked = Vec::new();
    let err = s
        .select_destinations_known(&p, &req, |unknown| {
            asked = unknown.to_vec();
            false
        })
        .unwrap_err();
    assert_eq!(asked, vec!["rp-2".to_owned()]);
    assert!(
        matches!(&err, nova_scheduler::Error::UnknownHosts { providers } if providers == &asked),
        "{err}"
    );
    for u in ["a", "b", "c"] {
        assert!(p.allocations(u).unwrap().consumer_generation.is_none());
    }
    // Accepted: only the known hosts are chosen.
    let picks = s.select_destinations_known(&p, &req, |_| true).unwrap();
    assert!(picks.iter().all(|alts| alts[0].host != "cmp-2"));
    // Once the host is in the view, nobody is asked and it is used.
    s.upsert_host(hosts[2].clone());
    let req2 = Request {
        instance_uuids: vec!["d".into(), "e".into(), "f".into()],
        ..req
    };
    let picks = s
        .select_destinations_known(&p, &req2, |_| panic!("every host is known"))
        .unwrap();
    assert!(picks.iter().any(|alts| alts[0].host == "cmp-2"));
}
