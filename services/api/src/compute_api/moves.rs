//! Moves (nova's `API.resize`, `confirm_resize`, `revert_resize`,
//! `live_migrate`, `live_migrate_force_complete`, `live_migrate_abort`,
//! `get_migrations`): the state, lock, flavor and quota checks before
//! anything is written, the instance's task state, the instance action,
//! then the conductor's `migrate_server` (cast) or the compute's
//! `confirm_resize` / `revert_resize` / live-migration casts.

use nova_objects::{
    ComputeNode, Destination, Flavor, Instance, ListQuery, Lookup, Migration, RequestSpec,
    SaveOptions, Service, VersionedObject,
};
use nova_service::notifications::{OldStates, Source};
use nova_service::states::{TaskState, VmState};
use serde_json::{Value, json};

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::admin_ctx;

/// Nova's `instance_actions` names of the moves.
mod names {
    pub(super) const RESIZE: &str = "resize";
    pub(super) const MIGRATE: &str = "migrate";
    pub(super) const CONFIRM_RESIZE: &str = "confirmResize";
    pub(super) const REVERT_RESIZE: &str = "revertResize";
    pub(super) const LIVE_MIGRATION: &str = "live-migration";
    pub(super) const LIVE_MIGRATION_FORCE_COMPLETE: &str = "live_migration_force_complete";
    pub(super) const LIVE_MIGRATION_CANCEL: &str = "live_migration_cancel";
}

/// What a resize or cold migration asks for.
#[derive(Debug, Clone, Default)]
pub(crate) struct ResizeRequest {
    /// The new flavor's id (none: a cold migration).
    pub(crate) flavor_id: Option<String>,
    /// `OS-DCF:diskConfig` `AUTO`.
    pub(crate) auto_disk_config: Option<bool>,
    /// A cold migration's target host (2.56).
    pub(crate) host: Option<String>,
}

/// What a live migration asks for.
#[derive(Debug, Clone, Default)]
pub(crate) struct LiveRequest {
    /// The target host.
    pub(crate) host: Option<String>,
    /// `block_migration` (`None`: `auto`).
    pub(crate) block_migration: Option<bool>,
    /// `disk_over_commit` (≤ 2.24).
    pub(crate) disk_over_commit: Option<bool>,
    /// `force` (2.30 … 2.67); `None` before 2.30: a host is forced.
    pub(crate) force: Option<bool>,
}

async fn stored_spec(st: &ApiState, inst: &Instance) -> ApiResult<RequestSpec> {
    let found: Vec<RequestSpec> = st
        .objects
        .list(
            &admin_ctx(),
            &ListQuery::new().filter("instance_uuid", inst.uuid().as_str()),
        )
        .await?;
    Ok(found.into_iter().next().unwrap_or_else(|| {
        RequestSpec::new()
            .with_instance_uuid(inst.uuid().clone())
            .with_project_id(inst.project_id().clone())
            .with_user_id(inst.user_id().clone())
            .with_flavor(inst.flavor().clone())
            .with_num_instances(1)
            .with_is_bfv(false)
    }))
}

/// The compute nodes of `host` (400 "could not be found" without one).
async fn nodes_of(st: &ApiState, host: &str) -> ApiResult<Vec<ComputeNode>> {
    let nodes: Vec<ComputeNode> = st
        .objects
        .list(&admin_ctx(), &ListQuery::new().filter("host", host))
        .await?;
    if nodes.is_empty() {
        return Err(Fault::bad_request(format!(
            "Compute host {host} could not be found."
        )));
    }
    Ok(nodes)
}

/// Nova's `_check_quota_for_upsize`: the growth in cores and RAM within
/// the project's quota and its user's (403 otherwise).
async fn check_upsize(st: &ApiState, inst: &Instance, old: &Flavor, new: &Flavor) -> ApiResult<()> {
    crate::quotas::count::check_upsize(
        st,
        inst.project_id().as_deref().unwrap_or_default(),
        inst.user_id().as_deref().unwrap_or_default(),
        (
            *new.vcpus() - *old.vcpus(),
            *new.memory_mb() - *old.memory_mb(),
        ),
    )
    .await
}

