//! [`SqlPlacement`]: the store logic — transactions, generation checks,
//! in-use refusals and allocation retries — over the statements of
//! [`crate::sql`].
//!
//! Every write runs in one transaction and ends with compare-and-swap
//! updates of the generations it read (`UPDATE … SET generation =
//! generation + 1 WHERE uuid = ? AND generation = ?`). A writer that lost a
//! race sees no row updated, rolls back and — for allocations, as
//! Placement does — retries up to [`ALLOCATION_CONFLICT_RETRIES`] times
//! with fresh usages.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use nova_scheduler::placement::{
    AllocationCandidates, Allocations, CandidatesRequest, ConsumerAllocations, ConsumerWrite,
    InventoryRecord, InventoryWrite, MemoryPlacement, PlacementError, ResourceProvider,
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, TransactionTrait,
};

use crate::PlacementService;
use crate::error::{Failure, classify, db};
use crate::mirror::{Mirror, snapshot};
use crate::service::Custom;
use crate::service::{ConsumerGeneration, check_amount, consumer_conflict, missing_provider};
use crate::sql::{self, NameSet};

type Result<T> = std::result::Result<T, PlacementError>;

/// How often an allocation write retries after losing a provider race
/// (Placement's `allocation_conflict_retry_count`).
pub const ALLOCATION_CONFLICT_RETRIES: usize = 10;

/// Placement in SQL (SQLite, PostgreSQL, MySQL). Cheap to clone (shared
/// state).
///
/// Allocation candidates are computed on an in-memory mirror of the
/// tables, kept within [`SqlPlacement::refresh_interval`] of the database.
#[derive(Debug, Clone)]
pub struct SqlPlacement {
    conn: DatabaseConnection,
    /// In-process writers take this first: SQLite allows one writer, and
    /// queueing here beats retrying on `SQLITE_BUSY`.
    write_lock: Arc<tokio::sync::Mutex<()>>,
    mirror: Arc<Mirror>,
    refresh: Duration,
}

