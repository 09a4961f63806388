//! Reads that join what nova joins: an instance with its network info
//! cache in one statement (nova's `instance_get_by_uuid` with
//! `columns_to_join=['info_cache']`), so the API's `GET /servers/{id}`
//! makes one round trip to the database, not two.
//!
//! The statement is built once per backend; only the uuid is bound.

use std::sync::OnceLock;

use sea_orm::sea_query::{Alias, Expr, ExprTrait, JoinType, Query};
use sea_orm::{DbBackend, Statement};

use crate::db::decode::FromRow;
use crate::db::rows::{Reader, Row};
use crate::db::sql::{db_err, selected};
use crate::db::tables::{Table, table_for};
use crate::error::{Error, Result};

fn table(objname: &str) -> Result<&'static Table> {
    table_for(objname).ok_or_else(|| Error::Db(format!("no table for {objname}")))
}

/// `SELECT instances.*, instance_info_caches.* … LEFT JOIN … WHERE
/// instances.uuid = ? AND instances.deleted = 0`: live rows only (a
/// cache is unique per instance, so at most one row).
fn instance_with_info_cache_sql(backend: DbBackend) -> Result<&'static str> {
    static SQL: [OnceLock<String>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = match backend {
        DbBackend::Sqlite => &SQL[0],
        DbBackend::Postgres => &SQL[1],
        _ => &SQL[2],
    };
    if let Some(sql) = slot.get() {
        return Ok(sql);
    }
    let (inst, cache) = (table("Instance")?, table("InstanceInfoCache")?);
    let col = |t: &Table, c: &str| (Alias::new(t.name), Alias::new(c));
    let mut q = Query::select();
    q.from(Alias::new(inst.name))
        .columns(selected(inst).map(|c| col(inst, c)))
        .columns(selected(cache).map(|c| col(cache, c)))
        .join(
            JoinType::LeftJoin,
            Alias::new(cache.name),
            Expr::col(col(cache, "instance_uuid"))
                .equals(col(inst, "uuid"))
                .and(Expr::col(col(cache, "deleted")).eq(Expr::cust("0"))),
        )
        .and_where(Expr::col(col(inst, "uuid")).eq(""))
        .and_where(Expr::col(col(inst, "deleted")).eq(Expr::cust("0")));
    let built = backend.build(&q);
    // Only the uuid is bound, so the text can be kept and reused.
    if built.values.as_ref().map_or(0, |v| v.0.len()) != 1 {
        return Err(Error::Db(format!(
            "the joined instance read binds more than the uuid: {}",
            built.sql
        )));
    }
    Ok(slot.get_or_init(|| built.sql))
}

/// The statement of [`instance_with_info_cache`].
pub(crate) fn instance_with_info_cache_stmt(backend: DbBackend, uuid: &str) -> Result<Statement> {
    let sql = instance_with_info_cache_sql(backend)?;
    Ok(Statement::from_sql_and_values(backend, sql, [uuid.into()]))
}

/// The live instance `uuid` and its live info cache (none when it has
/// none), decoded as `I` and `C` (primitives or objects); `None` when
/// there is no such live instance.
pub(crate) async fn instance_with_info_cache<R: Reader, I: FromRow, C: FromRow>(
    db: &R,
    uuid: &str,
) -> Result<Option<(I, Option<C>)>> {
    let stmt = instance_with_info_cache_stmt(db.backend(), uuid)?;
    match db.read_one(stmt).await.map_err(db_err)? {
        Some(mut row) => decode_instance_with_info_cache(&mut row).map(Some),
        None => Ok(None),
    }
}

/// The instance and its info cache of a row of [`instance_with_info_cache`].
pub(crate) fn decode_instance_with_info_cache<W: Row, I: FromRow, C: FromRow>(
    row: &mut W,
) -> Result<(I, Option<C>)> {
    let (inst, cache) = (table("Instance")?, table("InstanceInfoCache")?);
    let base = selected(inst).count();
    let instance = I::from_row(inst, row, 0)?;
    let cache_id = row
        .i64_at(base)
        .map_err(|e| Error::Db(format!("reading {}.id: {e}", cache.name)))?;
    let info_cache = match cache_id {
        Some(_) => Some(C::from_row(cache, row, base)?),
        None => None,
    };
    Ok((instance, info_cache))
}
