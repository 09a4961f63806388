//! `AggregateMultiTenancyIsolation`: hosts in aggregates with
//! `filter_tenant_id*` metadata only take those projects.

use super::{FilterContext, HostFilter};
use crate::host_state::HostState;

/// Nova's `AggregateMultiTenancyIsolation`.
#[derive(Debug)]
pub struct AggregateMultiTenancyIsolation;

impl HostFilter for AggregateMultiTenancyIsolation {
    fn name(&self) -> &'static str {
        "AggregateMultiTenancyIsolation"
    }
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        let project = ctx.request.project_id.as_str();
        let mut configured = false;
        for agg in ctx.aggregates_of(host) {
            for (k, v) in &agg.metadata {
                if k.starts_with("filter_tenant_id") {
                    for t in v.split(',').map(str::trim) {
                        if t == project {
                            return true;
                        }
                        configured = true;
                    }
                }
            }
        }
        !configured
    }
}
