//! The scheduler manager: the host view, placing with nova-scheduler's
//! filters and weighers and claiming in Placement, and the [`Scheduler`]
//! interface over it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nova_objects::{Aggregate, ComputeNode, ListQuery, Objects, RequestSpec, Service};
use nova_placement::PlacementHandle;
use nova_rpc::{Dispatcher, RemoteError, RequestContext, RpcServer, Target, Transport};
use nova_rpcapi::scheduler::{Destinations, Scheduler as SchedulerRpc, TOPIC};
use nova_scheduler::{Scheduler, SchedulerConfig, Selection};
use nova_service::Conf;
use nova_service::notifications::{Notifier, Phase};
use serde_json::{Value, json};

/// How old the host view may get before a request reloads it.
pub const HOST_REFRESH: Duration = Duration::from_secs(1);

/// The scheduler's configuration, from `[filter_scheduler]`, `[scheduler]`
/// and `[DEFAULT] service_down_time`.
pub fn scheduler_config(conf: &Conf) -> anyhow::Result<SchedulerConfig> {
    let mut c = SchedulerConfig::default();
    let (_, down) = conf.service_group()?;
    c.service_down_time = down as f64;
    for section in ["filter_scheduler", "scheduler"] {
        for (k, v) in conf.section(section) {
            if let Err(e) = c.set(&k, &v) {
                anyhow::bail!("[{section}] {k}: {e}");
            }
        }
    }
    Ok(c)
}

#[derive(Debug)]
struct View {
    scheduler: Scheduler,
    loaded: Option<Instant>,
    /// Root providers Placement proposed that a fresh reload still did not
    /// turn into hosts (not compute nodes of this cell): no reason to
    /// reload again for them.
    foreign: BTreeSet<String>,
}

/// How many foreign providers [`View::foreign`] remembers.
const FOREIGN_MAX: usize = 10_000;

/// The scheduler manager.
#[derive(Debug, Clone)]
pub struct SchedulerManager {
    objects: Objects,
    placement: PlacementHandle,
    // A tokio mutex: a request holds it on a blocking thread for a whole
    // placement; workers wait for it without blocking.
    view: Arc<tokio::sync::Mutex<View>>,
    cell_uuid: String,
    /// Where computes are reached: a compute whose queue has no consumer
    /// there is down (see [`SchedulerManager::with_reachability`]).
    reachability: Option<Arc<dyn Transport>>,
    /// `[DEFAULT] default_availability_zone` (a Selection's zone for a host
    /// in none).
    default_az: String,
    /// `scheduler.select_destinations.*` and this scheduler's host.
    notifier: (Notifier, String),
}

use nova_service::context::admin;

fn no_valid_host(reason: &str) -> RemoteError {
    RemoteError::new(
        "NoValidHost",
        "nova.exception",
        format!("No valid host was found. {reason}"),
    )
    .with_kwarg("reason", reason.to_owned())
}

impl SchedulerManager {
    /// A manager over the database's objects and Placement.
    pub fn new(
        config: SchedulerConfig,
        objects: Objects,
        placement: PlacementHandle,
        cell_uuid: &str,
    ) -> anyhow::Result<Self> {
        Ok(SchedulerManager {
            objects,
            placement,
            view: Arc::new(tokio::sync::Mutex::new(View {
                scheduler: Scheduler::new(config)?,
                loaded: None,
                foreign: BTreeSet::new(),
            })),
            cell_uuid: cell_uuid.to_owned(),
            reachability: None,
            default_az: "nova".to_owned(),
            notifier: (Notifier::disabled(), String::new()),
        })
    }

    /// Notifies through `notifier` as the scheduler of `host`.
    pub fn with_notifier(mut self, notifier: Notifier, host: &str) -> Self {
        self.notifier = (notifier, host.to_owned());
        self
    }

    /// Computes nobody serves on `transport` are down, whatever their
    /// last heartbeat says: on the memory transport every service is in
    /// this process, so a compute whose queue has no consumer did not
    /// start (again) here — its record's heartbeat is from a previous
    /// process, and a build sent to it would wait for ever. Transports
    /// that cannot tell (RabbitMQ keeps the queue) change nothing.
    pub fn with_reachability(mut self, transport: Arc<dyn Transport>) -> Self {
        self.reachability = Some(transport);
        self
    }

