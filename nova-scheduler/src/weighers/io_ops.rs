//! `IoOpsWeigher`: I/O-heavy instances (the default multiplier -1.0 prefers idle hosts).

crate::weighers::host_weigher!(
    /// Nova's `IoOpsWeigher`.
    IoOpsWeigher, "IoOpsWeigher", io_ops_weight_multiplier, minval = Some(0.0),
    |h, _c| h.num_io_ops as f64
);
