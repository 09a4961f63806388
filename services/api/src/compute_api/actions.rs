//! Server actions (nova's `API.reboot`, `API.stop`, `API.start`): each
//! checks the lock and the instance's states (nova's
//! `check_instance_state`), sets its task state atomically (a concurrent
//! action makes it a 409) and casts to the instance's compute.
//!
//! A new action: a variant of [`Action`], its states in
//! [`Action::allowed`], its task state in [`Action::task_state`] and its
//! call in [`act`].

use nova_objects::{Instance, SaveOptions};
use nova_service::states::{TaskState, VmState};

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::{ApiResult, Fault};
use crate::http::admin_ctx;

/// A server action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

/// The task states a hard reboot may interrupt.
const HARD_REBOOT_FROM: &[Option<TaskState>] = &[
    None,
    Some(TaskState::Rebooting),
    Some(TaskState::RebootPending),
    Some(TaskState::RebootStarted),
];

impl Action {
    /// The action's name in the request body (and in its policy rule).
    pub(crate) fn api_name(self) -> &'static str {
        match self {
            Action::Reboot { .. } => "reboot",
            Action::Stop => "os-stop",
            Action::Start => "os-start",
        }
    }

    /// The method name nova's state errors give.
    fn method(self) -> &'static str {
        match self {
            Action::Reboot { .. } => "reboot",
            Action::Stop => "stop",
            Action::Start => "start",
        }
    }

    /// The vm_states and task_states the action is allowed in.
    fn allowed(self) -> (&'static [VmState], &'static [Option<TaskState>]) {
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
            Action::Reboot { hard: false } => (&[VmState::Active], &[None]),
            Action::Stop => (&[VmState::Active, VmState::Error], &[None]),
            Action::Start => (&[VmState::Stopped], &[None]),
        }
    }

    /// The task state the action sets.
    fn task_state(self) -> TaskState {
        match self {
            Action::Reboot { hard: true } => TaskState::RebootingHard,
            Action::Reboot { hard: false } => TaskState::Rebooting,
            Action::Stop => TaskState::PoweringOff,
            Action::Start => TaskState::PoweringOn,
        }
    }
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
    let name = action.api_name();
    let id = inst.uuid().clone();
    super::check_instance_lock(ctx, &inst)?;
    let (vm, task) = action.allowed();
    super::check_instance_state(&inst, action.method(), vm, task)?;
    let host = inst.host().clone().unwrap_or_default();
    if host.is_empty() {
        return Err(Fault::conflict(format!(
            "Cannot '{name}' instance {id}: it is not on any host"
        )));
    }
    let old = nova_service::notifications::OldStates::of(&inst);
    inst.set_task_state(Some(action.task_state().into()));
    st.objects
        .save_with(
            &admin_ctx(),
            &mut inst,
            &SaveOptions::expected_task_state(task.iter().map(|t| t.map(TaskState::as_str))),
        )
        .await
        .map_err(|_| {
            Fault::conflict(format!(
                "Cannot '{name}' instance {id}: another action is in progress"
            ))
        })?;
    let rpc = ctx.rpc();
    // As nova's Instance.save: `instance.update`, published as nova-compute.
    st.notifier
        .instance_update(
            &rpc,
            &inst,
            &old,
            nova_service::notifications::Source::Compute,
            &st.cfg.host,
        )
        .await;
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
    }
    .map_err(Fault::internal)
}
