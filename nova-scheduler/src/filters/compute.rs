//! `ComputeFilter`: the host's compute service is enabled and up.

use super::{FilterContext, HostFilter};
use crate::host_state::HostState;

/// Nova's `ComputeFilter` (service group `is_up`: not forced down, last
/// heartbeat within `service_down_time`).
#[derive(Debug)]
pub struct ComputeFilter;

impl HostFilter for ComputeFilter {
    fn name(&self) -> &'static str {
        "ComputeFilter"
    }
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        let s = &host.service;
        !s.disabled
            && !s.forced_down
            && s.seconds_since_heartbeat.abs() <= ctx.config.service_down_time
    }
}
