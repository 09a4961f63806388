//! The conductor manager: the compute-task interface ([`ComputeTask`])
//! over the database, Placement and the scheduler and compute clients,
//! and the RPC server that serves it with the object indirection API.

use std::sync::Arc;
use std::time::Duration;

use nova_objects::{
    BlockDeviceMappingList, BuildRequest, Flavor, Instance, InstanceMapping, ListQuery,
    NetworkRequestList, ObjectStore, Objects, RawObject, RequestSpec, Selection, VersionedObject,
};
use nova_placement::PlacementHandle;
use nova_rpc::{Dispatcher, RemoteError, RequestContext, RpcServer, Target, Transport};
use nova_rpcapi::compute::ComputeApi;
use nova_rpcapi::conductor::{ComputeTask, TOPIC};
use nova_rpcapi::scheduler::{Destinations, SchedulerApi};
use nova_scheduler::placement::{Allocations, Name};
use nova_service::cells::{CELL0_UUID, set_error};
use nova_service::notifications::{ExceptionPayload, Notifier, OldStates, Source, TaskSpec};
use nova_service::states::{TaskState, VmState};
use serde_json::{Value, json};

/// The conductor manager.
#[derive(Debug, Clone)]
pub struct Conductor {
    objects: Objects,
    placement: PlacementHandle,
    scheduler: SchedulerApi,
    compute: ComputeApi,
    max_attempts: i64,
    cell1_uuid: String,
    /// Cell mappings by uuid (they do not change while running).
    cells: Arc<tokio::sync::Mutex<std::collections::HashMap<String, nova_objects::CellMapping>>>,
    /// Notifications (`instance.update` as an instance goes to its cell)
    /// and this conductor's host.
    notifier: (Notifier, String),
    /// `[DEFAULT] default_availability_zone`.
    default_az: String,
    /// Reads of an instance that failed for another reason than its
    /// absence: how many tries in all, and the pause before the second
    /// (doubling after each).
    db_retries: (u32, Duration),
}

use nova_service::context::elevated as admin_of;

/// Instance reads tried 5 times, 0.5 s apart at first, doubling (7.5 s in all).
const DB_RETRIES: (u32, Duration) = (5, Duration::from_millis(500));

mod failure;
mod migrate;
mod moves;
mod recovery;

impl Conductor {
    /// A conductor over `objects` (the database), Placement and the RPC
    /// clients on `transport`.
    pub fn new(
        objects: Objects,
        placement: PlacementHandle,
        transport: Arc<dyn Transport>,
        compute_cap: Option<nova_rpc::Version>,
        max_attempts: i64,
        cell1_uuid: &str,
    ) -> Self {
        Conductor {
            objects,
            placement,
            // `long_rpc_timeout` (the interface says so), as nova.
            scheduler: SchedulerApi::new(transport.clone()),
            compute: ComputeApi::new(transport).version_cap(compute_cap),
            max_attempts: max_attempts.max(1),
            cell1_uuid: cell1_uuid.to_owned(),
            cells: Arc::default(),
            notifier: (Notifier::disabled(), String::new()),
            default_az: "nova".to_owned(),
            db_retries: DB_RETRIES,
        }
    }

    /// Sets how often a failed instance read is tried (`attempts` in all,
    /// at least one) and the first pause between tries (doubling).
    pub fn with_db_retries(mut self, attempts: u32, first_pause: Duration) -> Self {
        self.db_retries = (attempts.max(1), first_pause);
        self
    }

