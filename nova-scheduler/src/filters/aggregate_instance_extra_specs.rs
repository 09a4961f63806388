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
        for (key, req) in specs {
            let key = match key.split_once(':') {
                Some(("aggregate_instance_extra_specs", k)) => k,
                Some(_) => continue,
                None => key.as_str(),
            };
            let mut any_value = false;
            let mut matched = false;
            for v in ctx.metadata_values(host, key) {
                any_value = true;
                if extra_specs_ops::matches(v, req) {
                    matched = true;
                    break;
                }
            }
            if !any_value || !matched {
                return false;
            }
        }
        true
    }
}
