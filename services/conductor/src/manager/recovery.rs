//! Builds that lost their way: instances still waiting to be scheduled
//! (building, no host) whose request was lost with a crashed process, or
//! that waited longer than `[DEFAULT] instance_build_timeout`, end in
//! ERROR with a fault, their allocations released and buried in cell0 as
//! a failed scheduling is.

use nova_objects::{Instance, ListQuery, SaveOptions};
use nova_service::cells::{CELL0_UUID, record_fault};
use nova_service::notifications::{OldStates, Source};
use nova_service::states::{TaskState, VmState};

use super::Conductor;

impl Conductor {
    /// Puts every instance still waiting to be scheduled (building, no
    /// host) created before `before` in ERROR with `reason`; returns how
    /// many. An instance a compute takes meanwhile is left to it.
    pub async fn end_unscheduled_builds(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        reason: &str,
    ) -> nova_objects::Result<usize> {
        let ctx = nova_service::context::admin();
        let building: Vec<Instance> = self
            .objects
            .list(
                &ctx,
                &ListQuery::new().filter("vm_state", VmState::Building.as_str()),
            )
            .await?;
        let mut ended = 0;
        for mut inst in building {
            if inst.host().is_some() || inst.created_at().is_none_or(|t| t >= before) {
                continue;
            }
            let old = OldStates::of(&inst);
            record_fault(&self.objects, &ctx, inst.uuid(), 500, reason, None, None).await?;
            inst.set_vm_state(Some(VmState::Error.into()));
            inst.set_task_state(None);
            let expect =
                SaveOptions::expected_task_state([Some(TaskState::Scheduling.as_str()), None])
                    .expect("host", [None::<String>]);
            if let Err(e) = self.objects.save_with(&ctx, &mut inst, &expect).await {
                tracing::info!(instance = %inst.uuid(), error = %e, "a build moved on meanwhile");
                continue;
            }
            tracing::warn!(instance = %inst.uuid(), reason, "unscheduled build ended in ERROR");
            let (notifier, me) = &self.notifier;
            notifier
                .instance_update(&ctx, &inst, &old, Source::Conductor, me)
                .await;
            if let Err(e) = self.placement.delete_allocations_async(inst.uuid()).await {
                tracing::warn!(instance = %inst.uuid(), error = %e, "cannot release a lost build's allocations");
            }
            self.map_instance(&ctx, inst.uuid(), CELL0_UUID).await;
            self.drop_build_request(&ctx, inst.uuid()).await;
            ended += 1;
        }
        Ok(ended)
    }
}
