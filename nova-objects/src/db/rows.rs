//! The rows reads and writes decode, whoever ran the statement: sea-orm
//! (every backend) or this crate's own SQLite connections
//! ([`super::local`]), behind one [`Row`] trait; the [`Reader`] the read
//! statements (`get`, `list`, `count`, the joined instance read) run on
//! and the [`Writer`] the writes (`create`, `save`, `destroy`) run on.

use chrono::NaiveDateTime;
use sea_orm::sea_query::QueryStatementWriter;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement};

/// One column value of a row read with SQLite's C API (its storage class).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A row: its columns by index, each read once (a text may move out).
pub(crate) trait Row {
    fn i64_at(&mut self, idx: usize) -> Result<Option<i64>, String>;
    fn f64_at(&mut self, idx: usize) -> Result<Option<f64>, String>;
    fn bool_at(&mut self, idx: usize) -> Result<Option<bool>, String>;
    fn text_at(&mut self, idx: usize) -> Result<Option<String>, String>;
    fn datetime_at(&mut self, idx: usize) -> Result<Option<NaiveDateTime>, String>;
}

impl Row for QueryResult {
    fn i64_at(&mut self, idx: usize) -> Result<Option<i64>, String> {
        self.try_get_by_index(idx).map_err(|e| e.to_string())
    }
    fn f64_at(&mut self, idx: usize) -> Result<Option<f64>, String> {
        self.try_get_by_index(idx).map_err(|e| e.to_string())
    }
    fn bool_at(&mut self, idx: usize) -> Result<Option<bool>, String> {
        self.try_get_by_index(idx).map_err(|e| e.to_string())
    }
    fn text_at(&mut self, idx: usize) -> Result<Option<String>, String> {
        self.try_get_by_index(idx).map_err(|e| e.to_string())
    }
    fn datetime_at(&mut self, idx: usize) -> Result<Option<NaiveDateTime>, String> {
        self.try_get_by_index(idx).map_err(|e| e.to_string())
    }
}

/// The text formats a SQLite datetime may have, most likely first (the
/// list and order sqlx decodes with; sqlx writes the first).
const DATETIME_FORMATS: &[&str] = &[
    "%F %T%.f",
    "%F %R",
    "%F %RZ",
    "%F %R%:z",
    "%F %T%.fZ",
    "%F %T%.f%:z",
    "%FT%R",
    "%FT%RZ",
    "%FT%R%:z",
    "%FT%T%.f",
    "%FT%T%.fZ",
    "%FT%T%.f%:z",
];

/// A datetime stored as text (UTC, or with an offset converted to UTC),
/// as sqlx reads one.
pub(crate) fn parse_sqlite_datetime(s: &str) -> Option<NaiveDateTime> {
    if let Some(t) = parse_written(s) {
        return Some(t);
    }
    DATETIME_FORMATS.iter().find_map(|f| {
        chrono::DateTime::parse_from_str(s, f)
            .map(|d| d.naive_utc())
            .or_else(|_| NaiveDateTime::parse_from_str(s, f))
            .ok()
    })
}

/// The form the writes store (`%F %T%.f`: `YYYY-MM-DD HH:MM:SS`, then
/// `.` and 1–9 digits or nothing), read without chrono's format parser
/// (which parses the format string on every call); anything else is
/// `None`, for the general list.
fn parse_written(s: &str) -> Option<NaiveDateTime> {
    use crate::field::{date_time_prefix, digits};
    let (t, rest) = date_time_prefix(s, b' ')?;
    let nanos = match rest {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
            digits(frac)? * 10u32.pow(9 - u32::try_from(frac.len()).ok()?)
        }
        _ => return None,
    };
    chrono::Timelike::with_nanosecond(&t, nanos)
}

fn kind(c: &Cell) -> &'static str {
    match c {
        Cell::Null => "NULL",
        Cell::Int(_) => "INTEGER",
        Cell::Real(_) => "REAL",
        Cell::Text(_) => "TEXT",
        Cell::Blob(_) => "BLOB",
    }
}

