//! Moves on this host, nova's compute manager flows: resize and cold
//! migration (`prep_resize` on the destination, `resize_instance` on the
//! source, `finish_resize` on the destination; `confirm_resize` on the
//! source; `revert_resize` on the destination then
//! `finish_revert_resize` on the source) and live migration (the
//! destination's checks and `pre_live_migration`, `live_migration` on the
//! source, then `post_live_migration_at_destination`, or the rollback).
//!
//! Placement as nova keeps it: the Migration record holds the source
//! allocation and the instance the destination's; confirm (or a
//! finished live migration) deletes the migration's, revert and every
//! failed step move it back to the instance (`revert_allocation`).

use nova_objects::{
    Flavor, Instance, LibvirtLiveMigrateData, Migration, RequestSpec, SaveOptions, Selection,
    VersionedObject,
};
use nova_rpc::{RemoteError, RequestContext};
use nova_rpcapi::compute::ComputeApi;
use nova_service::cells::record_fault;
use nova_service::moves::{migration_context, revert_allocation};
use nova_service::notifications::{ExceptionPayload, OldStates, Phase};
use nova_service::states::{TaskState, VmState};
use nova_virt::{PowerState, ResizeTarget};
use serde_json::{Value, json};

use crate::manager::ComputeManager;

/// What `prep_resize` carries.
pub(crate) struct Prep {
    pub(crate) image: Value,
    pub(crate) flavor: Flavor,
    pub(crate) request_spec: Option<RequestSpec>,
    pub(crate) filter_properties: Value,
    pub(crate) node: Option<String>,
    pub(crate) clean_shutdown: Option<bool>,
    pub(crate) migration: Migration,
    pub(crate) host_list: Option<Vec<Selection>>,
}

/// How a failed step leaves the instance.
enum Leave {
    /// As it was before the move (nova's `InstanceFaultRollback`).
    AsItWas(VmState),
    /// In `error`.
    Error,
}

fn set_flavor_fields(inst: &mut Instance, f: &Flavor) {
    inst.set_instance_type_id(Some(*f.id()));
    inst.set_vcpus(Some(*f.vcpus()));
    inst.set_memory_mb(Some(*f.memory_mb()));
    inst.set_root_gb(Some(*f.root_gb()));
    inst.set_ephemeral_gb(Some(*f.ephemeral_gb()));
    inst.set_flavor(f.clone());
}

/// The power state code of a guest started (`power_on`) or left off.
fn power_code(power_on: bool) -> i64 {
    if power_on {
        PowerState::Running
    } else {
        PowerState::Shutdown
    }
    .code() as i64
}

fn old_vm_state(inst: &Instance) -> VmState {
    inst.system_metadata()
        .get("old_vm_state")
        .cloned()
        .flatten()
        .and_then(|s| s.parse().ok())
        .unwrap_or(VmState::Active)
}

impl ComputeManager {
    /// Runs a move step in the background (the cast returns at once)
    /// under the instance's lock, as event `compute_<event>` of the
    /// request's instance action.
    pub(crate) fn spawn_move<F, Fut>(
        &self,
        ctx: RequestContext,
        inst: Instance,
        event: &'static str,
        f: F,
    ) where
        F: FnOnce(ComputeManager, RequestContext, Instance) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
    {
        let me = self.clone();
        tokio::spawn(async move {
            let (m2, c2) = (me.clone(), ctx.clone());
            if let Err(e) = me
                .with_instance(&ctx, inst, event, move |i| f(m2, c2, i))
                .await
            {
                tracing::info!(event, error = %e.message, "move step failed");
            }
        });
    }

    fn compute_api(&self) -> ComputeApi {
        ComputeApi::from_client(
            self.inner
                .conductor
                .rpc_client()
                .prepare()
                .topic(nova_rpcapi::compute::TOPIC)
                .namespace(None),
        )
    }

    async fn save_migration(&self, ctx: &RequestContext, m: &mut Migration, status: &str) {
        m.set_status(Some(status.to_owned()));
        if let Err(e) = self.inner.objects.save(ctx, m).await {
            tracing::warn!(migration = %m.uuid(), error = %e, "cannot save the migration");
        }
    }

    /// The source's allocation, held by the migration, deleted (the
    /// instance lives on the destination now); a failure is logged.
    async fn drop_source_allocation(&self, migration: &Migration) {
        if let Err(e) = self
            .inner
            .placement
            .delete_allocations_async(migration.uuid())
            .await
        {
            tracing::error!(error = %e, "cannot delete the migration's allocations");
        }
    }

    /// The fault of a failed move step on this host (code 500).
    async fn move_fault(&self, ctx: &RequestContext, uuid: &str, message: &str) {
        if let Err(e) = record_fault(
            &self.inner.objects,
            ctx,
            uuid,
            500,
            message,
            None,
            Some(self.host()),
        )
        .await
        {
            tracing::warn!(instance = uuid, error = %e, "cannot record the move's fault");
        }
    }

    /// A move's usage on this host, counted under `key` (the migration's
    /// uuid while it is only incoming).
    async fn claim_as(&self, key: &str, inst: &Instance) {
        let mut shadow = inst.clone();
        shadow.set_uuid(key.to_owned());
        self.claim(&shadow).await;
    }

