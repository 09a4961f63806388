//! `BuildFailureWeigher`: hosts that recently failed builds go last.

use crate::filters::FilterContext;
use crate::host_state::HostState;
use crate::weighers::{HostWeigher, multiplier_for};

/// Nova's `BuildFailureWeigher` (the multiplier is applied negatively).
#[derive(Debug)]
pub struct BuildFailureWeigher;

impl HostWeigher for BuildFailureWeigher {
    fn name(&self) -> &'static str {
        "BuildFailureWeigher"
    }
    fn weigh(&self, host: &HostState, _ctx: &FilterContext<'_>) -> f64 {
        host.failed_builds as f64
    }
    fn multiplier(&self, host: &HostState, ctx: &FilterContext<'_>) -> f64 {
        -multiplier_for(
            host,
            ctx,
            "build_failure_weight_multiplier",
            ctx.config.build_failure_weight_multiplier,
        )
    }
}
