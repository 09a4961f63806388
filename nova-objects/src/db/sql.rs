//! Rows ↔ primitives and the SQL of each store operation, written once
//! with sea-query for SQLite, PostgreSQL and MySQL/MariaDB.

use chrono::{NaiveDateTime, SubsecRound, Timelike, Utc};
use sea_orm::sea_query::{
    Alias, BinOper, Cond, Expr, ExprTrait, Func, LikeExpr, NullOrdering, Order, Query,
    SelectStatement, SimpleExpr, Value as SqlValue,
};
use sea_orm::{DbBackend, DbErr, RuntimeErr, SqlErr};
use serde_json::{Map, Value};

use crate::db::rows::{Reader, Row, Writer, build};
use crate::db::tables::Table;
use crate::error::{Error, Result};
use crate::field::{format_datetime, parse_datetime};
use crate::primitive::{CHANGES_KEY, DATA_KEY, NAME_KEY, NAMESPACE, NAMESPACE_KEY, VERSION_KEY};
use crate::store::{ListQuery, Lookup, ReadDeleted, SaveOptions, SortDir};

/// Storage type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColType {
    BigInt,
    Double,
    Bool,
    DateTime,
    Str,
    Text,
    Json,
}

/// What reading a column needs, computed once per table.
#[derive(Debug, Clone, Copy)]
struct ColInfo {
    ty: ColType,
    nullable: bool,
    /// `deleted` of a soft-deleting table (stored as the row id).
    soft_deleted: bool,
}

/// The column infos of `t`, aligned with `t.columns` (cached: rows are
/// read on every object load, so nothing is looked up by name per row).
fn col_infos(t: &Table) -> &'static [ColInfo] {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static CACHE: OnceLock<HashMap<&'static str, Vec<ColInfo>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| {
        crate::db::tables::TABLES
            .iter()
            .map(|t| {
                let class = t.class();
                let soft = t.soft_delete();
                let infos = t
                    .columns
                    .iter()
                    .map(|c| ColInfo {
                        ty: compute_col_type(t, c),
                        nullable: class.field(c).is_none_or(|f| f.nullable),
                        soft_deleted: *c == "deleted" && soft,
                    })
                    .collect();
                (t.name, infos)
            })
            .collect()
    });
    cache.get(t.name).map_or(&[], Vec::as_slice)
}

/// The column type of stored field `name` of `t` (from the field's OVO type).
pub(crate) fn col_type(t: &Table, name: &str) -> ColType {
    match t.columns.iter().position(|c| *c == name) {
        Some(i) => col_infos(t).get(i).map_or(ColType::Json, |c| c.ty),
        None => compute_col_type(t, name),
    }
}

fn compute_col_type(t: &Table, name: &str) -> ColType {
    if name == "id" || name == "deleted" {
        return ColType::BigInt;
    }
    let Some(f) = t.class().field(name) else {
        return ColType::Json;
    };
    let kind = f.kind.name();
    match kind.split('(').next().unwrap_or("") {
        "Integer" | "NonNegativeInteger" => ColType::BigInt,
        "Float" | "NonNegativeFloat" => ColType::Double,
        "Boolean" | "FlexibleBoolean" => ColType::Bool,
        "DateTime" => ColType::DateTime,
        "SensitiveString" => ColType::Text,
        "String" | "UUID" | "Enum" | "IPAddress" | "IPV4Address" | "IPV6Address"
        | "IPV4AndV6Address" | "MACAddress" | "PCIAddress" | "VersionPredicate" => {
            if t.text.contains(&name) {
                ColType::Text
            } else {
                ColType::Str
            }
        }
        _ => ColType::Json,
    }
}

pub(crate) fn db_err(e: DbErr) -> Error {
    if lost_connection(&e) {
        Error::DbConnection(e.to_string())
    } else {
        Error::Db(e.to_string())
    }
}

/// Whether `e` says the database is out of reach rather than that the
/// statement failed: no connection to be had (refused, timed out, pool
/// closed), the link broken under a statement (I/O, TLS, protocol), or the
/// server ending the session (SQLSTATE class 08; PostgreSQL 57P01–57P03:
/// administrator's or crash shutdown, starting up; MariaDB 70100: the
/// connection killed).
fn lost_connection(e: &DbErr) -> bool {
    use sea_orm::sqlx::Error as X;
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(x)) | DbErr::Query(RuntimeErr::SqlxError(x)) => {
            match &**x {
                X::Io(_)
                | X::Tls(_)
                | X::Protocol(_)
                | X::PoolTimedOut
                | X::PoolClosed
                | X::WorkerCrashed => true,
                X::Database(d) => d.code().is_some_and(|c| {
                    c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03" | "70100")
                }),
                _ => false,
            }
        }
        _ => false,
    }
}

fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
        || matches!(e, DbErr::Exec(RuntimeErr::SqlxError(_)) if e.to_string().contains("UNIQUE"))
}

fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(0)
}

fn invalid(t: &Table, field: &str, v: &Value) -> Error {
    Error::InvalidPrimitive(format!("{}.{field}: {v} does not fit its column", t.object))
}

/// A field's primitive value as the SQL value of its column.
pub(crate) fn to_sql(t: &Table, field: &str, v: &Value) -> Result<SqlValue> {
    let ty = col_type(t, field);
    if v.is_null() {
        return Ok(match ty {
            ColType::BigInt => SqlValue::BigInt(None),
            ColType::Double => SqlValue::Double(None),
            ColType::Bool => SqlValue::Bool(None),
            ColType::DateTime => SqlValue::ChronoDateTime(None),
            ColType::Str | ColType::Text | ColType::Json => SqlValue::String(None),
        });
    }
    Ok(match ty {
        ColType::BigInt => v.as_i64().ok_or_else(|| invalid(t, field, v))?.into(),
        ColType::Double => v.as_f64().ok_or_else(|| invalid(t, field, v))?.into(),
        ColType::Bool => v.as_bool().ok_or_else(|| invalid(t, field, v))?.into(),
        ColType::DateTime => {
            let s = v.as_str().ok_or_else(|| invalid(t, field, v))?;
            let dt = parse_datetime(s).ok_or_else(|| invalid(t, field, v))?;
            dt.naive_utc()
                .with_nanosecond(0)
                .unwrap_or(dt.naive_utc())
                .into()
        }
        ColType::Str | ColType::Text => v.as_str().ok_or_else(|| invalid(t, field, v))?.into(),
        ColType::Json => without_changes(v).to_string().into(),
    })
}

/// A structured value as stored: nested object primitives without their
/// change lists (what is in the database has no pending changes).
fn without_changes(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != CHANGES_KEY)
                .map(|(k, x)| (k.clone(), without_changes(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_changes).collect()),
        other => other.clone(),
    }
}

/// A column's value as read: a JSON column's text is left for the
/// reader to parse (into a [`Value`], or straight into the field).
pub(crate) enum Cell {
    Value(Value),
    Json(String),
}

/// Reads column `idx` (named `field`) of `row`: by position, as the
/// statements list the columns in [`selected`] order (a lookup by name
/// compares the name with every column's).
fn read_cell<R: Row>(t: &Table, row: &mut R, idx: usize, field: &str, ty: ColType) -> Result<Cell> {
    let e = |e: String| Error::Db(format!("reading {}.{field}: {e}", t.name));
    Ok(Cell::Value(match ty {
        ColType::BigInt => row.i64_at(idx).map_err(e)?.into(),
        ColType::Double => row.f64_at(idx).map_err(e)?.into(),
        ColType::Bool => row.bool_at(idx).map_err(e)?.into(),
        ColType::DateTime => row
            .datetime_at(idx)
            .map_err(e)?
            .map(|n| Value::String(format_datetime(&n.and_utc())))
            .unwrap_or(Value::Null),
        ColType::Str | ColType::Text => row.text_at(idx).map_err(e)?.into(),
        ColType::Json => match row.text_at(idx).map_err(e)? {
            // What a JSON NULL reads as, as a NULL does.
            Some(s) if s != "null" => return Ok(Cell::Json(s)),
            _ => Value::Null,
        },
    }))
}

/// The value of JSON column `field` of `t` holding `text`.
pub(crate) fn parse_json(t: &Table, field: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|x| Error::Db(format!("{}.{field} holds invalid JSON: {x}", t.name)))
}

/// The primitive of the object in `row`.
pub(crate) fn row_to_primitive<R: Row>(t: &Table, row: &mut R) -> Result<Value> {
    row_to_primitive_at(t, row, 0)
}

