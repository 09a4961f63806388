//! `ComputeCapabilitiesFilter`: flavor extra specs (unscoped, or scoped
//! `capabilities:`) against the host's attributes and stats.

use serde_json::Value;

use super::{FilterContext, HostFilter};
use crate::extra_specs_ops;
use crate::host_state::{HostState, py_str};

/// Nova's `ComputeCapabilitiesFilter`.
#[derive(Debug)]
pub struct ComputeCapabilitiesFilter;

/// Walks `scope` from the host: attributes first, then stats; strings on
/// the way are parsed as JSON (`cpu_info`).
fn capability(host: &HostState, scope: &[&str]) -> Option<Value> {
    let mut cap: Option<Value> = None;
    for (i, key) in scope.iter().enumerate() {
        let next = if i == 0 {
            host.attr(key)
                .filter(|v| !v.is_null())
                .or_else(|| host.stats.get(*key).map(|s| Value::from(s.as_str())))
        } else {
            let cur = cap.take()?;
            let cur = match cur {
                Value::String(s) => serde_json::from_str::<Value>(&s).ok()?,
                other => other,
            };
            match cur {
                Value::Object(m) => m.get(*key).cloned(),
                _ => None,
            }
        };
        cap = Some(next.filter(|v| !v.is_null())?);
    }
    cap
}

impl HostFilter for ComputeCapabilitiesFilter {
    fn name(&self) -> &'static str {
        "ComputeCapabilitiesFilter"
    }
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        for (key, req) in &ctx.request.flavor.extra_specs {
            let (key, req) = if key == "hw:maxphysaddr_bits" {
                (
                    "capabilities:cpu_info:maxphysaddr:bits",
                    format!(">= {req}"),
                )
            } else {
                (key.as_str(), req.clone())
            };
            let mut scope: Vec<&str> = key.split(':').collect();
            if scope.len() == 1 {
                if !HostState::has_attr(key) && !host.stats.contains_key(key) {
                    continue;
                }
            } else if scope[0] != "capabilities" {
                continue;
            } else {
                scope.remove(0);
            }
            let Some(cap) = capability(host, &scope) else {
                return false;
            };
            if !extra_specs_ops::matches(&py_str(&cap), &req) {
                return false;
            }
        }
        true
    }
}