    /// A failed step: the allocations back to the instance (`revert`),
    /// the migration in `error`, a fault, the instance as `leave` says,
    /// `instance.<event>.error`.
    #[allow(clippy::too_many_arguments)]
    async fn move_failed(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        migration: &mut Migration,
        revert: bool,
        leave: Leave,
        event: &str,
        err: &anyhow::Error,
    ) {
        let me = &self.inner;
        if revert
            && let Err(e) = revert_allocation(&me.placement, inst.uuid(), migration.uuid()).await
        {
            tracing::error!(instance = %inst.uuid(), error = %e, "cannot revert the migration's allocations");
        }
        self.save_migration(ctx, migration, "error").await;
        let message = format!("{err:#}");
        self.move_fault(ctx, inst.uuid(), &message).await;
        let old = OldStates::of(inst);
        match leave {
            Leave::AsItWas(vm) => inst.set_vm_state(Some(vm.into())),
            Leave::Error => inst.set_vm_state(Some(VmState::Error.into())),
        }
        inst.set_task_state(None);
        if let Err(e) = me.objects.save(ctx, inst).await {
            tracing::warn!(instance = %inst.uuid(), error = %e, "cannot save the failed move");
        }
        self.updated(ctx, inst, &old).await;
        let fault =
            ExceptionPayload::from_error(module_path!(), event, "MigrationError", err.as_ref());
        self.notify_action(ctx, inst, "resize", Phase::Error, Some(&fault))
            .await;
    }

    /// `prep_resize` on the destination: the claim, the migration's
    /// destination, then `resize_instance` cast to the source. A refusal
    /// reverts the allocations and reschedules (`retry` in the filter
    /// properties, alternates left) through the conductor.
    pub(crate) async fn do_prep_resize(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        p: Prep,
    ) -> anyhow::Result<()> {
        let me = &self.inner;
        let mut migration = p.migration;
        migration.obj_reset_changes();
        let vm_before: VmState = inst
            .vm_state()
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(VmState::Active);
        self.notifier()
            .instance_exists(ctx, &inst, self.host())
            .await;
        self.notifier()
            .instance_resize_prep(ctx, &inst, self.host(), Phase::Start, &p.flavor)
            .await;
        let node = match p.node.clone() {
            Some(n) => n,
            None => me.driver.host_resources().await?.hypervisor_hostname,
        };
        let mut target = inst.clone();
        set_flavor_fields(&mut target, &p.flavor);
        let spec = self.spec_of(&target, None);
        let checked = async {
            if inst.host().is_none() {
                anyhow::bail!("Migration error: Instance has no source host");
            }
            me.driver.prep_resize(&spec).await?;
            Ok(())
        }
        .await;
        if let Err(err) = checked {
            self.notifier()
                .instance_resize_prep(ctx, &inst, self.host(), Phase::End, &p.flavor)
                .await;
            // Nova's `_revert_allocation`, then `_reschedule_resize_or_reraise`.
            if let Err(e) = revert_allocation(&me.placement, inst.uuid(), migration.uuid()).await {
                tracing::error!(instance = %inst.uuid(), error = %e, "cannot revert the migration's allocations");
            }
            let retry = p
                .filter_properties
                .get("retry")
                .filter(|r| !r.is_null())
                .cloned();
            let Some(mut retry) = retry else {
                self.move_failed(
                    ctx,
                    &mut inst,
                    &mut migration,
                    false,
                    Leave::Error,
                    "prep_resize",
                    &err,
                )
                .await;
                return Err(err);
            };
            retry["exc"] = json!([err.to_string()]);
            let mut fp = p.filter_properties.clone();
            fp["retry"] = retry;
            self.move_fault(ctx, inst.uuid(), &format!("{err:#}")).await;
            let fault = ExceptionPayload::from_error(
                module_path!(),
                "prep_resize",
                "MigrationError",
                err.as_ref(),
            );
            self.notify_action(ctx, &inst, "resize", Phase::Error, Some(&fault))
                .await;
            let old = OldStates::of(&inst);
            inst.set_task_state(Some(TaskState::ResizePrep.into()));
            me.objects.save(ctx, &mut inst).await?;
            self.updated(ctx, &inst, &old).await;
            me.conductor
                .migrate_server(
                    ctx,
                    &inst,
                    &json!({"filter_properties": fp}),
                    &false,
                    &false,
                    &Some(p.flavor.clone()),
                    &Value::Null,
                    &Value::Null,
                    &Value::Null,
                    &p.clean_shutdown,
                    &p.request_spec,
                    &Some(p.host_list.unwrap_or_default()),
                )
                .await?;
            let _ = vm_before;
            return Err(err.context("rescheduled"));
        }
        // Nova's resize claim: the migration's destination and context,
        // the new flavor stashed, the old vm_state remembered.
        migration.set_dest_compute(Some(self.host().to_owned()));
        migration.set_dest_node(Some(node.clone()));
        migration.set_dest_host(Some("127.0.0.1".into()));
        self.save_migration(ctx, &mut migration, "pre-migrating")
            .await;
        inst.set_new_flavor(Some(p.flavor.clone()));
        inst.system_metadata_mut()
            .insert("old_vm_state".into(), Some(vm_before.as_str().to_owned()));
        inst.set_migration_context(Some(migration_context(&inst, &migration)));
        me.objects.save(ctx, &mut inst).await?;
        self.claim_as(migration.uuid(), &target).await;
        self.notifier()
            .instance_resize_prep(ctx, &inst, self.host(), Phase::End, &p.flavor)
            .await;
        let source = inst.host().clone().unwrap_or_default();
        let sent = self
            .compute_api()
            .resize_instance(
                ctx,
                &source,
                &inst,
                &migration,
                &p.image,
                &p.flavor,
                &p.clean_shutdown,
                &p.request_spec,
            )
            .await;
        if let Err(e) = sent {
            self.drop_claim(migration.uuid()).await;
            let err = anyhow::anyhow!("cannot reach the source compute {source}: {e}");
            self.move_failed(
                ctx,
                &mut inst,
                &mut migration,
                true,
                Leave::AsItWas(vm_before),
                "prep_resize",
                &err,
            )
            .await;
            return Err(err);
        }
        Ok(())
    }