/// A row of a SQLite read connection, or one the pool read instead.
#[derive(Debug)]
pub(crate) enum ReadRow {
    Cells(Vec<Cell>),
    Pool(QueryResult),
}

type Got<T> = Result<Option<T>, String>;

impl ReadRow {
    /// Column `idx`: from a pool row by `pool`, from a cell by `cell`
    /// (NULL is `None` for every type).
    fn at<T>(
        &mut self,
        idx: usize,
        pool: fn(&mut QueryResult, usize) -> Got<T>,
        cell: impl FnOnce(&mut Cell) -> Result<T, String>,
    ) -> Got<T> {
        let cells = match self {
            ReadRow::Pool(r) => return pool(r, idx),
            ReadRow::Cells(c) => c,
        };
        let n = cells.len();
        match cells.get_mut(idx) {
            None => Err(format!("column {idx} of a row of {n}")),
            Some(Cell::Null) => Ok(None),
            Some(c) => cell(c).map(Some),
        }
    }
}

fn wrong(c: &Cell, want: &str) -> String {
    format!("a {} value where {want} was expected", kind(c))
}

impl Row for ReadRow {
    fn i64_at(&mut self, idx: usize) -> Got<i64> {
        self.at(idx, Row::i64_at, |c| match c {
            Cell::Int(i) => Ok(*i),
            c => Err(wrong(c, "an integer")),
        })
    }
    fn f64_at(&mut self, idx: usize) -> Got<f64> {
        self.at(idx, Row::f64_at, |c| match c {
            Cell::Real(f) => Ok(*f),
            #[allow(clippy::cast_precision_loss)]
            Cell::Int(i) => Ok(*i as f64),
            c => Err(wrong(c, "a number")),
        })
    }
    fn bool_at(&mut self, idx: usize) -> Got<bool> {
        self.at(idx, Row::bool_at, |c| match c {
            Cell::Int(i) => Ok(*i != 0),
            c => Err(wrong(c, "a boolean")),
        })
    }
    fn text_at(&mut self, idx: usize) -> Got<String> {
        self.at(idx, Row::text_at, |c| match c {
            Cell::Text(s) => Ok(std::mem::take(s)),
            c => Err(wrong(c, "text")),
        })
    }
    fn datetime_at(&mut self, idx: usize) -> Got<NaiveDateTime> {
        self.at(idx, Row::datetime_at, |c| match c {
            Cell::Text(s) => {
                parse_sqlite_datetime(s).ok_or_else(|| format!("invalid datetime: {s}"))
            }
            Cell::Int(secs) => chrono::DateTime::from_timestamp(*secs, 0)
                .map(|d| d.naive_utc())
                .ok_or_else(|| format!("invalid datetime: {secs}")),
            c => Err(wrong(c, "a datetime")),
        })
    }
}

/// Where the read statements run: any sea-orm connection, or a SQLite
/// file's read connections.
#[async_trait::async_trait]
pub(crate) trait Reader: Sync {
    type Row: Row + Send;
    fn backend(&self) -> DbBackend;
    async fn read_one(&self, stmt: Statement) -> Result<Option<Self::Row>, DbErr>;
    async fn read_all(&self, stmt: Statement) -> Result<Vec<Self::Row>, DbErr>;
}

#[async_trait::async_trait]
impl<C: ConnectionTrait + Sync> Reader for C {
    type Row = QueryResult;
    fn backend(&self) -> DbBackend {
        self.get_database_backend()
    }
    async fn read_one(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.query_one_raw(stmt).await
    }
    async fn read_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.query_all_raw(stmt).await
    }
}

/// What a write without `RETURNING` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    /// Rows it changed.
    pub changed: u64,
    /// The id of the row it inserted (what MySQL, which returns no rows,
    /// reads back by); PostgreSQL reports none.
    pub last_id: Option<u64>,
}

/// Where the write statements run: any sea-orm connection, or a SQLite
/// file's write connection. Each is one autocommit statement.
#[async_trait::async_trait]
pub(crate) trait Writer: Reader {
    /// A write with `RETURNING`: the first row it returned.
    async fn write_returning(&self, stmt: Statement) -> Result<Option<Self::Row>, DbErr>;
    /// A write without `RETURNING`.
    async fn write(&self, stmt: Statement) -> Result<Written, DbErr>;
}

