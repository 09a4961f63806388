//! SQL persistence (feature `db`): the tables behind the objects, numbered
//! migrations, and [`Database`], the direct [`ObjectStore`].
//!
//! One code path for SQLite (the embedded default: a file, or memory),
//! PostgreSQL (feature `postgres`) and MySQL/MariaDB (feature `mysql`),
//! through sea-orm's connection and sea-query's statement builders.
//!
//! Connection strings may be nova.conf's SQLAlchemy URLs
//! (`mysql+pymysql://nova:pw@db/nova`, `postgresql://...`,
//! `sqlite:////var/lib/nova/nova.sqlite`) or plain sqlx ones.
//!
//! SQLite and its single writer: a file database gets a pool of several
//! connections in WAL mode (readers never wait for the writer) with a busy
//! timeout (writers queue instead of failing), and every store operation
//! is one statement or reads after its write, never holding a transaction
//! while it asks the pool for another connection, so it cannot deadlock.
//! The store's statements on a file run on connections of this crate's
//! own, on the caller's thread ([`local`]); an in-memory database exists
//! per connection, so it has exactly one, the pool's.

mod decode;
mod joined;
mod local;
mod migrate;
mod rows;
mod sql;
mod tables;

use std::sync::Arc;
use std::time::Duration;

use nova_rpc::RequestContext;
use sea_orm::{ConnectOptions, DatabaseConnection, DbBackend};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::primitive::NAME_KEY;
use crate::store::{ListQuery, Lookup, ObjectStore, ReadDeleted, SaveOptions};
pub use migrate::{Migration, Migrations};
use tables::{Table, table_for};

/// Database settings (nova.conf `[database]`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DbConfig {
    /// `connection`: the database URL. Default `sqlite::memory:`.
    pub connection: String,
    /// `max_pool_size`: connections in the pool. Default 10 (SQLite file:
    /// 4; SQLite memory: always 1).
    pub max_pool_size: Option<u32>,
    /// `pool_timeout`: how long to wait for a free connection. Default 30 s.
    pub pool_timeout: Duration,
    /// SQLite only: how long a writer waits for the write lock. Default 30 s.
    pub sqlite_busy_timeout: Duration,
    /// `connection_debug` (oslo.db, 0–100): at 50 or more every SQL
    /// statement is logged (tracing target `sqlx::query`, level INFO) with
    /// its duration. Default 0.
    pub connection_debug: u8,
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig {
            connection: "sqlite::memory:".into(),
            max_pool_size: None,
            pool_timeout: Duration::from_secs(30),
            sqlite_busy_timeout: Duration::from_secs(30),
            connection_debug: 0,
        }
    }
}

impl DbConfig {
    /// Settings for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        DbConfig {
            connection: url.into(),
            ..Self::default()
        }
    }

    /// A private in-memory SQLite database (tests, examples).
    pub fn memory() -> Self {
        Self::default()
    }

    /// A SQLite database in file `path` (created if missing).
    pub fn sqlite_file(path: impl AsRef<std::path::Path>) -> Self {
        Self::new(format!("sqlite:{}", path.as_ref().display()))
    }
}

/// The URL sqlx understands for a nova.conf connection string; passwords
/// never appear in errors.
fn normalize_url(url: &str) -> Result<(String, DbBackend, bool)> {
    let (scheme, rest) = url.split_once(':').ok_or_else(|| {
        Error::Db(format!(
            "[database] connection has no scheme: {}",
            mask(url)
        ))
    })?;
    let base = scheme.split('+').next().unwrap_or(scheme);
    match base {
        "sqlite" => {
            let memory = rest == ":memory:" || rest == "//" || rest.is_empty();
            if memory {
                return Ok(("sqlite::memory:".into(), DbBackend::Sqlite, true));
            }
            // SQLAlchemy: sqlite:///relative.db and sqlite:////abs/path.db
            let path = rest.strip_prefix("///").map_or_else(
                || rest.trim_start_matches("//").to_owned(),
                |p| p.to_owned(),
            );
            let sep = if path.contains('?') { '&' } else { '?' };
            let path = if path.contains("mode=") {
                path
            } else {
                format!("{path}{sep}mode=rwc")
            };
            Ok((format!("sqlite:{path}"), DbBackend::Sqlite, false))
        }
        "postgres" | "postgresql" => Ok((format!("postgres:{rest}"), DbBackend::Postgres, false)),
        "mysql" | "mariadb" => Ok((format!("mysql:{rest}"), DbBackend::MySql, false)),
        other => Err(Error::Db(format!(
            "unsupported database {other:?} in [database] connection: use sqlite, postgresql or mysql"
        ))),
    }
}

