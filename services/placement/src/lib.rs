//! [`SqlPlacement`]: nova-scheduler's Placement model kept in SQL.
//!
//! Every write runs in one transaction and ends with compare-and-swap
//! updates of the generations it read (`UPDATE … SET generation =
//! generation + 1 WHERE uuid = ? AND generation = ?`). A writer that lost a
//! race sees no row updated, rolls back and — for allocations, as
//! Placement does — retries up to [`ALLOCATION_CONFLICT_RETRIES`] times
//! with fresh usages. So no number of scheduler and compute processes can
//! allocate past `(total - reserved) * allocation_ratio`.
//!
//! Allocation candidates are computed on an in-memory mirror of the
//! tables ([`nova_scheduler::placement::MemoryPlacement`]). This process's
//! own writes update it at once; every [`SqlPlacement::refresh_interval`]
//! a one-column probe (providers and the sum of their generations, which
//! every write bumps) tells whether another process wrote, and only then
//! is it reloaded. A stale mirror can only
//! propose a host whose claim then fails in the database, which the
//! scheduler treats as a lost race (the next host).
//!
//! The [`Placement`] trait is synchronous: call it from a blocking context
//! (`tokio::task::spawn_blocking`) or from a multi-threaded runtime; the
//! `*_async` methods are the native API.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nova_scheduler::placement::{
    AllocationCandidates, Allocations, CandidatesRequest, ConsumerAllocations, InventoryRecord,
    MemoryPlacement, Name, Placement, PlacementError, ResourceProvider,
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, QueryResult,
    Statement, TransactionTrait, Value,
};

type Result<T> = std::result::Result<T, PlacementError>;

/// How often an allocation write retries after losing a provider race
/// (Placement's `allocation_conflict_retry_count`).
pub const ALLOCATION_CONFLICT_RETRIES: usize = 10;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS resource_providers (uuid VARCHAR(36) NOT NULL PRIMARY KEY, name VARCHAR(200) NOT NULL UNIQUE, generation BIGINT NOT NULL, parent_uuid VARCHAR(36), root_uuid VARCHAR(36) NOT NULL)",
    "CREATE TABLE IF NOT EXISTS inventories (rp_uuid VARCHAR(36) NOT NULL, resource_class VARCHAR(255) NOT NULL, total BIGINT NOT NULL, reserved BIGINT NOT NULL, min_unit BIGINT NOT NULL, max_unit BIGINT NOT NULL, step_size BIGINT NOT NULL, allocation_ratio DOUBLE PRECISION NOT NULL, PRIMARY KEY (rp_uuid, resource_class))",
    "CREATE TABLE IF NOT EXISTS consumers (uuid VARCHAR(36) NOT NULL PRIMARY KEY, project_id VARCHAR(255) NOT NULL, user_id VARCHAR(255) NOT NULL, generation BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS allocations (consumer_uuid VARCHAR(36) NOT NULL, rp_uuid VARCHAR(36) NOT NULL, resource_class VARCHAR(255) NOT NULL, used BIGINT NOT NULL, PRIMARY KEY (consumer_uuid, rp_uuid, resource_class))",
    "CREATE TABLE IF NOT EXISTS resource_provider_traits (rp_uuid VARCHAR(36) NOT NULL, trait VARCHAR(255) NOT NULL, PRIMARY KEY (rp_uuid, trait))",
    "CREATE TABLE IF NOT EXISTS resource_provider_aggregates (rp_uuid VARCHAR(36) NOT NULL, aggregate VARCHAR(36) NOT NULL, PRIMARY KEY (rp_uuid, aggregate))",
];

/// An inventory from a row with Placement's inventory columns.
fn inventory_record(r: &QueryResult) -> Result<InventoryRecord> {
    Ok(InventoryRecord {
        total: get_i(r, "total")?,
        reserved: get_i(r, "reserved")?,
        min_unit: get_i(r, "min_unit")?,
        max_unit: get_i(r, "max_unit")?,
        step_size: get_i(r, "step_size")?,
        allocation_ratio: r.try_get::<f64>("", "allocation_ratio").map_err(db)?,
    })
}

fn db(e: DbErr) -> PlacementError {
    // Database failures surface as conflicts: the caller may retry.
    PlacementError::ConcurrentUpdate(format!("placement database: {e}"))
}

/// The in-memory copy candidates are computed on.
#[derive(Debug)]
struct Mirror {
    model: Arc<MemoryPlacement>,
    /// When the database was last found to match it.
    checked: Instant,
    /// What the probe should read if nobody else wrote: providers and the
    /// sum of their generations (every write bumps some generation).
    expected: (i64, i64),
}

/// Placement in SQL. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct SqlPlacement {
    conn: DatabaseConnection,
    backend: DbBackend,
    /// In-process writers take this first: SQLite allows one writer, and
    /// queueing here beats retrying on `SQLITE_BUSY`.
    write_lock: Arc<tokio::sync::Mutex<()>>,
    mirror: Arc<Mutex<Option<Mirror>>>,
    refresh: Duration,
}

