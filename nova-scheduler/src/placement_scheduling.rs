//! `select_destinations` with Placement, as nova 34 does it: the request
//! becomes an allocation-candidates query (nova's request pre-filters
//! included), only hosts with candidates are filtered and weighed, and the
//! chosen host's candidate is claimed before the next instance is placed.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::placement::{CandidatesRequest, Placement, PlacementError, RequestGroup};
use crate::request::Request;
use crate::scheduler::{Claim, Scheduler, Selection};

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
        self.select_destinations_known(placement, req, |_| true)
    }

    /// [`Scheduler::select_destinations_with`], asking first about
    /// candidates whose root provider is no host of this scheduler's (they
    /// are left out of the choice): when `accept(&providers)` says no,
    /// nothing is claimed and the answer is [`Error::UnknownHosts`], so that
    /// a caller whose host view may be older than Placement can reload it
    /// and ask again. `accept` is not called when every root is known.
    pub fn select_destinations_known(
        &mut self,
        placement: &dyn Placement,
        req: &Request,
        accept: impl FnOnce(&[String]) -> bool,
    ) -> Result<Vec<Vec<Selection>>> {
        let mut query = self.candidates_request(req)?;
        query.without_summaries = true; // only the requests are needed here
        let cands = placement
            .allocation_candidates(&query)
            .map_err(|e| match e {
                PlacementError::Unavailable(_) => Error::Placement(e),
                e => Error::Config(format!("placement: {e}")),
            })?;
        if cands.is_empty() {
            return Err(Error::NoValidHost {
                reason: "There are not enough hosts available.".into(),
                filter: Some("Placement".into()),
                placed: 0,
                requested: req.instance_uuids.len().max(1),
            });
        }
        // Each host with candidates: its first candidate (Placement's order).
        let mut first_candidate: Vec<u32> = vec![u32::MAX; self.hosts().len()];
        let mut hosts: Vec<usize> = Vec::with_capacity(cands.len());
        let mut unknown: Vec<String> = Vec::new();
        for c in 0..cands.len() {
            match self.host_index_by_uuid(cands.root(c)) {
                Some(h) if first_candidate[h] == u32::MAX => {
                    first_candidate[h] = c as u32;
                    hosts.push(h);
                }
                Some(_) => {}
                None => {
                    let root = cands.root(c);
                    if !unknown.iter().any(|u| **u == **root) {
                        unknown.push(root.to_string());
                    }
                }
            }
        }
        if !unknown.is_empty() && !accept(&unknown) {
            return Err(Error::UnknownHosts { providers: unknown });
        }
        hosts.sort_unstable();
        let candidate_of = |h: usize| {
            (first_candidate[h] != u32::MAX).then(|| cands.allocations(first_candidate[h] as usize))
        };
        let uuids: Vec<String> = if req.instance_uuids.is_empty() {
            vec![crate::request::new_consumer_id()]
        } else {
            req.instance_uuids.clone()
        };
        let mut claimed: Vec<String> = Vec::new();
        let claim = |h: usize, uuid: &str| {
            let Some(alloc) = candidate_of(h) else {
                return Claim::Skip;
            };
            match placement.put_allocations(uuid, &alloc, &req.project_id, &req.user_id, None) {
                Ok(_) => {
                    claimed.push(uuid.to_owned());
                    Claim::Taken(Some(alloc))
                }
                // A lost race (or any refusal of this host): the next host.
                Err(PlacementError::BadRequest(e)) => {
                    Claim::Abort(Error::Config(format!("placement refused a claim: {e}")))
                }
                // An outage is no reason to try the next host.
                Err(e @ PlacementError::Unavailable(_)) => Claim::Abort(Error::Placement(e)),
                Err(_) => Claim::Skip,
            }
        };
        let out = self.place(req, hosts, &uuids, claim, |h| candidate_of(h).map(Some));
        if out.is_err() {
            for c in &claimed {
                let _ = placement.delete_allocations(c);
            }
        }
        out.map(|d| d.selections)
    }
}