fn mask(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A connection pool's use ([`Database::pool_status`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open (idle or in use).
    pub size: u32,
    /// Open connections no one holds.
    pub idle: u32,
    /// The pool's limit.
    pub max: u32,
}

/// A database holding nova objects: the direct [`ObjectStore`].
#[derive(Debug, Clone)]
pub struct Database {
    conn: DatabaseConnection,
    /// SQLite files: the connections the store's reads and writes run on
    /// ([`local`]).
    local: Option<Arc<local::Local>>,
    /// The in-process writers' turn ([`Database::write_lock`]).
    write_lock: Arc<tokio::sync::Mutex<()>>,
}

/// The settings of the pool's SQLite connections (this crate's own
/// connections, [`local`], set theirs alike).
fn sqlite_options(
    o: sea_orm::sqlx::sqlite::SqliteConnectOptions,
    busy: Duration,
    memory: bool,
) -> sea_orm::sqlx::sqlite::SqliteConnectOptions {
    let o = o.busy_timeout(busy).foreign_keys(true).with_regexp();
    if memory {
        o
    } else {
        // No memory map (SQLite's default): in WAL mode a connection
        // drops its whole map at the first read after another
        // connection's write (munmap, then a page fault per page read),
        // ~15 % of a boot+delete's CPU; reads of an unchanged file are
        // served from the page cache either way.
        o.create_if_missing(true)
            .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
    }
}

/// SQLite's process-wide settings, made once before its first connection
/// opens (SQLite takes them only before it initializes).
///
/// Memory statistics off: by default SQLite counts every allocation under
/// one process-wide mutex, and sqlx copies each column of each row it
/// reads (`sqlite3_value_dup`) and frees the copies with the row, so every
/// read took and released that mutex twice per column, on every
/// connection's thread at once (a third of a plain instance read's CPU
/// went to those copies). Nothing here reads the statistics
/// (`sqlite3_memory_used`, soft heap limits); SQLite's own documentation
/// recommends `SQLITE_DEFAULT_MEMSTATUS=0` for speed.
fn sqlite_global_config() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `sqlite3_config` must not run while another thread uses
        // SQLite; every connection of this crate opens after this
        // (`Database::connect`, the `Once` makes concurrent first connects
        // wait), and no other code in the process opens SQLite. Were SQLite
        // already initialized, the call only returns SQLITE_MISUSE and
        // changes nothing. The variadic argument is the C `int` the option
        // takes.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
                std::ffi::c_int::from(0u8),
            )
        };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite was already initialized: memory statistics stay on"
            );
        }
    });
}

impl Database {
    /// A new, empty database `<prefix>_<pid>_<time>_<n>` on the server `admin_url`
    /// points at (PostgreSQL, MySQL / MariaDB; tests and benches): the
    /// admin connection (to drop it with), its name and its URL.
    pub async fn create_scratch(admin_url: &str, prefix: &str) -> Result<(Self, String, String)> {
        use sea_orm::ConnectionTrait as _;
        let admin = Database::connect(&DbConfig::new(admin_url)).await?;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{prefix}_{}_{nanos}_{n}", std::process::id());
        admin
            .connection()
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        let url = format!("{base}/{name}");
        Ok((admin, name, url))
    }

