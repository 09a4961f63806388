//! `MetricsFilter`: the host reports every metric `[metrics] weight_setting` names.

use super::{FilterContext, HostFilter};
use crate::config::SchedulerConfig;
use crate::host_state::HostState;

/// Nova's `MetricsFilter`.
#[derive(Debug)]
pub struct MetricsFilter {
    keys: Vec<String>,
}

impl MetricsFilter {
    /// The filter for `config`'s weight setting.
    pub fn new(config: &SchedulerConfig) -> Self {
        MetricsFilter {
            keys: config
                .metrics_weight_setting
                .iter()
                .map(|(k, _)| k.clone())
                .collect(),
        }
    }
}

impl HostFilter for MetricsFilter {
    fn name(&self) -> &'static str {
        "MetricsFilter"
    }
    fn host_passes(&self, host: &HostState, _ctx: &FilterContext<'_>) -> bool {
        self.keys.iter().all(|k| host.metrics.contains_key(k))
    }
}
