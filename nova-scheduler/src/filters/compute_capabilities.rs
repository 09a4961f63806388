//! `ComputeCapabilitiesFilter`: flavor extra specs (unscoped, or scoped
//! `capabilities:`) against the host's attributes and stats.

use serde_json::Value;

use super::{FilterContext, HostFilter};
use crate::extra_specs_ops;
use crate::host_state::{Attr, HostState, py_str};

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
        let specs = ctx.cache.capabilities.get_or_init(|| {
            let mut out = Vec::new();
            for (key, req) in &ctx.request.flavor.extra_specs {
                let (key, req) = if key == "hw:maxphysaddr_bits" {
                    (
                        "capabilities:cpu_info:maxphysaddr:bits",
                        format!(">= {req}"),
                    )
                } else {
                    (key.as_str(), req.clone())
                };
                let mut scope: Vec<String> = key.split(':').map(str::to_owned).collect();
                let unscoped = scope.len() == 1;
                if !unscoped {
                    if scope[0] != "capabilities" {
                        continue;
                    }
                    scope.remove(0);
                }
                out.push((scope, req, unscoped));
            }
            out
        });
        for (scope, req, unscoped) in specs {
            if scope.len() == 1 {
                let key = scope[0].as_str();
                // Unscoped keys apply only to attributes and stats the host has.
                let ok = match host.attr_ref(key) {
                    Some(Attr::Str(s)) => extra_specs_ops::matches(s, req),
                    Some(Attr::Int(i)) => extra_specs_ops::matches_number(i as f64, req)
                        .unwrap_or_else(|| extra_specs_ops::matches(&i.to_string(), req)),
                    Some(a @ (Attr::Float(_) | Attr::Json(_))) => {
                        let v = a.to_value();
                        !v.is_null() && extra_specs_ops::matches(&py_str(&v), req)
                    }
                    None => match host.stats.get(key) {
                        Some(s) => extra_specs_ops::matches(s, req),
                        // An unscoped key the host has no attribute for is not a capability.
                        None => *unscoped && !HostState::unmodelled_nova_attr(key),
                    },
                };
                if !ok {
                    return false;
                }
                continue;
            }
            let path: Vec<&str> = scope.iter().map(String::as_str).collect();
            let Some(cap) = capability(host, &path) else {
                return false;
            };
            if !extra_specs_ops::matches(&py_str(&cap), req) {
                return false;
            }
        }
        true
    }
}