    /// Connects (the schema is not touched: see [`Database::sync`]).
    pub async fn connect(cfg: &DbConfig) -> Result<Self> {
        let (url, backend, memory) = normalize_url(&cfg.connection)?;
        if backend == DbBackend::Sqlite {
            sqlite_global_config();
        }
        let mut opts = ConnectOptions::new(url.clone());
        let pool = match (backend, memory) {
            (DbBackend::Sqlite, true) => 1,
            (DbBackend::Sqlite, false) => cfg.max_pool_size.unwrap_or(4),
            _ => cfg.max_pool_size.unwrap_or(10),
        };
        opts.max_connections(pool)
            .min_connections(0)
            .acquire_timeout(cfg.pool_timeout)
            .connect_timeout(cfg.pool_timeout)
            // Statements are logged at INFO (sea-orm's default level).
            .sqlx_logging(cfg.connection_debug >= 50);
        // sqlx pings a connection when it goes back to the pool, and by
        // default again when it is taken out: a round trip per statement
        // (for SQLite, a hand-off to the connection's worker thread and
        // back). An embedded file cannot drop the link, so SQLite skips the
        // check-out ping. A server connection is pinged at every check-out,
        // as oslo.db does: after a database restart every pooled
        // connection is dead, however recently it was used, and without
        // the ping each would fail one statement (a 500, a lost heartbeat,
        // a build dropped) before the pool replaced it.
        if backend != DbBackend::Sqlite {
            opts.test_before_acquire(true);
        } else {
            opts.test_before_acquire(false);
            let busy = cfg.sqlite_busy_timeout;
            opts.map_sqlx_sqlite_opts(move |o| sqlite_options(o, busy, memory));
        }
        let conn = sea_orm::Database::connect(opts)
            .await
            .map_err(|e| Error::Db(format!("cannot connect to {}: {e}", mask(&cfg.connection))))?;
        let write_lock = Arc::<tokio::sync::Mutex<()>>::default();
        let local = if backend == DbBackend::Sqlite && !memory {
            let o: sea_orm::sqlx::sqlite::SqliteConnectOptions = url
                .parse()
                .map_err(|e| Error::Db(format!("{}: {e}", mask(&cfg.connection))))?;
            let local = local::Local::new(
                conn.clone(),
                o.get_filename(),
                cfg.sqlite_busy_timeout,
                cfg.connection_debug >= 50,
                pool as usize,
                write_lock.clone(),
            )
            .map_err(Error::Db)?;
            Some(Arc::new(local))
        } else {
            None
        };
        Ok(Database {
            conn,
            local,
            write_lock,
        })
    }

    /// `nova-manage db sync`: applies pending migrations; returns how many
    /// ran (0 when the schema is current).
    pub async fn sync(&self) -> Result<u32> {
        migrate::NOVA.sync(&self.conn).await
    }

    /// The schema version of the database (`None` before the first sync),
    /// for `nova-status upgrade check`.
    pub async fn schema_version(&self) -> Result<Option<u32>> {
        migrate::NOVA.current(&self.conn).await
    }

    /// The newest schema version this build knows.
    pub fn latest_schema_version() -> u32 {
        migrate::NOVA.latest()
    }

    /// `sqlite`, `postgresql` or `mysql`.
    pub fn backend_name(&self) -> &'static str {
        match self.conn.get_database_backend() {
            DbBackend::Postgres => "postgresql",
            DbBackend::MySql => "mysql",
            _ => "sqlite",
        }
    }

    /// The turn of this process's writers to this database: SQLite allows
    /// one writer at a time, and queueing here (a task waits, no thread)
    /// beats finding the file locked. The store's own writes to a SQLite
    /// file take it for each statement; code running transactions of its
    /// own on [`Database::connection`] (Placement beside nova's tables)
    /// takes it for each transaction.
    pub fn write_lock(&self) -> Arc<tokio::sync::Mutex<()>> {
        self.write_lock.clone()
    }

    /// The sea-orm connection, for queries of one's own.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// The connection pool's use now: connections open, of which idle, and
    /// the most it opens (SQLite files also read on their own connections,
    /// outside this pool).
    pub fn pool_status(&self) -> PoolStatus {
        fn of<DB: sea_orm::sqlx::Database>(p: &sea_orm::sqlx::Pool<DB>) -> PoolStatus {
            PoolStatus {
                size: p.size(),
                idle: u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
                max: p.options().get_max_connections(),
            }
        }
        match self.conn.get_database_backend() {
            #[cfg(feature = "postgres")]
            DbBackend::Postgres => of(self.conn.get_postgres_connection_pool()),
            #[cfg(feature = "mysql")]
            DbBackend::MySql => of(self.conn.get_mysql_connection_pool()),
            DbBackend::Sqlite => of(self.conn.get_sqlite_connection_pool()),
            #[allow(unreachable_patterns)]
            _ => PoolStatus::default(),
        }
    }

    /// Names of the tables the schema holds, with the class each stores.
    pub fn tables() -> Vec<(&'static str, &'static str)> {
        tables::TABLES.iter().map(|t| (t.name, t.object)).collect()
    }

    /// The stored fields of class `objname` (empty if it has no table).
    pub fn stored_fields(objname: &str) -> Vec<&'static str> {
        table_for(objname).map_or_else(Vec::new, |t| t.columns.to_vec())
    }
}

