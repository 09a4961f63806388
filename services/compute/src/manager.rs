//! The compute manager: its state, start-up, and the RPC interface it
//! serves ([`Compute`]): builds, deletes and power actions, each under
//! the instance's lock, on the caller's copy of the instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nova_objects::{
    BlockDeviceMappingList, Flavor, Instance, LibvirtLiveMigrateData, Migration,
    NetworkRequestList, Objects, RequestSpec, SaveOptions, Selection, Service, VersionedObject,
};
use nova_placement::PlacementHandle;
use nova_rpc::{Dispatcher, RemoteError, RequestContext, RpcServer, Target, Transport};
use nova_rpcapi::compute::{Compute, TOPIC};
use nova_rpcapi::conductor::ComputeTaskApi;
use nova_service::cells::{record_fault, set_error};
use nova_service::instance_actions;
use nova_service::notifications::{ExceptionPayload, Notifier, OldStates, Phase, Source};
use nova_service::states::{TaskState, VmState};
use nova_virt::{ComputeDriver, InstanceSpec, PowerState};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::actions::NovaError;
use crate::config::ComputeConfig;
use crate::resource_tracker::{Tracker, usage_of};

pub(crate) use nova_service::context::{admin, elevated};

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) cfg: ComputeConfig,
    pub(crate) driver: Arc<dyn ComputeDriver>,
    pub(crate) objects: Objects,
    pub(crate) placement: PlacementHandle,
    pub(crate) conductor: ComputeTaskApi,
    pub(crate) builds: Semaphore,
    pub(crate) locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) tracker: tokio::sync::Mutex<Tracker>,
    pub(crate) service: Mutex<Option<Service>>,
    pub(crate) notifier: std::sync::OnceLock<Notifier>,
    /// Where images are downloaded to (for drivers that boot from a disk).
    pub(crate) images: std::sync::OnceLock<crate::ImageCache>,
    /// The image API client (snapshots, shelving, backups).
    pub(crate) http: reqwest::Client,
    /// `[service_user]`: the service token sent beside the caller's.
    pub(crate) service_user: std::sync::OnceLock<Arc<nova_service::service_auth::ServiceUser>>,
    /// What builds wait for from other services (`network-vif-plugged`).
    pub(crate) events: crate::instance_events::InstanceEvents,
    /// The network API (none: servers get no ports).
    pub(crate) network: std::sync::OnceLock<Arc<nova_service::neutron::NeutronClient>>,
}

/// A multinic change (nova's `addFixedIp` / `removeFixedIp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FixedIpChange {
    /// One more fixed IP from this network.
    Add(String),
    /// This fixed IP released.
    Remove(String),
}

/// The compute manager. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ComputeManager {
    pub(crate) inner: Arc<Inner>,
}

fn remote(e: impl std::fmt::Display) -> RemoteError {
    RemoteError::internal("ComputeError", e.to_string())
}

