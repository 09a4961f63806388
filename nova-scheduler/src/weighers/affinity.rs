//! Soft server-group weighers: members of a `soft-affinity` group attract,
//! members of a `soft-anti-affinity` group repel.

use crate::config::SchedulerConfig;
use crate::filters::FilterContext;
use crate::host_state::HostState;
use crate::weighers::HostWeigher;

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
    fn multiplier_option(&self, config: &SchedulerConfig) -> (&'static str, f64) {
        (
            "soft_affinity_weight_multiplier",
            config.soft_affinity_weight_multiplier,
        )
    }
    fn is_constant(&self, ctx: &FilterContext<'_>) -> bool {
        ctx.request
            .group
            .as_ref()
            .is_none_or(|g| g.policy != "soft-affinity")
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
    fn multiplier_option(&self, config: &SchedulerConfig) -> (&'static str, f64) {
        (
            "soft_anti_affinity_weight_multiplier",
            config.soft_anti_affinity_weight_multiplier,
        )
    }
    fn is_constant(&self, ctx: &FilterContext<'_>) -> bool {
        ctx.request
            .group
            .as_ref()
            .is_none_or(|g| g.policy != "soft-anti-affinity")
    }
}
