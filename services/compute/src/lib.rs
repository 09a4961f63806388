//! nova-compute: the compute manager over a [`ComputeDriver`].
//!
//! * RPC (topic `compute`, server = host, 6.5): `build_and_run_instance`,
//!   `terminate_instance`, `reboot_instance`, `stop_instance`,
//!   `start_instance`, plus the base API.
//! * Resource tracker: the ComputeNode record and the Placement provider
//!   (inventories, traits) at start, on change and every
//!   `update_resources_interval` (60 s); claims on build, released on
//!   failure and delete.
//! * Power-state sync (`sync_power_state_interval`, 600 s) and recovery at
//!   start-up: instances left in transitional states end in a stable one.
//! * No database: objects go through the conductor ([`nova_objects::ConductorStore`]);
//!   Placement is reached through its own store (`[placement_database]`).
//!
//! Every build ends in `active`, or `error` with a fault, or is handed to
//! the conductor for a reschedule on the next alternate — with its
//! Placement allocation released first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nova_objects::{
    ComputeNode, Instance, ListQuery, Objects, SaveOptions, Service, VersionedObject,
};
use nova_placement::PlacementHandle;
use nova_rpc::{Dispatcher, Endpoint, RemoteError, RequestContext, RpcServer, Target, Transport};
use nova_rpcapi::compute::{
    BuildAndRunInstance, InstanceArg, RebootInstance, SERVER_VERSION, StopInstance, TOPIC,
    TerminateInstance,
};
use nova_rpcapi::conductor::{BuildInstances, ComputeTaskApi};
use nova_scheduler::placement::InventoryRecord;
use nova_service::cells::{record_fault, set_error};
use nova_virt::{ComputeDriver, InstanceSpec, PowerState};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How soon a claim's usage reaches the ComputeNode record.
pub const USAGE_FLUSH: Duration = Duration::from_millis(250);

/// Compute settings (nova.conf names).
#[derive(Debug, Clone)]
pub struct ComputeConfig {
    /// `[DEFAULT] host`.
    pub host: String,
    /// `[DEFAULT] report_interval`.
    pub report_interval: Duration,
    /// `[DEFAULT] update_resources_interval` (0 = 60 s).
    pub update_resources_interval: Duration,
    /// `[DEFAULT] sync_power_state_interval`.
    pub sync_power_state_interval: Duration,
    /// `[DEFAULT] max_concurrent_builds`.
    pub max_concurrent_builds: usize,
    /// How long `stop_instance` lets the guest shut down cleanly.
    pub shutdown_timeout: Duration,
}

impl ComputeConfig {
    /// Defaults for `host`.
    pub fn new(host: &str) -> Self {
        ComputeConfig {
            host: host.to_owned(),
            report_interval: Duration::from_secs(10),
            update_resources_interval: Duration::from_secs(60),
            sync_power_state_interval: Duration::from_secs(600),
            max_concurrent_builds: 10,
            shutdown_timeout: Duration::from_secs(60),
        }
    }

    /// From nova.conf.
    pub fn from_conf(conf: &nova_service::Conf) -> anyhow::Result<Self> {
        let mut c = Self::new(&conf.host());
        let (report, _) = conf.service_group()?;
        c.report_interval = Duration::from_secs(report);
        let upd = conf.parse_or("DEFAULT", "update_resources_interval", 0u64)?;
        c.update_resources_interval = Duration::from_secs(if upd == 0 { 60 } else { upd });
        c.sync_power_state_interval =
            Duration::from_secs(conf.parse_or("DEFAULT", "sync_power_state_interval", 600u64)?);
        c.max_concurrent_builds = conf
            .parse_or("DEFAULT", "max_concurrent_builds", 10usize)?
            .max(1);
        Ok(c)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    vcpus: i64,
    memory_mb: i64,
    disk_gb: i64,
}

#[derive(Debug, Default)]
struct Tracker {
    node: Option<ComputeNode>,
    /// Usage changed since the ComputeNode record was last written.
    dirty: bool,
    claims: HashMap<String, Usage>,
    inventory: BTreeMap<String, InventoryRecord>,
    traits: BTreeSet<String>,
    reserved_memory_mb: i64,
}

#[derive(Debug)]
struct Inner {
    cfg: ComputeConfig,
    driver: Arc<dyn ComputeDriver>,
    objects: Objects,
    placement: PlacementHandle,
    conductor: ComputeTaskApi,
    builds: Semaphore,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    tracker: tokio::sync::Mutex<Tracker>,
    service: Mutex<Option<Service>>,
}

/// The compute manager. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ComputeManager {
    inner: Arc<Inner>,
}

