//! Placement's tables.

use nova_scheduler::placement::PlacementError;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};

use crate::error::db;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS resource_providers (uuid VARCHAR(36) NOT NULL PRIMARY KEY, name VARCHAR(200) NOT NULL UNIQUE, generation BIGINT NOT NULL, parent_uuid VARCHAR(36), root_uuid VARCHAR(36) NOT NULL)",
    "CREATE TABLE IF NOT EXISTS inventories (rp_uuid VARCHAR(36) NOT NULL, resource_class VARCHAR(255) NOT NULL, total BIGINT NOT NULL, reserved BIGINT NOT NULL, min_unit BIGINT NOT NULL, max_unit BIGINT NOT NULL, step_size BIGINT NOT NULL, allocation_ratio DOUBLE PRECISION NOT NULL, PRIMARY KEY (rp_uuid, resource_class))",
    "CREATE TABLE IF NOT EXISTS consumers (uuid VARCHAR(36) NOT NULL PRIMARY KEY, project_id VARCHAR(255) NOT NULL, user_id VARCHAR(255) NOT NULL, generation BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS allocations (consumer_uuid VARCHAR(36) NOT NULL, rp_uuid VARCHAR(36) NOT NULL, resource_class VARCHAR(255) NOT NULL, used BIGINT NOT NULL, PRIMARY KEY (consumer_uuid, rp_uuid, resource_class))",
    "CREATE TABLE IF NOT EXISTS resource_provider_traits (rp_uuid VARCHAR(36) NOT NULL, trait VARCHAR(255) NOT NULL, PRIMARY KEY (rp_uuid, trait))",
    "CREATE TABLE IF NOT EXISTS resource_provider_aggregates (rp_uuid VARCHAR(36) NOT NULL, aggregate VARCHAR(36) NOT NULL, PRIMARY KEY (rp_uuid, aggregate))",
];

/// Creates the tables (idempotent).
pub(crate) async fn sync(conn: &DatabaseConnection) -> Result<(), PlacementError> {
    let backend = conn.get_database_backend();
    for sql in SCHEMA {
        let sql = if backend == DbBackend::MySql {
            format!("{sql} ENGINE=InnoDB")
        } else {
            (*sql).to_owned()
        };
        conn.execute_unprepared(&sql).await.map_err(db)?;
    }
    for (name, sql) in [
        ("allocations_rp_idx", "allocations (rp_uuid)"),
        (
            "resource_providers_root_idx",
            "resource_providers (root_uuid)",
        ),
    ] {
        let create = format!("CREATE INDEX {name} ON {sql}");
        if backend == DbBackend::MySql {
            // MySQL has no CREATE INDEX IF NOT EXISTS: ignore "exists".
            let _ = conn.execute_unprepared(&create).await;
        } else {
            let create = create.replacen("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1);
            conn.execute_unprepared(&create).await.map_err(db)?;
        }
    }
    Ok(())
}
