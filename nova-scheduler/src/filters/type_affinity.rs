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
        let values = ctx.values_of(host, "instance_type");
        let flavor = ctx.request.flavor.name.as_str();
        values.is_empty()
            || values
                .iter()
                .any(|v| v.split(',').any(|x| x.trim() == flavor))
    }
}
