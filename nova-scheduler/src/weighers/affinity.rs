//! Soft server-group weighers: members of a `soft-affinity` group attract,
//! members of a `soft-anti-affinity` group repel.

use crate::filters::FilterContext;
use crate::host_state::HostState;
use crate::weighers::{HostWeigher, multiplier_for};

fn members_on_host(host: &HostState, ctx: &FilterContext<'_>, policy: &str) -> f64 {
    match &ctx.request.group {
        Some(g) if g.policy == policy => host
            .instances
            .iter()
            .filter(|u| g.members.contains(*u))
            .count() as f64,
        _ => 0.0,
    }
}

/// Nova's `ServerGroupSoftAffinityWeigher`.
#[derive(Debug)]
pub struct ServerGroupSoftAffinityWeigher;

impl HostWeigher for ServerGroupSoftAffinityWeigher {
    fn name(&self) -> &'static str {
        "ServerGroupSoftAffinityWeigher"
    }
    fn weigh(&self, host: &HostState, ctx: &FilterContext<'_>) -> f64 {
        members_on_host(host, ctx, "soft-affinity")
    }
    fn multiplier(&self, host: &HostState, ctx: &FilterContext<'_>) -> f64 {
        multiplier_for(
            host,
            ctx,
            "soft_affinity_weight_multiplier",
            ctx.config.soft_affinity_weight_multiplier,
        )
    }
}

/// Nova's `ServerGroupSoftAntiAffinityWeigher`.
#[derive(Debug)]
pub struct ServerGroupSoftAntiAffinityWeigher;

impl HostWeigher for ServerGroupSoftAntiAffinityWeigher {
    fn name(&self) -> &'static str {
        "ServerGroupSoftAntiAffinityWeigher"
    }
    fn weigh(&self, host: &HostState, ctx: &FilterContext<'_>) -> f64 {
        -members_on_host(host, ctx, "soft-anti-affinity")
    }
    fn multiplier(&self, host: &HostState, ctx: &FilterContext<'_>) -> f64 {
        multiplier_for(
            host,
            ctx,
            "soft_anti_affinity_weight_multiplier",
            ctx.config.soft_anti_affinity_weight_multiplier,
        )
    }
}
