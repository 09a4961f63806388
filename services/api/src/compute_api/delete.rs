//! Deleting servers (nova's `API.delete`): a cast to the instance's
//! compute, or a local delete when no compute holds it (never scheduled,
//! buried in cell0) or its compute is down.

use nova_objects::{BuildRequest, Instance, ListQuery, Lookup, Service, VersionedObject};
use nova_rpc::RequestContext;
use nova_service::notifications::{OldStates, Phase, Source};
use nova_service::states::{TaskState, VmState};

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::admin_ctx;

/// Whether the compute service of `host` is up.
async fn compute_up(st: &ApiState, host: &str) -> bool {
    let q = ListQuery::new()
        .filter("host", host)
        .filter("binary", "nova-compute");
    match st.objects.list::<Service>(&admin_ctx(), &q).await {
        Ok(s) => s
            .first()
            .is_some_and(|s| nova_service::is_up(s, st.cfg.service_down_time, chrono::Utc::now())),
        Err(_) => false,
    }
}

/// Deletes an instance no compute holds: the record, its build request
/// and its allocations.
async fn local_delete(
    st: &ApiState,
    rpc_ctx: &RequestContext,
    mut inst: Instance,
) -> ApiResult<()> {
    let ctx = admin_ctx();
    let host = &st.cfg.host;
    st.notifier
        .instance_action_from(
            rpc_ctx,
            &inst,
            Source::Api,
            host,
            "delete",
            Phase::Start,
            None,
        )
        .await;
    let old = OldStates::of(&inst);
    st.placement
        .delete_allocations_async(inst.uuid())
        .await
        .map_err(Fault::internal)?;
    inst.set_vm_state(Some(VmState::Deleted.into()));
    inst.set_task_state(None);
    inst.set_terminated_at(Some(chrono::Utc::now()));
    st.objects.save(&ctx, &mut inst).await?;
    st.notifier
        .instance_update(rpc_ctx, &inst, &old, Source::Compute, host)
        .await;
    st.objects.destroy(&ctx, &mut inst).await?;
    if let Ok(br) = st
        .objects
        .get::<BuildRequest>(&ctx, Lookup::field("instance_uuid", inst.uuid().as_str()))
        .await
    {
        let _ = st
            .objects
            .store()
            .destroy(&ctx, br.obj_to_primitive())
            .await;
    }
    st.notifier
        .instance_action_from(
            rpc_ctx,
            &inst,
            Source::Api,
            host,
            "delete",
            Phase::End,
            None,
        )
        .await;
    Ok(())
}

/// Deletes `inst` (a delete already under way is not repeated).
pub(crate) async fn delete(st: &ApiState, ctx: &Ctx, mut inst: Instance) -> ApiResult<()> {
    super::check_instance_lock(ctx, &inst)?;
    if inst.task_state() == &TaskState::Deleting {
        return Ok(());
    }
    let host = inst.host().clone();
    let old = OldStates::of(&inst);
    inst.set_task_state(Some(TaskState::Deleting.into()));
    st.objects.save(&admin_ctx(), &mut inst).await?;
    // As nova's Instance.save: published as nova-compute from this host.
    st.notifier
        .instance_update(&ctx.rpc(), &inst, &old, Source::Compute, &st.cfg.host)
        .await;
    match host {
        Some(h) if compute_up(st, &h).await => st
            .rpc
            .compute
            .terminate_instance(&ctx.rpc(), &h, &inst, &None)
            .await
            .map_err(Fault::internal),
        _ => local_delete(st, &ctx.rpc(), inst).await,
    }
}
