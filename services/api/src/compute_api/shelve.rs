//! Shelving (nova's `API.shelve`, `shelve_offload`, `unshelve`): the
//! lock and state checks, the `<name>-shelved` snapshot image, the task
//! states SHELVING / SHELVING_OFFLOADING / UNSHELVING, the instance
//! actions, and the casts (shelve and offload to the compute, unshelve
//! to the conductor, which schedules an offloaded server again: 2.77
//! `availability_zone`, 2.91 `host` and `availability_zone: null`).

use nova_objects::{Destination, Instance, ListQuery, Lookup, RequestSpec, SaveOptions};
use nova_service::instance_actions::names;
use nova_service::notifications::{OldStates, Source};
use nova_service::states::{TaskState, VmState};
use serde_json::Map;

use super::images::{IMAGE_STATES, create_image, image_rpc_ctx};
use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::admin_ctx;

/// What an unshelve asks for.
#[derive(Debug, Default, Clone)]
pub(crate) struct UnshelveRequest {
    /// `availability_zone` given (2.77): `Some(None)` unpins (2.91).
    pub az: Option<Option<String>>,
    /// `host` (2.91, admins).
    pub host: Option<String>,
}

/// Saves `task` expecting none (409 when another action won).
async fn set_task(
    st: &ApiState,
    ctx: &Ctx,
    inst: &mut Instance,
    task: TaskState,
    action: &str,
) -> ApiResult<()> {
    let old = OldStates::of(inst);
    inst.set_task_state(Some(task.into()));
    let uuid = inst.uuid().clone();
    st.objects
        .save_with(
            &admin_ctx(),
            inst,
            &SaveOptions::expected_task_state([None::<&str>]),
        )
        .await
        .map_err(|_| {
            Fault::conflict(format!(
                "Cannot '{action}' instance {uuid}: another action is in progress"
            ))
        })?;
    st.notifier
        .instance_update(&ctx.rpc(), inst, &old, Source::Compute, &st.cfg.host)
        .await;
    Ok(())
}

fn host_of(inst: &Instance) -> ApiResult<String> {
    inst.host()
        .clone()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Fault::conflict(format!("Instance {} is not ready", inst.uuid())))
}

/// `shelve`: SHELVING, the `<name>-shelved` snapshot image, the cast.
pub(crate) async fn shelve(
    st: &ApiState,
    ctx: &Ctx,
    mut inst: Instance,
    token: Option<&str>,
) -> ApiResult<()> {
    super::check_instance_lock(ctx, &inst)?;
    super::check_instance_state(&inst, "shelve", IMAGE_STATES, &[None])?;
    let host = host_of(&inst)?;
    let name = format!(
        "{}-shelved",
        inst.display_name().clone().unwrap_or_default()
    );
    let img = create_image(st, ctx, &inst, &name, "snapshot", &Map::new())?;
    let image_id = img["id"].as_str().unwrap_or_default().to_owned();
    if !inst.system_metadata().contains_key("image_base_image_ref") {
        let base = inst.image_ref().clone();
        inst.system_metadata_mut()
            .insert("image_base_image_ref".into(), base);
    }
    if let Err(e) = set_task(st, ctx, &mut inst, TaskState::Shelving, "shelve").await {
        let _ = st.images.delete(&image_id);
        return Err(e);
    }
    super::actions::record(st, ctx, inst.uuid(), names::SHELVE).await?;
    let rpc = image_rpc_ctx(st, ctx, token);
    st.rpc
        .compute
        .shelve_instance(&rpc, &host, &inst, &Some(image_id), &Some(true), &None)
        .await
        .map_err(Fault::internal)
}

/// `shelveOffload`: a SHELVED server leaves its host.
pub(crate) async fn shelve_offload(st: &ApiState, ctx: &Ctx, mut inst: Instance) -> ApiResult<()> {
    super::check_instance_lock(ctx, &inst)?;
    super::check_instance_state(&inst, "shelveOffload", &[VmState::Shelved], &[None])?;
    let host = host_of(&inst)?;
    set_task(
        st,
        ctx,
        &mut inst,
        TaskState::ShelvingOffloading,
        "shelveOffload",
    )
    .await?;
    super::actions::record(st, ctx, inst.uuid(), names::SHELVE_OFFLOAD).await?;
    st.rpc
        .compute
        .shelve_offload_instance(&ctx.rpc(), &host, &inst, &Some(true), &None)
        .await
        .map_err(Fault::internal)
}

/// `unshelve`: UNSHELVING and the cast to the conductor (the request
/// spec's zone and destination as asked).
pub(crate) async fn unshelve(
    st: &ApiState,
    ctx: &Ctx,
    mut inst: Instance,
    r: UnshelveRequest,
    token: Option<&str>,
) -> ApiResult<()> {
    super::check_instance_lock(ctx, &inst)?;
    super::check_instance_state(
        &inst,
        "unshelve",
        &[VmState::Shelved, VmState::ShelvedOffloaded],
        &[None],
    )?;
    let uuid = inst.uuid().clone();
    let offloaded = inst.vm_state().as_deref() == Some(VmState::ShelvedOffloaded.as_str());
    if !offloaded && (r.host.is_some() || r.az.is_some()) {
        return Err(Fault::conflict(format!(
            "The unshelve request is only allowed for instances in vm_state shelved_offloaded, instance {uuid} is in vm_state {}.",
            inst.vm_state().clone().unwrap_or_default()
        )));
    }
    if let Some(h) = &r.host {
        let nodes: Vec<nova_objects::ComputeNode> = st
            .objects
            .list(&admin_ctx(), &ListQuery::new().filter("host", h.as_str()))
            .await?;
        if nodes.is_empty() {
            return Err(Fault::bad_request(format!(
                "Compute host {h} could not be found."
            )));
        }
    }
    if let Some(Some(az)) = &r.az
        && !super::create::availability_zone_exists(st, az).await?
    {
        return Err(Fault::bad_request(format!(
            "The requested availability zone is not available: {az}"
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
    if let Some(az) = &r.az {
        inst.set_availability_zone(az.clone());
        if let Some(s) = spec.as_mut() {
            s.set_availability_zone(az.clone());
        }
    }
    if let (Some(h), Some(s)) = (&r.host, spec.as_mut()) {
        s.set_requested_destination(Some(Destination::new().with_host(h.clone())));
    }
    set_task(st, ctx, &mut inst, TaskState::Unshelving, "unshelve").await?;
    if r.az.is_some()
        && let Some(s) = spec.as_mut()
    {
        // The new zone stays the server's (nova saves the spec's zone).
        let mut saved = s.clone();
        saved.set_requested_destination(None);
        let _ = st.objects.save(&admin_ctx(), &mut saved).await;
    }
    super::actions::record(st, ctx, &uuid, names::UNSHELVE).await?;
    let rpc = image_rpc_ctx(st, ctx, token);
    st.rpc
        .conductor
        .unshelve_instance(&rpc, &inst, &spec)
        .await
        .map_err(Fault::internal)
}