async fn flavor_by_id(st: &ApiState, ctx: &Ctx, fid: &str) -> ApiResult<Flavor> {
    let flavor: Flavor = match st
        .objects
        .get(&admin_ctx(), Lookup::field("flavorid", fid))
        .await
    {
        Ok(f) => f,
        Err(e) if e.is_not_found() => {
            return Err(Fault::bad_request(format!(
                "Flavor {fid} could not be found."
            )));
        }
        Err(e) => return Err(e.into()),
    };
    if !*flavor.is_public() && !ctx.is_admin() && !flavor.projects().contains(&ctx.project_id) {
        return Err(Fault::bad_request(format!(
            "Flavor {fid} could not be found."
        )));
    }
    Ok(flavor)
}

/// Saves `inst` expecting no task state (409 when another action won).
async fn save_from_idle(st: &ApiState, inst: &mut Instance, action: &str) -> ApiResult<()> {
    let id = inst.uuid().clone();
    st.objects
        .save_with(
            &admin_ctx(),
            inst,
            &SaveOptions::expected_task_state([None::<&str>]),
        )
        .await
        .map_err(|_| {
            Fault::conflict(format!(
                "Cannot '{action}' instance {id}: another action is in progress"
            ))
        })
}

/// Nova's `API.resize` (a flavor: `resize`; none: the cold migration
/// `migrate`, to `host` when given).
pub(crate) async fn resize(
    st: &ApiState,
    ctx: &Ctx,
    mut inst: Instance,
    r: ResizeRequest,
) -> ApiResult<()> {
    let action = if r.flavor_id.is_some() {
        "resize"
    } else {
        "migrate"
    };
    super::check_instance_lock(ctx, &inst)?;
    super::check_instance_state(&inst, action, &[VmState::Active, VmState::Stopped], &[None])?;
    if inst.host().as_deref().unwrap_or("").is_empty() {
        return Err(Fault::conflict(format!(
            "Instance {} is not ready",
            inst.uuid()
        )));
    }
    let mut target_node = None;
    if let Some(host) = &r.host {
        if Some(host) == inst.host().as_ref() {
            return Err(Fault::bad_request(
                "Cannot migrate to the host where the server exists.",
            ));
        }
        target_node = Some(nodes_of(st, host).await?.remove(0));
    }
    let current = inst.flavor().clone();
    let new_flavor = match &r.flavor_id {
        None => current.clone(),
        Some(fid) => {
            let f = flavor_by_id(st, ctx, fid).await?;
            if *f.root_gb() == 0 && *current.root_gb() != 0 {
                return Err(Fault::bad_request(
                    "Server disk was unable to be resized because: Resize to zero disk flavor is not allowed.",
                ));
            }
            f
        }
    };
    let same_flavor = current.id() == new_flavor.id();
    if !same_flavor && *new_flavor.disabled() {
        return Err(Fault::bad_request(format!(
            "Flavor {} could not be found.",
            r.flavor_id.clone().unwrap_or_default()
        )));
    }
    if same_flavor && r.flavor_id.is_some() {
        return Err(Fault::bad_request(
            "When resizing, instances must change flavor!",
        ));
    }
    if r.flavor_id.is_some() {
        check_upsize(st, &inst, &current, &new_flavor).await?;
    }
    // Same-host moves: resize by `allow_resize_to_same_host`; a cold
    // migration never (nova's computes report no COMPUTE_SAME_HOST_COLD_MIGRATE).
    let allow_same_host = !same_flavor && st.cfg.allow_resize_to_same_host;
    let mut ignore = Vec::new();
    if !allow_same_host {
        ignore.push(inst.host().clone().unwrap_or_default());
    }
    let mut spec = stored_spec(st, &inst).await?;
    spec.set_ignore_hosts(Some(ignore.clone()));
    spec.set_requested_destination(Some(match &target_node {
        None => Destination::new().with_allow_cross_cell_move(false),
        Some(n) => Destination::new()
            .with_host(n.host().clone().unwrap_or_default())
            .with_node(n.hypervisor_hostname().clone())
            .with_allow_cross_cell_move(false),
    }));
    let old = OldStates::of(&inst);
    let base = inst.image_ref().clone();
    inst.system_metadata_mut()
        .insert("image_base_image_ref".into(), base);
    inst.set_task_state(Some(TaskState::ResizePrep.into()));
    inst.set_progress(Some(0));
    inst.set_auto_disk_config(r.auto_disk_config.unwrap_or(false));
    save_from_idle(st, &mut inst, action).await?;
    let rpc = ctx.rpc();
    st.notifier
        .instance_update(&rpc, &inst, &old, Source::Compute, &st.cfg.host)
        .await;
    super::actions::record(
        st,
        ctx,
        inst.uuid(),
        if r.flavor_id.is_some() {
            names::RESIZE
        } else {
            names::MIGRATE
        },
    )
    .await?;
    st.rpc
        .conductor
        .migrate_server(
            &rpc,
            &inst,
            &json!({"filter_properties": {"ignore_hosts": ignore}}),
            &false,
            &false,
            &Some(new_flavor),
            &Value::Null,
            &Value::Null,
            &Value::Null,
            &Some(true),
            &Some(spec),
            &None,
        )
        .await
        .map_err(Fault::internal)
}