impl ComputeManager {
    /// A manager for `cfg.host` over `driver`; objects go through `objects`
    /// (a conductor store in production), Placement through `placement`.
    pub fn new(
        cfg: ComputeConfig,
        driver: Arc<dyn ComputeDriver>,
        objects: Objects,
        placement: PlacementHandle,
        transport: Arc<dyn Transport>,
    ) -> Self {
        ComputeManager {
            inner: Arc::new(Inner {
                builds: Semaphore::new(cfg.max_concurrent_builds),
                cfg,
                driver,
                objects,
                placement,
                conductor: ComputeTaskApi::new(transport),
                locks: Mutex::default(),
                tracker: tokio::sync::Mutex::default(),
                service: Mutex::default(),
                notifier: std::sync::OnceLock::new(),
                images: std::sync::OnceLock::new(),
                http: reqwest::Client::new(),
                service_user: std::sync::OnceLock::new(),
                events: Default::default(),
                network: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Notifies through `notifier` (set before [`ComputeManager::start`];
    /// without one, nothing is sent).
    pub fn set_notifier(&self, notifier: Notifier) {
        let _ = self.inner.notifier.set(notifier);
    }

    /// Downloads images into `cache` before spawning (drivers that boot
    /// from a disk; the fake driver needs none).
    pub fn set_image_cache(&self, cache: crate::ImageCache) {
        let _ = self.inner.images.set(cache);
    }

    /// Calls to the image API on a caller's behalf also carry the service
    /// user's token (`[service_user] send_service_user_token`).
    pub fn set_service_user(&self, service: Arc<nova_service::service_auth::ServiceUser>) {
        let _ = self.inner.service_user.set(service);
    }

    /// The notifier (instance actions, `instance.update`, `compute.exception`).
    pub fn notifier(&self) -> &Notifier {
        static DISABLED: std::sync::LazyLock<Notifier> =
            std::sync::LazyLock::new(Notifier::disabled);
        self.inner.notifier.get().unwrap_or(&DISABLED)
    }

    /// `instance.update` after a save that changed `inst` from `old`
    /// (nova's `send_update`, with `notify_on_state_change`).
    pub(crate) async fn updated(&self, ctx: &RequestContext, inst: &Instance, old: &OldStates) {
        self.notifier()
            .instance_update(ctx, inst, old, Source::Compute, self.host())
            .await;
    }

    /// `instance.<action>.<phase>` from this host.
    pub(crate) async fn notify_action(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        action: &str,
        phase: Phase,
        fault: Option<&ExceptionPayload>,
    ) {
        self.notifier()
            .instance_action(ctx, inst, self.host(), action, phase, fault)
            .await;
    }

    /// The host.
    pub fn host(&self) -> &str {
        &self.inner.cfg.host
    }

    /// The driver.
    pub fn driver(&self) -> &Arc<dyn ComputeDriver> {
        &self.inner.driver
    }

    pub(crate) fn lock_for(&self, uuid: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut l = self.inner.locks.lock().unwrap_or_else(|e| e.into_inner());
        l.entry(uuid.to_owned()).or_default().clone()
    }

    pub(crate) fn unlock_for(&self, uuid: &str) {
        let mut l = self.inner.locks.lock().unwrap_or_else(|e| e.into_inner());
        if l.get(uuid).is_some_and(|m| Arc::strong_count(m) == 1) {
            l.remove(uuid);
        }
    }

    /// Starts the service: driver, service record, resources, recovery,
    /// RPC server and periodic tasks. Runs until `stop`.
    pub async fn start(
        &self,
        transport: Arc<dyn Transport>,
        stop: CancellationToken,
    ) -> anyhow::Result<Started> {
        let me = &self.inner;
        wait_for_conductor(&transport, &stop).await?;
        me.driver.init_host(&me.cfg.host).await?;
        let service = nova_service::register_service(
            &me.objects,
            self.notifier(),
            &me.cfg.host,
            "nova-compute",
            "compute",
        )
        .await?;
        *me.service.lock().unwrap_or_else(|e| e.into_inner()) = Some(service.clone());
        // The first report: a Placement that is busy for a moment (a
        // locked SQLite file, a restarting server) gets a few more tries
        // before the compute gives up starting.
        let mut delay = Duration::from_millis(100);
        for attempt in 1.. {
            match self.update_available_resource().await {
                Ok(()) => break,
                Err(e) if attempt < 6 => {
                    tracing::warn!(host = %me.cfg.host, error = %format!("{e:#}"), attempt, "first resource update failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => return Err(e),
            }
        }
        self.destroy_evacuated_instances().await;
        self.recover_instances().await;
        let dispatcher = Dispatcher::new(vec![
            Arc::new(self.clone()).endpoint(),
            nova_rpcapi::base::endpoint("nova-compute"),
        ]);
        // Two servers, as nova 34's compute: `compute-alt` (the steps of
        // operations under way) and `compute` (new work).
        let alt_server = RpcServer::start(
            transport.clone(),
            Target::topic(nova_rpcapi::compute::ALT_TOPIC).with_server(&me.cfg.host),
            dispatcher.clone(),
        )
        .await?;
        let server = RpcServer::start(
            transport,
            Target::topic(TOPIC).with_server(&me.cfg.host),
            dispatcher,
        )
        .await?;
        let heartbeat = nova_service::heartbeat(
            me.objects.clone(),
            service,
            me.cfg.report_interval,
            stop.clone(),
        );
        let m = self.clone();
        let resources = nova_service::periodic(
            stop.clone(),
            me.cfg.update_resources_interval,
            me.cfg.update_resources_interval,
            move || {
                let m = m.clone();
                async move {
                    if let Err(e) = m.update_available_resource().await {
                        tracing::warn!(error = %e, "update_available_resource failed");
                    }
                }
            },
        );
        let mut tasks = Vec::new();
        if let Some(timeout) = me.cfg.instance_build_timeout {
            let every = timeout.min(Duration::from_secs(60));
            let m = self.clone();
            let watchdog = nova_service::periodic(stop.clone(), every, every, move || {
                let m = m.clone();
                async move { m.check_instance_build_time().await }
            });
            tasks.push(("check_instance_build_time", watchdog));
        }
        if let Some(every) = me.cfg.reclaim_instance_interval {
            let m = self.clone();
            let reclaim = nova_service::periodic(stop.clone(), every, every, move || {
                let m = m.clone();
                async move { m.reclaim_queued_deletes().await }
            });
            tasks.push(("reclaim_queued_deletes", reclaim));
        }
        if let Some(window) = me.cfg.resize_confirm_window {
            // Nova runs `_poll_unconfirmed_resizes` every 60 s; never
            // less often than the window itself.
            let every = window.min(Duration::from_secs(60));
            let m = self.clone();
            let confirm = nova_service::periodic(stop.clone(), every, every, move || {
                let m = m.clone();
                async move { m.poll_unconfirmed_resizes(window).await }
            });
            tasks.push(("poll_unconfirmed_resizes", confirm));
        }
        if me.cfg.shelved_offload_time > 0 && me.cfg.shelved_poll_interval > 0 {
            let every = Duration::from_secs(me.cfg.shelved_poll_interval as u64);
            let m = self.clone();
            let poll = nova_service::periodic(stop.clone(), every, every, move || {
                let m = m.clone();
                async move { m.poll_shelved_instances().await }
            });
            tasks.push(("poll_shelved_instances", poll));
        }
        if me.cfg.instance_usage_audit {
            // nova runs it on every periodic pass (`periodic_interval`, 60 s);
            // a period already logged is skipped at once.
            let every = Duration::from_secs(60);
            let m = self.clone();
            let audit = nova_service::periodic(stop.clone(), every, every, move || {
                let m = m.clone();
                async move { m.instance_usage_audit_task().await }
            });
            tasks.push(("instance_usage_audit", audit));
        }
        let m = self.clone();
        let power = nova_service::periodic(
            stop,
            me.cfg.sync_power_state_interval,
            me.cfg.sync_power_state_interval,
            move || {
                let m = m.clone();
                async move { m.sync_power_states().await }
            },
        );
        Ok(Started {
            server,
            alt_server,
            tasks: [
                ("heartbeat", heartbeat),
                ("update_available_resource", resources),
                ("sync_power_states", power),
            ]
            .into_iter()
            .chain(tasks)
            .collect(),
        })
    }

    /// [`Self::spec_of`] with the instance's image in this host's cache,
    /// downloaded when missing: what a guest moving here needs (nova's
    /// destination `_create_images_and_backing` and `finish_migration`'s
    /// `_create_image`). Without an image cache (the fake driver) or an
    /// image (boot from volume) it is `spec_of`.
    pub(crate) async fn spec_with_image(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        operation: &'static str,
    ) -> Result<InstanceSpec, nova_virt::Error> {
        let mut spec = self.spec_of(inst, None);
        let (Some(cache), Some(id)) = (
            self.inner.images.get(),
            inst.image_ref().as_deref().filter(|r| !r.is_empty()),
        ) else {
            return Ok(spec);
        };
        if spec.image_path.is_none() {
            let failed = |reason: String| nova_virt::Error::Failed {
                operation,
                uuid: inst.uuid().clone(),
                reason,
            };
            let image = self
                .show_image(ctx, id)
                .await
                .map_err(|e| failed(e.to_string()))?;
            let path = cache
                .fetch(ctx, &image)
                .await
                .map_err(|e| failed(format!("{e:#}")))?;
            spec.image_path = Some(path.display().to_string());
        }
        Ok(spec)
    }

    pub(crate) fn spec_of(&self, inst: &Instance, admin_password: Option<String>) -> InstanceSpec {
        let u = usage_of(inst);
        let image_path = self.inner.images.get().and_then(|c| {
            let p = c.path_of(inst.image_ref().as_deref().filter(|r| !r.is_empty())?);
            p.exists().then(|| p.display().to_string())
        });
        InstanceSpec {
            uuid: inst.uuid().clone(),
            instance_name: nova_service::instance_name::instance_name(
                &self.inner.cfg.instance_name_template,
                *inst.id(),
                inst.uuid(),
            ),
            image_path,
            name: inst.display_name().clone().unwrap_or_default(),
            flavor_name: if inst.obj_attr_is_set("flavor") {
                inst.flavor().name().clone().unwrap_or_default()
            } else {
                String::new()
            },
            vcpus: u.vcpus.max(0) as u32,
            memory_mb: u.memory_mb.max(0) as u64,
            root_gb: inst.root_gb().unwrap_or(0).max(0) as u64,
            image_id: inst.image_ref().clone().unwrap_or_default(),
            user_data: inst.user_data().clone(),
            admin_password,
            ..Default::default()
        }
    }

    /// Builds `b.instance` under the instance's lock.
    async fn build(&self, ctx: RequestContext, b: Build) {
        let uuid = b.instance.uuid().clone();
        let lock = self.lock_for(&uuid);
        {
            let _g = lock.lock().await;
            let work = self.do_build(&ctx, b);
            if let Err(e) = instance_actions::reported(
                &self.inner.objects,
                &ctx,
                &uuid,
                "compute__do_build_and_run_instance",
                self.host(),
                work,
            )
            .await
            {
                tracing::warn!(instance = %uuid, error = %format!("{e:#}"), "build failed");
            }
        }
        drop(lock);
        self.unlock_for(&uuid);
    }

    async fn do_build(&self, ctx: &RequestContext, b: Build) -> anyhow::Result<()> {
        let me = &self.inner;
        let ctx = elevated(ctx);
        let mut inst = b.instance.clone();
        inst.obj_reset_changes_recursive();
        let old = OldStates::of(&inst);
        inst.set_host(Some(self.host().to_owned()));
        inst.set_node(b.node.clone());
        inst.set_launched_on(Some(self.host().to_owned()));
        inst.set_vm_state(Some(VmState::Building.into()));
        inst.set_task_state(Some(TaskState::Spawning.into()));
        // nova's configdrive.update_instance: a forced config drive shows.
        if self.config_drive_required(&inst)
            && inst.config_drive().as_deref().is_none_or(str::is_empty)
        {
            inst.set_config_drive(Some("True".into()));
        }
        let expect = SaveOptions::expected_task_state([Some(TaskState::Scheduling.as_str()), None]);
        if let Err(e) = me.objects.save_with(&ctx, &mut inst, &expect).await {
            // Deleted (or being deleted) while it was scheduled.
            tracing::info!(instance = %inst.uuid(), error = %e, "not building: the instance moved on");
            let _ = me.placement.delete_allocations_async(inst.uuid()).await;
            return Ok(());
        }
        self.updated(&ctx, &inst, &old).await;
        let image_name = b.image.get("name").and_then(Value::as_str);
        self.notifier()
            .instance_create(&ctx, &inst, self.host(), Phase::Start, None, image_name)
            .await;
        self.claim(&inst).await;
        // nova checks the server group's policy once the instance is on
        // this host; a violation reschedules it as a failed spawn does.
        let group_check = self
            .validate_group_policy(&ctx, &inst, b.request_spec.as_ref(), &b.filter_properties)
            .await;
        let spawned = match group_check {
            Ok(()) => self.spawn_with_networks(&ctx, &mut inst, &b).await,
            Err(reason) => Err((
                reason.clone(),
                ExceptionPayload::new(
                    module_path!(),
                    "_validate_instance_group_policy",
                    "GroupAffinityViolation",
                    reason,
                ),
                false,
            )),
        };
        match spawned {
            Ok(()) => {
                let old = OldStates::of(&inst);
                inst.set_power_state(Some(PowerState::Running.code() as i64));
                inst.set_vm_state(Some(VmState::Active.into()));
                inst.set_task_state(None);
                inst.set_launched_at(Some(chrono::Utc::now()));
                let expect = SaveOptions::expected_task_state([Some(TaskState::Spawning.as_str())]);
                if let Err(e) = me.objects.save_with(&ctx, &mut inst, &expect).await {
                    tracing::info!(instance = %inst.uuid(), error = %e, "built, but the instance moved on (being deleted)");
                    // As nova: the build ends in create.error with why.
                    let fault = ExceptionPayload::from_error(
                        module_path!(),
                        "build_and_run_instance",
                        e.class_name(),
                        &e,
                    );
                    self.notifier()
                        .instance_create(&ctx, &inst, self.host(), Phase::Error, Some(&fault), None)
                        .await;
                    return Ok(());
                }
                self.updated(&ctx, &inst, &old).await;
                self.notifier()
                    .instance_create(&ctx, &inst, self.host(), Phase::End, None, None)
                    .await;
                Ok(())
            }
            Err((reason, fault, abort)) => {
                tracing::warn!(instance = %inst.uuid(), host = %self.host(), error = %reason, "spawn failed");
                self.notifier()
                    .instance_create(&ctx, &inst, self.host(), Phase::Error, Some(&fault), None)
                    .await;
                let old = OldStates::of(&inst);
                let _ = me.driver.destroy(inst.uuid()).await;
                self.drop_claim(inst.uuid()).await;
                let _ = me.placement.delete_allocations_async(inst.uuid()).await;
                let retry = b
                    .filter_properties
                    .get("retry")
                    .filter(|r| !r.is_null() && !abort)
                    .cloned();
                match retry {
                    Some(mut retry) => {
                        // Reschedule: the conductor takes the next alternate;
                        // the ports stay the instance's, unbound from here.
                        self.unbind_networks(inst.uuid()).await;
                        retry["exc_reason"] = json!(reason);
                        inst.set_host(None);
                        inst.set_node(None);
                        inst.set_task_state(Some(TaskState::Scheduling.into()));
                        me.objects.save(&ctx, &mut inst).await?;
                        self.updated(&ctx, &inst, &old).await;
                        record_fault(
                            &me.objects,
                            &ctx,
                            inst.uuid(),
                            500,
                            &reason,
                            None,
                            Some(self.host()),
                        )
                        .await?;
                        let mut fp = b.filter_properties.clone();
                        fp["retry"] = retry;
                        me.conductor
                            .build_instances(
                                &ctx,
                                &vec![inst],
                                &b.image,
                                &fp,
                                &b.admin_password,
                                &b.injected_files,
                                &b.requested_networks,
                                &b.security_groups,
                                &b.request_spec,
                                &Some(vec![b.host_list.unwrap_or_default()]),
                            )
                            .await?;
                    }
                    None => {
                        if let Err(e) = self.deallocate_failed_build(&ctx, inst.uuid()).await {
                            tracing::warn!(instance = %inst.uuid(), error = %e, "ports not released");
                        }
                        let msg = format!("Build of instance {} aborted: {reason}", inst.uuid());
                        set_error(&me.objects, &ctx, &mut inst, 500, &msg, Some(self.host()))
                            .await?;
                        self.updated(&ctx, &inst, &old).await;
                        return Err(anyhow::anyhow!(msg));
                    }
                }
                Ok(())
            }
        }
    }

    /// The build's networks, then the driver's spawn, then the wait for
    /// the VIFs; an error says why, with its fault, and whether the build
    /// is aborted rather than rescheduled (nova's network failures).
    async fn spawn_with_networks(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        b: &Build,
    ) -> Result<(), (String, ExceptionPayload, bool)> {
        let uuid = inst.uuid().clone();
        let abort = |function: &str, class: &str, e: &anyhow::Error| {
            tracing::warn!(instance = %uuid, error = %format!("{e:#}"), "{}", crate::network::NETWORK_FAILED);
            (
                crate::network::NETWORK_FAILED.to_owned(),
                ExceptionPayload::new(module_path!(), function, class, format!("{e:#}")),
                true,
            )
        };
        let (vifs, waits, records) = self
            .build_networks(
                ctx,
                inst,
                b.requested_networks.as_ref(),
                b.security_groups.as_deref().unwrap_or_default(),
            )
            .await
            .map_err(|e| abort("_build_networks_for_instance", "BuildAbortException", &e))?;
        match self
            .prepare_spawn(
                ctx,
                inst,
                &b.image,
                b.admin_password.clone(),
                b.injected_files.as_deref().unwrap_or_default(),
            )
            .await
        {
            Ok(mut spec) => {
                spec.network_info = crate::network::driver_vifs(&vifs);
                self.inner.driver.spawn(&spec).await
            }
            Err(e) => Err(e),
        }
        .map_err(|err| {
            let fault = ExceptionPayload::from_driver(module_path!(), "spawn", &err);
            (err.to_string(), fault, false)
        })?;
        self.wait_for_plugs(&uuid, waits)
            .await
            .map_err(|e| abort("spawn", "VirtualInterfaceCreateException", &e))?;
        // As nova's libvirt spawn: the tagged interfaces' device metadata,
        // saved with the instance's ACTIVE state.
        self.set_device_metadata(inst, &records).await;
        Ok(())
    }

    /// Runs `f` on the caller's copy of the instance under its lock, as
    /// event `compute_<event>` of the request's instance action.
    pub(crate) async fn with_instance<T, F, Fut>(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        event: &str,
        f: F,
    ) -> Result<T, RemoteError>
    where
        T: Default,
        F: FnOnce(Instance) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<T>>,
    {
        // As Nova: work on the caller's copy (the API saved it just before
        // casting) and save only what this host changes; no read-back
        // through the conductor first.
        inst.obj_reset_changes_recursive();
        let uuid = inst.uuid().clone();
        let lock = self.lock_for(&uuid);
        let r = {
            let _g = lock.lock().await;
            let work = f(inst);
            let event = format!("compute_{event}");
            match instance_actions::reported(
                &self.inner.objects,
                ctx,
                &uuid,
                &event,
                self.host(),
                work,
            )
            .await
            {
                // Deleted while the request was queued: nothing left to act on.
                Err(e)
                    if e.downcast_ref::<nova_objects::Error>()
                        .is_some_and(nova_objects::Error::is_not_found) =>
                {
                    tracing::info!(instance = %uuid, error = %e, "instance gone before the action ran");
                    Ok(T::default())
                }
                Err(e) => match e.downcast::<NovaError>() {
                    Ok(n) => Err(n.0),
                    Err(e) => Err(remote(format!("{e:#}"))),
                },
                Ok(v) => Ok(v),
            }
        };
        drop(lock);
        self.unlock_for(&uuid);
        r
    }

    pub(crate) async fn do_terminate(
        &self,
        ctx: RequestContext,
        mut inst: Instance,
    ) -> anyhow::Result<()> {
        let me = &self.inner;
        self.notify_action(&ctx, &inst, "delete", Phase::Start, None)
            .await;
        self.notify_action(&ctx, &inst, "shutdown", Phase::Start, None)
            .await;
        let old = OldStates::of(&inst);
        match me.driver.destroy(inst.uuid()).await {
            Ok(()) | Err(nova_virt::Error::InstanceNotFound(_)) => {}
            Err(e) => {
                let fault = ExceptionPayload::from_driver(module_path!(), "terminate_instance", &e);
                self.notifier()
                    .exception(&ctx, Source::Compute, self.host(), &fault)
                    .await;
                set_error(
                    &me.objects,
                    &ctx,
                    &mut inst,
                    500,
                    &format!("delete failed: {e}"),
                    Some(self.host()),
                )
                .await?;
                self.updated(&ctx, &inst, &old).await;
                return Ok(());
            }
        }
        self.notify_action(&ctx, &inst, "shutdown", Phase::End, None)
            .await;
        if let Err(e) = self.deallocate_networks(&ctx, inst.uuid()).await {
            // nova's _try_deallocate_network: the instance goes to ERROR.
            let msg = format!("Failed to deallocate network for instance. Error: {e:#}");
            set_error(&me.objects, &ctx, &mut inst, 500, &msg, Some(self.host())).await?;
            self.updated(&ctx, &inst, &old).await;
            return Ok(());
        }
        self.drop_claim(inst.uuid()).await;
        me.placement
            .delete_allocations_async(inst.uuid())
            .await
            .map_err(|e| anyhow::anyhow!("placement: {e}"))?;
        inst.set_vm_state(Some(VmState::Deleted.into()));
        inst.set_task_state(None);
        inst.set_power_state(Some(PowerState::NoState.code() as i64));
        inst.set_terminated_at(Some(chrono::Utc::now()));
        me.objects.save(&ctx, &mut inst).await?;
        self.updated(&ctx, &inst, &old).await;
        // Deleted on this host: the row must go too. While the database
        // (or the conductor) is away, tried again for a while; past that,
        // the next start completes it (`recover_instances`).
        let mut wait = std::time::Duration::from_millis(250);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            match me.objects.destroy(&ctx, &mut inst).await {
                Err(e) if !e.is_not_found() && std::time::Instant::now() + wait < until => {
                    tracing::warn!(instance = %inst.uuid(), error = %e, "instance deleted on the host, its row not yet: trying again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(10));
                }
                Err(e) if !e.is_not_found() => return Err(e.into()),
                _ => break,
            }
        }
        self.notify_action(&ctx, &inst, "delete", Phase::End, None)
            .await;
        Ok(())
    }

    /// Ends an action the driver ran: the new states (and `instance.<event>.end`),
    /// or ERROR with a fault (and `instance.<event>.error` where nova has one,
    /// else `compute.exception`, as nova's `wrap_exception`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn finish_action(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        result: nova_virt::Result<()>,
        vm_state: VmState,
        power: PowerState,
        action: &str,
        event: &str,
    ) -> anyhow::Result<()> {
        let me = &self.inner;
        let old = OldStates::of(&inst);
        match result {
            Ok(()) => {
                inst.set_vm_state(Some(vm_state.into()));
                inst.set_power_state(Some(power.code() as i64));
                inst.set_task_state(None);
                me.objects.save(ctx, &mut inst).await?;
                self.updated(ctx, &inst, &old).await;
                self.notify_action(ctx, &inst, event, Phase::End, None)
                    .await;
            }
            Err(e) => {
                let fault = ExceptionPayload::from_driver(module_path!(), event, &e);
                if EVENTS_WITH_ERROR.contains(&event) {
                    self.notify_action(ctx, &inst, event, Phase::Error, Some(&fault))
                        .await;
                } else {
                    self.notifier()
                        .exception(ctx, Source::Compute, self.host(), &fault)
                        .await;
                }
                let msg = format!("{action} of instance {} failed: {e}", inst.uuid());
                set_error(&me.objects, ctx, &mut inst, 500, &msg, Some(self.host())).await?;
                self.updated(ctx, &inst, &old).await;
                return Err(anyhow::Error::new(e).context(msg));
            }
        }
        Ok(())
    }
}

/// The instance actions nova sends an `instance.<action>.error` for (the
/// others' failures are `compute.exception`).
const EVENTS_WITH_ERROR: &[&str] = &[
    "reboot",
    "rebuild",
    "resize",
    "interface_attach",
    "volume_attach",
    "volume_swap",
    "share_attach",
    "share_detach",
];

/// A started compute: its RPC server and its periodic tasks (heartbeat,
/// resources, power sync), which end when the start's stop token does;
/// whoever drains the service waits for both.
#[derive(Debug)]
pub struct Started {
    /// The RPC server of new work (`compute.<host>`).
    pub server: RpcServer,
    /// The RPC server of the steps of operations under way
    /// (`compute-alt.<host>`): on shutdown, stop it after `server`.
    pub alt_server: RpcServer,
    /// The periodic tasks, by name.
    pub tasks: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
}

/// What a build needs of `build_and_run_instance`'s arguments.
#[derive(Debug)]
struct Build {
    instance: Instance,
    image: Value,
    request_spec: Option<RequestSpec>,
    filter_properties: Value,
    admin_password: Option<String>,
    /// `[path, contents (base64)]` pairs for the config drive.
    injected_files: Option<Vec<Value>>,
    node: Option<String>,
    host_list: Option<Vec<Selection>>,
    /// The networks asked for (`None`: the one available network).
    requested_networks: Option<NetworkRequestList>,
    /// The security groups for the ports made (names or ids).
    security_groups: Option<Vec<String>>,
}

impl Compute for ComputeManager {
    async fn external_instance_event(
        &self,
        ctx: RequestContext,
        instances: Vec<Instance>,
        events: Vec<nova_objects::InstanceExternalEvent>,
    ) -> Result<(), RemoteError> {
        self.do_external_instance_event(ctx, instances, events)
            .await
    }

    /// The cast returns at once; the build runs under
    /// `max_concurrent_builds`, keeping the request id.
    async fn build_and_run_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        image: Value,
        request_spec: Option<RequestSpec>,
        filter_properties: Value,
        admin_password: Option<String>,
        injected_files: Option<Vec<Value>>,
        requested_networks: Option<NetworkRequestList>,
        security_groups: Option<Vec<String>>,
        _block_device_mapping: Option<BlockDeviceMappingList>,
        node: Option<String>,
        _limits: Value,
        host_list: Option<Vec<Selection>>,
        _accel_uuids: Option<Vec<String>>,
    ) -> Result<(), RemoteError> {
        let span = tracing::info_span!(
            "build_and_run_instance",
            request_id = ctx.request_id().unwrap_or("-"),
            instance = %instance.uuid(),
        );
        let build = Build {
            instance,
            image,
            request_spec,
            filter_properties,
            admin_password,
            injected_files,
            node,
            host_list,
            requested_networks,
            security_groups,
        };
        let me = self.clone();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let _permit = me.inner.builds.acquire().await;
                me.build(ctx, build).await
            },
            span,
        ));
        Ok(())
    }

    async fn terminate_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        _bdms: Option<BlockDeviceMappingList>,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        let uuid = instance.uuid().clone();
        let r = self
            .with_instance(&ctx, instance, "terminate_instance", |inst| {
                self.do_terminate(ctx.clone(), inst)
            })
            .await;
        if let Err(e) = &r {
            // nova's do_terminate_instance: a delete that failed leaves the
            // instance in ERROR (not `deleting` for ever); deleting it
            // again retries. Gone already: nothing to do.
            if let Ok(mut inst) = self
                .inner
                .objects
                .get_by_uuid::<Instance>(&ctx, &uuid)
                .await
                && inst.vm_state() != &VmState::Deleted
            {
                tracing::warn!(instance = %uuid, error = %e, "delete failed: setting the instance to ERROR");
                let msg = format!("delete failed: {}", e.message);
                if let Err(e2) = set_error(
                    &self.inner.objects,
                    &ctx,
                    &mut inst,
                    500,
                    &msg,
                    Some(self.host()),
                )
                .await
                {
                    tracing::warn!(instance = %uuid, error = %e2, "cannot set the instance to ERROR");
                }
            }
        }
        // Nobody waits for events of a deleted instance.
        self.inner.events.clear(&uuid);
        r
    }

    // -- Moves (`moves.rs`).

    async fn prep_resize(
        &self,
        ctx: RequestContext,
        instance: Instance,
        image: Value,
        flavor: Flavor,
        request_spec: Option<RequestSpec>,
        filter_properties: Value,
        node: Option<String>,
        clean_shutdown: Option<bool>,
        migration: Migration,
        host_list: Option<Vec<Selection>>,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        let p = crate::moves::Prep {
            image,
            flavor,
            request_spec,
            filter_properties,
            node,
            clean_shutdown,
            migration,
            host_list,
        };
        self.spawn_move(ctx, instance, "prep_resize", move |m, ctx, i| async move {
            m.do_prep_resize(&ctx, i, p).await
        });
        Ok(())
    }

    async fn resize_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        migration: Migration,
        image: Value,
        flavor: Flavor,
        _clean_shutdown: Option<bool>,
        request_spec: Option<RequestSpec>,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.spawn_move(
            ctx,
            instance,
            "resize_instance",
            move |m, ctx, i| async move {
                m.do_resize_instance(&ctx, i, migration, image, flavor, request_spec)
                    .await
            },
        );
        Ok(())
    }

