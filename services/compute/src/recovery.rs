//! Start-up recovery: every instance of this host left in a transitional
//! state ends in a stable one.

use nova_rpcapi::compute::Compute as _;
use nova_service::cells::set_error;
use nova_service::states::{PowerState, TaskState, VmState};
use serde_json::Value;

use crate::manager::{ComputeManager, admin};

impl ComputeManager {
    /// transitional state ends in a stable one.
    pub async fn recover_instances(&self) {
        let ctx = admin();
        let Ok(instances) = self.instances_here().await else {
            tracing::warn!("cannot list this host's instances for recovery");
            return;
        };
        for inst in instances {
            let task: Option<TaskState> = inst.task_state().as_deref().and_then(|t| t.parse().ok());
            let building = inst.vm_state() == &VmState::Building
                || task.is_some_and(|t| TaskState::BUILDING.contains(&t));
            let r = match task {
                // nova's _complete_partial_deletion: deleted here, its row
                // left behind (the database was away at the destroy).
                _ if inst.vm_state() == &VmState::Deleted => {
                    let mut inst = inst;
                    match self.inner.objects.destroy(&ctx, &mut inst).await {
                        Err(e) if !e.is_not_found() => Err(e.into()),
                        _ => Ok(()),
                    }
                }
                Some(TaskState::Deleting) => self
                    .terminate_instance(ctx.clone(), inst, None)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message)),
                _ if building => {
                    let mut inst = inst;
                    let old = nova_service::notifications::OldStates::of(&inst);
                    let _ = self.inner.driver.destroy(inst.uuid()).await;
                    self.drop_claim(inst.uuid()).await;
                    let _ = self
                        .inner
                        .placement
                        .delete_allocations_async(inst.uuid())
                        .await;
                    let r = set_error(
                        &self.inner.objects,
                        &ctx,
                        &mut inst,
                        500,
                        "Instance was being built when nova-compute restarted.",
                        Some(self.host()),
                    )
                    .await;
                    if r.is_ok() {
                        self.updated(&ctx, &inst, &old).await;
                    }
                    r.map_err(Into::into)
                }
                Some(t) if t.is_reboot() => {
                    let hard = TaskState::HARD_REBOOT.contains(&t);
                    let kind = if hard { "HARD" } else { "SOFT" };
                    self.reboot_instance(ctx.clone(), inst, Value::Null, kind.into())
                        .await
                        .map_err(|e| anyhow::anyhow!(e.message))
                }
                Some(TaskState::PoweringOff) => self
                    .stop_instance(ctx.clone(), inst, Some(true))
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message)),
                // nova's `_init_instance`: a pause or unpause the restart
                // cut short ends where the guest is.
                Some(TaskState::Unpausing)
                    if self.power_of(inst.uuid()).await == PowerState::Paused =>
                {
                    self.unpause_instance(ctx.clone(), inst)
                        .await
                        .map_err(|e| anyhow::anyhow!(e.message))
                }
                Some(TaskState::Pausing | TaskState::Unpausing)
                    if self.power_of(inst.uuid()).await == PowerState::Running =>
                {
                    let mut inst = inst;
                    inst.set_task_state(None);
                    inst.set_vm_state(Some(VmState::Active.into()));
                    self.inner
                        .objects
                        .save(&ctx, &mut inst)
                        .await
                        .map_err(Into::into)
                }
                Some(TaskState::PoweringOn) => self
                    .start_instance(ctx.clone(), inst)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message)),
                _ if inst.task_state().is_some() => {
                    let mut inst = inst;
                    let old = nova_service::notifications::OldStates::of(&inst);
                    inst.set_task_state(None);
                    let r = self.inner.objects.save(&ctx, &mut inst).await;
                    if r.is_ok() {
                        self.updated(&ctx, &inst, &old).await;
                    }
                    r.map_err(Into::into)
                }
                _ => Ok(()),
            };
            if let Err(e) = r {
                tracing::warn!(error = %e, "recovery of an instance failed");
            }
        }
        self.sync_power_states().await;
    }
}
