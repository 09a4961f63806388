//! nova-conductor.
//!
//! * `schedule_and_build_instances` (compute_task 1.17): asks the
//!   scheduler for hosts with alternates; on NoValidHost buries every
//!   instance in cell0 in `error` with a fault; otherwise maps each
//!   instance to cell1, drops its BuildRequest and casts
//!   `build_and_run_instance` to the chosen compute with the alternates.
//! * `build_instances` (the reschedule path): counts the attempt; past
//!   `[scheduler] max_attempts` the instance goes to `error`
//!   ("Exceeded maximum number of retries"); otherwise claims the next
//!   alternate's allocation in Placement (skipping those that no longer
//!   fit) and casts the build there; with none left, `error`
//!   ("Exhausted all hosts available for retrying build failures").
//! * The object indirection API (3.0) for computes, which have no
//!   database credentials.

use std::sync::Arc;
use std::time::Duration;

use nova_objects::{
    BuildRequest, Instance, InstanceMapping, ListQuery, ObjectStore, Objects, VersionedObject,
};
use nova_placement::PlacementHandle;
use nova_rpc::{Dispatcher, Endpoint, RemoteError, RequestContext, RpcServer, Target, Transport};
use nova_rpcapi::compute::{BuildAndRunInstance, ComputeApi};
use nova_rpcapi::conductor::{
    BuildInstances, COMPUTE_TASK_NAMESPACE, COMPUTE_TASK_VERSION, ScheduleAndBuildInstances, TOPIC,
};
use nova_rpcapi::scheduler::SchedulerApi;
use nova_scheduler::placement::{Allocations, Name};
use nova_service::cells::{CELL0_UUID, set_error};
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
}

