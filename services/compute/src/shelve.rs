//! Snapshots, backups and shelving on this host (nova's
//! `ComputeManager.snapshot_instance`, `backup_instance`,
//! `shelve_instance`, `shelve_offload_instance`, `unshelve_instance` and
//! `_poll_shelved_instances`).
//!
//! A snapshot is the driver's copy of the root disk (`snapshot` into a
//! file) uploaded into the image the API created; task states
//! IMAGE_SNAPSHOT/IMAGE_BACKUP → IMAGE_PENDING_UPLOAD → IMAGE_UPLOADING →
//! none (shelving: SHELVING → SHELVING_IMAGE_PENDING_UPLOAD →
//! SHELVING_IMAGE_UPLOADING). A failed snapshot reverts the task state,
//! records a fault and deletes the image (nova's `reverts_task_state`,
//! `wrap_instance_fault`, `delete_image_on_error`).

use std::time::Duration;

use nova_objects::{Instance, SaveOptions, VersionedObject};
use nova_rpc::RequestContext;
use nova_service::cells::{record_fault, set_error};
use nova_service::notifications::{ExceptionPayload, OldStates, Phase, Source};
use nova_service::states::{TaskState, VmState};
use nova_virt::PowerState;

use crate::manager::ComputeManager;

/// The system metadata a shelve leaves (nova's `shelved_*` keys).
const SHELVED_KEYS: &[&str] = &["shelved_at", "shelved_image_id", "shelved_host"];

impl ComputeManager {
    /// Moves the task state from `from` to `to` (saved expecting `from`),
    /// `instance.update` sent.
    pub(crate) async fn step(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        from: &[TaskState],
        to: Option<TaskState>,
    ) -> anyhow::Result<()> {
        let old = OldStates::of(inst);
        inst.set_task_state(to.map(Into::into));
        self.inner
            .objects
            .save_with(
                ctx,
                inst,
                &SaveOptions::expected_task_state(from.iter().map(|t| Some(t.as_str()))),
            )
            .await?;
        self.updated(ctx, inst, &old).await;
        Ok(())
    }

