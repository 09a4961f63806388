//! Server metadata (nova's `API.update_instance_metadata` and
//! `API.delete_instance_metadata`): refused on a locked server (unless by
//! an admin) and outside active, paused, suspended and stopped with no
//! task (409, nothing changes); the result must fit the `metadata_items`
//! quota (403).

use std::collections::BTreeMap;

use nova_objects::Instance;
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

/// Nova's `_check_metadata_properties_quota`: at most `metadata_items`
/// items (a negative limit is no limit).
pub(crate) fn check_quota(st: &ApiState, metadata: &BTreeMap<String, String>) -> ApiResult<()> {
    let allowed = st.cfg.quotas.metadata_items;
    if allowed >= 0 && metadata.len() as i64 > allowed {
        return Err(Fault::forbidden(format!(
            "Maximum number of metadata items exceeds {allowed}"
        )));
    }
    Ok(())
}

/// Saves the API's change to `inst` and sends nova's `instance.update`
/// (`source`: nova-compute as `Instance.save` does, nova-api where nova's
/// handler sends it itself, as for tags).
pub(crate) async fn save_notified(
    st: &ApiState,
    ctx: &Ctx,
    inst: &mut Instance,
    source: Source,
) -> ApiResult<()> {
    let old = OldStates::of(inst);
    st.objects.save(&admin_ctx(), inst).await?;
    st.notifier
        .instance_update(&ctx.rpc(), inst, &old, source, &st.cfg.host)
        .await;
    Ok(())
}

/// Merges `metadata` into the server's (`replace`: replaces it) and
/// returns the server's metadata afterwards.
pub(crate) async fn update(
    st: &ApiState,
    ctx: &Ctx,
    mut inst: Instance,
    metadata: BTreeMap<String, String>,
    replace: bool,
) -> ApiResult<BTreeMap<String, String>> {
    super::check_instance_lock(ctx, &inst)?;
    super::check_instance_state(&inst, "update metadata", STATES, &[None])?;
    let new = if replace {
        metadata
    } else {
        let mut m = inst.metadata().clone();
        m.extend(metadata);
        m
    };
    check_quota(st, &new)?;
    inst.set_metadata(new.clone());
    save_notified(st, ctx, &mut inst, Source::Compute).await?;
    Ok(new)
}

/// Deletes one key (404 when the server has no such key).
pub(crate) async fn delete_key(
    st: &ApiState,
    ctx: &Ctx,
    mut inst: Instance,
    key: &str,
) -> ApiResult<()> {
    if !inst.metadata().contains_key(key) {
        return Err(Fault::not_found("Metadata item was not found"));
    }
    super::check_instance_lock(ctx, &inst)?;
    super::check_instance_state(&inst, "delete metadata", STATES, &[None])?;
    inst.metadata_mut().remove(key);
    save_notified(st, ctx, &mut inst, Source::Compute).await?;
    Ok(())
}
