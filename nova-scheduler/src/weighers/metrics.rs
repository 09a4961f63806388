//! `MetricsWeigher`: a weighted sum of the host's metrics.

use crate::config::SchedulerConfig;
use crate::filters::FilterContext;
use crate::host_state::HostState;
use crate::weighers::HostWeigher;

/// Nova's `MetricsWeigher` (`[metrics] weight_setting`). A host missing a
/// metric weighs `weight_of_unavailable`.
#[derive(Debug)]
pub struct MetricsWeigher;

impl HostWeigher for MetricsWeigher {
    fn name(&self) -> &'static str {
        "MetricsWeigher"
    }
    fn weigh(&self, host: &HostState, ctx: &FilterContext<'_>) -> f64 {
        let mut value = 0.0;
        for (name, ratio) in &ctx.config.metrics_weight_setting {
            match host.metrics.get(name) {
                Some(v) => value += v * ratio,
                None => {
                    if ctx.config.metrics_required || ratio * self.multiplier(host, ctx) != 0.0 {
                        return ctx.config.metrics_weight_of_unavailable;
                    }
                }
            }
        }
        value
    }
    fn is_constant(&self, ctx: &FilterContext<'_>) -> bool {
        ctx.config.metrics_weight_setting.is_empty()
    }
    fn multiplier_option(&self, config: &SchedulerConfig) -> (&'static str, f64) {
        (
            "metrics_weight_multiplier",
            config.metrics_weight_multiplier,
        )
    }
}
