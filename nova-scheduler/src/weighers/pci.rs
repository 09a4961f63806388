//! `PCIWeigher`: keeps hosts with PCI devices for requests that need them.

crate::weighers::host_weigher!(
    /// Nova's `PCIWeigher`: `100 - min(free PCI devices, 99)`; hosts
    /// without PCI pools all weigh the same. (PCI pools are not modelled
    /// yet: every host reports none.)
    PCIWeigher, "PCIWeigher", pci_weight_multiplier, minval = None, constant = |_c| true,
    |_h, _c| 100.0
);
