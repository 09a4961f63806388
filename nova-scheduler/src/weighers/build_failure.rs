//! `BuildFailureWeigher`: hosts that recently failed builds go last.

use crate::config::SchedulerConfig;
use crate::filters::FilterContext;
use crate::host_state::HostState;
use crate::weighers::HostWeigher;

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
    fn multiplier_option(&self, config: &SchedulerConfig) -> (&'static str, f64) {
        (
            "build_failure_weight_multiplier",
            config.build_failure_weight_multiplier,
        )
    }
    fn multiplier_sign(&self) -> f64 {
        -1.0
    }
}