impl SqlPlacement {
    /// Placement in the database behind `conn`; call [`SqlPlacement::sync`] once.
    pub fn new(conn: DatabaseConnection) -> Self {
        SqlPlacement {
            backend: conn.get_database_backend(),
            conn,
            write_lock: Arc::default(),
            mirror: Arc::default(),
            refresh: Duration::from_secs(1),
        }
    }

    /// Opens `url` (nova.conf `[placement_database] connection` syntax).
    pub async fn open(url: &str) -> std::result::Result<Self, nova_objects::Error> {
        let db = nova_objects::db::Database::connect(&nova_objects::db::DbConfig::new(url)).await?;
        Ok(Self::on(&db))
    }

    /// Placement at `url`; when that is `db`'s own database (`db_url`),
    /// on `db`'s connections (nova.conf's
    /// `[placement_database] connection` defaults to `[database] connection`).
    pub async fn open_beside(
        url: &str,
        db_url: &str,
        db: &nova_objects::db::Database,
    ) -> std::result::Result<Self, nova_objects::Error> {
        if url == db_url {
            Ok(Self::on(db))
        } else {
            Self::open(url).await
        }
    }

    /// Placement in the same database as `db`'s objects, on its connections.
    pub fn on(db: &nova_objects::db::Database) -> Self {
        Self::new(db.connection().clone())
    }

    /// How old the candidates mirror may get (default 1 s).
    pub fn refresh_interval(mut self, d: Duration) -> Self {
        self.refresh = d;
        self
    }

