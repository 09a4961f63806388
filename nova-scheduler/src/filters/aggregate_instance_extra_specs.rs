//! `AggregateInstanceExtraSpecsFilter`: flavor extra specs (unscoped or
//! `aggregate_instance_extra_specs:`) must match the host's aggregate metadata.

use super::{FilterContext, HostFilter};
use crate::extra_specs_ops;
use crate::host_state::HostState;

/// Nova's `AggregateInstanceExtraSpecsFilter`.
#[derive(Debug)]
pub struct AggregateInstanceExtraSpecsFilter;

impl HostFilter for AggregateInstanceExtraSpecsFilter {
    fn name(&self) -> &'static str {
        "AggregateInstanceExtraSpecsFilter"
    }
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        let specs = &ctx.request.flavor.extra_specs;
        if specs.is_empty() {
            return true;
        }
        let metadata = ctx.metadata_of(host);
        for (key, req) in specs {
            let key = match key.split_once(':') {
                Some(("aggregate_instance_extra_specs", k)) => k,
                Some(_) => continue,
                None => key.as_str(),
            };
            let Some(values) = metadata.get(key).filter(|v| !v.is_empty()) else {
                return false;
            };
            if !values.iter().any(|v| extra_specs_ops::matches(v, req)) {
                return false;
            }
        }
        true
    }
}