    /// `resize_instance` on the source: the guest powered off and its
    /// disk prepared, the instance handed to the destination.
    pub(crate) async fn do_resize_instance(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        mut migration: Migration,
        image: Value,
        flavor: Flavor,
        request_spec: Option<RequestSpec>,
    ) -> anyhow::Result<()> {
        let me = &self.inner;
        migration.obj_reset_changes();
        let vm_before = old_vm_state(&inst);
        self.save_migration(ctx, &mut migration, "migrating").await;
        self.step(
            ctx,
            &mut inst,
            &[TaskState::ResizePrep],
            Some(TaskState::ResizeMigrating),
        )
        .await?;
        self.notify_action(ctx, &inst, "resize", Phase::Start, None)
            .await;
        let dest = migration.dest_compute().clone().unwrap_or_default();
        let target = ResizeTarget {
            vcpus: (*flavor.vcpus()).max(0) as u32,
            memory_mb: (*flavor.memory_mb()).max(0) as u64,
            root_gb: (*flavor.root_gb()).max(0) as u64,
        };
        if let Err(e) = me
            .driver
            .migrate_disk_and_power_off(inst.uuid(), &dest, &target)
            .await
        {
            let leave = if matches!(e, nova_virt::Error::ResizeRefused { .. }) {
                Leave::AsItWas(vm_before)
            } else {
                Leave::Error
            };
            // The destination's claim is dropped with the allocations.
            let err = anyhow::Error::new(e);
            self.move_failed(
                ctx,
                &mut inst,
                &mut migration,
                true,
                leave,
                "resize_instance",
                &err,
            )
            .await;
            return Err(err);
        }
        self.save_migration(ctx, &mut migration, "post-migrating")
            .await;
        let old = OldStates::of(&inst);
        inst.set_host(Some(dest.clone()));
        inst.set_node(migration.dest_node().clone());
        inst.set_old_flavor(Some(inst.flavor().clone()));
        inst.set_power_state(Some(PowerState::Shutdown.code() as i64));
        inst.set_task_state(Some(TaskState::ResizeMigrated.into()));
        me.objects
            .save_with(
                ctx,
                &mut inst,
                &SaveOptions::expected_task_state([Some(TaskState::ResizeMigrating.as_str())]),
            )
            .await?;
        self.updated(ctx, &inst, &old).await;
        self.compute_api()
            .finish_resize(
                ctx,
                &dest,
                &inst,
                &migration,
                &image,
                &json!({}),
                &request_spec,
            )
            .await?;
        self.notify_action(ctx, &inst, "resize", Phase::End, None)
            .await;
        Ok(())
    }

