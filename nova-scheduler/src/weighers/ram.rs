//! `RAMWeigher`: free RAM (spread; a negative multiplier stacks).

crate::weighers::host_weigher!(
    /// Nova's `RAMWeigher`.
    RAMWeigher, "RAMWeigher", ram_weight_multiplier, minval = Some(0.0),
    |h, _c| h.free_ram_mb as f64
);
