//! Placement's tables, as numbered migrations recorded in
//! `placement_schema_migrations` (nova-objects' migration runner, with a
//! record table of Placement's own): the same statements create them in
//! nova's database or in a `[placement_database]` of their own.

use nova_objects::db::{Migration, Migrations};
use nova_scheduler::placement::PlacementError;
use sea_orm::sea_query::{ColumnDef, Index, IndexCreateStatement, Table, TableCreateStatement};
use sea_orm::{DatabaseConnection, DbBackend, Statement};

/// Placement's migrations, oldest first.
pub(crate) static MIGRATIONS: Migrations = Migrations {
    record_table: "placement_schema_migrations",
    list: &[
        Migration {
            version: 1,
            name: "initial schema: resource providers, inventories, consumers, allocations, traits, aggregates",
            statements: initial,
        },
        Migration {
            version: 2,
            name: "custom resource classes and traits",
            statements: custom_names,
        },
        Migration {
            version: 3,
            name: "consumer types",
            statements: consumer_types,
        },
        Migration {
            version: 4,
            name: "created_at and updated_at on every table (rows there before get the time of the migration)",
            statements: timestamps,
        },
    ],
};

fn uuid(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string_len(36).not_null().take()
}

fn string(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).string_len(255).not_null().take()
}

fn int(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().take()
}