/// A sea-orm error as ours: [`Error::DbConnection`] when the database is
/// out of reach or dropped the connection, [`Error::Db`] otherwise (for
/// callers running statements of their own on [`Database::connection`]).
impl From<sea_orm::DbErr> for Error {
    fn from(e: sea_orm::DbErr) -> Self {
        sql::db_err(e)
    }
}

/// Runs read `op` a second time when the database dropped the connection
/// it ran on (a restart, a failover, a killed session): the pool pings the
/// connection it lends next, or opens a new one, waiting out a restart up
/// to its timeout. Reading twice changes nothing; a write is never run
/// twice here (the first may have committed before the link broke).
async fn read_again_once<T, F, Fut>(op: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    match op().await {
        Err(Error::DbConnection(why)) => {
            tracing::warn!(error = %why, "database connection lost during a read: reading again");
            op().await
        }
        r => r,
    }
}

/// `destroy`; as nova's `instance_destroy`, an instance's virtual
/// interfaces go with it.
async fn destroy<W: rows::Writer>(db: &W, t: &'static Table, obj: Value) -> Result<Value> {
    let gone = sql::destroy(db, t, obj).await?;
    if t.name == "instances"
        && let Some(uuid) = gone[crate::primitive::DATA_KEY]["uuid"].as_str()
    {
        sql::soft_delete_by(db, &tables::VIRTUAL_INTERFACES, "instance_uuid", uuid).await?;
    }
    Ok(gone)
}

fn table_of(objname: &str) -> Result<&'static Table> {
    table_for(objname).ok_or_else(|| Error::ObjectAction {
        action: "persist".into(),
        reason: format!("{objname} objects are not stored in the database"),
    })
}

fn table_of_value(v: &Value) -> Result<&'static Table> {
    let name = v
        .get(NAME_KEY)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::InvalidPrimitive(format!("no {NAME_KEY} key")))?;
    table_of(name)
}

#[async_trait::async_trait]
impl ObjectStore for Database {
    async fn create(&self, _ctx: &RequestContext, obj: Value) -> Result<Value> {
        let t = table_of_value(&obj)?;
        match &self.local {
            Some(l) => sql::create(&**l, t, obj).await,
            None => sql::create(&self.conn, t, obj).await,
        }
    }

    async fn save(&self, _ctx: &RequestContext, obj: Value, opts: &SaveOptions) -> Result<Value> {
        let t = table_of_value(&obj)?;
        match &self.local {
            Some(l) => sql::save(&**l, t, obj, opts).await,
            None => sql::save(&self.conn, t, obj, opts).await,
        }
    }

    async fn destroy(&self, _ctx: &RequestContext, obj: Value) -> Result<Value> {
        let t = table_of_value(&obj)?;
        match &self.local {
            Some(l) => destroy(&**l, t, obj).await,
            None => destroy(&self.conn, t, obj).await,
        }
    }

    async fn get(&self, ctx: &RequestContext, objname: &str, by: &Lookup) -> Result<Value> {
        let t = table_of(objname)?;
        let rd = ReadDeleted::of(ctx)?;
        match &self.local {
            Some(r) => sql::get(&**r, t, by, rd).await,
            None => read_again_once(|| sql::get(&self.conn, t, by, rd)).await,
        }
    }

