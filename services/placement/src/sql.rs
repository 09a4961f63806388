//! The SQL statements behind [`SqlPlacement`](crate::SqlPlacement): one
//! function per query, rows decoded into the model's types. No checks and
//! no transactions here (the store decides those); every function runs on
//! whatever connection or transaction it is given, and returns the
//! database's own error for the store to classify.
//!
//! Statements are written with `?` placeholders and numbered for
//! PostgreSQL (`$1`, `$2`, …) on the way out.

use std::collections::{BTreeMap, BTreeSet};

use nova_scheduler::placement::{
    Allocations, ConsumerAllocations, InventoryRecord, Name, ResourceProvider,
};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement, Value};

type Result<T> = std::result::Result<T, DbErr>;

/// The two name sets a provider has (traits and aggregates), each one
/// table of `(rp_uuid, name)` rows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NameSet {
    Traits,
    Aggregates,
}

impl NameSet {
    fn table(self) -> &'static str {
        match self {
            NameSet::Traits => "resource_provider_traits",
            NameSet::Aggregates => "resource_provider_aggregates",
        }
    }

    fn column(self) -> &'static str {
        match self {
            NameSet::Traits => "trait",
            NameSet::Aggregates => "aggregate",
        }
    }
}

fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = if backend == DbBackend::Postgres {
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
    Statement::from_sql_and_values(backend, sql, values)
}