    /// `finish_resize` on the destination: the guest at its new size;
    /// the instance ends `resized`. A failure leaves it in `error` here
    /// with the destination's allocation, the source's deleted (nova).
    pub(crate) async fn do_finish_resize(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        mut migration: Migration,
    ) -> anyhow::Result<()> {
        let me = &self.inner;
        migration.obj_reset_changes();
        let old_flavor = inst.flavor().clone();
        inst.set_old_flavor(Some(old_flavor.clone()));
        let resized = migration.old_instance_type_id() != migration.new_instance_type_id();
        if resized && let Some(f) = inst.new_flavor().clone() {
            set_flavor_fields(&mut inst, &f);
        }
        self.step(
            ctx,
            &mut inst,
            &[TaskState::ResizeMigrated],
            Some(TaskState::ResizeFinish),
        )
        .await?;
        self.notify_action(ctx, &inst, "resize_finish", Phase::Start, None)
            .await;
        let power_on = old_vm_state(&inst) != VmState::Stopped;
        let finished = match self.spec_with_image(ctx, &inst, "finish_migration").await {
            Ok(spec) => me.driver.finish_migration(&spec, power_on).await,
            Err(e) => Err(e),
        };
        if let Err(e) = finished {
            let err = anyhow::Error::new(e);
            if resized {
                set_flavor_fields(&mut inst, &old_flavor);
            }
            self.drop_claim(migration.uuid()).await;
            // Nova: the instance stays here (its host is this one now);
            // the source's allocation, held by the migration, goes.
            self.drop_source_allocation(&migration).await;
            self.move_failed(
                ctx,
                &mut inst,
                &mut migration,
                false,
                Leave::Error,
                "finish_resize",
                &err,
            )
            .await;
            return Err(err);
        }
        self.drop_claim(migration.uuid()).await;
        self.claim(&inst).await;
        self.save_migration(ctx, &mut migration, "finished").await;
        let old = OldStates::of(&inst);
        inst.set_vm_state(Some(VmState::Resized.into()));
        inst.set_task_state(None);
        inst.set_power_state(Some(power_code(power_on)));
        inst.set_launched_at(Some(chrono::Utc::now()));
        me.objects
            .save_with(
                ctx,
                &mut inst,
                &SaveOptions::expected_task_state([Some(TaskState::ResizeFinish.as_str())]),
            )
            .await?;
        self.updated(ctx, &inst, &old).await;
        self.notify_action(ctx, &inst, "resize_finish", Phase::End, None)
            .await;
        Ok(())
    }

    /// `confirm_resize` on the source: the old guest and the migration's
    /// allocation go; the instance is `active` (or `stopped`) with its
    /// stashed flavors cleared.
    pub(crate) async fn do_confirm_resize(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        mut migration: Migration,
    ) -> anyhow::Result<()> {
        let me = &self.inner;
        migration.obj_reset_changes();
        match migration.status().as_deref() {
            Some("confirmed") => return Ok(()),
            Some("finished") | Some("confirming") => {}
            other => {
                tracing::warn!(status = ?other, "unexpected confirmation status of migration; not confirming");
                return Ok(());
            }
        }
        self.notify_action(ctx, &inst, "resize_confirm", Phase::Start, None)
            .await;
        let same_host = migration.source_compute() == migration.dest_compute();
        let r = me.driver.confirm_migration(inst.uuid(), same_host).await;
        if !same_host {
            self.drop_claim(inst.uuid()).await;
        }
        self.drop_claim(migration.uuid()).await;
        // Whatever the driver said, the instance lives on the destination:
        // the source's allocation goes (nova's `_delete_allocation_after_move`).
        me.placement
            .delete_allocations_async(migration.uuid())
            .await
            .map_err(|e| anyhow::anyhow!("placement: {e}"))?;
        let old = OldStates::of(&inst);
        if let Err(e) = r {
            let err = anyhow::Error::new(e);
            self.save_migration(ctx, &mut migration, "error").await;
            self.move_fault(ctx, inst.uuid(), &format!("{err:#}")).await;
            inst.set_vm_state(Some(VmState::Error.into()));
            inst.set_task_state(None);
            me.objects.save(ctx, &mut inst).await?;
            self.updated(ctx, &inst, &old).await;
            return Err(err);
        }
        self.save_migration(ctx, &mut migration, "confirmed").await;
        let stopped = *inst.power_state() == Some(PowerState::Shutdown.code() as i64);
        inst.set_vm_state(Some(
            if stopped {
                VmState::Stopped
            } else {
                VmState::Active
            }
            .into(),
        ));
        inst.set_task_state(None);
        inst.set_old_flavor(None);
        inst.set_new_flavor(None);
        inst.set_migration_context(None);
        inst.system_metadata_mut().remove("old_vm_state");
        me.objects
            .save_with(
                ctx,
                &mut inst,
                &SaveOptions::expected_task_state([
                    None,
                    Some(TaskState::Deleting.as_str()),
                    Some(TaskState::SoftDeleting.as_str()),
                    Some(TaskState::ResizeConfirming.as_str()),
                ]),
            )
            .await?;
        self.updated(ctx, &inst, &old).await;
        self.notify_action(ctx, &inst, "resize_confirm", Phase::End, None)
            .await;
        Ok(())
    }

    /// `revert_resize` on the destination: the new guest goes (unless the
    /// move stayed on this host), then `finish_revert_resize` on the source.
    pub(crate) async fn do_revert_resize(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        mut migration: Migration,
        request_spec: Option<RequestSpec>,
    ) -> anyhow::Result<()> {
        let me = &self.inner;
        migration.obj_reset_changes();
        self.notifier()
            .instance_exists(ctx, &inst, self.host())
            .await;
        let same_host = migration.source_compute() == migration.dest_compute();
        if !same_host {
            match me.driver.destroy(inst.uuid()).await {
                Ok(()) | Err(nova_virt::Error::InstanceNotFound(_)) => {}
                Err(e) => {
                    let err = anyhow::Error::new(e);
                    self.move_failed(
                        ctx,
                        &mut inst,
                        &mut migration,
                        false,
                        Leave::Error,
                        "revert_resize",
                        &err,
                    )
                    .await;
                    return Err(err);
                }
            }
            self.drop_claim(inst.uuid()).await;
        }
        let source = migration.source_compute().clone().unwrap_or_default();
        self.compute_api()
            .finish_revert_resize(ctx, &source, &inst, &migration, &request_spec)
            .await?;
        Ok(())
    }

