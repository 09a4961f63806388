//! The SQL Placement store on every database: generation checks, in-use
//! refusals, and — the invariant — no overcommit whatever number of
//! independent writers (separate connection pools, as separate processes
//! have) race for the last units.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;
use nova_placement::{PlacementService as _, SqlPlacement};
use nova_scheduler::placement::{Allocations, InventoryRecord, Name, PlacementError};
use sea_orm::ConnectionTrait as _;

enum Backend {
    Sqlite,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres,
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    MySql,
}

struct Db {
    url: String,
    drop: Option<(nova_objects::db::Database, String)>,
    file: Option<std::path::PathBuf>,
}

impl Db {
    async fn new(b: Backend) -> Db {
        let name = format!("placement_test_{}", uuid::Uuid::new_v4().simple());
        let server =
            |env: &str, default: &str| std::env::var(env).unwrap_or_else(|_| default.to_owned());
        let admin_url = match b {
            Backend::Sqlite => {
                let f = std::env::temp_dir().join(format!("{name}.sqlite"));
                return Db {
                    url: format!("sqlite:{}", f.display()),
                    drop: None,
                    file: Some(f),
                };
            }
            Backend::Postgres => server(
                "NOVA_RS_PG_URL",
                "postgres://postgres@127.0.0.1:5432/postgres",
            ),
            Backend::MySql => server("NOVA_RS_MYSQL_URL", "mysql://root@127.0.0.1:3306/mysql"),
        };
        let admin =
            nova_objects::db::Database::connect(&nova_objects::db::DbConfig::new(&admin_url))
                .await
                .unwrap_or_else(|e| {
                    panic!("{admin_url} is not reachable ({e}): scripts/test starts it")
                });
        admin
            .connection()
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b)
            .to_owned();
        Db {
            url: format!("{base}/{name}"),
            drop: Some((admin, name)),
            file: None,
        }
    }

    async fn open(&self) -> SqlPlacement {
        let p = SqlPlacement::open(&self.url).await.unwrap();
        p.sync().await.unwrap();
        p
    }

    async fn cleanup(self) {
        if let Some((admin, name)) = self.drop {
            let _ = admin
                .connection()
                .execute_unprepared(&format!("DROP DATABASE {name}"))
                .await;
        }
        if let Some(f) = self.file {
            let _ = std::fs::remove_file(&f);
            let _ = std::fs::remove_file(f.with_extension("sqlite-wal"));
            let _ = std::fs::remove_file(f.with_extension("sqlite-shm"));
        }
    }
}

/// Placement's numbered migrations beside nova's, in one database: each
/// schema has its own record, and a second sync runs nothing.
async fn schema_beside_nova(db: &Db) {
    let nova = nova_objects::db::Database::connect(&nova_objects::db::DbConfig::new(&db.url))
        .await
        .unwrap();
    let p = SqlPlacement::on(&nova);
    assert_eq!(p.schema_version().await.unwrap(), None);
    assert_eq!(p.sync().await.unwrap(), 1);
    nova.sync().await.unwrap();
    assert_eq!(p.sync().await.unwrap(), 0, "already applied");
    assert_eq!(
        p.schema_version().await.unwrap(),
        Some(SqlPlacement::latest_schema_version())
    );
    assert_eq!(
        nova.schema_version().await.unwrap(),
        Some(nova_objects::db::Database::latest_schema_version())
    );
    assert!(p.list_providers_async(None, None).await.unwrap().is_empty());
}

/// A database that went away is an outage, reported as one (not as a lost
/// race the caller would retry), on reads, writes and candidates alike.
async fn outage_is_not_a_race(db: &Db) {
    let nova = nova_objects::db::Database::connect(&nova_objects::db::DbConfig::new(&db.url))
        .await
        .unwrap();
    let p = SqlPlacement::on(&nova);
    p.sync().await.unwrap();
    p.create_provider_async("rp-outage", "outage-node", None)
        .await
        .unwrap();
    nova.connection().close_by_ref().await.unwrap();
    let unavailable = |what: &str, e: PlacementError| {
        assert!(
            matches!(e, PlacementError::Unavailable(_)) && !e.is_conflict() && e.status() == 503,
            "{what}: {e:?}"
        );
    };
    unavailable("get", p.get_provider_async("rp-outage").await.unwrap_err());
    unavailable(
        "claim",
        p.put_allocations_async("vm-x", &alloc("rp-outage", "VCPU", 1), "p", "u", None)
            .await
            .unwrap_err(),
    );
    unavailable(
        "set inventories",
        p.set_inventories_async("rp-outage", 0, &BTreeMap::new())
            .await
            .unwrap_err(),
    );
    p.invalidate();
    unavailable(
        "candidates",
        p.allocation_candidates_async(&Default::default())
            .await
            .unwrap_err(),
    );
    unavailable("sync", p.sync().await.unwrap_err());
}

fn alloc(rp: &str, rc: &str, n: i64) -> Allocations {
    BTreeMap::from([(Name::from(rp), BTreeMap::from([(Name::from(rc), n)]))])
}

async fn semantics(db: &Db) {
    let p = db.open().await;
    p.sync().await.unwrap(); // idempotent
    let rp = p
        .create_provider_async("rp-1", "node-1", None)
        .await
        .unwrap();
    assert_eq!(rp.generation, 0);
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
    assert_eq!(gen_c, Some(1));
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
        p.put_allocations_async("vm-1", &alloc("rp-1", "VCPU", 8), "p", "u", Some(1))
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(p.usages_async("rp-1").await.unwrap()["VCPU"], 8);
    assert!(matches!(
        p.put_allocations_async("vm-9", &alloc("rp-x", "VCPU", 1), "p", "u", None)
            .await,
        Err(PlacementError::BadRequest(_))
    ));
    // In use: inventory cannot shrink below usage; provider cannot go.
    let (g, _) = p.inventories_async("rp-1").await.unwrap();
    let small = BTreeMap::from([("VCPU".to_owned(), InventoryRecord::new(2))]);
    assert!(matches!(
        p.set_inventories_async("rp-1", g, &small).await,
        Err(PlacementError::InventoryInUse(_))
    ));
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

/// Forty claims from eight independent stores race for ten units.
async fn no_overcommit_under_races(db: &Db) {
    let setup = db.open().await;
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
    let mut stores = Vec::new();
    for _ in 0..8 {
        stores.push(db.open().await);
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let db = Db::new(Backend::Sqlite).await;
    schema_beside_nova(&db).await;
    outage_is_not_a_race(&db).await;
    semantics(&db).await;
    no_overcommit_under_races(&db).await;
    db.cleanup().await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let db = Db::new(Backend::Postgres).await;
    schema_beside_nova(&db).await;
    outage_is_not_a_race(&db).await;
    semantics(&db).await;
    no_overcommit_under_races(&db).await;
    db.cleanup().await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql() {
    let db = Db::new(Backend::MySql).await;
    schema_beside_nova(&db).await;
    outage_is_not_a_race(&db).await;
    semantics(&db).await;
    no_overcommit_under_races(&db).await;
    db.cleanup().await;
}