    /// The instance `uuid`, read again after a pause while the database
    /// fails (a lost connection, a timeout) as oslo.db's `wrap_db_retry`
    /// does; an absent instance (`InstanceNotFound`) is answered at once.
    async fn read_instance(
        &self,
        ctx: &RequestContext,
        uuid: &str,
    ) -> nova_objects::Result<Instance> {
        let (attempts, mut pause) = self.db_retries;
        let mut tried = 1;
        loop {
            match self.objects.get_by_uuid::<Instance>(ctx, uuid).await {
                Err(e) if !e.is_not_found() && tried < attempts => {
                    tracing::warn!(instance = uuid, error = %e, attempt = tried, "cannot read the instance: trying again");
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2);
                    tried += 1;
                }
                r => return r,
            }
        }
    }

    /// An instance that could not be read (the database failing after the
    /// retries) ends in ERROR as nova ends a build that cannot go on: a
    /// fault and `compute_task.build_instances.error`; before its first
    /// scheduling (`first`) also mapped to cell0 with its build request
    /// deleted, as `_bury_in_cell0` does. Each write is tried even if one
    /// fails (logged).
    async fn bury_unreadable(
        &self,
        ctx: &RequestContext,
        uuid: &str,
        spec: Option<&RequestSpec>,
        error: &nova_objects::Error,
        first: bool,
    ) {
        let message = format!("Cannot read the instance to schedule it: {error}");
        let mut inst = Instance::new().with_uuid(uuid.to_owned());
        inst.obj_reset_changes();
        tracing::error!(instance = uuid, error = %error, "instance unreadable: the build ends in ERROR");
        if let Err(e) = self.set_error(ctx, &mut inst, 500, &message, None).await {
            tracing::error!(instance = uuid, error = %e, "cannot record the build failure");
        }
        self.notify_task_error(
            ctx,
            "build_instances",
            &inst,
            spec,
            error.class_name(),
            &message,
            None,
        )
        .await;
        if first {
            self.map_instance(ctx, uuid, CELL0_UUID).await;
            self.drop_build_request(ctx, uuid).await;
        }
    }

    /// Sets `[DEFAULT] default_availability_zone` (`nova`).
    pub fn with_default_az(mut self, zone: &str) -> Self {
        self.default_az = zone.to_owned();
        self
    }

    /// Puts an instance in ERROR with a fault ([`set_error`]) and sends
    /// `instance.update` (nova's `_set_vm_state_and_notify`).
    async fn set_error(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        code: i64,
        message: &str,
        host: Option<&str>,
    ) -> nova_objects::Result<()> {
        let old = OldStates::of(inst);
        set_error(&self.objects, ctx, inst, code, message, host).await?;
        let (notifier, me) = &self.notifier;
        notifier
            .instance_update(ctx, inst, &old, Source::Conductor, me)
            .await;
        Ok(())
    }

    /// `compute_task.<method>.error` (and the legacy `compute_task.<method>`)
    /// for a task that left `inst` in its current vm state after failing
    /// with `class`: `message` (nova's `set_vm_state_and_notify`); the
    /// legacy payload's `reason` is `legacy_repr` (`repr(exc)`) when given.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn notify_task_error(
        &self,
        ctx: &RequestContext,
        method: &str,
        inst: &Instance,
        spec: impl Into<TaskSpec<'_>>,
        class: &str,
        message: &str,
        legacy_repr: Option<String>,
    ) {
        let (notifier, me) = &self.notifier;
        let state = inst.vm_state().clone().unwrap_or_else(|| "error".into());
        let mut reason = ExceptionPayload::new("nova.conductor.manager", method, class, message);
        reason.legacy_repr = legacy_repr;
        notifier
            .compute_task_error(ctx, me, method, inst.uuid(), spec.into(), &state, reason)
            .await;
    }

    /// Notifies through `notifier` as the conductor of `host`.
    pub fn with_notifier(mut self, notifier: Notifier, host: &str) -> Self {
        self.notifier = (notifier, host.to_owned());
        self
    }

    /// Points the instance's mapping at its cell: one UPDATE keyed by
    /// `instance_uuid` (no read first).
    async fn map_instance(&self, ctx: &RequestContext, uuid: &str, cell_uuid: &str) {
        let cell = self.cell(ctx, cell_uuid).await;
        let mut m = InstanceMapping::new().with_instance_uuid(uuid.to_owned());
        m.obj_reset_changes();
        m.set_cell_mapping(Some(cell));
        if let Err(e) = self.objects.save(ctx, &mut m).await {
            tracing::warn!(instance = uuid, error = %e, "cannot update the instance mapping");
        }
    }

    async fn cell(&self, ctx: &RequestContext, uuid: &str) -> nova_objects::CellMapping {
        let mut cache = self.cells.lock().await;
        if let Some(c) = cache.get(uuid) {
            return c.clone();
        }
        let found: Vec<nova_objects::CellMapping> = self
            .objects
            .list(ctx, &ListQuery::new().filter("uuid", uuid))
            .await
            .unwrap_or_default();
        match found.into_iter().next() {
            Some(c) => {
                cache.insert(uuid.to_owned(), c.clone());
                c
            }
            None => nova_objects::CellMapping::new().with_uuid(uuid.to_owned()),
        }
    }

    /// Deletes the build request (one DELETE keyed by `instance_uuid`); one
    /// already gone is not an error.
    async fn drop_build_request(&self, ctx: &RequestContext, uuid: &str) {
        let br = BuildRequest::new().with_instance_uuid(uuid.to_owned());
        match self
            .objects
            .store()
            .destroy(ctx, br.obj_to_primitive())
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                tracing::warn!(instance = uuid, error = %e, "cannot delete the build request")
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn cast_build(
        &self,
        ctx: &RequestContext,
        inst: Instance,
        mut hosts: Vec<Selection>,
        request_spec: Option<RequestSpec>,
        image: &Value,
        attempt: i64,
        admin_password: &Option<String>,
        injected_files: &Option<Vec<Value>>,
        requested_networks: &Option<NetworkRequestList>,
    ) {
        if hosts.is_empty() {
            return;
        }
        let chosen = hosts.remove(0);
        let host = chosen.service_host().clone();
        let node = chosen.nodename().clone();
        let retry = (self.max_attempts > 1)
            .then(|| json!({"num_attempts": attempt, "hosts": [[host.clone(), node.clone()]]}));
        let sent = self
            .compute
            .build_and_run_instance(
                ctx,
                &host,
                &inst,
                image,
                &request_spec,
                &json!({ "retry": retry, "scheduler_hints": {} }),
                admin_password,
                injected_files,
                requested_networks,
                &legacy_secgroups(request_spec.as_ref()),
                &None,
                &Some(node),
                &json!({}),
                &Some(hosts),
                &None,
            )
            .await;
        if let Err(e) = sent {
            let mut inst = inst;
            let msg = format!("cannot reach compute {host}: {e}");
            let _ = self.placement.delete_allocations_async(inst.uuid()).await;
            let _ = self.set_error(ctx, &mut inst, 500, &msg, None).await;
        }
    }
}

