//! Instance actions and their events (nova's `InstanceAction.action_start`,
//! `InstanceActionEvent.event_start` / `event_finish_with_failure`, and the
//! database functions behind them): what `GET
//! /servers/{id}/os-instance-actions` shows.
//!
//! The API records an action per request (`pause`, `create`, ...); the
//! service doing the work records its events (`compute_pause_instance`)
//! on the action of the same request id, through whatever [`Objects`]
//! it holds (the compute: the conductor's object indirection). Every
//! event moves the action's `updated_at` (2.58's `changes-since`), and an
//! event that ends in `Error` marks its action's `message` `Error`.

use chrono::Utc;
use nova_objects::{
    InstanceAction, InstanceActionEvent, ListQuery, Objects, Result, SortDir, VersionedObject,
};
use nova_rpc::RequestContext;

/// Nova's `instance_actions` names of the actions this project records.
pub mod names {
    /// Boot.
    pub const CREATE: &str = "create";
    /// Delete.
    pub const DELETE: &str = "delete";
    /// Reboot (soft or hard).
    pub const REBOOT: &str = "reboot";
    /// `os-stop`.
    pub const STOP: &str = "stop";
    /// `os-start`.
    pub const START: &str = "start";
    /// Pause.
    pub const PAUSE: &str = "pause";
    /// Unpause.
    pub const UNPAUSE: &str = "unpause";
    /// Suspend.
    pub const SUSPEND: &str = "suspend";
    /// Resume.
    pub const RESUME: &str = "resume";
    /// Lock.
    pub const LOCK: &str = "lock";
    /// Unlock.
    pub const UNLOCK: &str = "unlock";
    /// `changePassword`.
    pub const CHANGE_PASSWORD: &str = "changePassword";
    /// `os-resetState`.
    pub const RESET_STATE: &str = "resetState";
    /// `trigger_crash_dump`.
    pub const TRIGGER_CRASH_DUMP: &str = "trigger_crash_dump";
    /// Rescue.
    pub const RESCUE: &str = "rescue";
    /// Unrescue.
    pub const UNRESCUE: &str = "unrescue";
    /// Restore a soft-deleted server.
    pub const RESTORE: &str = "restore";
    /// `rebuild`.
    pub const REBUILD: &str = "rebuild";
    /// `evacuate`.
    pub const EVACUATE: &str = "evacuate";
    /// `createImage`.
    pub const CREATE_IMAGE: &str = "createImage";
    /// `createBackup`.
    pub const BACKUP: &str = "createBackup";
    /// `shelve`.
    pub const SHELVE: &str = "shelve";
    /// `shelveOffload`.
    pub const SHELVE_OFFLOAD: &str = "shelveOffload";
    /// `unshelve`.
    pub const UNSHELVE: &str = "unshelve";
    /// `os-interface` attach.
    pub const ATTACH_INTERFACE: &str = "attach_interface";
    /// `os-interface` detach.
    pub const DETACH_INTERFACE: &str = "detach_interface";
}

/// Records the start of `action` on `instance_uuid` for the request of
/// `ctx` (its request id, user and project).
pub async fn action_start(
    objects: &Objects,
    ctx: &RequestContext,
    instance_uuid: &str,
    action: &str,
) -> Result<InstanceAction> {
    let now = Utc::now();
    let mut a = InstanceAction::new()
        .with_action(Some(action.to_owned()))
        .with_instance_uuid(Some(instance_uuid.to_owned()))
        .with_request_id(ctx.request_id().map(str::to_owned))
        .with_user_id(ctx.user_id().map(str::to_owned))
        .with_project_id(ctx.project_id().map(str::to_owned))
        .with_start_time(Some(now))
        .with_updated_at(Some(now));
    objects.create(&nova_objects_admin(ctx), &mut a).await?;
    Ok(a)
}

/// Records the end of an action that has no events (`os-resetState`).
pub async fn action_finish(objects: &Objects, mut action: InstanceAction) -> Result<()> {
    let now = Utc::now();
    action.set_finish_time(Some(now));
    action.set_updated_at(Some(now));
    objects.save(&crate::context::admin(), &mut action).await
}

/// The admin context the records are written with (the caller's rights
/// were checked by whoever acts), keeping the request id.
fn nova_objects_admin(ctx: &RequestContext) -> RequestContext {
    crate::context::elevated(ctx)
}

/// The action of `ctx`'s request on the instance (the newest, as nova's
/// `_action_get_by_request_id`); for a context without a project (a
/// service's own, e.g. a compute finishing at start-up what it left
/// half done) the instance's last action, which an event then does not
/// touch (`false`).
async fn find_action(
    objects: &Objects,
    ctx: &RequestContext,
    instance_uuid: &str,
) -> Result<Option<(InstanceAction, bool)>> {
    let admin = crate::context::admin();
    let newest = ListQuery::new()
        .filter("instance_uuid", instance_uuid)
        .sort("created_at", SortDir::Desc)
        .sort("id", SortDir::Desc)
        .limit(1);
    if let Some(rid) = ctx.request_id() {
        let q = newest.clone().filter("request_id", rid);
        if let Some(a) = objects
            .list::<InstanceAction>(&admin, &q)
            .await?
            .into_iter()
            .next()
        {
            return Ok(Some((a, true)));
        }
    }
    if ctx.project_id().is_none_or(str::is_empty) {
        return Ok(objects
            .list::<InstanceAction>(&admin, &newest)
            .await?
            .into_iter()
            .next()
            .map(|a| (a, false)));
    }
    Ok(None)
}

