//! `select_destinations`: filters → weighers → choice → consume, per
//! instance, with alternates (nova's `SchedulerManager` without the RPC).

use std::collections::HashMap;
use std::time::Instant;

use crate::config::SchedulerConfig;
use crate::error::{Error, Result};
use crate::filters::{FilterContext, HostFilter, filter_by_name};
use crate::host_state::{Aggregate, HostState};
use crate::placement::Allocations;
use crate::request::{Request, ResourceRequest};
use crate::weighers::{HostWeigher, weigher_by_name};

/// A fast, non-cryptographic hasher for the uuid index (keys are our own
/// compute node uuids, not attacker-chosen input).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A weigher active in a round, with its multiplier per aggregate.
struct ActiveWeigher<'w> {
    w: &'w dyn HostWeigher,
    default: f64,
    sign: f64,
    per_agg: Option<Vec<Option<Option<f64>>>>,
    lo: Option<f64>,
    hi: Option<f64>,
}

impl ActiveWeigher<'_> {
    /// The multiplier for `h`: the option, unless the host's aggregates set
    /// it (their minimum; a value that does not parse means the option).
    fn multiplier(&self, h: &HostState) -> f64 {
        let Some(per_agg) = &self.per_agg else {
            return self.default;
        };
        // Aggregates without the key do not count; the rest as the filters do.
        let values = h
            .aggregates
            .iter()
            .filter_map(|&g| per_agg.get(g).copied().flatten());
        crate::filters::min_or_default(values, self.default)
    }
}

/// What a placement loop's claim step did with a host.
pub(crate) enum Claim {
    /// The host is taken (with the allocation claimed, if any).
    Taken(Option<Allocations>),
    /// Try the next host.
    Skip,
    /// Stop: the request fails with this error.
    Abort(Error),
}

/// One chosen (or alternate) host for an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Compute service host.
    pub host: String,
    /// Node.
    pub nodename: String,
    /// Compute node uuid.
    pub compute_node_uuid: String,
    /// Cell uuid.
    pub cell_uuid: String,
    /// With Placement: the allocation request (claimed for the chosen
    /// host; for an alternate, the one to claim when it is tried).
    pub allocation_request: Option<crate::placement::Allocations>,
}

/// How many hosts a filter kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterCount {
    /// Filter name.
    pub filter: &'static str,
    /// Hosts before.
    pub start: usize,
    /// Hosts after.
    pub end: usize,
    /// Whether the filter stands for a Placement check.
    pub emulated: bool,
}

/// A host that passed, with its weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weighed {
    /// Index into [`Scheduler::hosts`].
    pub host: usize,
    /// Total weight.
    pub weight: f64,
}

/// One filter + weigh round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Round {
    /// Instance index (for the last round of a multi-instance request with
    /// alternates, the index of the last instance).
    pub index: usize,
    /// Hosts the round started with.
    pub input_hosts: usize,
    /// Filters that ran.
    pub filter_counts: Vec<FilterCount>,
    /// Passing hosts, best first.
    pub passed: Vec<Weighed>,
    /// Time spent filtering (ms).
    pub filter_ms: f64,
    /// Time spent weighing (ms).
    pub weigh_ms: f64,
}

/// The outcome of one request, with the trace of every round.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Per instance: the chosen host, then alternates.
    pub selections: Vec<Vec<Selection>>,
    /// Every round, in order.
    pub rounds: Vec<Round>,
}

/// The scheduler: host states, aggregates, filters and weighers.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    filters: Vec<Box<dyn HostFilter>>,
    weighers: Vec<Box<dyn HostWeigher>>,
    aggregates: Vec<Aggregate>,
    hosts: Vec<HostState>,
    by_name: HashMap<(String, String), usize>,
    by_uuid: HashMap<String, usize, std::hash::BuildHasherDefault<FxHasher>>,
    rng: u64,
    last_rounds: Vec<Round>,
}