/// nova's `legacy_secgroups`: each requested group's `identifier` (its
/// uuid, else its name) for the compute's ports.
fn legacy_secgroups(spec: Option<&RequestSpec>) -> Option<Vec<String>> {
    let spec = spec.filter(|s| s.obj_attr_is_set("security_groups"))?;
    let list: Vec<String> = spec
        .security_groups()
        .objects()
        .iter()
        .map(|g| {
            if g.obj_attr_is_set("uuid") {
                g.uuid().clone()
            } else {
                g.name().clone()
            }
        })
        .collect();
    (!list.is_empty()).then_some(list)
}

impl ComputeTask for Conductor {
    async fn schedule_and_build_instances(
        &self,
        ctx: RequestContext,
        _build_requests: Vec<BuildRequest>,
        request_specs: Vec<RequestSpec>,
        image: Value,
        admin_password: Option<String>,
        injected_files: Option<Vec<Value>>,
        requested_networks: Option<NetworkRequestList>,
        _block_device_mapping: Option<BlockDeviceMappingList>,
        _tags: Option<RawObject>,
    ) -> Result<(), RemoteError> {
        let ctx = admin_of(&ctx);
        let Some(mut spec) = request_specs.first().cloned() else {
            return Ok(());
        };
        if let Err(e) = crate::groups::setup_instance_group(&self.objects, &ctx, &mut spec).await {
            tracing::warn!(error = %e, "cannot load the request's server group");
        }
        let mut instances = Vec::with_capacity(request_specs.len());
        for s in &request_specs {
            let u = s.instance_uuid();
            match self.read_instance(&ctx, u).await {
                Ok(i) => instances.push(i),
                // Deleted while queued: nothing to build.
                Err(e) if e.is_not_found() => {
                    tracing::info!(instance = %u, "instance gone before scheduling")
                }
                // Not a delete: the build must not be left in BUILD.
                Err(e) => self.bury_unreadable(&ctx, u, Some(s), &e, true).await,
            }
        }
        if instances.is_empty() {
            return Ok(());
        }
        // Only what still exists is scheduled: nothing is claimed for an
        // instance deleted while queued.
        let uuids: Vec<String> = instances.iter().map(|i| i.uuid().clone()).collect();
        let selections = match self
            .scheduler
            .select_destinations(&ctx, &spec, &uuids, &true, &true)
            .await
        {
            Ok(Destinations::Selections(s)) => Ok(s),
            Ok(Destinations::Legacy(_)) => Err((
                "SchedulerError".to_owned(),
                "the scheduler answered without Selection objects".to_owned(),
            )),
            Err(e) => Err(e
                .remote()
                .map(|r| (r.class.clone(), r.message.clone()))
                .unwrap_or_else(|| ("NovaException".to_owned(), e.to_string()))),
        };
        let selections = match selections {
            Ok(s) => s,
            Err((class, message)) => {
                // Nova records NoValidHost (and any scheduling failure) as a 500 fault.
                let code = 500;
                for mut inst in instances {
                    tracing::info!(instance = %inst.uuid(), reason = %message, "burying the instance in cell0");
                    if let Err(e) = self.set_error(&ctx, &mut inst, code, &message, None).await {
                        tracing::error!(error = %e, "cannot record the scheduling failure");
                    }
                    let spec_i = request_specs
                        .iter()
                        .find(|s| s.instance_uuid() == inst.uuid());
                    self.notify_task_error(
                        &ctx,
                        "build_instances",
                        &inst,
                        spec_i.or(Some(&spec)),
                        &class,
                        &message,
                        None,
                    )
                    .await;
                    self.map_instance(&ctx, inst.uuid(), CELL0_UUID).await;
                    self.drop_build_request(&ctx, inst.uuid()).await;
                }
                return Ok(());
            }
        };
        for (mut inst, hosts) in instances.into_iter().zip(selections) {
            if let Some(chosen) = hosts.first()
                && let Err(e) = crate::groups::set_availability_zone(
                    &self.objects,
                    &ctx,
                    &mut inst,
                    chosen,
                    &self.default_az,
                )
                .await
            {
                tracing::warn!(instance = %inst.uuid(), error = %e, "cannot record the availability zone");
            }
            self.map_instance(&ctx, inst.uuid(), &self.cell1_uuid).await;
            // nova's send_update_with_states(…, BUILDING, service="conductor").
            let (notifier, host) = &self.notifier;
            notifier
                .instance_update(&ctx, &inst, &OldStates::of(&inst), Source::Conductor, host)
                .await;
            self.drop_build_request(&ctx, inst.uuid()).await;
            let spec_i = request_specs
                .iter()
                .find(|s| s.instance_uuid() == inst.uuid())
                .cloned()
                .unwrap_or_else(|| spec.clone());
            self.cast_build(
                &ctx,
                inst,
                hosts,
                Some(spec_i),
                &image,
                1,
                &admin_password,
                &injected_files,
                &requested_networks,
            )
            .await;
        }
        Ok(())
    }