/// The stored fields of the object whose columns start at index `base`
/// of `row` (selected as [`selected`] lists them; a join selects
/// several), in the table's order: `f(field, cell)` for each field set
/// (a NULL in a column whose field is not nullable leaves it unset, as a
/// fresh nova object).
pub(crate) fn row_cells<R: Row>(
    t: &Table,
    row: &mut R,
    base: usize,
    mut f: impl FnMut(&'static str, Cell) -> Result<()>,
) -> Result<()> {
    let mut after_id = base + 1;
    for (&c, info) in t.columns.iter().zip(col_infos(t)) {
        let idx = if c == "id" {
            base
        } else {
            after_id += 1;
            after_id - 1
        };
        let cell = if info.soft_deleted {
            let d = row
                .i64_at(idx)
                .map_err(|e| Error::Db(format!("reading {}.deleted: {e}", t.name)))?;
            Cell::Value(Value::Bool(d.is_some_and(|d| d != 0)))
        } else {
            read_cell(t, row, idx, c, info.ty)?
        };
        if matches!(cell, Cell::Value(Value::Null)) && !info.nullable {
            continue;
        }
        f(c, cell)?;
    }
    Ok(())
}

/// [`row_cells`] with the JSON columns parsed.
pub(crate) fn row_fields<R: Row>(
    t: &Table,
    row: &mut R,
    base: usize,
    mut f: impl FnMut(&'static str, Value) -> Result<()>,
) -> Result<()> {
    row_cells(t, row, base, |c, cell| match cell {
        Cell::Value(v) => f(c, v),
        Cell::Json(s) => f(c, parse_json(t, c, &s)?),
    })
}

/// The primitive of the object whose columns start at index `base` of
/// `row` ([`row_fields`]).
pub(crate) fn row_to_primitive_at<R: Row>(t: &Table, row: &mut R, base: usize) -> Result<Value> {
    let class = t.class();
    let mut data = Map::with_capacity(t.columns.len());
    row_fields(t, row, base, |c, v| {
        data.insert(c.to_owned(), v);
        Ok(())
    })?;
    let mut m = Map::with_capacity(4);
    m.insert(NAME_KEY.into(), class.name.into());
    m.insert(NAMESPACE_KEY.into(), NAMESPACE.into());
    m.insert(VERSION_KEY.into(), class.version.to_string().into());
    m.insert(DATA_KEY.into(), Value::Object(data));
    Ok(Value::Object(m))
}

/// The parts of a primitive the store needs.
pub(crate) struct Parts {
    pub data: Map<String, Value>,
    pub changes: Vec<String>,
}

pub(crate) fn split(t: &Table, v: Value) -> Result<Parts> {
    let Value::Object(mut m) = v else {
        return Err(Error::InvalidPrimitive("not an object primitive".into()));
    };
    match m.get(NAME_KEY).and_then(Value::as_str) {
        Some(n) if n == t.object => {}
        other => {
            return Err(Error::InvalidPrimitive(format!(
                "expected a {} primitive, got {other:?}",
                t.object
            )));
        }
    }
    let data = match m.remove(DATA_KEY) {
        Some(Value::Object(d)) => d,
        _ => return Err(Error::InvalidPrimitive(format!("no {DATA_KEY} map"))),
    };
    let changes = match m.remove(CHANGES_KEY) {
        Some(Value::Array(a)) => a
            .into_iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    Ok(Parts { data, changes })
}

/// The columns statements read, in the order [`row_to_primitive`] expects:
/// `id`, then the others as the table lists them.
pub(crate) fn selected(t: &Table) -> impl Iterator<Item = &'static str> {
    std::iter::once("id").chain(t.columns.iter().copied().filter(|c| *c != "id"))
}

fn select(t: &Table) -> SelectStatement {
    let mut q = Query::select();
    q.from(t.name).columns(selected(t));
    q
}

/// Every column of `t`, for `RETURNING`.
fn returning(t: &Table) -> sea_orm::sea_query::ReturningClause {
    Query::returning().columns(selected(t))
}

/// SQLite and PostgreSQL return the written row with the write;
/// MySQL/MariaDB read it back (no `UPDATE … RETURNING`).
fn has_returning<R: Reader>(db: &R) -> bool {
    db.backend() != DbBackend::MySql
}

pub(crate) fn live(t: &Table, rd: ReadDeleted) -> Option<SimpleExpr> {
    if !t.soft_delete() {
        return None;
    }
    match rd {
        ReadDeleted::No => Some(Expr::col("deleted").eq(0)),
        ReadDeleted::Yes => None,
        ReadDeleted::Only => Some(Expr::col("deleted").ne(0)),
    }
}

/// The condition that identifies the row of `data`: its id, or its first
/// unique key.
fn row_key(t: &Table, data: &Map<String, Value>) -> Result<(SimpleExpr, String)> {
    if t.stores("id")
        && let Some(id) = data.get("id").and_then(Value::as_i64)
    {
        return Ok((Expr::col("id").eq(id), id.to_string()));
    }
    let key = t.unique.first().ok_or_else(|| Error::ObjectAction {
        action: "save".into(),
        reason: format!("{} has no id", t.object),
    })?;
    let mut cond = Cond::all();
    let mut shown = Vec::new();
    for &c in *key {
        let v = data.get(c).ok_or_else(|| Error::ObjectAction {
            action: "save".into(),
            reason: format!("{}.{c} is not set", t.object),
        })?;
        cond = cond.add(Expr::col(c).eq(to_sql(t, c, v)?));
        shown.push(v.as_str().map_or_else(|| v.to_string(), str::to_owned));
    }
    Ok((cond.into(), shown.join("/")))
}

fn kind(t: &Table) -> &'static str {
    t.class().name
}

async fn fetch_one<R: Reader>(
    db: &R,
    t: &Table,
    cond: SimpleExpr,
    rd: ReadDeleted,
) -> Result<Option<Value>> {
    let mut q = select(t);
    q.and_where(cond).and_where_option(live(t, rd));
    match db.read_one(build(db, &q)).await.map_err(db_err)? {
        Some(mut r) => Ok(Some(row_to_primitive(t, &mut r)?)),
        None => Ok(None),
    }
}

/// `get`.
pub(crate) async fn get<R: Reader>(
    db: &R,
    t: &Table,
    by: &Lookup,
    rd: ReadDeleted,
) -> Result<Value> {
    let cond = match by {
        Lookup::Id(i) => Expr::col("id").eq(*i),
        Lookup::Uuid(u) if t.stores("uuid") => Expr::col("uuid").eq(u.as_str()),
        Lookup::Uuid(_) => {
            return Err(Error::InvalidQuery(format!("{} has no uuid", t.object)));
        }
        Lookup::Field { name, value } => {
            scalar_column(t, name)?;
            Expr::col(Alias::new(name)).eq(to_sql(t, name, value)?)
        }
    };
    fetch_one(db, t, cond, rd)
        .await?
        .ok_or_else(|| Error::NotFound {
            kind: kind(t),
            id: by.to_string(),
        })
}

/// `create`.
pub(crate) async fn create<W: Writer>(db: &W, t: &Table, obj: Value) -> Result<Value> {
    let mut p = split(t, obj)?;
    if p.data.get("id").is_some_and(|v| !v.is_null()) && t.stores("id") {
        return Err(Error::ObjectAction {
            action: "create".into(),
            reason: "already created".into(),
        });
    }
    let class = t.class();
    if class.field("created_at").is_some() && p.data.get("created_at").is_none_or(Value::is_null) {
        p.data.insert(
            "created_at".into(),
            format_datetime(&now().and_utc()).into(),
        );
    }
    let mut cols = Vec::new();
    let mut vals: Vec<SimpleExpr> = Vec::new();
    for &c in t.columns {
        if c == "id" || c == "deleted" {
            continue;
        }
        if let Some(v) = p.data.get(c) {
            cols.push(c);
            vals.push(to_sql(t, c, v)?.into());
        }
    }
    let mut ins = Query::insert();
    ins.into_table(t.name)
        .columns(cols)
        .values(vals)
        .map_err(|e| Error::Db(e.to_string()))?;
    let exists = |e: DbErr| {
        if is_unique_violation(&e) {
            let id = t
                .unique
                .iter()
                .map(|k| {
                    k.iter()
                        .map(|c| p.data.get(*c).map_or(String::new(), |v| v.to_string()))
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .collect::<Vec<_>>()
                .join(" or ");
            Error::Exists { kind: kind(t), id }
        } else {
            db_err(e)
        }
    };
    if has_returning(db) {
        ins.returning(returning(t));
        let mut row = db
            .write_returning(build(db, &ins))
            .await
            .map_err(exists)?
            .ok_or_else(|| Error::Db(format!("insert into {} returned no row", t.name)))?;
        return row_to_primitive(t, &mut row);
    }
    let r = db.write(build(db, &ins)).await.map_err(exists)?;
    let id = r
        .last_id
        .and_then(|id| i64::try_from(id).ok())
        .ok_or_else(|| Error::Db(format!("no id for the row inserted into {}", t.name)))?;
    fetch_one(db, t, Expr::col("id").eq(id), ReadDeleted::Yes)
        .await?
        .ok_or_else(|| Error::Db(format!("{} row {id} vanished after insert", t.name)))
}

fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::String(s) => format!("'{s}'"),
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// `save`.
pub(crate) async fn save<W: Writer>(
    db: &W,
    t: &Table,
    obj: Value,
    opts: &SaveOptions,
) -> Result<Value> {
    let p = split(t, obj)?;
    let (key, shown) = row_key(t, &p.data)?;
    let class = t.class();
    let mut upd = Query::update();
    upd.table(t.name);
    let mut n = 0;
    for c in &p.changes {
        let c = c.as_str();
        if c == "id" || c == "deleted" || !t.stores(c) {
            continue;
        }
        let Some(&col) = t.columns.iter().find(|x| **x == c) else {
            continue;
        };
        let v = p.data.get(col).unwrap_or(&Value::Null);
        upd.value(col, to_sql(t, col, v)?);
        n += 1;
    }
    if class.field("updated_at").is_some() && !p.changes.iter().any(|c| c == "updated_at") {
        upd.value("updated_at", now());
        n += 1;
    }
    let mut expected = Cond::all();
    for (field, values) in &opts.expected {
        // Scalars, or a structured field's stored JSON text (what a
        // read-modify-write of a dict read: a compare-and-swap).
        if !t.stores(field) && field != "id" {
            scalar_column(t, field)?;
        }
        let mut any = Cond::any();
        for v in values {
            any = any.add(if v.is_null() {
                Expr::col(Alias::new(field)).is_null()
            } else {
                Expr::col(Alias::new(field)).eq(to_sql(t, field, v)?)
            });
        }
        expected = expected.add(any);
    }
    if n > 0 || !opts.expected.is_empty() {
        if n == 0 {
            // Nothing to write, but the expectation must still hold: touch the key.
            upd.value("id", Expr::col("id"));
        }
        upd.cond_where(Cond::all().add(key.clone()).add(expected))
            .and_where_option(live(t, ReadDeleted::No));
        let write_err = |e: DbErr| {
            if is_unique_violation(&e) {
                Error::Exists {
                    kind: kind(t),
                    id: shown.clone(),
                }
            } else {
                db_err(e)
            }
        };
        let written = if has_returning(db) {
            upd.returning(returning(t));
            match db
                .write_returning(build(db, &upd))
                .await
                .map_err(write_err)?
            {
                Some(mut row) => return row_to_primitive(t, &mut row),
                None => false,
            }
        } else {
            // MySQL reports changed rows, not matched ones: a no-op write of
            // identical values counts 0, so a miss is confirmed by reading.
            db.write(build(db, &upd)).await.map_err(write_err)?.changed > 0
        };
        if !written {
            let Some(now) = fetch_one(db, t, key.clone(), ReadDeleted::No).await? else {
                return Err(Error::NotFound {
                    kind: kind(t),
                    id: shown,
                });
            };
            let data = &now[DATA_KEY];
            for (field, values) in &opts.expected {
                let actual = data.get(field).unwrap_or(&Value::Null);
                if !values.contains(actual) {
                    return Err(Error::UnexpectedTaskState {
                        instance_uuid: data
                            .get("uuid")
                            .and_then(Value::as_str)
                            .unwrap_or(&shown)
                            .to_owned(),
                        expected: format!(
                            "{{'{field}': {}}}",
                            py_repr(&Value::from(values.clone()))
                        ),
                        actual: py_repr(actual),
                    });
                }
            }
        }
    }
    fetch_one(db, t, key, ReadDeleted::No)
        .await?
        .ok_or_else(|| Error::NotFound {
            kind: kind(t),
            id: shown,
        })
}

/// `destroy`.
pub(crate) async fn destroy<W: Writer>(db: &W, t: &Table, obj: Value) -> Result<Value> {
    let p = split(t, obj)?;
    let (key, shown) = row_key(t, &p.data)?;
    let not_found = || Error::NotFound {
        kind: kind(t),
        id: shown.clone(),
    };
    if t.soft_delete() {
        let mut upd = Query::update();
        upd.table(t.name)
            .value("deleted", Expr::col("id"))
            .value("deleted_at", now())
            .cond_where(key.clone())
            .and_where(Expr::col("deleted").eq(0));
        if has_returning(db) {
            upd.returning(returning(t));
            let mut row = db
                .write_returning(build(db, &upd))
                .await
                .map_err(db_err)?
                .ok_or_else(not_found)?;
            return row_to_primitive(t, &mut row);
        }
        let r = db.write(build(db, &upd)).await.map_err(db_err)?;
        if r.changed == 0 {
            return Err(not_found());
        }
        fetch_one(db, t, key, ReadDeleted::Yes)
            .await?
            .ok_or_else(not_found)
    } else if has_returning(db) {
        let mut del = Query::delete();
        del.from_table(t.name)
            .cond_where(key)
            .returning(returning(t));
        let mut row = db
            .write_returning(build(db, &del))
            .await
            .map_err(db_err)?
            .ok_or_else(not_found)?;
        row_to_primitive(t, &mut row)
    } else {
        let before = fetch_one(db, t, key.clone(), ReadDeleted::Yes)
            .await?
            .ok_or_else(not_found)?;
        let mut del = Query::delete();
        del.from_table(t.name).cond_where(key);
        let r = db.write(build(db, &del)).await.map_err(db_err)?;
        if r.changed == 0 {
            return Err(not_found());
        }
        Ok(before)
    }
}

/// Soft-deletes the live rows of `t` whose `field` is `value` (nova's
/// `instance_destroy` taking the instance's virtual interfaces with it);
/// returns how many went.
pub(crate) async fn soft_delete_by<W: Writer>(
    db: &W,
    t: &Table,
    field: &str,
    value: &str,
) -> Result<u64> {
    let mut upd = Query::update();
    upd.table(t.name)
        .value("deleted", Expr::col("id"))
        .value("deleted_at", now())
        .and_where(Expr::col(Alias::new(field)).eq(value))
        .and_where(Expr::col("deleted").eq(0));
    Ok(db.write(build(db, &upd)).await.map_err(db_err)?.changed)
}

/// Checks that `name` is a stored scalar column (filters, sort keys).
fn scalar_column(t: &Table, name: &str) -> Result<()> {
    if (t.stores(name) || name == "id") && col_type(t, name) != ColType::Json {
        Ok(())
    } else {
        Err(Error::InvalidQuery(format!(
            "{name} is not a field of {} that can be filtered or sorted on",
            t.object
        )))
    }
}

fn filters(t: &Table, f: &Map<String, Value>, rd: ReadDeleted, admin: bool) -> Result<Cond> {
    let mut cond = Cond::all();
    let mut rd = rd;
    for (k, v) in f {
        match k.as_str() {
            "changes-since" | "changes-before" => {
                let at = v.as_str().and_then(parse_datetime).ok_or_else(|| {
                    Error::InvalidQuery(format!("{k} must be an ISO 8601 time, not {v}"))
                })?;
                let at = at.naive_utc();
                // A row never updated changed when it was created.
                let col = if t.stores("created_at") {
                    Expr::expr(Func::coalesce([
                        Expr::col("updated_at"),
                        Expr::col("created_at"),
                    ]))
                } else {
                    Expr::col("updated_at")
                };
                cond = cond.add(if k == "changes-since" {
                    col.gte(at)
                } else {
                    col.lte(at)
                });
            }
            "tags" | "tags-any" | "not-tags" | "not-tags-any" if t.stores("tags") => {
                cond = cond.add(tag_filter(k, v)?);
            }
            "deleted" if t.soft_delete() => {
                let want = v.as_bool().ok_or_else(|| {
                    Error::InvalidQuery(format!("deleted must be true or false, not {v}"))
                })?;
                if want && !admin {
                    return Err(Error::Forbidden(
                        "reading deleted records needs an admin context".into(),
                    ));
                }
                rd = if want {
                    ReadDeleted::Only
                } else {
                    ReadDeleted::No
                };
            }
            name => {
                scalar_column(t, name)?;
                let col = Expr::col(Alias::new(name));
                cond = cond.add(match v {
                    Value::Null => col.is_null(),
                    Value::Array(a) => {
                        let vals = a
                            .iter()
                            .map(|x| to_sql(t, name, x))
                            .collect::<Result<Vec<_>>>()?;
                        col.is_in(vals)
                    }
                    v => col.eq(to_sql(t, name, v)?),
                });
            }
        }
    }
    if let Some(l) = live(t, rd) {
        cond = cond.add(l);
    }
    Ok(cond)
}

/// Nova's tag filters on a row's `tags` (a `TagList` primitive stored as
/// JSON text): `tags` (every one), `tags-any` (at least one), `not-tags`
/// (not every one), `not-tags-any` (none of them). A row has tag `x` when
/// its text holds `"tag":"x"` (`x` JSON-escaped as the writer escapes it):
/// inside a JSON string every `"` is escaped, so the pattern can only match
/// a Tag's own `tag` field, exactly. LIKE's wildcards in `x` are escaped.
fn tag_filter(key: &str, v: &Value) -> Result<Cond> {
    let tags: Vec<&str> = match v {
        Value::Array(a) => a.iter().map(|t| t.as_str()).collect::<Option<_>>(),
        Value::String(s) => Some(vec![s.as_str()]),
        _ => None,
    }
    .filter(|t: &Vec<&str>| !t.is_empty())
    .ok_or_else(|| Error::InvalidQuery(format!("{key} must be a list of tags, not {v}")))?;
    let has = |tag: &str| -> SimpleExpr {
        let needle = format!("\"tag\":{}", Value::from(tag));
        let mut pattern = String::from("%");
        for c in needle.chars() {
            if matches!(c, '!' | '%' | '_') {
                pattern.push('!');
            }
            pattern.push(c);
        }
        pattern.push('%');
        Expr::expr(Func::coalesce([Expr::col("tags"), Expr::val("")]))
            .like(LikeExpr::new(pattern).escape('!'))
    };
    let each = |all: bool| {
        tags.iter()
            .fold(if all { Cond::all() } else { Cond::any() }, |c, t| {
                c.add(has(t))
            })
    };
    Ok(match key {
        "tags" => each(true),
        "tags-any" => each(false),
        "not-tags" => each(true).not(),
        _ => each(false).not(),
    })
}

/// `name` matches `pattern` (NULL as the empty string), with the
/// backend's regular-expression operator.
fn regex_match(backend: DbBackend, t: &Table, name: &str, pattern: &str) -> Result<SimpleExpr> {
    scalar_column(t, name)?;
    let op = match backend {
        DbBackend::Postgres => "~",
        // MySQL/MariaDB natively; SQLite through the function sqlx registers.
        _ => "REGEXP",
    };
    Ok(
        Expr::expr(Func::coalesce([Expr::col(Alias::new(name)), Expr::val("")]))
            .binary(BinOper::Custom(op), Expr::val(pattern)),
    )
}

/// `list`.
pub(crate) async fn list<R: Reader>(
    db: &R,
    t: &Table,
    q: &ListQuery,
    rd: ReadDeleted,
    admin: bool,
) -> Result<Vec<Value>> {
    let mut keys: Vec<(String, SortDir)> = Vec::new();
    let default_dir = q.sort_dirs.first().copied().unwrap_or(SortDir::Desc);
    if q.sort_keys.is_empty() {
        if t.stores("created_at") {
            keys.push(("created_at".into(), default_dir));
        }
    } else {
        for (i, k) in q.sort_keys.iter().enumerate() {
            scalar_column(t, k)?;
            keys.push((
                k.clone(),
                q.sort_dirs.get(i).copied().unwrap_or(default_dir),
            ));
        }
    }
    if !keys.iter().any(|(k, _)| k == "id") {
        keys.push(("id".into(), keys.first().map_or(default_dir, |k| k.1)));
    }
    let mut sel = select(t);
    sel.cond_where(filters(t, &q.filters, rd, admin)?);
    for (name, pattern) in &q.regex_filters {
        sel.cond_where(regex_match(db.backend(), t, name, pattern)?);
    }
    if let Some(m) = &q.marker {
        let mk = t.marker_key();
        let mv = if mk == "id" {
            Value::from(
                m.parse::<i64>()
                    .map_err(|_| Error::MarkerNotFound(m.clone()))?,
            )
        } else {
            Value::from(m.as_str())
        };
        let row = fetch_one(db, t, Expr::col(mk).eq(to_sql(t, mk, &mv)?), rd)
            .await?
            .ok_or_else(|| Error::MarkerNotFound(m.clone()))?;
        let data = &row[DATA_KEY];
        let id = data.get("id").cloned().unwrap_or(Value::Null);
        let mut after = Cond::any();
        for i in 0..keys.len() {
            let mut all = Cond::all();
            for (k, _) in &keys[..i] {
                let v = if k == "id" {
                    &id
                } else {
                    data.get(k).unwrap_or(&Value::Null)
                };
                let col = Expr::col(Alias::new(k));
                all = all.add(if v.is_null() {
                    col.is_null()
                } else {
                    col.eq(to_sql(t, k, v)?)
                });
            }
            let (k, dir) = &keys[i];
            let v = if k == "id" {
                &id
            } else {
                data.get(k).unwrap_or(&Value::Null)
            };
            let col = Expr::col(Alias::new(k));
            // NULLs sort first ascending and last descending on every backend.
            let next: Option<SimpleExpr> = match (dir, v.is_null()) {
                (SortDir::Asc, true) => Some(col.is_not_null()),
                (SortDir::Asc, false) => Some(col.gt(to_sql(t, k, v)?)),
                (SortDir::Desc, true) => None,
                (SortDir::Desc, false) => Some(
                    Cond::any()
                        .add(Expr::col(Alias::new(k)).lt(to_sql(t, k, v)?))
                        .add(Expr::col(Alias::new(k)).is_null())
                        .into(),
                ),
            };
            if let Some(n) = next {
                after = after.add(all.add(n));
            }
        }
        sel.cond_where(after);
    }
    for (k, dir) in &keys {
        let (order, nulls) = match dir {
            SortDir::Asc => (Order::Asc, NullOrdering::First),
            SortDir::Desc => (Order::Desc, NullOrdering::Last),
        };
        sel.order_by_with_nulls(Alias::new(k), order, nulls);
    }
    if let Some(l) = q.limit {
        sel.limit(l);
    }
    let rows = db.read_all(build(db, &sel)).await.map_err(db_err)?;
    rows.into_iter()
        .map(|mut r| row_to_primitive(t, &mut r))
        .collect()
}

/// `count`.
pub(crate) async fn count<R: Reader>(
    db: &R,
    t: &Table,
    f: &Map<String, Value>,
    rd: ReadDeleted,
    admin: bool,
) -> Result<u64> {
    let mut q = Query::select();
    q.expr_as(Func::count(Expr::col("id")), "n")
        .from(t.name)
        .cond_where(filters(t, f, rd, admin)?);
    let row = db.read_one(build(db, &q)).await.map_err(db_err)?;
    let n = match row {
        Some(mut r) => r
            .i64_at(0)
            .map_err(|e| Error::Db(format!("reading a count: {e}")))?
            .unwrap_or(0),
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Nova's `_get_counts_in_db` in one statement: the live instances of
/// `project` that are neither soft-deleted nor hidden, counted with their
/// vCPUs and RAM, and with `user`, the same for that user's (the sums
/// under a `CASE`, so one pass over the project's rows).
pub(crate) async fn instance_counts<R: Reader>(
    db: &R,
    project: &str,
    user: Option<&str>,
) -> Result<crate::InstanceCounts> {
    // SUM is NUMERIC on PostgreSQL and DECIMAL on MySQL: cast it back.
    let int = match db.backend() {
        DbBackend::MySql => "SIGNED",
        _ => "BIGINT",
    };
    let total = |e: Expr| Func::cast_as(Func::coalesce([Func::sum(e).into(), Expr::val(0)]), int);
    let mut q = Query::select();
    q.from(crate::db::tables::INSTANCES.name)
        .expr_as(total(Expr::val(1)), "instances")
        .expr_as(total(Expr::col("vcpus")), "cores")
        .expr_as(total(Expr::col("memory_mb")), "ram");
    if let Some(u) = user {
        let mine = |then: Expr| -> Expr {
            Expr::case(Expr::col("user_id").eq(u), then)
                .finally(0)
                .into()
        };
        q.expr_as(total(mine(Expr::val(1))), "u_instances")
            .expr_as(total(mine(Expr::col("vcpus"))), "u_cores")
            .expr_as(total(mine(Expr::col("memory_mb"))), "u_ram");
    }
    q.and_where(Expr::col("deleted").eq(0))
        .and_where(Expr::col("project_id").eq(project))
        .cond_where(
            Cond::any()
                .add(Expr::col("vm_state").is_null())
                .add(Expr::col("vm_state").ne("soft-delete")),
        )
        .cond_where(
            Cond::any()
                .add(Expr::col("hidden").is_null())
                .add(Expr::col("hidden").eq(false)),
        );
    // The sums by position: instances, cores, ram, then the user's.
    let mut row = db.read_one(build(db, &q)).await.map_err(db_err)?;
    let mut get = |i: usize| -> Result<i64> {
        match &mut row {
            Some(r) => Ok(r
                .i64_at(i)
                .map_err(|e| Error::Db(format!("reading instance counts: {e}")))?
                .unwrap_or(0)),
            None => Ok(0),
        }
    };
    let mut counts = |first: usize| -> Result<crate::UsageCounts> {
        Ok(crate::UsageCounts {
            instances: get(first)?,
            cores: get(first + 1)?,
            ram: get(first + 2)?,
        })
    };
    let project = counts(0)?;
    let user = match user {
        Some(_) => Some(counts(3)?),
        None => None,
    };
    Ok(crate::InstanceCounts { project, user })
}
