//! The conductor's rebuild task (nova's
//! `ComputeTaskManager.rebuild_instance`), for rebuilds and evacuations.

use std::collections::BTreeSet;

use nova_objects::{Instance, RequestSpec, Selection, VersionedObject};
use nova_rpc::RequestContext;
use nova_rpcapi::scheduler::Destinations;
use nova_service::instance_actions;
use nova_service::notifications::{OldStates, Source};
use nova_service::states::{TaskState, VmState};
use serde_json::{Value, json};

use super::Conductor;

/// What the conductor's rebuild task was given.
#[derive(Debug)]
pub(crate) struct Rebuild {
    pub(crate) instance: Instance,
    pub(crate) new_pass: Option<String>,
    pub(crate) injected_files: Option<Vec<Value>>,
    pub(crate) image_ref: Option<String>,
    pub(crate) orig_image_ref: Option<String>,
    pub(crate) orig_sys_metadata: Value,
    pub(crate) recreate: bool,
    pub(crate) on_shared_storage: Option<bool>,
    pub(crate) preserve_ephemeral: bool,
    pub(crate) host: Option<String>,
    pub(crate) request_spec: Option<RequestSpec>,
    pub(crate) target_state: Option<String>,
}

impl Conductor {
    /// Asks the scheduler for one host for `spec` (no alternates); the
    /// error's message when none fits.
    pub(crate) async fn schedule_one(
        &self,
        ctx: &RequestContext,
        spec: &RequestSpec,
        uuid: &str,
    ) -> Result<Selection, String> {
        match self
            .scheduler
            .select_destinations(ctx, spec, &vec![uuid.to_owned()], &true, &false)
            .await
        {
            Ok(Destinations::Selections(s)) => s
                .into_iter()
                .next()
                .and_then(|l| l.into_iter().next())
                .ok_or_else(|| "No valid host was found. ".to_owned()),
            Ok(Destinations::Legacy(_)) => {
                Err("the scheduler answered without Selection objects".to_owned())
            }
            Err(e) => Err(e
                .remote()
                .map(|r| r.message.clone())
                .unwrap_or_else(|| e.to_string())),
        }
    }

