//! The resource tracker's healing and the build watchdog: Placement
//! allocations left by instances deleted behind this host's back (nova's
//! `_remove_deleted_instances_allocations`), and instances of this host
//! building for longer than `[DEFAULT] instance_build_timeout` (nova's
//! `_check_instance_build_time`).

use std::collections::BTreeSet;

use nova_objects::{Instance, VersionedObject};
use nova_service::cells::set_error;
use nova_service::notifications::OldStates;
use nova_service::states::VmState;

use crate::manager::{ComputeManager, admin};

impl ComputeManager {
    /// Removes the allocations against this host's provider `node` whose
    /// consumer is an instance that is deleted (nova's
    /// `_remove_deleted_instances_allocations`): `tracked` are the
    /// instances this host manages (kept). A consumer nova does not know
    /// yet (being created) and an instance being scheduled are kept.
    pub(crate) async fn remove_deleted_instances_allocations(
        &self,
        node: &str,
        tracked: &BTreeSet<String>,
    ) {
        let me = &self.inner;
        let consumers = match me.placement.provider_consumers_async(node).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "skipping removal of allocations for deleted instances");
                return;
            }
        };
        let mut ctx = admin();
        ctx.set("read_deleted", "yes");
        for consumer in consumers {
            if tracked.contains(&consumer) {
                continue;
            }
            let inst = match me.objects.get_by_uuid::<Instance>(&ctx, &consumer).await {
                Ok(i) => i,
                // Not in the database: most likely one being created
                // (nova skips it too; `nova-manage placement audit` finds
                // what is really orphaned).
                Err(e) if e.is_not_found() => continue,
                Err(e) => {
                    tracing::warn!(consumer, error = %e, "cannot read an allocation's instance");
                    continue;
                }
            };
            if inst.obj_attr_is_set("deleted") && *inst.deleted() {
                tracing::info!(
                    instance = %consumer,
                    "instance deleted (perhaps while it was scheduled): removing its allocations from this host"
                );
                if let Err(e) = me.placement.delete_allocations_async(&consumer).await {
                    tracing::warn!(instance = %consumer, error = %e, "cannot remove the allocations of a deleted instance");
                }
            }
        }
    }

    /// Puts the instances of this host building for longer than
    /// `instance_build_timeout` in ERROR (nova's
    /// `_check_instance_build_time`, with a fault saying why).
    pub async fn check_instance_build_time(&self) {
        let Some(timeout) = self.inner.cfg.instance_build_timeout else {
            return;
        };
        let Ok(instances) = self.instances_here().await else {
            return;
        };
        let ctx = admin();
        let limit = chrono::Utc::now() - chrono::Duration::from_std(timeout).unwrap_or_default();
        for mut inst in instances {
            if inst.vm_state() != &VmState::Building || inst.created_at().is_none_or(|t| t > limit)
            {
                continue;
            }
            let lock = self.lock_for(inst.uuid());
            let r = {
                let _g = lock.lock().await;
                let old = OldStates::of(&inst);
                tracing::warn!(instance = %inst.uuid(), "instance build timed out: set to error state");
                let r = set_error(
                    &self.inner.objects,
                    &ctx,
                    &mut inst,
                    500,
                    "Instance build timed out. Set to error state.",
                    Some(self.host()),
                )
                .await;
                if r.is_ok() {
                    self.updated(&ctx, &inst, &old).await;
                }
                r
            };
            drop(lock);
            self.unlock_for(inst.uuid());
            if let Err(e) = r {
                tracing::warn!(instance = %inst.uuid(), error = %e, "cannot time out a build");
            }
        }
    }
}
