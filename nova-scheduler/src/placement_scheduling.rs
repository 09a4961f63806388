//! `select_destinations` with Placement, as nova 34 does it: the request
//! becomes an allocation-candidates query (nova's request pre-filters
//! included), only hosts with candidates are filtered and weighed, and the
//! chosen host's candidate is claimed before the next instance is placed.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::placement::{Allocations, CandidatesRequest, Placement, PlacementError, RequestGroup};
use crate::request::Request;
use crate::scheduler::{Round, Scheduler, Selection};

/// The resource provider trait of disabled computes.
pub const COMPUTE_STATUS_DISABLED: &str = "COMPUTE_STATUS_DISABLED";

impl Scheduler {
    /// Nova's request pre-filters and `ResourceRequest`, as the
    /// allocation-candidates query: the unnumbered group (flavor and image
    /// resources and traits), the availability zone and (when configured)
    /// tenant aggregates as `member_of`, disabled computes forbidden, the
    /// image type required, isolated aggregates forbidden, and
    /// `max_placement_results` as the limit. `Err(NoValidHost)` when a
    /// pre-filter rules every host out (nova's `RequestFilterFailed`).
    pub fn candidates_request(&self, req: &Request) -> Result<CandidatesRequest> {
        let rr = req.resources();
        let cfg = self.config();
        let mut g = RequestGroup {
            resources: rr.resources.clone(),
            required_traits: rr.required_traits.clone(),
            forbidden_traits: rr.forbidden_traits.clone(),
            ..RequestGroup::default()
        };
        let aggs = self.aggregates();
        if cfg.limit_tenants_to_placement_aggregate {
            let tenant: BTreeSet<String> = aggs
                .iter()
                .filter(|a| {
                    a.metadata.iter().any(|(k, v)| {
                        k.starts_with("filter_tenant_id")
                            && v.split(',').any(|t| t.trim() == req.project_id)
                    })
                })
                .map(|a| a.uuid.clone())
                .collect();
            if !tenant.is_empty() {
                g.member_of.push(tenant);
            } else if cfg.placement_aggregate_required_for_tenants {
                return Err(Error::NoValidHost {
                    reason: format!("No aggregates are set up for project {}.", req.project_id),
                    filter: Some("require_tenant_aggregate".into()),
                    placed: 0,
                    requested: req.instance_uuids.len().max(1),
                });
            }
        }
        if let Some(az) = req.availability_zone.as_deref().filter(|a| !a.is_empty()) {
            let in_az: BTreeSet<String> = aggs
                .iter()
                .filter(|a| a.metadata.get("availability_zone").map(String::as_str) == Some(az))
                .map(|a| a.uuid.clone())
                .collect();
            if !in_az.is_empty() {
                g.member_of.push(in_az);
            }
        }
        if cfg.enable_isolated_aggregate_filtering {
            for a in aggs {
                let isolated = a.metadata.iter().any(|(k, v)| {
                    v == "required"
                        && k.strip_prefix("trait:")
                            .is_some_and(|t| !rr.required_traits.contains(t))
                });
                if isolated {
                    g.forbidden_aggregates.insert(a.uuid.clone());
                }
            }
        }
        let mut out = CandidatesRequest {
            groups: vec![g],
            limit: Some(cfg.max_placement_results),
            ..CandidatesRequest::default()
        };
        out.root_forbidden.insert(COMPUTE_STATUS_DISABLED.into());
        if cfg.query_placement_for_image_type_support
            && let Some(f) = &req.image_disk_format
        {
            out.root_required
                .insert(format!("COMPUTE_IMAGE_TYPE_{}", f.to_ascii_uppercase()));
        }
        Ok(out)
    }

