//! Server actions (nova's `API.reboot`, `stop`, `start`, `pause`,
//! `unpause`, `suspend`, `resume`, `set_admin_password`,
//! `trigger_crash_dump`, `rescue`, `unrescue`, `restore`): each checks
//! the lock and the instance's states (nova's `check_instance_state`,
//! `launched_at` included), sets its task state atomically (a concurrent
//! action makes it a 409), records its instance action and calls the
//! instance's compute. Lock, unlock and reset-state are API-only
//! ([`lock`], [`unlock`], [`reset_state`]); the console output is a read
//! ([`console_output`]).
//!
//! A new action: a variant of [`Action`], its states in
//! [`Action::allowed`], its task state in [`Action::task_state`], its
//! instance action in [`Action::record`] and its call in [`act`].

use nova_objects::{Instance, SaveOptions};
use nova_service::instance_actions::{self as ia, names};
use nova_service::notifications::{OldStates, Phase, Source};
use nova_service::states::{TaskState, VmState};

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::admin_ctx;

/// A server action that goes to the instance's compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// `reboot` (`hard`: `HARD`).
    Reboot {
        /// A hard reboot.
        hard: bool,
    },
    /// `os-stop`.
    Stop,
    /// `os-start`.
    Start,
    /// `pause`.
    Pause,
    /// `unpause`.
    Unpause,
    /// `suspend`.
    Suspend,
    /// `resume`.
    Resume,
    /// `changePassword`.
    ChangePassword {
        /// The new admin password.
        password: String,
    },
    /// `trigger_crash_dump` (2.17).
    TriggerCrashDump,
    /// `rescue`.
    Rescue {
        /// The password of the rescue guest.
        password: String,
        /// The image to boot (none: the server's own).
        image_ref: Option<String>,
    },
    /// `unrescue`.
    Unrescue,
    /// `restore` (a soft-deleted server).
    Restore,
}

/// The task states a hard reboot may interrupt.
const HARD_REBOOT_FROM: &[Option<TaskState>] = &[
    None,
    Some(TaskState::Rebooting),
    Some(TaskState::RebootPending),
    Some(TaskState::RebootStarted),
];

impl Action {
    /// The action's name in the request body.
    pub(crate) fn api_name(&self) -> &'static str {
        match self {
            Action::Reboot { .. } => "reboot",
            Action::Stop => "os-stop",
            Action::Start => "os-start",
            Action::Pause => "pause",
            Action::Unpause => "unpause",
            Action::Suspend => "suspend",
            Action::Resume => "resume",
            Action::ChangePassword { .. } => "changePassword",
            Action::TriggerCrashDump => "trigger_crash_dump",
            Action::Rescue { .. } => "rescue",
            Action::Unrescue => "unrescue",
            Action::Restore => "restore",
        }
    }

    /// The name nova's state errors give (the controller's).
    fn method(&self) -> &'static str {
        match self {
            Action::Reboot { .. } => "reboot",
            Action::Stop => "stop",
            Action::Start => "start",
            other => other.api_name(),
        }
    }

    /// The instance action recorded (nova's `instance_actions`).
    fn record(&self) -> &'static str {
        match self {
            Action::Reboot { .. } => names::REBOOT,
            Action::Stop => names::STOP,
            Action::Start => names::START,
            Action::Pause => names::PAUSE,
            Action::Unpause => names::UNPAUSE,
            Action::Suspend => names::SUSPEND,
            Action::Resume => names::RESUME,
            Action::ChangePassword { .. } => names::CHANGE_PASSWORD,
            Action::TriggerCrashDump => names::TRIGGER_CRASH_DUMP,
            Action::Rescue { .. } => names::RESCUE,
            Action::Unrescue => names::UNRESCUE,
            Action::Restore => names::RESTORE,
        }
    }

    /// The vm_states and task_states the action is allowed in.
    fn allowed(&self) -> (&'static [VmState], &'static [Option<TaskState>]) {
        const NONE: &[Option<TaskState>] = &[None];
        match self {
            Action::Reboot { hard: true } => (
                &[
                    VmState::Active,
                    VmState::Stopped,
                    VmState::Paused,
                    VmState::Suspended,
                    VmState::Error,
                ],
                HARD_REBOOT_FROM,
            ),
            Action::Reboot { hard: false } => (&[VmState::Active], NONE),
            Action::Stop => (&[VmState::Active, VmState::Error], NONE),
            Action::Start => (&[VmState::Stopped], NONE),
            Action::Pause | Action::Suspend | Action::ChangePassword { .. } => {
                (&[VmState::Active], NONE)
            }
            Action::Unpause => (&[VmState::Paused], NONE),
            Action::Resume => (&[VmState::Suspended], NONE),
            // nova's ALLOW_TRIGGER_CRASH_DUMP.
            Action::TriggerCrashDump => (
                &[
                    VmState::Active,
                    VmState::Paused,
                    VmState::Rescued,
                    VmState::Resized,
                    VmState::Error,
                ],
                NONE,
            ),
            Action::Rescue { .. } => (&[VmState::Active, VmState::Stopped, VmState::Error], NONE),
            Action::Unrescue => (&[VmState::Rescued], NONE),
            Action::Restore => (&[VmState::SoftDeleted], NONE),
        }
    }

    /// The task state the action sets (none: the compute changes no
    /// state).
    fn task_state(&self) -> Option<TaskState> {
        Some(match self {
            Action::Reboot { hard: true } => TaskState::RebootingHard,
            Action::Reboot { hard: false } => TaskState::Rebooting,
            Action::Stop => TaskState::PoweringOff,
            Action::Start => TaskState::PoweringOn,
            Action::Pause => TaskState::Pausing,
            Action::Unpause => TaskState::Unpausing,
            Action::Suspend => TaskState::Suspending,
            Action::Resume => TaskState::Resuming,
            Action::ChangePassword { .. } => TaskState::UpdatingPassword,
            Action::TriggerCrashDump => return None,
            Action::Rescue { .. } => TaskState::Rescuing,
            Action::Unrescue => TaskState::Unrescuing,
            Action::Restore => TaskState::Restoring,
        })
    }

    /// Whether nova checks the instance's host before the state
    /// (`check_instance_host`: 409 "not ready").
    fn needs_host_first(&self) -> bool {
        matches!(
            self,
            Action::Stop | Action::Start | Action::TriggerCrashDump
        )
    }
}