/// The instance's migration in `status` (newest first), as nova's
/// `Migration.get_by_instance_and_status`.
async fn migration_in(
    st: &ApiState,
    inst: &Instance,
    status: &str,
) -> ApiResult<Option<Migration>> {
    let mut found: Vec<Migration> = st
        .objects
        .list(
            &admin_ctx(),
            &ListQuery::new()
                .filter("instance_uuid", inst.uuid().as_str())
                .filter("status", status),
        )
        .await?;
    found.sort_by_key(|m| std::cmp::Reverse(*m.id()));
    Ok(found.into_iter().next())
}

/// Whether the compute service of `host` is up.
async fn compute_up(st: &ApiState, host: &str) -> ApiResult<bool> {
    let svcs: Vec<Service> = st
        .objects
        .list(
            &admin_ctx(),
            &ListQuery::new()
                .filter("host", host)
                .filter("binary", "nova-compute"),
        )
        .await?;
    Ok(svcs
        .iter()
        .any(|s| nova_service::is_up(s, st.cfg.service_down_time, chrono::Utc::now())))
}

/// Nova's `API.confirm_resize` (from the API, or the
/// `resize_confirm_window` task with `migration` given).
pub(crate) async fn confirm_resize(
    st: &ApiState,
    ctx: &Ctx,
    inst: Instance,
    migration: Option<Migration>,
) -> ApiResult<()> {
    super::check_instance_lock(ctx, &inst)?;
    super::check_instance_state(&inst, "confirmResize", &[VmState::Resized], &[None])?;
    let mut migration = match migration {
        Some(m) => m,
        None => migration_in(st, &inst, "finished")
            .await?
            .ok_or_else(|| Fault::bad_request("Instance has not been resized."))?,
    };
    let source = migration.source_compute().clone().unwrap_or_default();
    if !compute_up(st, &source).await? {
        return Err(Fault::conflict(
            "Compute service of this server's source host is unavailable at this time.",
        ));
    }
    migration.obj_reset_changes();
    migration.set_status(Some("confirming".into()));
    st.objects.save(&admin_ctx(), &mut migration).await?;
    super::actions::record(st, ctx, inst.uuid(), names::CONFIRM_RESIZE).await?;
    st.rpc
        .compute
        .confirm_resize(&ctx.rpc(), &source, &inst, &migration)
        .await
        .map_err(Fault::internal)
}

