//! Deleting servers (nova's `API.delete`, `soft_delete`, `force_delete`):
//! a cast to the instance's compute (`terminate_instance`, or
//! `soft_delete_instance` when `reclaim_instance_interval` > 0), or a
//! local delete when no compute holds it (never scheduled, buried in
//! cell0) or its compute is down.

use nova_objects::{BuildRequest, Instance, ListQuery, Lookup, Service, VersionedObject};
use nova_rpc::RequestContext;
use nova_service::instance_actions::names;
use nova_service::notifications::{OldStates, Phase, Source};
use nova_service::states::{TaskState, VmState};

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::admin_ctx;

/// Whether the compute service of `host` is up: nova's service group,
/// and, on the memory transport (every service in this process), someone
/// serving its queue — a compute that did not start here never will
/// take the cast, whatever its record's last heartbeat says.
async fn compute_up(st: &ApiState, host: &str) -> bool {
    if st
        .rpc
        .transport
        .has_consumer(&format!("{}.{host}", nova_rpcapi::compute::TOPIC))
        == Some(false)
    {
        return false;
    }
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

/// Deletes an instance no compute holds: its ports, the record, its build
/// request and its allocations.
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
    if let Some(client) = st.network() {
        // nova's _local_delete: the network resources go too (the ports
        // nova made deleted, the given ones freed).
        let cache: Option<nova_objects::InstanceInfoCache> = st
            .objects
            .get(&ctx, Lookup::field("instance_uuid", inst.uuid().as_str()))
            .await
            .ok();
        let preserved =
            nova_service::neutron::preserved_ports(&nova_service::neutron::vifs_of_cache(
                cache.as_ref().and_then(|c| c.network_info().as_deref()),
            ));
        if let Err(e) =
            nova_service::neutron::deallocate_for_instance(client, inst.uuid(), &preserved).await
        {
            tracing::warn!(instance = %inst.uuid(), error = %e, "ports not released at the local delete");
        }
    }
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

/// How a delete goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeleteKind {
    /// `DELETE /servers/{id}`: soft when `reclaim_instance_interval` > 0
    /// and the server was launched (nova's controller), else hard.
    Delete,
    /// `forceDelete`: hard, whatever the interval (task state must be none).
    Force,
}

/// Deletes `inst` (a delete already under way is not repeated), as
/// action `delete` on the compute, or locally when no compute holds it.
pub(crate) async fn delete(
    st: &ApiState,
    ctx: &Ctx,
    mut inst: Instance,
    kind: DeleteKind,
) -> ApiResult<()> {
    super::check_instance_lock(ctx, &inst)?;
    if kind == DeleteKind::Force {
        super::check_instance_state(&inst, "forceDelete", VmState::ALL, &[None])?;
    }
    let soft = kind == DeleteKind::Delete
        && st.cfg.reclaim_instance_interval > 0
        && inst.launched_at().is_some();
    let original = inst.task_state().clone();
    let host = inst.host().clone();
    // nova records every kind of delete as `delete`.
    let action = names::DELETE;
    let old = OldStates::of(&inst);
    inst.set_task_state(Some(
        if soft {
            TaskState::SoftDeleting
        } else {
            TaskState::Deleting
        }
        .into(),
    ));
    if soft {
        inst.set_deleted_at(Some(chrono::Utc::now()));
    }
    let rpc = ctx.rpc();
    match host {
        Some(h) if compute_up(st, &h).await => {
            if original == TaskState::Deleting || original == TaskState::SoftDeleting {
                // Already being deleted. The first request may have died
                // with a crashed process (the server would stay `deleting`
                // for ever): a hard delete asks the compute again. It
                // deletes under the instance's lock, so the repeat of a
                // delete in progress finds nothing left to do.
                if original == TaskState::Deleting && !soft {
                    st.rpc
                        .compute
                        .terminate_instance(&rpc, &h, &inst, &None)
                        .await
                        .map_err(Fault::internal)?;
                }
                return Ok(());
            }
            st.objects.save(&admin_ctx(), &mut inst).await?;
            // As nova's Instance.save: published as nova-compute from this host.
            st.notifier
                .instance_update(&rpc, &inst, &old, Source::Compute, &st.cfg.host)
                .await;
            super::actions::record(st, ctx, inst.uuid(), action).await?;
            if soft {
                st.rpc.compute.soft_delete_instance(&rpc, &h, &inst).await
            } else {
                st.rpc
                    .compute
                    .terminate_instance(&rpc, &h, &inst, &None)
                    .await
            }
            .map_err(Fault::internal)
        }
        _ => {
            st.objects.save(&admin_ctx(), &mut inst).await?;
            st.notifier
                .instance_update(&rpc, &inst, &old, Source::Compute, &st.cfg.host)
                .await;
            let uuid = inst.uuid().clone();
            local_delete(st, &rpc, inst).await?;
            super::actions::record(st, ctx, &uuid, action).await
        }
    }
}
