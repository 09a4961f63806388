//! How database failures become Placement errors.

use nova_scheduler::placement::PlacementError;
use sea_orm::DbErr;

/// A database failure as a Placement error.
pub(crate) fn db(e: DbErr) -> PlacementError {
    // Database failures surface as conflicts: the caller may retry.
    PlacementError::ConcurrentUpdate(format!("placement database: {e}"))
}