    /// Forgets the mirror: the next candidates query reloads it.
    pub fn invalidate(&self) {
        *self.mirror.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Creates the tables (idempotent).
    pub async fn sync(&self) -> Result<()> {
        for sql in SCHEMA {
            let sql = if self.backend == DbBackend::MySql {
                format!("{sql} ENGINE=InnoDB")
            } else {
                (*sql).to_owned()
            };
            self.conn.execute_unprepared(&sql).await.map_err(db)?;
        }
        for (name, sql) in [
            ("allocations_rp_idx", "allocations (rp_uuid)"),
            (
                "resource_providers_root_idx",
                "resource_providers (root_uuid)",
            ),
        ] {
            let create = format!("CREATE INDEX {name} ON {sql}");
            if self.backend == DbBackend::MySql {
                // MySQL has no CREATE INDEX IF NOT EXISTS: ignore "exists".
                let _ = self.conn.execute_unprepared(&create).await;
            } else {
                let create = create.replacen("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1);
                self.conn.execute_unprepared(&create).await.map_err(db)?;
            }
        }
        Ok(())
    }

    fn stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        let sql = if self.backend == DbBackend::Postgres {
            let mut out = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for ch in sql.chars() {
                if ch == '?' {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                } else {
                    out.push(ch);
                }
            }
            out
        } else {
            sql.to_owned()
        };
        Statement::from_sql_and_values(self.backend, sql, values)
    }

    async fn all<C: ConnectionTrait>(
        &self,
        c: &C,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Vec<QueryResult>> {
        c.query_all_raw(self.stmt(sql, values)).await.map_err(db)
    }

    async fn exec<C: ConnectionTrait>(&self, c: &C, sql: &str, values: Vec<Value>) -> Result<u64> {
        c.execute_raw(self.stmt(sql, values))
            .await
            .map(|r| r.rows_affected())
            .map_err(db)
    }

    async fn begin(&self) -> Result<DatabaseTransaction> {
        // SQLite: take the write lock at BEGIN, so a transaction that reads
        // then writes waits for other writers (busy_timeout) instead of
        // failing when it upgrades.
        let opts = sea_orm::TransactionOptions {
            sqlite_transaction_mode: (self.backend == DbBackend::Sqlite)
                .then_some(sea_orm::SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        self.conn.begin_with_options(opts).await.map_err(db)
    }

    async fn provider_row<C: ConnectionTrait>(
        &self,
        c: &C,
        uuid: &str,
    ) -> Result<ResourceProvider> {
        let rows = self
            .all(
                c,
                "SELECT uuid, name, generation, parent_uuid, root_uuid FROM resource_providers WHERE uuid = ?",
                vec![uuid.into()],
            )
            .await?;
        let r = rows
            .first()
            .ok_or_else(|| PlacementError::NotFound(format!("resource provider {uuid}")))?;
        provider_of(r)
    }

    /// Bumps the generation of `uuid` from `generation`; false when the
    /// provider moved on (a lost race).
    async fn cas_generation<C: ConnectionTrait>(
        &self,
        c: &C,
        uuid: &str,
        generation: u64,
    ) -> Result<bool> {
        let n = self
            .exec(
                c,
                "UPDATE resource_providers SET generation = generation + 1 WHERE uuid = ? AND generation = ?",
                vec![uuid.into(), (generation as i64).into()],
            )
            .await?;
        Ok(n == 1)
    }

    /// Checks `generation` against the provider and bumps it, inside `txn`.
    async fn bump_checked(
        &self,
        txn: &DatabaseTransaction,
        uuid: &str,
        generation: u64,
    ) -> Result<u64> {
        if self.cas_generation(txn, uuid, generation).await? {
            return Ok(generation + 1);
        }
        let cur = self.provider_row(txn, uuid).await?;
        Err(PlacementError::ConcurrentUpdate(format!(
            "resource provider {uuid} generation conflict: {generation} given, {} current",
            cur.generation
        )))
    }

    /// `POST /resource_providers`.
    pub async fn create_provider_async(
        &self,
        uuid: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<ResourceProvider> {
        let _w = self.write_lock.lock().await;
        let txn = self.begin().await?;
        let root = match parent {
            Some(p) => self.provider_row(&txn, p).await?.root_provider_uuid,
            None => uuid.to_owned(),
        };
        let dup = self
            .all(
                &txn,
                "SELECT uuid, name FROM resource_providers WHERE uuid = ? OR name = ?",
                vec![uuid.into(), name.into()],
            )
            .await?;
        if let Some(r) = dup.first() {
            let what = if get_s(r, "uuid")? == uuid {
                format!("uuid {uuid}")
            } else {
                format!("name {name}")
            };
            return Err(PlacementError::Duplicate(format!(
                "Conflicting resource provider {what} already exists."
            )));
        }
        self.exec(
            &txn,
            "INSERT INTO resource_providers (uuid, name, generation, parent_uuid, root_uuid) VALUES (?, ?, 0, ?, ?)",
            vec![
                uuid.into(),
                name.into(),
                parent.map(str::to_owned).into(),
                root.clone().into(),
            ],
        )
        .await
        .map_err(|e| PlacementError::Duplicate(e.to_string()))?;
        txn.commit().await.map_err(db)?;
        self.invalidate();
        Ok(ResourceProvider {
            uuid: uuid.to_owned(),
            name: name.to_owned(),
            generation: 0,
            parent_provider_uuid: parent.map(str::to_owned),
            root_provider_uuid: root,
        })
    }

    /// `GET /resource_providers/{uuid}`.
    pub async fn get_provider_async(&self, uuid: &str) -> Result<ResourceProvider> {
        self.provider_row(&self.conn, uuid).await
    }

    /// `GET /resource_providers` (`name=` and `uuid=` filters), by name.
    pub async fn list_providers_async(
        &self,
        name: Option<&str>,
        uuid: Option<&str>,
    ) -> Result<Vec<ResourceProvider>> {
        let mut sql = String::from(
            "SELECT uuid, name, generation, parent_uuid, root_uuid FROM resource_providers WHERE 1 = 1",
        );
        let mut values = Vec::new();
        for (col, v) in [("name", name), ("uuid", uuid)] {
            if let Some(v) = v {
                sql.push_str(&format!(" AND {col} = ?"));
                values.push(v.into());
            }
        }
        sql.push_str(" ORDER BY name");
        let rows = self.all(&self.conn, &sql, values).await?;
        rows.iter().map(provider_of).collect()
    }

    /// `DELETE /resource_providers/{uuid}`.
    pub async fn delete_provider_async(&self, uuid: &str) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let txn = self.begin().await?;
        self.provider_row(&txn, uuid).await?;
        let children = self
            .all(
                &txn,
                "SELECT uuid FROM resource_providers WHERE parent_uuid = ?",
                vec![uuid.into()],
            )
            .await?;
        if !children.is_empty() {
            return Err(PlacementError::CannotDeleteParent(format!(
                "Unable to delete parent resource provider {uuid}: It has child resource providers."
            )));
        }
        let allocs = self
            .all(
                &txn,
                "SELECT consumer_uuid FROM allocations WHERE rp_uuid = ?",
                vec![uuid.into()],
            )
            .await?;
        if !allocs.is_empty() {
            return Err(PlacementError::ProviderInUse(format!(
                "Unable to delete resource provider {uuid}: Resource provider has allocations."
            )));
        }
        for table in [
            "inventories",
            "resource_provider_traits",
            "resource_provider_aggregates",
        ] {
            self.exec(
                &txn,
                &format!("DELETE FROM {table} WHERE rp_uuid = ?"),
                vec![uuid.into()],
            )
            .await?;
        }
        self.exec(
            &txn,
            "DELETE FROM resource_providers WHERE uuid = ?",
            vec![uuid.into()],
        )
        .await?;
        txn.commit().await.map_err(db)?;
        self.invalidate();
        Ok(())
    }

    async fn inventories_in<C: ConnectionTrait>(
        &self,
        c: &C,
        uuid: &str,
    ) -> Result<BTreeMap<String, InventoryRecord>> {
        let rows = self
            .all(
                c,
                "SELECT resource_class, total, reserved, min_unit, max_unit, step_size, allocation_ratio FROM inventories WHERE rp_uuid = ?",
                vec![uuid.into()],
            )
            .await?;
        let mut out = BTreeMap::new();
        for r in &rows {
            out.insert(get_s(r, "resource_class")?, inventory_record(r)?);
        }
        Ok(out)
    }

    /// A provider's generation and, per resource class, its inventory and
    /// what consumers other than `consumer` use of it: one statement.
    async fn capacity_in<C: ConnectionTrait>(
        &self,
        c: &C,
        uuid: &str,
        consumer: &str,
    ) -> Result<(u64, BTreeMap<String, (InventoryRecord, i64)>)> {
        // SUM is NUMERIC on PostgreSQL and DECIMAL on MySQL: cast it back.
        let int = match self.backend {
            DbBackend::MySql => "SIGNED",
            _ => "BIGINT",
        };
        let sql = format!(
            "SELECT rp.generation, i.resource_class, i.total, i.reserved, i.min_unit, i.max_unit, i.step_size, i.allocation_ratio, \
             CAST((SELECT COALESCE(SUM(a.used), 0) FROM allocations a WHERE a.rp_uuid = i.rp_uuid AND a.resource_class = i.resource_class AND a.consumer_uuid <> ?) AS {int}) AS used \
             FROM resource_providers rp LEFT JOIN inventories i ON i.rp_uuid = rp.uuid WHERE rp.uuid = ?"
        );
        let rows = self
            .all(c, &sql, vec![consumer.into(), uuid.into()])
            .await?;
        let first = rows
            .first()
            .ok_or_else(|| PlacementError::NotFound(format!("resource provider {uuid}")))?;
        let generation = get_i(first, "generation")? as u64;
        let mut out = BTreeMap::new();
        for r in &rows {
            let Some(rc) = r
                .try_get::<Option<String>>("", "resource_class")
                .map_err(db)?
            else {
                continue; // a provider without inventory
            };
            let inv = inventory_record(r)?;
            out.insert(rc, (inv, get_i(r, "used")?));
        }
        Ok((generation, out))
    }

    /// `GET /resource_providers/{uuid}/inventories`.
    pub async fn inventories_async(
        &self,
        uuid: &str,
    ) -> Result<(u64, BTreeMap<String, InventoryRecord>)> {
        let rp = self.provider_row(&self.conn, uuid).await?;
        Ok((rp.generation, self.inventories_in(&self.conn, uuid).await?))
    }

    async fn usages_in<C: ConnectionTrait>(
        &self,
        c: &C,
        uuid: &str,
        except_consumer: Option<&str>,
    ) -> Result<BTreeMap<String, i64>> {
        let rows = self
            .all(
                c,
                "SELECT consumer_uuid, resource_class, used FROM allocations WHERE rp_uuid = ?",
                vec![uuid.into()],
            )
            .await?;
        let mut out = BTreeMap::new();
        for r in &rows {
            if except_consumer.is_some_and(|c| get_s(r, "consumer_uuid").is_ok_and(|x| x == c)) {
                continue;
            }
            *out.entry(get_s(r, "resource_class")?).or_insert(0) += get_i(r, "used")?;
        }
        Ok(out)
    }

    /// `PUT /resource_providers/{uuid}/inventories`.
    pub async fn set_inventories_async(
        &self,
        uuid: &str,
        generation: u64,
        inventories: &BTreeMap<String, InventoryRecord>,
    ) -> Result<u64> {
        for (rc, inv) in inventories {
            if !nova_scheduler::placement::valid_resource_class(rc) {
                return Err(PlacementError::BadRequest(format!(
                    "No such resource class {rc}."
                )));
            }
            inv.validate()
                .map_err(|e| PlacementError::BadRequest(format!("{rc}: {e}")))?;
        }
        let _w = self.write_lock.lock().await;
        let txn = self.begin().await?;
        let new_gen = self.bump_checked(&txn, uuid, generation).await?;
        let used = self.usages_in(&txn, uuid, None).await?;
        for (rc, amount) in used.iter().filter(|(_, a)| **a > 0) {
            match inventories.get(rc) {
                None => {
                    return Err(PlacementError::InventoryInUse(format!(
                        "Inventory for '{rc}' on resource provider '{uuid}' in use."
                    )));
                }
                Some(inv) if inv.capacity() < *amount => {
                    return Err(PlacementError::InventoryInUse(format!(
                        "Unable to update inventory for resource provider {uuid}: {rc} capacity {} is below its usage {amount}.",
                        inv.capacity()
                    )));
                }
                _ => {}
            }
        }
        self.exec(
            &txn,
            "DELETE FROM inventories WHERE rp_uuid = ?",
            vec![uuid.into()],
        )
        .await?;
        for (rc, inv) in inventories {
            self.exec(
                &txn,
                "INSERT INTO inventories (rp_uuid, resource_class, total, reserved, min_unit, max_unit, step_size, allocation_ratio) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                vec![
                    uuid.into(),
                    rc.clone().into(),
                    inv.total.into(),
                    inv.reserved.into(),
                    inv.min_unit.into(),
                    inv.max_unit.into(),
                    inv.step_size.into(),
                    inv.allocation_ratio.into(),
                ],
            )
            .await?;
        }
        txn.commit().await.map_err(db)?;
        self.invalidate();
        Ok(new_gen)
    }

    async fn names(&self, table: &str, col: &str, uuid: &str) -> Result<(u64, BTreeSet<String>)> {
        let rp = self.provider_row(&self.conn, uuid).await?;
        let rows = self
            .all(
                &self.conn,
                &format!("SELECT {col} FROM {table} WHERE rp_uuid = ?"),
                vec![uuid.into()],
            )
            .await?;
        let mut out = BTreeSet::new();
        for r in &rows {
            out.insert(get_s(r, col)?);
        }
        Ok((rp.generation, out))
    }

    async fn set_names(
        &self,
        table: &str,
        col: &str,
        uuid: &str,
        generation: u64,
        names: &BTreeSet<String>,
    ) -> Result<u64> {
        let _w = self.write_lock.lock().await;
        let txn = self.begin().await?;
        let new_gen = self.bump_checked(&txn, uuid, generation).await?;
        self.exec(
            &txn,
            &format!("DELETE FROM {table} WHERE rp_uuid = ?"),
            vec![uuid.into()],
        )
        .await?;
        for n in names {
            self.exec(
                &txn,
                &format!("INSERT INTO {table} (rp_uuid, {col}) VALUES (?, ?)"),
                vec![uuid.into(), n.clone().into()],
            )
            .await?;
        }
        txn.commit().await.map_err(db)?;
        self.invalidate();
        Ok(new_gen)
    }

    /// `GET /resource_providers/{uuid}/traits`.
    pub async fn traits_async(&self, uuid: &str) -> Result<(u64, BTreeSet<String>)> {
        self.names("resource_provider_traits", "trait", uuid).await
    }

    /// `PUT /resource_providers/{uuid}/traits`.
    pub async fn set_traits_async(
        &self,
        uuid: &str,
        generation: u64,
        traits: &BTreeSet<String>,
    ) -> Result<u64> {
        self.set_names(
            "resource_provider_traits",
            "trait",
            uuid,
            generation,
            traits,
        )
        .await
    }

    /// `GET /resource_providers/{uuid}/aggregates`.
    pub async fn aggregates_async(&self, uuid: &str) -> Result<(u64, BTreeSet<String>)> {
        self.names("resource_provider_aggregates", "aggregate", uuid)
            .await
    }

    /// `PUT /resource_providers/{uuid}/aggregates`.
    pub async fn set_aggregates_async(
        &self,
        uuid: &str,
        generation: u64,
        aggregates: &BTreeSet<String>,
    ) -> Result<u64> {
        self.set_names(
            "resource_provider_aggregates",
            "aggregate",
            uuid,
            generation,
            aggregates,
        )
        .await
    }

    /// `GET /resource_providers/{uuid}/usages`.
    pub async fn usages_async(&self, uuid: &str) -> Result<BTreeMap<String, i64>> {
        self.provider_row(&self.conn, uuid).await?;
        self.usages_in(&self.conn, uuid, None).await
    }

    async fn consumer_in<C: ConnectionTrait>(
        &self,
        c: &C,
        consumer: &str,
    ) -> Result<ConsumerAllocations> {
        let rows = self
            .all(
                c,
                "SELECT project_id, user_id, generation FROM consumers WHERE uuid = ?",
                vec![consumer.into()],
            )
            .await?;
        let mut out = ConsumerAllocations::default();
        let Some(r) = rows.first() else {
            return Ok(out);
        };
        out.project_id = get_s(r, "project_id")?;
        out.user_id = get_s(r, "user_id")?;
        out.consumer_generation = Some(get_i(r, "generation")? as u64);
        let rows = self
            .all(
                c,
                "SELECT rp_uuid, resource_class, used FROM allocations WHERE consumer_uuid = ?",
                vec![consumer.into()],
            )
            .await?;
        for r in &rows {
            out.allocations
                .entry(Name::from(get_s(r, "rp_uuid")?))
                .or_default()
                .insert(Name::from(get_s(r, "resource_class")?), get_i(r, "used")?);
        }
        Ok(out)
    }

    /// `GET /allocations/{consumer}`.
    pub async fn allocations_async(&self, consumer: &str) -> Result<ConsumerAllocations> {
        self.consumer_in(&self.conn, consumer).await
    }

    /// `PUT /allocations/{consumer}` (empty `allocations` deletes them).
    pub async fn put_allocations_async(
        &self,
        consumer: &str,
        allocations: &Allocations,
        project_id: &str,
        user_id: &str,
        consumer_generation: Option<u64>,
    ) -> Result<Option<u64>> {
        let _w = self.write_lock.lock().await;
        let mut last = None;
        for _ in 0..ALLOCATION_CONFLICT_RETRIES {
            match self
                .try_put_allocations(
                    consumer,
                    allocations,
                    project_id,
                    user_id,
                    consumer_generation,
                )
                .await
            {
                Err(Retry::ProviderRace(msg)) => last = Some(msg),
                Err(Retry::Fail(e)) => return Err(e),
                Ok((g, bumped)) => {
                    self.mirror_apply(consumer, allocations, project_id, user_id, bumped);
                    return Ok(g);
                }
            }
        }
        Err(PlacementError::ConcurrentUpdate(last.unwrap_or_else(
            || "resource provider generation conflict".to_owned(),
        )))
    }

    /// `DELETE /allocations/{consumer}` (whatever its generation; a
    /// consumer without allocations is fine). Freeing never overcommits,
    /// so the providers' generations are bumped without a check.
    pub async fn delete_allocations_async(&self, consumer: &str) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let txn = self.begin().await?;
        let rows = self
            .all(
                &txn,
                "SELECT DISTINCT rp_uuid FROM allocations WHERE consumer_uuid = ?",
                vec![consumer.into()],
            )
            .await?;
        self.exec(
            &txn,
            "DELETE FROM allocations WHERE consumer_uuid = ?",
            vec![consumer.into()],
        )
        .await?;
        self.exec(
            &txn,
            "DELETE FROM consumers WHERE uuid = ?",
            vec![consumer.into()],
        )
        .await?;
        for r in &rows {
            self.exec(
                &txn,
                "UPDATE resource_providers SET generation = generation + 1 WHERE uuid = ?",
                vec![get_s(r, "rp_uuid")?.into()],
            )
            .await?;
        }
        txn.commit().await.map_err(db)?;
        if !rows.is_empty() {
            self.mirror_apply(consumer, &Allocations::new(), "", "", rows.len() as i64);
        }
        Ok(())
    }

    async fn try_put_allocations(
        &self,
        consumer: &str,
        allocations: &Allocations,
        project_id: &str,
        user_id: &str,
        consumer_generation: Option<u64>,
    ) -> std::result::Result<(Option<u64>, i64), Retry> {
        let txn = self.begin().await?;
        let current = self.consumer_in(&txn, consumer).await?;
        if current.consumer_generation != consumer_generation {
            return Err(Retry::Fail(PlacementError::ConcurrentUpdate(format!(
                "consumer generation conflict - expected {:?} but got {:?}",
                current.consumer_generation, consumer_generation
            ))));
        }
        // Every provider whose usage changes: the new ones and the old ones.
        let mut touched: BTreeSet<&str> = allocations.keys().map(|k| &**k).collect();
        touched.extend(current.allocations.keys().map(|k| &**k));
        let mut generations = Vec::new();
        for rp in &touched {
            let missing = |e| match e {
                PlacementError::NotFound(_) => Retry::Fail(PlacementError::BadRequest(format!(
                    "Allocation for resource provider '{rp}' that does not exist."
                ))),
                e => Retry::Fail(e),
            };
            let Some(wanted) = allocations.get(*rp) else {
                let row = self.provider_row(&txn, rp).await.map_err(missing)?;
                generations.push((rp.to_string(), row.generation));
                continue;
            };
            let (generation, inventories) = self
                .capacity_in(&txn, rp, consumer)
                .await
                .map_err(missing)?;
            generations.push((rp.to_string(), generation));
            for (rc, amount) in wanted {
                let Some((inv, u)) = inventories.get(&**rc) else {
                    return Err(Retry::Fail(PlacementError::BadRequest(format!(
                        "Unable to allocate inventory: Inventory for '{rc}' on resource provider '{rp}' invalid."
                    ))));
                };
                if *amount < inv.min_unit
                    || *amount > inv.max_unit
                    || *amount % inv.step_size.max(1) != 0
                {
                    return Err(Retry::Fail(PlacementError::BadRequest(format!(
                        "Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{rp}'. The requested amount would violate inventory constraints."
                    ))));
                }
                if !inv.admits(*u, *amount) {
                    return Err(Retry::Fail(PlacementError::CapacityExceeded(format!(
                        "Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{rp}'. The requested amount would exceed the capacity."
                    ))));
                }
            }
        }
        if !current.allocations.is_empty() {
            self.exec(
                &txn,
                "DELETE FROM allocations WHERE consumer_uuid = ?",
                vec![consumer.into()],
            )
            .await?;
        }
        // One multi-row INSERT for every (provider, class).
        let mut values = Vec::new();
        let mut rows = Vec::new();
        for (rp, resources) in allocations {
            for (rc, amount) in resources {
                rows.push("(?, ?, ?, ?)");
                values.extend([
                    Value::from(consumer),
                    rp.to_string().into(),
                    rc.to_string().into(),
                    (*amount).into(),
                ]);
            }
        }
        if !rows.is_empty() {
            let sql = format!(
                "INSERT INTO allocations (consumer_uuid, rp_uuid, resource_class, used) VALUES {}",
                rows.join(", ")
            );
            self.exec(&txn, &sql, values).await?;
        }
        for (rp, g) in &generations {
            if !self.cas_generation(&txn, rp, *g).await? {
                return Err(Retry::ProviderRace(format!(
                    "resource provider {rp} changed while allocating for {consumer}"
                )));
            }
        }
        let new_gen = if allocations.is_empty() {
            self.exec(
                &txn,
                "DELETE FROM consumers WHERE uuid = ?",
                vec![consumer.into()],
            )
            .await?;
            None
        } else if let Some(g) = current.consumer_generation {
            let n = self
                .exec(
                    &txn,
                    "UPDATE consumers SET generation = generation + 1, project_id = ?, user_id = ? WHERE uuid = ? AND generation = ?",
                    vec![project_id.into(), user_id.into(), consumer.into(), (g as i64).into()],
                )
                .await?;
            if n != 1 {
                return Err(Retry::Fail(PlacementError::ConcurrentUpdate(
                    "consumer generation conflict".into(),
                )));
            }
            Some(g + 1)
        } else {
            self.exec(
                &txn,
                "INSERT INTO consumers (uuid, project_id, user_id, generation) VALUES (?, ?, ?, 1)",
                vec![consumer.into(), project_id.into(), user_id.into()],
            )
            .await
            .map_err(|_| {
                Retry::Fail(PlacementError::ConcurrentUpdate(
                    "consumer generation conflict - the consumer was created concurrently".into(),
                ))
            })?;
            Some(1)
        };
        txn.commit().await.map_err(db)?;
        Ok((new_gen, generations.len() as i64))
    }

    /// Applies this process's committed write to the mirror (which then
    /// expects `bumped` more generations in the database).
    fn mirror_apply(
        &self,
        consumer: &str,
        allocations: &Allocations,
        project: &str,
        user: &str,
        bumped: i64,
    ) {
        let mut guard = self.mirror.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mirror) = guard.as_mut() else {
            return;
        };
        let m = &mirror.model;
        let ok = match m.allocations(consumer).map(|c| c.consumer_generation) {
            Ok(g) => m
                .put_allocations(consumer, allocations, project, user, g)
                .is_ok(),
            Err(_) => false,
        };
        if ok {
            mirror.expected.1 += bumped;
        } else {
            *guard = None;
        }
    }

    /// Providers and the sum of their generations.
    async fn probe(&self) -> Result<(i64, i64)> {
        let rows = self
            .all(
                &self.conn,
                "SELECT generation FROM resource_providers",
                vec![],
            )
            .await?;
        let mut sum = 0i64;
        for r in &rows {
            sum = sum.wrapping_add(get_i(r, "generation")?);
        }
        Ok((rows.len() as i64, sum))
    }

    /// Loads every table into a fresh in-memory model.
    pub async fn snapshot(&self) -> Result<MemoryPlacement> {
        let m = MemoryPlacement::new();
        let rows = self
            .all(
                &self.conn,
                "SELECT uuid, name, parent_uuid FROM resource_providers",
                vec![],
            )
            .await?;
        let mut pending: Vec<(String, String, Option<String>)> = Vec::with_capacity(rows.len());
        for r in &rows {
            pending.push((
                get_s(r, "uuid")?,
                get_s(r, "name")?,
                r.try_get::<Option<String>>("", "parent_uuid").map_err(db)?,
            ));
        }
        // Parents before children.
        let mut created: BTreeSet<String> = BTreeSet::new();
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|(u, n, p)| {
                if p.as_ref().is_none_or(|p| created.contains(p)) {
                    if m.create_provider(u, n, p.as_deref()).is_ok() {
                        created.insert(u.clone());
                    }
                    false
                } else {
                    true
                }
            });
            if pending.len() == before {
                break; // orphans (a parent missing): left out
            }
        }
        let mut invs: BTreeMap<String, BTreeMap<String, InventoryRecord>> = BTreeMap::new();
        for r in &self
            .all(&self.conn, "SELECT rp_uuid, resource_class, total, reserved, min_unit, max_unit, step_size, allocation_ratio FROM inventories", vec![])
            .await?
        {
            invs.entry(get_s(r, "rp_uuid")?).or_default().insert(
                get_s(r, "resource_class")?,
                inventory_record(r)?,
            );
        }
        for (rp, inv) in &invs {
            if let Ok(rpv) = m.get_provider(rp) {
                let _ = m.set_inventories(rp, rpv.generation, inv);
            }
        }
        for (table, col, traits) in [
            ("resource_provider_traits", "trait", true),
            ("resource_provider_aggregates", "aggregate", false),
        ] {
            let mut sets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for r in &self
                .all(
                    &self.conn,
                    &format!("SELECT rp_uuid, {col} FROM {table}"),
                    vec![],
                )
                .await?
            {
                sets.entry(get_s(r, "rp_uuid")?)
                    .or_default()
                    .insert(get_s(r, col)?);
            }
            for (rp, set) in &sets {
                if let Ok(rpv) = m.get_provider(rp) {
                    let _ = if traits {
                        m.set_traits(rp, rpv.generation, set)
                    } else {
                        m.set_aggregates(rp, rpv.generation, set)
                    };
                }
            }
        }
        let mut consumers: BTreeMap<String, (String, String)> = BTreeMap::new();
        for r in &self
            .all(
                &self.conn,
                "SELECT uuid, project_id, user_id FROM consumers",
                vec![],
            )
            .await?
        {
            consumers.insert(
                get_s(r, "uuid")?,
                (get_s(r, "project_id")?, get_s(r, "user_id")?),
            );
        }
        let mut allocs: BTreeMap<String, Allocations> = BTreeMap::new();
        for r in &self
            .all(
                &self.conn,
                "SELECT consumer_uuid, rp_uuid, resource_class, used FROM allocations",
                vec![],
            )
            .await?
        {
            allocs
                .entry(get_s(r, "consumer_uuid")?)
                .or_default()
                .entry(Name::from(get_s(r, "rp_uuid")?))
                .or_default()
                .insert(Name::from(get_s(r, "resource_class")?), get_i(r, "used")?);
        }
        for (c, a) in &allocs {
            let (p, u) = consumers.get(c).cloned().unwrap_or_default();
            // What the database holds is the truth, even past capacity.
            let _ = m.put_allocations(c, a, &p, &u, None);
        }
        Ok(m)
    }

    /// `GET /allocation_candidates`, on the mirror.
    pub async fn allocation_candidates_async(
        &self,
        req: &CandidatesRequest,
    ) -> Result<AllocationCandidates> {
        let (current, due) = {
            let g = self.mirror.lock().unwrap_or_else(|e| e.into_inner());
            match g.as_ref() {
                Some(m) => (
                    Some((m.model.clone(), m.expected)),
                    m.checked.elapsed() >= self.refresh,
                ),
                None => (None, true),
            }
        };
        let model = match current {
            // Fresh enough, or nobody else wrote since (the probe reads
            // what this process expects): keep the mirror.
            Some((model, _)) if !due => model,
            Some((model, expected)) if self.probe().await? == expected => {
                if let Some(m) = self
                    .mirror
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_mut()
                {
                    m.checked = Instant::now();
                }
                model
            }
            _ => {
                let t0 = Instant::now();
                let expected = self.probe().await?;
                let model = Arc::new(self.snapshot().await?);
                tracing::debug!(elapsed = ?t0.elapsed(), "placement mirror reloaded");
                *self.mirror.lock().unwrap_or_else(|e| e.into_inner()) = Some(Mirror {
                    model: model.clone(),
                    checked: Instant::now(),
                    expected,
                });
                model
            }
        };
        model.allocation_candidates(req)
    }
}

