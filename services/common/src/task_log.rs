//! The periodic tasks' log (nova's `task_log` table, `TaskLog` /
//! `TaskLogList` objects and the database functions behind them:
//! `task_log_get`, `task_log_get_all`, `task_log_begin_task`,
//! `task_log_end_task`). A task records one row per (task, host, period):
//! `RUNNING` when it begins, `DONE` with its error count when it ends.
//!
//! Through whatever [`Objects`] the caller holds: the compute's go through
//! the conductor's object indirection, the API's to the database.

use chrono::NaiveDateTime;
use nova_objects::{Error, ListQuery, Objects, Result, SortDir, TaskLog};
use nova_rpc::RequestContext;

/// The usage audit's task name.
pub const INSTANCE_USAGE_AUDIT: &str = "instance_usage_audit";

/// A task's state while it runs.
pub const RUNNING: &str = "RUNNING";
/// A task's state once it ended.
pub const DONE: &str = "DONE";

fn period_query(
    task_name: &str,
    begin: NaiveDateTime,
    end: NaiveDateTime,
    host: Option<&str>,
    state: Option<&str>,
) -> ListQuery {
    let mut q = ListQuery::new()
        .filter("task_name", task_name)
        .filter(
            "period_beginning",
            nova_objects::field::format_datetime(&begin.and_utc()),
        )
        .filter(
            "period_ending",
            nova_objects::field::format_datetime(&end.and_utc()),
        )
        .sort("id", SortDir::Asc);
    if let Some(h) = host {
        q = q.filter("host", h);
    }
    if let Some(s) = state {
        q = q.filter("state", s);
    }
    q
}

/// The log of `task_name` over `[begin, end)` on `host` (nova's
/// `TaskLog.get`), in `state` if given.
pub async fn task_log_get(
    objects: &Objects,
    ctx: &RequestContext,
    task_name: &str,
    (begin, end): (NaiveDateTime, NaiveDateTime),
    host: &str,
    state: Option<&str>,
) -> Result<Option<TaskLog>> {
    let q = period_query(task_name, begin, end, Some(host), state).limit(1);
    Ok(objects.list::<TaskLog>(ctx, &q).await?.into_iter().next())
}

/// Every host's log of `task_name` over `[begin, end)` (nova's
/// `TaskLogList.get_all`), optionally of one host or in one state.
pub async fn task_log_get_all(
    objects: &Objects,
    ctx: &RequestContext,
    task_name: &str,
    (begin, end): (NaiveDateTime, NaiveDateTime),
    host: Option<&str>,
    state: Option<&str>,
) -> Result<Vec<TaskLog>> {
    let q = period_query(task_name, begin, end, host, state);
    objects.list::<TaskLog>(ctx, &q).await
}

/// Marks `task_name` started on `host` for the period (nova's
/// `TaskLog.begin_task`): a `RUNNING` row with the number of items it
/// will handle. A second begin of the same period on the same host fails
/// (nova's `TaskAlreadyRunning`).
pub async fn task_log_begin_task(
    objects: &Objects,
    ctx: &RequestContext,
    task_name: &str,
    (begin, end): (NaiveDateTime, NaiveDateTime),
    host: &str,
    task_items: i64,
    message: &str,
) -> Result<TaskLog> {
    let mut log = TaskLog::new()
        .with_task_name(task_name.to_owned())
        .with_state(RUNNING.to_owned())
        .with_host(host.to_owned())
        .with_period_beginning(begin.and_utc())
        .with_period_ending(end.and_utc())
        .with_task_items(task_items)
        .with_errors(0)
        .with_message(message.to_owned());
    match objects.create(ctx, &mut log).await {
        Ok(()) => Ok(log),
        Err(Error::Exists { .. }) => Err(Error::ObjectAction {
            action: "begin_task".into(),
            reason: format!("Task {task_name} is already running on host {host}"),
        }),
        Err(e) => Err(e),
    }
}

/// Marks `task_name` ended on `host` for the period with its `errors`
/// (nova's `TaskLog.end_task`): the row goes `DONE`, its message replaced
/// when one is given. Ending a task that never began fails (nova's
/// `TaskNotRunning`).
pub async fn task_log_end_task(
    objects: &Objects,
    ctx: &RequestContext,
    task_name: &str,
    period: (NaiveDateTime, NaiveDateTime),
    host: &str,
    errors: i64,
    message: Option<&str>,
) -> Result<TaskLog> {
    let Some(mut log) = task_log_get(objects, ctx, task_name, period, host, None).await? else {
        return Err(Error::ObjectAction {
            action: "end_task".into(),
            reason: format!("Task {task_name} is not running on host {host}"),
        });
    };
    log.set_state(DONE.to_owned());
    log.set_errors(errors);
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        log.set_message(m.to_owned());
    }
    objects.save(ctx, &mut log).await?;
    Ok(log)
}
