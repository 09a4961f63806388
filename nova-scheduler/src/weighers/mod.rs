//! Host weighers with nova's math, one per file: raw weights clamped to
//! the weigher's bounds, normalised to [0, 1] over the candidates (fixed
//! lower bound where the weigher has one), multiplied by the per-host
//! multiplier (aggregate metadata `<name>_weight_multiplier` overrides the
//! option; the minimum wins) and summed in weigher order.

mod affinity;
mod build_failure;
mod cpu;
mod cross_cell;
mod disk;
mod hypervisor_version;
mod image_props;
mod io_ops;
mod metrics;
mod num_instances;
mod pci;
mod ram;

pub use affinity::{ServerGroupSoftAffinityWeigher, ServerGroupSoftAntiAffinityWeigher};
pub use build_failure::BuildFailureWeigher;
pub use cpu::CPUWeigher;
pub use cross_cell::CrossCellWeigher;
pub use disk::DiskWeigher;
pub use hypervisor_version::HypervisorVersionWeigher;
pub use image_props::ImagePropertiesWeigher;
pub use io_ops::IoOpsWeigher;
pub use metrics::MetricsWeigher;
pub use num_instances::NumInstancesWeigher;
pub use pci::PCIWeigher;
pub use ram::RAMWeigher;

use std::fmt;

use crate::config::SchedulerConfig;
use crate::filters::FilterContext;
use crate::host_state::HostState;

/// A host weigher.
pub trait HostWeigher: Send + Sync + fmt::Debug {
    /// Nova's class name (`RAMWeigher`).
    fn name(&self) -> &'static str;
    /// Lower clamp (and fixed lower bound of normalisation).
    fn minval(&self) -> Option<f64> {
        None
    }
    /// Upper clamp (and fixed upper bound of normalisation).
    fn maxval(&self) -> Option<f64> {
        None
    }
    /// The raw weight of `host`.
    fn weigh(&self, host: &HostState, ctx: &FilterContext<'_>) -> f64;
    /// The option (and aggregate metadata key) of the multiplier, and its
    /// configured value.
    fn multiplier_option(&self, config: &SchedulerConfig) -> (&'static str, f64);
    /// Applied to the multiplier (`BuildFailureWeigher`: -1).
    fn multiplier_sign(&self) -> f64 {
        1.0
    }
    /// Whether every host weighs the same for this request (the weigher
    /// then adds nothing and is skipped, as normalisation would make it 0).
    fn is_constant(&self, _ctx: &FilterContext<'_>) -> bool {
        false
    }
    /// The multiplier for `host`.
    fn multiplier(&self, host: &HostState, ctx: &FilterContext<'_>) -> f64 {
        let (option, default) = self.multiplier_option(ctx.config);
        self.multiplier_sign() * multiplier_for(host, ctx, option, default)
    }
}

/// `[filter_scheduler] <option>` for `host`, unless its aggregates set it.
pub(crate) fn multiplier_for(
    host: &HostState,
    ctx: &FilterContext<'_>,
    option: &str,
    default: f64,
) -> f64 {
    if host.aggregates.is_empty() {
        return default;
    }
    ctx.num_from_aggregates::<f64>(host, option, default)
}

/// The weigher named `name`.
pub fn weigher_by_name(name: &str) -> Option<Box<dyn HostWeigher>> {
    Some(match name {
        "RAMWeigher" => Box::new(ram::RAMWeigher),
        "CPUWeigher" => Box::new(cpu::CPUWeigher),
        "DiskWeigher" => Box::new(disk::DiskWeigher),
        "IoOpsWeigher" => Box::new(io_ops::IoOpsWeigher),
        "NumInstancesWeigher" => Box::new(num_instances::NumInstancesWeigher),
        "ServerGroupSoftAffinityWeigher" => Box::new(affinity::ServerGroupSoftAffinityWeigher),
        "ServerGroupSoftAntiAffinityWeigher" => {
            Box::new(affinity::ServerGroupSoftAntiAffinityWeigher)
        }
        "BuildFailureWeigher" => Box::new(build_failure::BuildFailureWeigher),
        "HypervisorVersionWeigher" => Box::new(hypervisor_version::HypervisorVersionWeigher),
        "CrossCellWeigher" => Box::new(cross_cell::CrossCellWeigher),
        "PCIWeigher" => Box::new(pci::PCIWeigher),
        "MetricsWeigher" => Box::new(metrics::MetricsWeigher),
        "ImagePropertiesWeigher" => Box::new(image_props::ImagePropertiesWeigher),
        _ => return None,
    })
}

/// Declares a weigher whose raw weight is one expression of the host.
macro_rules! host_weigher {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $option:ident, minval = $min:expr, |$h:ident, $c:ident| $raw:expr) => {
        crate::weighers::host_weigher!($(#[$doc])* $ty, $name, $option, minval = $min, constant = |_c| false, |$h, $c| $raw);
    };
    ($(#[$doc:meta])* $ty:ident, $name:literal, $option:ident, minval = $min:expr, constant = |$cc:ident| $constant:expr, |$h:ident, $c:ident| $raw:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $ty;

        impl crate::weighers::HostWeigher for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            fn minval(&self) -> Option<f64> {
                $min
            }
            fn weigh(&self, $h: &crate::host_state::HostState, $c: &crate::filters::FilterContext<'_>) -> f64 {
                $raw
            }
            fn multiplier_option(&self, config: &crate::config::SchedulerConfig) -> (&'static str, f64) {
                (stringify!($option), config.$option)
            }
            fn is_constant(&self, $cc: &crate::filters::FilterContext<'_>) -> bool {
                $constant
            }
        }
    };
}
pub(crate) use host_weigher;
