//! `migrate_server`: nova's `MigrationTask` (resize and cold migration)
//! and `LiveMigrationTask`, with nova's Placement bookkeeping: the
//! instance's source allocation moves to the Migration record as its
//! consumer before scheduling, the instance claims on the destination,
//! and every failure here moves it back (`rollback`).

use nova_objects::{
    Destination, Flavor, Instance, ListQuery, Migration, RequestSpec, Selection, VersionedObject,
};
use nova_rpc::{RemoteError, RequestContext};
use nova_rpcapi::scheduler::Destinations;
use nova_service::cells::record_fault;
use nova_service::moves::{move_allocations, new_migration, revert_allocation};
use nova_service::notifications::{OldStates, Source, TaskSpec};
use nova_service::states::VmState;
use serde_json::{Value, json};

use super::failure::Failure;
use super::{Conductor, parse_allocation_request};

/// What a cold migration needs of `migrate_server`'s arguments.
pub(crate) struct ColdMove {
    pub(crate) flavor: Option<Flavor>,
    pub(crate) scheduler_hint: Value,
    pub(crate) clean_shutdown: Option<bool>,
    pub(crate) request_spec: Option<RequestSpec>,
    pub(crate) host_list: Option<Vec<Selection>>,
}

impl Conductor {
    /// The instance's stored RequestSpec (a fresh one from the instance
    /// when it has none).
    async fn spec_of(&self, ctx: &RequestContext, inst: &Instance) -> RequestSpec {
        let found: Vec<RequestSpec> = self
            .objects
            .list(
                ctx,
                &ListQuery::new().filter("instance_uuid", inst.uuid().as_str()),
            )
            .await
            .unwrap_or_default();
        found.into_iter().next().unwrap_or_else(|| {
            RequestSpec::new()
                .with_instance_uuid(inst.uuid().clone())
                .with_project_id(inst.project_id().clone())
                .with_user_id(inst.user_id().clone())
                .with_flavor(inst.flavor().clone())
                .with_num_instances(1)
                .with_is_bfv(false)
        })
    }

    /// The compute-node uuid of `host` (`node`, if named), nova's
    /// `ComputeNode.get_by_host_and_nodename`.
    async fn node_uuid(
        &self,
        ctx: &RequestContext,
        host: &str,
        node: Option<&str>,
    ) -> Option<(String, String)> {
        let mut q = ListQuery::new().filter("host", host);
        if let Some(n) = node {
            q = q.filter("hypervisor_hostname", n);
        }
        let nodes: Vec<nova_objects::ComputeNode> = self.objects.list(ctx, &q).await.ok()?;
        nodes.into_iter().next().map(|n| {
            (
                n.uuid().clone(),
                n.hypervisor_hostname().clone().unwrap_or_default(),
            )
        })
    }

    /// Claims an alternate's allocation request for the instance (nova's
    /// `claim_resources` when it moves on to the next host); one without an
    /// allocation request is taken as it is.
    async fn claim_alternate(&self, inst: &Instance, alt: &Selection) -> bool {
        let Some(allocs) = alt
            .allocation_request()
            .as_deref()
            .and_then(parse_allocation_request)
        else {
            return true;
        };
        self.placement
            .put_allocations_async(
                inst.uuid(),
                &allocs,
                inst.project_id().as_deref().unwrap_or(""),
                inst.user_id().as_deref().unwrap_or(""),
                None,
            )
            .await
            .is_ok()
    }

