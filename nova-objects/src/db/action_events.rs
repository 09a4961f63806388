//! Nova's `db.action_event_start` / `db.action_event_finish` on the
//! request's action in two statements each, where the plain object
//! operations take three and four: the action is found inside the
//! statements that write (`INSERT … SELECT`, `UPDATE … WHERE id IN`),
//! not read first. Used for callers whose request recorded the action
//! (a request id and a project); a service's own context falls back to
//! the instance's newest action through the plain operations.
//!
//! The subqueries that pick the action are wrapped in a derived table:
//! MySQL/MariaDB refuse `LIMIT` in an `IN` subquery and a subquery on
//! the table being updated, and accept both inside one.

use chrono::{NaiveDateTime, SubsecRound, Utc};
use nova_rpc::RequestContext;
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query, SelectStatement, SimpleExpr};

use crate::db::sql::db_err;
use crate::error::{Error, Result};
use crate::objects::EventOutcome;

const ACTIONS: &str = "instance_actions";
const EVENTS: &str = "instance_actions_events";

fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(0)
}

/// The request's action on the instance, if the context names one:
/// (instance uuid, request id).
pub(crate) fn request_of<'a>(
    ctx: &'a RequestContext,
    instance_uuid: &'a str,
) -> Option<(&'a str, &'a str)> {
    let rid = ctx.request_id()?;
    ctx.project_id()
        .filter(|p| !p.is_empty())
        .map(|_| (instance_uuid, rid))
}

/// `SELECT id FROM instance_actions WHERE …` the newest live action of
/// the request on the instance (nova's `_action_get_by_request_id`).
fn newest_action((uuid, rid): (&str, &str)) -> SelectStatement {
    Query::select()
        .column("id")
        .from(ACTIONS)
        .and_where(Expr::col("instance_uuid").eq(uuid))
        .and_where(Expr::col("request_id").eq(rid))
        .and_where(Expr::col("deleted").eq(0))
        .order_by("created_at", Order::Desc)
        .order_by("id", Order::Desc)
        .limit(1)
        .to_owned()
}

/// `column IN (SELECT id FROM (newest action) AS t)`.
fn is_newest_action(column: &str, req: (&str, &str)) -> SimpleExpr {
    Expr::col(column.to_owned()).in_subquery(
        Query::select()
            .column("id")
            .from_subquery(newest_action(req), Alias::new("newest_action"))
            .to_owned(),
    )
}

/// `db.action_event_start` for `req`: the event, then the action's
/// `updated_at`; `NotFound` when the request recorded no action.
pub(crate) async fn start<C: ConnectionTrait>(
    db: &C,
    req: (&str, &str),
    event: &str,
    host: Option<&str>,
) -> Result<()> {
    let at = now();
    let mut from_action = newest_action(req);
    from_action
        .clear_selects()
        .expr(Expr::val(event))
        .column("id")
        .expr(Expr::val(at))
        .expr(Expr::val(host.map(str::to_owned)))
        .expr(Expr::val(at));
    let ins = Query::insert()
        .into_table(EVENTS)
        .columns(["event", "action_id", "start_time", "host", "created_at"])
        .select_from(from_action)
        .map_err(|e| Error::Db(e.to_string()))?
        .to_owned();
    if db.execute(&ins).await.map_err(db_err)?.rows_affected() == 0 {
        return Err(not_found(req));
    }
    let upd = Query::update()
        .table(ACTIONS)
        .value("updated_at", at)
        .and_where(is_newest_action("id", req))
        .to_owned();
    db.execute(&upd).await.map_err(db_err)?;
    Ok(())
}

/// `db.action_event_finish` for `req`: the action (`updated_at`, and
/// `message` `Error` on a failure) first, as nova's one transaction
/// shows it, then the event (the first of that name on the action);
/// `NotFound` when there is no such event.
pub(crate) async fn finish<C: ConnectionTrait>(
    db: &C,
    req: (&str, &str),
    event: &str,
    outcome: &EventOutcome,
) -> Result<()> {
    let at = now();
    let mut action = Query::update();
    action
        .table(ACTIONS)
        .value("updated_at", at)
        .and_where(is_newest_action("id", req));
    if matches!(outcome, EventOutcome::Error { .. }) {
        action.value("message", "Error");
    }
    if db.execute(&action).await.map_err(db_err)?.rows_affected() == 0 {
        return Err(not_found(req));
    }
    let first_event = Query::select()
        .column("id")
        .from(EVENTS)
        .and_where(is_newest_action("action_id", req))
        .and_where(Expr::col("event").eq(event))
        .and_where(Expr::col("deleted").eq(0))
        .order_by("id", Order::Asc)
        .limit(1)
        .to_owned();
    let mut upd = Query::update();
    upd.table(EVENTS)
        .value("finish_time", at)
        .value("updated_at", at)
        .and_where(
            Expr::col("id").in_subquery(
                Query::select()
                    .column("id")
                    .from_subquery(first_event, Alias::new("first_event"))
                    .to_owned(),
            ),
        );
    match outcome {
        EventOutcome::Success => {
            upd.value("result", "Success");
        }
        EventOutcome::Error { details, traceback } => {
            upd.value("result", "Error")
                .value("details", details.as_str())
                .value("traceback", traceback.as_str());
        }
    }
    if db.execute(&upd).await.map_err(db_err)?.rows_affected() == 0 {
        return Err(Error::NotFound {
            kind: "InstanceActionEvent",
            id: format!("{event} of request {} on instance {}", req.1, req.0),
        });
    }
    Ok(())
}

fn not_found((uuid, rid): (&str, &str)) -> Error {
    Error::NotFound {
        kind: "InstanceAction",
        id: format!("for request {rid} on instance {uuid}"),
    }
}