/// Nova's `InstanceNotReady` (409).
pub(crate) fn not_ready(inst: &Instance) -> Fault {
    Fault::conflict(format!("Instance {} is not ready", inst.uuid()))
}

/// Performs `action` on `inst`: 409 (nothing changes) when the instance is
/// locked, in a state the action is not allowed in, on no host, or
/// another action got there first.
pub(crate) async fn act(
    st: &ApiState,
    ctx: &Ctx,
    mut inst: Instance,
    action: Action,
) -> ApiResult<()> {
    let id = inst.uuid().clone();
    let host = inst.host().clone().unwrap_or_default();
    super::check_instance_lock(ctx, &inst)?;
    if action.needs_host_first() && host.is_empty() {
        return Err(not_ready(&inst));
    }
    let (vm, task) = action.allowed();
    super::check_instance_state(&inst, action.method(), vm, task)?;
    super::check_launched(&inst, action.method())?;
    if action == Action::Restore {
        super::create::check_restore_quota(st, &inst).await?;
    }
    if action == Action::Restore && host.is_empty() {
        // Nova restores an instance on no host in the database alone.
        inst.set_vm_state(Some(VmState::Active.into()));
        inst.set_task_state(None);
        inst.set_deleted_at(None);
        save_expecting(st, &mut inst, task, &action).await?;
        record(st, ctx, &id, action.record()).await?;
        return Ok(());
    }
    if host.is_empty() {
        return Err(not_ready(&inst));
    }
    let old = OldStates::of(&inst);
    let saved = if let Some(t) = action.task_state() {
        inst.set_task_state(Some(t.into()));
        if action == Action::Restore {
            inst.set_deleted_at(None);
        }
        save_expecting(st, &mut inst, task, &action).await?;
        true
    } else {
        false
    };
    record(st, ctx, &id, action.record()).await?;
    let rpc = ctx.rpc();
    if saved {
        // As nova's Instance.save: `instance.update`, published as nova-compute.
        st.notifier
            .instance_update(&rpc, &inst, &old, Source::Compute, &st.cfg.host)
            .await;
    }
    let compute = &st.rpc.compute;
    match action {
        Action::Reboot { hard } => {
            let kind = if hard { "HARD" } else { "SOFT" };
            compute
                .reboot_instance(
                    &rpc,
                    &host,
                    &inst,
                    &serde_json::Value::Null,
                    &kind.to_owned(),
                )
                .await
        }
        Action::Stop => compute.stop_instance(&rpc, &host, &inst, &Some(true)).await,
        Action::Start => compute.start_instance(&rpc, &host, &inst).await,
        Action::Pause => compute.pause_instance(&rpc, &host, &inst).await,
        Action::Unpause => compute.unpause_instance(&rpc, &host, &inst).await,
        Action::Suspend => compute.suspend_instance(&rpc, &host, &inst).await,
        Action::Resume => compute.resume_instance(&rpc, &host, &inst).await,
        Action::TriggerCrashDump => compute.trigger_crash_dump(&rpc, &host, &inst).await,
        Action::Unrescue => compute.unrescue_instance(&rpc, &host, &inst).await,
        Action::Restore => compute.restore_instance(&rpc, &host, &inst).await,
        Action::Rescue {
            password,
            image_ref,
        } => {
            compute
                .rescue_instance(&rpc, &host, &inst, &Some(password), &image_ref, &Some(true))
                .await
        }
        Action::ChangePassword { password } => {
            return compute
                .set_admin_password(&rpc, &host, &inst, &password)
                .await
                .map_err(password_fault);
        }
    }
    .map_err(Fault::internal)
}