    /// Ends a failed move task as nova's conductor does: the migration in
    /// `error`, the allocations back to the instance, the instance's task
    /// state cleared with a fault; its vm_state as it was, or ERROR after
    /// an unexpected live-migration failure (`Failure::in_live_migration`).
    async fn move_failed(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        migration: Option<&mut Migration>,
        held: bool,
        why: &Failure,
        spec: Option<&RequestSpec>,
    ) {
        tracing::info!(instance = %inst.uuid(), class = %why.class, reason = %why.message, "move failed");
        if let Some(m) = migration {
            m.set_status(Some("error".into()));
            if let Err(e) = self.objects.save(ctx, m).await {
                tracing::warn!(error = %e, "cannot save the migration");
            }
            if held && let Err(e) = revert_allocation(&self.placement, inst.uuid(), m.uuid()).await
            {
                tracing::error!(instance = %inst.uuid(), error = %e, "cannot revert the migration's allocations");
            }
        }
        let old = OldStates::of(inst);
        let _ = record_fault(
            &self.objects,
            ctx,
            inst.uuid(),
            // `exc.kwargs['code']`: NoValidHost's is NovaException's 500.
            why.code(),
            &why.message,
            None,
            None,
        )
        .await;
        if why.error_state {
            tracing::error!(instance = %inst.uuid(), "live migration unexpectedly failed: setting the instance to ERROR");
            inst.set_vm_state(Some(VmState::Error.into()));
        }
        inst.set_task_state(None);
        if let Err(e) = self.objects.save(ctx, inst).await {
            tracing::warn!(error = %e, "cannot reset the instance's task state");
        }
        let (notifier, me) = &self.notifier;
        notifier
            .instance_update(ctx, inst, &old, Source::Conductor, me)
            .await;
        // nova's `set_vm_state_and_notify`: a cold move passes its request
        // spec, a live migration (`_live_migrate`'s `_set_vm_state`) a
        // legacy dict of the instance's uuid alone.
        let spec = match spec {
            Some(s) => TaskSpec::Object(s),
            None => TaskSpec::InstanceUuid(inst.uuid()),
        };
        self.notify_task_error(
            ctx,
            "migrate_server",
            inst,
            spec,
            &why.class,
            &why.message,
            Some(why.repr()),
        )
        .await;
    }