enum Retry {
    ProviderRace(String),
    Fail(PlacementError),
}

impl From<PlacementError> for Retry {
    fn from(e: PlacementError) -> Self {
        Retry::Fail(e)
    }
}

impl From<DbErr> for Retry {
    fn from(e: DbErr) -> Self {
        // SQLite "database is locked" and serialization failures: retry.
        Retry::ProviderRace(e.to_string())
    }
}

fn provider_of(r: &QueryResult) -> Result<ResourceProvider> {
    Ok(ResourceProvider {
        uuid: get_s(r, "uuid")?,
        name: get_s(r, "name")?,
        generation: get_i(r, "generation")? as u64,
        parent_provider_uuid: r.try_get::<Option<String>>("", "parent_uuid").map_err(db)?,
        root_provider_uuid: get_s(r, "root_uuid")?,
    })
}

fn get_s(r: &QueryResult, col: &str) -> Result<String> {
    r.try_get::<String>("", col).map_err(db)
}

fn get_i(r: &QueryResult, col: &str) -> Result<i64> {
    r.try_get::<i64>("", col).map_err(db)
}

/// Runs `fut` to completion from synchronous code.
fn block<F: Future>(fut: F) -> F::Output {
    let handle = tokio::runtime::Handle::try_current()
        .unwrap_or_else(|_| panic!("SqlPlacement's Placement trait needs a tokio runtime"));
    match handle.runtime_flavor() {
        // Allowed from a blocking thread (`spawn_blocking`) only.
        tokio::runtime::RuntimeFlavor::CurrentThread => handle.block_on(fut),
        _ => tokio::task::block_in_place(|| handle.block_on(fut)),
    }
}

