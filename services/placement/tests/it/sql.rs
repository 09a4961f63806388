//! The SQL Placement store on every database: the contract (with
//! independent stores racing, as separate processes do), its migrations,
//! and outages.

use std::collections::BTreeMap;

use nova_placement::{PlacementHandle, PlacementService as _, SqlPlacement};
use nova_scheduler::placement::PlacementError;
use sea_orm::ConnectionTrait as _;

use crate::contract::{self, alloc};

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

    /// The contract, on this database.
    async fn contract(&self) {
        let p = self.open().await;
        assert_eq!(p.sync().await.unwrap(), 0, "idempotent");
        contract::semantics(&p, 1).await;
        contract::batch_writes(&p).await;
        contract::allocation_bumps(&p).await;
        mirror_sees_another_process_delete(&self.open().await, &self.open().await).await;
        let setup = self.open().await;
        let mut stores = Vec::new();
        for _ in 0..8 {
            stores.push(PlacementHandle::new(self.open().await));
        }
        contract::no_overcommit_under_races(&setup, &stores).await;
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

/// A DELETE bumps no generation (as in Placement), yet another store's
/// candidates see the capacity it freed (the mirror also probes the
/// allocations).
async fn mirror_sees_another_process_delete(a: &SqlPlacement, b: &SqlPlacement) {
    let a = a.clone().refresh_interval(std::time::Duration::ZERO);
    a.create_provider_async("md-rp", "md-rp", None)
        .await
        .unwrap();
    let inv = BTreeMap::from([(
        "CUSTOM_MD".to_owned(),
        nova_scheduler::placement::InventoryRecord::new(4),
    )]);
    a.set_inventories_async("md-rp", 0, &inv).await.unwrap();
    a.put_allocations_async("md-c", &alloc("md-rp", "CUSTOM_MD", 4), "p", "u", None)
        .await
        .unwrap();
    let mut group = nova_scheduler::placement::RequestGroup::default();
    group.resources.insert("CUSTOM_MD".into(), 1);
    let req = nova_scheduler::placement::CandidatesRequest {
        groups: vec![group],
        ..Default::default()
    };
    assert_eq!(a.allocation_candidates_async(&req).await.unwrap().len(), 0);
    b.delete_allocations_async("md-c").await.unwrap();
    assert_eq!(
        a.allocation_candidates_async(&req).await.unwrap().len(),
        1,
        "the other store's delete is seen"
    );
}

/// Placement's numbered migrations beside nova's, in one database: each
/// schema has its own record, and a second sync runs nothing.
async fn schema_beside_nova(db: &Db) {
    let nova = nova_objects::db::Database::connect(&nova_objects::db::DbConfig::new(&db.url))
        .await
        .unwrap();
    let p = SqlPlacement::on(&nova);
    assert_eq!(p.schema_version().await.unwrap(), None);
    assert_eq!(
        p.sync().await.unwrap(),
        SqlPlacement::latest_schema_version()
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let db = Db::new(Backend::Sqlite).await;
    schema_beside_nova(&db).await;
    outage_is_not_a_race(&db).await;
    db.contract().await;
    db.cleanup().await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let db = Db::new(Backend::Postgres).await;
    schema_beside_nova(&db).await;
    outage_is_not_a_race(&db).await;
    db.contract().await;
    db.cleanup().await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql() {
    let db = Db::new(Backend::MySql).await;
    schema_beside_nova(&db).await;
    outage_is_not_a_race(&db).await;
    db.contract().await;
    db.cleanup().await;
}