    /// `finish_revert_resize` on the source: the old flavor, host and
    /// allocations back, the guest started as it was.
    pub(crate) async fn do_finish_revert_resize(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        mut migration: Migration,
    ) -> anyhow::Result<()> {
        let me = &self.inner;
        migration.obj_reset_changes();
        self.notify_action(ctx, &inst, "resize_revert", Phase::Start, None)
            .await;
        let vm_before = old_vm_state(&inst);
        if let Some(f) = inst.old_flavor().clone() {
            set_flavor_fields(&mut inst, &f);
        }
        inst.set_host(migration.source_compute().clone());
        inst.set_node(migration.source_node().clone());
        revert_allocation(&me.placement, inst.uuid(), migration.uuid()).await?;
        let power_on = vm_before != VmState::Stopped;
        let spec = self.spec_of(&inst, None);
        let r = me.driver.finish_revert_migration(&spec, power_on).await;
        let old = OldStates::of(&inst);
        inst.set_old_flavor(None);
        inst.set_new_flavor(None);
        inst.system_metadata_mut().remove("old_vm_state");
        if let Err(e) = r {
            let err = anyhow::Error::new(e);
            self.move_failed(
                ctx,
                &mut inst,
                &mut migration,
                false,
                Leave::Error,
                "finish_revert_resize",
                &err,
            )
            .await;
            return Err(err);
        }
        self.drop_claim(migration.uuid()).await;
        self.claim(&inst).await;
        inst.set_migration_context(None);
        inst.set_launched_at(Some(chrono::Utc::now()));
        inst.set_vm_state(Some(vm_before.into()));
        inst.set_power_state(Some(power_code(power_on)));
        inst.set_task_state(None);
        me.objects
            .save_with(
                ctx,
                &mut inst,
                &SaveOptions::expected_task_state([Some(TaskState::ResizeReverting.as_str())]),
            )
            .await?;
        self.updated(ctx, &inst, &old).await;
        self.save_migration(ctx, &mut migration, "reverted").await;
        self.notify_action(ctx, &inst, "resize_revert", Phase::End, None)
            .await;
        Ok(())
    }

