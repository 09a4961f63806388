//! A server's instance actions and their events (nova's
//! `InstanceActionAPI`): newest first, paged by request id, filtered on
//! `updated_at`.

use nova_objects::{
    Instance, InstanceAction, InstanceActionEvent, ListQuery, SortDir, VersionedObject,
};

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::admin_ctx;

/// The server `id` as `ctx` may see it; deleted ones too when
/// `with_deleted` (2.21).
pub(crate) async fn instance(
    st: &ApiState,
    ctx: &Ctx,
    id: &str,
    with_deleted: bool,
) -> ApiResult<Instance> {
    if !with_deleted {
        return super::get(st, ctx, id).await;
    }
    let not_found = || Fault::not_found(format!("Instance {id} could not be found."));
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found());
    }
    let mut rctx = admin_ctx();
    rctx.set("read_deleted", "yes");
    let inst = match st.objects.get_by_uuid::<Instance>(&rctx, id).await {
        Ok(i) => i,
        Err(e) if e.is_not_found() => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    if !ctx.is_admin() && inst.project_id().as_deref() != Some(ctx.project_id.as_str()) {
        return Err(not_found());
    }
    Ok(inst)
}

/// What a list asks for (2.58, 2.66).
#[derive(Debug, Default, Clone)]
pub(crate) struct ActionsQuery {
    /// Page size (none: every action, before 2.58).
    pub limit: Option<u64>,
    /// The request id of the last action of the previous page.
    pub marker: Option<String>,
    /// `updated_at` at or after.
    pub changes_since: Option<chrono::DateTime<chrono::Utc>>,
    /// `updated_at` at or before.
    pub changes_before: Option<chrono::DateTime<chrono::Utc>>,
}

/// The action of request `request_id` on the instance (the newest).
pub(crate) async fn by_request_id(
    st: &ApiState,
    instance_uuid: &str,
    request_id: &str,
) -> ApiResult<Option<InstanceAction>> {
    let q = ListQuery::new()
        .filter("instance_uuid", instance_uuid)
        .filter("request_id", request_id)
        .sort("created_at", SortDir::Desc)
        .sort("id", SortDir::Desc)
        .limit(1);
    Ok(st
        .objects
        .list::<InstanceAction>(&admin_ctx(), &q)
        .await?
        .into_iter()
        .next())
}

/// The instance's actions, newest first (400 for an unknown marker).
pub(crate) async fn list(
    st: &ApiState,
    instance_uuid: &str,
    r: &ActionsQuery,
) -> ApiResult<Vec<InstanceAction>> {
    if r.limit == Some(0) {
        return Ok(Vec::new());
    }
    let mut q = ListQuery::new()
        .filter("instance_uuid", instance_uuid)
        .sort("created_at", SortDir::Desc)
        .sort("id", SortDir::Desc);
    if let Some(m) = &r.marker {
        let Some(a) = by_request_id(st, instance_uuid, m).await? else {
            return Err(Fault::bad_request(format!(
                "Marker {m} could not be found."
            )));
        };
        q = q.marker(a.id().to_string());
    }
    for (key, at) in [
        ("changes-since", r.changes_since),
        ("changes-before", r.changes_before),
    ] {
        if let Some(at) = at {
            q = q.filter(key, at.to_rfc3339());
        }
    }
    if let Some(l) = r.limit {
        q = q.limit(l);
    }
    Ok(st.objects.list(&admin_ctx(), &q).await?)
}

/// The events of an action, in the order they started.
pub(crate) async fn events(
    st: &ApiState,
    action: &InstanceAction,
) -> ApiResult<Vec<InstanceActionEvent>> {
    let q = ListQuery::new()
        .filter("action_id", *action.id())
        .sort("created_at", SortDir::Asc)
        .sort("id", SortDir::Asc);
    let mut ev: Vec<InstanceActionEvent> = st.objects.list(&admin_ctx(), &q).await?;
    for e in &mut ev {
        e.obj_reset_changes();
    }
    Ok(ev)
}