/// Nova's `API.revert_resize`.
pub(crate) async fn revert_resize(st: &ApiState, ctx: &Ctx, mut inst: Instance) -> ApiResult<()> {
    super::check_instance_lock(ctx, &inst)?;
    super::check_instance_state(&inst, "revertResize", &[VmState::Resized], &[None])?;
    let mut migration = migration_in(st, &inst, "finished")
        .await?
        .ok_or_else(|| Fault::bad_request("Instance has not been resized."))?;
    let Some(old_flavor) = inst.old_flavor().clone() else {
        return Err(Fault::bad_request(
            "Flavor used by the instance could not be found.",
        ));
    };
    check_upsize(st, &inst, inst.flavor(), &old_flavor).await?;
    let mut spec = stored_spec(st, &inst).await?;
    if spec.obj_attr_is_set("id") && spec.flavor().id() != old_flavor.id() {
        spec.obj_reset_changes();
        spec.set_flavor(old_flavor.clone());
        st.objects.save(&admin_ctx(), &mut spec).await?;
    }
    let old = OldStates::of(&inst);
    inst.set_task_state(Some(TaskState::ResizeReverting.into()));
    save_from_idle(st, &mut inst, "revertResize").await?;
    st.notifier
        .instance_update(&ctx.rpc(), &inst, &old, Source::Compute, &st.cfg.host)
        .await;
    migration.obj_reset_changes();
    migration.set_status(Some("reverting".into()));
    st.objects.save(&admin_ctx(), &mut migration).await?;
    super::actions::record(st, ctx, inst.uuid(), names::REVERT_RESIZE).await?;
    let dest = migration.dest_compute().clone().unwrap_or_default();
    st.rpc
        .compute
        .revert_resize(&ctx.rpc(), &dest, &inst, &migration, &Some(spec))
        .await
        .map_err(Fault::internal)
}

/// Nova's `API.live_migrate` (`os-migrateLive`).
pub(crate) async fn live_migrate(
    st: &ApiState,
    ctx: &Ctx,
    mut inst: Instance,
    r: LiveRequest,
) -> ApiResult<()> {
    super::check_instance_lock(ctx, &inst)?;
    super::check_instance_state(
        &inst,
        "os-migrateLive",
        &[VmState::Active, VmState::Paused],
        &[None],
    )?;
    let mut target = None;
    if let Some(host) = &r.host {
        target = Some(nodes_of(st, host).await?.remove(0));
    }
    let mut spec = stored_spec(st, &inst).await?;
    let old = OldStates::of(&inst);
    inst.set_task_state(Some(TaskState::Migrating.into()));
    save_from_idle(st, &mut inst, "os-migrateLive").await?;
    let rpc = ctx.rpc();
    st.notifier
        .instance_update(&rpc, &inst, &old, Source::Compute, &st.cfg.host)
        .await;
    super::actions::record(st, ctx, inst.uuid(), names::LIVE_MIGRATION).await?;
    // `force` false: the scheduler checks the host; otherwise (forced, or
    // any host before 2.30) the conductor claims it directly.
    let mut host_name = r.host.clone();
    if r.force == Some(false)
        && let Some(n) = &target
    {
        host_name = None;
        spec.set_requested_destination(Some(
            Destination::new()
                .with_host(n.host().clone().unwrap_or_default())
                .with_node(n.hypervisor_hostname().clone())
                .with_allow_cross_cell_move(false),
        ));
    }
    let hint = match &host_name {
        Some(h) => json!({"host": h}),
        None => json!({"host": null}),
    };
    st.rpc
        .conductor
        .migrate_server(
            &rpc,
            &inst,
            &hint,
            &true,
            &false,
            &None,
            &r.block_migration.map_or(json!("auto"), Value::Bool),
            &r.disk_over_commit.map_or(Value::Null, Value::Bool),
            &Value::Null,
            &None,
            &Some(spec),
            &None,
        )
        .await
        .map_err(Fault::internal)
}

