//! Checks that nova 34 makes in Placement and its request filters, before
//! the host filters run, as filters (`emulated`): the availability zone
//! (`map_az_to_placement_aggregate` + `member_of`), VCPU/PCPU, MEMORY_MB
//! and DISK_GB capacity, and the rest of `GET /allocation_candidates`
//! (other resource classes, required and forbidden traits, disabled
//! computes). They let one scheduler run without a Placement service and
//! give decisions comparable with the oracle's emulation.

use super::{FilterContext, HostFilter};
use crate::host_state::HostState;
use crate::request::STANDARD_CLASSES;

/// Availability zone → aggregates with that `availability_zone` metadata.
#[derive(Debug)]
pub struct AvailabilityZoneFilter;

impl HostFilter for AvailabilityZoneFilter {
    fn name(&self) -> &'static str {
        "AvailabilityZoneFilter"
    }
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn emulated(&self) -> bool {
        true
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        let Some(az) = ctx
            .request
            .availability_zone
            .as_deref()
            .filter(|a| !a.is_empty())
        else {
            return true;
        };
        let in_az = ctx.cache.az_aggregates.get_or_init(|| {
            ctx.aggregates
                .iter()
                .map(|a| a.metadata.get("availability_zone").map(String::as_str) == Some(az))
                .collect()
        });
        !in_az.iter().any(|b| *b)
            || host
                .aggregates
                .iter()
                .any(|&i| in_az.get(i).copied().unwrap_or(false))
    }
}

/// Placement capacity of some standard resource classes.
#[derive(Debug)]
pub struct ResourceFilter {
    name: &'static str,
    /// Indices into [`STANDARD_CLASSES`].
    classes: &'static [usize],
}

impl ResourceFilter {
    /// VCPU and PCPU.
    pub fn core() -> Self {
        ResourceFilter {
            name: "CoreFilter",
            classes: &[0, 1],
        }
    }
    /// MEMORY_MB.
    pub fn ram() -> Self {
        ResourceFilter {
            name: "RamFilter",
            classes: &[2],
        }
    }
    /// DISK_GB.
    pub fn disk() -> Self {
        ResourceFilter {
            name: "DiskFilter",
            classes: &[3],
        }
    }
}

impl HostFilter for ResourceFilter {
    fn name(&self) -> &'static str {
        self.name
    }
    fn emulated(&self) -> bool {
        true
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        let amounts = ctx
            .cache
            .standard_amounts
            .get_or_init(|| ctx.resources.standard_amounts());
        self.classes.iter().all(|&c| {
            let amount = amounts[c];
            amount <= 0
                || host
                    .inventory(STANDARD_CLASSES[c])
                    .is_some_and(|i| i.fits(amount))
        })
    }
}

/// The rest of allocation candidates: other resource classes, traits,
/// and `COMPUTE_STATUS_DISABLED` forbidden (disabled computes).
#[derive(Debug)]
pub struct PlacementFilter;

impl HostFilter for PlacementFilter {
    fn name(&self) -> &'static str {
        "PlacementFilter"
    }
    fn emulated(&self) -> bool {
        true
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        if host.service.disabled || host.traits.contains("COMPUTE_STATUS_DISABLED") {
            return false;
        }
        let r = ctx.resources;
        let others = ctx.cache.other_resources.get_or_init(|| {
            r.resources
                .iter()
                .filter(|(rc, n)| **n > 0 && !STANDARD_CLASSES.contains(&rc.as_str()))
                .map(|(rc, n)| (rc.clone(), *n))
                .collect()
        });
        let fits = others
            .iter()
            .all(|(rc, amount)| host.inventory(rc).is_some_and(|i| i.fits(*amount)));
        fits && r.required_traits.iter().all(|t| host.traits.contains(t))
            && !r.forbidden_traits.iter().any(|t| host.traits.contains(t))
    }
}
