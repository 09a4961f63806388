//! How database failures become Placement errors: a lost race (deadlock,
//! serialization failure, a lock not granted, a key taken by a concurrent
//! writer) is a `ConcurrentUpdate`,
//! which callers retry; anything else — the database unreachable, the
//! pool closed or exhausted, a statement failing — is `Unavailable`, an
//! outage a retry at once will not cure.

use nova_scheduler::placement::PlacementError;
use sea_orm::{DbErr, RuntimeErr, SqlErr};

/// What a database error means for Placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Lost to a concurrent transaction: retrying may succeed.
    Race,
    /// A unique key already taken.
    Duplicate,
    /// The database cannot serve.
    Outage,
}

/// Classifies `e`.
pub(crate) fn classify(e: &DbErr) -> Failure {
    if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
        return Failure::Duplicate;
    }
    let (DbErr::Exec(RuntimeErr::SqlxError(x)) | DbErr::Query(RuntimeErr::SqlxError(x))) = e else {
        return Failure::Outage;
    };
    let sea_orm::sqlx::Error::Database(d) = &**x else {
        return Failure::Outage; // I/O, TLS, protocol, pool: the link
    };
    let code = d.code().unwrap_or_default();
    // SQLSTATE class 40 (PostgreSQL 40001 serialization failure, 40P01
    // deadlock; MySQL 1213 deadlock is 40001); SQLite BUSY (5) and LOCKED
    // (6), extended codes included; MySQL 1205 lock wait timeout (HY000).
    let sqlite_busy = code.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6));
    if code.starts_with("40") || sqlite_busy || d.message().contains("Lock wait timeout") {
        Failure::Race
    } else {
        Failure::Outage
    }
}

/// A database failure as a Placement error.
pub(crate) fn db(e: DbErr) -> PlacementError {
    match classify(&e) {
        // A key taken under a check that passed: a concurrent writer.
        Failure::Race | Failure::Duplicate => {
            PlacementError::ConcurrentUpdate(format!("placement database: {e}"))
        }
        Failure::Outage => unavailable(e),
    }
}

/// An outage.
pub(crate) fn unavailable(e: impl std::fmt::Display) -> PlacementError {
    PlacementError::Unavailable(format!("placement database unavailable: {e}"))
}