    async fn migrate_server(
        &self,
        ctx: RequestContext,
        instance: Instance,
        scheduler_hint: Value,
        live: bool,
        _rebuild: bool,
        flavor: Option<Flavor>,
        block_migration: Value,
        disk_over_commit: Value,
        _reservations: Value,
        clean_shutdown: Option<bool>,
        request_spec: Option<RequestSpec>,
        host_list: Option<Vec<Selection>>,
    ) -> Result<(), RemoteError> {
        let user = (
            ctx.user_id().map(str::to_owned),
            ctx.project_id().map(str::to_owned),
        );
        let ctx = admin_of(&ctx);
        if live {
            return self
                .live_migrate(
                    &ctx,
                    user,
                    instance,
                    &scheduler_hint,
                    block_migration.as_bool(),
                    disk_over_commit.as_bool(),
                    request_spec,
                )
                .await;
        }
        let m = migrate::ColdMove {
            flavor,
            scheduler_hint,
            clean_shutdown,
            request_spec,
            host_list,
        };
        self.cold_migrate(&ctx, user, instance, m).await
    }

    async fn rebuild_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        new_pass: Option<String>,
        injected_files: Option<Vec<Value>>,
        image_ref: Option<String>,
        orig_image_ref: Option<String>,
        orig_sys_metadata: Value,
        _bdms: Option<BlockDeviceMappingList>,
        recreate: bool,
        on_shared_storage: Option<bool>,
        preserve_ephemeral: bool,
        host: Option<String>,
        request_spec: Option<RequestSpec>,
        _reimage_boot_volume: Option<bool>,
        target_state: Option<String>,
    ) -> Result<(), RemoteError> {
        let ctx = admin_of(&ctx);
        let uuid = instance.uuid().clone();
        let r = moves::Rebuild {
            instance,
            new_pass,
            injected_files,
            image_ref,
            orig_image_ref,
            orig_sys_metadata,
            recreate,
            on_shared_storage,
            preserve_ephemeral,
            host,
            request_spec,
            target_state,
        };
        let work = self.rebuild(&ctx, r);
        if let Err(e) = moves::event(self, &ctx, &uuid, "rebuild_server", work).await {
            tracing::warn!(instance = %uuid, error = %format!("{e:#}"), "rebuild not sent");
        }
        Ok(())
    }

    async fn unshelve_instance(
        &self,
        ctx: RequestContext,
        instance: Instance,
        request_spec: Option<RequestSpec>,
    ) -> Result<(), RemoteError> {
        let ctx = admin_of(&ctx);
        let uuid = instance.uuid().clone();
        // nova's event is the scheduling of an offloaded instance.
        let offloaded = instance.vm_state().as_deref() != Some("shelved");
        let work = self.unshelve(&ctx, instance, request_spec);
        let r = if offloaded {
            moves::event(self, &ctx, &uuid, "schedule_instances", work).await
        } else {
            work.await
        };
        if let Err(e) = r {
            tracing::warn!(instance = %uuid, error = %format!("{e:#}"), "unshelve not sent");
        }
        Ok(())
    }

    async fn build_instances(
        &self,
        ctx: RequestContext,
        instances: Vec<Instance>,
        image: Value,
        filter_properties: Value,
        admin_password: Option<String>,
        injected_files: Option<Vec<Value>>,
        requested_networks: Option<NetworkRequestList>,
        _security_groups: Option<Vec<String>>,
        request_spec: Option<RequestSpec>,
        host_lists: Option<Vec<Vec<Selection>>>,
    ) -> Result<(), RemoteError> {
        let ctx = admin_of(&ctx);
        let attempts = filter_properties
            .pointer("/retry/num_attempts")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            + 1;
        let last_error = filter_properties
            .pointer("/retry/exc_reason")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let host_lists = host_lists.unwrap_or_default();
        for (i, sent) in instances.iter().enumerate() {
            let uuid = sent.uuid().clone();
            let mut inst = match self.read_instance(&ctx, &uuid).await {
                Ok(i) => i,
                // Deleted meanwhile: its allocation went with it.
                Err(e) if e.is_not_found() => continue,
                Err(e) => {
                    // Not a delete: the reschedule ends in ERROR, its
                    // claim released.
                    let _ = self.placement.delete_allocations_async(&uuid).await;
                    self.bury_unreadable(&ctx, &uuid, request_spec.as_ref(), &e, false)
                        .await;
                    continue;
                }
            };
            if inst.task_state() == &TaskState::Deleting || *inst.deleted() {
                continue;
            }
            let _ = self.placement.delete_allocations_async(&uuid).await;
            if attempts > self.max_attempts {
                let msg = format!(
                    "Exceeded maximum number of retries. Exceeded max scheduling attempts {} for instance {uuid}. Last exception: {last_error}",
                    self.max_attempts
                );
                let _ = self.set_error(&ctx, &mut inst, 500, &msg, None).await;
                self.notify_task_error(
                    &ctx,
                    "build_instances",
                    &inst,
                    request_spec.as_ref(),
                    "MaxRetriesExceeded",
                    &msg,
                    None,
                )
                .await;
                continue;
            }
            let mut alternates: Vec<Selection> = host_lists.get(i).cloned().unwrap_or_default();
            // Claim the first alternate that still fits.
            let mut chosen = None;
            while !alternates.is_empty() {
                let alt = alternates.remove(0);
                let claim = alt.allocation_request().clone().unwrap_or_default();
                let ok = match parse_allocation_request(&claim) {
                    Some(allocs) => self
                        .placement
                        .put_allocations_async(
                            &uuid,
                            &allocs,
                            inst.project_id().as_deref().unwrap_or(""),
                            inst.user_id().as_deref().unwrap_or(""),
                            None,
                        )
                        .await
                        .is_ok(),
                    None => true,
                };
                if ok {
                    chosen = Some(alt);
                    break;
                }
            }
            let Some(chosen) = chosen else {
                let msg = format!(
                    "Exhausted all hosts available for retrying build failures for instance {uuid}. Last exception: {last_error}"
                );
                let _ = self.set_error(&ctx, &mut inst, 500, &msg, None).await;
                self.notify_task_error(
                    &ctx,
                    "build_instances",
                    &inst,
                    request_spec.as_ref(),
                    "MaxRetriesExceeded",
                    &msg,
                    None,
                )
                .await;
                continue;
            };
            inst.set_vm_state(Some(VmState::Building.into()));
            inst.set_task_state(Some(TaskState::Scheduling.into()));
            let _ = self.objects.save(&ctx, &mut inst).await;
            if let Err(e) = crate::groups::set_availability_zone(
                &self.objects,
                &ctx,
                &mut inst,
                &chosen,
                &self.default_az,
            )
            .await
            {
                tracing::warn!(instance = %uuid, error = %e, "cannot record the availability zone");
            }
            let mut hosts = vec![chosen];
            hosts.extend(alternates);
            self.cast_build(
                &ctx,
                inst,
                hosts,
                request_spec.clone(),
                &image,
                attempts,
                &admin_password,
                &injected_files,
                &requested_networks,
            )
            .await;
        }
        Ok(())
    }
}

/// A Selection's `allocation_request` JSON as Placement allocations.
pub fn parse_allocation_request(text: &str) -> Option<Allocations> {
    let v: Value = serde_json::from_str(text).ok()?;
    let mut out = Allocations::new();
    for (rp, r) in v.get("allocations")?.as_object()? {
        let res = r.get("resources")?.as_object()?;
        let e = out.entry(Name::from(rp.as_str())).or_default();
        for (rc, n) in res {
            e.insert(Name::from(rc.as_str()), n.as_i64()?);
        }
    }
    Some(out)
}

/// Starts the conductor's RPC server: compute_task, the object
/// indirection API over `store`, and the base API.
pub async fn serve(
    transport: Arc<dyn Transport>,
    conductor: &Conductor,
    store: Arc<dyn ObjectStore>,
    host: &str,
) -> anyhow::Result<RpcServer> {
    let dispatcher = Dispatcher::new(vec![
        Arc::new(conductor.clone()).endpoint(),
        nova_objects::conductor_object_endpoint(store),
        nova_rpcapi::base::endpoint("nova-conductor"),
    ]);
    Ok(RpcServer::start(
        transport,
        Target::topic(TOPIC).with_server(host),
        dispatcher,
    )
    .await?)
}