    /// Sets `[DEFAULT] default_availability_zone` (`nova`).
    pub fn with_default_az(mut self, zone: &str) -> Self {
        self.default_az = zone.to_owned();
        self
    }

    /// Reloads the host view from the database.
    pub async fn refresh(&self) -> nova_objects::Result<()> {
        let t0 = Instant::now();
        let ctx = admin();
        let nodes: Vec<ComputeNode> = self.objects.list(&ctx, &ListQuery::new()).await?;
        let services: Vec<Service> = self
            .objects
            .list(&ctx, &ListQuery::new().filter("binary", "nova-compute"))
            .await?;
        let aggs: Vec<Aggregate> = self.objects.list(&ctx, &ListQuery::new()).await?;
        let by_host: BTreeMap<String, &Service> = services
            .iter()
            .filter_map(|s| s.host().clone().map(|h| (h, s)))
            .collect();
        // Heartbeat ages as they will be at the end of this view's life: a
        // compute that goes down while the view is in use is excluded early
        // rather than chosen late.
        let now = chrono::Utc::now() + chrono::Duration::from_std(HOST_REFRESH).unwrap_or_default();
        let aggregates: Vec<nova_scheduler::Aggregate> = aggs
            .iter()
            .map(nova_scheduler::from_objects::aggregate)
            .collect();
        let mut states = Vec::with_capacity(nodes.len());
        for cn in &nodes {
            let host = cn.host().clone().unwrap_or_default();
            let member: Vec<usize> = aggs
                .iter()
                .enumerate()
                .filter(|(_, a)| a.hosts().as_ref().is_some_and(|h| h.contains(&host)))
                .map(|(i, _)| i)
                .collect();
            let mut state = nova_scheduler::from_objects::host_state(
                cn,
                by_host.get(&host).copied(),
                member,
                BTreeSet::new(),
                &self.cell_uuid,
                now,
            );
            if let Some(t) = &self.reachability
                && t.has_consumer(&format!("{}.{host}", nova_rpcapi::compute::TOPIC)) == Some(false)
            {
                state.service.seconds_since_heartbeat = f64::INFINITY;
            }
            states.push(state);
        }
        let mut v = self.view.lock().await;
        v.scheduler.set_aggregates(aggregates);
        let keep: BTreeSet<(String, String)> = states
            .iter()
            .map(|h| (h.host.clone(), h.nodename.clone()))
            .collect();
        let gone: Vec<(String, String)> = v
            .scheduler
            .hosts()
            .iter()
            .map(|h| (h.host.clone(), h.nodename.clone()))
            .filter(|k| !keep.contains(k))
            .collect();
        for (h, n) in gone {
            v.scheduler.remove_host(&h, &n);
        }
        for s in states {
            v.scheduler.upsert_host(s);
        }
        v.loaded = Some(Instant::now());
        tracing::debug!(hosts = v.scheduler.hosts().len(), elapsed = ?t0.elapsed(), "host states refreshed");
        Ok(())
    }

    async fn stale(&self, max_age: Duration) -> bool {
        let v = self.view.lock().await;
        v.loaded.is_none_or(|t| t.elapsed() >= max_age)
    }

    /// Reloads the host view every [`HOST_REFRESH`] until `stop`, off the
    /// request path.
    pub fn start_refresher(
        &self,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        nova_service::periodic(stop, HOST_REFRESH, Duration::ZERO, move || {
            let me = me.clone();
            async move {
                if let Err(e) = me.refresh().await {
                    tracing::warn!(error = %e, "cannot refresh the host states");
                }
            }
        })
    }

