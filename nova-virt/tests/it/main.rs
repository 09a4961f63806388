//! Integration tests of nova-virt through its public API: one contract
//! suite for every driver, plus each driver's own checks.
#![allow(clippy::unwrap_used)]

mod contract;
mod fake;
#[cfg(feature = "libvirt")]
mod libvirt;
#[cfg(feature = "libvirt")]
mod libvirt_live;