    /// The driver's snapshot of the root disk uploaded into `image_id`.
    async fn snapshot_into(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        image_id: &str,
    ) -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("nova-snapshot-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("disk");
        let r = async {
            let format = self.inner.driver.snapshot(inst.uuid(), &file).await?;
            let data = tokio::fs::read(&file).await?;
            self.upload_image(ctx, image_id, &format, data).await?;
            anyhow::Ok(())
        }
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    /// `snapshot_instance` / `backup_instance`: the snapshot, then (a
    /// backup) the rotation. `expected` is the API's task state.
    pub(crate) async fn do_snapshot(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        image_id: &str,
        expected: TaskState,
        backup: Option<(String, i64)>,
    ) -> anyhow::Result<()> {
        let host = self.host().to_owned();
        inst.set_power_state(Some(self.power_of(inst.uuid()).await.code() as i64));
        self.notifier()
            .instance_snapshot(ctx, &inst, &host, Phase::Start, image_id)
            .await;
        let r = async {
            if expected == TaskState::ImageSnapshot {
                // The API left it pending: the snapshot starts here.
                self.step(
                    ctx,
                    &mut inst,
                    &[TaskState::ImageSnapshotPending],
                    Some(TaskState::ImageSnapshot),
                )
                .await?;
            }
            self.step(
                ctx,
                &mut inst,
                &[expected],
                Some(TaskState::ImagePendingUpload),
            )
            .await?;
            self.step(
                ctx,
                &mut inst,
                &[TaskState::ImagePendingUpload],
                Some(TaskState::ImageUploading),
            )
            .await?;
            self.snapshot_into(ctx, &inst, image_id).await?;
            self.step(ctx, &mut inst, &[TaskState::ImageUploading], None)
                .await
        }
        .await;
        if let Err(e) = r {
            return Err(self.snapshot_failed(ctx, &mut inst, image_id, e).await);
        }
        self.notifier()
            .instance_snapshot(ctx, &inst, &host, Phase::End, image_id)
            .await;
        if let Some((backup_type, rotation)) = backup {
            self.rotate_backups(ctx, &inst, &backup_type, rotation)
                .await?;
        }
        Ok(())
    }

    /// A failed snapshot: the image deleted, a fault, the task state back
    /// to none (`compute.exception` as nova's `wrap_exception`).
    async fn snapshot_failed(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        image_id: &str,
        e: anyhow::Error,
    ) -> anyhow::Error {
        let me = &self.inner;
        tracing::warn!(instance = %inst.uuid(), error = %format!("{e:#}"), "snapshot failed");
        let _ = self.delete_image(ctx, image_id).await;
        if e.downcast_ref::<nova_objects::Error>()
            .is_some_and(|e| e.is_not_found())
        {
            return e;
        }
        let err: &(dyn std::error::Error + 'static) = e.as_ref();
        let fault =
            ExceptionPayload::from_error(module_path!(), "snapshot_instance", "NovaException", err);
        self.notifier()
            .exception(ctx, Source::Compute, self.host(), &fault)
            .await;
        let msg = format!("Snapshot of instance {} failed: {e:#}", inst.uuid());
        let _ = record_fault(
            &me.objects,
            ctx,
            inst.uuid(),
            500,
            &msg,
            None,
            Some(self.host()),
        )
        .await;
        let old = OldStates::of(inst);
        inst.set_task_state(None);
        if let Err(se) = me.objects.save(ctx, inst).await {
            tracing::warn!(error = %se, "cannot revert the task state");
        } else {
            self.updated(ctx, inst, &old).await;
        }
        e.context(msg)
    }

    /// Nova's `_rotate_backups`: the instance's backups of `backup_type`
    /// beyond the newest `rotation` deleted, oldest first.
    async fn rotate_backups(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        backup_type: &str,
        rotation: i64,
    ) -> anyhow::Result<()> {
        let backups = self.list_backups(ctx, inst.uuid(), backup_type).await?;
        let keep = rotation.max(0) as usize;
        for old in backups.iter().skip(keep) {
            if let Some(id) = old["id"].as_str() {
                tracing::info!(instance = %inst.uuid(), image = id, "rotating out a backup");
                self.delete_image(ctx, id).await?;
            }
        }
        Ok(())
    }

    /// `shelve_instance`: powered off, snapshot into `image_id`, SHELVED
    /// (`shelved_at`, `shelved_image_id`, `shelved_host`); offloaded at
    /// once when `shelved_offload_time` is 0. A failure: ERROR with a
    /// fault (the image deleted).
    pub(crate) async fn do_shelve(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        image_id: Option<String>,
        clean_shutdown: bool,
    ) -> anyhow::Result<()> {
        let me = &self.inner;
        let host = self.host().to_owned();
        self.notifier().instance_exists(ctx, &inst, &host).await;
        self.notify_action(ctx, &inst, "shelve", Phase::Start, None)
            .await;
        let r = async {
            let timeout = if clean_shutdown {
                me.cfg.shutdown_timeout
            } else {
                Duration::ZERO
            };
            match me.driver.power_off(inst.uuid(), timeout).await {
                Ok(()) | Err(nova_virt::Error::InvalidState { .. }) => {}
                Err(e) => return Err(anyhow::Error::new(e).context("power off for the shelve")),
            }
            if let Some(id) = &image_id {
                self.step(
                    ctx,
                    &mut inst,
                    &[TaskState::Shelving],
                    Some(TaskState::ShelvingImagePendingUpload),
                )
                .await?;
                self.step(
                    ctx,
                    &mut inst,
                    &[TaskState::ShelvingImagePendingUpload],
                    Some(TaskState::ShelvingImageUploading),
                )
                .await?;
                self.snapshot_into(ctx, &inst, id).await?;
            }
            let old = OldStates::of(&inst);
            let sys = inst.system_metadata_mut();
            sys.insert("shelved_at".into(), Some(chrono::Utc::now().to_rfc3339()));
            sys.insert("shelved_image_id".into(), image_id.clone());
            sys.insert("shelved_host".into(), Some(host.clone()));
            inst.set_vm_state(Some(VmState::Shelved.into()));
            let offload = me.cfg.shelved_offload_time == 0;
            inst.set_task_state(offload.then(|| TaskState::ShelvingOffloading.into()));
            inst.set_power_state(Some(self.power_of(inst.uuid()).await.code() as i64));
            me.objects
                .save_with(
                    ctx,
                    &mut inst,
                    &SaveOptions::expected_task_state([
                        Some(TaskState::Shelving.as_str()),
                        Some(TaskState::ShelvingImageUploading.as_str()),
                    ]),
                )
                .await?;
            self.updated(ctx, &inst, &old).await;
            anyhow::Ok(offload)
        }
        .await;
        let offload = match r {
            Ok(o) => o,
            Err(e) => {
                if let Some(id) = &image_id {
                    let _ = self.delete_image(ctx, id).await;
                }
                let old = OldStates::of(&inst);
                let msg = format!("Shelve of instance {} failed: {e:#}", inst.uuid());
                let err: &(dyn std::error::Error + 'static) = e.as_ref();
                let fault = ExceptionPayload::from_error(
                    module_path!(),
                    "shelve_instance",
                    "NovaException",
                    err,
                );
                self.notifier()
                    .exception(ctx, Source::Compute, self.host(), &fault)
                    .await;
                set_error(&me.objects, ctx, &mut inst, 500, &msg, Some(self.host())).await?;
                self.updated(ctx, &inst, &old).await;
                return Err(e.context(msg));
            }
        };
        self.notify_action(ctx, &inst, "shelve", Phase::End, None)
            .await;
        if offload {
            self.do_shelve_offload(ctx, inst, false).await?;
        }
        Ok(())
    }

    /// `shelve_offload_instance`: the guest destroyed, the allocation
    /// deleted, host and node cleared, SHELVED_OFFLOADED.
    pub(crate) async fn do_shelve_offload(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        clean_shutdown: bool,
    ) -> anyhow::Result<()> {
        let me = &self.inner;
        self.notify_action(ctx, &inst, "shelve_offload", Phase::Start, None)
            .await;
        let timeout = if clean_shutdown {
            me.cfg.shutdown_timeout
        } else {
            Duration::ZERO
        };
        let r = async {
            match me.driver.power_off(inst.uuid(), timeout).await {
                Ok(())
                | Err(nova_virt::Error::InvalidState { .. })
                | Err(nova_virt::Error::InstanceNotFound(_)) => {}
                Err(e) => return Err(e),
            }
            match me.driver.destroy(inst.uuid()).await {
                Ok(()) | Err(nova_virt::Error::InstanceNotFound(_)) => Ok(()),
                Err(e) => Err(e),
            }
        }
        .await;
        if let Err(e) = r {
            return self
                .finish_action(
                    ctx,
                    inst,
                    Err(e),
                    VmState::Error,
                    PowerState::NoState,
                    "Shelve offload",
                    "shelve_offload",
                )
                .await;
        }
        let old = OldStates::of(&inst);
        inst.set_power_state(Some(PowerState::NoState.code() as i64));
        inst.set_host(None);
        inst.set_node(None);
        inst.set_vm_state(Some(VmState::ShelvedOffloaded.into()));
        inst.set_task_state(None);
        me.objects
            .save_with(
                ctx,
                &mut inst,
                &SaveOptions::expected_task_state([
                    Some(TaskState::Shelving.as_str()),
                    Some(TaskState::ShelvingOffloading.as_str()),
                ]),
            )
            .await?;
        self.updated(ctx, &inst, &old).await;
        self.drop_claim(inst.uuid()).await;
        me.placement
            .delete_allocations_async(inst.uuid())
            .await
            .map_err(|e| anyhow::anyhow!("placement: {e}"))?;
        self.notify_action(ctx, &inst, "shelve_offload", Phase::End, None)
            .await;
        Ok(())
    }

    /// `unshelve_instance`: spawned here from its shelved image (then
    /// deleted, with the `shelved_*` keys), ACTIVE. A spawn failure: the
    /// claim and allocation dropped, host and node cleared, ERROR with a
    /// fault (nova's aborted claim and `_error_out_instance_on_exception`).
    pub(crate) async fn do_unshelve(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        image: serde_json::Value,
        node: Option<String>,
    ) -> anyhow::Result<()> {
        let me = &self.inner;
        self.notify_action(ctx, &inst, "unshelve", Phase::Start, None)
            .await;
        let old = OldStates::of(&inst);
        inst.set_task_state(Some(TaskState::Spawning.into()));
        inst.set_host(Some(self.host().to_owned()));
        inst.set_node(node);
        me.objects
            .save_with(
                ctx,
                &mut inst,
                &SaveOptions::expected_task_state([Some(TaskState::Unshelving.as_str())]),
            )
            .await?;
        self.updated(ctx, &inst, &old).await;
        self.claim(&inst).await;
        let shelved_image = image["id"].as_str().map(str::to_owned);
        let mut spec = self.spec_of(&inst, None);
        if let Some(id) = &shelved_image {
            spec.image_id = id.clone();
        }
        if let Err(e) = me.driver.spawn(&spec).await {
            let _ = me.driver.destroy(inst.uuid()).await;
            self.drop_claim(inst.uuid()).await;
            let _ = me.placement.delete_allocations_async(inst.uuid()).await;
            let old = OldStates::of(&inst);
            inst.set_host(None);
            inst.set_node(None);
            let msg = format!("Unshelve of instance {} failed: {e}", inst.uuid());
            let fault = ExceptionPayload::from_driver(module_path!(), "unshelve_instance", &e);
            self.notifier()
                .exception(ctx, Source::Compute, self.host(), &fault)
                .await;
            set_error(&me.objects, ctx, &mut inst, 500, &msg, Some(self.host())).await?;
            self.updated(ctx, &inst, &old).await;
            return Err(anyhow::Error::new(e).context(msg));
        }
        if let Some(id) = &shelved_image
            && let Err(e) = self.delete_image(ctx, id).await
        {
            tracing::warn!(instance = %inst.uuid(), image = %id, error = %e, "cannot delete the shelved image");
        }
        let old = OldStates::of(&inst);
        for k in SHELVED_KEYS {
            inst.system_metadata_mut().remove(*k);
        }
        inst.set_power_state(Some(self.power_of(inst.uuid()).await.code() as i64));
        inst.set_vm_state(Some(VmState::Active.into()));
        inst.set_task_state(None);
        inst.set_launched_at(Some(chrono::Utc::now()));
        me.objects
            .save_with(
                ctx,
                &mut inst,
                &SaveOptions::expected_task_state([Some(TaskState::Spawning.as_str())]),
            )
            .await?;
        self.updated(ctx, &inst, &old).await;
        self.notify_action(ctx, &inst, "unshelve", Phase::End, None)
            .await;
        Ok(())
    }

    /// After `start_instance` of a SHELVED instance (an unshelve where it
    /// was): its snapshot deleted and the `shelved_*` keys removed.
    pub(crate) async fn forget_shelved_image(&self, ctx: &RequestContext, inst: &mut Instance) {
        let Some(id) = inst.system_metadata().get("shelved_image_id").cloned() else {
            return;
        };
        if let Some(id) = id
            && let Err(e) = self.delete_image(ctx, &id).await
        {
            tracing::warn!(instance = %inst.uuid(), image = %id, error = %e, "cannot delete the shelved image");
        }
        for k in SHELVED_KEYS {
            inst.system_metadata_mut().remove(*k);
        }
        if let Err(e) = self.inner.objects.save(ctx, inst).await {
            tracing::warn!(instance = %inst.uuid(), error = %e, "cannot clear the shelved keys");
        }
    }

    /// Nova's `_poll_shelved_instances`: SHELVED instances of this host
    /// shelved longer than `shelved_offload_time` are offloaded.
    pub async fn poll_shelved_instances(&self) {
        let me = &self.inner;
        if me.cfg.shelved_offload_time <= 0 {
            return;
        }
        let ctx = nova_service::context::admin();
        let Ok(instances) = self.instances_here().await else {
            return;
        };
        let limit = chrono::Duration::seconds(me.cfg.shelved_offload_time);
        let now = chrono::Utc::now();
        for mut inst in instances {
            if inst.vm_state() != &VmState::Shelved || inst.task_state().is_some() {
                continue;
            }
            let shelved_at = inst
                .system_metadata()
                .get("shelved_at")
                .cloned()
                .flatten()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok());
            if shelved_at.is_none_or(|t| now - t.with_timezone(&chrono::Utc) < limit) {
                continue;
            }
            let uuid = inst.uuid().clone();
            let lock = self.lock_for(&uuid);
            {
                let _g = lock.lock().await;
                let old = OldStates::of(&inst);
                inst.obj_reset_changes_recursive();
                inst.set_task_state(Some(TaskState::ShelvingOffloading.into()));
                let saved = me
                    .objects
                    .save_with(
                        &ctx,
                        &mut inst,
                        &SaveOptions::expected_task_state([None::<&str>]),
                    )
                    .await;
                if saved.is_ok() {
                    self.updated(&ctx, &inst, &old).await;
                    if let Err(e) = self.do_shelve_offload(&ctx, inst, false).await {
                        tracing::warn!(instance = %uuid, error = %e, "offloading failed");
                    }
                }
            }
            drop(lock);
            self.unlock_for(&uuid);
        }
    }
}
