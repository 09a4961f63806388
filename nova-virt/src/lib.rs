//! The hypervisor side of nova-compute: the [`ComputeDriver`] contract,
//! [`FakeDriver`] (in memory, fault injection, a thousand nodes per
//! process) and, with feature `libvirt`, `LibvirtDriver` (KVM/QEMU through
//! libvirt).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use nova_virt::{ComputeDriver, FakeDriver, InstanceSpec, PowerState};
//!
//! let driver = FakeDriver::default();
//! let spec = InstanceSpec { uuid: "vm-1".into(), vcpus: 2, memory_mb: 512, ..Default::default() };
//! driver.spawn(&spec).await?;
//! assert_eq!(driver.get_info("vm-1").await?.state, PowerState::Running);
//! driver.power_off("vm-1", std::time::Duration::from_secs(1)).await?;
//! assert_eq!(driver.get_info("vm-1").await?.state, PowerState::Shutdown);
//! # Ok::<(), nova_virt::Error>(()) }).unwrap();
//! ```
#![deny(missing_docs)]

mod driver;
mod error;
mod fake;
#[cfg(feature = "libvirt")]
pub mod libvirt;

pub use driver::{
    BlockDevice, Capabilities, ComputeDriver, Console, CpuDiagnostics, Diagnostics,
    DiskDiagnostics, EventSink, HostResources, InjectedFile, InstanceInfo, InstanceSpec,
    LifecycleEvent, NicDiagnostics, PowerState, ResizeTarget, ResourceInventory, Transition, Vif,
};
pub use error::{Error, Result};
pub use fake::{FakeConfig, FakeDriver, Faults};