fn admin_of(ctx: &RequestContext) -> RequestContext {
    let mut c = ctx.clone();
    c.set("is_admin", true);
    c
}

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
            scheduler: SchedulerApi::new(transport.clone(), Duration::from_secs(60)),
            compute: ComputeApi::new(transport, compute_cap),
            max_attempts: max_attempts.max(1),
            cell1_uuid: cell1_uuid.to_owned(),
            cells: Arc::default(),
        }
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

    /// `schedule_and_build_instances`.
    pub async fn schedule_and_build_instances(
        &self,
        ctx: &RequestContext,
        a: ScheduleAndBuildInstances,
    ) -> Result<(), RemoteError> {
        let ctx = admin_of(ctx);
        let Some(spec) = a.request_specs.first().cloned() else {
            return Ok(());
        };
        let mut uuids = Vec::new();
        for s in &a.request_specs {
            if let Some(u) = s
                .pointer("/nova_object.data/instance_uuid")
                .and_then(Value::as_str)
            {
                uuids.push(u.to_owned());
            }
        }
        let mut instances = Vec::with_capacity(uuids.len());
        for u in &uuids {
            match self.objects.get_by_uuid::<Instance>(&ctx, u).await {
                Ok(i) => instances.push(i),
                // Deleted while queued: nothing to build.
                Err(e) => {
                    tracing::info!(instance = %u, error = %e, "instance gone before scheduling")
                }
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
            .select_destinations(&ctx, spec.clone(), uuids)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                let message = e
                    .remote()
                    .map(|r| r.message.clone())
                    .unwrap_or_else(|| e.to_string());
                // Nova records NoValidHost (and any scheduling failure) as a 500 fault.
                let code = 500;
                for mut inst in instances {
                    tracing::info!(instance = %inst.uuid(), reason = %message, "burying the instance in cell0");
                    if let Err(e) =
                        set_error(&self.objects, &ctx, &mut inst, code, &message, None).await
                    {
                        tracing::error!(error = %e, "cannot record the scheduling failure");
                    }
                    self.map_instance(&ctx, inst.uuid(), CELL0_UUID).await;
                    self.drop_build_request(&ctx, inst.uuid()).await;
                }
                return Ok(());
            }
        };
        for (inst, hosts) in instances.into_iter().zip(selections) {
            self.map_instance(&ctx, inst.uuid(), &self.cell1_uuid).await;
            self.drop_build_request(&ctx, inst.uuid()).await;
            let spec_i = a
                .request_specs
                .iter()
                .find(|s| {
                    s.pointer("/nova_object.data/instance_uuid")
                        .and_then(Value::as_str)
                        == Some(inst.uuid().as_str())
                })
                .cloned()
                .unwrap_or_else(|| spec.clone());
            self.cast_build(&ctx, inst, hosts, spec_i, &a.image, 1, &a.admin_password)
                .await;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn cast_build(
        &self,
        ctx: &RequestContext,
        inst: Instance,
        mut hosts: Vec<Value>,
        request_spec: Value,
        image: &Value,
        attempt: i64,
        admin_password: &Option<String>,
    ) {
        if hosts.is_empty() {
            return;
        }
        let chosen = hosts.remove(0);
        let host = sel(&chosen, "service_host");
        let node = sel(&chosen, "nodename");
        let retry = (self.max_attempts > 1)
            .then(|| json!({"num_attempts": attempt, "hosts": [[host.clone(), node.clone()]]}));
        let args = BuildAndRunInstance {
            instance: inst.obj_to_primitive(),
            image: image.clone(),
            request_spec,
            filter_properties: json!({ "retry": retry, "scheduler_hints": {} }),
            admin_password: admin_password.clone(),
            node: Some(node),
            limits: json!({}),
            host_list: hosts,
            ..Default::default()
        };
        if let Err(e) = self.compute.build_and_run_instance(ctx, &host, &args).await {
            let mut inst = inst;
            let msg = format!("cannot reach compute {host}: {e}");
            let _ = self.placement.delete_allocations_async(inst.uuid()).await;
            let _ = set_error(&self.objects, ctx, &mut inst, 500, &msg, None).await;
        }
    }

    /// `build_instances`: the reschedule path.
    pub async fn build_instances(
        &self,
        ctx: &RequestContext,
        a: BuildInstances,
    ) -> Result<(), RemoteError> {
        let ctx = admin_of(ctx);
        let attempts = a
            .filter_properties
            .pointer("/retry/num_attempts")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            + 1;
        let last_error = a
            .filter_properties
            .pointer("/retry/exc_reason")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        for (i, prim) in a.instances.iter().enumerate() {
            let uuid = prim
                .pointer("/nova_object.data/uuid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let Ok(mut inst) = self.objects.get_by_uuid::<Instance>(&ctx, &uuid).await else {
                continue;
            };
            if inst.task_state().as_deref() == Some("deleting") || *inst.deleted() {
                continue;
            }
            let _ = self.placement.delete_allocations_async(&uuid).await;
            if attempts > self.max_attempts {
                let msg = format!(
                    "Exceeded maximum number of retries. Exceeded max scheduling attempts {} for instance {uuid}. Last exception: {last_error}",
                    self.max_attempts
                );
                let _ = set_error(&self.objects, &ctx, &mut inst, 500, &msg, None).await;
                continue;
            }
            let mut alternates: Vec<Value> = a.host_lists.get(i).cloned().unwrap_or_default();
            // Claim the first alternate that still fits.
            let mut chosen = None;
            while !alternates.is_empty() {
                let alt = alternates.remove(0);
                let claim = sel(&alt, "allocation_request");
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
                let _ = set_error(&self.objects, &ctx, &mut inst, 500, &msg, None).await;
                continue;
            };
            inst.set_vm_state(Some("building".into()));
            inst.set_task_state(Some("scheduling".into()));
            let _ = self.objects.save(&ctx, &mut inst).await;
            let mut hosts = vec![chosen];
            hosts.extend(alternates);
            self.cast_build(
                &ctx,
                inst,
                hosts,
                a.request_spec.clone(),
                &a.image,
                attempts,
                &a.admin_password,
            )
            .await;
        }
        Ok(())
    }

    /// The compute_task endpoint.
    pub fn compute_task_endpoint(&self) -> Endpoint {
        let (m1, m2) = (self.clone(), self.clone());
        Endpoint::new(Some(COMPUTE_TASK_NAMESPACE), COMPUTE_TASK_VERSION)
            .method(
                "schedule_and_build_instances",
                move |call, a: ScheduleAndBuildInstances| {
                    let m = m1.clone();
                    async move { m.schedule_and_build_instances(&call.context, a).await }
                },
            )
            .method("build_instances", move |call, a: BuildInstances| {
                let m = m2.clone();
                async move { m.build_instances(&call.context, a).await }
            })
    }
}

fn sel(selection: &Value, field: &str) -> String {
    selection
        .pointer(&format!("/nova_object.data/{field}"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
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
        conductor.compute_task_endpoint(),
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
