//! The quota tables of nova's API database (`quotas`,
//! `project_user_quotas`, `quota_classes`: one hard limit per project,
//! per project user, per class and resource), as numbered migrations
//! recorded in `quota_schema_migrations`.

use nova_objects::db::{Migration, Migrations};
use sea_orm::sea_query::{ColumnDef, Index, Table};
use sea_orm::{DbBackend, Statement};

/// The quota tables' migrations, oldest first.
pub(super) static MIGRATIONS: Migrations = Migrations {
    record_table: "quota_schema_migrations",
    list: &[Migration {
        version: 1,
        name: "quotas, project_user_quotas, quota_classes",
        statements: initial,
    }],
};

fn initial(backend: DbBackend) -> Vec<Statement> {
    let tables: [(&str, &[&str]); 3] = [
        ("quotas", &["project_id", "resource"]),
        (
            "project_user_quotas",
            &["project_id", "user_id", "resource"],
        ),
        ("quota_classes", &["class_name", "resource"]),
    ];
    tables
        .iter()
        .map(|(name, key)| {
            let mut st = Table::create();
            st.table(*name).if_not_exists();
            if backend == DbBackend::MySql {
                st.engine("InnoDB");
            }
            for k in key.iter() {
                st.col(ColumnDef::new(*k).string_len(255).not_null());
            }
            st.col(ColumnDef::new("hard_limit").big_integer().not_null());
            let mut pk = Index::create();
            for k in key.iter() {
                pk.col(*k);
            }
            st.primary_key(&mut pk);
            backend.build(&st)
        })
        .collect()
}