fn admin() -> RequestContext {
    RequestContext::new().with_admin(true).with_roles(["admin"])
}

fn elevated(ctx: &RequestContext) -> RequestContext {
    let mut c = ctx.clone();
    c.set("is_admin", true);
    c
}

fn remote(e: impl std::fmt::Display) -> RemoteError {
    RemoteError::internal("ComputeError", e.to_string())
}

fn usage_of(i: &Instance) -> Usage {
    let f = i.flavor();
    let has_flavor = i.obj_attr_is_set("flavor");
    Usage {
        vcpus: i.vcpus().unwrap_or(if has_flavor { *f.vcpus() } else { 0 }),
        memory_mb: i
            .memory_mb()
            .unwrap_or(if has_flavor { *f.memory_mb() } else { 0 }),
        disk_gb: i
            .root_gb()
            .unwrap_or(if has_flavor { *f.root_gb() } else { 0 })
            + i.ephemeral_gb().unwrap_or(0),
    }
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
            }),
        }
    }

    /// The host.
    pub fn host(&self) -> &str {
        &self.inner.cfg.host
    }

    /// The driver.
    pub fn driver(&self) -> &Arc<dyn ComputeDriver> {
        &self.inner.driver
    }

    fn lock_for(&self, uuid: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut l = self.inner.locks.lock().unwrap_or_else(|e| e.into_inner());
        l.entry(uuid.to_owned()).or_default().clone()
    }

    fn unlock_for(&self, uuid: &str) {
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
    ) -> anyhow::Result<RpcServer> {
        let me = &self.inner;
        wait_for_conductor(&transport, &stop).await?;
        me.driver.init_host(&me.cfg.host).await?;
        let service =
            nova_service::register_service(&me.objects, &me.cfg.host, "nova-compute", "compute")
                .await?;
        *me.service.lock().unwrap_or_else(|e| e.into_inner()) = Some(service.clone());
        self.update_available_resource().await?;
        self.recover_instances().await;
        let dispatcher = Dispatcher::new(vec![
            self.endpoint(),
            nova_rpcapi::base::endpoint("nova-compute"),
        ]);
        let server = RpcServer::start(
            transport,
            Target::topic(TOPIC).with_server(&me.cfg.host),
            dispatcher,
        )
        .await?;
        nova_service::heartbeat(
            me.objects.clone(),
            service,
            me.cfg.report_interval,
            stop.clone(),
        );
        let m = self.clone();
        nova_service::periodic(
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
        let m = self.clone();
        nova_service::periodic(
            stop,
            me.cfg.sync_power_state_interval,
            me.cfg.sync_power_state_interval,
            move || {
                let m = m.clone();
                async move { m.sync_power_states().await }
            },
        );
        Ok(server)
    }

    async fn instances_here(&self) -> nova_objects::Result<Vec<Instance>> {
        self.inner
            .objects
            .list(&admin(), &ListQuery::new().filter("host", self.host()))
            .await
    }

    /// The resource tracker's full pass: usage from the instances on this
    /// host, the ComputeNode record, and the Placement provider.
    pub async fn update_available_resource(&self) -> anyhow::Result<()> {
        let me = &self.inner;
        let res = me.driver.host_resources().await?;
        let instances = self.instances_here().await?;
        let mut t = me.tracker.lock().await;
        t.claims = instances
            .iter()
            .filter(|i| i.vm_state().as_deref() != Some("error") || i.launched_at().is_some())
            .map(|i| (i.uuid().clone(), usage_of(i)))
            .collect();
        t.reserved_memory_mb = res.inventories.get("MEMORY_MB").map_or(0, |i| i.reserved);
        let ctx = admin();
        let node = match t.node.take() {
            Some(n) => n,
            None => {
                let found: Vec<ComputeNode> = me
                    .objects
                    .list(
                        &ctx,
                        &ListQuery::new()
                            .filter("host", self.host())
                            .filter("hypervisor_hostname", res.hypervisor_hostname.clone()),
                    )
                    .await?;
                match found.into_iter().next() {
                    Some(n) => n,
                    None => {
                        let service_id = me
                            .service
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .as_ref()
                            .map(|s| *s.id());
                        let mut n = ComputeNode::new()
                            .with_uuid(uuid::Uuid::new_v4().to_string())
                            .with_host(Some(self.host().to_owned()))
                            .with_service_id(service_id)
                            .with_hypervisor_hostname(Some(res.hypervisor_hostname.clone()))
                            .with_vcpus(res.vcpus)
                            .with_memory_mb(res.memory_mb)
                            .with_local_gb(res.local_gb)
                            .with_vcpus_used(0)
                            .with_memory_mb_used(0)
                            .with_local_gb_used(0)
                            .with_hypervisor_type(res.hypervisor_type.clone())
                            .with_hypervisor_version(res.hypervisor_version)
                            .with_cpu_info(res.cpu_info.to_string())
                            .with_running_vms(Some(0))
                            .with_current_workload(Some(0))
                            .with_host_ip(Some("127.0.0.1".to_owned()))
                            .with_mapped(0);
                        for (rc, set) in [
                            (
                                "VCPU",
                                ComputeNode::set_cpu_allocation_ratio as fn(&mut ComputeNode, f64),
                            ),
                            ("MEMORY_MB", ComputeNode::set_ram_allocation_ratio),
                            ("DISK_GB", ComputeNode::set_disk_allocation_ratio),
                        ] {
                            set(
                                &mut n,
                                res.inventories.get(rc).map_or(1.0, |i| i.allocation_ratio),
                            );
                        }
                        me.objects.create(&ctx, &mut n).await?;
                        n
                    }
                }
            }
        };
        t.node = Some(node);
        // Placement: the provider, its inventories and traits.
        let uuid = t
            .node
            .as_ref()
            .map(|n| n.uuid().clone())
            .unwrap_or_default();
        let rp = match me.placement.get_provider_async(&uuid).await {
            Ok(rp) => rp,
            Err(_) => me
                .placement
                .create_provider_async(&uuid, &res.hypervisor_hostname, None)
                .await
                .map_err(|e| anyhow::anyhow!("placement: {e}"))?,
        };
        let inventory: BTreeMap<String, InventoryRecord> = res
            .inventories
            .iter()
            .map(|(rc, i)| {
                (
                    rc.clone(),
                    InventoryRecord {
                        total: i.total,
                        reserved: i.reserved,
                        min_unit: 1,
                        max_unit: i.max_unit.max(1),
                        step_size: 1,
                        allocation_ratio: i.allocation_ratio,
                    },
                )
            })
            .collect();
        let mut generation = rp.generation;
        if t.inventory != inventory {
            let (g, current) = me
                .placement
                .inventories_async(&uuid)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            generation = g;
            if current != inventory {
                generation = me
                    .placement
                    .set_inventories_async(&uuid, generation, &inventory)
                    .await
                    .map_err(|e| anyhow::anyhow!("placement inventory: {e}"))?;
            }
            t.inventory = inventory;
        }
        // The service record as operators last left it (os-services
        // enable/disable): a disabled compute is hidden from Placement.
        let sid = me
            .service
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|s| s.uuid().clone());
        let disabled = match sid {
            Some(u) => match me.objects.get_by_uuid::<Service>(&ctx, &u).await {
                Ok(s) => *s.disabled(),
                Err(_) => false,
            },
            None => false,
        };
        let mut traits: BTreeSet<String> = res.traits.iter().cloned().collect();
        if disabled {
            traits.insert("COMPUTE_STATUS_DISABLED".into());
        }
        if t.traits != traits {
            let (g, current) = me
                .placement
                .traits_async(&uuid)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if current != traits {
                me.placement
                    .set_traits_async(&uuid, g.max(generation), &traits)
                    .await
                    .or_else(|_| {
                        // Someone moved the generation: retried next period.
                        Ok::<u64, anyhow::Error>(0)
                    })?;
            }
            t.traits = traits;
        }
        self.write_usage(&mut t).await;
        Ok(())
    }

    async fn write_usage(&self, t: &mut Tracker) {
        t.dirty = false;
        let total = t.claims.values().fold(Usage::default(), |a, u| Usage {
            vcpus: a.vcpus + u.vcpus,
            memory_mb: a.memory_mb + u.memory_mb,
            disk_gb: a.disk_gb + u.disk_gb,
        });
        let running = t.claims.len() as i64;
        let reserved = t.reserved_memory_mb;
        let Some(n) = t.node.as_mut() else { return };
        let mem_used = total.memory_mb + reserved;
        n.set_vcpus_used(total.vcpus);
        n.set_memory_mb_used(mem_used);
        n.set_local_gb_used(total.disk_gb);
        n.set_free_ram_mb(Some(*n.memory_mb() - mem_used));
        n.set_free_disk_gb(Some(*n.local_gb() - total.disk_gb));
        n.set_running_vms(Some(running));
        n.set_stats(Some(BTreeMap::from([(
            "num_instances".to_owned(),
            Some(running.to_string()),
        )])));
        if !n.obj_what_changed().is_empty()
            && let Err(e) = self.inner.objects.save(&admin(), n).await
        {
            tracing::warn!(error = %e, "cannot save the compute node usage");
        }
    }

    async fn claim(&self, inst: &Instance) {
        let mut t = self.inner.tracker.lock().await;
        t.claims.insert(inst.uuid().clone(), usage_of(inst));
        self.mark_dirty(&mut t);
    }

    async fn drop_claim(&self, uuid: &str) {
        let mut t = self.inner.tracker.lock().await;
        if t.claims.remove(uuid).is_some() {
            self.mark_dirty(&mut t);
        }
    }

    /// Claims are counted at once; the ComputeNode record follows within
    /// [`USAGE_FLUSH`] (one write for a burst of builds and deletes —
    /// Placement, not this record, is what admits claims; the scheduler
    /// reads the record at most once a second).
    fn mark_dirty(&self, t: &mut Tracker) {
        if t.dirty {
            return;
        }
        t.dirty = true;
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(USAGE_FLUSH).await;
            let mut t = me.inner.tracker.lock().await;
            if t.dirty {
                me.write_usage(&mut t).await;
            }
        });
    }

    /// The compute node's uuid (the Placement provider), once started.
    pub async fn node_uuid(&self) -> Option<String> {
        self.inner
            .tracker
            .lock()
            .await
            .node
            .as_ref()
            .map(|n| n.uuid().clone())
    }

    fn spec_of(inst: &Instance, admin_password: Option<String>) -> InstanceSpec {
        let u = usage_of(inst);
        InstanceSpec {
            uuid: inst.uuid().clone(),
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

    /// `build_and_run_instance` (the cast returns at once; the build runs
    /// under `max_concurrent_builds`).
    pub async fn build_and_run_instance(&self, ctx: RequestContext, a: BuildAndRunInstance) {
        let _permit = self.inner.builds.acquire().await;
        let uuid = a
            .instance
            .pointer("/nova_object.data/uuid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let lock = self.lock_for(&uuid);
        {
            let _g = lock.lock().await;
            if let Err(e) = self.do_build(&ctx, a).await {
                tracing::error!(instance = %uuid, error = %e, "build failed and could not be recorded");
            }
        }
        drop(lock);
        self.unlock_for(&uuid);
    }

    async fn do_build(&self, ctx: &RequestContext, a: BuildAndRunInstance) -> anyhow::Result<()> {
        let me = &self.inner;
        let ctx = elevated(ctx);
        let mut inst = Instance::obj_from_primitive(&a.instance)?;
        inst.obj_reset_changes_recursive();
        inst.set_host(Some(self.host().to_owned()));
        inst.set_node(a.node.clone());
        inst.set_launched_on(Some(self.host().to_owned()));
        inst.set_vm_state(Some("building".into()));
        inst.set_task_state(Some("spawning".into()));
        let expect = SaveOptions::expected_task_state([Some("scheduling"), None]);
        if let Err(e) = me.objects.save_with(&ctx, &mut inst, &expect).await {
            // Deleted (or being deleted) while it was scheduled.
            tracing::info!(instance = %inst.uuid(), error = %e, "not building: the instance moved on");
            let _ = me.placement.delete_allocations_async(inst.uuid()).await;
            return Ok(());
        }
        self.claim(&inst).await;
        let spec = Self::spec_of(&inst, a.admin_password.clone());
        match me.driver.spawn(&spec).await {
            Ok(()) => {
                inst.set_power_state(Some(PowerState::Running.code() as i64));
                inst.set_vm_state(Some("active".into()));
                inst.set_task_state(None);
                inst.set_launched_at(Some(chrono::Utc::now()));
                let expect = SaveOptions::expected_task_state([Some("spawning")]);
                if let Err(e) = me.objects.save_with(&ctx, &mut inst, &expect).await {
                    tracing::info!(instance = %inst.uuid(), error = %e, "built, but the instance moved on (being deleted)");
                }
                Ok(())
            }
            Err(err) => {
                tracing::warn!(instance = %inst.uuid(), host = %self.host(), error = %err, "spawn failed");
                let _ = me.driver.destroy(inst.uuid()).await;
                self.drop_claim(inst.uuid()).await;
                let _ = me.placement.delete_allocations_async(inst.uuid()).await;
                let reason = err.to_string();
                let retry = a
                    .filter_properties
                    .get("retry")
                    .filter(|r| !r.is_null())
                    .cloned();
                match retry {
                    Some(mut retry) => {
                        // Reschedule: the conductor takes the next alternate.
                        retry["exc_reason"] = json!(reason);
                        inst.set_host(None);
                        inst.set_node(None);
                        inst.set_task_state(Some("scheduling".into()));
                        me.objects.save(&ctx, &mut inst).await?;
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
                        let mut fp = a.filter_properties.clone();
                        fp["retry"] = retry;
                        let args = BuildInstances {
                            instances: vec![inst.obj_to_primitive()],
                            image: a.image.clone(),
                            filter_properties: fp,
                            admin_password: a.admin_password.clone(),
                            request_spec: a.request_spec.clone(),
                            host_lists: vec![a.host_list.clone()],
                            ..Default::default()
                        };
                        me.conductor.build_instances(&ctx, &args).await?;
                    }
                    None => {
                        let msg = format!("Build of instance {} aborted: {reason}", inst.uuid());
                        set_error(&me.objects, &ctx, &mut inst, 500, &msg, Some(self.host()))
                            .await?;
                    }
                }
                Ok(())
            }
        }
    }

    async fn with_instance<F, Fut>(&self, prim: &Value, f: F) -> Result<(), RemoteError>
    where
        F: FnOnce(Instance) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        let mut inst = Instance::obj_from_primitive(prim)
            .map_err(|e| RemoteError::type_error(format!("instance is not an Instance: {e}")))?;
        // As Nova: work on the caller's copy (the API saved it just before
        // casting) and save only what this host changes; no read-back
        // through the conductor first.
        inst.obj_reset_changes_recursive();
        let uuid = inst.uuid().clone();
        let lock = self.lock_for(&uuid);
        let r = {
            let _g = lock.lock().await;
            match f(inst).await {
                // Deleted while the request was queued: nothing left to act on.
                Err(e)
                    if e.downcast_ref::<nova_objects::Error>()
                        .is_some_and(nova_objects::Error::is_not_found) =>
                {
                    tracing::info!(instance = %uuid, error = %e, "instance gone before the action ran");
                    Ok(())
                }
                r => r.map_err(remote),
            }
        };
        drop(lock);
        self.unlock_for(&uuid);
        r
    }

    /// `terminate_instance`.
    pub async fn terminate_instance(
        &self,
        ctx: &RequestContext,
        a: TerminateInstance,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(ctx);
        self.with_instance(&a.instance, |inst| self.do_terminate(ctx, inst))
            .await
    }

    async fn do_terminate(&self, ctx: RequestContext, mut inst: Instance) -> anyhow::Result<()> {
        let me = &self.inner;
        match me.driver.destroy(inst.uuid()).await {
            Ok(()) | Err(nova_virt::Error::InstanceNotFound(_)) => {}
            Err(e) => {
                set_error(
                    &me.objects,
                    &ctx,
                    &mut inst,
                    500,
                    &format!("delete failed: {e}"),
                    Some(self.host()),
                )
                .await?;
                return Ok(());
            }
        }
        self.drop_claim(inst.uuid()).await;
        me.placement
            .delete_allocations_async(inst.uuid())
            .await
            .map_err(|e| anyhow::anyhow!("placement: {e}"))?;
        inst.set_vm_state(Some("deleted".into()));
        inst.set_task_state(None);
        inst.set_power_state(Some(0));
        inst.set_terminated_at(Some(chrono::Utc::now()));
        me.objects.save(&ctx, &mut inst).await?;
        me.objects.destroy(&ctx, &mut inst).await?;
        Ok(())
    }

    async fn finish_action(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        result: nova_virt::Result<()>,
        vm_state: &str,
        power: PowerState,
        action: &str,
    ) -> anyhow::Result<()> {
        let me = &self.inner;
        match result {
            Ok(()) => {
                inst.set_vm_state(Some(vm_state.into()));
                inst.set_power_state(Some(power.code() as i64));
                inst.set_task_state(None);
                me.objects.save(ctx, &mut inst).await?;
            }
            Err(e) => {
                let msg = format!("{action} of instance {} failed: {e}", inst.uuid());
                set_error(&me.objects, ctx, &mut inst, 500, &msg, Some(self.host())).await?;
            }
        }
        Ok(())
    }

    /// `reboot_instance`.
    pub async fn reboot_instance(
        &self,
        ctx: &RequestContext,
        a: RebootInstance,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(ctx);
        let hard = a.reboot_type.eq_ignore_ascii_case("HARD");
        self.with_instance(&a.instance, |inst| async move {
            let r = self.inner.driver.reboot(inst.uuid(), hard).await;
            self.finish_action(&ctx, inst, r, "active", PowerState::Running, "Reboot")
                .await
        })
        .await
    }

    /// `stop_instance`.
    pub async fn stop_instance(
        &self,
        ctx: &RequestContext,
        a: StopInstance,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(ctx);
        let timeout = if a.clean_shutdown {
            self.inner.cfg.shutdown_timeout
        } else {
            Duration::ZERO
        };
        self.with_instance(&a.instance, |inst| async move {
            let r = self.inner.driver.power_off(inst.uuid(), timeout).await;
            self.finish_action(&ctx, inst, r, "stopped", PowerState::Shutdown, "Stop")
                .await
        })
        .await
    }

    /// `start_instance`.
    pub async fn start_instance(
        &self,
        ctx: &RequestContext,
        a: InstanceArg,
    ) -> Result<(), RemoteError> {
        let ctx = elevated(ctx);
        self.with_instance(&a.instance, |inst| async move {
            let r = self.inner.driver.power_on(inst.uuid()).await;
            self.finish_action(&ctx, inst, r, "active", PowerState::Running, "Start")
                .await
        })
        .await
    }

    /// Start-up recovery: every instance of this host left in a
    /// transitional state ends in a stable one.
    pub async fn recover_instances(&self) {
        let ctx = admin();
        let Ok(instances) = self.instances_here().await else {
            tracing::warn!("cannot list this host's instances for recovery");
            return;
        };
        for inst in instances {
            let task = inst.task_state().clone().unwrap_or_default();
            let vm = inst.vm_state().clone().unwrap_or_default();
            let prim = inst.obj_to_primitive();
            let r = if task == "deleting" {
                self.terminate_instance(
                    &ctx,
                    TerminateInstance {
                        instance: prim,
                        bdms: Value::Null,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!(e.message))
            } else if vm == "building"
                || [
                    "scheduling",
                    "spawning",
                    "networking",
                    "block_device_mapping",
                ]
                .contains(&task.as_str())
            {
                let mut inst = inst;
                let _ = self.inner.driver.destroy(inst.uuid()).await;
                self.drop_claim(inst.uuid()).await;
                let _ = self
                    .inner
                    .placement
                    .delete_allocations_async(inst.uuid())
                    .await;
                set_error(
                    &self.inner.objects,
                    &ctx,
                    &mut inst,
                    500,
                    "Instance was being built when nova-compute restarted.",
                    Some(self.host()),
                )
                .await
                .map_err(Into::into)
            } else if task.starts_with("reboot") {
                let hard = task.ends_with("_hard");
                self.reboot_instance(
                    &ctx,
                    RebootInstance {
                        instance: prim,
                        block_device_info: Value::Null,
                        reboot_type: if hard { "HARD" } else { "SOFT" }.into(),
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!(e.message))
            } else if task == "powering-off" {
                self.stop_instance(
                    &ctx,
                    StopInstance {
                        instance: prim,
                        clean_shutdown: true,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!(e.message))
            } else if task == "powering-on" {
                self.start_instance(&ctx, InstanceArg { instance: prim })
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message))
            } else if !task.is_empty() {
                let mut inst = inst;
                inst.set_task_state(None);
                self.inner
                    .objects
                    .save(&ctx, &mut inst)
                    .await
                    .map_err(Into::into)
            } else {
                Ok(())
            };
            if let Err(e) = r {
                tracing::warn!(error = %e, "recovery of an instance failed");
            }
        }
        self.sync_power_states().await;
    }

    /// `_sync_power_states`: the database follows the hypervisor; an
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
                if cur.power_state().unwrap_or(-1) != code {
                    cur.set_power_state(Some(code));
                }
                if cur.vm_state().as_deref() == Some("active")
                    && matches!(
                        power,
                        PowerState::Shutdown | PowerState::NoState | PowerState::Crashed
                    )
                {
                    cur.set_vm_state(Some("stopped".into()));
                }
                if !cur.obj_what_changed().is_empty() {
                    let _ = self.inner.objects.save(&ctx, &mut cur).await;
                }
            }
            drop(lock);
            self.unlock_for(&uuid);
        }
    }

    /// The RPC endpoint.
    pub fn endpoint(&self) -> Endpoint {
        let (m1, m2, m3, m4, m5) = (
            self.clone(),
            self.clone(),
            self.clone(),
            self.clone(),
            self.clone(),
        );
        Endpoint::new(None, SERVER_VERSION)
            .method(
                "build_and_run_instance",
                move |call, a: BuildAndRunInstance| {
                    let m = m1.clone();
                    // The build outlives the cast: it keeps the request id.
                    let span = tracing::info_span!(
                        "build_and_run_instance",
                        request_id = call.context.request_id().unwrap_or("-"),
                        instance = a
                            .instance
                            .pointer("/nova_object.data/uuid")
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or("-"),
                    );
                    tokio::spawn(tracing::Instrument::instrument(
                        async move { m.build_and_run_instance(call.context, a).await },
                        span,
                    ));
                    async { Ok(()) }
                },
            )
            .method("terminate_instance", move |call, a: TerminateInstance| {
                let m = m2.clone();
                async move { m.terminate_instance(&call.context, a).await }
            })
            .method("reboot_instance", move |call, a: RebootInstance| {
                let m = m3.clone();
                async move { m.reboot_instance(&call.context, a).await }
            })
            .method("stop_instance", move |call, a: StopInstance| {
                let m = m4.clone();
                async move { m.stop_instance(&call.context, a).await }
            })
            .method("start_instance", move |call, a: InstanceArg| {
                let m = m5.clone();
                async move { m.start_instance(&call.context, a).await }
            })
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

/// A fake hypervisor as `[DEFAULT] compute_driver` (`fake.FakeDriver`,
/// `fake.SmallFakeDriver`, `fake.MediumFakeDriver`) and `[fake]`
/// (`vcpus`, `memory_mb`, `local_gb`) describe it.
pub fn fake_driver(
    conf: &nova_service::Conf,
    hostname: &str,
) -> anyhow::Result<Arc<nova_virt::FakeDriver>> {
    let name = conf.str_or("DEFAULT", "compute_driver", "fake.FakeDriver");
    let mut c = nova_virt::FakeConfig {
        hypervisor_hostname: hostname.to_owned(),
        ..Default::default()
    };
    if name == "fake.SmallFakeDriver" {
        (c.vcpus, c.memory_mb, c.local_gb) = (2, 8192, 1028);
    } else if name == "fake.MediumFakeDriver" {
        (c.vcpus, c.memory_mb, c.local_gb) = (10, 8192, 1028);
    }
    c.vcpus = conf.parse_or("fake", "vcpus", c.vcpus)?;
    c.memory_mb = conf.parse_or("fake", "memory_mb", c.memory_mb)?;
    c.local_gb = conf.parse_or("fake", "local_gb", c.local_gb)?;
    c.reserved_host_memory_mb = conf.parse_or(
        "DEFAULT",
        "reserved_host_memory_mb",
        c.reserved_host_memory_mb,
    )?;
    c.cpu_allocation_ratio =
        conf.parse_or("DEFAULT", "cpu_allocation_ratio", c.cpu_allocation_ratio)?;
    c.ram_allocation_ratio =
        conf.parse_or("DEFAULT", "ram_allocation_ratio", c.ram_allocation_ratio)?;
    c.disk_allocation_ratio =
        conf.parse_or("DEFAULT", "disk_allocation_ratio", c.disk_allocation_ratio)?;
    Ok(Arc::new(nova_virt::FakeDriver::new(c)))
}

/// The driver `[DEFAULT] compute_driver` names: `fake.FakeDriver`, or
/// `libvirt.LibvirtDriver` (feature `libvirt`; `[libvirt]` options).
pub fn driver_from_conf(
    conf: &nova_service::Conf,
    hostname: &str,
) -> anyhow::Result<Arc<dyn ComputeDriver>> {
    let name = conf.str_or("DEFAULT", "compute_driver", "fake.FakeDriver");
    match name.as_str() {
        "fake.FakeDriver" | "fake.SmallFakeDriver" | "fake.MediumFakeDriver" => {
            Ok(fake_driver(conf, hostname)?)
        }
        #[cfg(feature = "libvirt")]
        "libvirt.LibvirtDriver" => {
            let d = nova_virt::libvirt::LibvirtConfig::default();
            let c = nova_virt::libvirt::LibvirtConfig {
                connection_uri: conf.str_or("libvirt", "connection_uri", &d.connection_uri),
                virt_type: conf.str_or("libvirt", "virt_type", &d.virt_type),
                instances_path: conf
                    .get("DEFAULT", "instances_path")
                    .map(Into::into)
                    .unwrap_or(d.instances_path.clone()),
                reserved_host_memory_mb: conf.parse_or(
                    "DEFAULT",
                    "reserved_host_memory_mb",
                    d.reserved_host_memory_mb,
                )?,
                cpu_allocation_ratio: conf.parse_or(
                    "DEFAULT",
                    "cpu_allocation_ratio",
                    d.cpu_allocation_ratio,
                )?,
                ram_allocation_ratio: conf.parse_or(
                    "DEFAULT",
                    "ram_allocation_ratio",
                    d.ram_allocation_ratio,
                )?,
                disk_allocation_ratio: conf.parse_or(
                    "DEFAULT",
                    "disk_allocation_ratio",
                    d.disk_allocation_ratio,
                )?,
                ..d
            };
            Ok(Arc::new(nova_virt::libvirt::LibvirtDriver::connect(c)?))
        }
        other => anyhow::bail!(
            "[DEFAULT] compute_driver = {other}: unknown driver (fake.FakeDriver, fake.SmallFakeDriver, fake.MediumFakeDriver{})",
            if cfg!(feature = "libvirt") {
                ", libvirt.LibvirtDriver"
            } else {
                "; libvirt.LibvirtDriver needs the libvirt feature"
            }
        ),
    }
}