    /// `select_destinations` with Placement: candidates, filters, weighers,
    /// then for each instance a claim of the best host's candidate (the
    /// next host when a claim loses a race), with `max_attempts - 1`
    /// alternates that carry their own candidate. On `NoValidHost` every
    /// claim made for the request is released and no host state changes.
    pub fn select_destinations_with(
        &mut self,
        placement: &dyn Placement,
        req: &Request,
    ) -> Result<Vec<Vec<Selection>>> {
        let mut query = self.candidates_request(req)?;
        query.without_summaries = true; // only the requests are needed here
        let cands = placement
            .allocation_candidates(&query)
            .map_err(|e| Error::Config(format!("placement: {e}")))?;
        let n = req.instance_uuids.len().max(1);
        let no_host = |filter: Option<String>, placed: usize| Error::NoValidHost {
            reason: "There are not enough hosts available.".into(),
            filter,
            placed,
            requested: n,
        };
        if cands.is_empty() {
            return Err(no_host(Some("Placement".into()), 0));
        }
        // Each host with candidates: its first candidate (Placement's order).
        let mut first_candidate: Vec<u32> = vec![u32::MAX; self.hosts().len()];
        let mut hosts: Vec<usize> = Vec::with_capacity(cands.len());
        for c in 0..cands.len() {
            if let Some(h) = self.host_index_by_uuid(cands.root(c))
                && first_candidate[h] == u32::MAX
            {
                first_candidate[h] = c as u32;
                hosts.push(h);
            }
        }
        hosts.sort_unstable();
        let candidate_of = |h: usize| {
            (first_candidate[h] != u32::MAX).then(|| cands.allocations(first_candidate[h] as usize))
        };
        let mut req = req.clone();
        let uuids: Vec<String> = if req.instance_uuids.is_empty() {
            vec![crate::request::new_consumer_id()]
        } else {
            req.instance_uuids.clone()
        };
        let resources = req.resources();
        let num_alts = if self.config().return_alternates {
            self.config().max_attempts.saturating_sub(1)
        } else {
            0
        };
        let mut rounds: Vec<Round> = Vec::new();
        let mut selected: Vec<(usize, Allocations)> = Vec::new();
        let mut claimed: Vec<String> = Vec::new();
        let mut saved = Vec::new();
        let mut failure = None;
        for (i, uuid) in uuids.iter().enumerate() {
            let sorted = self.sorted_hosts(&req, &resources, &hosts, i, uuid, &mut rounds);
            let mut chosen = None;
            for &h in &sorted {
                let Some(alloc) = candidate_of(h) else {
                    continue;
                };
                match placement.put_allocations(uuid, &alloc, &req.project_id, &req.user_id, None) {
                    Ok(_) => {
                        chosen = Some((h, alloc));
                        break;
                    }
                    Err(e) if e.is_conflict() => continue, // lost a race: the next host
                    Err(e @ PlacementError::BadRequest(_)) => {
                        failure = Some(Error::Config(format!("placement refused a claim: {e}")));
                        break;
                    }
                    Err(_) => continue,
                }
            }
            let Some((h, alloc)) = chosen else {
                break;
            };
            claimed.push(uuid.clone());
            if !saved.iter().any(|(j, _)| *j == h) {
                saved.push((h, self.hosts()[h].clone()));
            }
            self.consume_for(h, &mut req, uuid);
            selected.push((h, alloc));
            hosts = sorted;
        }
        if selected.len() < n || failure.is_some() {
            for c in &claimed {
                let _ = placement.delete_allocations(c);
            }
            self.restore(saved);
            if let Some(e) = failure {
                return Err(e);
            }
            let filter = rounds
                .last()
                .and_then(|r| r.filter_counts.iter().find(|c| c.end == 0))
                .map(|c| c.filter.to_owned());
            return Err(no_host(filter, selected.len()));
        }
        if n > 1 && num_alts > 0 {
            hosts = self.sorted_hosts(&req, &resources, &hosts, n - 1, &uuids[n - 1], &mut rounds);
        }
        let chosen: Vec<usize> = selected.iter().map(|(h, _)| *h).collect();
        Ok(selected
            .into_iter()
            .map(|(s, alloc)| {
                let cell = self.hosts()[s].cell_uuid.clone();
                let mut first = self.selection(s);
                first.allocation_request = Some(alloc);
                let mut v = vec![first];
                for &h in &hosts {
                    if v.len() > num_alts {
                        break;
                    }
                    if self.hosts()[h].cell_uuid == cell && !chosen.contains(&h) {
                        let Some(a) = candidate_of(h) else {
                            continue;
                        };
                        let mut alt = self.selection(h);
                        alt.allocation_request = Some(a);
                        v.push(alt);
                    }
                }
                v
            })
            .collect())
    }
}
