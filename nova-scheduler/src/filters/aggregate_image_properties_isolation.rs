//! `AggregateImagePropertiesIsolation`: image properties that an aggregate
//! names in its metadata must have one of the aggregate's values.

use super::{FilterContext, HostFilter};
use crate::host_state::{HostState, py_str};

/// Nova's `AggregateImagePropertiesIsolation`.
#[derive(Debug)]
pub struct AggregateImagePropertiesIsolation;

impl HostFilter for AggregateImagePropertiesIsolation {
    fn name(&self) -> &'static str {
        "AggregateImagePropertiesIsolation"
    }
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn run_on_rebuild(&self) -> bool {
        true
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        let ns = ctx
            .config
            .aggregate_image_properties_isolation_namespace
            .as_deref();
        let sep = &ctx.config.aggregate_image_properties_isolation_separator;
        for (key, options) in ctx.metadata_of(host) {
            if let Some(ns) = ns.filter(|n| !n.is_empty())
                && !key.starts_with(&format!("{ns}{sep}"))
            {
                continue;
            }
            let Some(prop) = ctx.request.image_properties.get(key) else {
                continue;
            };
            let empty = prop.is_null()
                || prop.as_str() == Some("")
                || prop.as_array().is_some_and(Vec::is_empty)
                || prop.as_bool() == Some(false);
            if !empty && !options.contains(py_str(prop).as_str()) {
                return false;
            }
        }
        true
    }
}