/// The API's answer to a failed `set_admin_password` call (nova's
/// `AdminPasswordController`).
fn password_fault(e: nova_rpc::Error) -> Fault {
    match e.remote() {
        Some(r)
            if r.is("nova.exception", "InstancePasswordSetFailed")
                || r.is("nova.exception", "SetAdminPasswdNotSupported")
                || r.is("nova.exception", "InstanceAgentNotEnabled") =>
        {
            Fault::conflict(r.message.clone())
        }
        Some(r) if r.is("builtins", "NotImplementedError") => Fault::new(
            axum::http::StatusCode::NOT_IMPLEMENTED,
            "Unable to set password on instance",
        ),
        _ => Fault::internal(e),
    }
}

/// Saves `inst` if its task state is still one of `task` (409 when
/// another action got there first).
async fn save_expecting(
    st: &ApiState,
    inst: &mut Instance,
    task: &[Option<TaskState>],
    action: &Action,
) -> ApiResult<()> {
    let id = inst.uuid().clone();
    st.objects
        .save_with(
            &admin_ctx(),
            inst,
            &SaveOptions::expected_task_state(task.iter().map(|t| t.map(TaskState::as_str))),
        )
        .await
        .map_err(|_| {
            Fault::conflict(format!(
                "Cannot '{}' instance {id}: another action is in progress",
                action.api_name()
            ))
        })
}

/// Records the start of instance action `name` for the request.
pub(crate) async fn record(st: &ApiState, ctx: &Ctx, uuid: &str, name: &str) -> ApiResult<()> {
    ia::action_start(&st.objects, &ctx.rpc(), uuid, name).await?;
    Ok(())
}

/// Nova's `API.lock`: the owner's lock of a locked server changes
/// nothing; otherwise `locked`, `locked_by` (`owner` or `admin`) and the
/// reason (system metadata `locked_reason`), as action `lock` with its
/// `api_lock` event.
pub(crate) async fn lock(
    st: &ApiState,
    ctx: &Ctx,
    mut inst: Instance,
    reason: Option<String>,
) -> ApiResult<()> {
    let is_owner = inst.project_id().as_deref() == Some(ctx.project_id.as_str());
    if *inst.locked() && is_owner {
        return Ok(());
    }
    let uuid = inst.uuid().clone();
    record(st, ctx, &uuid, names::LOCK).await?;
    let rctx = ctx.rpc();
    let work = async {
        inst.set_locked(true);
        inst.set_locked_by(Some(if is_owner { "owner" } else { "admin" }.into()));
        if let Some(r) = reason {
            inst.system_metadata_mut()
                .insert("locked_reason".into(), Some(r));
        }
        st.objects.save(&admin_ctx(), &mut inst).await?;
        Ok(())
    };
    ia::reported(&st.objects, &rctx, &uuid, "api_lock", &st.cfg.host, work)
        .await
        .map_err(Fault::internal)?;
    st.notifier
        .instance_action_from(
            &rctx,
            &inst,
            Source::Api,
            &st.cfg.host,
            "lock",
            None::<Phase>,
            None,
        )
        .await;
    Ok(())
}

