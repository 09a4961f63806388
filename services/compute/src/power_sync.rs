//! Power-state sync (`_sync_power_states`): the database follows the
//! hypervisor.

use nova_objects::{Instance, VersionedObject};
use nova_service::states::VmState;
use nova_virt::PowerState;

use crate::manager::{ComputeManager, admin};

impl ComputeManager {
    /// `active` instance found shut off (or gone) becomes `stopped`.
    pub async fn sync_power_states(&self) {
        let ctx = admin();
        let Ok(instances) = self.instances_here().await else {
            return;
        };
        for inst in instances.into_iter().filter(|i| i.task_state().is_none()) {
            let uuid = inst.uuid().clone();
            let lock = self.lock_for(&uuid);
            {
                let _g = lock.lock().await;
                let Ok(mut cur) = self
                    .inner
                    .objects
                    .get_by_uuid::<Instance>(&ctx, &uuid)
                    .await
                else {
                    continue;
                };
                if cur.task_state().is_some() {
                    continue;
                }
                let power = match self.inner.driver.get_info(&uuid).await {
                    Ok(info) => info.state,
                    Err(nova_virt::Error::InstanceNotFound(_)) => PowerState::NoState,
                    Err(_) => continue,
                };
                let code = power.code() as i64;
                let old = nova_service::notifications::OldStates::of(&cur);
                if cur.power_state().unwrap_or(-1) != code {
                    cur.set_power_state(Some(code));
                }
                if cur.vm_state() == &VmState::Active
                    && matches!(
                        power,
                        PowerState::Shutdown | PowerState::NoState | PowerState::Crashed
                    )
                {
                    cur.set_vm_state(Some(VmState::Stopped.into()));
                }
                if !cur.obj_what_changed().is_empty()
                    && self.inner.objects.save(&ctx, &mut cur).await.is_ok()
                {
                    self.updated(&ctx, &cur, &old).await;
                }
            }
            drop(lock);
            self.unlock_for(&uuid);
        }
    }
}
