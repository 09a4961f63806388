//! `AllHostsFilter`: passes every host.

use super::{FilterContext, HostFilter};
use crate::host_state::HostState;

/// Nova's `AllHostsFilter`.
#[derive(Debug)]
pub struct AllHostsFilter;

impl HostFilter for AllHostsFilter {
    fn name(&self) -> &'static str {
        "AllHostsFilter"
    }
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn host_passes(&self, _host: &HostState, _ctx: &FilterContext<'_>) -> bool {
        true
    }
}