    async fn finish_resize(
        &self,
        ctx: RequestContext,
        instance: Instance,
        migration: Migration,
        _image: Value,
        _disk_info: Value,
        _request_spec: Option<RequestSpec>,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.spawn_move(
            ctx,
            instance,
            "finish_resize",
            move |m, ctx, i| async move { m.do_finish_resize(&ctx, i, migration).await },
        );
        Ok(())
    }

    async fn confirm_resize(
        &self,
        ctx: RequestContext,
        instance: Instance,
        migration: Migration,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.spawn_move(
            ctx,
            instance,
            "confirm_resize",
            move |m, ctx, i| async move { m.do_confirm_resize(&ctx, i, migration).await },
        );
        Ok(())
    }

    async fn revert_resize(
        &self,
        ctx: RequestContext,
        instance: Instance,
        migration: Migration,
        request_spec: Option<RequestSpec>,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.spawn_move(ctx, instance, "revert_resize", move |m, ctx, i| async move {
            m.do_revert_resize(&ctx, i, migration, request_spec).await
        });
        Ok(())
    }

    async fn finish_revert_resize(
        &self,
        ctx: RequestContext,
        instance: Instance,
        migration: Migration,
        _request_spec: Option<RequestSpec>,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.spawn_move(
            ctx,
            instance,
            "finish_revert_resize",
            move |m, ctx, i| async move { m.do_finish_revert_resize(&ctx, i, migration).await },
        );
        Ok(())
    }

