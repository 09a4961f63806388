//! `IoOpsFilter` and `AggregateIoOpsFilter`: fewer than
//! `max_io_ops_per_host` I/O-heavy instances.

use super::{FilterContext, HostFilter};
use crate::host_state::HostState;

/// Nova's `IoOpsFilter` (`per_aggregate`: `AggregateIoOpsFilter`).
#[derive(Debug)]
pub struct IoOpsFilter {
    /// Read the limit from aggregate metadata.
    pub per_aggregate: bool,
}

impl HostFilter for IoOpsFilter {
    fn name(&self) -> &'static str {
        if self.per_aggregate {
            "AggregateIoOpsFilter"
        } else {
            "IoOpsFilter"
        }
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        let default = ctx.config.max_io_ops_per_host;
        let max = if self.per_aggregate {
            ctx.num_from_aggregates(host, "max_io_ops_per_host", default)
        } else {
            default
        };
        host.num_io_ops < max
    }
}
