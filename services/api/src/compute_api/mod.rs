//! The compute API layer (nova's `nova/compute/api.py`): what the server
//! operations do, apart from HTTP.
//!
//! Handlers parse a request, check its schema and policy, call one
//! operation here and render what it returns; the operations read and
//! write the records, check quotas and instance states, and are the only
//! code that calls the conductor and compute RPC clients ([`Rpc`]).
//!
//! - [`create`]: flavor, image, key pair, networks, quota, the four
//!   records (Instance, RequestSpec, BuildRequest, InstanceMapping) and the
//!   cast to the conductor;
//! - [`delete`]: the cast to the compute, or the local delete when no
//!   compute holds the instance (or its compute is down);
//! - [`actions`]: reboot, stop, start, pause, unpause, suspend, resume,
//!   changePassword, trigger_crash_dump, rescue, unrescue, restore (with
//!   nova's state checks), lock, unlock, os-resetState, the console
//!   output; each records its instance action;
//! - [`rebuild`], [`images`] (createImage, createBackup), [`shelve`]
//!   (shelve, shelveOffload, unshelve);
//! - [`instance_actions`]: the instance actions and events of a server;
//! - [`moves`]: resize, confirm/revert, cold and live migration, a
//!   server's migrations (force complete, abort) and `os-migrations`;
//! - [`queries`]: one instance, and the filtered, sorted, paged list (in
//!   SQL, tag filters included);
//! - the sub-resources: [`metadata`] (state, lock and quota checks),
//!   [`tags`], [`password`], [`diagnostics`] (a call to the compute),
//!   [`topology`], and [`host_status`] for the server view.
//!
//! A new server action goes in [`actions`]: its allowed states, the task
//! state it sets, and its RPC call; the handler in
//! `handlers::servers::actions` parses its body.

pub(crate) mod actions;
pub(crate) mod consoles;
pub(crate) mod create;
pub(crate) mod delete;
pub(crate) mod diagnostics;
pub(crate) mod evacuate;
pub(crate) mod external_events;
pub(crate) mod host_ops;
pub(crate) mod host_status;
pub(crate) mod images;
pub(crate) mod instance_actions;
pub(crate) mod interfaces;
pub(crate) mod metadata;
pub(crate) mod moves;
pub(crate) mod password;
pub(crate) mod queries;
pub(crate) mod rebuild;
pub(crate) mod sched_hints;
pub(crate) mod shelve;
pub(crate) mod tags;
pub(crate) mod topology;

use std::sync::Arc;

use nova_objects::Instance;
use nova_rpc::Transport;
use nova_rpcapi::compute::ComputeApi;
use nova_rpcapi::conductor::ComputeTaskApi;
use nova_service::states::{TaskState, VmState};

use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};

pub(crate) use actions::{
    Action, act, console_output, inject_network_info, is_expected_locked_by, lock, reset_state,
    unlock,
};
pub(crate) use create::{CreateRequest, create};
pub(crate) use delete::{DeleteKind, delete};
pub(crate) use interfaces::{FixedIpChange, change_fixed_ip};
pub(crate) use queries::{ListRequest, get, list};
pub(crate) use rebuild::{RebuildRequest, rebuild};

/// The RPC clients the compute API calls (and nothing else does).
#[derive(Debug)]
pub(crate) struct Rpc {
    /// Compute RPC (`compute` topic, a host's server).
    compute: ComputeApi,
    /// Conductor compute-task RPC.
    conductor: ComputeTaskApi,
    /// Their transport (whether a compute is served at all: memory).
    transport: Arc<dyn Transport>,
}

impl Rpc {
    /// Clients over `transport`; compute calls capped at `compute_cap`
    /// (`[upgrade_levels] compute`).
    pub(crate) fn new(
        transport: Arc<dyn Transport>,
        compute_cap: Option<nova_rpc::Version>,
    ) -> Self {
        Rpc {
            compute: ComputeApi::new(transport.clone()).version_cap(compute_cap),
            conductor: ComputeTaskApi::new(transport.clone()),
            transport,
        }
    }
}

/// Nova's `check_instance_state`: 409 with nova's message (nothing
/// changes) unless the instance's vm_state is one of `vm` and its
/// task_state one of `task`.
pub(crate) fn check_instance_state(
    inst: &Instance,
    action: &str,
    vm: &[VmState],
    task: &[Option<TaskState>],
) -> ApiResult<()> {
    let vm_now = inst.vm_state().as_deref();
    if !vm_now
        .and_then(|s| s.parse::<VmState>().ok())
        .is_some_and(|s| vm.contains(&s))
    {
        return Err(Fault::conflict(format!(
            "Cannot '{action}' instance {} while it is in vm_state {}",
            inst.uuid(),
            vm_now.unwrap_or_default()
        )));
    }
    let task_now = inst.task_state().as_deref();
    let parsed = match task_now {
        None => Some(None),
        Some(s) => s.parse::<TaskState>().ok().map(Some),
    };
    if !parsed.is_some_and(|t| task.contains(&t)) {
        return Err(Fault::conflict(format!(
            "Cannot '{action}' instance {} while it is in task_state {}",
            inst.uuid(),
            task_now.unwrap_or("None")
        )));
    }
    Ok(())
}

/// Nova's `check_instance_state(must_have_launched=True)`: an instance
/// never launched refuses the action (409).
pub(crate) fn check_launched(inst: &Instance, action: &str) -> ApiResult<()> {
    if inst.launched_at().is_none() {
        return Err(Fault::conflict(format!(
            "Cannot '{action}' instance {} while it is in launched_at None",
            inst.uuid()
        )));
    }
    Ok(())
}

/// Nova's `check_instance_lock`: a locked instance is the admins' only.
pub(crate) fn check_instance_lock(ctx: &Ctx, inst: &Instance) -> ApiResult<()> {
    if *inst.locked() && !ctx.is_admin() {
        return Err(Fault::conflict(format!(
            "Instance {} is locked",
            inst.uuid()
        )));
    }
    Ok(())
}

/// Nova's `API.update_instance`: writes the fields the caller changed
/// (name, description, access addresses, hostname, disk config).
pub(crate) async fn update(st: &crate::ApiState, inst: &mut Instance) -> ApiResult<()> {
    st.objects.save(&crate::http::admin_ctx(), inst).await?;
    Ok(())
}
