//! Checks that nova 34 makes in Placement and its request filters, before
//! the host filters run, as filters (`emulated`): the availability zone
//! (`map_az_to_placement_aggregate` + `member_of`), VCPU/PCPU, MEMORY_MB
//! and DISK_GB capacity, and the rest of `GET /allocation_candidates`
//! (other resource classes, required and forbidden traits, disabled
//! computes). They let one scheduler run without a Placement service and
//! give decisions comparable with the oracle's emulation.

use super::{FilterContext, HostFilter};
use crate::host_state::HostState;

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
        let in_az = |i: &usize| {
            ctx.aggregates.get(*i).is_some_and(|a| {
                a.metadata.get("availability_zone").map(String::as_str) == Some(az)
            })
        };
        let any_az = (0..ctx.aggregates.len()).any(|i| in_az(&i));
        !any_az || host.aggregates.iter().any(in_az)
    }
}

/// Placement capacity of some standard resource classes.
#[derive(Debug)]
pub struct ResourceFilter {
    name: &'static str,
    classes: &'static [&'static str],
}

impl ResourceFilter {
    /// VCPU and PCPU.
    pub fn core() -> Self {
        ResourceFilter {
            name: "CoreFilter",
            classes: &["VCPU", "PCPU"],
        }
    }
    /// MEMORY_MB.
    pub fn ram() -> Self {
        ResourceFilter {
            name: "RamFilter",
            classes: &["MEMORY_MB"],
        }
    }
    /// DISK_GB.
    pub fn disk() -> Self {
        ResourceFilter {
            name: "DiskFilter",
            classes: &["DISK_GB"],
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
        self.classes
            .iter()
            .all(|rc| match ctx.resources.resources.get(*rc) {
                Some(&amount) if amount > 0 => host.inventory(rc).is_some_and(|i| i.fits(amount)),
                _ => true,
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
        let fits = r.resources.iter().all(|(rc, &amount)| {
            matches!(rc.as_str(), "VCPU" | "PCPU" | "MEMORY_MB" | "DISK_GB")
                || amount <= 0
                || host.inventory(rc).is_some_and(|i| i.fits(amount))
        });
        fits && r.required_traits.iter().all(|t| host.traits.contains(t))
            && !r.forbidden_traits.iter().any(|t| host.traits.contains(t))
    }
}