    /// `rebuild_instance`: the host is the instance's (same image), the
    /// scheduler's rebuild check on it (new image), or for an evacuation
    /// a host the scheduler picks (claimed) or the one asked for; then
    /// `instance.rebuild_scheduled` and the cast to that compute.
    pub(crate) async fn rebuild(&self, ctx: &RequestContext, r: Rebuild) -> anyhow::Result<()> {
        let mut inst = r.instance;
        let uuid = inst.uuid().clone();
        let mut migration = self.accepted_migration(ctx, &uuid).await;
        let mut spec = r.request_spec;
        let mut host = r.host.clone();
        let node: Option<String>;
        if let Some(h) = &host {
            if Some(h) != inst.host().as_ref() {
                // An evacuation to a host the admin named: claim there.
                if let Err(msg) = self
                    .allocate_for_evacuate_dest(ctx, &inst, h, spec.as_ref())
                    .await
                {
                    self.migration_error(ctx, &mut migration).await;
                    self.rebuild_failed(ctx, &mut inst, spec.as_ref(), &msg)
                        .await;
                    anyhow::bail!(msg);
                }
                node = self.node_of(ctx, h).await;
            } else {
                node = inst.node().clone();
            }
        } else {
            let Some(s) = spec.as_mut() else {
                anyhow::bail!("rebuild of instance {uuid} without a host or request spec");
            };
            if r.recreate {
                s.set_ignore_hosts(inst.host().clone().map(|h| vec![h]));
                s.set_force_hosts(None);
                s.set_force_nodes(None);
                s.set_requested_destination(None);
            }
            s.set_project_id(inst.project_id().clone());
            s.set_user_id(inst.user_id().clone());
            // A rebuild to a new image on the same host: the image's required
            // traits must be on the providers the instance already uses.
            let traits_ok = if !r.recreate && r.orig_image_ref != r.image_ref {
                self.validate_image_traits_for_rebuild(&inst, s).await
            } else {
                Ok(())
            };
            let scheduled = match traits_ok {
                Ok(()) => self.schedule_one(ctx, s, &uuid).await,
                Err(msg) => Err(msg),
            };
            match scheduled {
                Ok(sel) => {
                    host = Some(sel.service_host().clone());
                    node = Some(sel.nodename().clone());
                }
                Err(msg) => {
                    self.migration_error(ctx, &mut migration).await;
                    if let Some(orig) = &r.orig_image_ref
                        && r.image_ref.as_ref() != Some(orig)
                    {
                        inst.set_image_ref(Some(orig.clone()));
                        let _ = self.objects.save(ctx, &mut inst).await;
                    }
                    self.rebuild_failed(ctx, &mut inst, spec.as_ref(), &msg)
                        .await;
                    anyhow::bail!(msg);
                }
            }
        }
        let host = host.unwrap_or_default();
        let (notifier, me) = &self.notifier;
        notifier
            .instance_rebuild_scheduled(ctx, &inst, Source::Conductor, me)
            .await;
        // nova: the instance's zone is its (new) host's, before the cast
        // (an evacuation may land in another zone).
        match crate::groups::host_availability_zone(&self.objects, ctx, &host, &self.default_az)
            .await
        {
            Ok(az) if inst.availability_zone().as_deref() != Some(az.as_str()) => {
                inst.set_availability_zone(Some(az));
                if let Err(e) = self.objects.save(ctx, &mut inst).await {
                    tracing::warn!(instance = %uuid, error = %e, "cannot record the availability zone");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(instance = %uuid, error = %e, "cannot find the host's zone"),
        }
        if r.recreate
            && let Some(m) = migration.as_mut()
        {
            m.set_dest_compute(Some(host.clone()));
            m.set_dest_node(node.clone());
            m.set_dest_host(Some(host.clone()));
            let _ = self.objects.save(ctx, m).await;
        }
        self.compute
            .rebuild_instance(
                ctx,
                &host,
                &inst,
                &r.new_pass,
                &r.injected_files,
                &r.image_ref,
                &r.orig_image_ref,
                &r.orig_sys_metadata,
                &None,
                &r.recreate,
                &r.on_shared_storage,
                &r.preserve_ephemeral,
                &migration,
                &node,
                &json!({}),
                &spec,
                &Some(Vec::new()),
                &Some(false),
                &r.target_state,
            )
            .await?;
        Ok(())
    }

    /// The evacuation's Migration record, `accepted` (nova's
    /// `get_by_instance_and_status`).
    async fn accepted_migration(
        &self,
        ctx: &RequestContext,
        uuid: &str,
    ) -> Option<nova_objects::Migration> {
        let q = nova_objects::ListQuery::new()
            .filter("instance_uuid", uuid)
            .filter("status", "accepted");
        let found: Vec<nova_objects::Migration> =
            self.objects.list(ctx, &q).await.unwrap_or_default();
        found.into_iter().next()
    }

    async fn migration_error(
        &self,
        ctx: &RequestContext,
        migration: &mut Option<nova_objects::Migration>,
    ) {
        if let Some(m) = migration.as_mut() {
            m.set_status(Some("error".into()));
            let _ = self.objects.save(ctx, m).await;
        }
    }

    /// Nova's `_set_vm_state_and_notify(…, 'rebuild_server', ERROR)`.
    async fn rebuild_failed(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        spec: Option<&RequestSpec>,
        msg: &str,
    ) {
        tracing::warn!(instance = %inst.uuid(), reason = %msg, "rebuild failed");
        if let Err(e) = self.set_error(ctx, inst, 500, msg, None).await {
            tracing::error!(error = %e, "cannot record the rebuild failure");
        }
        let class = if msg.starts_with("No valid host") {
            "NoValidHost"
        } else {
            "NovaException"
        };
        self.notify_task_error(ctx, "rebuild_server", inst, spec, class, msg, None)
            .await;
    }

    /// nova's `_validate_image_traits_for_rebuild`: the traits the new image
    /// requires (`trait:<NAME>=required`) may not be forbidden by the
    /// flavor and must be on the providers of the instance's allocations;
    /// otherwise the NoValidHost message.
    async fn validate_image_traits_for_rebuild(
        &self,
        inst: &Instance,
        spec: &RequestSpec,
    ) -> Result<(), String> {
        let Some(image) = spec
            .image()
            .as_ref()
            .filter(|_| spec.obj_attr_is_set("image"))
        else {
            return Ok(());
        };
        if !image.obj_attr_is_set("properties")
            || !image.properties().obj_attr_is_set("traits_required")
        {
            return Ok(());
        }
        let wanted: BTreeSet<String> = image
            .properties()
            .traits_required()
            .iter()
            .cloned()
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let forbidden: BTreeSet<String> = inst
            .flavor()
            .extra_specs()
            .iter()
            .filter(|(k, v)| k.starts_with("trait") && v.as_str() == "forbidden")
            .filter_map(|(k, _)| k.split_once(':').map(|(_, t)| t.to_owned()))
            .collect();
        if !wanted.is_disjoint(&forbidden) {
            return Err("No valid host was found. Image traits are part of forbidden traits in flavor associated with the server. Either specify a different image during rebuild or create a new server with the specified image and a compatible flavor.".to_owned());
        }
        let allocations = self
            .placement
            .allocations_async(inst.uuid())
            .await
            .map_err(|e| e.to_string())?;
        let mut have = BTreeSet::new();
        for rp in allocations.allocations.keys() {
            let (_, traits) = self
                .placement
                .traits_async(rp.as_ref())
                .await
                .map_err(|e| e.to_string())?;
            have.extend(traits);
        }
        if !wanted.is_subset(&have) {
            return Err("No valid host was found. Image traits cannot be satisfied by the current resource providers. Either specify a different image during rebuild or create a new server with the specified image.".to_owned());
        }
        Ok(())
    }

    /// The node of `host`'s compute (its first ComputeNode).
    async fn node_of(&self, ctx: &RequestContext, host: &str) -> Option<String> {
        let found: Vec<nova_objects::ComputeNode> = self
            .objects
            .list(ctx, &nova_objects::ListQuery::new().filter("host", host))
            .await
            .unwrap_or_default();
        found
            .into_iter()
            .next()
            .and_then(|n| n.hypervisor_hostname().clone())
    }

    /// Nova's `_allocate_for_evacuate_dest_host`: the instance's resources
    /// claimed on `host`'s provider next to those it holds on the source.
    async fn allocate_for_evacuate_dest(
        &self,
        ctx: &RequestContext,
        inst: &Instance,
        host: &str,
        spec: Option<&RequestSpec>,
    ) -> Result<(), String> {
        let found: Vec<nova_objects::ComputeNode> = self
            .objects
            .list(ctx, &nova_objects::ListQuery::new().filter("host", host))
            .await
            .map_err(|e| e.to_string())?;
        let Some(cn) = found.into_iter().next() else {
            return Err(format!("Compute host {host} could not be found."));
        };
        let flavor = spec
            .map(|s| s.flavor().clone())
            .unwrap_or_else(|| inst.flavor().clone());
        let current = self
            .placement
            .allocations_async(inst.uuid())
            .await
            .map_err(|e| e.to_string())?;
        let mut allocs = current.allocations;
        let mut res = std::collections::BTreeMap::new();
        res.insert(
            nova_scheduler::placement::Name::from("VCPU"),
            *flavor.vcpus(),
        );
        res.insert(
            nova_scheduler::placement::Name::from("MEMORY_MB"),
            *flavor.memory_mb(),
        );
        let disk = *flavor.root_gb() + *flavor.ephemeral_gb();
        if disk > 0 {
            res.insert(nova_scheduler::placement::Name::from("DISK_GB"), disk);
        }
        allocs.insert(
            nova_scheduler::placement::Name::from(cn.uuid().as_str()),
            res,
        );
        self.placement
            .put_allocations_async(
                inst.uuid(),
                &allocs,
                inst.project_id().as_deref().unwrap_or(""),
                inst.user_id().as_deref().unwrap_or(""),
                current.consumer_generation,
            )
            .await
            .map_err(|e| {
                format!(
                    "Unable to replace resource claim on source host {} node {} for instance {}: {e}",
                    inst.host().clone().unwrap_or_default(),
                    inst.node().clone().unwrap_or_default(),
                    inst.uuid()
                )
            })?;
        Ok(())
    }
}

impl Conductor {
    /// `unshelve_instance`: a SHELVED instance is powered on where it is
    /// (POWERING_ON, `start_instance`); an offloaded one is scheduled
    /// again (the request spec's zone or requested destination), claimed,
    /// and cast to its new host with its shelved image. No host: back to
    /// SHELVED_OFFLOADED with no task, as nova.
    pub(crate) async fn unshelve(
        &self,
        ctx: &RequestContext,
        mut inst: Instance,
        spec: Option<RequestSpec>,
    ) -> anyhow::Result<()> {
        let uuid = inst.uuid().clone();
        let (notifier, me) = &self.notifier;
        if inst.vm_state().as_deref() == Some(VmState::Shelved.as_str()) {
            let old = OldStates::of(&inst);
            inst.set_task_state(Some(TaskState::PoweringOn.into()));
            self.objects
                .save_with(
                    ctx,
                    &mut inst,
                    &nova_objects::SaveOptions::expected_task_state([Some(
                        TaskState::Unshelving.as_str(),
                    )]),
                )
                .await?;
            notifier
                .instance_update(ctx, &inst, &old, Source::Conductor, me)
                .await;
            let host = inst.host().clone().unwrap_or_default();
            self.compute.start_instance(ctx, &host, &inst).await?;
            return Ok(());
        }
        let Some(mut spec) = spec else {
            anyhow::bail!("unshelve of instance {uuid} without a request spec");
        };
        spec.set_project_id(inst.project_id().clone());
        spec.set_user_id(inst.user_id().clone());
        spec.set_ignore_hosts(None);
        spec.set_force_hosts(None);
        spec.set_force_nodes(None);
        let image = match inst.system_metadata().get("shelved_image_id") {
            Some(Some(id)) => json!({"id": id}),
            _ => Value::Null,
        };
        let sel = match self.schedule_one(ctx, &spec, &uuid).await {
            Ok(s) => s,
            Err(msg) => {
                tracing::warn!(instance = %uuid, reason = %msg, "no valid host found for unshelve");
                let old = OldStates::of(&inst);
                inst.set_task_state(None);
                self.objects.save(ctx, &mut inst).await?;
                notifier
                    .instance_update(ctx, &inst, &old, Source::Conductor, me)
                    .await;
                anyhow::bail!(msg);
            }
        };
        let host = sel.service_host().clone();
        let node = sel.nodename().clone();
        let sent = self
            .compute
            .unshelve_instance(
                ctx,
                &host,
                &inst,
                &image,
                &json!({"scheduler_hints": {}}),
                &Some(node),
                &Some(spec),
                &None,
            )
            .await;
        if let Err(e) = sent {
            let _ = self.placement.delete_allocations_async(&uuid).await;
            let old = OldStates::of(&inst);
            inst.set_task_state(None);
            let _ = self.objects.save(ctx, &mut inst).await;
            notifier
                .instance_update(ctx, &inst, &old, Source::Conductor, me)
                .await;
            return Err(e.into());
        }
        Ok(())
    }
}

/// Runs `work` as event `name` of the request's instance action.
pub(crate) async fn event<F>(
    c: &Conductor,
    ctx: &RequestContext,
    uuid: &str,
    name: &str,
    work: F,
) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let host = c.notifier.1.clone();
    instance_actions::reported(&c.objects, ctx, uuid, name, &host, work).await
}
