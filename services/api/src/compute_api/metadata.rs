//! Server metadata (nova's `API.update_instance_metadata` and
//! `API.delete_instance_metadata`): refused on a locked server (unless by
//! an admin) and outside active, paused, suspended and stopped with no
//! task (409, nothing changes); the result must fit the `metadata_items`
//! quota (403). Changes are compare-and-swaps of the dict read
//! ([`modify`]), so racing requests for different keys all land, as
//! nova's per-key rows do.

use std::collections::BTreeMap;

use nova_objects::{Instance, SaveOptions, VersionedObject};
use nova_service::notifications::{OldStates, Source};
use nova_service::states::VmState;

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::admin_ctx;

/// The vm_states metadata may change in (with no task state).
const STATES: &[VmState] = &[
    VmState::Active,
    VmState::Paused,
    VmState::Suspended,
    VmState::Stopped,
];

/// How many times a change is retried after losing a race.
const RETRIES: usize = 20;

/// The caller's `metadata_items` limit (its project's quota).
pub(crate) async fn items_limit(st: &ApiState, ctx: &Ctx) -> ApiResult<i64> {
    Ok(crate::quotas::limits(st, &ctx.project_id, &ctx.user_id)
        .await?
        .metadata_items)
}

/// Nova's `_check_metadata_properties_quota`: at most `allowed` items
/// ([`items_limit`]; a negative limit is no limit).
pub(crate) fn check_quota(allowed: i64, metadata: &BTreeMap<String, String>) -> ApiResult<()> {
    if allowed >= 0 && metadata.len() as i64 > allowed {
        return Err(Fault::forbidden(format!(
            "Maximum number of metadata items exceeds {allowed}"
        )));
    }
    Ok(())
}

/// Runs `change` on the instance and saves it with `field` (a dict or
/// object field) compared to what was read: when another request changed
/// it meanwhile, the instance is read again and `change` (checks
/// included) runs again. `change` returns its result and whether there is
/// anything to write. A save sends nova's `instance.update` (`source`:
/// nova-compute as `Instance.save` does, nova-api where nova's handler
/// sends it itself, as for tags).
pub(crate) async fn modify<T>(
    st: &ApiState,
    ctx: &Ctx,
    mut inst: Instance,
    field: &str,
    source: Source,
    mut change: impl FnMut(&mut Instance) -> ApiResult<(T, bool)>,
) -> ApiResult<T> {
    let uuid = inst.uuid().clone();
    for _ in 0..RETRIES {
        let seen = inst.obj_to_primitive()["nova_object.data"][field].clone();
        let old = OldStates::of(&inst);
        let (out, write) = change(&mut inst)?;
        if !write {
            return Ok(out);
        }
        let mut opts = SaveOptions::default();
        opts.expected.insert(field.to_owned(), vec![seen]);
        match st.objects.save_with(&admin_ctx(), &mut inst, &opts).await {
            Ok(()) => {
                st.notifier
                    .instance_update(&ctx.rpc(), &inst, &old, source, &st.cfg.host)
                    .await;
                return Ok(out);
            }
            Err(nova_objects::Error::UnexpectedTaskState { .. }) => {
                inst = st.objects.get_by_uuid(&admin_ctx(), &uuid).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Fault::conflict(format!(
        "Instance {uuid} is being changed by other requests; try again"
    )))
}

/// Merges `metadata` into the server's (`replace`: replaces it) and
/// returns the server's metadata afterwards.
pub(crate) async fn update(
    st: &ApiState,
    ctx: &Ctx,
    inst: Instance,
    metadata: BTreeMap<String, String>,
    replace: bool,
) -> ApiResult<BTreeMap<String, String>> {
    let allowed = items_limit(st, ctx).await?;
    modify(st, ctx, inst, "metadata", Source::Compute, |inst| {
        super::check_instance_lock(ctx, inst)?;
        super::check_instance_state(inst, "update metadata", STATES, &[None])?;
        let new = if replace {
            metadata.clone()
        } else {
            let mut m = inst.metadata().clone();
            m.extend(metadata.clone());
            m
        };
        check_quota(allowed, &new)?;
        inst.set_metadata(new.clone());
        Ok((new, true))
    })
    .await
}

/// Deletes one key (404 when the server has no such key).
pub(crate) async fn delete_key(
    st: &ApiState,
    ctx: &Ctx,
    inst: Instance,
    key: &str,
) -> ApiResult<()> {
    modify(st, ctx, inst, "metadata", Source::Compute, |inst| {
        if !inst.metadata().contains_key(key) {
            return Err(Fault::not_found("Metadata item was not found"));
        }
        super::check_instance_lock(ctx, inst)?;
        super::check_instance_state(inst, "delete metadata", STATES, &[None])?;
        inst.metadata_mut().remove(key);
        Ok(((), true))
    })
    .await
}
