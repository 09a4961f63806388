//! Persistence: every resource is one row of `neutron_resources` (kind,
//! id, project, its Neutron JSON), created by numbered migrations recorded
//! in `network_schema_migrations` (nova-objects' migration runner) in
//! nova's database or a `[network] connection` of its own. The service
//! keeps the rows in memory and writes each change through before it
//! answers.

use std::collections::BTreeMap;

use nova_objects::db::{Migration, Migrations};
use sea_orm::sea_query::{ColumnDef, Index, OnConflict, Query, Table};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait, Value};

/// The network service's migrations, oldest first.
static MIGRATIONS: Migrations = Migrations {
    record_table: "network_schema_migrations",
    list: &[Migration {
        version: 1,
        name: "neutron resources: networks, subnets, ports, security groups and rules, floating IPs",
        statements: initial,
    }],
};

fn initial(backend: DbBackend) -> Vec<Statement> {
    let mut t = Table::create();
    t.table("neutron_resources").if_not_exists();
    if backend == DbBackend::MySql {
        t.engine("InnoDB");
    }
    t.col(ColumnDef::new("kind").string_len(32).not_null())
        .col(ColumnDef::new("id").string_len(36).not_null())
        .col(ColumnDef::new("project_id").string_len(255).not_null())
        .col(ColumnDef::new("body").text().not_null())
        .primary_key(Index::create().col("kind").col("id"));
    vec![backend.build(&t)]
}

/// Where the resources are kept: a SQL database, or nowhere (tests).
#[derive(Debug, Clone, Default)]
pub struct Store {
    conn: Option<DatabaseConnection>,
    /// The database's writers' turn, taken for each write (SQLite has one
    /// writer; nova's objects in the same file take it too).
    turn: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Every stored resource: kind → id → body.
pub type Rows = BTreeMap<String, BTreeMap<String, serde_json::Value>>;

fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = if backend == DbBackend::Postgres {
        let mut n = 0;
        sql.chars()
            .map(|c| {
                if c == '?' {
                    n += 1;
                    format!("${n}")
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        sql.to_owned()
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// `body` (of `kind`) as its row, replacing the row it had.
fn upsert(backend: DbBackend, kind: &str, body: &serde_json::Value) -> anyhow::Result<Statement> {
    let id = body["id"].as_str().unwrap_or_default();
    let project = body["project_id"].as_str().unwrap_or_default();
    let q = Query::insert()
        .into_table("neutron_resources")
        .columns(["kind", "id", "project_id", "body"])
        .values([
            kind.into(),
            id.into(),
            project.into(),
            body.to_string().into(),
        ])?
        .on_conflict(
            OnConflict::columns(["kind", "id"])
                .update_columns(["project_id", "body"])
                .to_owned(),
        )
        .to_owned();
    Ok(backend.build(&q))
}

impl Store {
    /// Nothing persisted (the service's state lives as long as it does).
    pub fn memory() -> Self {
        Store::default()
    }

    /// In `db`, its schema migrated; its writes queue with the other
    /// writers of `db` ([`nova_objects::db::Database::write_lock`]).
    pub async fn open(db: &nova_objects::db::Database) -> anyhow::Result<Self> {
        let conn = db.connection().clone();
        MIGRATIONS.sync(&conn).await?;
        Ok(Store {
            conn: Some(conn),
            turn: db.write_lock(),
        })
    }

    /// Every row.
    pub async fn load(&self) -> anyhow::Result<Rows> {
        let mut out = Rows::new();
        let Some(c) = &self.conn else {
            return Ok(out);
        };
        let rows = c
            .query_all_raw(stmt(
                c.get_database_backend(),
                "SELECT kind, id, body FROM neutron_resources",
                vec![],
            ))
            .await?;
        for r in rows {
            let kind: String = r.try_get("", "kind")?;
            let id: String = r.try_get("", "id")?;
            let body: String = r.try_get("", "body")?;
            out.entry(kind)
                .or_default()
                .insert(id, serde_json::from_str(&body)?);
        }
        Ok(out)
    }

    /// Writes `puts` (kind, body with `id`; each one upsert) and removes
    /// `deletes` (kind, id): one statement on its own, several in one
    /// transaction.
    pub async fn write(
        &self,
        puts: &[(&str, &serde_json::Value)],
        deletes: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let Some(c) = &self.conn else {
            return Ok(());
        };
        let b = c.get_database_backend();
        let _turn = self.turn.lock().await;
        let mut stmts = Vec::with_capacity(puts.len() + deletes.len());
        for (kind, id) in deletes {
            stmts.push(stmt(
                b,
                "DELETE FROM neutron_resources WHERE kind = ? AND id = ?",
                vec![(*kind).into(), (*id).into()],
            ));
        }
        for (kind, body) in puts {
            stmts.push(upsert(b, kind, body)?);
        }
        match <[Statement; 1]>::try_from(stmts) {
            Ok([one]) => {
                c.execute_raw(one).await?;
            }
            Err(stmts) => {
                let tx = c.begin().await?;
                for s in stmts {
                    tx.execute_raw(s).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }
}
