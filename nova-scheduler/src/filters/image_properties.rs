//! `ImagePropertiesFilter`: the image's architecture, hypervisor type, VM
//! mode and requested hypervisor version against what the host supports.

use std::cmp::Ordering;

use super::{FilterContext, HostFilter};
use crate::host_state::HostState;

/// Nova's `ImagePropertiesFilter`.
#[derive(Debug)]
pub struct ImagePropertiesFilter;

/// String equality without a library call (these are a few bytes long).
#[inline]
fn short_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

fn canonical_arch(a: &str) -> String {
    let a = a.to_ascii_lowercase();
    match a.as_str() {
        "i386" | "i486" | "i586" | "x86_32" | "x86_32p" => "i686".into(),
        "amd64" => "x86_64".into(),
        _ => a,
    }
}

fn canonical_hv(h: &str) -> String {
    let h = h.to_ascii_lowercase();
    if h == "xapi" { "xen".into() } else { h }
}

fn canonical_vm_mode(m: &str) -> String {
    let m = m.to_ascii_lowercase();
    match m.as_str() {
        "pv" => "xen".into(),
        "hv" | "baremetal" => "hvm".into(),
        _ => m,
    }
}

/// Nova's integer hypervisor version as dotted numbers (8002000 → [8, 2, 0]).
fn version_parts(mut v: i64) -> Vec<i64> {
    let mut out = Vec::new();
    while v != 0 {
        out.insert(0, v % 1000);
        v /= 1000;
    }
    out
}

fn parse_version(s: &str) -> Option<Vec<i64>> {
    s.trim().split('.').map(|p| p.parse::<i64>().ok()).collect()
}

fn cmp_versions(a: &[i64], b: &[i64]) -> Ordering {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            a.get(i)
                .copied()
                .unwrap_or(0)
                .cmp(&b.get(i).copied().unwrap_or(0))
        })
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}

/// oslo's `VersionPredicate(pred).satisfied_by(version)`: comma-separated
/// `<op> <version>` clauses, all of which must hold.
pub(crate) fn version_satisfies(predicate: &str, version: &[i64]) -> bool {
    predicate.split(',').all(|clause| {
        let c = clause.trim();
        let (op, v) = ["<=", ">=", "==", "!=", "<", ">"]
            .iter()
            .find_map(|op| c.strip_prefix(op).map(|rest| (*op, rest)))
            .unwrap_or(("", c));
        let Some(want) = parse_version(v) else {
            return false;
        };
        let o = cmp_versions(version, &want);
        match op {
            "<" => o == Ordering::Less,
            "<=" => o != Ordering::Greater,
            "==" => o == Ordering::Equal,
            "!=" => o != Ordering::Equal,
            ">" => o == Ordering::Greater,
            ">=" => o != Ordering::Less,
            _ => false,
        }
    })
}

impl HostFilter for ImagePropertiesFilter {
    fn name(&self) -> &'static str {
        "ImagePropertiesFilter"
    }
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn run_on_rebuild(&self) -> bool {
        true
    }
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool {
        let req = ctx.request;
        let wanted = ctx.cache.image_wanted.get_or_init(|| {
            let arch = req
                .image_prop("hw_architecture")
                .map(str::to_owned)
                .or_else(|| ctx.config.image_properties_default_architecture.clone())
                .map(|a| canonical_arch(&a));
            let hv = req.image_prop("img_hv_type").map(canonical_hv);
            let mode = req.image_prop("hw_vm_mode").map(canonical_vm_mode);
            [arch, hv, mode]
        });
        if wanted.iter().all(Option::is_none) {
            return true;
        }
        if host.supported_instances.is_empty() {
            return false;
        }
        let version_ok = || match req.image_prop("img_hv_requested_version") {
            Some(pred) if host.hypervisor_version != 0 => {
                version_satisfies(pred, &version_parts(host.hypervisor_version))
            }
            _ => true,
        };
        host.supported_instances.iter().any(|supported| {
            wanted
                .iter()
                .flatten()
                .all(|w| supported.iter().any(|s| short_eq(s, w)))
                && version_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypervisor_versions_compare_like_oslo() {
        assert_eq!(version_parts(8_002_000), vec![8, 2, 0]);
        assert!(version_satisfies(">=6.0", &[8, 2, 0]));
        assert!(!version_satisfies(">= 9.0", &[8, 2, 0]));
        assert!(version_satisfies(">=6.0,<9", &[8, 2, 0]));
        assert!(version_satisfies("==8.2", &[8, 2, 0]));
    }
}
