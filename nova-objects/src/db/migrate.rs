//! Numbered schema migrations.
//!
//! Each migration runs once and is recorded in its set's table (nova's is
//! `nova_schema_migrations`: version, name, time); `sync` applies those
//! not recorded, in order, so running it again is a no-op. Steps are
//! written to be safe to repeat (`IF NOT EXISTS`), because MySQL cannot
//! roll DDL back: a sync cut off half way finishes on the next run.
//!
//! Tables are created with the columns they have today; a later column is
//! a new migration with an `AddColumn` step (skipped when the column is
//! already there, as on a database created after it was declared).
//!
//! Other schemas (Placement's) bring their own [`Migrations`], recorded in
//! their own table, so they may share nova's database or have their own.

use sea_orm::sea_query::{
    Alias, ColumnDef, Expr, Func, Index, Query, Table as SqlTable, TableCreateStatement,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use crate::db::sql::{ColType, col_type, db_err};
use crate::db::tables::{TABLES, TASK_LOG, Table, VIRTUAL_INTERFACES};
use crate::error::Result;

/// A numbered migration: the statements it runs, built for a backend.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its number: 1, 2, … in the order they run.
    pub version: u32,
    /// What it does, as recorded.
    pub name: &'static str,
    /// Its statements on `backend` (safe to repeat: `IF NOT EXISTS`).
    pub statements: fn(backend: DbBackend) -> Vec<Statement>,
}

/// A schema's migrations, oldest first, and the table recording which ran.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// The record table (version, name, applied_at).
    pub record_table: &'static str,
    /// Every migration, oldest first.
    pub list: &'static [Migration],
}

/// Migration 2's tables.
static TASK_LOG_TABLES: &[&Table] = &[&TASK_LOG];

/// Migration 3's tables.
static VIF_TABLES: &[&Table] = &[&VIRTUAL_INTERFACES];

/// Nova's own schema.
pub(crate) static NOVA: Migrations = Migrations {
    record_table: "nova_schema_migrations",
    list: &[
        Migration {
            version: 1,
            name: "initial schema: instances, compute, scheduling and cell mapping tables",
            statements: |backend| create_tables(TABLES, backend),
        },
        Migration {
            version: 2,
            name: "task_log: the periodic tasks' runs (instance usage audit)",
            statements: |backend| create_tables(TASK_LOG_TABLES, backend),
        },
        Migration {
            version: 3,
            name: "virtual_interfaces: an instance's ports and their device tags",
            statements: |backend| create_tables(VIF_TABLES, backend),
        },
    ],
};

fn create_tables(tables: &'static [&'static Table], backend: DbBackend) -> Vec<Statement> {
    let mut out = Vec::new();
    for t in tables {
        let (st, separate) = create_table(t, backend);
        out.push(backend.build(&st));
        out.extend(
            separate
                .into_iter()
                .map(|sql| Statement::from_string(backend, sql)),
        );
    }
    out
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
        // MySQL names are at most 64 characters (PostgreSQL's 63): a key
        // too long with `deleted` is named by its own columns, as nova's.
        let mut name = format!("uniq_{}0{}", t.name, cols.join("0"));
        if name.len() > 63 {
            name = format!("uniq_{}0{}", t.name, key.join("0"));
        }
        let mut idx = Index::create();
        idx.name(name).unique();
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

impl Migrations {
    /// The newest schema version this build knows.
    pub fn latest(&self) -> u32 {
        self.list.last().map_or(0, |m| m.version)
    }

    async fn ensure_record_table(&self, db: &DatabaseConnection) -> Result<()> {
        let mut st = SqlTable::create();
        st.table(self.record_table)
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
    pub async fn current(&self, db: &DatabaseConnection) -> Result<Option<u32>> {
        self.ensure_record_table(db).await?;
        let mut q = Query::select();
        q.expr_as(Func::max(Expr::col("version")), "v")
            .from(self.record_table);
        let row = db.query_one(&q).await.map_err(db_err)?;
        let v: Option<i64> = match row {
            Some(r) => r.try_get("", "v").map_err(db_err)?,
            None => None,
        };
        Ok(v.and_then(|v| u32::try_from(v).ok()))
    }

    /// Applies the migrations not yet recorded; returns how many ran.
    pub async fn sync(&self, db: &DatabaseConnection) -> Result<u32> {
        let have = self.current(db).await?.unwrap_or(0);
        if have > self.latest() {
            return Err(crate::Error::Db(format!(
                "the database schema ({}) is at version {have}, newer than this build knows ({}): \
                 upgrade nova-rs before running it against this database",
                self.record_table,
                self.latest()
            )));
        }
        let backend = db.get_database_backend();
        let mut ran = 0;
        for m in self.list.iter().filter(|m| m.version > have) {
            tracing::info!(
                table = self.record_table,
                version = m.version,
                name = m.name,
                "applying schema migration"
            );
            for st in (m.statements)(backend) {
                db.execute_raw(st).await.map_err(db_err)?;
            }
            let mut ins = Query::insert();
            ins.into_table(self.record_table)
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
}
