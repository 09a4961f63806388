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
}