    /// Places the instances: one Selection list per instance (chosen host
    /// first, then the alternates), claimed in Placement.
    pub async fn place(
        &self,
        spec: &RequestSpec,
        instance_uuids: &[String],
    ) -> Result<Vec<Vec<Selection>>, RemoteError> {
        let req = nova_scheduler::from_objects::request(spec, instance_uuids);
        if req.is_rebuild() {
            return self.rebuild_check(req).await;
        }
        let placed = crate::members::placed_instances(&self.objects, &req)
            .await
            .map_err(|e| {
                RemoteError::internal("SchedulerError", format!("cannot load instances: {e}"))
            })?;
        // Instances that hold allocations already are moving (evacuate):
        // their claims add to what they hold.
        let mut held = BTreeMap::new();
        for u in instance_uuids {
            if let Ok(a) = self.placement.allocations_async(u).await
                && !a.allocations.is_empty()
            {
                held.insert(u.clone(), a);
            }
        }
        // Reload the view before the next try: after NoValidHost (with the
        // Placement mirror), or when Placement proposed hosts the view does
        // not have yet (a compute that registered since it was loaded).
        let mut no_valid_host_retried = false;
        let mut unknown_retried = false;
        loop {
            // The refresher keeps the view within HOST_REFRESH; a request
            // only loads it itself when it is much older (no refresher, or
            // a stalled one) or before a retry.
            let retry = no_valid_host_retried || unknown_retried;
            if retry || self.stale(HOST_REFRESH * 3).await {
                self.refresh().await.map_err(|e| {
                    RemoteError::internal("SchedulerError", format!("cannot load host states: {e}"))
                })?;
                if no_valid_host_retried {
                    self.placement.invalidate();
                }
            }
            let (view, placement, req2) = (self.view.clone(), self.placement.clone(), req.clone());
            let placed2 = placed.clone();
            let placement = crate::move_claims::MovePlacement::new(placement, held.clone());
            let out = tokio::task::spawn_blocking(move || {
                let mut v = view.blocking_lock();
                let View {
                    scheduler, foreign, ..
                } = &mut *v;
                crate::members::add_instances(scheduler, &placed2);
                scheduler.select_destinations_known(&placement, &req2, |unknown| {
                    if !unknown_retried {
                        return unknown.iter().all(|u| foreign.contains(u));
                    }
                    // Still unknown right after a reload: not ours.
                    if foreign.len() + unknown.len() > FOREIGN_MAX {
                        foreign.clear();
                    }
                    foreign.extend(unknown.iter().cloned());
                    true
                })
            })
            .await
            .map_err(|e| RemoteError::internal("SchedulerError", e.to_string()))?;
            match out {
                Ok(s) => return Ok(s),
                Err(nova_scheduler::Error::UnknownHosts { providers }) if !unknown_retried => {
                    tracing::debug!(
                        new = providers.len(),
                        "Placement knows hosts the view does not: reloading"
                    );
                    unknown_retried = true;
                }
                Err(nova_scheduler::Error::NoValidHost { reason, .. }) => {
                    if !no_valid_host_retried {
                        no_valid_host_retried = true;
                        continue;
                    }
                    return Err(no_valid_host(&reason));
                }
                Err(e) => return Err(RemoteError::internal("SchedulerError", e.to_string())),
            }
        }
    }
}

impl SchedulerManager {
    /// Nova's rebuild check (`_nova_check_type` = `rebuild`): the
    /// instance's own (forced) host through the filters that run on a
    /// rebuild, without Placement and without a claim (the instance keeps
    /// its allocation).
    async fn rebuild_check(
        &self,
        req: nova_scheduler::Request,
    ) -> Result<Vec<Vec<Selection>>, RemoteError> {
        if self.stale(HOST_REFRESH * 3).await {
            self.refresh().await.map_err(|e| {
                RemoteError::internal("SchedulerError", format!("cannot load host states: {e}"))
            })?;
        }
        let view = self.view.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut v = view.blocking_lock();
            v.scheduler.select_destinations(&req)
        })
        .await
        .map_err(|e| RemoteError::internal("SchedulerError", e.to_string()))?;
        match out {
            Ok(s) => Ok(s),
            Err(nova_scheduler::Error::NoValidHost { reason, .. }) => Err(no_valid_host(&reason)),
            Err(e) => Err(RemoteError::internal("SchedulerError", e.to_string())),
        }
    }
}

