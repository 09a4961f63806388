//! The hypervisor driver `[DEFAULT] compute_driver` names.

use std::path::PathBuf;
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
        "libvirt.LibvirtDriver" => Ok(Arc::new(nova_virt::libvirt::LibvirtDriver::connect(
            libvirt_config(conf, hostname)?,
        )?)),
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

/// `[DEFAULT] instances_path` (nova's default: `$state_path/instances`).
fn own_instances_path(conf: &nova_service::Conf) -> PathBuf {
    conf.get("DEFAULT", "instances_path").map_or_else(
        || PathBuf::from(conf.str_or("DEFAULT", "state_path", "/var/lib/nova")).join("instances"),
        Into::into,
    )
}

/// The second compute nova-all runs on this machine with the libvirt driver
/// (nova-rs's `[libvirt] peer_host`; none when unset or another driver).
pub fn peer_host(conf: &nova_service::Conf) -> Option<String> {
    conf.get("libvirt", "peer_host")
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .filter(|_| conf.str_or("DEFAULT", "compute_driver", "") == "libvirt.LibvirtDriver")
}

/// The instances directory of the compute on `host`: `[libvirt]
/// peer_instances_path` for nova-all's second libvirt compute
/// (`[libvirt] peer_host`), else `[DEFAULT] instances_path`. The image
/// cache (`_base`) is in it.
pub fn instances_path_for(conf: &nova_service::Conf, host: &str) -> anyhow::Result<PathBuf> {
    if peer_host(conf).as_deref() == Some(host) {
        return conf
            .get("libvirt", "peer_instances_path")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| {
                anyhow::anyhow!("[libvirt] peer_host = {host} needs [libvirt] peer_instances_path")
            });
    }
    Ok(own_instances_path(conf))
}

/// The libvirt driver's settings for the compute on `hostname`.
///
/// nova's options, and nova-rs's for two computes on one machine (nova
/// assumes one instances path everywhere and one libvirtd per host):
/// `[libvirt] peer_instances_path`, the other compute's instances
/// directory, where a move copies the guest's files; and, for nova-all,
/// `[libvirt] peer_host` and `peer_connection_uri`: a second compute on
/// host `peer_host` driving the libvirtd at `peer_connection_uri` (a
/// session daemon of another user), its instances in
/// `peer_instances_path`, its node named after its host. Each migrates to
/// the other: the first to `live_migration_uri` (default, with a peer:
/// `peer_connection_uri`), the peer to `connection_uri`.
#[cfg(feature = "libvirt")]
pub fn libvirt_config(
    conf: &nova_service::Conf,
    hostname: &str,
) -> anyhow::Result<nova_virt::libvirt::LibvirtConfig> {
    let d = nova_virt::libvirt::LibvirtConfig::default();
    let consoles = nova_service::consoles::ConsoleOptions::from_conf(conf)?;
    let mut c = nova_virt::libvirt::LibvirtConfig {
        connection_uri: conf.str_or("libvirt", "connection_uri", &d.connection_uri),
        virt_type: conf.str_or("libvirt", "virt_type", &d.virt_type),
        live_migration_uri: conf.str_or("libvirt", "live_migration_uri", &d.live_migration_uri),
        instances_path: own_instances_path(conf),
        live_migration_bandwidth: conf.parse_or(
            "libvirt",
            "live_migration_bandwidth",
            d.live_migration_bandwidth,
        )?,
        live_migration_permit_post_copy: conf.bool_or(
            "libvirt",
            "live_migration_permit_post_copy",
            d.live_migration_permit_post_copy,
        )?,
        // nova's options have a minimum of 1.
        device_detach_attempts: conf
            .parse_or(
                "libvirt",
                "device_detach_attempts",
                d.device_detach_attempts,
            )?
            .max(1),
        device_detach_timeout: std::time::Duration::from_secs(
            conf.parse_or(
                "libvirt",
                "device_detach_timeout",
                d.device_detach_timeout.as_secs(),
            )?
            .max(1),
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
    c.peer_instances_path = conf
        .get("libvirt", "peer_instances_path")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    if let Some(peer) = peer_host(conf) {
        let peer_uri = conf
            .get("libvirt", "peer_connection_uri")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!("[libvirt] peer_host = {peer} needs [libvirt] peer_connection_uri")
            })?
            .to_owned();
        if hostname == peer {
            c.peer_instances_path = Some(c.instances_path.clone());
            c.instances_path = instances_path_for(conf, hostname)?;
            c.live_migration_uri = std::mem::replace(&mut c.connection_uri, peer_uri);
            c.hypervisor_hostname = Some(peer);
        } else {
            c.peer_instances_path = Some(instances_path_for(conf, &peer)?);
            if conf
                .get("libvirt", "live_migration_uri")
                .is_none_or(str::is_empty)
            {
                c.live_migration_uri = peer_uri;
            }
        }
    }
    Ok(c)
}

