//! Evacuating a server from a failed host (nova's `API.evacuate`): the
//! states (ACTIVE, STOPPED or ERROR, no task), the source compute down
//! (or forced down, 2.11 `os-services`), task REBUILDING, the instance
//! action, an `accepted` Migration of type `evacuation` (the tombstone
//! the source compute cleans up after when it comes back), and the
//! conductor's `rebuild_instance` with `recreate`: the named host when
//! forced (≤ 2.67 `force`), else the scheduler (with the named host as
//! the requested destination).

use nova_objects::{Destination, Instance, ListQuery, Lookup, Migration, RequestSpec, SaveOptions};
use nova_service::instance_actions::names;
use nova_service::notifications::{OldStates, Source};
use nova_service::states::{TaskState, VmState};
use serde_json::Value;

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::admin_ctx;

/// What an evacuation asks for.
#[derive(Debug, Default, Clone)]
pub(crate) struct EvacuateRequest {
    /// `host`.
    pub host: Option<String>,
    /// `onSharedStorage` (≤ 2.13).
    pub on_shared_storage: Option<bool>,
    /// `adminPass`.
    pub password: Option<String>,
    /// `force` (2.29–2.67).
    pub force: bool,
    /// `stopped` from 2.95.
    pub target_state: Option<String>,
}

/// Nova's `API.evacuate`.
pub(crate) async fn evacuate(
    st: &ApiState,
    ctx: &Ctx,
    mut inst: Instance,
    r: EvacuateRequest,
) -> ApiResult<()> {
    let uuid = inst.uuid().clone();
    if let Some(h) = &r.host {
        let nodes: Vec<nova_objects::ComputeNode> = st
            .objects
            .list(&admin_ctx(), &ListQuery::new().filter("host", h.as_str()))
            .await?;
        if nodes.is_empty() {
            return Err(Fault::not_found(format!("Compute host {h} not found.")));
        }
        if inst.host().as_ref() == Some(h) {
            return Err(Fault::bad_request("The target host can't be the same one."));
        }
    }
    super::check_instance_state(
        &inst,
        "evacuate",
        &[VmState::Active, VmState::Stopped, VmState::Error],
        &[None],
    )?;
    let source = inst.host().clone().unwrap_or_default();
    let services: Vec<nova_objects::Service> = st
        .objects
        .list(
            &admin_ctx(),
            &ListQuery::new()
                .filter("host", source.as_str())
                .filter("binary", "nova-compute"),
        )
        .await?;
    let down = std::time::Duration::from_secs(st.cfg.service_down_time.as_secs());
    if services
        .iter()
        .any(|s| nova_service::is_up(s, down, chrono::Utc::now()))
    {
        return Err(Fault::bad_request(format!(
            "Compute service of {source} is still in use."
        )));
    }
    let mut spec: Option<RequestSpec> = match st
        .objects
        .get(&admin_ctx(), Lookup::field("instance_uuid", uuid.as_str()))
        .await
    {
        Ok(s) => Some(s),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    let old = OldStates::of(&inst);
    inst.set_task_state(Some(TaskState::Rebuilding.into()));
    st.objects
        .save_with(
            &admin_ctx(),
            &mut inst,
            &SaveOptions::expected_task_state([None::<&str>]),
        )
        .await
        .map_err(|_| {
            Fault::conflict(format!(
                "Cannot 'evacuate' instance {uuid}: another action is in progress"
            ))
        })?;
    super::actions::record(st, ctx, &uuid, names::EVACUATE).await?;
    let rpc = ctx.rpc();
    st.notifier
        .instance_update(&rpc, &inst, &old, Source::Compute, &st.cfg.host)
        .await;
    let mut migration = Migration::new()
        .with_uuid(uuid::Uuid::new_v4().to_string())
        .with_source_compute(Some(source.clone()))
        .with_source_node(inst.node().clone())
        .with_instance_uuid(Some(uuid.clone()))
        .with_status(Some("accepted".into()))
        .with_migration_type("evacuation")
        .with_hidden(false)
        .with_cross_cell_move(false)
        .with_user_id(inst.user_id().clone())
        .with_project_id(inst.project_id().clone())
        .with_dest_compute(r.host.clone());
    st.objects.create(&admin_ctx(), &mut migration).await?;
    st.notifier
        .instance_action_from(
            &rpc,
            &inst,
            Source::Api,
            &st.cfg.host,
            "evacuate",
            None::<nova_service::notifications::Phase>,
            None,
        )
        .await;
    let mut host = r.host.clone();
    if !r.force
        && let Some(h) = host.take()
        && let Some(s) = spec.as_mut()
    {
        s.set_requested_destination(Some(Destination::new().with_host(h)));
    }
    st.rpc
        .conductor
        .rebuild_instance(
            &rpc,
            &inst,
            &r.password,
            &None,
            &None,
            &None,
            &Value::Null,
            &None,
            &true,
            &r.on_shared_storage,
            &false,
            &host,
            &spec,
            &Some(false),
            &r.target_state,
        )
        .await
        .map_err(Fault::internal)
}
