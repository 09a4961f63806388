//! Rebuild and evacuate on this host (nova's `ComputeManager.rebuild_instance`,
//! `_do_rebuild_instance` and the driver's default rebuild): the guest
//! powered off and destroyed (a rebuild) or found missing (an evacuation
//! from a failed host), then spawned from the (new) image through the
//! task states REBUILDING → REBUILD_BLOCK_DEVICE_MAPPING →
//! REBUILD_SPAWNING, ending ACTIVE, or STOPPED when it was stopped (or the
//! evacuation's target state says so); `instance.rebuild.start/end`.
//!
//! A failure: the Migration `failed`, `instance.rebuild.error` and ERROR
//! with a fault; an evacuation's allocation on this node is removed
//! (`delete_allocation_for_evacuated_instance`). Nova removes it after a
//! failed rebuild on the same host too, which leaves the server on its
//! host with no allocation (and none after a later rebuild that works);
//! here a same-host rebuild keeps it: one allocation per server on its
//! host.

use std::time::Duration;

use nova_objects::{Instance, Migration, SaveOptions};
use nova_rpc::RequestContext;
use nova_scheduler::placement::Name;
use nova_service::cells::set_error;
use nova_service::notifications::{ExceptionPayload, OldStates, Phase};
use nova_service::states::{TaskState, VmState};
use nova_virt::PowerState;

use crate::actions::{NovaError, nova_error};
use crate::manager::ComputeManager;

/// What a rebuild was asked (the cast's arguments the work needs).
#[derive(Debug)]
pub(crate) struct RebuildArgs {
    pub(crate) new_pass: Option<String>,
    pub(crate) image_ref: Option<String>,
    /// nova's `injected_files` (personality, ≤ 2.56): `[path, base64]`.
    pub(crate) injected_files: Vec<serde_json::Value>,
    pub(crate) recreate: bool,
    pub(crate) preserve_ephemeral: bool,
    pub(crate) migration: Option<Migration>,
    pub(crate) scheduled_node: Option<String>,
    pub(crate) target_state: Option<String>,
}

impl ComputeManager {
    /// Saves `inst` expecting task state `expected`.
    async fn save_expecting(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        expected: TaskState,
    ) -> anyhow::Result<()> {
        self.inner
            .objects
            .save_with(
                ctx,
                inst,
                &SaveOptions::expected_task_state([Some(expected.as_str())]),
            )
            .await?;
        Ok(())
    }

    async fn set_migration_status(
        &self,
        ctx: &RequestContext,
        migration: &mut Option<Migration>,
        status: &str,
    ) {
        if let Some(m) = migration.as_mut() {
            m.set_status(Some(status.into()));
            if let Err(e) = self.inner.objects.save(ctx, m).await {
                tracing::warn!(error = %e, "cannot save the migration's status");
            }
        }
    }

    /// Nova's `delete_allocation_for_evacuated_instance`: this node's
    /// provider taken out of the instance's allocations (the rest kept).
    pub(crate) async fn remove_node_allocation(&self, uuid: &str) {
        let me = &self.inner;
        let Some(rp) = self.node_uuid().await else {
            return;
        };
        let Ok(current) = me.placement.allocations_async(uuid).await else {
            return;
        };
        let mut allocs = current.allocations.clone();
        if allocs.remove(&Name::from(rp.as_str())).is_none() {
            return;
        }
        let r = me
            .placement
            .put_allocations_async(
                uuid,
                &allocs,
                &current.project_id,
                &current.user_id,
                current.consumer_generation,
            )
            .await;
        if let Err(e) = r {
            tracing::warn!(instance = %uuid, error = %e, "cannot remove this node's allocation");
        }
    }