#[cfg(all(test, feature = "libvirt"))]
mod tests {
    use super::*;

    #[test]
    fn a_peer_compute_drives_the_other_daemon_and_each_migrates_to_the_other() {
        let mut conf = nova_service::Conf::new();
        for (s, k, v) in [
            ("DEFAULT", "compute_driver", "libvirt.LibvirtDriver"),
            ("DEFAULT", "state_path", "/srv/nova"),
            ("libvirt", "connection_uri", "qemu:///system"),
            ("libvirt", "peer_host", "peer-1"),
            (
                "libvirt",
                "peer_connection_uri",
                "qemu:///session?socket=/p/sock",
            ),
            ("libvirt", "peer_instances_path", "/p/instances"),
            ("libvirt", "live_migration_bandwidth", "7"),
        ] {
            conf.set(s, k, v);
        }
        assert_eq!(peer_host(&conf).as_deref(), Some("peer-1"));
        let me = libvirt_config(&conf, "here").unwrap();
        assert_eq!(me.connection_uri, "qemu:///system");
        assert_eq!(me.instances_path, PathBuf::from("/srv/nova/instances"));
        assert_eq!(me.live_migration_uri, "qemu:///session?socket=/p/sock");
        assert_eq!(me.peer_instances_path, Some(PathBuf::from("/p/instances")));
        assert_eq!(me.hypervisor_hostname, None);
        assert_eq!(me.live_migration_bandwidth, 7);
        let peer = libvirt_config(&conf, "peer-1").unwrap();
        assert_eq!(peer.connection_uri, "qemu:///session?socket=/p/sock");
        assert_eq!(peer.instances_path, PathBuf::from("/p/instances"));
        assert_eq!(peer.live_migration_uri, "qemu:///system");
        assert_eq!(
            peer.peer_instances_path,
            Some(PathBuf::from("/srv/nova/instances"))
        );
        assert_eq!(peer.hypervisor_hostname.as_deref(), Some("peer-1"));
        assert_eq!(
            instances_path_for(&conf, "peer-1").unwrap(),
            PathBuf::from("/p/instances")
        );
        // An explicit live_migration_uri wins; a peer without a URI is refused.
        conf.set("libvirt", "live_migration_uri", "qemu+tcp://%s/system");
        assert_eq!(
            libvirt_config(&conf, "here").unwrap().live_migration_uri,
            "qemu+tcp://%s/system"
        );
        conf.set("libvirt", "peer_connection_uri", "");
        assert!(libvirt_config(&conf, "peer-1").is_err());
        // Another driver has no peer.
        conf.set("DEFAULT", "compute_driver", "fake.FakeDriver");
        assert_eq!(peer_host(&conf), None);
    }

    #[test]
    fn device_detach_options_are_novas() {
        let mut conf = nova_service::Conf::new();
        let c = libvirt_config(&conf, "here").unwrap();
        assert_eq!(c.device_detach_attempts, 8);
        assert_eq!(c.device_detach_timeout, std::time::Duration::from_secs(20));
        conf.set("libvirt", "device_detach_attempts", "3");
        conf.set("libvirt", "device_detach_timeout", "7");
        let c = libvirt_config(&conf, "here").unwrap();
        assert_eq!(c.device_detach_attempts, 3);
        assert_eq!(c.device_detach_timeout, std::time::Duration::from_secs(7));
        // nova's minimum is 1.
        conf.set("libvirt", "device_detach_attempts", "0");
        conf.set("libvirt", "device_detach_timeout", "0");
        let c = libvirt_config(&conf, "here").unwrap();
        assert_eq!(c.device_detach_attempts, 1);
        assert_eq!(c.device_detach_timeout, std::time::Duration::from_secs(1));
        conf.set("libvirt", "device_detach_timeout", "soon");
        assert!(libvirt_config(&conf, "here").is_err());
    }
}