#[async_trait::async_trait]
impl<C: ConnectionTrait + Sync> Writer for C {
    async fn write_returning(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.query_one_raw(stmt).await
    }
    async fn write(&self, stmt: Statement) -> Result<Written, DbErr> {
        let r = self.execute_raw(stmt).await?;
        Ok(Written {
            changed: r.rows_affected(),
            // sea-orm panics when asked for PostgreSQL's.
            last_id: (self.get_database_backend() != DbBackend::Postgres)
                .then(|| r.last_insert_id()),
        })
    }
}

/// `q` built for `r`'s backend.
pub(crate) fn build<R: Reader + ?Sized>(r: &R, q: &impl QueryStatementWriter) -> Statement {
    let (sql, values) = match r.backend() {
        DbBackend::Postgres => q.build(sea_orm::sea_query::PostgresQueryBuilder),
        DbBackend::MySql => q.build(sea_orm::sea_query::MysqlQueryBuilder),
        _ => q.build(sea_orm::sea_query::SqliteQueryBuilder),
    };
    Statement::from_sql_and_values(r.backend(), sql, values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike as _;

    #[test]
    fn datetimes_read_as_sqlx_reads_them() {
        let want = chrono::NaiveDate::from_ymd_opt(2026, 12, 7)
            .and_then(|d| d.and_hms_micro_opt(17, 30, 5, 123_456))
            .unwrap();
        // What sqlx writes, and what SQLite's own functions and other
        // writers may have left.
        assert_eq!(
            parse_sqlite_datetime("2026-12-07 17:30:05.123456"),
            Some(want)
        );
        assert_eq!(
            parse_sqlite_datetime("2026-12-07T17:30:05.123456Z"),
            Some(want)
        );
        assert_eq!(
            parse_sqlite_datetime("2026-12-07 18:30:05.123456+01:00"),
            Some(want)
        );
        assert_eq!(
            parse_sqlite_datetime("2026-12-07 17:30"),
            want.with_second(0).and_then(|d| d.with_nanosecond(0))
        );
        assert_eq!(parse_sqlite_datetime("yesterday"), None);
        // The written form's own reader agrees with chrono's on it, and
        // leaves everything else to the list.
        for s in [
            "2026-12-07 17:30:05",
            "2026-12-07 17:30:05.1",
            "2026-12-07 17:30:05.123456",
            "2026-12-07 17:30:05.123456789",
            "0001-01-01 00:00:00.000001",
        ] {
            let chrono = NaiveDateTime::parse_from_str(s, "%F %T%.f").ok();
            assert!(chrono.is_some(), "{s}");
            assert_eq!(parse_written(s), chrono, "{s}");
        }
        for s in [
            "2026-12-07 17:30",
            "2026-12-07 17:30:05.",
            "2026-12-07 17:30:05.1234567891",
            "2026-12-07 17:30:05Z",
            "2026-13-07 17:30:05",
            "2026-12-07 24:30:05",
            "2026-12-07 17:30:60",
            "2026-12-0x 17:30:05",
            "+026-12-07 17:30:05",
        ] {
            assert_eq!(parse_written(s), None, "{s}");
        }
        let mut row = ReadRow::Cells(vec![
            Cell::Text("2026-12-07 17:30:05.123456".into()),
            Cell::Int(1),
            Cell::Null,
            Cell::Real(1.5),
        ]);
        assert_eq!(row.datetime_at(0), Ok(Some(want)));
        assert_eq!(row.bool_at(1), Ok(Some(true)));
        assert_eq!(row.i64_at(1), Ok(Some(1)));
        assert_eq!(row.text_at(2), Ok(None));
        assert_eq!(row.f64_at(3), Ok(Some(1.5)));
        assert!(row.i64_at(3).is_err(), "a REAL is not an integer");
        assert!(row.text_at(9).is_err(), "no such column");
    }
}
