//! Host filters with nova's semantics, one per file.

mod affinity;
mod aggregate_image_properties_isolation;
mod aggregate_instance_extra_specs;
mod aggregate_multitenancy_isolation;
mod all_hosts;
mod compute;
mod compute_capabilities;
mod emulated;
mod image_properties;
mod io_ops;
mod isolated_hosts;
mod json;
mod metrics;
mod num_instances;
mod simple_cidr_affinity;
mod type_affinity;

pub use affinity::{
    DifferentHostFilter, SameHostFilter, ServerGroupAffinityFilter, ServerGroupAntiAffinityFilter,
};
pub use aggregate_image_properties_isolation::AggregateImagePropertiesIsolation;
pub use aggregate_instance_extra_specs::AggregateInstanceExtraSpecsFilter;
pub use aggregate_multitenancy_isolation::AggregateMultiTenancyIsolation;
pub use all_hosts::AllHostsFilter;
pub use compute::ComputeFilter;
pub use compute_capabilities::ComputeCapabilitiesFilter;
pub use emulated::{AvailabilityZoneFilter, PlacementFilter, ResourceFilter};
pub use image_properties::ImagePropertiesFilter;
pub use io_ops::IoOpsFilter;
pub use isolated_hosts::IsolatedHostsFilter;
pub use json::JsonFilter;
pub use metrics::MetricsFilter;
pub use num_instances::NumInstancesFilter;
pub use simple_cidr_affinity::SimpleCIDRAffinityFilter;
pub use type_affinity::AggregateTypeAffinityFilter;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::config::SchedulerConfig;
use crate::host_state::{Aggregate, HostState};
use crate::request::{Request, ResourceRequest};

/// What a filter sees besides the host: the request and its derived values.
#[derive(Debug)]
pub struct FilterContext<'a> {
    /// The request.
    pub request: &'a Request,
    /// Its resources and traits.
    pub resources: &'a ResourceRequest,
    /// The configuration.
    pub config: &'a SchedulerConfig,
    /// All aggregates (hosts refer to them by index).
    pub aggregates: &'a [Aggregate],
    /// Which instance of the request is being placed (0-based).
    pub index: usize,
    /// The instance being placed.
    pub instance_uuid: &'a str,
    /// Values derived from the request once per round.
    pub cache: RoundCache,
}

/// Per-request values filters derive once per round instead of per host.
#[derive(Debug, Default)]
pub struct RoundCache {
    /// ImagePropertiesFilter: canonical (arch, hypervisor type, VM mode).
    pub(crate) image_wanted: std::cell::OnceCell<[Option<String>; 3]>,
    /// AvailabilityZoneFilter: which aggregates are in the requested AZ.
    pub(crate) az_aggregates: std::cell::OnceCell<Vec<bool>>,
    /// ComputeCapabilitiesFilter: the extra specs it checks, as
    /// (scope path, requirement, unscoped).
    pub(crate) capabilities: std::cell::OnceCell<Vec<(Vec<String>, String, bool)>>,
    /// PlacementFilter: requested classes other than the node's own.
    pub(crate) other_resources: std::cell::OnceCell<Vec<(String, i64)>>,
    /// Requested VCPU, PCPU, MEMORY_MB, DISK_GB.
    pub(crate) standard_amounts: std::cell::OnceCell<[i64; 4]>,
}

impl FilterContext<'_> {
    /// The aggregates of `host`.
    pub fn aggregates_of<'h>(
        &'h self,
        host: &'h HostState,
    ) -> impl Iterator<Item = &'h Aggregate> + 'h {
        host.aggregates
            .iter()
            .filter_map(|&a| self.aggregates.get(a))
    }

    /// Nova's `aggregate_metadata_get_by_host`, as a lookup: every value of
    /// `key` in the host's aggregates (comma-separated values split and
    /// trimmed), without building the map.
    pub fn metadata_values<'h>(
        &'h self,
        host: &'h HostState,
        key: &'h str,
    ) -> impl Iterator<Item = &'h str> + 'h {
        self.aggregates_of(host)
            .filter_map(move |a| a.metadata.get(key))
            .flat_map(|v| v.split(',').map(str::trim))
    }

    /// Nova's `aggregate_metadata_get_by_host` (key → values), for filters
    /// that look at every key.
    pub fn metadata_of<'h>(&'h self, host: &'h HostState) -> BTreeMap<&'h str, BTreeSet<&'h str>> {
        let mut out: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for agg in self.aggregates_of(host) {
            for (k, v) in &agg.metadata {
                out.entry(k.as_str())
                    .or_default()
                    .extend(v.split(',').map(str::trim));
            }
        }
        out
    }

    /// Nova's `aggregate_values_from_key`: the raw values of `key` in the
    /// host's aggregates (duplicates possible; nova keeps a set).
    pub fn values_of<'h>(
        &'h self,
        host: &'h HostState,
        key: &'h str,
    ) -> impl Iterator<Item = &'h str> + 'h {
        self.aggregates_of(host)
            .filter_map(move |a| a.metadata.get(key).map(String::as_str))
    }

    /// The per-host value of a numeric option: the minimum of the host's
    /// aggregate values for `key`, else `default` (also when one does not parse).
    pub fn num_from_aggregates<T: std::str::FromStr + PartialOrd + Copy>(
        &self,
        host: &HostState,
        key: &str,
        default: T,
    ) -> T {
        min_or_default(
            self.values_of(host, key)
                .map(|v| v.trim().parse::<T>().ok()),
            default,
        )
    }
}