    async fn list(&self, ctx: &RequestContext, objname: &str, q: &ListQuery) -> Result<Vec<Value>> {
        let t = table_of(objname)?;
        let (rd, admin) = (ReadDeleted::of(ctx)?, ctx.is_admin());
        match &self.local {
            Some(r) => sql::list(&**r, t, q, rd, admin).await,
            None => read_again_once(|| sql::list(&self.conn, t, q, rd, admin)).await,
        }
    }

    async fn count(
        &self,
        ctx: &RequestContext,
        objname: &str,
        filters: &Map<String, Value>,
    ) -> Result<u64> {
        let t = table_of(objname)?;
        let (rd, admin) = (ReadDeleted::of(ctx)?, ctx.is_admin());
        match &self.local {
            Some(r) => sql::count(&**r, t, filters, rd, admin).await,
            None => read_again_once(|| sql::count(&self.conn, t, filters, rd, admin)).await,
        }
    }

    async fn get_instance_with_info_cache(
        &self,
        ctx: &RequestContext,
        uuid: &str,
    ) -> Result<(crate::Instance, Option<crate::InstanceInfoCache>)> {
        // The join reads live rows; deleted ones as `get` reads them.
        if ReadDeleted::of(ctx)? != ReadDeleted::No {
            return crate::store::instance_then_info_cache(self, ctx, uuid).await;
        }
        let found = match &self.local {
            // The show of a server polled while nothing changes decodes
            // its row once.
            Some(r) => {
                let stmt = joined::instance_with_info_cache_stmt(DbBackend::Sqlite, uuid)?;
                r.read_cached(&format!("instance+info_cache {uuid}"), stmt, |mut row| {
                    joined::decode_instance_with_info_cache(&mut row)
                })
                .await?
            }
            None => read_again_once(|| joined::instance_with_info_cache(&self.conn, uuid)).await?,
        };
        found.ok_or_else(|| Error::NotFound {
            kind: "Instance",
            id: uuid.to_owned(),
        })
    }

    async fn instance_counts(
        &self,
        _ctx: &RequestContext,
        project_id: &str,
        user_id: Option<&str>,
    ) -> Result<crate::InstanceCounts> {
        match &self.local {
            Some(r) => sql::instance_counts(&**r, project_id, user_id).await,
            None => read_again_once(|| sql::instance_counts(&self.conn, project_id, user_id)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nova_conf_urls_become_sqlx_urls() {
        let n = |u: &str| normalize_url(u).unwrap();
        assert_eq!(
            n("mysql+pymysql://nova:pw@db/nova").0,
            "mysql://nova:pw@db/nova"
        );
        assert_eq!(n("postgresql://n@h/nova").1, DbBackend::Postgres);
        assert_eq!(
            n("sqlite:////var/lib/nova.db").0,
            "sqlite:/var/lib/nova.db?mode=rwc"
        );
        assert_eq!(n("sqlite:///nova.db").0, "sqlite:nova.db?mode=rwc");
        assert!(n("sqlite://").2);
        assert!(n("sqlite::memory:").2);
        let e = normalize_url("oracle://u:secret@h/x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("use sqlite, postgresql or mysql"), "{e}");
        assert_eq!(
            mask("mysql://nova:secret@db/nova"),
            "mysql://nova:***@db/nova"
        );
    }

    #[test]
    fn every_table_names_a_class_and_stores_only_its_fields() {
        for t in tables::TABLES {
            let class = t.class();
            for c in t.columns {
                assert!(
                    class.field(c).is_some(),
                    "{}.{c} is not a field of {}",
                    t.name,
                    class.name
                );
            }
            for k in t.unique.iter().chain(t.indexes) {
                for c in *k {
                    assert!(t.stores(c), "{}: key column {c} is not stored", t.name);
                    assert_ne!(
                        sql::col_type(t, c),
                        sql::ColType::Json,
                        "{}.{c}: JSON in a key",
                        t.name
                    );
                    assert_ne!(
                        sql::col_type(t, c),
                        sql::ColType::Text,
                        "{}.{c}: TEXT in a key",
                        t.name
                    );
                }
            }
            if let Some(l) = t.list {
                assert!(crate::registry().get(l).is_some(), "{l}");
            }
        }
    }
}