fn table(
    backend: DbBackend,
    name: &'static str,
    cols: Vec<ColumnDef>,
    key: &[&'static str],
) -> TableCreateStatement {
    let mut st = Table::create();
    st.table(name).if_not_exists();
    if backend == DbBackend::MySql {
        st.engine("InnoDB");
    }
    for mut c in cols {
        st.col(&mut c);
    }
    if !key.is_empty() {
        let mut pk = Index::create();
        for c in key {
            pk.col(*c);
        }
        st.primary_key(&mut pk);
    }
    st
}

/// Secondary indexes: inside `CREATE TABLE` on MySQL (which has no
/// `CREATE INDEX IF NOT EXISTS`), apart elsewhere.
fn index(
    backend: DbBackend,
    st: &mut TableCreateStatement,
    out: &mut Vec<Statement>,
    name: &'static str,
    table: &'static str,
    col: &'static str,
) {
    let mut idx: IndexCreateStatement = Index::create().name(name).col(col).take();
    if backend == DbBackend::MySql {
        st.index(&mut idx);
    } else {
        idx.table(table).if_not_exists();
        out.push(backend.build(&idx));
    }
}

fn initial(backend: DbBackend) -> Vec<Statement> {
    let mut after = Vec::new();
    let mut providers = table(
        backend,
        "resource_providers",
        vec![
            uuid("uuid").primary_key().take(),
            ColumnDef::new("name")
                .string_len(200)
                .not_null()
                .unique_key()
                .take(),
            int("generation"),
            ColumnDef::new("parent_uuid").string_len(36).null().take(),
            uuid("root_uuid"),
        ],
        &[],
    );
    index(
        backend,
        &mut providers,
        &mut after,
        "resource_providers_root_idx",
        "resource_providers",
        "root_uuid",
    );
    let inventories = table(
        backend,
        "inventories",
        vec![
            uuid("rp_uuid"),
            string("resource_class"),
            int("total"),
            int("reserved"),
            int("min_unit"),
            int("max_unit"),
            int("step_size"),
            ColumnDef::new("allocation_ratio")
                .double()
                .not_null()
                .take(),
        ],
        &["rp_uuid", "resource_class"],
    );
    let consumers = table(
        backend,
        "consumers",
        vec![
            uuid("uuid").primary_key().take(),
            string("project_id"),
            string("user_id"),
            int("generation"),
        ],
        &[],
    );
    let mut allocations = table(
        backend,
        "allocations",
        vec![
            uuid("consumer_uuid"),
            uuid("rp_uuid"),
            string("resource_class"),
            int("used"),
        ],
        &["consumer_uuid", "rp_uuid", "resource_class"],
    );
    index(
        backend,
        &mut allocations,
        &mut after,
        "allocations_rp_idx",
        "allocations",
        "rp_uuid",
    );
    let traits = table(
        backend,
        "resource_provider_traits",
        vec![uuid("rp_uuid"), string("trait")],
        &["rp_uuid", "trait"],
    );
    let aggregates = table(
        backend,
        "resource_provider_aggregates",
        vec![uuid("rp_uuid"), uuid("aggregate")],
        &["rp_uuid", "aggregate"],
    );
    let mut out: Vec<Statement> = [
        providers,
        inventories,
        consumers,
        allocations,
        traits,
        aggregates,
    ]
    .iter()
    .map(|t| backend.build(t))
    .collect();
    out.extend(after);
    out
}

fn custom_names(backend: DbBackend) -> Vec<Statement> {
    let t = table(
        backend,
        "placement_custom_names",
        vec![
            ColumnDef::new("kind").string_len(16).not_null().take(),
            string("name"),
        ],
        &["kind", "name"],
    );
    vec![backend.build(&t)]
}

fn consumer_types(backend: DbBackend) -> Vec<Statement> {
    let alter = Table::alter()
        .table("consumers")
        .add_column(ColumnDef::new("consumer_type").string_len(255).null())
        .take();
    vec![backend.build(&alter)]
}

/// The tables with Placement's `TimestampMixin` columns.
pub(crate) const STAMPED_TABLES: [&str; 7] = [
    "resource_providers",
    "inventories",
    "consumers",
    "allocations",
    "resource_provider_traits",
    "resource_provider_aggregates",
    "placement_custom_names",
];

fn timestamps(backend: DbBackend) -> Vec<Statement> {
    let now = chrono::Utc::now().naive_utc();
    let mut out = Vec::new();
    for t in STAMPED_TABLES {
        // One column per ALTER: SQLite takes no more.
        for col in ["created_at", "updated_at"] {
            let alter = Table::alter()
                .table(t)
                .add_column(ColumnDef::new(col).date_time().null())
                .take();
            out.push(backend.build(&alter));
        }
        let fill = sea_orm::sea_query::Query::update()
            .table(t)
            .value("created_at", now)
            .take();
        out.push(backend.build(&fill));
    }
    out
}

/// Applies Placement's pending migrations; returns how many ran.
pub(crate) async fn sync(conn: &DatabaseConnection) -> Result<u32, PlacementError> {
    MIGRATIONS
        .sync(conn)
        .await
        .map_err(crate::error::unavailable)
}

/// The schema version recorded (`None` before the first sync).
pub(crate) async fn version(conn: &DatabaseConnection) -> Result<Option<u32>, PlacementError> {
    MIGRATIONS
        .current(conn)
        .await
        .map_err(crate::error::unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_on_every_backend() {
        for backend in [DbBackend::Sqlite, DbBackend::Postgres, DbBackend::MySql] {
            let sql: Vec<String> = initial(backend).iter().map(|s| s.to_string()).collect();
            assert_eq!(
                sql.iter().filter(|s| s.starts_with("CREATE TABLE")).count(),
                6
            );
            let separate = sql.iter().filter(|s| s.starts_with("CREATE INDEX")).count();
            assert_eq!(separate, if backend == DbBackend::MySql { 0 } else { 2 });
        }
    }

    /// A database made before the times existed (schema 3) migrates, and
    /// its rows get the time of the migration.
    #[tokio::test]
    async fn rows_there_before_get_a_time() {
        use sea_orm::ConnectionTrait as _;
        let db = nova_objects::db::Database::connect(&nova_objects::db::DbConfig::new(
            "sqlite::memory:",
        ))
        .await
        .unwrap();
        let conn = db.connection();
        let old = Migrations {
            record_table: MIGRATIONS.record_table,
            list: &MIGRATIONS.list[..3],
        };
        assert_eq!(old.sync(conn).await.unwrap(), 3);
        for sql in [
            "INSERT INTO resource_providers (uuid, name, generation, parent_uuid, root_uuid) VALUES ('rp', 'n', 1, NULL, 'rp')",
            "INSERT INTO inventories (rp_uuid, resource_class, total, reserved, min_unit, max_unit, step_size, allocation_ratio) VALUES ('rp', 'VCPU', 8, 0, 1, 8, 1, 1.0)",
            "INSERT INTO consumers (uuid, project_id, user_id, generation) VALUES ('c', 'p', 'u', 1)",
            "INSERT INTO allocations (consumer_uuid, rp_uuid, resource_class, used) VALUES ('c', 'rp', 'VCPU', 2)",
            "INSERT INTO resource_provider_traits (rp_uuid, trait) VALUES ('rp', 'CUSTOM_T')",
            "INSERT INTO resource_provider_aggregates (rp_uuid, aggregate) VALUES ('rp', 'agg')",
            "INSERT INTO placement_custom_names (kind, name) VALUES ('trait', 'CUSTOM_T')",
        ] {
            conn.execute_unprepared(sql).await.unwrap();
        }
        let before = chrono::Utc::now() - chrono::Duration::seconds(1);
        assert_eq!(sync(conn).await.unwrap(), 1);
        for t in STAMPED_TABLES {
            let rows = crate::sql::all(
                conn,
                &format!("SELECT created_at, updated_at FROM {t}"),
                vec![],
            )
            .await
            .unwrap();
            assert_eq!(rows.len(), 1, "{t}");
            let at: Option<chrono::NaiveDateTime> = rows[0].try_get("", "created_at").unwrap();
            let at = at
                .unwrap_or_else(|| panic!("{t} has no created_at"))
                .and_utc();
            assert!(at >= before && at <= chrono::Utc::now(), "{t}: {at}");
        }
        use crate::Stamped;
        for of in [
            Stamped::Providers(&["rp"]),
            Stamped::Inventories {
                provider: "rp",
                class: Some("VCPU"),
            },
            Stamped::ConsumerAllocations("c"),
            Stamped::ProviderAllocations("rp"),
            Stamped::Names(crate::Custom::Traits, &["CUSTOM_T", "HW_CPU_X86_AVX2"]),
        ] {
            let rows = crate::times::read(conn, of).await.unwrap();
            assert!(!rows.is_empty(), "{of:?}");
            assert!(rows.iter().all(|r| r.created_at.is_some()), "{of:?}");
        }
    }
}