    /// Nova's `MigrationTask._execute` (and `_reschedule`), then
    /// `prep_resize` on the destination.
    pub(crate) async fn cold_migrate(
        &self,
        ctx: &RequestContext,
        user: (Option<String>, Option<String>),
        instance: Instance,
        m: ColdMove,
    ) -> Result<(), RemoteError> {
        let mut inst = match self
            .objects
            .get_by_uuid::<Instance>(ctx, instance.uuid())
            .await
        {
            Ok(i) => i,
            Err(e) => {
                tracing::info!(instance = %instance.uuid(), error = %e, "instance gone before its move");
                return Ok(());
            }
        };
        let flavor = m.flavor.unwrap_or_else(|| inst.flavor().clone());
        let mut spec = match m.request_spec {
            Some(s) => s,
            None => self.spec_of(ctx, &inst).await,
        };
        spec.set_flavor(flavor.clone());
        spec.set_force_hosts(None);
        spec.set_force_nodes(None);
        let fp = m
            .scheduler_hint
            .get("filter_properties")
            .cloned()
            .unwrap_or_else(|| json!({}));
        if let Some(ignore) = fp.get("ignore_hosts").and_then(Value::as_array) {
            spec.set_ignore_hosts(Some(
                ignore
                    .iter()
                    .filter_map(|h| h.as_str().map(str::to_owned))
                    .collect(),
            ));
        }
        let targeted = spec
            .requested_destination()
            .as_ref()
            .is_some_and(|d| d.obj_attr_is_set("host") && !d.host().is_empty());
        let attempt = fp
            .pointer("/retry/num_attempts")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        let mut hosts_tried: Vec<Value> = fp
            .pointer("/retry/hosts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let migration_type = if flavor.id() != inst.flavor().id() {
            "resize"
        } else {
            "migration"
        };
        // A reschedule finds the migration it started with.
        let existing: Vec<Migration> = self
            .objects
            .list(
                ctx,
                &ListQuery::new()
                    .filter("instance_uuid", inst.uuid().as_str())
                    .filter("migration_type", migration_type)
                    .filter("status", "pre-migrating"),
            )
            .await
            .unwrap_or_default();
        let mut migration = match existing.into_iter().next() {
            Some(mg) => mg,
            None => {
                let mut mg = new_migration(
                    &inst,
                    migration_type,
                    *inst.flavor().id(),
                    *flavor.id(),
                    user.0.clone(),
                    user.1.clone(),
                )
                .with_status(Some("pre-migrating".into()));
                if let Err(e) = self.objects.create(ctx, &mut mg).await {
                    let why = Failure::new(
                        "MigrationError",
                        format!("cannot record the migration: {e}"),
                    );
                    self.move_failed(ctx, &mut inst, None, false, &why, Some(&spec))
                        .await;
                    return Ok(());
                }
                mg
            }
        };
        let held = match move_allocations(&self.placement, inst.uuid(), migration.uuid()).await {
            Ok(h) => h,
            Err(e) => {
                let why = Failure::new(
                    "NoValidHost",
                    format!(
                        "No valid host was found. Unable to replace instance claim on source: {e}"
                    ),
                );
                self.move_failed(
                    ctx,
                    &mut inst,
                    Some(&mut migration),
                    false,
                    &why,
                    Some(&spec),
                )
                .await;
                return Ok(());
            }
        };
        if attempt > self.max_attempts && !targeted {
            let last = fp
                .pointer("/retry/exc")
                .map(|e| e.to_string())
                .unwrap_or_default();
            let why = Failure::new(
                "MaxRetriesExceeded",
                format!(
                    "Exceeded maximum number of retries. Exceeded max scheduling attempts {} for instance {}. Last exception: {last}",
                    self.max_attempts,
                    inst.uuid()
                ),
            );
            self.move_failed(
                ctx,
                &mut inst,
                Some(&mut migration),
                held,
                &why,
                Some(&spec),
            )
            .await;
            return Ok(());
        }
        let (chosen, alternates) = match m.host_list {
            None => {
                let uuids = vec![inst.uuid().clone()];
                match self
                    .scheduler
                    .select_destinations(ctx, &spec, &uuids, &true, &true)
                    .await
                {
                    Ok(Destinations::Selections(mut s)) if !s.is_empty() && !s[0].is_empty() => {
                        let mut list = s.remove(0);
                        let first = list.remove(0);
                        (first, list)
                    }
                    Ok(_) => {
                        let why = Failure::new("NoValidHost", "No valid host was found. ");
                        self.move_failed(
                            ctx,
                            &mut inst,
                            Some(&mut migration),
                            held,
                            &why,
                            Some(&spec),
                        )
                        .await;
                        return Ok(());
                    }
                    Err(e) => {
                        let message = e
                            .remote()
                            .map(|r| r.message.clone())
                            .unwrap_or_else(|| e.to_string());
                        let why = Failure::new("NoValidHost", message);
                        self.move_failed(
                            ctx,
                            &mut inst,
                            Some(&mut migration),
                            held,
                            &why,
                            Some(&spec),
                        )
                        .await;
                        return Ok(());
                    }
                }
            }
            Some(mut list) => {
                // Nova's `_reschedule`: claim the first alternate that still fits.
                let mut chosen = None;
                while !list.is_empty() {
                    let alt = list.remove(0);
                    if self.claim_alternate(&inst, &alt).await {
                        chosen = Some(alt);
                        break;
                    }
                }
                match chosen {
                    Some(c) => (c, list),
                    None => {
                        let why = Failure::new(
                            "MaxRetriesExceeded",
                            format!(
                                "Exhausted all hosts available for retrying build failures for instance {}.",
                                inst.uuid()
                            ),
                        );
                        self.move_failed(
                            ctx,
                            &mut inst,
                            Some(&mut migration),
                            held,
                            &why,
                            Some(&spec),
                        )
                        .await;
                        return Ok(());
                    }
                }
            }
        };
        let host = chosen.service_host().clone();
        let node = chosen.nodename().clone();
        hosts_tried.push(json!([host, node]));
        let mut legacy = json!({
            "ignore_hosts": spec.ignore_hosts().clone().unwrap_or_default(),
            "scheduler_hints": spec.scheduler_hints().clone().unwrap_or_default(),
        });
        if !targeted && self.max_attempts > 1 {
            legacy["retry"] = json!({"num_attempts": attempt, "hosts": hosts_tried});
        }
        // The stored spec follows the flavor (the API's revert puts the
        // old one back); what only this move asked for is not stored.
        let mut stored = self.spec_of(ctx, &inst).await;
        if stored.obj_attr_is_set("id") && stored.flavor().id() != flavor.id() {
            stored.obj_reset_changes();
            stored.set_flavor(flavor.clone());
            if let Err(e) = self.objects.save(ctx, &mut stored).await {
                tracing::warn!(error = %e, "cannot save the request spec's flavor");
            }
        }
        let image = json!({"id": inst.image_ref()});
        let sent = self
            .compute
            .prep_resize(
                ctx,
                &host,
                &inst,
                &image,
                &flavor,
                &Some(spec.clone()),
                &legacy,
                &Some(node),
                &m.clean_shutdown,
                &migration,
                &Some(alternates),
            )
            .await;
        if let Err(e) = sent {
            // The destination claim is the instance's now: drop it first.
            let _ = self.placement.delete_allocations_async(inst.uuid()).await;
            let why = Failure::new(
                "MigrationError",
                format!("cannot reach compute {host}: {e}"),
            );
            self.move_failed(
                ctx,
                &mut inst,
                Some(&mut migration),
                held,
                &why,
                Some(&spec),
            )
            .await;
        }
        Ok(())
    }

