//! `IsolatedHostsFilter`: `isolated_images` run only on `isolated_hosts`
//! (and, by default, those hosts run nothing else).

use super::{FilterContext, HostFilter};
use crate::host_state::HostState;

/// Nova's `IsolatedHostsFilter`.
#[derive(Debug)]
pub struct IsolatedHostsFilter;

impl HostFilter for IsolatedHostsFilter {
    fn name(&self) -> &'static str {
        "IsolatedHostsFilter"
    }
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn run_on_rebuild(&self) -> bool {
        true
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        let c = ctx.config;
        let host_isolated = c.isolated_hosts.contains(&host.host);
        if c.isolated_images.is_empty() {
            return !c.restrict_isolated_hosts_to_isolated_images || !host_isolated;
        }
        let image_isolated = c.isolated_images.contains(&ctx.request.image_id);
        if c.restrict_isolated_hosts_to_isolated_images {
            image_isolated == host_isolated
        } else {
            !image_isolated || host_isolated
        }
    }
}