    async fn check_can_live_migrate_destination(
        &self,
        ctx: RequestContext,
        instance: Instance,
        block_migration: Option<bool>,
        disk_over_commit: Option<bool>,
        _migration: Option<Migration>,
        _limits: Value,
    ) -> Result<LibvirtLiveMigrateData, RemoteError> {
        let ctx = elevated(&ctx);
        self.do_check_live_destination(&ctx, &instance, block_migration, disk_over_commit)
            .await
    }

    async fn check_can_live_migrate_source(
        &self,
        _ctx: RequestContext,
        instance: Instance,
        dest_check_data: LibvirtLiveMigrateData,
    ) -> Result<LibvirtLiveMigrateData, RemoteError> {
        self.do_check_live_source(&instance, dest_check_data).await
    }

    async fn pre_live_migration(
        &self,
        ctx: RequestContext,
        instance: Instance,
        _disk: Value,
        migrate_data: Option<LibvirtLiveMigrateData>,
    ) -> Result<LibvirtLiveMigrateData, RemoteError> {
        let ctx = elevated(&ctx);
        self.do_pre_live_migration(&ctx, &instance, migrate_data)
            .await
    }

    async fn live_migration(
        &self,
        ctx: RequestContext,
        instance: Instance,
        dest: String,
        _block_migration: Option<bool>,
        migration: Option<Migration>,
        migrate_data: Option<LibvirtLiveMigrateData>,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        let mut migration = migration;
        if let Some(m) = migration.as_mut() {
            // Nova: `queued` until the executor takes it.
            m.obj_reset_changes();
            m.set_status(Some("queued".into()));
            let _ = self.inner.objects.save(&ctx, m).await;
        }
        let me = self.clone();
        tokio::spawn(async move {
            me.do_live_migration(ctx, instance, dest, migration, migrate_data)
                .await
        });
        Ok(())
    }

