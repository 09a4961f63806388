//! Numbered schema migrations.
//!
//! Each migration runs once and is recorded in `nova_schema_migrations`
//! (version, name, time); `sync` applies those not recorded, in order, so
//! running it again is a no-op. Steps are written to be safe to repeat
//! (`IF NOT EXISTS`), because MySQL cannot roll DDL back: a sync cut off
//! half way finishes on the next run.
//!
//! Tables are created with the columns they have today; a later column is
//! a new migration with an `AddColumn` step (skipped when the column is
//! already there, as on a database created after it was declared).

use sea_orm::sea_query::{
    Alias, ColumnDef, Expr, Func, Index, Query, Table as SqlTable, TableCreateStatement,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};

use crate::db::sql::{ColType, col_type, db_err};
use crate::db::tables::{TABLES, Table};
use crate::error::Result;

const MIGRATIONS_TABLE: &str = "nova_schema_migrations";

/// One step of a migration.
#[derive(Debug)]
pub(crate) enum Step {
    /// Create every table in [`TABLES`] with its indexes.
    CreateTables(&'static [&'static Table]),
}

/// A numbered migration.
#[derive(Debug)]
pub(crate) struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub steps: &'static [Step],
}

/// Every migration, oldest first.
pub(crate) static MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "initial schema: instances, compute, scheduling and cell mapping tables",
    steps: &[Step::CreateTables(TABLES)],
}];

/// The newest schema version this build knows.
pub(crate) fn latest() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

fn column(t: &Table, name: &'static str, backend: DbBackend) -> ColumnDef {
    let mut c = ColumnDef::new(name);
    match col_type(t, name) {
        ColType::BigInt => {
            c.big_integer();
        }
        ColType::Double => {
            c.double();
        }
        ColType::Bool => {
            c.boolean();
        }
        ColType::DateTime => {
            c.date_time();
        }
        ColType::Str => {
            c.string_len(255);
        }
        ColType::Text => {
            c.text();
        }
        ColType::Json => {
            if backend == DbBackend::MySql {
                c.custom(Alias::new("MEDIUMTEXT"));
            } else {
                c.text();
            }
        }
    }
    c.null();
    c
}

fn create_table(t: &'static Table, backend: DbBackend) -> (TableCreateStatement, Vec<String>) {
    let mut st = SqlTable::create();
    st.table(t.name).if_not_exists();
    st.col(
        ColumnDef::new("id")
            .big_integer()
            .not_null()
            .auto_increment()
            .primary_key(),
    );
    for &c in t.columns.iter().filter(|c| **c != "id" && **c != "deleted") {
        st.col(column(t, c, backend));
    }
    if t.soft_delete() {
        st.col(
            ColumnDef::new("deleted")
                .big_integer()
                .not_null()
                .default(0),
        );
    }
    let mut separate = Vec::new();
    for key in t.unique {
        let mut cols: Vec<&str> = key.to_vec();
        if t.soft_delete() {
            cols.push("deleted");
        }
        let mut idx = Index::create();
        idx.name(format!("uniq_{}0{}", t.name, cols.join("0")))
            .unique();
        for c in &cols {
            idx.col(*c);
        }
        st.index(&mut idx);
    }
    for key in t.indexes {
        let name = format!("{}_{}_idx", t.name, key.join("_"));
        let mut idx = Index::create();
        idx.name(&name);
        for c in *key {
            idx.col(*c);
        }
        if backend == DbBackend::MySql {
            st.index(&mut idx);
        } else {
            idx.table(t.name).if_not_exists();
            separate.push(backend.build(&idx).to_string());
        }
    }
    (st, separate)
}

async fn ensure_migrations_table(db: &DatabaseConnection) -> Result<()> {
    let mut st = SqlTable::create();
    st.table(MIGRATIONS_TABLE)
        .if_not_exists()
        .col(
            ColumnDef::new("version")
                .big_integer()
                .not_null()
                .primary_key(),
        )
        .col(ColumnDef::new("name").string_len(255).not_null())
        .col(ColumnDef::new("applied_at").date_time().not_null());
    db.execute(&st).await.map_err(db_err)?;
    Ok(())
}

/// The schema version recorded in the database (`None`: never synced).
pub(crate) async fn current(db: &DatabaseConnection) -> Result<Option<u32>> {
    ensure_migrations_table(db).await?;
    let mut q = Query::select();
    q.expr_as(Func::max(Expr::col("version")), "v")
        .from(MIGRATIONS_TABLE);
    let row = db.query_one(&q).await.map_err(db_err)?;
    let v: Option<i64> = match row {
        Some(r) => r.try_get("", "v").map_err(db_err)?,
        None => None,
    };
    Ok(v.and_then(|v| u32::try_from(v).ok()))
}

async fn run_step(db: &DatabaseConnection, step: &Step) -> Result<()> {
    let backend = db.get_database_backend();
    match step {
        Step::CreateTables(tables) => {
            for t in *tables {
                let (st, separate) = create_table(t, backend);
                db.execute(&st).await.map_err(db_err)?;
                for sql in separate {
                    db.execute_unprepared(&sql).await.map_err(db_err)?;
                }
            }
        }
    }
    Ok(())
}

/// Applies the migrations not yet recorded; returns how many ran.
pub(crate) async fn sync(db: &DatabaseConnection) -> Result<u32> {
    let have = current(db).await?.unwrap_or(0);
    if have > latest() {
        return Err(crate::Error::Db(format!(
            "the database schema is at version {have}, newer than this build knows ({}): \
             upgrade nova-rs before running it against this database",
            latest()
        )));
    }
    let mut ran = 0;
    for m in MIGRATIONS.iter().filter(|m| m.version > have) {
        tracing::info!(
            version = m.version,
            name = m.name,
            "applying schema migration"
        );
        for step in m.steps {
            run_step(db, step).await?;
        }
        let mut ins = Query::insert();
        ins.into_table(MIGRATIONS_TABLE)
            .columns(["version", "name", "applied_at"])
            .values_panic([
                i64::from(m.version).into(),
                m.name.into(),
                chrono::Utc::now().naive_utc().into(),
            ]);
        db.execute(&ins).await.map_err(db_err)?;
        ran += 1;
    }
    Ok(ran)
}
