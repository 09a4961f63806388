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
        let metadata = ctx.metadata_of(host);
        let mut tenants = metadata
            .iter()
            .filter(|(k, _)| k.starts_with("filter_tenant_id"))
            .flat_map(|(_, v)| v.iter())
            .peekable();
        if tenants.peek().is_none() {
            return true;
        }
        let project = ctx.request.project_id.as_str();
        tenants.any(|t| *t == project)
    }
}
