//! nova's objects in, scheduling decisions out (feature `objects`): the
//! real nova 34 RequestSpec and ComputeNode primitives become a request and
//! a host state, and the default filters decide on them as nova would.

use std::collections::BTreeSet;
use std::path::PathBuf;

use nova_objects::{ComputeNode, RequestSpec, Service, VersionedObject};
use nova_scheduler::from_objects;
use nova_scheduler::{Scheduler, SchedulerConfig};
use serde_json::Value;

fn fixture<T: VersionedObject>(name: &str) -> T {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../nova-objects/tests/fixtures/{name}.json"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    T::obj_from_primitive(&v["primitive"]).unwrap()
}

#[test]
fn request_spec_and_compute_node_become_scheduler_inputs() {
    let spec: RequestSpec = fixture("RequestSpec");
    let r = from_objects::request(&spec, &["a".into(), "b".into()]);
    assert_eq!(
        (
            r.flavor.vcpus,
            r.flavor.memory_mb,
            r.flavor.root_gb,
            r.flavor.ephemeral_gb,
            r.flavor.swap
        ),
        (2, 4096, 20, 5, 512)
    );
    assert_eq!(
        r.flavor.extra_specs["aggregate_instance_extra_specs:ssd"],
        "true"
    );
    assert_eq!(r.image_prop("hw_architecture"), Some("x86_64"));
    assert_eq!(r.image_prop("img_hv_type"), Some("kvm"));
    assert_eq!(r.availability_zone.as_deref(), Some("az1"));
    assert_eq!(r.project_id, "p1");
    assert_eq!(r.instance_uuids, ["a", "b"]);
    let res = r.resources();
    assert_eq!(
        res.resources["DISK_GB"],
        20 + 5 + 1,
        "root + ephemeral + swap rounded up to GiB"
    );

    let cn: ComputeNode = fixture("ComputeNode");
    let now = chrono::Utc::now();
    let up = Service::new()
        .with_disabled(false)
        .with_forced_down(false)
        .with_last_seen_up(Some(now - chrono::Duration::seconds(5)));
    let h = from_objects::host_state(&cn, Some(&up), vec![], BTreeSet::new(), "cell1", now);
    assert_eq!(
        (
            h.host.as_str(),
            h.vcpus_total,
            h.free_ram_mb,
            h.num_instances
        ),
        ("compute-1", 32, 118272, 3)
    );
    assert_eq!(
        h.supported_instances,
        vec![["x86_64".to_owned(), "kvm".into(), "hvm".into()]]
    );

    // Nova's default filters: the compute service is up, the image fits the host.
    let mut s = Scheduler::new(SchedulerConfig::default()).unwrap();
    s.upsert_host(h.clone());
    let one = from_objects::request(&spec, &["a".into()]);
    let picks = s.select_destinations(&one).unwrap();
    assert_eq!(picks[0][0].host, "compute-1");

    // A service last seen two hours ago is down: ComputeFilter removes the host.
    let down = Service::new()
        .with_disabled(false)
        .with_forced_down(false)
        .with_last_seen_up(Some(now - chrono::Duration::hours(2)));
    let mut s = Scheduler::new(SchedulerConfig::default()).unwrap();
    s.upsert_host(from_objects::host_state(
        &cn,
        Some(&down),
        vec![],
        BTreeSet::new(),
        "cell1",
        now,
    ));
    let err = s.select_destinations(&one).unwrap_err();
    assert!(
        err.to_string().contains("ComputeFilter left no host"),
        "{err}"
    );
}
