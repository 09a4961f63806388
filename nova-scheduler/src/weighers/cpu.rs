//! `CPUWeigher`: free vCPUs after overcommit.

crate::weighers::host_weigher!(
    /// Nova's `CPUWeigher`: `vcpus_total * cpu_allocation_ratio - vcpus_used`.
    CPUWeigher, "CPUWeigher", cpu_weight_multiplier, minval = Some(0.0),
    |h, _c| h.vcpus_total as f64 * h.cpu_allocation_ratio - h.vcpus_used as f64
);