/// Nova's `is_expected_locked_by`: whether `ctx` unlocks a lock of its
/// own kind (an owner's lock by the owner, an admin's by an admin).
pub(crate) fn is_expected_locked_by(ctx: &Ctx, inst: &Instance) -> bool {
    let is_owner = inst.project_id().as_deref() == Some(ctx.project_id.as_str());
    let expect = if is_owner { "owner" } else { "admin" };
    inst.locked_by().as_deref().is_none_or(|by| by == expect)
}

/// Nova's `API.unlock`: action `unlock` with its `api_unlock` event.
pub(crate) async fn unlock(st: &ApiState, ctx: &Ctx, mut inst: Instance) -> ApiResult<()> {
    let uuid = inst.uuid().clone();
    record(st, ctx, &uuid, names::UNLOCK).await?;
    let rctx = ctx.rpc();
    let work = async {
        inst.set_locked(false);
        inst.set_locked_by(None);
        if inst.system_metadata().contains_key("locked_reason") {
            inst.system_metadata_mut().remove("locked_reason");
        }
        st.objects.save(&admin_ctx(), &mut inst).await?;
        Ok(())
    };
    ia::reported(&st.objects, &rctx, &uuid, "api_unlock", &st.cfg.host, work)
        .await
        .map_err(Fault::internal)?;
    st.notifier
        .instance_action_from(
            &rctx,
            &inst,
            Source::Api,
            &st.cfg.host,
            "unlock",
            None::<Phase>,
            None,
        )
        .await;
    Ok(())
}

/// `os-resetState`: the vm_state set (`active` or `error`), the task
/// state cleared, whatever they were; action `resetState`, finished.
pub(crate) async fn reset_state(
    st: &ApiState,
    ctx: &Ctx,
    mut inst: Instance,
    state: VmState,
) -> ApiResult<()> {
    let rctx = ctx.rpc();
    let action = ia::action_start(&st.objects, &rctx, inst.uuid(), names::RESET_STATE).await?;
    let old = OldStates::of(&inst);
    inst.set_vm_state(Some(state.into()));
    inst.set_task_state(None);
    st.objects.save(&admin_ctx(), &mut inst).await?;
    st.notifier
        .instance_update(&rctx, &inst, &old, Source::Compute, &st.cfg.host)
        .await;
    ia::action_finish(&st.objects, action).await?;
    Ok(())
}

/// `injectNetworkInfo` (nova's `API.inject_network_info`): 409 when the
/// instance is locked (to a non-admin), else cast to its compute, which
/// refreshes the info cache and has its driver inject it; no instance
/// action, in any state. A server on no host is 409 here (nova's rpcapi
/// raises `NovaException`, a 500).
pub(crate) async fn inject_network_info(
    st: &ApiState,
    ctx: &Ctx,
    inst: &Instance,
) -> ApiResult<()> {
    super::check_instance_lock(ctx, inst)?;
    let host = inst.host().clone().unwrap_or_default();
    if host.is_empty() {
        return Err(not_ready(inst));
    }
    st.rpc
        .compute
        .inject_network_info(&ctx.rpc(), &host, inst)
        .await
        .map_err(Fault::internal)
}

/// `os-getConsoleOutput`: the log from the compute (its last `length`
/// lines), control characters but tab and newline removed.
pub(crate) async fn console_output(
    st: &ApiState,
    ctx: &Ctx,
    inst: &Instance,
    length: Option<i64>,
) -> ApiResult<String> {
    let host = inst.host().clone().unwrap_or_default();
    if host.is_empty() {
        return Err(not_ready(inst));
    }
    let out = st
        .rpc
        .compute
        .get_console_output(&ctx.rpc(), &host, inst, &length)
        .await
        .map_err(|e| match e.remote() {
            Some(r) if r.is("builtins", "NotImplementedError") => Fault::new(
                axum::http::StatusCode::NOT_IMPLEMENTED,
                "Action not supported by the driver of this server's host.",
            ),
            Some(r)
                if r.is("nova.exception", "InstanceNotFound")
                    || r.is("nova.exception", "ConsoleNotAvailable") =>
            {
                Fault::not_found(r.message.clone())
            }
            _ => Fault::internal(e),
        })?;
    Ok(out
        .chars()
        .filter(|&c| !matches!(c, '\x00'..='\x08' | '\x0b'..='\x1f'))
        .collect())
}
