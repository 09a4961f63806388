//! The single-host actions after a build (nova's `ComputeManager`
//! `pause_instance`, `suspend_instance`, `set_admin_password`,
//! `rescue_instance`, `soft_delete_instance`, ...): the driver call, the
//! states it ends in, and what a failure leaves behind, as nova's
//! decorators do it (`reverts_task_state` + `wrap_instance_fault`, or
//! `_error_out_instance_on_exception` to ERROR).
//!
//! The manager runs each under the instance's lock as an event of the
//! request's instance action (`compute_<method>`); an error returned here
//! ends that event in `Error` after the instance's record says what
//! happened.

use nova_objects::{Instance, SaveOptions};
use nova_rpc::{RemoteError, RequestContext};
use nova_service::cells::{record_fault, set_error};
use nova_service::notifications::{ExceptionPayload, OldStates, Phase, Source};
use nova_service::states::{TaskState, VmState};
use nova_virt::{InstanceSpec, PowerState};

use crate::manager::ComputeManager;

/// What a failed driver call leaves (nova's two decorators).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnFailure {
    /// `reverts_task_state` + `wrap_instance_fault`: the task state back
    /// to none and a fault; the vm_state unchanged.
    RevertTask,
    /// `_error_out_instance_on_exception`: ERROR with a fault.
    Error,
}

/// The guest's admin user (the image's `os_admin_user`, else nova's
/// default for the OS type).
fn admin_user(inst: &Instance) -> String {
    let meta = inst.system_metadata();
    if let Some(Some(u)) = meta.get("image_os_admin_user") {
        return u.clone();
    }
    match meta.get("image_os_type") {
        Some(Some(t)) if t == "windows" => "Administrator".into(),
        _ => "root".into(),
    }
}

/// A RemoteError of nova's exception `class` (module `nova.exception`),
/// what the API maps to its fault.
pub(crate) fn nova_error(class: &str, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(NovaError(RemoteError::new(
        class,
        "nova.exception",
        message,
    )))
}

/// A [`RemoteError`] carried through `anyhow` to the caller of a call.
#[derive(Debug)]
pub(crate) struct NovaError(pub(crate) RemoteError);

impl std::fmt::Display for NovaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for NovaError {}

impl ComputeManager {
    /// The instance's power state as the driver sees it now.
    pub(crate) async fn power_of(&self, uuid: &str) -> PowerState {
        match self.inner.driver.get_info(uuid).await {
            Ok(i) => i.state,
            Err(_) => PowerState::NoState,
        }
    }

    /// Records a failed action: the fault, then the instance's states as
    /// `on_failure` says; returns the error for the event.
    async fn failed(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        what: &str,
        err: nova_virt::Error,
        on_failure: OnFailure,
        event: &str,
    ) -> anyhow::Error {
        let me = &self.inner;
        let msg = format!("{what} of instance {} failed: {err}", inst.uuid());
        tracing::warn!(instance = %inst.uuid(), error = %err, "{what} failed");
        // nova's `wrap_exception`: `compute.exception` for these actions.
        let fault = ExceptionPayload::from_driver(module_path!(), event, &err);
        self.notifier()
            .exception(ctx, Source::Compute, self.host(), &fault)
            .await;
        let old = OldStates::of(inst);
        let r = match on_failure {
            OnFailure::Error => {
                set_error(&me.objects, ctx, inst, 500, &msg, Some(self.host())).await
            }
            OnFailure::RevertTask => {
                match record_fault(
                    &me.objects,
                    ctx,
                    inst.uuid(),
                    500,
                    &msg,
                    None,
                    Some(self.host()),
                )
                .await
                {
                    Ok(()) => {
                        inst.set_task_state(None);
                        me.objects.save(ctx, inst).await
                    }
                    Err(e) => Err(e),
                }
            }
        };
        if let Err(e) = r {
            return anyhow::Error::new(e).context(msg);
        }
        self.updated(ctx, inst, &old).await;
        anyhow::Error::new(err).context(msg)
    }