    async fn post_live_migration_at_destination(
        &self,
        ctx: RequestContext,
        instance: Instance,
        _block_migration: Option<bool>,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "post_live_migration_at_destination", |i| {
            self.do_post_live_at_destination(&ctx, i)
        })
        .await
    }

    async fn rollback_live_migration_at_destination(
        &self,
        ctx: RequestContext,
        instance: Instance,
        _destroy_disks: Option<bool>,
        _migrate_data: Option<LibvirtLiveMigrateData>,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.do_rollback_live_at_destination(&ctx, &instance)
            .await
            .map_err(remote)
    }

    async fn live_migration_force_complete(
        &self,
        ctx: RequestContext,
        instance: Instance,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.do_live_force_complete(&ctx, &instance).await;
        Ok(())
    }

    async fn live_migration_abort(
        &self,
        ctx: RequestContext,
        instance: Instance,
        migration_id: i64,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.do_live_abort(&ctx, &instance, migration_id).await;
        Ok(())
    }

    async fn reboot_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        _block_device_info: Value,
        reboot_type: String,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        let hard = reboot_type.eq_ignore_ascii_case("HARD");
        self.with_instance(&ctx, instance, "reboot_instance", |inst| async {
            self.notify_action(&ctx, &inst, "reboot", Phase::Start, None)
                .await;
            let r = self.inner.driver.reboot(inst.uuid(), hard).await;
            self.finish_action(
                &ctx,
                inst,
                r,
                VmState::Active,
                PowerState::Running,
                "Reboot",
                "reboot",
            )
            .await
        })
        .await
    }

    async fn stop_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        clean_shutdown: Option<bool>,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        let timeout = if clean_shutdown.unwrap_or(true) {
            self.inner.cfg.shutdown_timeout
        } else {
            Duration::ZERO
        };
        self.with_instance(&ctx, instance, "stop_instance", |inst| async {
            self.notify_action(&ctx, &inst, "power_off", Phase::Start, None)
                .await;
            let r = self.inner.driver.power_off(inst.uuid(), timeout).await;
            self.finish_action(
                &ctx,
                inst,
                r,
                VmState::Stopped,
                PowerState::Shutdown,
                "Stop",
                "power_off",
            )
            .await
        })
        .await
    }

    async fn start_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "start_instance", |mut inst| async {
            self.notify_action(&ctx, &inst, "power_on", Phase::Start, None)
                .await;
            let r = self.inner.driver.power_on(inst.uuid()).await;
            if r.is_ok() {
                // An unshelve where it was shelved: the snapshot goes.
                self.forget_shelved_image(&ctx, &mut inst).await;
            }
            self.finish_action(
                &ctx,
                inst,
                r,
                VmState::Active,
                PowerState::Running,
                "Start",
                "power_on",
            )
            .await
        })
        .await
    }

    async fn get_diagnostics(
        &self,
        _ctx: RequestContext,
        instance: Instance,
    ) -> Result<Value, RemoteError> {
        let d = crate::diagnostics::figures(&*self.inner.driver, &instance).await?;
        Ok(crate::diagnostics::legacy(&d))
    }

    async fn get_instance_diagnostics(
        &self,
        _ctx: RequestContext,
        instance: Instance,
    ) -> Result<Value, RemoteError> {
        let d = crate::diagnostics::figures(&*self.inner.driver, &instance).await?;
        Ok(crate::diagnostics::standardized(
            self.inner.driver.name(),
            &instance,
            &d,
        ))
    }

    async fn pause_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "pause_instance", |i| self.do_pause(&ctx, i))
            .await
    }

    async fn unpause_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "unpause_instance", |i| {
            self.do_unpause(&ctx, i)
        })
        .await
    }

    async fn suspend_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "suspend_instance", |i| {
            self.do_suspend(&ctx, i)
        })
        .await
    }

    async fn resume_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "resume_instance", |i| {
            self.do_resume(&ctx, i)
        })
        .await
    }

    async fn set_admin_password(
        &self,
        ctx: RequestContext,
        instance: Instance,
        new_pass: String,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "set_admin_password", |i| {
            self.do_set_admin_password(&ctx, i, &new_pass)
        })
        .await
    }

    async fn trigger_crash_dump(
        &self,
        ctx: RequestContext,
        instance: Instance,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "trigger_crash_dump", |i| {
            self.do_trigger_crash_dump(&ctx, i)
        })
        .await
    }

    async fn attach_interface(
        &self,
        ctx: RequestContext,
        instance: Instance,
        network_id: Option<String>,
        port_id: Option<String>,
        requested_ip: Option<String>,
        tag: Option<String>,
    ) -> Result<Value, RemoteError> {
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "attach_interface", |i| {
            self.do_attach_interface(&ctx, i, network_id, port_id, requested_ip, tag)
        })
        .await
    }

    async fn detach_interface(
        &self,
        ctx: RequestContext,
        instance: Instance,
        port_id: String,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "detach_interface", |i| {
            self.do_detach_interface(&ctx, i, port_id)
        })
        .await
    }

    async fn add_fixed_ip_to_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        network_id: String,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.do_change_fixed_ip(&ctx, instance, FixedIpChange::Add(network_id))
            .await
    }

    async fn remove_fixed_ip_from_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        address: String,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.do_change_fixed_ip(&ctx, instance, FixedIpChange::Remove(address))
            .await
    }

    async fn inject_network_info(
        &self,
        ctx: RequestContext,
        instance: Instance,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.do_inject_network_info(&ctx, instance).await
    }

    async fn get_console_output(
        &self,
        _ctx: RequestContext,
        instance: Instance,
        tail_length: Option<i64>,
    ) -> Result<String, RemoteError> {
        self.do_get_console_output(&instance, tail_length).await
    }

    async fn rescue_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        rescue_password: Option<String>,
        rescue_image_ref: Option<String>,
        _clean_shutdown: Option<bool>,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "rescue_instance", |i| {
            self.do_rescue(&ctx, i, rescue_password, rescue_image_ref)
        })
        .await
    }

    async fn unrescue_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "unrescue_instance", |i| {
            self.do_unrescue(&ctx, i)
        })
        .await
    }

    async fn soft_delete_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "soft_delete_instance", |i| {
            self.do_soft_delete(&ctx, i)
        })
        .await
    }

    async fn restore_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "restore_instance", |i| {
            self.do_restore(&ctx, i)
        })
        .await
    }

    async fn rebuild_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        new_pass: Option<String>,
        injected_files: Option<Vec<Value>>,
        image_ref: Option<String>,
        _orig_image_ref: Option<String>,
        _orig_sys_metadata: Value,
        _bdms: Option<BlockDeviceMappingList>,
        recreate: bool,
        _on_shared_storage: Option<bool>,
        preserve_ephemeral: bool,
        migration: Option<Migration>,
        scheduled_node: Option<String>,
        _limits: Value,
        _request_spec: Option<RequestSpec>,
        _accel_uuids: Option<Vec<String>>,
        _reimage_boot_volume: Option<bool>,
        target_state: Option<String>,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        let args = crate::rebuild::RebuildArgs {
            new_pass,
            image_ref,
            injected_files: injected_files.unwrap_or_default(),
            recreate,
            preserve_ephemeral,
            migration,
            scheduled_node,
            target_state,
        };
        self.with_instance(&ctx, instance, "rebuild_instance", |i| {
            self.do_rebuild(&ctx, i, args)
        })
        .await
    }

    async fn snapshot_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        image_id: String,
    ) -> Result<(), RemoteError> {
        // Elevated, keeping the caller's token and catalog (the upload's).
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "snapshot_instance", |i| {
            self.do_snapshot(&ctx, i, &image_id, TaskState::ImageSnapshot, None)
        })
        .await
    }

    async fn backup_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        image_id: String,
        backup_type: String,
        rotation: i64,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "backup_instance", |i| {
            self.do_snapshot(
                &ctx,
                i,
                &image_id,
                TaskState::ImageBackup,
                Some((backup_type, rotation)),
            )
        })
        .await
    }

    async fn shelve_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        image_id: Option<String>,
        clean_shutdown: Option<bool>,
        _accel_uuids: Option<Vec<String>>,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "shelve_instance", |i| {
            self.do_shelve(&ctx, i, image_id, clean_shutdown.unwrap_or(true))
        })
        .await
    }

    async fn shelve_offload_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        clean_shutdown: Option<bool>,
        _accel_uuids: Option<Vec<String>>,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "shelve_offload_instance", |i| {
            self.do_shelve_offload(&ctx, i, clean_shutdown.unwrap_or(true))
        })
        .await
    }

    async fn unshelve_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        image: Value,
        _filter_properties: Value,
        node: Option<String>,
        _request_spec: Option<RequestSpec>,
        _accel_uuids: Option<Vec<String>>,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(&ctx);
        self.with_instance(&ctx, instance, "unshelve_instance", |i| {
            self.do_unshelve(&ctx, i, image, node)
        })
        .await
    }

    async fn get_vnc_console(
        &self,
        ctx: RequestContext,
        instance: Instance,
        console_type: String,
    ) -> Result<Value, RemoteError> {
        crate::consoles::get(self, ctx, instance, "vnc", console_type).await
    }

    async fn get_spice_console(
        &self,
        ctx: RequestContext,
        instance: Instance,
        console_type: String,
    ) -> Result<Value, RemoteError> {
        crate::consoles::get(self, ctx, instance, "spice", console_type).await
    }

    async fn get_serial_console(
        &self,
        ctx: RequestContext,
        instance: Instance,
        console_type: String,
    ) -> Result<Value, RemoteError> {
        crate::consoles::get(self, ctx, instance, "serial", console_type).await
    }

    async fn get_mks_console(
        &self,
        ctx: RequestContext,
        instance: Instance,
        console_type: String,
    ) -> Result<Value, RemoteError> {
        crate::consoles::get(self, ctx, instance, "mks", console_type).await
    }

    async fn validate_console_port(
        &self,
        _ctx: RequestContext,
        instance: Instance,
        port: String,
        console_type: String,
    ) -> Result<bool, RemoteError> {
        self.do_validate_console_port(&instance, &port, &console_type)
            .await
    }

    async fn set_host_enabled(
        &self,
        _ctx: RequestContext,
        enabled: bool,
    ) -> Result<String, RemoteError> {
        self.inner
            .driver
            .set_host_enabled(enabled)
            .await
            .map_err(crate::host_ops::remote)
    }

    async fn host_maintenance_mode(
        &self,
        _ctx: RequestContext,
        host: String,
        mode: bool,
    ) -> Result<String, RemoteError> {
        self.inner
            .driver
            .host_maintenance_mode(&host, mode)
            .await
            .map_err(crate::host_ops::remote)
    }

    async fn host_power_action(
        &self,
        _ctx: RequestContext,
        action: String,
    ) -> Result<String, RemoteError> {
        self.inner
            .driver
            .host_power_action(&action)
            .await
            .map_err(crate::host_ops::remote)
    }

    async fn get_host_uptime(&self, _ctx: RequestContext) -> Result<String, RemoteError> {
        self.inner
            .driver
            .get_host_uptime()
            .await
            .map_err(crate::host_ops::remote)
    }
}

/// Nova's `conductor_api.wait_until_ready`: pings the conductors until
/// one answers (a compute that starts first would otherwise lose its
/// first requests to a topic nobody consumes yet).
pub async fn wait_for_conductor(
    transport: &Arc<dyn Transport>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let ctx = admin();
    let mut attempt = 0u32;
    loop {
        let ping = nova_rpcapi::base::ping(
            transport.clone(),
            &ctx,
            nova_rpcapi::conductor::TOPIC,
            None,
            json!("compute"),
            Duration::from_secs(if attempt == 0 { 2 } else { 5 }),
        );
        tokio::select! {
            _ = stop.cancelled() => anyhow::bail!("stopped while waiting for the conductor"),
            r = ping => match r {
                Ok(_) => return Ok(()),
                Err(e) if e.is_timeout() || matches!(e, nova_rpc::Error::Delivery(_)) => {
                    attempt += 1;
                    tracing::warn!(attempt, "waiting for nova-conductor (no answer yet)");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e.into()),
            },
        }
    }
}
