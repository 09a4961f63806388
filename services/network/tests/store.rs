//! The network service's store on every database: a change written is
//! what the next start loads (a row replaced in place, removed, or both in
//! one write). PostgreSQL and MariaDB tests need their features and the
//! servers scripts/test starts; they fail when a server is missing.

#![allow(clippy::unwrap_used)]

use nova_network::store::Store;
use nova_objects::db::{Database, DbConfig};
use serde_json::json;

/// Writes, rewrites and removes rows on `url`, loading after each step.
async fn writes_are_loaded_again(url: &str) {
    let db = Database::connect(&DbConfig::new(url)).await.unwrap();
    let store = Store::open(&db).await.unwrap();
    let net = json!({"id": "n1", "project_id": "p1", "name": "flat"});
    let port = json!({"id": "p1", "project_id": "p1", "status": "DOWN"});
    store
        .write(&[("network", &net), ("port", &port)], &[])
        .await
        .unwrap();
    let rows = store.load().await.unwrap();
    assert_eq!(rows["network"]["n1"], net);
    assert_eq!(rows["port"]["p1"], port);

    // One row again: replaced, not added beside the first.
    let active = json!({"id": "p1", "project_id": "p2", "status": "ACTIVE"});
    store.write(&[("port", &active)], &[]).await.unwrap();
    let rows = store.load().await.unwrap();
    assert_eq!(rows["port"].len(), 1);
    assert_eq!(rows["port"]["p1"], active);

    // A removal and a row in one write.
    let other = json!({"id": "p2", "project_id": "p1", "status": "DOWN"});
    store
        .write(&[("port", &other)], &[("port", "p1")])
        .await
        .unwrap();
    let rows = store.load().await.unwrap();
    assert_eq!(rows["port"].keys().collect::<Vec<_>>(), ["p2"]);

    // A removal alone; a second start loads the same.
    store.write(&[], &[("network", "n1")]).await.unwrap();
    let again = Store::open(&db).await.unwrap();
    let rows = again.load().await.unwrap();
    assert!(rows.get("network").is_none_or(|m| m.is_empty()));
    assert_eq!(rows["port"]["p2"], other);
}

#[tokio::test]
async fn sqlite() {
    let f = std::env::temp_dir().join(format!(
        "nova-network-store-{}.sqlite",
        uuid::Uuid::new_v4()
    ));
    writes_are_loaded_again(&format!("sqlite:{}?mode=rwc", f.display())).await;
    for ext in ["sqlite", "sqlite-wal", "sqlite-shm"] {
        let _ = std::fs::remove_file(f.with_extension(ext));
    }
}

/// The same on a fresh database of the server at `admin_url`, dropped
/// afterwards.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn on_server(env: &str, default: &str) {
    use sea_orm::ConnectionTrait as _;
    let admin_url = std::env::var(env).unwrap_or_else(|_| default.into());
    let (admin, name, url) = Database::create_scratch(&admin_url, "network_test")
        .await
        .unwrap_or_else(|e| panic!("{admin_url} is not reachable ({e}): scripts/test starts it"));
    writes_are_loaded_again(&url).await;
    admin
        .connection()
        .execute_unprepared(&format!("DROP DATABASE {name}"))
        .await
        .unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres() {
    on_server(
        "NOVA_RS_PG_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    )
    .await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql() {
    on_server("NOVA_RS_MYSQL_URL", "mysql://root@127.0.0.1:3306/mysql").await;
}
