//! `SimpleCIDRAffinityFilter`: hints `build_near_host_ip` + `cidr` (default
//! `/24`) → the host's IP is in that network.

use std::net::IpAddr;

use super::{FilterContext, HostFilter};
use crate::host_state::HostState;

/// Nova's `SimpleCIDRAffinityFilter`.
#[derive(Debug)]
pub struct SimpleCIDRAffinityFilter;

fn in_network(ip: IpAddr, net: IpAddr, prefix: u32) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) if prefix <= 32 => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) if prefix <= 128 => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

impl HostFilter for SimpleCIDRAffinityFilter {
    fn name(&self) -> &'static str {
        "SimpleCIDRAffinityFilter"
    }
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        let Some(near) = ctx.request.hint("build_near_host_ip") else {
            return true;
        };
        let cidr = ctx.request.hint("cidr").unwrap_or("/24");
        let (Ok(net), Some(Ok(prefix)), Ok(ip)) = (
            near.parse::<IpAddr>(),
            cidr.strip_prefix('/').map(str::parse::<u32>),
            host.host_ip.parse::<IpAddr>(),
        ) else {
            return false;
        };
        in_network(ip, net, prefix)
    }
}