/// A server's migration by id (404 with nova's words otherwise).
pub(crate) async fn server_migration(
    st: &ApiState,
    inst: &Instance,
    id: &str,
) -> ApiResult<Migration> {
    let not_found = || {
        Fault::not_found(format!(
            "Migration {id} could not be found for instance {}.",
            inst.uuid()
        ))
    };
    let Ok(mid) = id.parse::<i64>() else {
        return Err(not_found());
    };
    let found: Vec<Migration> = st
        .objects
        .list(&admin_ctx(), &ListQuery::new().filter("id", mid))
        .await?;
    found
        .into_iter()
        .find(|m| m.instance_uuid().as_deref() == Some(inst.uuid().as_str()))
        .ok_or_else(not_found)
}

fn invalid_state(m: &Migration, inst: &Instance, method: &str) -> Fault {
    Fault::bad_request(format!(
        "Migration {} state of instance {} is {}. Cannot {method} while the migration is in this state.",
        m.id(),
        inst.uuid(),
        m.status().clone().unwrap_or_default()
    ))
}

/// Nova's `API.live_migrate_force_complete`.
pub(crate) async fn force_complete(
    st: &ApiState,
    ctx: &Ctx,
    inst: Instance,
    id: &str,
) -> ApiResult<()> {
    super::check_instance_lock(ctx, &inst)?;
    super::check_instance_state(
        &inst,
        "force_complete",
        &[VmState::Active],
        &[Some(TaskState::Migrating)],
    )?;
    let m = server_migration(st, &inst, id).await?;
    if m.status().as_deref() != Some("running") {
        return Err(invalid_state(&m, &inst, "force_complete"));
    }
    super::actions::record(st, ctx, inst.uuid(), names::LIVE_MIGRATION_FORCE_COMPLETE).await?;
    let source = m.source_compute().clone().unwrap_or_default();
    st.rpc
        .compute
        .live_migration_force_complete(&ctx.rpc(), &source, &inst)
        .await
        .map_err(Fault::internal)
}

/// Nova's `API.live_migrate_abort` (2.24; `queued` and `preparing` too
/// from 2.65).
pub(crate) async fn abort(
    st: &ApiState,
    ctx: &Ctx,
    inst: Instance,
    id: &str,
    queued_too: bool,
) -> ApiResult<()> {
    super::check_instance_lock(ctx, &inst)?;
    super::check_instance_state(
        &inst,
        "abort live migration",
        &[VmState::Active],
        &[Some(TaskState::Migrating)],
    )?;
    let m = server_migration(st, &inst, id).await?;
    let allowed: &[&str] = if queued_too {
        &["running", "queued", "preparing"]
    } else {
        &["running"]
    };
    if m.migration_type() != "live-migration"
        || !allowed.contains(&m.status().as_deref().unwrap_or(""))
    {
        return Err(invalid_state(&m, &inst, "abort live migration"));
    }
    super::actions::record(st, ctx, inst.uuid(), names::LIVE_MIGRATION_CANCEL).await?;
    let source = m.source_compute().clone().unwrap_or_default();
    st.rpc
        .compute
        .live_migration_abort(&ctx.rpc(), &source, &inst, m.id())
        .await
        .map_err(Fault::internal)
}

/// Every migration (nova's `get_migrations`; the handlers filter, sort
/// and page), hidden ones left out.
pub(crate) async fn migrations(st: &ApiState, q: ListQuery) -> ApiResult<Vec<Migration>> {
    let all: Vec<Migration> = st.objects.list(&admin_ctx(), &q).await?;
    Ok(all.into_iter().filter(|m| !*m.hidden()).collect())
}
