//! `AggregateTypeAffinityFilter`: aggregate metadata `instance_type` limits
//! the flavors its hosts take.

use super::{FilterContext, HostFilter};
use crate::host_state::HostState;

/// Nova's `AggregateTypeAffinityFilter`.
#[derive(Debug)]
pub struct AggregateTypeAffinityFilter;

impl HostFilter for AggregateTypeAffinityFilter {
    fn name(&self) -> &'static str {
        "AggregateTypeAffinityFilter"
    }
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        let flavor = ctx.request.flavor.name.as_str();
        let mut any = false;
        for v in ctx.values_of(host, "instance_type") {
            any = true;
            if v.split(',').any(|x| x.trim() == flavor) {
                return true;
            }
        }
        !any
    }
}
