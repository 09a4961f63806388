//! Nova's `InstanceAction`, `InstanceActionList`, `InstanceActionEvent`, `InstanceActionEventList` objects (fields, types and versions as in nova 34).

use crate::{DateTime, nova_object};

/// Nova's `InstanceAction` object (version 1.2).
#[nova_object(name = "InstanceAction", version = "1.2")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceAction {
    id: i64,
    action: Option<String>,
    #[field(kind = "UUID")]
    instance_uuid: Option<String>,
    request_id: Option<String>,
    user_id: Option<String>,
    project_id: Option<String>,
    start_time: Option<DateTime>,
    finish_time: Option<DateTime>,
    message: Option<String>,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}

/// Nova's `InstanceActionList` object (version 1.1).
#[nova_object(name = "InstanceActionList", version = "1.1", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceActionList {
    objects: Vec<InstanceAction>,
}

/// Nova's `InstanceActionEvent` object (version 1.4).
#[nova_object(name = "InstanceActionEvent", version = "1.4")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceActionEvent {
    id: i64,
    event: Option<String>,
    action_id: Option<i64>,
    start_time: Option<DateTime>,
    finish_time: Option<DateTime>,
    result: Option<String>,
    traceback: Option<String>,
    #[field(since = "1.2")]
    host: Option<String>,
    #[field(since = "1.4")]
    details: Option<String>,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}

/// Nova's `InstanceActionEventList` object (version 1.1).
#[nova_object(name = "InstanceActionEventList", version = "1.1", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceActionEventList {
    objects: Vec<InstanceActionEvent>,
}

/// How an action's event ended: what nova's
/// `InstanceActionEvent.event_finish_with_failure` records (`result`,
/// and for a failure `details` and `traceback`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// `Success`.
    Success,
    /// `Error`, with the error's message (`details`, as the instance
    /// fault's) and what led to it (`traceback`).
    Error {
        /// The message.
        details: String,
        /// The trace.
        traceback: String,
    },
}

/// Nova's remotable class methods of `InstanceActionEvent` over any
/// store's plain operations (`db.action_event_start` /
/// `db.action_event_finish`): what [`crate::ObjectStore`]'s
/// `action_event_start` / `action_event_finish` do unless a store has
/// a shorter way (the conductor's: one call).
pub(crate) mod db {
    use chrono::Utc;
    use nova_rpc::RequestContext;
    use serde_json::Value;

    use super::{EventOutcome, InstanceAction, InstanceActionEvent};
    use crate::error::{Error, Result};
    use crate::object::VersionedObject;
    use crate::primitive::from_value_owned;
    use crate::store::{ListQuery, ObjectStore, SaveOptions, SortDir};

    /// The records are the service's own: the caller's rights were
    /// checked by whoever acts (its user, project and request id kept).
    fn elevated(ctx: &RequestContext) -> RequestContext {
        ctx.clone().with_admin(true)
    }

    /// The action of `ctx`'s request on the instance (nova's
    /// `_action_get_by_request_id`: the newest with that request id);
    /// for a context without a project (a service's own, e.g. a compute
    /// finishing at start-up what it left half done) the instance's
    /// newest action, which the event then does not touch (`false`).
    async fn find_action<S: ObjectStore + ?Sized>(
        store: &S,
        ctx: &RequestContext,
        instance_uuid: &str,
    ) -> Result<(InstanceAction, bool)> {
        let admin = elevated(ctx);
        let newest = ListQuery::new()
            .filter("instance_uuid", instance_uuid)
            .sort("created_at", SortDir::Desc)
            .sort("id", SortDir::Desc)
            .limit(1);
        if let Some(rid) = ctx.request_id() {
            let q = newest.clone().filter("request_id", rid);
            if let Some(a) = store.list(&admin, InstanceAction::NAME, &q).await?.pop() {
                return Ok((from_value_owned(a)?, true));
            }
        }
        if ctx.project_id().is_none_or(str::is_empty)
            && let Some(a) = store
                .list(&admin, InstanceAction::NAME, &newest)
                .await?
                .pop()
        {
            return Ok((from_value_owned(a)?, false));
        }
        Err(Error::NotFound {
            kind: InstanceAction::NAME,
            id: format!(
                "for request {} on instance {instance_uuid}",
                ctx.request_id().unwrap_or("-")
            ),
        })
    }

    async fn save<S: ObjectStore + ?Sized, T: VersionedObject>(
        store: &S,
        ctx: &RequestContext,
        obj: &T,
    ) -> Result<Value> {
        store
            .save(ctx, obj.obj_to_primitive(), &SaveOptions::default())
            .await
    }

    /// `db.action_event_start`: an event on the request's action (whose
    /// `updated_at` it moves); `NotFound` when the request recorded no
    /// action.
    pub(crate) async fn event_start<S: ObjectStore + ?Sized>(
        store: &S,
        ctx: &RequestContext,
        instance_uuid: &str,
        event: &str,
        host: Option<&str>,
    ) -> Result<()> {
        let (mut action, update) = find_action(store, ctx, instance_uuid).await?;
        let admin = elevated(ctx);
        let now = Utc::now();
        let e = InstanceActionEvent::new()
            .with_event(Some(event.to_owned()))
            .with_action_id(Some(*action.id()))
            .with_start_time(Some(now))
            .with_host(host.map(str::to_owned));
        store.create(&admin, e.obj_to_primitive()).await?;
        if update {
            action.obj_reset_changes();
            action.set_updated_at(Some(now));
            save(store, &admin, &action).await?;
        }
        Ok(())
    }

    /// `db.action_event_finish`: the request's event `event` ends with
    /// `outcome` (a failure also marks the action's `message` `Error`);
    /// `NotFound` when there is no such action or event.
    pub(crate) async fn event_finish<S: ObjectStore + ?Sized>(
        store: &S,
        ctx: &RequestContext,
        instance_uuid: &str,
        event: &str,
        outcome: &EventOutcome,
    ) -> Result<()> {
        let (mut action, update) = find_action(store, ctx, instance_uuid).await?;
        let admin = elevated(ctx);
        let q = ListQuery::new()
            .filter("action_id", *action.id())
            .filter("event", event)
            .sort("id", SortDir::Asc)
            .limit(1);
        let Some(e) = store
            .list(&admin, InstanceActionEvent::NAME, &q)
            .await?
            .pop()
        else {
            return Err(Error::NotFound {
                kind: InstanceActionEvent::NAME,
                id: format!("{event} of action {}", action.id()),
            });
        };
        let mut e: InstanceActionEvent = from_value_owned(e)?;
        let now = Utc::now();
        e.obj_reset_changes();
        action.obj_reset_changes();
        e.set_finish_time(Some(now));
        match outcome {
            EventOutcome::Success => e.set_result(Some("Success".into())),
            EventOutcome::Error { details, traceback } => {
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
            save(store, &admin, &action).await?;
        }
        save(store, &admin, &e).await?;
        Ok(())
    }
}