impl Placement for SqlPlacement {
    fn create_provider(
        &self,
        uuid: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<ResourceProvider> {
        block(self.create_provider_async(uuid, name, parent))
    }
    fn get_provider(&self, uuid: &str) -> Result<ResourceProvider> {
        block(self.get_provider_async(uuid))
    }
    fn delete_provider(&self, uuid: &str) -> Result<()> {
        block(self.delete_provider_async(uuid))
    }
    fn inventories(&self, uuid: &str) -> Result<(u64, BTreeMap<String, InventoryRecord>)> {
        block(self.inventories_async(uuid))
    }
    fn set_inventories(
        &self,
        uuid: &str,
        generation: u64,
        inventories: &BTreeMap<String, InventoryRecord>,
    ) -> Result<u64> {
        block(self.set_inventories_async(uuid, generation, inventories))
    }
    fn traits(&self, uuid: &str) -> Result<(u64, BTreeSet<String>)> {
        block(self.traits_async(uuid))
    }
    fn set_traits(&self, uuid: &str, generation: u64, traits: &BTreeSet<String>) -> Result<u64> {
        block(self.set_traits_async(uuid, generation, traits))
    }
    fn aggregates(&self, uuid: &str) -> Result<(u64, BTreeSet<String>)> {
        block(self.aggregates_async(uuid))
    }
    fn set_aggregates(
        &self,
        uuid: &str,
        generation: u64,
        aggregates: &BTreeSet<String>,
    ) -> Result<u64> {
        block(self.set_aggregates_async(uuid, generation, aggregates))
    }
    fn usages(&self, uuid: &str) -> Result<BTreeMap<String, i64>> {
        block(self.usages_async(uuid))
    }
    fn allocation_candidates(&self, req: &CandidatesRequest) -> Result<AllocationCandidates> {
        block(self.allocation_candidates_async(req))
    }
    fn delete_allocations(&self, consumer: &str) -> Result<()> {
        block(self.delete_allocations_async(consumer))
    }
    fn allocations(&self, consumer: &str) -> Result<ConsumerAllocations> {
        block(self.allocations_async(consumer))
    }
    fn put_allocations(
        &self,
        consumer: &str,
        allocations: &Allocations,
        project_id: &str,
        user_id: &str,
        consumer_generation: Option<u64>,
    ) -> Result<Option<u64>> {
        block(self.put_allocations_async(
            consumer,
            allocations,
            project_id,
            user_id,
            consumer_generation,
        ))
    }
}
