//! Server-group and instance affinity filters: `ServerGroupAffinityFilter`,
//! `ServerGroupAntiAffinityFilter`, `SameHostFilter`, `DifferentHostFilter`.

use super::{FilterContext, HostFilter};
use crate::host_state::HostState;

/// Nova's `ServerGroupAntiAffinityFilter`: at most `max_server_per_host`
/// (default 1) members of an `anti-affinity` group per host.
#[derive(Debug)]
pub struct ServerGroupAntiAffinityFilter;

impl HostFilter for ServerGroupAntiAffinityFilter {
    fn name(&self) -> &'static str {
        "ServerGroupAntiAffinityFilter"
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        let Some(g) = &ctx.request.group else {
            return true;
        };
        if g.policy != "anti-affinity" || host.instances.contains(ctx.instance_uuid) {
            return true;
        }
        let on_host = host
            .instances
            .iter()
            .filter(|u| g.members.contains(*u))
            .count() as i64;
        on_host < g.max_server_per_host.unwrap_or(1)
    }
}

/// Nova's `ServerGroupAffinityFilter`: an `affinity` group's hosts only
/// (any host while the group has none).
#[derive(Debug)]
pub struct ServerGroupAffinityFilter;

impl HostFilter for ServerGroupAffinityFilter {
    fn name(&self) -> &'static str {
        "ServerGroupAffinityFilter"
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        match &ctx.request.group {
            Some(g) if g.policy == "affinity" && !g.hosts.is_empty() => {
                g.hosts.contains(&host.host)
            }
            _ => true,
        }
    }
}

fn overlaps(host: &HostState, uuids: &[String]) -> bool {
    uuids.iter().any(|u| host.instances.contains(u))
}

/// Nova's `SameHostFilter`: hint `same_host` → a host running one of them.
#[derive(Debug)]
pub struct SameHostFilter;

impl HostFilter for SameHostFilter {
    fn name(&self) -> &'static str {
        "SameHostFilter"
    }
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        match ctx.request.scheduler_hints.get("same_host") {
            Some(u) if !u.is_empty() => overlaps(host, u),
            _ => true,
        }
    }
}

/// Nova's `DifferentHostFilter`: hint `different_host` → a host running none of them.
#[derive(Debug)]
pub struct DifferentHostFilter;

impl HostFilter for DifferentHostFilter {
    fn name(&self) -> &'static str {
        "DifferentHostFilter"
    }
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        match ctx.request.scheduler_hints.get("different_host") {
            Some(u) if !u.is_empty() => !overlaps(host, u),
            _ => true,
        }
    }
}