    /// Nova's `_poll_unconfirmed_resizes`: resizes finished on this host
    /// (the destination) more than `window` ago are confirmed as the
    /// API's `confirmResize` does it (`confirming`, action
    /// `confirmResize`, `confirm_resize` cast to the source).
    pub(crate) async fn poll_unconfirmed_resizes(&self, window: std::time::Duration) {
        let me = &self.inner;
        let ctx = crate::manager::admin();
        let found: Vec<Migration> = match me
            .objects
            .list(
                &ctx,
                &nova_objects::ListQuery::new()
                    .filter("dest_compute", self.host())
                    .filter("status", "finished"),
            )
            .await
        {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the unconfirmed resizes");
                return;
            }
        };
        let cutoff = chrono::Utc::now() - chrono::Duration::from_std(window).unwrap_or_default();
        for mut m in found {
            if m.updated_at()
                .or(*m.created_at())
                .is_none_or(|t| t > cutoff)
            {
                continue;
            }
            let Some(uuid) = m.instance_uuid().clone() else {
                continue;
            };
            let Ok(inst) = me.objects.get_by_uuid::<Instance>(&ctx, &uuid).await else {
                continue;
            };
            if inst.vm_state().as_deref() != Some(VmState::Resized.as_str())
                || inst.task_state().is_some()
            {
                tracing::info!(instance = %uuid, "not confirming a resize whose instance is busy");
                continue;
            }
            tracing::info!(instance = %uuid, migration = %m.uuid(), "automatically confirming the resize");
            m.obj_reset_changes();
            self.save_migration(&ctx, &mut m, "confirming").await;
            let ctx = ctx
                .clone()
                .with_request_id(format!("req-{}", uuid::Uuid::new_v4()));
            if let Err(e) = nova_service::instance_actions::action_start(
                &me.objects,
                &ctx,
                &uuid,
                "confirmResize",
            )
            .await
            {
                tracing::warn!(error = %e, "cannot record the confirmation");
            }
            let source = m.source_compute().clone().unwrap_or_default();
            if let Err(e) = self
                .compute_api()
                .confirm_resize(&ctx, &source, &inst, &m)
                .await
            {
                tracing::warn!(instance = %uuid, error = %e, "cannot confirm the resize");
            }
        }
    }

    /// Nova's `_update_usage_from_migrations`: what moves in progress
    /// hold on this host beyond its instances — an incoming move's new
    /// flavor until the instance arrives, an outgoing (or same-host)
    /// move's old flavor until it is confirmed or reverted — keyed by the
    /// migration's uuid.
    pub(crate) async fn migration_usage(
        &self,
    ) -> nova_objects::Result<Vec<(String, crate::resource_tracker::Usage)>> {
        const DONE: &[&str] = &[
            "confirmed",
            "reverted",
            "error",
            "failed",
            "completed",
            "cancelled",
            "done",
        ];
        let me = &self.inner;
        let ctx = crate::manager::admin();
        let mut found: Vec<Migration> = Vec::new();
        for key in ["source_compute", "dest_compute"] {
            let mine: Vec<Migration> = me
                .objects
                .list(
                    &ctx,
                    &nova_objects::ListQuery::new().filter(key, self.host()),
                )
                .await?;
            for m in mine {
                if !found.iter().any(|f| f.uuid() == m.uuid()) {
                    found.push(m);
                }
            }
        }
        let mut out = Vec::new();
        for m in found {
            let status = m.status().clone().unwrap_or_default();
            if DONE.contains(&status.as_str()) || m.migration_type() == "evacuation" {
                continue;
            }
            let Some(uuid) = m.instance_uuid().clone() else {
                continue;
            };
            let Ok(inst) = me.objects.get_by_uuid::<Instance>(&ctx, &uuid).await else {
                continue;
            };
            let here = inst.host().as_deref() == Some(self.host());
            let outgoing = m.source_compute().as_deref() == Some(self.host());
            let incoming = m.dest_compute().as_deref() == Some(self.host());
            let flavor = if incoming && !here {
                inst.new_flavor()
                    .clone()
                    .or_else(|| Some(inst.flavor().clone()))
            } else if outgoing && (!here || incoming) && m.migration_type() != "live-migration" {
                // Moved away (or a same-host resize past its finish): the
                // old flavor until confirmed or reverted.
                let finished = matches!(
                    status.as_str(),
                    "post-migrating" | "finished" | "confirming" | "reverting"
                );
                (!here || finished).then(|| {
                    inst.old_flavor()
                        .clone()
                        .unwrap_or_else(|| inst.flavor().clone())
                })
            } else {
                None
            };
            if let Some(f) = flavor {
                out.push((
                    m.uuid().clone(),
                    crate::resource_tracker::Usage {
                        vcpus: *f.vcpus(),
                        memory_mb: *f.memory_mb(),
                        disk_gb: *f.root_gb() + *f.ephemeral_gb(),
                    },
                ));
            }
        }
        Ok(out)
    }

    // -- Live migration.

    /// The destination's checks (`check_can_live_migrate_destination`),
    /// which ask the source's (`check_can_live_migrate_source`); answers
    /// nova's `LibvirtLiveMigrateData` with what this destination knows
    /// (fields nova-rs has nothing truthful for stay unset, as OVO allows).
    pub(crate) async fn do_check_live_destination(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        block_migration: Option<bool>,
        disk_over_commit: Option<bool>,
    ) -> Result<LibvirtLiveMigrateData, RemoteError> {
        let me = &self.inner;
        let spec = self.spec_of(inst, None);
        let block = block_migration.unwrap_or(true);
        me.driver
            .check_can_live_migrate_destination(&spec, block)
            .await
            .map_err(|e| precheck(inst, self.host(), &e.to_string()))?;
        let mut data = LibvirtLiveMigrateData::new()
            .with_block_migration(block)
            .with_disk_over_commit(disk_over_commit.unwrap_or(false))
            // No instance directory is shared between computes here.
            .with_is_shared_instance_path(false)
            .with_is_shared_block_storage(false)
            .with_dst_wants_file_backed_memory(false)
            .with_file_backed_memory_discard(false)
            .with_dst_cpu_shared_set_info(std::collections::BTreeSet::new())
            .with_serial_listen_addr(None)
            .with_graphics_listen_addr_vnc(None)
            .with_graphics_listen_addr_spice(None);
        if let Ok(r) = me.driver.host_resources().await {
            data.set_disk_available_mb(Some((r.local_gb - r.local_gb_used).max(0) * 1024));
        }
        let source = inst.host().clone().unwrap_or_default();
        // What the source raised reaches the conductor as it is (nova lets
        // it propagate); only a source that does not answer is a pre-check
        // error here.
        self.compute_api()
            .check_can_live_migrate_source(ctx, &source, inst, &data)
            .await
            .map_err(|e| match e.remote() {
                Some(r) => r.clone(),
                None => precheck(inst, self.host(), &e.to_string()),
            })
    }

    /// The source's check: the guest exists here and may leave; adds what
    /// the source knows (nova's instance directory is named by uuid; no
    /// volumes here, so not volume-backed).
    pub(crate) async fn do_check_live_source(
        &self,
        inst: &Instance,
        mut data: LibvirtLiveMigrateData,
    ) -> Result<LibvirtLiveMigrateData, RemoteError> {
        self.inner
            .driver
            .check_can_live_migrate_source(inst.uuid())
            .await
            .map_err(|e| match e {
                // The guest is not on this hypervisor: nova's libvirt driver
                // raises `InstanceNotFound`, which its conductor does not
                // expect (the server goes to ERROR).
                nova_virt::Error::InstanceNotFound(_) => RemoteError::new(
                    "InstanceNotFound",
                    "nova.exception",
                    format!("Instance {} could not be found.", inst.uuid()),
                )
                .with_kwarg("instance_id", inst.uuid().clone())
                .with_kwarg("code", 404),
                e => precheck(inst, self.host(), &e.to_string()),
            })?;
        data.set_instance_relative_path(inst.uuid().clone());
        data.set_is_volume_backed(false);
        Ok(data)
    }

    /// `pre_live_migration` on the destination.
    pub(crate) async fn do_pre_live_migration(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        migrate_data: Option<LibvirtLiveMigrateData>,
    ) -> Result<LibvirtLiveMigrateData, RemoteError> {
        self.notify_action(ctx, inst, "live_migration_pre", Phase::Start, None)
            .await;
        let spec = match self.spec_with_image(ctx, inst, "pre_live_migration").await {
            Ok(spec) => self.inner.driver.pre_live_migration(&spec).await,
            Err(e) => Err(e),
        };
        spec.map_err(|e| {
            RemoteError::new(
                "MigrationError",
                "nova.exception",
                format!("Migration error: {e}"),
            )
        })?;
        self.notify_action(ctx, inst, "live_migration_pre", Phase::End, None)
            .await;
        // What nova's destination adds: no ports to wait for, no volumes,
        // no serial ports to rebind, no separate migration address.
        let mut data = migrate_data.unwrap_or_default();
        data.set_wait_for_vif_plugged(false);
        data.set_vifs(Vec::new());
        data.set_bdms(Vec::new());
        data.set_serial_listen_ports(Vec::new());
        data.set_target_connect_addr(None);
        Ok(data)
    }

    /// `live_migration` on the source, in the background (abort and force
    /// complete arrive while it runs): `queued`, `preparing` (the
    /// destination's `pre_live_migration`), `running` (the driver), then
    /// the post steps or the rollback.
    pub(crate) async fn do_live_migration(
        &self,
        ctx: RequestContext,
        mut inst: Instance,
        dest: String,
        migration: Option<Migration>,
        migrate_data: Option<LibvirtLiveMigrateData>,
    ) {
        let me = &self.inner;
        inst.obj_reset_changes_recursive();
        let Some(mut migration) = migration else {
            tracing::warn!(instance = %inst.uuid(), "live migration without a migration record");
            return;
        };
        migration.obj_reset_changes();
        self.save_migration(&ctx, &mut migration, "preparing").await;
        // nova's source: `migrate_data.migration = migration`.
        let migrate_data = migrate_data.map(|d| d.with_migration(migration.clone()));
        let pre = self
            .compute_api()
            .pre_live_migration(&ctx, &dest, &inst, &Value::Null, &migrate_data)
            .await;
        if let Err(e) = pre {
            let why = e
                .remote()
                .map(|r| r.message.clone())
                .unwrap_or_else(|| e.to_string());
            self.rollback_live(&ctx, &mut inst, &mut migration, &dest, "error", &why)
                .await;
            return;
        }
        if self.aborted(&ctx, &migration).await {
            self.rollback_live(
                &ctx,
                &mut inst,
                &mut migration,
                &dest,
                "cancelled",
                "aborted",
            )
            .await;
            return;
        }
        self.save_migration(&ctx, &mut migration, "running").await;
        match me.driver.live_migration(inst.uuid(), &dest).await {
            Ok(()) => self.post_live(&ctx, &mut inst, &mut migration, &dest).await,
            Err(e) => {
                let status =
                    if self.aborted(&ctx, &migration).await || e.to_string().contains("aborted") {
                        "cancelled"
                    } else {
                        "error"
                    };
                self.rollback_live(
                    &ctx,
                    &mut inst,
                    &mut migration,
                    &dest,
                    status,
                    &e.to_string(),
                )
                .await;
            }
        }
    }

    /// Whether the migration was aborted while queued or preparing (the
    /// record says `cancelled`).
    async fn aborted(&self, ctx: &RequestContext, m: &Migration) -> bool {
        self.inner
            .objects
            .get_by_uuid::<Migration>(ctx, m.uuid())
            .await
            .is_ok_and(|r| r.status().as_deref() == Some("cancelled"))
    }

    /// Nova's `_post_live_migration` on the source.
    async fn post_live(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        migration: &mut Migration,
        dest: &str,
    ) {
        let me = &self.inner;
        self.notify_action(ctx, inst, "live_migration_post", Phase::Start, None)
            .await;
        self.drop_claim(inst.uuid()).await;
        if let Err(e) = self
            .compute_api()
            .post_live_migration_at_destination(ctx, dest, inst, &Some(true))
            .await
        {
            tracing::error!(instance = %inst.uuid(), error = %e, "post_live_migration_at_destination failed");
        }
        // The source's allocation goes before the migration says
        // `completed` (nova marks it first): whoever sees it completed
        // sees the books settled.
        self.drop_source_allocation(migration).await;
        self.save_migration(ctx, migration, "completed").await;
        if let Ok(now) = me.objects.get_by_uuid::<Instance>(ctx, inst.uuid()).await {
            *inst = now;
        }
        self.notify_action(ctx, inst, "live_migration_post", Phase::End, None)
            .await;
    }

    /// Nova's `_rollback_live_migration` on the source.
    async fn rollback_live(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        migration: &mut Migration,
        dest: &str,
        status: &str,
        why: &str,
    ) {
        let me = &self.inner;
        tracing::info!(instance = %inst.uuid(), reason = why, "rolling the live migration back");
        self.notify_action(ctx, inst, "live_migration_rollback", Phase::Start, None)
            .await;
        if let Err(e) = revert_allocation(&me.placement, inst.uuid(), migration.uuid()).await {
            tracing::error!(error = %e, "cannot revert the migration's allocations");
        }
        let old = OldStates::of(inst);
        inst.set_task_state(None);
        inst.set_migration_context(None);
        if let Err(e) = me.objects.save(ctx, inst).await {
            tracing::warn!(error = %e, "cannot save the rolled back instance");
        }
        self.updated(ctx, inst, &old).await;
        if let Err(e) = self
            .compute_api()
            .rollback_live_migration_at_destination(ctx, dest, inst, &Some(true), &None)
            .await
        {
            tracing::warn!(error = %e, "cannot reach the destination's rollback");
        }
        self.save_migration(ctx, migration, status).await;
        self.notify_action(ctx, inst, "live_migration_rollback", Phase::End, None)
            .await;
    }

    /// `post_live_migration_at_destination`: the instance is here now.
    pub(crate) async fn do_post_live_at_destination(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
    ) -> anyhow::Result<()> {
        let me = &self.inner;
        self.notify_action(ctx, &inst, "live_migration_post_dest", Phase::Start, None)
            .await;
        let spec = self.spec_of(&inst, None);
        let r = me.driver.post_live_migration_at_destination(&spec).await;
        let node = me.driver.host_resources().await?.hypervisor_hostname;
        let old = OldStates::of(&inst);
        inst.set_host(Some(self.host().to_owned()));
        inst.set_node(Some(node));
        inst.set_task_state(None);
        inst.set_migration_context(None);
        match r {
            Ok(()) => {
                inst.set_power_state(Some(PowerState::Running.code() as i64));
                inst.set_vm_state(Some(VmState::Active.into()));
            }
            Err(e) => {
                self.move_fault(ctx, inst.uuid(), &e.to_string()).await;
                inst.set_vm_state(Some(VmState::Error.into()));
            }
        }
        me.objects.save(ctx, &mut inst).await?;
        self.claim(&inst).await;
        self.updated(ctx, &inst, &old).await;
        self.notify_action(ctx, &inst, "live_migration_post_dest", Phase::End, None)
            .await;
        Ok(())
    }

    /// `rollback_live_migration_at_destination`.
    pub(crate) async fn do_rollback_live_at_destination(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
    ) -> anyhow::Result<()> {
        self.notify_action(
            ctx,
            inst,
            "live_migration_rollback_dest",
            Phase::Start,
            None,
        )
        .await;
        self.inner
            .driver
            .rollback_live_migration_at_destination(inst.uuid())
            .await?;
        self.notify_action(ctx, inst, "live_migration_rollback_dest", Phase::End, None)
            .await;
        Ok(())
    }

    /// `live_migration_force_complete` on the source.
    pub(crate) async fn do_live_force_complete(&self, ctx: &RequestContext, inst: &Instance) {
        self.notify_action(
            ctx,
            inst,
            "live_migration_force_complete",
            Phase::Start,
            None,
        )
        .await;
        if let Err(e) = self
            .inner
            .driver
            .live_migration_force_complete(inst.uuid())
            .await
        {
            tracing::warn!(instance = %inst.uuid(), error = %e, "cannot force the live migration to complete");
        }
        self.notify_action(ctx, inst, "live_migration_force_complete", Phase::End, None)
            .await;
    }

    /// `live_migration_abort` on the source: a queued or preparing
    /// migration is cancelled before it runs; a running one is aborted
    /// in the driver (the rollback follows).
    pub(crate) async fn do_live_abort(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        migration_id: i64,
    ) {
        let me = &self.inner;
        self.notify_action(ctx, inst, "live_migration_abort", Phase::Start, None)
            .await;
        let found: Vec<Migration> = me
            .objects
            .list(
                ctx,
                &nova_objects::ListQuery::new().filter("id", migration_id),
            )
            .await
            .unwrap_or_default();
        if let Some(mut m) = found.into_iter().next() {
            match m.status().as_deref() {
                Some("queued") | Some("preparing") | Some("accepted") => {
                    m.obj_reset_changes();
                    self.save_migration(ctx, &mut m, "cancelled").await;
                }
                _ => {
                    if let Err(e) = me.driver.live_migration_abort(inst.uuid()).await {
                        tracing::warn!(instance = %inst.uuid(), error = %e, "cannot abort the live migration");
                    }
                }
            }
        }
        self.notify_action(ctx, inst, "live_migration_abort", Phase::End, None)
            .await;
    }
}

/// Nova's `MigrationPreCheckError`.
fn precheck(inst: &Instance, host: &str, reason: &str) -> RemoteError {
    RemoteError::new(
        "MigrationPreCheckError",
        "nova.exception",
        format!(
            "Migration pre-check error: Unable to migrate {} to {host}: {reason}",
            inst.uuid()
        ),
    )
    .with_kwarg("reason", reason.to_owned())
}