    /// `rebuild_instance`, under the instance's lock.
    pub(crate) async fn do_rebuild(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        mut a: RebuildArgs,
    ) -> anyhow::Result<()> {
        let me = &self.inner;
        let orig_vm_state = inst
            .vm_state()
            .as_deref()
            .and_then(|s| s.parse::<VmState>().ok())
            .unwrap_or(VmState::Active);
        // 2.95's evacuation to a stopped server (not for an ERROR one).
        let target = match a.target_state.as_deref() {
            Some("stopped") if orig_vm_state != VmState::Error => VmState::Stopped,
            _ => orig_vm_state,
        };
        let node = a
            .scheduled_node
            .clone()
            .or_else(|| inst.node().clone())
            .unwrap_or_default();
        let result = self.rebuild_steps(ctx, &mut inst, &a, &node, target).await;
        match result {
            Ok(()) => {
                self.set_migration_status(ctx, &mut a.migration, "done")
                    .await;
                Ok(())
            }
            Err(e)
                if e.downcast_ref::<nova_objects::Error>()
                    .is_some_and(|e| e.is_not_found()) =>
            {
                // Deleted while rebuilding.
                self.set_migration_status(ctx, &mut a.migration, "failed")
                    .await;
                Err(e)
            }
            Err(e) => {
                self.set_migration_status(ctx, &mut a.migration, "failed")
                    .await;
                if a.recreate {
                    self.remove_node_allocation(inst.uuid()).await;
                    self.drop_claim(inst.uuid()).await;
                    // Still the failed host's, where its allocation is.
                    if let Some(m) = &a.migration {
                        inst.set_host(m.source_compute().clone());
                        inst.set_node(m.source_node().clone());
                    }
                }
                let fault = match (
                    e.downcast_ref::<nova_virt::Error>(),
                    e.downcast_ref::<NovaError>(),
                ) {
                    (Some(d), _) => {
                        ExceptionPayload::from_driver(module_path!(), "rebuild_instance", d)
                    }
                    (None, Some(n)) => {
                        let err: &(dyn std::error::Error + 'static) = e.as_ref();
                        ExceptionPayload::from_error(
                            module_path!(),
                            "rebuild_instance",
                            &n.0.class,
                            err,
                        )
                    }
                    _ => {
                        let err: &(dyn std::error::Error + 'static) = e.as_ref();
                        ExceptionPayload::from_error(
                            module_path!(),
                            "rebuild_instance",
                            "NovaException",
                            err,
                        )
                    }
                };
                self.notifier()
                    .instance_rebuild(ctx, &inst, self.host(), Phase::Error, Some(&fault))
                    .await;
                let old = OldStates::of(&inst);
                let msg = format!("{e:#}");
                set_error(&me.objects, ctx, &mut inst, 500, &msg, Some(self.host())).await?;
                self.updated(ctx, &inst, &old).await;
                Err(e)
            }
        }
    }

    async fn rebuild_steps(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        a: &RebuildArgs,
        node: &str,
        target: VmState,
    ) -> anyhow::Result<()> {
        let me = &self.inner;
        let uuid = inst.uuid().clone();
        // nova's notify_usage_exists(current_period=True) before the image changes.
        self.notifier()
            .instance_exists(ctx, inst, self.host())
            .await;
        self.notifier()
            .instance_rebuild(ctx, inst, self.host(), Phase::Start, None)
            .await;
        let old = OldStates::of(inst);
        inst.set_power_state(Some(self.power_of(&uuid).await.code() as i64));
        inst.set_task_state(Some(TaskState::Rebuilding.into()));
        if a.recreate {
            // The instance is this host's from now on.
            inst.set_host(Some(self.host().to_owned()));
            inst.set_node(Some(node.to_owned()));
        }
        self.save_expecting(ctx, inst, TaskState::Rebuilding)
            .await?;
        self.updated(ctx, inst, &old).await;
        if a.recreate {
            if me.driver.instance_exists(&uuid).await.unwrap_or(false) {
                anyhow::bail!(nova_error(
                    "InstanceExists",
                    format!("Instance {uuid} already exists."),
                ));
            }
            self.claim(inst).await;
        } else {
            // nova's `_rebuild_default_impl` cannot keep ephemeral disks.
            if a.preserve_ephemeral {
                return Err(nova_error(
                    "PreserveEphemeralNotSupported",
                    "The current driver does not support preserving ephemeral partitions.",
                ));
            }
            let timeout = me.cfg.shutdown_timeout.min(Duration::from_secs(60));
            match me.driver.power_off(&uuid, timeout).await {
                Ok(()) | Err(nova_virt::Error::InvalidState { .. }) => {}
                Err(nova_virt::Error::InstanceNotFound(_)) => {}
                Err(e) => return Err(anyhow::Error::new(e).context("power off for the rebuild")),
            }
            match me.driver.destroy(&uuid).await {
                Ok(()) | Err(nova_virt::Error::InstanceNotFound(_)) => {}
                Err(e) => return Err(anyhow::Error::new(e).context("destroy for the rebuild")),
            }
        }
        let old = OldStates::of(inst);
        inst.set_task_state(Some(TaskState::RebuildBlockDeviceMapping.into()));
        self.save_expecting(ctx, inst, TaskState::Rebuilding)
            .await?;
        self.updated(ctx, inst, &old).await;
        let old = OldStates::of(inst);
        inst.set_task_state(Some(TaskState::RebuildSpawning.into()));
        self.save_expecting(ctx, inst, TaskState::RebuildBlockDeviceMapping)
            .await?;
        self.updated(ctx, inst, &old).await;
        // nova's `_rebuild_default_impl` spawns as a build does: the image
        // (fetched into the cache by drivers booting from a disk, its record
        // read from the image API as nova's `ImageMeta.from_image_ref`), the
        // injected files and a fresh config drive.
        let image_id = a
            .image_ref
            .clone()
            .filter(|i| !i.is_empty())
            .or_else(|| inst.image_ref().clone())
            .unwrap_or_default();
        let image = if me.images.get().is_some() && !image_id.is_empty() {
            self.show_image(ctx, &image_id)
                .await
                .map_err(|e| anyhow::Error::new(e).context("the image of the rebuild"))?
        } else {
            serde_json::json!({"id": image_id})
        };
        let mut spec = self
            .prepare_spawn(ctx, inst, &image, a.new_pass.clone(), &a.injected_files)
            .await
            .map_err(|e| anyhow::Error::new(e).context("spawn for the rebuild"))?;
        if !image_id.is_empty() {
            spec.image_id = image_id;
        }
        me.driver
            .spawn(&spec)
            .await
            .map_err(|e| anyhow::Error::new(e).context("spawn for the rebuild"))?;
        let old = OldStates::of(inst);
        inst.set_power_state(Some(self.power_of(&uuid).await.code() as i64));
        inst.set_vm_state(Some(VmState::Active.into()));
        inst.set_task_state(None);
        inst.set_launched_at(Some(chrono::Utc::now()));
        self.save_expecting(ctx, inst, TaskState::RebuildSpawning)
            .await?;
        self.updated(ctx, inst, &old).await;
        if target == VmState::Stopped {
            // Nova: it was stopped, so it is stopped again.
            let old = OldStates::of(inst);
            inst.set_task_state(Some(TaskState::PoweringOff.into()));
            me.objects.save(ctx, inst).await?;
            self.updated(ctx, inst, &old).await;
            let r = me.driver.power_off(&uuid, Duration::ZERO).await;
            self.finish_action(
                ctx,
                inst.clone(),
                r,
                VmState::Stopped,
                PowerState::Shutdown,
                "Stop",
                "power_off",
            )
            .await?;
            inst.set_vm_state(Some(VmState::Stopped.into()));
            inst.set_power_state(Some(PowerState::Shutdown.code() as i64));
            inst.set_task_state(None);
        }
        self.notifier()
            .instance_rebuild(ctx, inst, self.host(), Phase::End, None)
            .await;
        Ok(())
    }
}

impl ComputeManager {
    /// Nova's `_destroy_evacuated_instances`, at start-up: the instances
    /// evacuated from this host while it was down (their `evacuation`
    /// Migrations from here, accepted, pre-migrating or done) lose their
    /// guest here and their allocation on this node; the Migration ends
    /// `completed`.
    pub(crate) async fn destroy_evacuated_instances(&self) {
        let me = &self.inner;
        let ctx = nova_service::context::admin();
        let q = nova_objects::ListQuery::new()
            .filter("source_compute", self.host())
            .filter("migration_type", "evacuation");
        let migrations: Vec<Migration> = match me.objects.list(&ctx, &q).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the evacuations from this host");
                return;
            }
        };
        let Some(rp) = self.node_uuid().await else {
            return;
        };
        for mut m in migrations {
            if !matches!(
                m.status().as_deref(),
                Some("accepted" | "pre-migrating" | "done")
            ) {
                continue;
            }
            let Some(uuid) = m.instance_uuid().clone() else {
                continue;
            };
            tracing::info!(instance = %uuid, "cleaning up an instance evacuated from this host");
            match me.driver.destroy(&uuid).await {
                Ok(()) | Err(nova_virt::Error::InstanceNotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(instance = %uuid, error = %e, "cannot destroy the evacuated guest");
                    continue;
                }
            }
            self.drop_claim(&uuid).await;
            if let Ok(current) = me.placement.allocations_async(&uuid).await {
                let mut allocs = current.allocations.clone();
                if allocs.remove(&Name::from(rp.as_str())).is_some()
                    && let Err(e) = me
                        .placement
                        .put_allocations_async(
                            &uuid,
                            &allocs,
                            &current.project_id,
                            &current.user_id,
                            current.consumer_generation,
                        )
                        .await
                {
                    tracing::warn!(instance = %uuid, error = %e, "cannot remove the source allocation");
                    continue;
                }
            }
            m.set_status(Some("completed".into()));
            if let Err(e) = me.objects.save(&ctx, &mut m).await {
                tracing::warn!(error = %e, "cannot complete the evacuation's migration");
            }
        }
    }
}
