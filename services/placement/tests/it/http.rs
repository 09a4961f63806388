//! [`HttpPlacement`], the services' Placement over HTTP, against our own
//! API (nova-placement's router on a local port) and against the real
//! OpenStack Placement 16 (PyPI openstack-placement on SQLite, started here
//! through `scripts/placement_py_server.py`): the same contract, with
//! Placement's uuids, no leaked allocations.

use std::collections::{BTreeMap, BTreeSet};

use nova_placement::{
    HttpPlacement, MemoryPlacementService, PlacementAuth, PlacementHandle, PlacementService, api,
};
use nova_scheduler::placement::{CandidatesRequest, InventoryRecord, PlacementError, RequestGroup};

use crate::contract::alloc;

const RP: &str = "a1a1a1a1-0000-4000-8000-000000000001";
const VM: &str = "b2b2b2b2-0000-4000-8000-000000000002";
const VM2: &str = "b2b2b2b2-0000-4000-8000-000000000003";

async fn contract(p: &dyn PlacementService) {
    let rp = p
        .create_provider_async(RP, "http-node", None)
        .await
        .unwrap();
    assert_eq!((rp.generation, rp.root_provider_uuid.as_str()), (0, RP));
    assert_eq!(
        p.list_providers_async(Some("http-node"), None)
            .await
            .unwrap(),
        vec![rp]
    );
    assert!(matches!(
        p.create_provider_async("a1a1a1a1-0000-4000-8000-0000000000ff", "http-node", None)
            .await,
        Err(PlacementError::Duplicate(_))
    ));
    let inv = BTreeMap::from([
        (
            "VCPU".to_owned(),
            InventoryRecord {
                max_unit: 4,
                ..InventoryRecord::new(4)
            },
        ),
        ("CUSTOM_HTTP_GOLD".to_owned(), InventoryRecord::new(2)),
    ]);
    assert_eq!(
        p.set_inventories_async(RP, 0, &inv).await.unwrap(),
        1,
        "custom class created first"
    );
    assert!(matches!(
        p.set_inventories_async(RP, 0, &inv).await,
        Err(PlacementError::ConcurrentUpdate(_))
    ));
    let (g, got) = p.inventories_async(RP).await.unwrap();
    assert_eq!(
        (g, got["VCPU"].total, got["CUSTOM_HTTP_GOLD"].total),
        (1, 4, 2)
    );
    let traits = BTreeSet::from(["CUSTOM_HTTP_FAST".to_owned(), "HW_CPU_X86_AVX2".to_owned()]);
    let g = p.set_traits_async(RP, g, &traits).await.unwrap();
    assert_eq!(p.traits_async(RP).await.unwrap(), (g, traits));
    let aggs = BTreeSet::from(["c3c3c3c3-0000-4000-8000-000000000004".to_owned()]);
    let g = p.set_aggregates_async(RP, g, &aggs).await.unwrap();
    assert_eq!(p.aggregates_async(RP).await.unwrap(), (g, aggs));

    // A claim, a consumer generation, a conflict, capacity.
    let first = p
        .put_allocations_async(VM, &alloc(RP, "VCPU", 2), "p", "u", None)
        .await
        .unwrap();
    assert_eq!(first, Some(1));
    let cur = p.allocations_async(VM).await.unwrap();
    assert_eq!(
        (cur.consumer_generation, cur.project_id.as_str()),
        (Some(1), "p")
    );
    assert!(matches!(
        p.put_allocations_async(VM, &alloc(RP, "VCPU", 3), "p", "u", None)
            .await,
        Err(PlacementError::ConcurrentUpdate(_))
    ));
    assert_eq!(
        p.put_allocations_async(VM, &alloc(RP, "VCPU", 3), "p", "u", Some(1))
            .await
            .unwrap(),
        Some(2)
    );
    assert!(matches!(
        p.put_allocations_async(VM2, &alloc(RP, "VCPU", 2), "p", "u", None)
            .await,
        Err(PlacementError::CapacityExceeded(_))
    ));
    assert_eq!(p.usages_async(RP).await.unwrap()["VCPU"], 3);

    // Candidates: one left to give.
    let mut group = RequestGroup::default();
    group.resources.insert("VCPU".into(), 1);
    group.required_traits.insert("CUSTOM_HTTP_FAST".into());
    let req = CandidatesRequest {
        groups: vec![group.clone()],
        ..Default::default()
    };
    let c = p.allocation_candidates_async(&req).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(&**c.root(0), RP);
    assert_eq!(c.summary(RP).unwrap().resource("VCPU"), Some((4, 3)));
    group.resources.insert("VCPU".into(), 2);
    let req = CandidatesRequest {
        groups: vec![group],
        ..Default::default()
    };
    assert!(
        p.allocation_candidates_async(&req)
            .await
            .unwrap()
            .is_empty()
    );

    // Nothing leaks: the provider stays while in use, then goes.
    assert!(matches!(
        p.delete_provider_async(RP).await,
        Err(PlacementError::ProviderInUse(_))
    ));
    p.delete_allocations_async(VM).await.unwrap();
    p.delete_allocations_async(VM).await.unwrap();
    assert_eq!(
        p.allocations_async(VM).await.unwrap().consumer_generation,
        None
    );
    assert_eq!(
        p.usages_async(RP)
            .await
            .unwrap()
            .get("VCPU")
            .copied()
            .unwrap_or(0),
        0
    );
    p.delete_provider_async(RP).await.unwrap();
    assert!(matches!(
        p.get_provider_async(RP).await,
        Err(PlacementError::NotFound(_))
    ));
}

fn client(endpoint: String) -> HttpPlacement {
    HttpPlacement::new(PlacementAuth::Token {
        endpoint,
        token: "admin".into(),
    })
}

#[tokio::test]
async fn http_client_against_our_api() {
    let app = api::router(
        PlacementHandle::new(MemoryPlacementService::new()),
        api::noauth2(),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let c = client(format!("http://{addr}"));
    contract(&c).await;
    crate::contract::batch_writes(&c).await;
}

#[tokio::test]
async fn http_client_against_placement_16() {
    let python = std::env::var("NOVA_RS_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles/bin/python".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/placement_py_server.py"
    );
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = std::env::temp_dir().join(format!("placement16-{}", uuid::Uuid::new_v4().simple()));
    let mut child = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&dir)
        .arg(port.to_string())
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {python}: {e} (scripts/test creates the virtualenv)")
        });
    // It says "listening" once it serves.
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line)
        .await
        .unwrap();
    assert_eq!(
        line.trim(),
        "listening",
        "Placement 16 did not start (openstack-placement in the virtualenv?)"
    );
    // (Not the batch writes: Placement 16 lets only the service role
    // reshape, and this token is an admin's.)
    contract(&client(format!("http://127.0.0.1:{port}"))).await;
    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
