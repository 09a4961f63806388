//! The hypervisor driver `[DEFAULT] compute_driver` names.

use std::sync::Arc;

use nova_virt::ComputeDriver;

/// A fake hypervisor as `[DEFAULT] compute_driver` (`fake.FakeDriver`,
/// `fake.SmallFakeDriver`, `fake.MediumFakeDriver`) and `[fake]`
/// (`vcpus`, `memory_mb`, `local_gb`) describe it.
pub fn fake_driver(
    conf: &nova_service::Conf,
    hostname: &str,
) -> anyhow::Result<Arc<nova_virt::FakeDriver>> {
    let name = conf.str_or("DEFAULT", "compute_driver", "fake.FakeDriver");
    let mut c = nova_virt::FakeConfig {
        hypervisor_hostname: hostname.to_owned(),
        ..Default::default()
    };
    if name == "fake.SmallFakeDriver" {
        (c.vcpus, c.memory_mb, c.local_gb) = (2, 8192, 1028);
    } else if name == "fake.MediumFakeDriver" {
        (c.vcpus, c.memory_mb, c.local_gb) = (10, 8192, 1028);
    }
    c.vcpus = conf.parse_or("fake", "vcpus", c.vcpus)?;
    c.memory_mb = conf.parse_or("fake", "memory_mb", c.memory_mb)?;
    c.local_gb = conf.parse_or("fake", "local_gb", c.local_gb)?;
    c.console_host = conf.str_or("fake", "console_host", &c.console_host);
    c.vnc_port = conf.parse_or("fake", "vnc_port", c.vnc_port)?;
    c.spice_port = conf.parse_or("fake", "spice_port", c.spice_port)?;
    c.serial_port = conf.parse_or("fake", "serial_port", c.serial_port)?;
    c.reserved_host_memory_mb = conf.parse_or(
        "DEFAULT",
        "reserved_host_memory_mb",
        c.reserved_host_memory_mb,
    )?;
    c.cpu_allocation_ratio =
        conf.parse_or("DEFAULT", "cpu_allocation_ratio", c.cpu_allocation_ratio)?;
    c.ram_allocation_ratio =
        conf.parse_or("DEFAULT", "ram_allocation_ratio", c.ram_allocation_ratio)?;
    c.disk_allocation_ratio =
        conf.parse_or("DEFAULT", "disk_allocation_ratio", c.disk_allocation_ratio)?;
    Ok(Arc::new(nova_virt::FakeDriver::new(c)))
}

/// The driver `[DEFAULT] compute_driver` names: `fake.FakeDriver`, or
/// `libvirt.LibvirtDriver` (feature `libvirt`; `[libvirt]` options).
pub fn driver_from_conf(
    conf: &nova_service::Conf,
    hostname: &str,
) -> anyhow::Result<Arc<dyn ComputeDriver>> {
    let name = conf.str_or("DEFAULT", "compute_driver", "fake.FakeDriver");
    match name.as_str() {
        "fake.FakeDriver" | "fake.SmallFakeDriver" | "fake.MediumFakeDriver" => {
            Ok(fake_driver(conf, hostname)?)
        }
        #[cfg(feature = "libvirt")]
        "libvirt.LibvirtDriver" => {
            let d = nova_virt::libvirt::LibvirtConfig::default();
            let consoles = nova_service::consoles::ConsoleOptions::from_conf(conf)?;
            let c = nova_virt::libvirt::LibvirtConfig {
                connection_uri: conf.str_or("libvirt", "connection_uri", &d.connection_uri),
                virt_type: conf.str_or("libvirt", "virt_type", &d.virt_type),
                live_migration_uri: conf.str_or(
                    "libvirt",
                    "live_migration_uri",
                    &d.live_migration_uri,
                ),
                // nova's default: $state_path/instances.
                instances_path: conf.get("DEFAULT", "instances_path").map_or_else(
                    || {
                        std::path::PathBuf::from(conf.str_or(
                            "DEFAULT",
                            "state_path",
                            "/var/lib/nova",
                        ))
                        .join("instances")
                    },
                    Into::into,
                ),
                reserved_host_memory_mb: conf.parse_or(
                    "DEFAULT",
                    "reserved_host_memory_mb",
                    d.reserved_host_memory_mb,
                )?,
                cpu_allocation_ratio: conf.parse_or(
                    "DEFAULT",
                    "cpu_allocation_ratio",
                    d.cpu_allocation_ratio,
                )?,
                ram_allocation_ratio: conf.parse_or(
                    "DEFAULT",
                    "ram_allocation_ratio",
                    d.ram_allocation_ratio,
                )?,
                disk_allocation_ratio: conf.parse_or(
                    "DEFAULT",
                    "disk_allocation_ratio",
                    d.disk_allocation_ratio,
                )?,
                vnc_listen: consoles
                    .vnc_enabled
                    .then(|| consoles.vnc_server_listen.clone()),
                consoles: nova_virt::libvirt::ConsoleConfig {
                    vnc_proxyclient_address: consoles.vnc_proxyclient_address.clone(),
                    spice_listen: consoles
                        .spice_enabled
                        .then(|| consoles.spice_server_listen.clone()),
                    spice_proxyclient_address: consoles.spice_proxyclient_address.clone(),
                    serial: consoles.serial_enabled.then(|| {
                        (
                            consoles.serial_proxyclient_address.clone(),
                            consoles.serial_port_range,
                        )
                    }),
                },
                ..d
            };
            Ok(Arc::new(nova_virt::libvirt::LibvirtDriver::connect(c)?))
        }
        other => anyhow::bail!(
            "[DEFAULT] compute_driver = {other}: unknown driver (fake.FakeDriver, fake.SmallFakeDriver, fake.MediumFakeDriver{})",
            if cfg!(feature = "libvirt") {
                ", libvirt.LibvirtDriver"
            } else {
                "; libvirt.LibvirtDriver needs the libvirt feature"
            }
        ),
    }
}
