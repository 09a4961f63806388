//! `NumInstancesWeigher`: instances on the host (off by default).

crate::weighers::host_weigher!(
    /// Nova's `NumInstancesWeigher`.
    NumInstancesWeigher, "NumInstancesWeigher", num_instances_weight_multiplier, minval = None,
    |h, _c| h.num_instances as f64
);
