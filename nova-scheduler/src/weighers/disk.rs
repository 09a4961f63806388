//! `DiskWeigher`: free disk.

crate::weighers::host_weigher!(
    /// Nova's `DiskWeigher` (free disk in MiB).
    DiskWeigher, "DiskWeigher", disk_weight_multiplier, minval = Some(0.0),
    |h, _c| h.free_disk_mb as f64
);