    /// One driver operation that moves the instance to `vm_state` from
    /// `expected` (pause, unpause, suspend, resume, soft delete, restore).
    ///
    /// `action` names its notifications (`instance.<action>.start` /
    /// `.end`, nova's `notify_about_instance_action`); a failure is a
    /// `compute.exception` naming `<action>_instance`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn power_action(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        what: &str,
        action: &str,
        expected: TaskState,
        vm_state: VmState,
        on_failure: OnFailure,
        op: impl std::future::Future<Output = nova_virt::Result<()>>,
    ) -> anyhow::Result<()> {
        self.notify_action(ctx, &inst, action, Phase::Start, None)
            .await;
        if let Err(e) = op.await {
            let function = format!("{action}_instance");
            return Err(self
                .failed(ctx, &mut inst, what, e, on_failure, &function)
                .await);
        }
        let old = OldStates::of(&inst);
        inst.set_power_state(Some(self.power_of(inst.uuid()).await.code() as i64));
        inst.set_vm_state(Some(vm_state.into()));
        inst.set_task_state(None);
        self.inner
            .objects
            .save_with(
                ctx,
                &mut inst,
                &SaveOptions::expected_task_state([Some(expected.as_str())]),
            )
            .await?;
        self.updated(ctx, &inst, &old).await;
        self.notify_action(ctx, &inst, action, Phase::End, None)
            .await;
        Ok(())
    }

    /// `pause_instance`.
    pub(crate) async fn do_pause(
        &self,
        ctx: &RequestContext,
        inst: Instance,
    ) -> anyhow::Result<()> {
        let d = self.inner.driver.clone();
        let uuid = inst.uuid().clone();
        self.power_action(
            ctx,
            inst,
            "Pause",
            "pause",
            TaskState::Pausing,
            VmState::Paused,
            OnFailure::RevertTask,
            async move { d.pause(&uuid).await },
        )
        .await
    }

    /// `unpause_instance`.
    pub(crate) async fn do_unpause(
        &self,
        ctx: &RequestContext,
        inst: Instance,
    ) -> anyhow::Result<()> {
        let d = self.inner.driver.clone();
        let uuid = inst.uuid().clone();
        self.power_action(
            ctx,
            inst,
            "Unpause",
            "unpause",
            TaskState::Unpausing,
            VmState::Active,
            OnFailure::RevertTask,
            async move { d.unpause(&uuid).await },
        )
        .await
    }

    /// `suspend_instance`: the vm_state it had is kept in system metadata
    /// (`old_vm_state`) for the resume.
    pub(crate) async fn do_suspend(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
    ) -> anyhow::Result<()> {
        let old = inst.vm_state().clone();
        inst.system_metadata_mut()
            .insert("old_vm_state".into(), old);
        let d = self.inner.driver.clone();
        let uuid = inst.uuid().clone();
        self.power_action(
            ctx,
            inst,
            "Suspend",
            "suspend",
            TaskState::Suspending,
            VmState::Suspended,
            OnFailure::Error,
            async move { d.suspend(&uuid).await },
        )
        .await
    }

    /// `resume_instance`: back to the vm_state before the suspend
    /// (active by default).
    pub(crate) async fn do_resume(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
    ) -> anyhow::Result<()> {
        let back = inst
            .system_metadata_mut()
            .remove("old_vm_state")
            .flatten()
            .and_then(|s| s.parse::<VmState>().ok())
            .unwrap_or(VmState::Active);
        let d = self.inner.driver.clone();
        let uuid = inst.uuid().clone();
        self.power_action(
            ctx,
            inst,
            "Resume",
            "resume",
            TaskState::Resuming,
            back,
            OnFailure::Error,
            async move { d.resume(&uuid).await },
        )
        .await
    }

    /// `set_admin_password` (a call): nova's exceptions for the API, the
    /// task state back to none whatever happens.
    pub(crate) async fn do_set_admin_password(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        new_pass: &str,
    ) -> anyhow::Result<()> {
        let me = &self.inner;
        let uuid = inst.uuid().clone();
        let expect = SaveOptions::expected_task_state([Some(TaskState::UpdatingPassword.as_str())]);
        let err = if self.power_of(&uuid).await != PowerState::Running {
            Some(nova_error(
                "InstancePasswordSetFailed",
                format!(
                    "Failed to set admin password on {uuid} because instance {uuid} is not running"
                ),
            ))
        } else {
            match me
                .driver
                .set_admin_password(&uuid, &admin_user(&inst), new_pass)
                .await
            {
                Ok(()) => None,
                Err(nova_virt::Error::AgentNotEnabled(_)) => Some(nova_error(
                    "InstanceAgentNotEnabled",
                    "Guest agent is not enabled for the instance",
                )),
                Err(nova_virt::Error::NotSupported { .. }) => {
                    Some(anyhow::Error::new(NovaError(RemoteError::new(
                        "NotImplementedError",
                        "builtins",
                        "set_admin_password is not implemented by this driver or guest instance.",
                    ))))
                }
                Err(e) => {
                    tracing::warn!(instance = %uuid, error = %e, "set_admin_password failed");
                    let msg = format!(
                        "Failed to set admin password on {uuid} because error setting admin password"
                    );
                    let _ =
                        record_fault(&me.objects, ctx, &uuid, 500, &msg, None, Some(self.host()))
                            .await;
                    Some(nova_error("InstancePasswordSetFailed", msg))
                }
            }
        };
        let old = OldStates::of(&inst);
        inst.set_task_state(None);
        me.objects.save_with(ctx, &mut inst, &expect).await?;
        self.updated(ctx, &inst, &old).await;
        match err {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// `trigger_crash_dump`: no state changes (what the dump does is the
    /// guest's); a failure is a fault.
    pub(crate) async fn do_trigger_crash_dump(
        &self,
        ctx: &RequestContext,
        inst: Instance,
    ) -> anyhow::Result<()> {
        let me = &self.inner;
        self.notify_action(ctx, &inst, "trigger_crash_dump", Phase::Start, None)
            .await;
        match me.driver.trigger_crash_dump(inst.uuid()).await {
            Ok(()) => {
                self.notify_action(ctx, &inst, "trigger_crash_dump", Phase::End, None)
                    .await;
                Ok(())
            }
            Err(e) => {
                let fault = ExceptionPayload::from_driver(module_path!(), "trigger_crash_dump", &e);
                self.notifier()
                    .exception(ctx, Source::Compute, self.host(), &fault)
                    .await;
                let msg = format!("Trigger crash dump of instance {} failed: {e}", inst.uuid());
                record_fault(
                    &me.objects,
                    ctx,
                    inst.uuid(),
                    500,
                    &msg,
                    None,
                    Some(self.host()),
                )
                .await?;
                Err(anyhow::Error::new(e).context(msg))
            }
        }
    }

    /// `get_console_output`: the log, its last `tail_length` lines when
    /// asked, with bytes outside ASCII replaced (as nova decodes it).
    pub(crate) async fn do_get_console_output(
        &self,
        inst: &Instance,
        tail_length: Option<i64>,
    ) -> Result<String, RemoteError> {
        let out = match self.inner.driver.get_console_output(inst.uuid()).await {
            Ok(o) => o,
            Err(nova_virt::Error::NotSupported { .. }) => {
                return Err(RemoteError::new(
                    "NotImplementedError",
                    "builtins",
                    "get_console_output is not implemented by this driver",
                ));
            }
            Err(nova_virt::Error::InstanceNotFound(u)) => {
                return Err(RemoteError::new(
                    "InstanceNotFound",
                    "nova.exception",
                    format!("Instance {u} could not be found."),
                )
                .with_kwarg("instance_id", u));
            }
            Err(e) => {
                return Err(RemoteError::new(
                    "ConsoleNotAvailable",
                    "nova.exception",
                    format!("Guest does not have a console available. ({e})"),
                ));
            }
        };
        let out: String = out
            .chars()
            .map(|c| if c.is_ascii() { c } else { '\u{FFFD}' })
            .collect();
        // nova's `_tail_log`: `log.split('\n')[-length:]`, Python's slice
        // (0: nothing; -1, which the API lets through: all but the first).
        Ok(match tail_length {
            None => out,
            Some(0) => String::new(),
            Some(n) => {
                let lines: Vec<&str> = out.split('\n').collect();
                let len = lines.len() as i64;
                let from = if n > 0 {
                    (len - n).max(0)
                } else {
                    (-n).min(len)
                };
                lines[from as usize..].join("\n")
            }
        })
    }

    /// `rescue_instance`: the guest boots from the rescue image (the one
    /// asked for, or the instance's own), its disk attached; ERROR with
    /// a fault when the driver fails.
    pub(crate) async fn do_rescue(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        rescue_password: Option<String>,
        rescue_image_ref: Option<String>,
    ) -> anyhow::Result<()> {
        let me = &self.inner;
        let image = rescue_image_ref
            .filter(|r| !r.is_empty())
            .or_else(|| {
                inst.system_metadata()
                    .get("image_base_image_ref")
                    .cloned()
                    .flatten()
            })
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| inst.image_ref().clone().unwrap_or_default());
        let mut spec: InstanceSpec = self.spec_of(&inst, rescue_password);
        spec.image_id = image.clone();
        spec.image_path = me
            .images
            .get()
            .map(|c| c.path_of(&image))
            .filter(|p| p.exists())
            .map(|p| p.display().to_string());
        let host = self.host().to_owned();
        self.notifier().instance_exists(ctx, &inst, &host).await;
        self.notifier()
            .instance_rescue(
                ctx,
                &inst,
                &host,
                Phase::Start,
                None,
                Some(image.clone()),
                None,
            )
            .await;
        if let Err(e) = me.driver.rescue(&spec, &image).await {
            return Err(self
                .failed(
                    ctx,
                    &mut inst,
                    "Rescue",
                    e,
                    OnFailure::Error,
                    "rescue_instance",
                )
                .await);
        }
        let old = OldStates::of(&inst);
        inst.set_power_state(Some(self.power_of(inst.uuid()).await.code() as i64));
        inst.set_vm_state(Some(VmState::Rescued.into()));
        inst.set_task_state(None);
        inst.set_launched_at(Some(chrono::Utc::now()));
        me.objects
            .save_with(
                ctx,
                &mut inst,
                &SaveOptions::expected_task_state([Some(TaskState::Rescuing.as_str())]),
            )
            .await?;
        self.updated(ctx, &inst, &old).await;
        self.notifier()
            .instance_rescue(ctx, &inst, &host, Phase::End, None, Some(image), None)
            .await;
        Ok(())
    }

    /// `unrescue_instance`: back to the instance's own disk, active.
    pub(crate) async fn do_unrescue(
        &self,
        ctx: &RequestContext,
        inst: Instance,
    ) -> anyhow::Result<()> {
        let d = self.inner.driver.clone();
        let uuid = inst.uuid().clone();
        self.power_action(
            ctx,
            inst,
            "Unrescue",
            "unrescue",
            TaskState::Unrescuing,
            VmState::Active,
            OnFailure::Error,
            async move { d.unrescue(&uuid).await },
        )
        .await
    }

    /// `soft_delete_instance`: powered off (no driver has a soft delete of
    /// its own), SOFT_DELETED until restored or reclaimed.
    pub(crate) async fn do_soft_delete(
        &self,
        ctx: &RequestContext,
        inst: Instance,
    ) -> anyhow::Result<()> {
        let d = self.inner.driver.clone();
        let uuid = inst.uuid().clone();
        let timeout = self.inner.cfg.shutdown_timeout;
        self.power_action(
            ctx,
            inst,
            "Soft delete",
            "soft_delete",
            TaskState::SoftDeleting,
            VmState::SoftDeleted,
            OnFailure::Error,
            async move {
                match d.power_off(&uuid, timeout).await {
                    // Already off.
                    Err(nova_virt::Error::InvalidState { .. }) => Ok(()),
                    r => r,
                }
            },
        )
        .await
    }

    /// `restore_instance`: powered on again, active.
    pub(crate) async fn do_restore(
        &self,
        ctx: &RequestContext,
        inst: Instance,
    ) -> anyhow::Result<()> {
        let d = self.inner.driver.clone();
        let uuid = inst.uuid().clone();
        self.power_action(
            ctx,
            inst,
            "Restore",
            "restore",
            TaskState::Restoring,
            VmState::Active,
            OnFailure::Error,
            async move {
                match d.power_on(&uuid).await {
                    Err(nova_virt::Error::InvalidState { .. }) => Ok(()),
                    r => r,
                }
            },
        )
        .await
    }

    /// Nova's `_reclaim_queued_deletes`: the soft-deleted instances of this
    /// host whose `deleted_at` is older than `reclaim_instance_interval`
    /// are deleted for good (guest, claim, allocations, record).
    pub async fn reclaim_queued_deletes(&self) {
        let me = &self.inner;
        let Some(interval) = me.cfg.reclaim_instance_interval else {
            return;
        };
        let ctx = nova_service::context::admin();
        let Ok(instances) = self.instances_here().await else {
            return;
        };
        let now = chrono::Utc::now();
        for inst in instances {
            if inst.vm_state() != &VmState::SoftDeleted || inst.task_state().is_some() {
                continue;
            }
            let expired = inst.deleted_at().is_some_and(|d| {
                now - d >= chrono::Duration::from_std(interval).unwrap_or_default()
            });
            if !expired {
                continue;
            }
            tracing::info!(instance = %inst.uuid(), "reclaiming a soft-deleted instance");
            let uuid = inst.uuid().clone();
            let lock = self.lock_for(&uuid);
            {
                let _g = lock.lock().await;
                if let Err(e) = self.do_terminate(ctx.clone(), inst).await {
                    tracing::warn!(instance = %uuid, error = %e, "reclaim failed");
                }
            }
            drop(lock);
            self.unlock_for(&uuid);
        }
    }
}
