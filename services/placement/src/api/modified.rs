//! `Last-Modified` as Placement computes it per handler (from 1.15): the
//! newest `updated_at or created_at` of the rows a read returns
//! (`util.pick_last_modified`), now where Placement uses now (usages,
//! aggregates, allocation candidates, the root, objects just built), and
//! no header where Placement's value is `None` (a provider's inventories
//! when it has none; a trait or provider row without the time asked).

use axum::http::{HeaderValue, header};
use axum::response::Response;
use chrono::{DateTime, Utc};

use super::{ApiError, Mv, St, http_date};
use crate::Stamped;

/// The newest time of the rows `of` names; `None` when there are none.
/// A store that keeps no times answers now.
pub(crate) async fn newest(st: &St, of: Stamped<'_>) -> Result<Option<DateTime<Utc>>, ApiError> {
    Ok(match st.placement.times_async(of).await? {
        Some(rows) => crate::Times::last_modified(&rows),
        None => Some(Utc::now()),
    })
}

/// [`newest`], or now for no rows (Placement's `last_modified or
/// utcnow()` of its lists).
pub(crate) async fn newest_or_now(st: &St, of: Stamped<'_>) -> Result<DateTime<Utc>, ApiError> {
    Ok(newest(st, of).await?.unwrap_or_else(Utc::now))
}

/// Marks a read answer from 1.15: `Cache-Control: no-cache` and
/// `Last-Modified: at` (none when `at` is `None`, as webob drops a `None`).
pub(crate) fn fresh_at(mut r: Response, v: Mv, at: Option<DateTime<Utc>>) -> Response {
    if v.at(15) {
        let h = r.headers_mut();
        if let Some(at) = at
            && let Ok(x) = HeaderValue::from_str(&http_date(at))
        {
            h.insert(header::LAST_MODIFIED, x);
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    r
}