/// `nova_scheduler_decisions_total{outcome}` (`selected`, `no_valid_host`,
/// `error`), `nova_scheduler_no_valid_host_total`,
/// `nova_scheduler_instances_selected_total` and
/// `nova_scheduler_select_duration_seconds{outcome}` (facade only: nothing
/// is kept unless the process installed a recorder).
fn record_decision(started: std::time::Instant, placed: &Result<Vec<Vec<Selection>>, RemoteError>) {
    let outcome = match placed {
        Ok(chosen) => {
            metrics::counter!("nova_scheduler_instances_selected_total")
                .increment(chosen.len() as u64);
            "selected"
        }
        Err(e) if e.class == "NoValidHost" => {
            metrics::counter!("nova_scheduler_no_valid_host_total").increment(1);
            "no_valid_host"
        }
        Err(_) => "error",
    };
    metrics::counter!("nova_scheduler_decisions_total", "outcome" => outcome).increment(1);
    metrics::histogram!("nova_scheduler_select_duration_seconds", "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
}

impl SchedulerRpc for SchedulerManager {
    async fn select_destinations(
        &self,
        ctx: RequestContext,
        spec_obj: RequestSpec,
        instance_uuids: Vec<String>,
        return_objects: bool,
        return_alternates: bool,
    ) -> Result<Destinations, RemoteError> {
        let (notifier, me) = &self.notifier;
        notifier
            .select_destinations(&ctx, me, &spec_obj, Phase::Start)
            .await;
        let started = std::time::Instant::now();
        let placed = self.place(&spec_obj, &instance_uuids).await;
        record_decision(started, &placed);
        let chosen = placed?;
        notifier
            .select_destinations(&ctx, me, &spec_obj, Phase::End)
            .await;
        let zones = {
            let v = self.view.lock().await;
            crate::members::zones(&v.scheduler, &chosen, &self.default_az)
        };
        if !return_objects {
            // Nova's pre-4.5 answer: the chosen host of each instance as a dict.
            return Ok(Destinations::Legacy(
                chosen
                    .iter()
                    .filter_map(|alts| alts.first())
                    .map(|s| json!({"host": s.host, "nodename": s.nodename, "limits": {}}))
                    .collect(),
            ));
        }
        Ok(Destinations::Selections(
            chosen
                .iter()
                .map(|alts| {
                    let keep = if return_alternates { alts.len() } else { 1 };
                    alts.iter()
                        .take(keep)
                        .map(|s| {
                            selection_object(s).with_availability_zone(zones.get(&s.host).cloned())
                        })
                        .collect()
                })
                .collect(),
        ))
    }
}

/// A Selection as nova's `Selection` object.
pub fn selection_object(s: &Selection) -> nova_objects::Selection {
    let alloc = s.allocation_request.as_ref().map(|a| {
        let allocs: serde_json::Map<String, Value> = a
            .iter()
            .map(|(rp, res)| (rp.to_string(), json!({ "resources": res })))
            .collect();
        json!({ "allocations": allocs }).to_string()
    });
    nova_objects::Selection::new()
        .with_compute_node_uuid(s.compute_node_uuid.clone())
        .with_service_host(s.host.clone())
        .with_nodename(s.nodename.clone())
        .with_cell_uuid(s.cell_uuid.clone())
        .with_limits(None)
        .with_allocation_request(alloc)
        .with_allocation_request_version(Some("1.36".into()))
        .with_availability_zone(None)
}

/// Starts the scheduler's RPC server on `transport`.
pub async fn serve(
    transport: Arc<dyn Transport>,
    manager: &SchedulerManager,
    host: &str,
) -> anyhow::Result<RpcServer> {
    let dispatcher = Dispatcher::new(vec![
        Arc::new(manager.clone()).endpoint(),
        nova_rpcapi::base::endpoint("nova-scheduler"),
    ]);
    Ok(RpcServer::start(
        transport,
        Target::topic(TOPIC).with_server(host),
        dispatcher,
    )
    .await?)
}