impl Scheduler {
    /// A scheduler with `config`'s filters and weighers; unknown names are errors.
    pub fn new(config: SchedulerConfig) -> Result<Self> {
        let filters = config
            .enabled_filters
            .iter()
            .map(|n| {
                filter_by_name(n, &config)
                    .ok_or_else(|| Error::Config(format!("unknown filter {n}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let weighers = config
            .weighers
            .iter()
            .map(|n| {
                weigher_by_name(n).ok_or_else(|| Error::Config(format!("unknown weigher {n}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let rng = config.seed ^ 0x9E37_79B9_7F4A_7C15;
        Ok(Scheduler {
            config,
            filters,
            weighers,
            aggregates: Vec::new(),
            hosts: Vec::new(),
            by_name: HashMap::new(),
            by_uuid: HashMap::default(),
            rng,
            last_rounds: Vec::new(),
        })
    }

    /// The rounds of the last request that ended in `NoValidHost`.
    pub fn last_rounds(&self) -> &[Round] {
        &self.last_rounds
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Filter names in run order.
    pub fn filter_names(&self) -> Vec<&'static str> {
        self.filters.iter().map(|f| f.name()).collect()
    }

    /// Names of the filters that stand for Placement checks.
    pub fn emulated_filter_names(&self) -> Vec<&'static str> {
        self.filters
            .iter()
            .filter(|f| f.emulated())
            .map(|f| f.name())
            .collect()
    }

    /// Weigher names in order.
    pub fn weigher_names(&self) -> Vec<&'static str> {
        self.weighers.iter().map(|w| w.name()).collect()
    }

    /// Replaces the aggregates (hosts refer to them by index).
    pub fn set_aggregates(&mut self, aggregates: Vec<Aggregate>) {
        self.aggregates = aggregates;
    }

    /// The aggregates.
    pub fn aggregates(&self) -> &[Aggregate] {
        &self.aggregates
    }

    /// The index of the host whose compute node (root provider) is `uuid`.
    pub fn host_index_by_uuid(&self, uuid: &str) -> Option<usize> {
        self.by_uuid.get(uuid).copied()
    }

    /// The hosts, in insertion order.
    pub fn hosts(&self) -> &[HostState] {
        &self.hosts
    }

    /// Adds a host, or replaces the one with the same host and node (a
    /// compute's report updates one host, nothing else).
    pub fn upsert_host(&mut self, host: HostState) -> usize {
        let key = (host.host.clone(), host.nodename.clone());
        match self.by_name.get(&key) {
            Some(&i) => {
                self.by_uuid.remove(&self.hosts[i].uuid);
                self.by_uuid.insert(host.uuid.clone(), i);
                self.hosts[i] = host;
                i
            }
            None => {
                self.by_uuid.insert(host.uuid.clone(), self.hosts.len());
                self.hosts.push(host);
                self.by_name.insert(key, self.hosts.len() - 1);
                self.hosts.len() - 1
            }
        }
    }

    /// Removes a host (a deleted compute node).
    pub fn remove_host(&mut self, host: &str, nodename: &str) -> Option<HostState> {
        let i = self
            .by_name
            .remove(&(host.to_owned(), nodename.to_owned()))?;
        let removed = self.hosts.remove(i);
        for v in self.by_name.values_mut() {
            if *v > i {
                *v -= 1;
            }
        }
        Some(removed)
    }

    fn next_random(&mut self, n: usize) -> usize {
        // xorshift64*: only used for host_subset_size > 1 and shuffles.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }

    fn ctx<'a>(
        &'a self,
        req: &'a Request,
        resources: &'a ResourceRequest,
        index: usize,
        uuid: &'a str,
    ) -> FilterContext<'a> {
        FilterContext {
            request: req,
            resources,
            config: &self.config,
            aggregates: &self.aggregates,
            index,
            instance_uuid: uuid,
            cache: Default::default(),
        }
    }

    /// Nova's `get_filtered_hosts` then `get_weighed_hosts`: requested
    /// destination, ignored and forced hosts (forced hosts skip the
    /// filters), then filters and weighers; the passing hosts, best first.
    fn weighed_hosts(
        &self,
        hosts: &[usize],
        ctx: &FilterContext<'_>,
        round: &mut Round,
    ) -> Vec<Weighed> {
        let req = ctx.request;
        let mut list: Vec<usize> = match &req.requested_destination {
            Some(d) => hosts
                .iter()
                .copied()
                .filter(|&i| {
                    let h = &self.hosts[i];
                    // A destination without a host (a move's cell or
                    // cross-cell flag only) names no host.
                    (d.host.is_empty() || h.host == d.host)
                        && d.node.as_ref().is_none_or(|n| *n == h.nodename)
                })
                .collect(),
            None => hosts.to_vec(),
        };
        if !req.ignore_hosts.is_empty()
            || !req.force_hosts.is_empty()
            || !req.force_nodes.is_empty()
        {
            if !req.ignore_hosts.is_empty() {
                list.retain(|&i| {
                    !req.ignore_hosts
                        .iter()
                        .any(|h| h.eq_ignore_ascii_case(&self.hosts[i].host))
                });
                if list.is_empty() {
                    return Vec::new();
                }
            }
            if !req.force_hosts.is_empty() {
                list.retain(|&i| {
                    req.force_hosts
                        .iter()
                        .any(|h| h.eq_ignore_ascii_case(&self.hosts[i].host))
                });
            }
            if !req.force_nodes.is_empty() {
                list.retain(|&i| req.force_nodes.contains(&self.hosts[i].nodename));
            }
            let check_type = req
                .scheduler_hints
                .get("_nova_check_type")
                .is_some_and(|v| !v.is_empty());
            if !check_type && (!req.force_hosts.is_empty() || !req.force_nodes.is_empty()) {
                return self.filter_and_weigh(&list, ctx, round, false);
            }
        }
        self.filter_and_weigh(&list, ctx, round, true)
    }

    /// The active weighers of a round: multiplier options parsed once per
    /// aggregate; weighers that would add 0 to every host left out.
    fn active_weighers(&self, ctx: &FilterContext<'_>) -> Vec<ActiveWeigher<'_>> {
        self.weighers
            .iter()
            .filter(|w| !w.is_constant(ctx))
            .filter_map(|w| {
                let (option, default) = w.multiplier_option(&self.config);
                let per_agg: Vec<Option<Option<f64>>> = self
                    .aggregates
                    .iter()
                    .map(|a| a.metadata.get(option).map(|v| v.trim().parse::<f64>().ok()))
                    .collect();
                let overridden = per_agg.iter().any(Option::is_some);
                (default != 0.0 || overridden).then(|| ActiveWeigher {
                    w: w.as_ref(),
                    default,
                    sign: w.multiplier_sign(),
                    per_agg: overridden.then_some(per_agg),
                    lo: w.minval(),
                    hi: w.maxval(),
                })
            })
            .collect()
    }

    /// Nova's filter handler and weight handler in one pass over the hosts:
    /// every filter runs on a host while its state is in cache (counting
    /// where each host dropped out gives each filter's start/end exactly as
    /// filter-after-filter would), and a host that passes has its raw
    /// weights and multipliers taken right away. Then, per weigher, nova's
    /// clamp / normalise / multiply / sum, and a stable sort by weight,
    /// descending. `run_filters` false: the hosts are forced, only weighed.
    fn filter_and_weigh(
        &self,
        list: &[usize],
        ctx: &FilterContext<'_>,
        round: &mut Round,
        run_filters: bool,
    ) -> Vec<Weighed> {
        let t = Instant::now();
        let rebuild = ctx.request.is_rebuild();
        let filters: Vec<(&dyn HostFilter, bool)> = if run_filters {
            self.filters
                .iter()
                .filter(|f| !(f.run_filter_once_per_request() && ctx.index > 0))
                .map(|f| (f.as_ref(), !rebuild || f.run_on_rebuild()))
                .collect()
        } else {
            Vec::new()
        };
        let weighers = self.active_weighers(ctx);
        let kk = weighers.len();
        let mut dropped = vec![0usize; filters.len()];
        let mut out: Vec<Weighed> = Vec::with_capacity(list.len());
        let mut raw: Vec<f64> = Vec::with_capacity(list.len() * kk);
        let mut mult: Vec<f64> = Vec::with_capacity(list.len() * kk);
        let mut lo_seen = vec![f64::INFINITY; kk];
        let mut hi_seen = vec![f64::NEG_INFINITY; kk];
        'hosts: for &i in list {
            let h = &self.hosts[i];
            for (k, (f, run)) in filters.iter().enumerate() {
                if *run && !f.host_passes(h, ctx) {
                    dropped[k] += 1;
                    continue 'hosts;
                }
            }
            out.push(Weighed {
                host: i,
                weight: 0.0,
            });
            for (k, a) in weighers.iter().enumerate() {
                let mut v = a.w.weigh(h, ctx);
                if let Some(lo) = a.lo {
                    v = v.max(lo);
                }
                if let Some(hi) = a.hi {
                    v = v.min(hi);
                }
                lo_seen[k] = lo_seen[k].min(v);
                hi_seen[k] = hi_seen[k].max(v);
                raw.push(v);
                mult.push(a.sign * a.multiplier(h));
            }
        }
        if run_filters {
            let mut left = list.len();
            for ((f, _), d) in filters.iter().zip(&dropped) {
                round.filter_counts.push(FilterCount {
                    filter: f.name(),
                    start: left,
                    end: left - d,
                    emulated: f.emulated(),
                });
                left -= d;
                if left == 0 {
                    break;
                }
            }
        }
        round.filter_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let n = out.len();
        if n > 1 {
            // Normalisation bounds: the weigher's own, else the candidates' range.
            let bounds: Vec<Option<(f64, f64)>> = weighers
                .iter()
                .enumerate()
                .map(|(k, a)| {
                    let (min, max) = (a.lo.unwrap_or(lo_seen[k]), a.hi.unwrap_or(hi_seen[k]));
                    (min != max).then_some((min, max - min))
                })
                .collect();
            for (j, o) in out.iter_mut().enumerate() {
                for (k, b) in bounds.iter().enumerate() {
                    if let Some((min, range)) = b {
                        o.weight += mult[j * kk + k] * ((raw[j * kk + k] - min) / range);
                    }
                }
            }
            // Weights are sums of finite products starting at +0.0 (never
            // NaN or -0.0), so the total order is the numeric one; with the
            // position as tie-break the unstable sort gives Python's stable order.
            let mut keyed: Vec<(f64, u32)> = out
                .iter()
                .enumerate()
                .map(|(i, o)| (o.weight, i as u32))
                .collect();
            keyed.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            out = keyed.into_iter().map(|(_, i)| out[i as usize]).collect();
        } else {
            out.iter_mut().for_each(|o| o.weight = 0.0);
        }
        round.weigh_ms = t.elapsed().as_secs_f64() * 1e3;
        out
    }

    /// Consumes what one instance takes on host `h` (nova's
    /// `_consume_selected_host`), and records it in the request's group.
    fn consume_for(&mut self, h: usize, req: &mut Request, uuid: &str) {
        let (mem, disk, vcpus) = (
            req.flavor.memory_mb,
            req.flavor.root_gb + req.flavor.ephemeral_gb,
            req.flavor.vcpus,
        );
        let host = &mut self.hosts[h];
        host.consume(mem, disk, vcpus);
        if let Some(g) = req.group.as_mut() {
            g.hosts.push(host.host.clone());
            if !uuid.is_empty() {
                host.instances.insert(uuid.to_owned());
            }
        }
    }

    fn restore(&mut self, saved: Vec<(usize, HostState)>) {
        for (i, h) in saved {
            self.hosts[i] = h;
        }
    }

    /// Nova's `_get_sorted_hosts`: filtered, weighed, the chosen host first.
    fn sorted_hosts(
        &mut self,
        req: &Request,
        resources: &ResourceRequest,
        hosts: &[usize],
        index: usize,
        uuid: &str,
        trace: &mut Vec<Round>,
    ) -> Vec<usize> {
        let mut round = Round {
            index,
            input_hosts: hosts.len(),
            ..Round::default()
        };
        let ctx = self.ctx(req, resources, index, uuid);
        let mut weighed = self.weighed_hosts(hosts, &ctx, &mut round);
        if weighed.is_empty() {
            trace.push(round);
            return Vec::new();
        }
        if self.config.shuffle_best_same_weighed_hosts {
            let best = weighed[0].weight;
            let n = weighed.iter().take_while(|w| w.weight == best).count();
            for i in (1..n).rev() {
                let j = self.next_random(i + 1);
                weighed.swap(i, j);
            }
        }
        round.passed = weighed.clone();
        trace.push(round);
        let mut sorted: Vec<usize> = weighed.iter().map(|w| w.host).collect();
        let subset = if self.config.host_subset_size < sorted.len() {
            self.config.host_subset_size
        } else {
            sorted.len()
        };
        let pick = if subset > 1 {
            self.next_random(subset)
        } else {
            0
        };
        let chosen = sorted.remove(pick);
        sorted.insert(0, chosen);
        sorted
    }

    fn selection(&self, i: usize) -> Selection {
        let h = &self.hosts[i];
        Selection {
            host: h.host.clone(),
            nodename: h.nodename.clone(),
            compute_node_uuid: h.uuid.clone(),
            cell_uuid: h.cell_uuid.clone(),
            allocation_request: None,
        }
    }

    /// Filters and weighs every host for the first instance of `req`
    /// without choosing or consuming anything: the hosts that pass, best
    /// first, and how many each filter kept (a dry run).
    pub fn rank(&self, req: &Request) -> Round {
        let resources = req.resources();
        let uuid = req.instance_uuids.first().map_or("", String::as_str);
        let hosts: Vec<usize> = (0..self.hosts.len()).collect();
        let mut round = Round {
            input_hosts: hosts.len(),
            ..Round::default()
        };
        let ctx = self.ctx(req, &resources, 0, uuid);
        round.passed = self.weighed_hosts(&hosts, &ctx, &mut round);
        round
    }

    /// `select_destinations` for `req`: one host per instance uuid (at
    /// least one placement when the request names none), each followed by
    /// up to `max_attempts - 1` alternates from its cell. The chosen hosts'
    /// states are consumed (as nova's scheduler does until the computes
    /// report again); on `NoValidHost` nothing is consumed.
    pub fn select_destinations(&mut self, req: &Request) -> Result<Vec<Vec<Selection>>> {
        self.schedule(req).map(|d| d.selections)
    }

    /// [`Scheduler::select_destinations`], with every round's filter counts
    /// and weights.
    pub fn schedule(&mut self, req: &Request) -> Result<Decision> {
        let uuids: Vec<String> = if req.instance_uuids.is_empty() {
            vec![String::new()]
        } else {
            req.instance_uuids.clone()
        };
        let hosts: Vec<usize> = (0..self.hosts.len()).collect();
        self.place(
            req,
            hosts,
            &uuids,
            |_, _| Claim::Taken(None),
            |_| Some(None),
        )
    }

    /// Nova's `_legacy_find_hosts` / `_schedule` loop: for each instance, the
    /// sorted hosts (survivors of the previous round), the first one
    /// `claim` takes, its state consumed; then alternates from the chosen
    /// host's cell that `alternate` offers. On failure the host states are
    /// restored and the rounds kept for [`Scheduler::last_rounds`].
    pub(crate) fn place(
        &mut self,
        req: &Request,
        mut hosts: Vec<usize>,
        uuids: &[String],
        mut claim: impl FnMut(usize, &str) -> Claim,
        alternate: impl Fn(usize) -> Option<Option<Allocations>>,
    ) -> Result<Decision> {
        let mut req = req.clone();
        let resources = req.resources();
        let n = uuids.len();
        let num_alts = if self.config.return_alternates {
            self.config.max_attempts.saturating_sub(1)
        } else {
            0
        };
        let mut rounds = Vec::new();
        let mut selected: Vec<(usize, Option<Allocations>)> = Vec::new();
        let mut saved: Vec<(usize, HostState)> = Vec::new();
        let mut failure = None;
        'instances: for (i, uuid) in uuids.iter().enumerate() {
            let sorted = self.sorted_hosts(&req, &resources, &hosts, i, uuid, &mut rounds);
            let mut chosen = None;
            for &h in &sorted {
                match claim(h, uuid) {
                    Claim::Taken(a) => {
                        chosen = Some((h, a));
                        break;
                    }
                    Claim::Skip => {}
                    Claim::Abort(e) => {
                        failure = Some(e);
                        break 'instances;
                    }
                }
            }
            let Some((h, a)) = chosen else {
                break;
            };
            if !saved.iter().any(|(j, _)| *j == h) {
                saved.push((h, self.hosts[h].clone()));
            }
            self.consume_for(h, &mut req, uuid);
            selected.push((h, a));
            hosts = sorted;
        }
        if selected.len() < n || failure.is_some() {
            self.restore(saved);
            let filter = rounds
                .last()
                .and_then(|r| r.filter_counts.iter().find(|c| c.end == 0))
                .map(|c| c.filter.to_owned());
            self.last_rounds = rounds;
            return Err(failure.unwrap_or(Error::NoValidHost {
                reason: "There are not enough hosts available.".into(),
                filter,
                placed: selected.len(),
                requested: n,
            }));
        }
        if n > 1 && num_alts > 0 {
            hosts = self.sorted_hosts(&req, &resources, &hosts, n - 1, &uuids[n - 1], &mut rounds);
        }
        let chosen: Vec<usize> = selected.iter().map(|(h, _)| *h).collect();
        let selections = selected
            .into_iter()
            .map(|(s, alloc)| {
                let cell = &self.hosts[s].cell_uuid;
                let mut v = vec![Selection {
                    allocation_request: alloc,
                    ..self.selection(s)
                }];
                for &h in &hosts {
                    if v.len() > num_alts {
                        break;
                    }
                    if self.hosts[h].cell_uuid == *cell
                        && !chosen.contains(&h)
                        && let Some(a) = alternate(h)
                    {
                        v.push(Selection {
                            allocation_request: a,
                            ..self.selection(h)
                        });
                    }
                }
                v
            })
            .collect();
        Ok(Decision { selections, rounds })
    }
}
