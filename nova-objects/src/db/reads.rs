//! Reads of a SQLite file database on connections of their own.
//!
//! sqlx runs every SQLite connection on a thread of its own and, each time
//! a connection goes back to its pool, pings it: one more round trip to
//! that thread (and a task spawned for it) per statement, which cost about
//! as much as reading an instance row. An embedded file cannot lose its
//! link, so reads (`get`, `list`, `count`: one autocommit `SELECT` each)
//! take a connection from this small set and put it back as it is. A read
//! that was interrupted (its future dropped before it finished) closes its
//! connection instead of returning it. There are as many read connections
//! as the pool has (a read waits for one as it would for the pool's);
//! writes go to the pool.
//!
//! In WAL mode readers see every committed write, whichever connection
//! made it, so nothing changes for callers. An in-memory database exists
//! per connection: it never gets read connections.

use std::sync::Mutex;

use sea_orm::sea_query::Values;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sea_orm::sqlx::{self, ConnectOptions as _};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr,
    Statement,
};
use sea_query_sqlx::SqlxValues;

/// The read connections of one database.
pub(crate) struct Reads {
    /// The pool (writes).
    pool: DatabaseConnection,
    opts: SqliteConnectOptions,
    idle: Mutex<Vec<SqliteConnection>>,
    /// One per read connection (open or not yet).
    permits: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Reads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reads")
            .field("available", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

/// A lent read connection: back to the set when the read completed,
/// closed when it was interrupted.
struct Lease<'a> {
    reads: &'a Reads,
    conn: Option<SqliteConnection>,
    completed: bool,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Lease<'_> {
    fn conn(&mut self) -> &mut SqliteConnection {
        self.conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("a lease holds its connection until dropped"))
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.completed
            && let Ok(mut idle) = self.reads.idle.lock()
        {
            idle.push(conn);
        }
        // Otherwise the connection closes; its permit opens another.
    }
}

fn sqlx_err(e: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(e.into()))
}

fn query(stmt: &Statement) -> sqlx::query::Query<'_, sqlx::Sqlite, SqlxValues> {
    let values = stmt.values.clone().unwrap_or(Values(Vec::new()));
    sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values))
}

impl Reads {
    /// Up to `max` read connections opened (when first needed) with
    /// `opts`, beside `pool`.
    pub(crate) fn new(pool: DatabaseConnection, opts: SqliteConnectOptions, max: usize) -> Self {
        Reads {
            pool,
            opts,
            idle: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(max.max(1)),
        }
    }

    /// An idle read connection, or a new one.
    async fn lease(&self) -> Result<Lease<'_>, DbErr> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::ConnectionClosed))?;
        let conn = match self.idle.lock().ok().and_then(|mut i| i.pop()) {
            Some(conn) => conn,
            None => self
                .opts
                .connect()
                .await
                .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(e.into())))?,
        };
        Ok(Lease {
            reads: self,
            conn: Some(conn),
            completed: false,
            _permit: permit,
        })
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Reads {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Sqlite
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.pool.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.pool.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let mut lease = self.lease().await?;
        let row = query(&stmt).fetch_optional(lease.conn()).await;
        // A failed statement leaves the connection as it was.
        lease.completed = true;
        Ok(row.map_err(sqlx_err)?.map(Into::into))
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let mut lease = self.lease().await?;
        let rows = query(&stmt).fetch_all(lease.conn()).await;
        lease.completed = true;
        Ok(rows
            .map_err(sqlx_err)?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}