impl SqlPlacement {
    /// Placement in the database behind `conn`; call [`SqlPlacement::sync`] once.
    pub fn new(conn: DatabaseConnection) -> Self {
        SqlPlacement {
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

    /// Placement in the same database as `db`'s objects, on its
    /// connections, its writers queueing with the objects' own
    /// ([`nova_objects::db::Database::write_lock`]).
    pub fn on(db: &nova_objects::db::Database) -> Self {
        SqlPlacement {
            write_lock: db.write_lock(),
            ..Self::new(db.connection().clone())
        }
    }

    /// How old the candidates mirror may get (default 1 s).
    pub fn refresh_interval(mut self, d: Duration) -> Self {
        self.refresh = d;
        self
    }

    /// Creates or upgrades the tables: applies Placement's pending
    /// numbered migrations (recorded in `placement_schema_migrations`, so
    /// Placement may share nova's database or have its own); returns how
    /// many ran (0 when the schema is current).
    pub async fn sync(&self) -> Result<u32> {
        crate::schema::sync(&self.conn).await
    }

    /// The Placement schema version of the database (`None` before the
    /// first sync).
    pub async fn schema_version(&self) -> Result<Option<u32>> {
        crate::schema::version(&self.conn).await
    }

    /// The newest Placement schema version this build knows.
    pub fn latest_schema_version() -> u32 {
        crate::schema::MIGRATIONS.latest()
    }

    /// Loads every table into a fresh in-memory model.
    pub async fn snapshot(&self) -> Result<MemoryPlacement> {
        Ok(snapshot(sql::tables(&self.conn).await.map_err(db)?))
    }

    async fn begin(&self) -> std::result::Result<DatabaseTransaction, DbErr> {
        // SQLite: take the write lock at BEGIN, so a transaction that reads
        // then writes waits for other writers (busy_timeout) instead of
        // failing when it upgrades.
        let opts = sea_orm::TransactionOptions {
            sqlite_transaction_mode: (self.conn.get_database_backend() == DbBackend::Sqlite)
                .then_some(sea_orm::SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        self.conn.begin_with_options(opts).await
    }

    /// Provider `uuid`, or `NotFound`.
    async fn provider<C: ConnectionTrait>(&self, c: &C, uuid: &str) -> Result<ResourceProvider> {
        sql::provider(c, uuid)
            .await
            .map_err(db)?
            .ok_or_else(|| PlacementError::NotFound(format!("resource provider {uuid}")))
    }

    /// Checks `generation` against the provider and bumps it, inside `txn`.
    async fn bump_checked(
        &self,
        txn: &DatabaseTransaction,
        uuid: &str,
        generation: u64,
    ) -> Result<u64> {
        if sql::bump_generation(txn, uuid, Some(generation))
            .await
            .map_err(db)?
        {
            return Ok(generation + 1);
        }
        let cur = self.provider(txn, uuid).await?;
        Err(PlacementError::ConcurrentUpdate(format!(
            "resource provider {uuid} generation conflict: {generation} given, {} current",
            cur.generation
        )))
    }

    async fn names(&self, set: NameSet, uuid: &str) -> Result<(u64, BTreeSet<String>)> {
        let rp = self.provider(&self.conn, uuid).await?;
        let names = sql::names(&self.conn, set, uuid).await.map_err(db)?;
        Ok((rp.generation, names))
    }

    async fn set_names(
        &self,
        set: NameSet,
        uuid: &str,
        generation: u64,
        names: &BTreeSet<String>,
    ) -> Result<u64> {
        let _w = self.write_lock.lock().await;
        let txn = self.begin().await.map_err(db)?;
        let new_gen = self.bump_checked(&txn, uuid, generation).await?;
        sql::replace_names(&txn, set, uuid, names)
            .await
            .map_err(db)?;
        txn.commit().await.map_err(db)?;
        self.mirror.invalidate();
        Ok(new_gen)
    }

    /// One attempt at `PUT /allocations/{consumer}`: the consumer's new
    /// generation and how many provider generations it bumped.
    ///
    /// One read ([`sql::put_state`]) gives everything the checks need. On
    /// PostgreSQL the write is then one statement ([`sql::pg_put`]: the
    /// read's generations are compare-and-swapped under row locks, so the
    /// read needs no transaction of its own): two round trips in all. On
    /// SQLite and MySQL the read and the writes share one transaction.
    async fn try_put_allocations(
        &self,
        consumer: &str,
        allocations: &Allocations,
        owner: (&str, &str),
        consumer_type: Option<&str>,
        expected: ConsumerGeneration,
    ) -> std::result::Result<(Option<u64>, i64), Retry> {
        let rps: Vec<&str> = allocations.keys().map(|k| &**k).collect();
        if self.conn.get_database_backend() == DbBackend::Postgres {
            let state = sql::put_state(&self.conn, consumer, &rps).await?;
            let (current, generations) = put_checks(&state, allocations, expected)?;
            let (locked, consumer_locked) = sql::pg_put(
                &self.conn,
                consumer,
                allocations,
                owner,
                consumer_type,
                &generations,
                current,
            )
            .await
            .map_err(|e| consumer_insert_error(e, current))?;
            if locked != generations.len() {
                return Err(Retry::ProviderRace(format!(
                    "a resource provider changed while allocating for {consumer}"
                )));
            }
            if !consumer_locked {
                return Err(Retry::Fail(PlacementError::ConcurrentUpdate(
                    "consumer generation conflict".into(),
                )));
            }
            let new_gen = (!allocations.is_empty()).then(|| current.map_or(1, |g| g + 1));
            return Ok((new_gen, generations.len() as i64));
        }
        let txn = self.begin().await?;
        let state = sql::put_state(&txn, consumer, &rps).await?;
        let (current, generations) = put_checks(&state, allocations, expected)?;
        if !state.consumer.allocations.is_empty() {
            sql::delete_allocations(&txn, consumer).await?;
        }
        sql::insert_allocations(&txn, consumer, allocations).await?;
        for (rp, g) in &generations {
            if !sql::bump_generation(&txn, rp, Some(*g)).await? {
                return Err(Retry::ProviderRace(format!(
                    "resource provider {rp} changed while allocating for {consumer}"
                )));
            }
        }
        let new_gen = if allocations.is_empty() {
            sql::delete_consumer(&txn, consumer).await?;
            None
        } else if let Some(g) = current {
            if !sql::bump_consumer(&txn, consumer, owner.0, owner.1, g).await? {
                return Err(Retry::Fail(PlacementError::ConcurrentUpdate(
                    "consumer generation conflict".into(),
                )));
            }
            Some(g + 1)
        } else {
            sql::insert_consumer(&txn, consumer, owner.0, owner.1)
                .await
                .map_err(|e| consumer_insert_error(e, None))?;
            Some(1)
        };
        if let Some(t) = consumer_type
            && !allocations.is_empty()
        {
            sql::set_consumer_type(&txn, consumer, Some(t)).await?;
        }
        txn.commit().await?;
        Ok((new_gen, generations.len() as i64))
    }

    /// `PUT /allocations/{consumer}`, retried after a lost provider race.
    async fn put_allocations(
        &self,
        consumer: &str,
        allocations: &Allocations,
        owner: (&str, &str),
        consumer_type: Option<&str>,
        expected: ConsumerGeneration,
    ) -> Result<Option<u64>> {
        let _w = self.write_lock.lock().await;
        let mut last = None;
        for _ in 0..ALLOCATION_CONFLICT_RETRIES {
            match self
                .try_put_allocations(consumer, allocations, owner, consumer_type, expected)
                .await
            {
                Err(Retry::ProviderRace(msg)) => {
                    metrics::counter!("nova_placement_generation_retries_total",
                        "operation" => "put_allocations")
                    .increment(1);
                    last = Some(msg);
                }
                Err(Retry::Fail(e)) => return Err(e),
                Ok((g, bumped)) => {
                    self.mirror
                        .apply(consumer, allocations, owner.0, owner.1, bumped);
                    return Ok(g);
                }
            }
        }
        Err(PlacementError::ConcurrentUpdate(last.unwrap_or_else(
            || "resource provider generation conflict".to_owned(),
        )))
    }
}

/// A failed insert of a new consumer: one created concurrently is
/// Placement's consumer conflict; other failures as [`Retry`]'s.
fn consumer_insert_error(e: DbErr, current: Option<u64>) -> Retry {
    match classify(&e) {
        Failure::Duplicate if current.is_none() => Retry::Fail(PlacementError::ConcurrentUpdate(
            "consumer generation conflict - the consumer was created concurrently".into(),
        )),
        _ => Retry::from(e),
    }
}

/// The consumer's current generation, and the providers' generations to
/// bump.
type Checked = (Option<u64>, Vec<(String, u64)>);

/// Placement's checks of a `PUT /allocations/{consumer}` against what was
/// read, in its order: the consumer generation, then each provider
/// allocated from exists and the amounts fit its inventories' units, then
/// the capacity. Gives the consumer's current generation and the
/// generations to bump: of the providers allocated from, or, when the
/// consumer is released, of those it had allocations on (freeing alone
/// never overcommits).
fn put_checks(
    state: &sql::PutState,
    allocations: &Allocations,
    expected: ConsumerGeneration,
) -> std::result::Result<Checked, Retry> {
    let current = state.consumer.consumer_generation;
    if let ConsumerGeneration::Is(given) = expected
        && given != current
    {
        return Err(Retry::Fail(PlacementError::ConcurrentUpdate(
            consumer_conflict(current, given),
        )));
    }
    for (rp, wanted) in allocations {
        let Some((_, inventories)) = state.providers.get(&**rp) else {
            return Err(Retry::Fail(PlacementError::BadRequest(missing_provider(
                rp,
            ))));
        };
        for (rc, amount) in wanted {
            check_amount(rp, rc, inventories.get(&**rc).map(|(i, _)| i), *amount)?;
        }
    }
    for (rp, wanted) in allocations {
        let Some((_, inventories)) = state.providers.get(&**rp) else {
            continue;
        };
        for (rc, amount) in wanted {
            if let Some((inv, used)) = inventories.get(&**rc)
                && !inv.admits(*used, *amount)
            {
                return Err(Retry::Fail(PlacementError::CapacityExceeded(format!(
                    "Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{rp}'. The requested amount would exceed the capacity."
                ))));
            }
        }
    }
    let touched: Vec<&str> = if allocations.is_empty() {
        state.consumer.allocations.keys().map(|k| &**k).collect()
    } else {
        allocations.keys().map(|k| &**k).collect()
    };
    let mut generations = Vec::new();
    for rp in touched {
        let Some((g, _)) = state.providers.get(rp) else {
            return Err(Retry::Fail(PlacementError::BadRequest(missing_provider(
                rp,
            ))));
        };
        generations.push((rp.to_owned(), *g));
    }
    Ok((current, generations))
}

impl SqlPlacement {
    /// One attempt at [`PlacementService::write_many_async`], in one
    /// transaction.
    async fn try_write_many(
        &self,
        inventories: &[InventoryWrite],
        consumers: &[ConsumerWrite],
    ) -> std::result::Result<Vec<Option<u64>>, Retry> {
        let txn = self.begin().await?;
        // Each provider's generation as this transaction left it.
        let mut gens: BTreeMap<String, u64> = BTreeMap::new();
        // Interim inventories: the old with the new over them.
        for w in inventories {
            let rp = &w.provider;
            let cur = sql::provider(&txn, rp).await?.ok_or_else(|| {
                Retry::Fail(PlacementError::NotFound(format!("resource provider {rp}")))
            })?;
            if cur.generation != w.generation {
                return Err(Retry::Fail(PlacementError::ConcurrentUpdate(format!(
                    "resource provider {rp} generation conflict: {} given, {} current",
                    w.generation, cur.generation
                ))));
            }
            let mut g = cur.generation;
            if !w.inventories.is_empty() {
                let mut interim = sql::inventories(&txn, rp).await?;
                interim.extend(w.inventories.iter().map(|(k, v)| (k.clone(), *v)));
                sql::replace_inventories(&txn, rp, &interim).await?;
                if !sql::bump_generation(&txn, rp, Some(g)).await? {
                    return Err(Retry::ProviderRace(format!(
                        "resource provider {rp} changed"
                    )));
                }
                g += 1;
            }
            gens.insert(rp.clone(), g);
        }
        // The consumers' generations; the providers whose generation moves.
        let mut touched: BTreeSet<String> = BTreeSet::new();
        let mut currents = Vec::new();
        for c in consumers {
            let cur = sql::consumer(&txn, &c.consumer).await?;
            if cur.consumer_generation != c.generation {
                return Err(Retry::Fail(PlacementError::ConcurrentUpdate(format!(
                    "consumer generation conflict - expected {:?} but got {:?}",
                    cur.consumer_generation, c.generation
                ))));
            }
            let keys = if c.allocations.is_empty() {
                &cur.allocations
            } else {
                &c.allocations
            };
            touched.extend(keys.keys().map(|k| k.to_string()));
            currents.push(cur);
        }
        let mut prev: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for rp in &touched {
            let Some(row) = sql::provider(&txn, rp).await? else {
                return Err(Retry::Fail(PlacementError::BadRequest(format!(
                    "Allocation for resource provider '{rp}' that does not exist."
                ))));
            };
            gens.entry(rp.clone()).or_insert(row.generation);
            prev.insert(rp.clone(), sql::usages(&txn, rp).await?);
        }
        for (c, cur) in consumers.iter().zip(&currents) {
            if !cur.allocations.is_empty() {
                sql::delete_allocations(&txn, &c.consumer).await?;
            }
        }
        // The new allocations, each within the inventory (or no worse
        // than before), as Placement checks them.
        let mut caps = BTreeMap::new();
        for rp in &touched {
            let (_, inv) = sql::capacity(&txn, rp, "").await?.unwrap_or_default();
            caps.insert(rp.clone(), inv);
        }
        let mut taken: BTreeMap<(String, String), i64> = BTreeMap::new();
        for c in consumers {
            for (rp, res) in &c.allocations {
                let inv = &caps[&rp.to_string()];
                for (rc, n) in res {
                    let Some((i, used)) = inv.get(&**rc) else {
                        return Err(Retry::Fail(PlacementError::BadRequest(format!(
                            "Unable to allocate inventory: Inventory for '{rc}' on resource provider '{rp}' invalid."
                        ))));
                    };
                    if *n < i.min_unit || *n > i.max_unit || n % i.step_size.max(1) != 0 {
                        return Err(Retry::Fail(PlacementError::BadRequest(format!(
                            "Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{rp}'. The requested amount would violate inventory constraints."
                        ))));
                    }
                    let sum = taken.entry((rp.to_string(), rc.to_string())).or_default();
                    *sum += n;
                    let before = prev[&rp.to_string()].get(&**rc).copied().unwrap_or(0);
                    if used + *sum > i.capacity() && used + *sum > before {
                        return Err(Retry::Fail(PlacementError::CapacityExceeded(format!(
                            "Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{rp}'. The requested amount would exceed the capacity."
                        ))));
                    }
                }
            }
            sql::insert_allocations(&txn, &c.consumer, &c.allocations).await?;
        }
        for rp in &touched {
            let g = gens.get_mut(rp).expect("read above");
            if !sql::bump_generation(&txn, rp, Some(*g)).await? {
                return Err(Retry::ProviderRace(format!(
                    "resource provider {rp} changed"
                )));
            }
            *g += 1;
        }
        let mut out = Vec::new();
        for (c, cur) in consumers.iter().zip(&currents) {
            let new_gen = if c.allocations.is_empty() {
                sql::delete_consumer(&txn, &c.consumer).await?;
                None
            } else if let Some(g) = cur.consumer_generation {
                if !sql::bump_consumer(&txn, &c.consumer, &c.project_id, &c.user_id, g).await? {
                    return Err(Retry::Fail(PlacementError::ConcurrentUpdate(
                        "consumer generation conflict".into(),
                    )));
                }
                Some(g + 1)
            } else {
                sql::insert_consumer(&txn, &c.consumer, &c.project_id, &c.user_id)
                    .await
                    .map_err(|e| match classify(&e) {
                        Failure::Duplicate | Failure::Race => {
                            Retry::Fail(PlacementError::ConcurrentUpdate(
                                "consumer generation conflict - the consumer was created concurrently"
                                    .into(),
                            ))
                        }
                        Failure::Outage => Retry::Fail(db(e)),
                    })?;
                Some(1)
            };
            out.push(new_gen);
        }
        // The final inventories: nothing in use may lose its inventory.
        for w in inventories {
            let rp = &w.provider;
            let used = sql::usages(&txn, rp).await?;
            if let Some((rc, _)) = used
                .iter()
                .find(|(rc, n)| **n > 0 && !w.inventories.contains_key(*rc))
            {
                return Err(Retry::Fail(PlacementError::InventoryInUse(format!(
                    "Inventory for '{rc}' on resource provider '{rp}' in use."
                ))));
            }
            sql::replace_inventories(&txn, rp, &w.inventories).await?;
            let g = gens.get_mut(rp).expect("read above");
            if !sql::bump_generation(&txn, rp, Some(*g)).await? {
                return Err(Retry::ProviderRace(format!(
                    "resource provider {rp} changed"
                )));
            }
            *g += 1;
        }
        txn.commit().await?;
        Ok(out)
    }
}

#[async_trait::async_trait]
impl PlacementService for SqlPlacement {
    async fn create_provider_async(
        &self,
        uuid: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<ResourceProvider> {
        let _w = self.write_lock.lock().await;
        let txn = self.begin().await.map_err(db)?;
        let root = match parent {
            Some(p) => self.provider(&txn, p).await?.root_provider_uuid,
            None => uuid.to_owned(),
        };
        if let Some(found) = sql::provider_clash(&txn, uuid, name).await.map_err(db)? {
            let what = if found == uuid {
                format!("uuid {uuid}")
            } else {
                format!("name {name}")
            };
            return Err(PlacementError::Duplicate(format!(
                "Conflicting resource provider {what} already exists."
            )));
        }
        sql::insert_provider(&txn, uuid, name, parent, &root)
            .await
            .map_err(|e| match classify(&e) {
                // Created since the check by another process.
                Failure::Duplicate => PlacementError::Duplicate(e.to_string()),
                _ => db(e),
            })?;
        txn.commit().await.map_err(db)?;
        self.mirror.invalidate();
        Ok(ResourceProvider {
            uuid: uuid.to_owned(),
            name: name.to_owned(),
            generation: 0,
            parent_provider_uuid: parent.map(str::to_owned),
            root_provider_uuid: root,
        })
    }

    async fn get_provider_async(&self, uuid: &str) -> Result<ResourceProvider> {
        self.provider(&self.conn, uuid).await
    }

    async fn list_providers_async(
        &self,
        name: Option<&str>,
        uuid: Option<&str>,
    ) -> Result<Vec<ResourceProvider>> {
        sql::providers(&self.conn, name, uuid).await.map_err(db)
    }

    async fn delete_provider_async(&self, uuid: &str) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let txn = self.begin().await.map_err(db)?;
        self.provider(&txn, uuid).await?;
        if sql::has_children(&txn, uuid).await.map_err(db)? {
            return Err(PlacementError::CannotDeleteParent(format!(
                "Unable to delete parent resource provider {uuid}: It has child resource providers."
            )));
        }
        if sql::has_allocations(&txn, uuid).await.map_err(db)? {
            return Err(PlacementError::ProviderInUse(format!(
                "Unable to delete resource provider {uuid}: Resource provider has allocations."
            )));
        }
        sql::delete_provider(&txn, uuid).await.map_err(db)?;
        txn.commit().await.map_err(db)?;
        self.mirror.invalidate();
        Ok(())
    }

    async fn inventories_async(
        &self,
        uuid: &str,
    ) -> Result<(u64, BTreeMap<String, InventoryRecord>)> {
        let rp = self.provider(&self.conn, uuid).await?;
        let inv = sql::inventories(&self.conn, uuid).await.map_err(db)?;
        Ok((rp.generation, inv))
    }

    async fn set_inventories_async(
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
        let txn = self.begin().await.map_err(db)?;
        let new_gen = self.bump_checked(&txn, uuid, generation).await?;
        let used = sql::usages(&txn, uuid).await.map_err(db)?;
        // A class in use may not go; below usage is allowed (as in
        // Placement): nothing more fits.
        for (rc, _) in used.iter().filter(|(_, a)| **a > 0) {
            if !inventories.contains_key(rc) {
                return Err(PlacementError::InventoryInUse(format!(
                    "Inventory for '{rc}' on resource provider '{uuid}' in use."
                )));
            }
        }
        sql::replace_inventories(&txn, uuid, inventories)
            .await
            .map_err(db)?;
        txn.commit().await.map_err(db)?;
        self.mirror.invalidate();
        Ok(new_gen)
    }

    async fn traits_async(&self, uuid: &str) -> Result<(u64, BTreeSet<String>)> {
        self.names(NameSet::Traits, uuid).await
    }

    async fn set_traits_async(
        &self,
        uuid: &str,
        generation: u64,
        traits: &BTreeSet<String>,
    ) -> Result<u64> {
        self.set_names(NameSet::Traits, uuid, generation, traits)
            .await
    }

    async fn aggregates_async(&self, uuid: &str) -> Result<(u64, BTreeSet<String>)> {
        self.names(NameSet::Aggregates, uuid).await
    }

    async fn set_aggregates_async(
        &self,
        uuid: &str,
        generation: u64,
        aggregates: &BTreeSet<String>,
    ) -> Result<u64> {
        self.set_names(NameSet::Aggregates, uuid, generation, aggregates)
            .await
    }

    async fn usages_async(&self, uuid: &str) -> Result<BTreeMap<String, i64>> {
        self.provider(&self.conn, uuid).await?;
        sql::usages(&self.conn, uuid).await.map_err(db)
    }

    /// On the mirror (see [`SqlPlacement`]).
    async fn allocation_candidates_async(
        &self,
        req: &CandidatesRequest,
    ) -> Result<AllocationCandidates> {
        self.mirror.candidates(&self.conn, self.refresh, req).await
    }

    async fn allocations_async(&self, consumer: &str) -> Result<ConsumerAllocations> {
        sql::consumer(&self.conn, consumer).await.map_err(db)
    }

    async fn put_allocations_async(
        &self,
        consumer: &str,
        allocations: &Allocations,
        project_id: &str,
        user_id: &str,
        consumer_generation: Option<u64>,
    ) -> Result<Option<u64>> {
        self.put_allocations(
            consumer,
            allocations,
            (project_id, user_id),
            None,
            ConsumerGeneration::Is(consumer_generation),
        )
        .await
    }

    /// The checks on the write's own read (see [`SqlPlacement::try_put_allocations`]).
    async fn put_allocations_checked_async(
        &self,
        consumer: &str,
        allocations: &Allocations,
        owner: (&str, &str),
        consumer_type: Option<&str>,
        expected: ConsumerGeneration,
    ) -> Result<Option<u64>> {
        self.put_allocations(consumer, allocations, owner, consumer_type, expected)
            .await
    }

    async fn write_many_async(
        &self,
        inventories: &[InventoryWrite],
        consumers: &[ConsumerWrite],
    ) -> Result<Vec<Option<u64>>> {
        for w in inventories {
            for (rc, inv) in &w.inventories {
                if !nova_scheduler::placement::valid_resource_class(rc) {
                    return Err(PlacementError::BadRequest(format!(
                        "No such resource class {rc}."
                    )));
                }
                inv.validate()
                    .map_err(|e| PlacementError::BadRequest(format!("{rc}: {e}")))?;
            }
        }
        let _w = self.write_lock.lock().await;
        let mut last = None;
        for _ in 0..ALLOCATION_CONFLICT_RETRIES {
            match self.try_write_many(inventories, consumers).await {
                Err(Retry::ProviderRace(msg)) => {
                    metrics::counter!("nova_placement_generation_retries_total",
                        "operation" => "write_many")
                    .increment(1);
                    last = Some(msg);
                }
                Err(Retry::Fail(e)) => return Err(e),
                Ok(gens) => {
                    self.mirror.invalidate();
                    return Ok(gens);
                }
            }
        }
        Err(PlacementError::ConcurrentUpdate(last.unwrap_or_else(
            || "resource provider generation conflict".to_owned(),
        )))
    }

    /// As in Placement, no provider generation moves: freeing never
    /// overcommits.
    async fn delete_allocations_async(&self, consumer: &str) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let txn = self.begin().await.map_err(db)?;
        let providers = sql::consumer_providers(&txn, consumer).await.map_err(db)?;
        sql::delete_allocations(&txn, consumer).await.map_err(db)?;
        sql::delete_consumer(&txn, consumer).await.map_err(db)?;
        txn.commit().await.map_err(db)?;
        if !providers.is_empty() {
            self.mirror.apply(consumer, &Allocations::new(), "", "", 0);
        }
        Ok(())
    }

    async fn update_provider_async(
        &self,
        uuid: &str,
        name: &str,
        parent: Option<&str>,
        reparent: bool,
    ) -> Result<ResourceProvider> {
        let _w = self.write_lock.lock().await;
        let txn = self.begin().await.map_err(db)?;
        let cur = self.provider(&txn, uuid).await?;
        if let Some(found) = sql::provider_clash(&txn, uuid, name).await.map_err(db)?
            && found != uuid
        {
            return Err(PlacementError::Duplicate(format!(
                "Conflicting resource provider {name} already exists."
            )));
        }
        let mut root = cur.root_provider_uuid.clone();
        let moved = cur.parent_provider_uuid.as_deref() != parent;
        if moved {
            if !reparent && cur.parent_provider_uuid.is_some() {
                return Err(PlacementError::BadRequest(if parent.is_none() {
                    "un-parenting a provider is not currently allowed".into()
                } else {
                    "re-parenting a provider is not currently allowed".into()
                }));
            }
            root = match parent {
                Some(p) => {
                    let mut at = sql::provider(&txn, p).await.map_err(db)?.ok_or_else(|| {
                        PlacementError::BadRequest(format!(
                            "parent provider UUID does not exist: {p}"
                        ))
                    })?;
                    let new_root = at.root_provider_uuid.clone();
                    loop {
                        if at.uuid == uuid {
                            return Err(PlacementError::BadRequest(
                                "creating loop in the provider tree is not allowed.".into(),
                            ));
                        }
                        let Some(up) = at.parent_provider_uuid.clone() else {
                            break;
                        };
                        at = self.provider(&txn, &up).await?;
                    }
                    new_root
                }
                None => uuid.to_owned(),
            };
        }
        sql::update_provider(&txn, uuid, name, parent, &root)
            .await
            .map_err(|e| match classify(&e) {
                Failure::Duplicate => PlacementError::Duplicate(format!(
                    "Conflicting resource provider {name} already exists."
                )),
                _ => db(e),
            })?;
        if moved {
            sql::set_subtree_root(&txn, uuid, &root).await.map_err(db)?;
        }
        txn.commit().await.map_err(db)?;
        self.mirror.invalidate();
        Ok(ResourceProvider {
            uuid: uuid.to_owned(),
            name: name.to_owned(),
            generation: cur.generation,
            parent_provider_uuid: parent.map(str::to_owned),
            root_provider_uuid: root,
        })
    }

    async fn consumers_async(
        &self,
        project_id: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<Vec<(String, ConsumerAllocations)>> {
        sql::consumers(&self.conn, project_id, user_id)
            .await
            .map_err(db)
    }

    async fn provider_consumers_async(&self, uuid: &str) -> Result<Vec<String>> {
        sql::provider_consumers(&self.conn, uuid).await.map_err(db)
    }

    async fn set_consumer_type_async(
        &self,
        consumer: &str,
        consumer_type: Option<&str>,
    ) -> Result<()> {
        let _w = self.write_lock.lock().await;
        sql::set_consumer_type(&self.conn, consumer, consumer_type)
            .await
            .map_err(db)
    }

    async fn custom_names_async(&self, kind: Custom) -> Result<BTreeSet<String>> {
        sql::custom_names(&self.conn, kind.key(), true)
            .await
            .map_err(db)
    }

    async fn add_custom_name_async(&self, kind: Custom, name: &str) -> Result<bool> {
        let _w = self.write_lock.lock().await;
        let txn = self.begin().await.map_err(db)?;
        let registered = sql::custom_names(&txn, kind.key(), false)
            .await
            .map_err(db)?;
        if registered.contains(name) {
            return Ok(false);
        }
        let used = sql::custom_in_use(&txn, kind.key()).await.map_err(db)?;
        sql::insert_custom_name(&txn, kind.key(), name)
            .await
            .map_err(db)?;
        txn.commit().await.map_err(db)?;
        Ok(!used.contains(name))
    }

    async fn remove_custom_name_async(&self, kind: Custom, name: &str) -> Result<()> {
        let _w = self.write_lock.lock().await;
        let txn = self.begin().await.map_err(db)?;
        if sql::custom_in_use(&txn, kind.key())
            .await
            .map_err(db)?
            .contains(name)
        {
            return Err(PlacementError::InUse(format!(
                "{} {name} is in use",
                kind.key()
            )));
        }
        if !sql::delete_custom_name(&txn, kind.key(), name)
            .await
            .map_err(db)?
        {
            return Err(PlacementError::NotFound(format!("{} {name}", kind.key())));
        }
        txn.commit().await.map_err(db)?;
        Ok(())
    }

    async fn times_async(&self, of: crate::Stamped<'_>) -> Result<Option<Vec<crate::Times>>> {
        crate::times::read(&self.conn, of)
            .await
            .map(Some)
            .map_err(db)
    }

    fn invalidate(&self) {
        self.mirror.invalidate();
    }
}

/// How one allocation attempt failed.
enum Retry {
    /// Lost a provider race: try again with fresh usages.
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
        match classify(&e) {
            // SQLite "database is locked", deadlocks, serialization
            // failures, a row a concurrent writer inserted: retry; an
            // outage is not retried.
            Failure::Race | Failure::Duplicate => Retry::ProviderRace(e.to_string()),
            Failure::Outage => Retry::Fail(db(e)),
        }
    }
}