/// Nova's `validate_num_values(..., based_on=min)`: the smallest of the
/// values, `default` when there are none or one does not parse (`None`).
pub(crate) fn min_or_default<T: PartialOrd + Copy>(
    values: impl Iterator<Item = Option<T>>,
    default: T,
) -> T {
    let mut best: Option<T> = None;
    for v in values {
        let Some(x) = v else {
            return default;
        };
        best = Some(best.map_or(x, |b| if x < b { x } else { b }));
    }
    best.unwrap_or(default)
}

/// A host filter: keeps the hosts a request may land on.
pub trait HostFilter: Send + Sync + fmt::Debug {
    /// Nova's class name (`ComputeFilter`).
    fn name(&self) -> &'static str;
    /// Evaluated only for the first instance of a multi-instance request.
    fn run_filter_once_per_request(&self) -> bool {
        false
    }
    /// Whether it runs on a rebuild (otherwise every host passes).
    fn run_on_rebuild(&self) -> bool {
        false
    }
    /// Not nova code: stands for a Placement or request-filter check.
    fn emulated(&self) -> bool {
        false
    }
    /// Whether `host` passes.
    fn host_passes(&self, host: &HostState, ctx: &FilterContext<'_>) -> bool;
}

/// The filter named `name` (nova's class names, plus the emulated
/// Placement checks `AvailabilityZoneFilter`, `CoreFilter`, `RamFilter`,
/// `DiskFilter`, `PlacementFilter`).
pub fn filter_by_name(name: &str, config: &SchedulerConfig) -> Option<Box<dyn HostFilter>> {
    Some(match name {
        "AllHostsFilter" => Box::new(all_hosts::AllHostsFilter),
        "ComputeFilter" => Box::new(compute::ComputeFilter),
        "ComputeCapabilitiesFilter" => Box::new(compute_capabilities::ComputeCapabilitiesFilter),
        "ImagePropertiesFilter" => Box::new(image_properties::ImagePropertiesFilter),
        "ServerGroupAntiAffinityFilter" => Box::new(affinity::ServerGroupAntiAffinityFilter),
        "ServerGroupAffinityFilter" => Box::new(affinity::ServerGroupAffinityFilter),
        "SameHostFilter" => Box::new(affinity::SameHostFilter),
        "DifferentHostFilter" => Box::new(affinity::DifferentHostFilter),
        "SimpleCIDRAffinityFilter" => Box::new(simple_cidr_affinity::SimpleCIDRAffinityFilter),
        "AggregateInstanceExtraSpecsFilter" => {
            Box::new(aggregate_instance_extra_specs::AggregateInstanceExtraSpecsFilter)
        }
        "AggregateMultiTenancyIsolation" => {
            Box::new(aggregate_multitenancy_isolation::AggregateMultiTenancyIsolation)
        }
        "AggregateImagePropertiesIsolation" => {
            Box::new(aggregate_image_properties_isolation::AggregateImagePropertiesIsolation)
        }
        "AggregateTypeAffinityFilter" => Box::new(type_affinity::AggregateTypeAffinityFilter),
        "NumInstancesFilter" => Box::new(num_instances::NumInstancesFilter {
            per_aggregate: false,
        }),
        "AggregateNumInstancesFilter" => Box::new(num_instances::NumInstancesFilter {
            per_aggregate: true,
        }),
        "IoOpsFilter" => Box::new(io_ops::IoOpsFilter {
            per_aggregate: false,
        }),
        "AggregateIoOpsFilter" => Box::new(io_ops::IoOpsFilter {
            per_aggregate: true,
        }),
        "IsolatedHostsFilter" => Box::new(isolated_hosts::IsolatedHostsFilter),
        "JsonFilter" => Box::new(json::JsonFilter),
        "MetricsFilter" => Box::new(metrics::MetricsFilter::new(config)),
        "AvailabilityZoneFilter" => Box::new(emulated::AvailabilityZoneFilter),
        "CoreFilter" => Box::new(emulated::ResourceFilter::core()),
        "RamFilter" => Box::new(emulated::ResourceFilter::ram()),
        "DiskFilter" => Box::new(emulated::ResourceFilter::disk()),
        "PlacementFilter" => Box::new(emulated::PlacementFilter),
        _ => return None,
    })
}
