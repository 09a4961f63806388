//! `NumInstancesFilter` and `AggregateNumInstancesFilter`: fewer than
//! `max_instances_per_host` instances (per aggregate: the minimum of the
//! aggregates' `max_instances_per_host`).

use super::{FilterContext, HostFilter};
use crate::host_state::HostState;

/// Nova's `NumInstancesFilter` (`per_aggregate`: `AggregateNumInstancesFilter`).
#[derive(Debug)]
pub struct NumInstancesFilter {
    /// Read the limit from aggregate metadata.
    pub per_aggregate: bool,
}

impl HostFilter for NumInstancesFilter {
    fn name(&self) -> &'static str {
        if self.per_aggregate {
            "AggregateNumInstancesFilter"
        } else {
            "NumInstancesFilter"
        }
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        let default = ctx.config.max_instances_per_host;
        let max = if self.per_aggregate {
            ctx.num_from_aggregates(host, "max_instances_per_host", default)
        } else {
            default
        };
        host.num_instances < max
    }
}