/// How an event ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `Success`.
    Success,
    /// `Error`, with the error's message (`details`) and its trace
    /// (`traceback`: the error and its causes, one a line).
    Error {
        /// The message (as the instance fault's).
        details: String,
        /// What led to it.
        traceback: String,
    },
}

impl Outcome {
    /// The outcome of `r`, an error's chain of causes as its traceback.
    pub fn of<T>(r: &anyhow::Result<T>) -> Outcome {
        match r {
            Ok(_) => Outcome::Success,
            Err(e) => Outcome::error(e),
        }
    }

    /// An `Error` outcome of `e`.
    pub fn error(e: &anyhow::Error) -> Outcome {
        let mut traceback = String::from("Traceback (most recent call last):\n");
        for (i, cause) in e.chain().enumerate() {
            traceback.push_str(&format!("  {i}: {cause}\n"));
        }
        Outcome::Error {
            details: e.to_string(),
            traceback,
        }
    }
}

/// Records the start of event `event` (`compute_pause_instance`) on
/// `host` for the action of `ctx`'s request on the instance. `None`
/// (logged by the caller) when the request recorded no action.
pub async fn event_start(
    objects: &Objects,
    ctx: &RequestContext,
    instance_uuid: &str,
    event: &str,
    host: &str,
) -> Result<Option<InstanceActionEvent>> {
    Ok(started(objects, ctx, instance_uuid, event, host)
        .await?
        .map(|s| s.event))
}

/// An event started: its action (and whether events move the action's
/// `updated_at`), and the event.
struct Started {
    action: InstanceAction,
    update: bool,
    event: InstanceActionEvent,
}

async fn started(
    objects: &Objects,
    ctx: &RequestContext,
    instance_uuid: &str,
    event: &str,
    host: &str,
) -> Result<Option<Started>> {
    let Some((mut action, update)) = find_action(objects, ctx, instance_uuid).await? else {
        return Ok(None);
    };
    let now = Utc::now();
    let mut e = InstanceActionEvent::new()
        .with_event(Some(event.to_owned()))
        .with_action_id(Some(*action.id()))
        .with_start_time(Some(now))
        .with_host(Some(host.to_owned()));
    let admin = crate::context::admin();
    objects.create(&admin, &mut e).await?;
    if update {
        action.obj_reset_changes();
        action.set_updated_at(Some(now));
        objects.save(&admin, &mut action).await?;
    }
    Ok(Some(Started {
        action,
        update,
        event: e,
    }))
}

/// Records the end of event `event` of the action of `ctx`'s request
/// (nova's `event_finish_with_failure`): `result`, `finish_time`, and
/// for an error `details`, `traceback` and the action's `message`.
pub async fn event_finish(
    objects: &Objects,
    ctx: &RequestContext,
    instance_uuid: &str,
    event: &str,
    outcome: &Outcome,
) -> Result<()> {
    let Some((action, update)) = find_action(objects, ctx, instance_uuid).await? else {
        return Ok(());
    };
    let admin = crate::context::admin();
    let q = ListQuery::new()
        .filter("action_id", *action.id())
        .filter("event", event)
        .sort("id", SortDir::Asc)
        .limit(1);
    let Some(e) = objects
        .list::<InstanceActionEvent>(&admin, &q)
        .await?
        .into_iter()
        .next()
    else {
        return Ok(());
    };
    finish(objects, action, update, e, outcome).await
}

/// Ends event `e` of `action` (what [`event_finish`] does once both are
/// found).
async fn finish(
    objects: &Objects,
    mut action: InstanceAction,
    update: bool,
    mut e: InstanceActionEvent,
    outcome: &Outcome,
) -> Result<()> {
    let admin = crate::context::admin();
    let now = Utc::now();
    e.obj_reset_changes();
    e.set_finish_time(Some(now));
    action.obj_reset_changes();
    match outcome {
        Outcome::Success => e.set_result(Some("Success".into())),
        Outcome::Error { details, traceback } => {
            e.set_result(Some("Error".into()));
            e.set_details(Some(details.clone()));
            e.set_traceback(Some(traceback.clone()));
            action.set_message(Some("Error".into()));
        }
    }
    if update {
        action.set_updated_at(Some(now));
    }
    // The action first (nova changes both in one transaction): whoever
    // sees the event finished also sees the action's message.
    if !action.obj_what_changed().is_empty() {
        objects.save(&admin, &mut action).await?;
    }
    objects.save(&admin, &mut e).await?;
    Ok(())
}

/// Runs `work` as event `event` of the request's action (nova's
/// `wrap_instance_event` / `EventReporter`): the start, then the end
/// with the work's outcome. Recording failures are logged, never the
/// work's failure.
pub async fn reported<T, F>(
    objects: &Objects,
    ctx: &RequestContext,
    instance_uuid: &str,
    event: &str,
    host: &str,
    work: F,
) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    let begun = match started(objects, ctx, instance_uuid, event, host).await {
        Ok(Some(s)) => Some(s),
        Ok(None) => {
            tracing::debug!(instance = %instance_uuid, event, "no action recorded for this request");
            None
        }
        Err(e) => {
            tracing::warn!(instance = %instance_uuid, event, error = %e, "could not record the event start");
            None
        }
    };
    let r = work.await;
    if let Some(s) = begun {
        // The action and event just written: no need to look them up again.
        let mut event_row = s.event;
        event_row.obj_reset_changes();
        if let Err(e) = finish(objects, s.action, s.update, event_row, &Outcome::of(&r)).await {
            tracing::warn!(instance = %instance_uuid, event, error = %e, "could not record the event end");
        }
    }
    r
}
