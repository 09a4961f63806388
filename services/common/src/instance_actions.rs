//! Instance actions and their events (nova's `InstanceAction.action_start`,
//! `InstanceActionEvent.event_start` / `event_finish_with_failure`, and the
//! database functions behind them): what `GET
//! /servers/{id}/os-instance-actions` shows.
//!
//! The API records an action per request (`pause`, `create`, ...); the
//! service doing the work records its events (`compute_pause_instance`)
//! on the action of the same request id, through whatever [`Objects`]
//! it holds (the compute: one call to the conductor per event start or
//! end, nova's remotable class methods; see
//! [`nova_objects::ObjectStore::action_event_start`]). Every
//! event moves the action's `updated_at` (2.58's `changes-since`), and an
//! event that ends in `Error` marks its action's `message` `Error`.

use chrono::Utc;
use nova_objects::{EventOutcome, InstanceAction, Objects, Result};
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

/// How an event ended: nova's `EventReporter` records the work's error
/// (its message as `details`, the chain of causes as `traceback`).
pub fn outcome_of<T>(r: &anyhow::Result<T>) -> EventOutcome {
    match r {
        Ok(_) => EventOutcome::Success,
        Err(e) => {
            let mut traceback = String::from("Traceback (most recent call last):\n");
            for (i, cause) in e.chain().enumerate() {
                traceback.push_str(&format!("  {i}: {cause}\n"));
            }
            EventOutcome::Error {
                details: e.to_string(),
                traceback,
            }
        }
    }
}

/// Records the start of event `event` (`compute_pause_instance`) on
/// `host` for the action of `ctx`'s request on the instance (nova's
/// `InstanceActionEvent.event_start`: one call to the conductor for a
/// compute). `Ok(false)` when the request recorded no action.
pub async fn event_start(
    objects: &Objects,
    ctx: &RequestContext,
    instance_uuid: &str,
    event: &str,
    host: &str,
) -> Result<bool> {
    not_found_as_false(
        objects
            .store()
            .action_event_start(ctx, instance_uuid, event, Some(host))
            .await,
    )
}

/// Records the end of event `event` of the action of `ctx`'s request
/// (nova's `event_finish_with_failure`): `result`, `finish_time`, and
/// for an error `details`, `traceback` and the action's `message`.
/// `Ok(false)` when there is no such action or event.
pub async fn event_finish(
    objects: &Objects,
    ctx: &RequestContext,
    instance_uuid: &str,
    event: &str,
    outcome: &EventOutcome,
) -> Result<bool> {
    not_found_as_false(
        objects
            .store()
            .action_event_finish(ctx, instance_uuid, event, outcome)
            .await,
    )
}

fn not_found_as_false(r: Result<()>) -> Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
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
    let begun = match event_start(objects, ctx, instance_uuid, event, host).await {
        Ok(true) => true,
        Ok(false) => {
            tracing::debug!(instance = %instance_uuid, event, "no action recorded for this request");
            false
        }
        Err(e) => {
            tracing::warn!(instance = %instance_uuid, event, error = %e, "could not record the event start");
            false
        }
    };
    let r = work.await;
    if begun && let Err(e) = event_finish(objects, ctx, instance_uuid, event, &outcome_of(&r)).await
    {
        tracing::warn!(instance = %instance_uuid, event, error = %e, "could not record the event end");
    }
    r
}