    /// Nova's `LiveMigrationTask`: the Migration record (`accepted`), the
    /// source allocation moved to it, the destination chosen (the
    /// scheduler, or the forced host claimed directly) and checked
    /// (`check_can_live_migrate_destination`), then `live_migration`
    /// cast to the source.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn live_migrate(
        &self,
        ctx: &RequestContext,
        user: (Option<String>, Option<String>),
        instance: Instance,
        scheduler_hint: &Value,
        block_migration: Option<bool>,
        disk_over_commit: Option<bool>,
        request_spec: Option<RequestSpec>,
    ) -> Result<(), RemoteError> {
        let Ok(mut inst) = self
            .objects
            .get_by_uuid::<Instance>(ctx, instance.uuid())
            .await
        else {
            return Ok(());
        };
        let source = inst.host().clone().unwrap_or_default();
        let requested = scheduler_hint
            .get("host")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let forced = scheduler_hint
            .get("force")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut migration = new_migration(
            &inst,
            "live-migration",
            *inst.flavor().id(),
            *inst.flavor().id(),
            user.0,
            user.1,
        )
        .with_status(Some("accepted".into()))
        .with_dest_compute(requested.clone());
        if let Err(e) = self.objects.create(ctx, &mut migration).await {
            let why = Failure::new(
                "MigrationError",
                format!("cannot record the migration: {e}"),
            );
            self.move_failed(ctx, &mut inst, None, false, &why, None)
                .await;
            return Ok(());
        }
        let held = match move_allocations(&self.placement, inst.uuid(), migration.uuid()).await {
            Ok(h) => h,
            Err(e) => {
                let why = Failure::new("MigrationPreCheckError", e.to_string()).in_live_migration();
                self.move_failed(ctx, &mut inst, Some(&mut migration), false, &why, None)
                    .await;
                return Ok(());
            }
        };
        let mut spec = match request_spec {
            Some(s) => s,
            None => self.spec_of(ctx, &inst).await,
        };
        spec.set_force_hosts(None);
        spec.set_force_nodes(None);
        spec.set_ignore_hosts(Some(vec![source.clone()]));
        let mut candidates: Vec<Selection> = Vec::new();
        match (&requested, forced) {
            (Some(dest), true) => {
                // Nova's forced path: no scheduler; the destination is
                // claimed with the source's allocation.
                if *dest == source {
                    let why = Failure::with_kwargs(
                        "UnableToMigrateToSelf",
                        format!(
                            "Unable to migrate instance ({}) to current host ({source}).",
                            inst.uuid()
                        ),
                        &[("instance_id", json!(inst.uuid())), ("host", json!(source))],
                        400,
                    )
                    .in_live_migration();
                    self.move_failed(ctx, &mut inst, Some(&mut migration), held, &why, None)
                        .await;
                    return Ok(());
                }
                let Some((dest_rp, dest_node)) = self.node_uuid(ctx, dest, None).await else {
                    let why = Failure::with_kwargs(
                        "ComputeHostNotFound",
                        format!("Compute host {dest} could not be found."),
                        &[("host", json!(dest))],
                        404,
                    )
                    .in_live_migration();
                    self.move_failed(ctx, &mut inst, Some(&mut migration), held, &why, None)
                        .await;
                    return Ok(());
                };
                let src = self
                    .placement
                    .allocations_async(migration.uuid())
                    .await
                    .unwrap_or_default();
                let mut allocs = nova_scheduler::placement::Allocations::new();
                for res in src.allocations.values() {
                    let e = allocs
                        .entry(nova_scheduler::placement::Name::from(dest_rp.as_str()))
                        .or_default();
                    for (rc, n) in res {
                        *e.entry(rc.clone()).or_default() += *n;
                    }
                }
                if let Err(e) = self
                    .placement
                    .put_allocations_async(
                        inst.uuid(),
                        &allocs,
                        inst.project_id().as_deref().unwrap_or(""),
                        inst.user_id().as_deref().unwrap_or(""),
                        None,
                    )
                    .await
                {
                    let why = Failure::new(
                        "MigrationPreCheckError",
                        format!(
                            "Migration pre-check error: Unable to migrate {} to {dest}: Unable to claim resources on the destination: {e}",
                            inst.uuid()
                        ),
                )
                    .in_live_migration();
                    self.move_failed(ctx, &mut inst, Some(&mut migration), held, &why, None)
                        .await;
                    return Ok(());
                }
                candidates.push(
                    Selection::new()
                        .with_service_host(dest.clone())
                        .with_nodename(dest_node)
                        .with_compute_node_uuid(dest_rp)
                        .with_allocation_request(None),
                );
            }
            _ => {
                if let Some(dest) = &requested {
                    spec.set_requested_destination(Some(
                        Destination::new()
                            .with_host(dest.clone())
                            .with_node(None)
                            .with_allow_cross_cell_move(false),
                    ));
                }
                let uuids = vec![inst.uuid().clone()];
                match self
                    .scheduler
                    .select_destinations(ctx, &spec, &uuids, &true, &true)
                    .await
                {
                    Ok(Destinations::Selections(mut s)) if !s.is_empty() => {
                        candidates = s.remove(0)
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let message = e
                            .remote()
                            .map(|r| r.message.clone())
                            .unwrap_or_else(|| e.to_string());
                        let why = Failure::new("NoValidHost", message).in_live_migration();
                        self.move_failed(ctx, &mut inst, Some(&mut migration), held, &why, None)
                            .await;
                        return Ok(());
                    }
                }
            }
        }
        // The destination's checks; a refusal tries the next alternate
        // (nova's `_find_destination` loop), its claim released.
        let mut last_error = String::from("No valid host was found. ");
        let mut first = true;
        for sel in candidates {
            let dest = sel.service_host().clone();
            if !first && !self.claim_alternate(&inst, &sel).await {
                continue;
            }
            first = false;
            migration.set_dest_compute(Some(dest.clone()));
            migration.set_dest_node(Some(sel.nodename().clone()));
            migration.set_dest_host(Some("127.0.0.1".into()));
            let checked = self
                .compute
                .check_can_live_migrate_destination(
                    ctx,
                    &dest,
                    &inst,
                    &block_migration,
                    &disk_over_commit,
                    &Some(migration.clone()),
                    &json!({}),
                )
                .await;
            match checked {
                Ok(data) => {
                    if let Err(e) = self.objects.save(ctx, &mut migration).await {
                        tracing::warn!(error = %e, "cannot save the migration");
                    }
                    let sent = self
                        .compute
                        .live_migration(
                            ctx,
                            &source,
                            &inst,
                            &dest,
                            &block_migration,
                            &Some(migration.clone()),
                            &Some(data),
                        )
                        .await;
                    if let Err(e) = sent {
                        let _ = self.placement.delete_allocations_async(inst.uuid()).await;
                        let why = Failure::new(
                            "MigrationError",
                            format!("cannot reach compute {source}: {e}"),
                        )
                        .in_live_migration();
                        self.move_failed(ctx, &mut inst, Some(&mut migration), held, &why, None)
                            .await;
                    }
                    return Ok(());
                }
                Err(e) => {
                    // Nova's `_call_livem_checks_on_host`: a timeout is a
                    // pre-check error; the scheduled path tries the next
                    // host after a refusal (`Invalid`, `MigrationPreCheckError`),
                    // anything else ends the task (a forced host: whatever
                    // the destination raised).
                    let why = match e.remote() {
                        Some(r) => Failure::remote(r),
                        None => Failure::new(
                            "MigrationPreCheckError",
                            format!(
                                "Migration pre-check error: Timeout while checking if we can live migrate to host: {dest}"
                            ),
                        ),
                    };
                    tracing::info!(instance = %inst.uuid(), host = %dest, class = %why.class, reason = %why.message, "destination refused the live migration");
                    if !why.is_refusal() || (forced && requested.is_some()) {
                        let _ = self.placement.delete_allocations_async(inst.uuid()).await;
                        let why = why.in_live_migration();
                        self.move_failed(ctx, &mut inst, Some(&mut migration), held, &why, None)
                            .await;
                        return Ok(());
                    }
                    last_error = why.message;
                    if requested.is_some() {
                        break;
                    }
                }
            }
        }
        // The destination claim (if any) is the instance's: released
        // before the source's comes back.
        let _ = self.placement.delete_allocations_async(inst.uuid()).await;
        // Every scheduled host refused: nova asks the scheduler again with
        // them ignored, and it finds none.
        let why = if requested.is_some() {
            Failure::new("MigrationPreCheckError", last_error)
        } else {
            Failure::new(
                "NoValidHost",
                "No valid host was found. There are not enough hosts available.",
            )
        }
        .in_live_migration();
        self.move_failed(ctx, &mut inst, Some(&mut migration), held, &why, None)
            .await;
        Ok(())
    }
}
