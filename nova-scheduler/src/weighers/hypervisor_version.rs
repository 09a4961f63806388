//! `HypervisorVersionWeigher`: newer hypervisors first.

crate::weighers::host_weigher!(
    /// Nova's `HypervisorVersionWeigher`.
    HypervisorVersionWeigher, "HypervisorVersionWeigher", hypervisor_version_weight_multiplier,
    minval = None,
    |h, _c| h.hypervisor_version as f64
);