pub(crate) async fn all<C: ConnectionTrait>(
    c: &C,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<QueryResult>> {
    c.query_all_raw(stmt(c.get_database_backend(), sql, values))
        .await
}

async fn exec<C: ConnectionTrait>(c: &C, sql: &str, values: Vec<Value>) -> Result<u64> {
    c.execute_raw(stmt(c.get_database_backend(), sql, values))
        .await
        .map(|r| r.rows_affected())
}

/// The time a write stamps on its rows.
fn now() -> Value {
    chrono::Utc::now().naive_utc().into()
}

pub(crate) fn get_s(r: &QueryResult, col: &str) -> Result<String> {
    r.try_get::<String>("", col)
}

fn get_i(r: &QueryResult, col: &str) -> Result<i64> {
    r.try_get::<i64>("", col)
}

/// An inventory from a row with Placement's inventory columns.
fn inventory_record(r: &QueryResult) -> Result<InventoryRecord> {
    Ok(InventoryRecord {
        total: get_i(r, "total")?,
        reserved: get_i(r, "reserved")?,
        min_unit: get_i(r, "min_unit")?,
        max_unit: get_i(r, "max_unit")?,
        step_size: get_i(r, "step_size")?,
        allocation_ratio: r.try_get::<f64>("", "allocation_ratio")?,
    })
}

fn provider_of(r: &QueryResult) -> Result<ResourceProvider> {
    Ok(ResourceProvider {
        uuid: get_s(r, "uuid")?,
        name: get_s(r, "name")?,
        generation: get_i(r, "generation")? as u64,
        parent_provider_uuid: r.try_get::<Option<String>>("", "parent_uuid")?,
        root_provider_uuid: get_s(r, "root_uuid")?,
    })
}

const PROVIDER_COLUMNS: &str = "uuid, name, generation, parent_uuid, root_uuid";

/// Provider `uuid`, if there is one.
pub(crate) async fn provider<C: ConnectionTrait>(
    c: &C,
    uuid: &str,
) -> Result<Option<ResourceProvider>> {
    let sql = format!("SELECT {PROVIDER_COLUMNS} FROM resource_providers WHERE uuid = ?");
    let rows = all(c, &sql, vec![uuid.into()]).await?;
    rows.first().map(provider_of).transpose()
}

/// Providers by name, optionally only those with `name` and/or `uuid`.
pub(crate) async fn providers<C: ConnectionTrait>(
    c: &C,
    name: Option<&str>,
    uuid: Option<&str>,
) -> Result<Vec<ResourceProvider>> {
    let mut sql = format!("SELECT {PROVIDER_COLUMNS} FROM resource_providers WHERE 1 = 1");
    let mut values = Vec::new();
    for (col, v) in [("name", name), ("uuid", uuid)] {
        if let Some(v) = v {
            sql.push_str(&format!(" AND {col} = ?"));
            values.push(v.into());
        }
    }
    sql.push_str(" ORDER BY name");
    all(c, &sql, values)
        .await?
        .iter()
        .map(provider_of)
        .collect()
}

/// The uuid of a provider that has `uuid` or `name` already.
pub(crate) async fn provider_clash<C: ConnectionTrait>(
    c: &C,
    uuid: &str,
    name: &str,
) -> Result<Option<String>> {
    let rows = all(
        c,
        "SELECT uuid, name FROM resource_providers WHERE uuid = ? OR name = ?",
        vec![uuid.into(), name.into()],
    )
    .await?;
    rows.first().map(|r| get_s(r, "uuid")).transpose()
}

/// A new provider at generation 0.
pub(crate) async fn insert_provider<C: ConnectionTrait>(
    c: &C,
    uuid: &str,
    name: &str,
    parent: Option<&str>,
    root: &str,
) -> Result<()> {
    exec(
        c,
        "INSERT INTO resource_providers (uuid, name, generation, parent_uuid, root_uuid, created_at, updated_at) VALUES (?, ?, 0, ?, ?, ?, ?)",
        vec![
            uuid.into(),
            name.into(),
            parent.map(str::to_owned).into(),
            root.into(),
            now(),
            // Placement writes a root's own id as its root in a second
            // statement, which stamps `updated_at`; a child's row is
            // written once.
            if parent.is_none() {
                now()
            } else {
                Value::ChronoDateTime(None)
            },
        ],
    )
    .await
    .map(|_| ())
}

/// Bumps the generation of `uuid`: from `from` only (compare-and-swap:
/// false when the provider moved on, a lost race), or whatever it is.
pub(crate) async fn bump_generation<C: ConnectionTrait>(
    c: &C,
    uuid: &str,
    from: Option<u64>,
) -> Result<bool> {
    let n = match from {
        Some(g) => {
            exec(
                c,
                "UPDATE resource_providers SET generation = generation + 1, updated_at = ? WHERE uuid = ? AND generation = ?",
                vec![now(), uuid.into(), (g as i64).into()],
            )
            .await?
        }
        None => {
            exec(
                c,
                "UPDATE resource_providers SET generation = generation + 1, updated_at = ? WHERE uuid = ?",
                vec![now(), uuid.into()],
            )
            .await?
        }
    };
    Ok(n == 1)
}

/// Whether provider `uuid` has children.
pub(crate) async fn has_children<C: ConnectionTrait>(c: &C, uuid: &str) -> Result<bool> {
    let rows = all(
        c,
        "SELECT uuid FROM resource_providers WHERE parent_uuid = ?",
        vec![uuid.into()],
    )
    .await?;
    Ok(!rows.is_empty())
}

/// Whether anything is allocated from provider `uuid`.
pub(crate) async fn has_allocations<C: ConnectionTrait>(c: &C, uuid: &str) -> Result<bool> {
    let rows = all(
        c,
        "SELECT consumer_uuid FROM allocations WHERE rp_uuid = ?",
        vec![uuid.into()],
    )
    .await?;
    Ok(!rows.is_empty())
}

/// Deletes provider `uuid` with its inventories, traits and aggregates.
pub(crate) async fn delete_provider<C: ConnectionTrait>(c: &C, uuid: &str) -> Result<()> {
    for table in [
        "inventories",
        "resource_provider_traits",
        "resource_provider_aggregates",
    ] {
        exec(
            c,
            &format!("DELETE FROM {table} WHERE rp_uuid = ?"),
            vec![uuid.into()],
        )
        .await?;
    }
    exec(
        c,
        "DELETE FROM resource_providers WHERE uuid = ?",
        vec![uuid.into()],
    )
    .await
    .map(|_| ())
}

/// Provider `uuid`'s inventories, per resource class.
pub(crate) async fn inventories<C: ConnectionTrait>(
    c: &C,
    uuid: &str,
) -> Result<BTreeMap<String, InventoryRecord>> {
    let rows = all(
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
/// what consumers other than `consumer` use of it: one statement. `None`
/// when there is no such provider.
pub(crate) async fn capacity<C: ConnectionTrait>(
    c: &C,
    uuid: &str,
    consumer: &str,
) -> Result<Option<(u64, BTreeMap<String, (InventoryRecord, i64)>)>> {
    // SUM is NUMERIC on PostgreSQL and DECIMAL on MySQL: cast it back.
    let int = match c.get_database_backend() {
        DbBackend::MySql => "SIGNED",
        _ => "BIGINT",
    };
    let sql = format!(
        "SELECT rp.generation, i.resource_class, i.total, i.reserved, i.min_unit, i.max_unit, i.step_size, i.allocation_ratio, \
         CAST((SELECT COALESCE(SUM(a.used), 0) FROM allocations a WHERE a.rp_uuid = i.rp_uuid AND a.resource_class = i.resource_class AND a.consumer_uuid <> ?) AS {int}) AS used \
         FROM resource_providers rp LEFT JOIN inventories i ON i.rp_uuid = rp.uuid WHERE rp.uuid = ?"
    );
    let rows = all(c, &sql, vec![consumer.into(), uuid.into()]).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let generation = get_i(first, "generation")? as u64;
    let mut out = BTreeMap::new();
    for r in &rows {
        let Some(rc) = r.try_get::<Option<String>>("", "resource_class")? else {
            continue; // a provider without inventory
        };
        out.insert(rc, (inventory_record(r)?, get_i(r, "used")?));
    }
    Ok(Some((generation, out)))
}

/// What is used of provider `uuid`, per resource class.
pub(crate) async fn usages<C: ConnectionTrait>(c: &C, uuid: &str) -> Result<BTreeMap<String, i64>> {
    let rows = all(
        c,
        "SELECT resource_class, used FROM allocations WHERE rp_uuid = ?",
        vec![uuid.into()],
    )
    .await?;
    let mut out = BTreeMap::new();
    for r in &rows {
        *out.entry(get_s(r, "resource_class")?).or_insert(0) += get_i(r, "used")?;
    }
    Ok(out)
}

/// Replaces provider `uuid`'s inventories: a class kept keeps its
/// `created_at` and is stamped `updated_at` (Placement updates those rows
/// in place), a new class is stamped `created_at`.
pub(crate) async fn replace_inventories<C: ConnectionTrait>(
    c: &C,
    uuid: &str,
    inventories: &BTreeMap<String, InventoryRecord>,
) -> Result<()> {
    let mut created = BTreeMap::new();
    for r in &all(
        c,
        "SELECT resource_class, created_at FROM inventories WHERE rp_uuid = ?",
        vec![uuid.into()],
    )
    .await?
    {
        created.insert(
            get_s(r, "resource_class")?,
            r.try_get::<Option<chrono::NaiveDateTime>>("", "created_at")?,
        );
    }
    exec(
        c,
        "DELETE FROM inventories WHERE rp_uuid = ?",
        vec![uuid.into()],
    )
    .await?;
    for (rc, inv) in inventories {
        exec(
            c,
            "INSERT INTO inventories (rp_uuid, resource_class, total, reserved, min_unit, max_unit, step_size, allocation_ratio, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                uuid.into(),
                rc.clone().into(),
                inv.total.into(),
                inv.reserved.into(),
                inv.min_unit.into(),
                inv.max_unit.into(),
                inv.step_size.into(),
                inv.allocation_ratio.into(),
                match created.get(rc) {
                    Some(Some(t)) => (*t).into(),
                    _ => now(),
                },
                if created.contains_key(rc) {
                    now()
                } else {
                    Value::ChronoDateTime(None)
                },
            ],
        )
        .await?;
    }
    Ok(())
}

/// Provider `uuid`'s traits or aggregates.
pub(crate) async fn names<C: ConnectionTrait>(
    c: &C,
    set: NameSet,
    uuid: &str,
) -> Result<BTreeSet<String>> {
    let (table, col) = (set.table(), set.column());
    let rows = all(
        c,
        &format!("SELECT {col} FROM {table} WHERE rp_uuid = ?"),
        vec![uuid.into()],
    )
    .await?;
    rows.iter().map(|r| get_s(r, col)).collect()
}

/// Replaces provider `uuid`'s traits or aggregates.
pub(crate) async fn replace_names<C: ConnectionTrait>(
    c: &C,
    set: NameSet,
    uuid: &str,
    names: &BTreeSet<String>,
) -> Result<()> {
    let (table, col) = (set.table(), set.column());
    exec(
        c,
        &format!("DELETE FROM {table} WHERE rp_uuid = ?"),
        vec![uuid.into()],
    )
    .await?;
    for n in names {
        exec(
            c,
            &format!("INSERT INTO {table} (rp_uuid, {col}, created_at) VALUES (?, ?, ?)"),
            vec![uuid.into(), n.clone().into(), now()],
        )
        .await?;
    }
    Ok(())
}

/// A consumer's record and allocations (empty for an unknown consumer).
pub(crate) async fn consumer<C: ConnectionTrait>(
    c: &C,
    consumer: &str,
) -> Result<ConsumerAllocations> {
    let rows = all(
        c,
        "SELECT project_id, user_id, generation, consumer_type FROM consumers WHERE uuid = ?",
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
    out.consumer_type = r.try_get::<Option<String>>("", "consumer_type")?;
    let rows = all(
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

/// The providers `consumer` has allocations from.
pub(crate) async fn consumer_providers<C: ConnectionTrait>(
    c: &C,
    consumer: &str,
) -> Result<Vec<String>> {
    let rows = all(
        c,
        "SELECT DISTINCT rp_uuid FROM allocations WHERE consumer_uuid = ?",
        vec![consumer.into()],
    )
    .await?;
    rows.iter().map(|r| get_s(r, "rp_uuid")).collect()
}

/// Deletes `consumer`'s allocations.
pub(crate) async fn delete_allocations<C: ConnectionTrait>(c: &C, consumer: &str) -> Result<()> {
    exec(
        c,
        "DELETE FROM allocations WHERE consumer_uuid = ?",
        vec![consumer.into()],
    )
    .await
    .map(|_| ())
}

/// Inserts `consumer`'s allocations: one multi-row INSERT for every
/// (provider, class).
pub(crate) async fn insert_allocations<C: ConnectionTrait>(
    c: &C,
    consumer: &str,
    allocations: &Allocations,
) -> Result<()> {
    let mut values = Vec::new();
    let mut rows = Vec::new();
    for (rp, resources) in allocations {
        for (rc, amount) in resources {
            rows.push("(?, ?, ?, ?, ?)");
            values.extend([
                Value::from(consumer),
                rp.to_string().into(),
                rc.to_string().into(),
                (*amount).into(),
                now(),
            ]);
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO allocations (consumer_uuid, rp_uuid, resource_class, used, created_at) VALUES {}",
        rows.join(", ")
    );
    exec(c, &sql, values).await.map(|_| ())
}

/// Deletes the consumer record.
pub(crate) async fn delete_consumer<C: ConnectionTrait>(c: &C, consumer: &str) -> Result<()> {
    exec(
        c,
        "DELETE FROM consumers WHERE uuid = ?",
        vec![consumer.into()],
    )
    .await
    .map(|_| ())
}

/// Bumps the consumer's generation from `from` (and records its project
/// and user); false when it moved on.
pub(crate) async fn bump_consumer<C: ConnectionTrait>(
    c: &C,
    consumer: &str,
    project_id: &str,
    user_id: &str,
    from: u64,
) -> Result<bool> {
    let n = exec(
        c,
        "UPDATE consumers SET generation = generation + 1, project_id = ?, user_id = ?, updated_at = ? WHERE uuid = ? AND generation = ?",
        vec![
            project_id.into(),
            user_id.into(),
            now(),
            consumer.into(),
            (from as i64).into(),
        ],
    )
    .await?;
    Ok(n == 1)
}

/// A new consumer at generation 1.
pub(crate) async fn insert_consumer<C: ConnectionTrait>(
    c: &C,
    consumer: &str,
    project_id: &str,
    user_id: &str,
) -> Result<()> {
    exec(
        c,
        "INSERT INTO consumers (uuid, project_id, user_id, generation, created_at) VALUES (?, ?, ?, 1, ?)",
        vec![consumer.into(), project_id.into(), user_id.into(), now()],
    )
    .await
    .map(|_| ())
}

/// What the mirror probes: providers, the sum of their generations, and
/// the allocation rows with the sum of their amounts. Every write but a
/// `DELETE /allocations` bumps some generation (as in Placement, that
/// one bumps none), and a delete lowers the allocations' sums.
pub(crate) type Probe = (i64, i64, i64, i64);

/// See [`Probe`].
pub(crate) async fn generation_probe<C: ConnectionTrait>(c: &C) -> Result<Probe> {
    let int = match c.get_database_backend() {
        DbBackend::MySql => "SIGNED",
        _ => "BIGINT",
    };
    // Counted and summed by the database: one row back, not one per provider.
    let p = all(
        c,
        &format!(
            "SELECT CAST(COUNT(*) AS {int}) AS n, CAST(COALESCE(SUM(generation), 0) AS {int}) AS s FROM resource_providers"
        ),
        vec![],
    )
    .await?;
    let (providers, sum) = match p.first() {
        Some(r) => (get_i(r, "n")?, get_i(r, "s")?),
        None => (0, 0),
    };
    let a = all(
        c,
        &format!(
            "SELECT CAST(COUNT(*) AS {int}) AS n, CAST(COALESCE(SUM(used), 0) AS {int}) AS s FROM allocations"
        ),
        vec![],
    )
    .await?;
    let (n, used) = match a.first() {
        Some(r) => (get_i(r, "n")?, get_i(r, "s")?),
        None => (0, 0),
    };
    Ok((providers, sum, n, used))
}

/// Everything Placement holds, table by table (for a snapshot).
#[derive(Debug, Default)]
pub(crate) struct Tables {
    /// `(uuid, name, parent)` of every provider.
    pub providers: Vec<(String, String, Option<String>)>,
    pub inventories: BTreeMap<String, BTreeMap<String, InventoryRecord>>,
    pub traits: BTreeMap<String, BTreeSet<String>>,
    pub aggregates: BTreeMap<String, BTreeSet<String>>,
    /// `(project, user)` of every consumer.
    pub consumers: BTreeMap<String, (String, String)>,
    pub allocations: BTreeMap<String, Allocations>,
}

/// Reads every table.
pub(crate) async fn tables<C: ConnectionTrait>(c: &C) -> Result<Tables> {
    let mut t = Tables::default();
    for r in &all(
        c,
        "SELECT uuid, name, parent_uuid FROM resource_providers",
        vec![],
    )
    .await?
    {
        t.providers.push((
            get_s(r, "uuid")?,
            get_s(r, "name")?,
            r.try_get::<Option<String>>("", "parent_uuid")?,
        ));
    }
    for r in &all(c, "SELECT rp_uuid, resource_class, total, reserved, min_unit, max_unit, step_size, allocation_ratio FROM inventories", vec![]).await? {
        t.inventories
            .entry(get_s(r, "rp_uuid")?)
            .or_default()
            .insert(get_s(r, "resource_class")?, inventory_record(r)?);
    }
    for (set, into) in [
        (NameSet::Traits, &mut t.traits),
        (NameSet::Aggregates, &mut t.aggregates),
    ] {
        let (table, col) = (set.table(), set.column());
        for r in &all(c, &format!("SELECT rp_uuid, {col} FROM {table}"), vec![]).await? {
            into.entry(get_s(r, "rp_uuid")?)
                .or_default()
                .insert(get_s(r, col)?);
        }
    }
    for r in &all(c, "SELECT uuid, project_id, user_id FROM consumers", vec![]).await? {
        t.consumers.insert(
            get_s(r, "uuid")?,
            (get_s(r, "project_id")?, get_s(r, "user_id")?),
        );
    }
    for r in &all(
        c,
        "SELECT consumer_uuid, rp_uuid, resource_class, used FROM allocations",
        vec![],
    )
    .await?
    {
        t.allocations
            .entry(get_s(r, "consumer_uuid")?)
            .or_default()
            .entry(Name::from(get_s(r, "rp_uuid")?))
            .or_default()
            .insert(Name::from(get_s(r, "resource_class")?), get_i(r, "used")?);
    }
    Ok(t)
}

/// Renames provider `uuid`, sets its parent and root.
pub(crate) async fn update_provider<C: ConnectionTrait>(
    c: &C,
    uuid: &str,
    name: &str,
    parent: Option<&str>,
    root: &str,
) -> Result<()> {
    exec(
        c,
        "UPDATE resource_providers SET name = ?, parent_uuid = ?, root_uuid = ?, updated_at = ? WHERE uuid = ?",
        vec![
            name.into(),
            parent.map(str::to_owned).into(),
            root.into(),
            now(),
            uuid.into(),
        ],
    )
    .await
    .map(|_| ())
}

/// Sets the root of every provider of the tree under `uuid` (itself included).
pub(crate) async fn set_subtree_root<C: ConnectionTrait>(
    c: &C,
    uuid: &str,
    root: &str,
) -> Result<()> {
    let mut todo = vec![uuid.to_owned()];
    while let Some(u) = todo.pop() {
        exec(
            c,
            "UPDATE resource_providers SET root_uuid = ?, updated_at = ? WHERE uuid = ?",
            vec![root.into(), now(), u.clone().into()],
        )
        .await?;
        for r in &all(
            c,
            "SELECT uuid FROM resource_providers WHERE parent_uuid = ?",
            vec![u.into()],
        )
        .await?
        {
            todo.push(get_s(r, "uuid")?);
        }
    }
    Ok(())
}

/// Consumers with their allocations (of `project` / `user` only, when given).
pub(crate) async fn consumers<C: ConnectionTrait>(
    c: &C,
    project: Option<&str>,
    user: Option<&str>,
) -> Result<Vec<(String, ConsumerAllocations)>> {
    let mut sql = "SELECT c.uuid, c.project_id, c.user_id, c.generation, c.consumer_type, a.rp_uuid, a.resource_class, a.used \
         FROM consumers c JOIN allocations a ON a.consumer_uuid = c.uuid WHERE 1 = 1"
        .to_owned();
    let mut values = Vec::new();
    for (col, v) in [("c.project_id", project), ("c.user_id", user)] {
        if let Some(v) = v {
            sql.push_str(&format!(" AND {col} = ?"));
            values.push(v.into());
        }
    }
    let mut out: BTreeMap<String, ConsumerAllocations> = BTreeMap::new();
    for r in &all(c, &sql, values).await? {
        let e = out.entry(get_s(r, "uuid")?).or_default();
        if e.consumer_generation.is_none() {
            e.project_id = get_s(r, "project_id")?;
            e.user_id = get_s(r, "user_id")?;
            e.consumer_generation = Some(get_i(r, "generation")? as u64);
            e.consumer_type = r.try_get::<Option<String>>("", "consumer_type")?;
        }
        e.allocations
            .entry(Name::from(get_s(r, "rp_uuid")?))
            .or_default()
            .insert(Name::from(get_s(r, "resource_class")?), get_i(r, "used")?);
    }
    Ok(out.into_iter().collect())
}

/// The consumers with allocations against provider `rp_uuid`.
pub(crate) async fn provider_consumers<C: ConnectionTrait>(
    c: &C,
    rp_uuid: &str,
) -> Result<Vec<String>> {
    let sql = "SELECT DISTINCT consumer_uuid FROM allocations WHERE rp_uuid = ?";
    let mut out = Vec::new();
    for r in &all(c, sql, vec![rp_uuid.into()]).await? {
        out.push(get_s(r, "consumer_uuid")?);
    }
    Ok(out)
}

/// The custom names of `kind` registered, and (`with_used`) those in use.
pub(crate) async fn custom_names<C: ConnectionTrait>(
    c: &C,
    kind: &str,
    with_used: bool,
) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for r in &all(
        c,
        "SELECT name FROM placement_custom_names WHERE kind = ?",
        vec![kind.into()],
    )
    .await?
    {
        out.insert(get_s(r, "name")?);
    }
    if with_used {
        out.extend(custom_in_use(c, kind).await?);
    }
    Ok(out)
}

/// The custom names of `kind` in use (inventories and allocations, or
/// providers' traits).
pub(crate) async fn custom_in_use<C: ConnectionTrait>(
    c: &C,
    kind: &str,
) -> Result<BTreeSet<String>> {
    let queries: &[(&str, &str)] = if kind == "trait" {
        &[(
            "SELECT DISTINCT trait AS n FROM resource_provider_traits",
            "n",
        )]
    } else {
        &[
            ("SELECT DISTINCT resource_class AS n FROM inventories", "n"),
            ("SELECT DISTINCT resource_class AS n FROM allocations", "n"),
        ]
    };
    let mut out = BTreeSet::new();
    for (q, col) in queries {
        for r in &all(c, q, vec![]).await? {
            let n = get_s(r, col)?;
            if n.starts_with("CUSTOM_") {
                out.insert(n);
            }
        }
    }
    Ok(out)
}

/// Registers a custom name (the caller checked it is new).
pub(crate) async fn insert_custom_name<C: ConnectionTrait>(
    c: &C,
    kind: &str,
    name: &str,
) -> Result<()> {
    exec(
        c,
        "INSERT INTO placement_custom_names (kind, name, created_at) VALUES (?, ?, ?)",
        vec![kind.into(), name.into(), now()],
    )
    .await
    .map(|_| ())
}

/// Forgets a custom name; false when it was not registered.
pub(crate) async fn delete_custom_name<C: ConnectionTrait>(
    c: &C,
    kind: &str,
    name: &str,
) -> Result<bool> {
    exec(
        c,
        "DELETE FROM placement_custom_names WHERE kind = ? AND name = ?",
        vec![kind.into(), name.into()],
    )
    .await
    .map(|n| n > 0)
}

/// Sets a consumer's type (1.38).
pub(crate) async fn set_consumer_type<C: ConnectionTrait>(
    c: &C,
    consumer: &str,
    consumer_type: Option<&str>,
) -> Result<()> {
    exec(
        c,
        "UPDATE consumers SET consumer_type = ?, updated_at = ? WHERE uuid = ?",
        vec![
            consumer_type.map(str::to_owned).into(),
            now(),
            consumer.into(),
        ],
    )
    .await
    .map(|_| ())
}

/// What a `PUT /allocations/{consumer}` checks, read in one statement.
#[derive(Debug, Default)]
pub(crate) struct PutState {
    /// The consumer's record and allocations (empty for a new consumer).
    pub(crate) consumer: ConsumerAllocations,
    /// Per provider asked for or allocated from now: its generation and,
    /// per class, its inventory and what the other consumers use of it.
    pub(crate) providers: BTreeMap<String, (u64, Capacity)>,
}

/// Per class: a provider's inventory and what other consumers use of it.
pub(crate) type Capacity = BTreeMap<String, (InventoryRecord, i64)>;

/// [`PutState`] of `consumer` and the providers `rps` (and those the
/// consumer has allocations from): one statement, the provider rows (as
/// [`capacity`]'s), the consumer's row and its allocation rows told apart
/// by a `k` column.
pub(crate) async fn put_state<C: ConnectionTrait>(
    c: &C,
    consumer: &str,
    rps: &[&str],
) -> Result<PutState> {
    let int = match c.get_database_backend() {
        DbBackend::MySql => "SIGNED",
        _ => "BIGINT",
    };
    let wanted = if rps.is_empty() {
        "1 = 0".to_owned()
    } else {
        format!("rp.uuid IN ({})", vec!["?"; rps.len()].join(", "))
    };
    // The provider rows come first: their columns are typed, the other
    // rows' NULLs take those types.
    let sql = format!(
        "SELECT 'p' AS k, rp.uuid AS rp, i.resource_class AS rc, rp.generation AS n, \
         i.total, i.reserved, i.min_unit, i.max_unit, i.step_size, i.allocation_ratio, \
         CAST((SELECT COALESCE(SUM(a.used), 0) FROM allocations a WHERE a.rp_uuid = i.rp_uuid AND a.resource_class = i.resource_class AND a.consumer_uuid <> ?) AS {int}) AS used, \
         NULL AS project_id, NULL AS user_id, NULL AS consumer_type \
         FROM resource_providers rp LEFT JOIN inventories i ON i.rp_uuid = rp.uuid \
         WHERE {wanted} OR rp.uuid IN (SELECT ca.rp_uuid FROM allocations ca WHERE ca.consumer_uuid = ?) \
         UNION ALL \
         SELECT 'c', NULL, NULL, c.generation, NULL, NULL, NULL, NULL, NULL, NULL, NULL, c.project_id, c.user_id, c.consumer_type \
         FROM consumers c WHERE c.uuid = ? \
         UNION ALL \
         SELECT 'a', a.rp_uuid, a.resource_class, a.used, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL \
         FROM allocations a WHERE a.consumer_uuid = ?"
    );
    let mut values: Vec<Value> = vec![consumer.into()];
    values.extend(rps.iter().map(|rp| Value::from(*rp)));
    values.extend([consumer.into(), consumer.into(), consumer.into()]);
    let rows = all(c, &sql, values).await?;
    let mut out = PutState::default();
    let mut allocations = Allocations::new();
    let mut known = false;
    for r in &rows {
        match get_s(r, "k")?.as_str() {
            "p" => {
                let e = out
                    .providers
                    .entry(get_s(r, "rp")?)
                    .or_insert_with(|| (0, BTreeMap::new()));
                e.0 = get_i(r, "n")? as u64;
                if let Some(rc) = r.try_get::<Option<String>>("", "rc")? {
                    e.1.insert(rc, (inventory_record(r)?, get_i(r, "used")?));
                }
            }
            "c" => {
                known = true;
                let cs = &mut out.consumer;
                cs.project_id = r
                    .try_get::<Option<String>>("", "project_id")?
                    .unwrap_or_default();
                cs.user_id = r
                    .try_get::<Option<String>>("", "user_id")?
                    .unwrap_or_default();
                cs.consumer_generation = Some(get_i(r, "n")? as u64);
                cs.consumer_type = r.try_get::<Option<String>>("", "consumer_type")?;
            }
            _ => {
                allocations
                    .entry(Name::from(get_s(r, "rp")?))
                    .or_default()
                    .insert(Name::from(get_s(r, "rc")?), get_i(r, "n")?);
            }
        }
    }
    // As [`consumer`]: the allocations of a consumer that has a record.
    if known {
        out.consumer.allocations = allocations;
    }
    Ok(out)
}

/// A `PUT /allocations/{consumer}` checked against [`PutState`], written
/// on PostgreSQL in one statement (its own transaction): the providers
/// locked at the generations read (`generations`) and the consumer at
/// `consumer_generation` (`None`: a new one, inserted), and only when all
/// of them still are, the generations bumped, the allocations replaced
/// (the rows not wanted deleted, the wanted ones inserted or rewritten as
/// new) and the consumer written (deleted once it has no allocations).
/// Returns how many providers were locked and whether the consumer was:
/// anything short of all of them wrote nothing.
pub(crate) async fn pg_put<C: ConnectionTrait>(
    c: &C,
    consumer: &str,
    allocations: &Allocations,
    owner: (&str, &str),
    consumer_type: Option<&str>,
    generations: &[(String, u64)],
    consumer_generation: Option<u64>,
) -> Result<(usize, bool)> {
    let at = now();
    let mut v: Vec<Value> = Vec::new();
    let locks = if generations.is_empty() {
        "1 = 0".to_owned()
    } else {
        let mut conds = Vec::new();
        for (rp, g) in generations {
            conds.push("(uuid = ? AND generation = ?)");
            v.extend([Value::from(rp.as_str()), (*g as i64).into()]);
        }
        conds.join(" OR ")
    };
    let mut sql = format!(
        "WITH lk AS MATERIALIZED (SELECT uuid FROM resource_providers WHERE {locks} ORDER BY uuid FOR UPDATE), "
    );
    let consumer_ok = if let Some(g) = consumer_generation {
        sql.push_str(
            "ck AS MATERIALIZED (SELECT uuid FROM consumers WHERE uuid = ? AND generation = ? FOR UPDATE), ",
        );
        v.extend([Value::from(consumer), (g as i64).into()]);
        "(SELECT count(*) FROM ck) = 1"
    } else {
        "TRUE"
    };
    sql.push_str(&format!(
        "ok AS MATERIALIZED (SELECT (SELECT count(*) FROM lk) = {n} AND {consumer_ok} AS ok), \
         bump AS (UPDATE resource_providers SET generation = generation + 1, updated_at = ? \
         WHERE uuid IN (SELECT uuid FROM lk) AND (SELECT ok FROM ok) RETURNING uuid), ",
        n = generations.len()
    ));
    v.push(at.clone());
    // The rows not wanted any more.
    let mut keep = Vec::new();
    let mut rows = Vec::new();
    let mut kv = Vec::new();
    let mut iv = Vec::new();
    for (rp, res) in allocations {
        for (rc, amount) in res {
            keep.push("(rp_uuid = ? AND resource_class = ?)");
            kv.extend([Value::from(rp.to_string()), rc.to_string().into()]);
            rows.push("(?, ?, ?, ?, ?)");
            iv.extend([
                Value::from(consumer),
                rp.to_string().into(),
                rc.to_string().into(),
                (*amount).into(),
                at.clone(),
            ]);
        }
    }
    sql.push_str("del AS (DELETE FROM allocations WHERE consumer_uuid = ? AND (SELECT ok FROM ok)");
    v.push(consumer.into());
    if !keep.is_empty() {
        sql.push_str(&format!(" AND NOT ({})", keep.join(" OR ")));
        v.extend(kv);
    }
    sql.push_str("), ");
    if !rows.is_empty() {
        // Rewritten as Placement's delete and insert leave them.
        sql.push_str(&format!(
            "ins AS (INSERT INTO allocations (consumer_uuid, rp_uuid, resource_class, used, created_at) \
             SELECT * FROM (VALUES {}) AS w WHERE (SELECT ok FROM ok) \
             ON CONFLICT (consumer_uuid, rp_uuid, resource_class) DO UPDATE \
             SET used = EXCLUDED.used, created_at = EXCLUDED.created_at, updated_at = NULL), ",
            rows.join(", ")
        ));
        v.extend(iv);
    }
    let typed = consumer_type.filter(|_| !allocations.is_empty());
    if allocations.is_empty() {
        sql.push_str("cw AS (DELETE FROM consumers WHERE uuid = ? AND (SELECT ok FROM ok)) ");
        v.push(consumer.into());
    } else if consumer_generation.is_some() {
        sql.push_str(
            "cw AS (UPDATE consumers SET generation = generation + 1, project_id = ?, user_id = ?, updated_at = ?",
        );
        v.extend([owner.0.into(), owner.1.into(), at.clone()]);
        if let Some(t) = typed {
            sql.push_str(", consumer_type = ?");
            v.push(t.into());
        }
        sql.push_str(" WHERE uuid = ? AND (SELECT ok FROM ok)) ");
        v.push(consumer.into());
    } else {
        sql.push_str(
            "cw AS (INSERT INTO consumers (uuid, project_id, user_id, generation, created_at, consumer_type) \
             SELECT ?, ?, ?, 1, ?, ? WHERE (SELECT ok FROM ok)) ",
        );
        v.extend([
            consumer.into(),
            owner.0.into(),
            owner.1.into(),
            at,
            typed.map(str::to_owned).into(),
        ]);
    }
    let consumer_locked = if consumer_generation.is_some() {
        "(SELECT count(*) FROM ck) = 1"
    } else {
        "TRUE"
    };
    sql.push_str(&format!(
        "SELECT CAST((SELECT count(*) FROM lk) AS BIGINT) AS locked, {consumer_locked} AS consumer_locked"
    ));
    let rows = all(c, &sql, v).await?;
    let r = rows
        .first()
        .ok_or_else(|| DbErr::RecordNotFound("the allocation write's answer".into()))?;
    Ok((
        get_i(r, "locked")? as usize,
        r.try_get::<bool>("", "consumer_locked")?,
    ))
}
