//! Domain XML from an instance, its flavor and its image (pure, tested).

use crate::driver::InstanceSpec;

/// Where and how the domain runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPlan {
    /// `[libvirt] virt_type`: the domain type (`kvm`, `qemu`, or `test`).
    pub virt_type: String,
    /// The root disk (a qcow2 overlay), if any.
    pub disk_path: Option<String>,
    /// The serial console log file.
    pub console_log: String,
    /// `[vnc] server_listen`, when VNC is enabled.
    pub vnc_listen: Option<String>,
    /// In rescue: the instance's own root disk, attached after the
    /// rescue disk (nova's rescue layout).
    pub rescued_disk: Option<String>,
    /// The config drive ISO (`disk.config`), when the instance has one.
    pub config_drive: Option<String>,
    /// SPICE graphics and the TCP serial port, when enabled.
    pub consoles: ConsolePlan,
}

/// The consoles beyond VNC a domain gets (`[spice]`, `[serial_console]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsolePlan {
    /// `[spice] server_listen`, when SPICE is enabled.
    pub spice_listen: Option<String>,
    /// `[serial_console] proxyclient_address` and the port taken from
    /// `port_range`, when the serial console is enabled: the serial port
    /// is then a TCP server (raw), its output still logged to the console
    /// log.
    pub serial_tcp: Option<(String, u16)>,
}

/// `instance-<uuid>`: the libvirt domain name of an instance whose spec
/// names none.
pub fn domain_name(uuid: &str) -> String {
    format!("instance-{uuid}")
}

/// The domain name of `spec`: its `instance_name` (nova's
/// `instance_name_template`), else [`domain_name`].
pub fn spec_domain_name(spec: &InstanceSpec) -> String {
    if spec.instance_name.is_empty() {
        domain_name(&spec.uuid)
    } else {
        spec.instance_name.clone()
    }
}

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

fn prop<'a>(spec: &'a InstanceSpec, key: &str) -> Option<&'a str> {
    spec.image_properties.get(key).map(String::as_str)
}

/// The domain XML of `spec` under `plan`.
pub fn domain_xml(spec: &InstanceSpec, plan: &DomainPlan) -> String {
    let e = escape;
    let arch = prop(spec, "hw_architecture").unwrap_or("x86_64");
    let bus = prop(spec, "hw_disk_bus").unwrap_or("virtio");
    let dev = if bus == "virtio" { "vda" } else { "sda" };
    let vif_model = prop(spec, "hw_vif_model").unwrap_or("virtio");
    let mut x = String::with_capacity(2048);
    x.push_str(&format!("<domain type='{}'>\n", e(&plan.virt_type)));
    x.push_str(&format!("  <name>{}</name>\n", e(&spec_domain_name(spec))));
    x.push_str(&format!("  <uuid>{}</uuid>\n", e(&spec.uuid)));
    x.push_str("  <metadata>\n    <nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>\n");
    x.push_str(&format!("      <nova:name>{}</nova:name>\n", e(&spec.name)));
    x.push_str(&format!(
        "      <nova:flavor name='{}'><nova:memory>{}</nova:memory><nova:disk>{}</nova:disk><nova:vcpus>{}</nova:vcpus></nova:flavor>\n",
        e(&spec.flavor_name),
        spec.memory_mb,
        spec.root_gb,
        spec.vcpus
    ));
    x.push_str("    </nova:instance>\n  </metadata>\n");
    x.push_str(&format!(
        "  <memory unit='MiB'>{}</memory>\n",
        spec.memory_mb
    ));
    x.push_str(&format!("  <vcpu>{}</vcpu>\n", spec.vcpus.max(1)));
    x.push_str("  <os>\n");
    x.push_str(&format!("    <type arch='{}'>hvm</type>\n", e(arch)));
    match &spec.kernel_path {
        Some(k) => {
            x.push_str(&format!("    <kernel>{}</kernel>\n", e(k)));
            if let Some(r) = &spec.ramdisk_path {
                x.push_str(&format!("    <initrd>{}</initrd>\n", e(r)));
            }
            let cmdline = spec.kernel_cmdline.as_deref().unwrap_or("console=ttyS0");
            x.push_str(&format!("    <cmdline>{}</cmdline>\n", e(cmdline)));
        }
        None => x.push_str("    <boot dev='hd'/>\n"),
    }
    x.push_str("  </os>\n  <features><acpi/><apic/></features>\n  <clock offset='utc'/>\n");
    x.push_str("  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n");
    x.push_str("  <devices>\n");
    if let Some(d) = &plan.disk_path {
        x.push_str(&format!(
            "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2' cache='none'/>\n      <source file='{}'/>\n      <target dev='{dev}' bus='{}'/>\n    </disk>\n",
            e(d),
            e(bus)
        ));
    }
    if let Some(d) = &plan.rescued_disk {
        let second = if bus == "virtio" { "vdb" } else { "sdb" };
        x.push_str(&format!(
            "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2' cache='none'/>\n      <source file='{}'/>\n      <target dev='{second}' bus='{}'/>\n    </disk>\n",
            e(d),
            e(bus)
        ));
    }
    if let Some(iso) = &plan.config_drive {
        // nova's layout: the config drive is a read-only CD-ROM after the disks.
        let cd_bus = prop(spec, "hw_cdrom_bus").unwrap_or("ide");
        let cd_dev = if cd_bus == "ide" { "hdd" } else { "sdz" };
        x.push_str(&format!(
            "    <disk type='file' device='cdrom'>\n      <driver name='qemu' type='raw'/>\n      <source file='{}'/>\n      <target dev='{cd_dev}' bus='{cd_bus}'/>\n      <readonly/>\n    </disk>\n",
            e(iso)
        ));
    }
    for v in &spec.block_devices {
        x.push_str(&format!(
            "    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>\n      <source file='{}'/>\n      <target dev='{}' bus='virtio'/>\n    </disk>\n",
            e(&v.source),
            e(&v.device_name)
        ));
    }
    for vif in &spec.network_info {
        x.push_str(&interface_xml(vif, vif_model));
    }
    match &plan.consoles.serial_tcp {
        None => x.push_str(&format!(
            "    <serial type='file'>\n      <source path='{}' append='on'/>\n      <target port='0'/>\n    </serial>\n",
            e(&plan.console_log)
        )),
        Some((host, port)) => x.push_str(&format!(
            "    <serial type='tcp'>\n      <source mode='bind' host='{}' service='{port}'/>\n      <protocol type='raw'/>\n      <log file='{}' append='on'/>\n      <target port='0'/>\n    </serial>\n",
            e(host),
            e(&plan.console_log)
        )),
    }
    if let Some(listen) = &plan.vnc_listen {
        x.push_str(&format!(
            "    <graphics type='vnc' port='-1' autoport='yes' listen='{}'/>\n",
            e(listen)
        ));
    }
    if let Some(listen) = &plan.consoles.spice_listen {
        x.push_str(&format!(
            "    <graphics type='spice' port='-1' autoport='yes' listen='{}'/>\n",
            e(listen)
        ));
    }
    x.push_str("    <memballoon model='none'/>\n  </devices>\n</domain>\n");
    x
}

/// One `<interface>` of the domain (four spaces in): nova's bridge VIF
/// (libvirt makes the tap and puts it on the bridge), or user-mode
/// networking for a VIF without a bridge. Also the device XML of an
/// interface hot-plug.
pub fn interface_xml(vif: &crate::driver::Vif, vif_model: &str) -> String {
    let e = escape;
    match &vif.bridge {
        Some(br) => {
            let mut x = format!(
                "    <interface type='bridge'>\n      <mac address='{}'/>\n      <source bridge='{}'/>\n",
                e(&vif.address),
                e(br)
            );
            if let Some(dev) = &vif.devname {
                x.push_str(&format!("      <target dev='{}'/>\n", e(dev)));
            }
            x.push_str(&format!("      <model type='{}'/>\n", e(vif_model)));
            if let Some(mtu) = vif.mtu {
                x.push_str(&format!("      <mtu size='{mtu}'/>\n"));
            }
            x.push_str("    </interface>\n");
            x
        }
        None => format!(
            "    <interface type='user'>\n      <mac address='{}'/>\n      <model type='{}'/>\n    </interface>\n",
            e(&vif.address),
            e(vif_model)
        ),
    }
}

/// The VNC port of a running domain's live XML (`None` when it has none yet).
pub fn vnc_port(live_xml: &str) -> Option<u16> {
    let g = live_xml
        .find("<graphics type='vnc'")
        .or_else(|| live_xml.find("<graphics type=\"vnc\""))?;
    let rest = &live_xml[g..];
    let end = rest.find('>')?;
    let tag = &rest[..end];
    let p = tag.find("port=")? + 6;
    let v: String = tag[p..].chars().take_while(char::is_ascii_digit).collect();
    v.parse().ok().filter(|p: &u16| *p > 0)
}

/// The SPICE port and TLS port of a running domain's live XML.
pub fn spice_ports(live_xml: &str) -> Option<(u16, Option<u16>)> {
    let g = live_xml
        .find("<graphics type='spice'")
        .or_else(|| live_xml.find("<graphics type=\"spice\""))?;
    let rest = &live_xml[g..];
    let tag = &rest[..rest.find('>')?];
    let num = |name: &str| -> Option<u16> {
        let at = tag.find(&format!(" {name}="))? + name.len() + 3;
        let v: String = tag[at..].chars().take_while(char::is_ascii_digit).collect();
        v.parse().ok().filter(|p: &u16| *p > 0)
    };
    Some((num("port")?, num("tlsPort")))
}

/// The host and port of a running domain's TCP serial port in bind mode
/// (nova's `_get_serial_ports_from_guest(mode='bind')`, the first one).
pub fn serial_tcp(live_xml: &str) -> Option<(String, u16)> {
    for s in live_xml.split("<serial ").skip(1) {
        let s = s.split("</serial>").next().unwrap_or("");
        if !(s.starts_with("type='tcp'") || s.starts_with("type=\"tcp\"")) {
            continue;
        }
        let mode = attr_of(s, "source", "mode");
        if mode.as_deref() != Some("bind") {
            continue;
        }
        let host = attr_of(s, "source", "host")?;
        let port = attr_of(s, "source", "service")?.parse().ok()?;
        return Some((host, port));
    }
    None
}

/// The value of attribute `attr` in the first `<tag …>` of `xml`.
fn attr_of(xml: &str, tag: &str, attr: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag} "))?;
    let rest = &xml[start..];
    let elem = &rest[..rest.find('>')?];
    let at = elem.find(&format!(" {attr}="))? + attr.len() + 2;
    let quote = elem[at..].chars().next()?;
    let value = &elem[at + 1..];
    Some(value[..value.find(quote)?].to_owned())
}

/// An interface of a live domain XML: MAC address and host-side target
/// device.
pub type IoNic = (Option<String>, Option<String>);

/// The guest's disks (target devices) and interfaces (MAC address and
/// host-side target device, when it has one) in a live domain XML, as
/// nova's `_get_io_devices` reads them.
pub fn io_devices(live_xml: &str) -> (Vec<String>, Vec<IoNic>) {
    let section = |name: &str| -> Vec<String> {
        live_xml
            .split(&format!("<{name} "))
            .skip(1)
            .filter_map(|s| s.find(&format!("</{name}>")).map(|e| s[..e].to_owned()))
            .collect()
    };
    let disks = section("disk")
        .iter()
        .filter_map(|d| attr_of(d, "target", "dev"))
        .collect();
    let nics = section("interface")
        .iter()
        .map(|i| (attr_of(i, "mac", "address"), attr_of(i, "target", "dev")))
        .collect();
    (disks, nics)
}

/// The bridges a domain's XML plugs into, with each interface's MTU:
/// what must exist before the domain starts.
pub fn bridges(domain_xml: &str) -> Vec<(String, Option<u32>)> {
    domain_xml
        .split("<interface ")
        .skip(1)
        .filter_map(|s| s.find("</interface>").map(|e| &s[..e]))
        .filter_map(|i| {
            let br = attr_of(i, "source", "bridge")?;
            let mtu = attr_of(i, "mtu", "size").and_then(|m| m.parse().ok());
            Some((br, mtu))
        })
        .collect()
}

/// The MAC addresses of a domain XML's `<interface>`s, in order.
pub fn interface_macs(domain_xml: &str) -> Vec<String> {
    domain_xml
        .split("<interface ")
        .skip(1)
        .filter_map(|s| s.find("</interface>").map(|e| &s[..e]))
        .filter_map(|i| attr_of(i, "mac", "address"))
        .collect()
}

/// `(MAC, PCI address)` of each `<interface>` of a domain XML that has a
/// PCI `<address>` (libvirt gives one to every virtio NIC), the address
/// written as nova's `get_pci_address` does (`0000:00:03.0`).
pub fn interface_pci_addresses(domain_xml: &str) -> Vec<(String, String)> {
    let hex =
        |i: &str, a: &str| attr_of(i, "address", a).map(|v| v.trim_start_matches("0x").to_owned());
    domain_xml
        .split("<interface ")
        .skip(1)
        .filter_map(|s| s.find("</interface>").map(|e| &s[..e]))
        .filter(|i| attr_of(i, "address", "type").as_deref() == Some("pci"))
        .filter_map(|i| {
            let mac = attr_of(i, "mac", "address")?;
            let addr = format!(
                "{}:{}:{}.{}",
                hex(i, "domain")?,
                hex(i, "bus")?,
                hex(i, "slot")?,
                hex(i, "function")?
            );
            Some((mac, addr))
        })
        .collect()
}

/// `[arch, virt_type, hvm]` for every guest arch the capabilities XML offers
/// with domain type `virt_type`.
pub fn supported_instances(capabilities: &str, virt_type: &str) -> Vec<[String; 3]> {
    let mut out = Vec::new();
    for guest in capabilities.split("<guest>").skip(1) {
        let guest = guest.split("</guest>").next().unwrap_or("");
        if !guest.contains("<os_type>hvm</os_type>") {
            continue;
        }
        let Some(a) = guest
            .find("<arch name='")
            .map(|i| i + 12)
            .or_else(|| guest.find("<arch name=\"").map(|i| i + 12))
        else {
            continue;
        };
        let arch: String = guest[a..]
            .chars()
            .take_while(|c| *c != '\'' && *c != '"')
            .collect();
        let has_type = guest.contains(&format!("<domain type='{virt_type}'"))
            || guest.contains(&format!("<domain type=\"{virt_type}\""));
        if has_type {
            out.push([arch, virt_type.to_owned(), "hvm".to_owned()]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_pci_addresses_read_each_nic_with_a_pci_address() {
        let x = "<domain><devices>\
            <disk type='file'><address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/></disk>\
            <interface type='bridge'><mac address='fa:16:3e:00:00:01'/><source bridge='br0'/>\
            <model type='virtio'/><address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/></interface>\
            <interface type='user'><mac address='fa:16:3e:00:00:02'/></interface>\
            <interface type='bridge'><mac address='fa:16:3e:00:00:03'/>\
            <address type='pci' domain='0x0000' bus='0x01' slot='0x1f' function='0x2'/></interface>\
            </devices></domain>";
        assert_eq!(
            interface_pci_addresses(x),
            vec![
                ("fa:16:3e:00:00:01".to_owned(), "0000:00:03.0".to_owned()),
                ("fa:16:3e:00:00:03".to_owned(), "0000:01:1f.2".to_owned()),
            ]
        );
    }
    use crate::driver::Vif;

    fn spec() -> InstanceSpec {
        InstanceSpec {
            uuid: "6a1f0c3e-0000-4d2b-8c1a-0123456789ab".into(),
            name: "web <1> & 'x'".into(),
            flavor_name: "m1.tiny".into(),
            vcpus: 2,
            memory_mb: 256,
            root_gb: 1,
            ..Default::default()
        }
    }

    fn plan() -> DomainPlan {
        DomainPlan {
            rescued_disk: None,
            config_drive: None,
            virt_type: "qemu".into(),
            disk_path: Some("/var/lib/nova/instances/x/disk".into()),
            console_log: "/var/lib/nova/instances/x/console.log".into(),
            vnc_listen: Some("127.0.0.1".into()),
            consoles: ConsolePlan::default(),
        }
    }

    #[test]
    fn spice_and_tcp_serial_when_enabled() {
        let mut p = plan();
        p.consoles = ConsolePlan {
            spice_listen: Some("127.0.0.1".into()),
            serial_tcp: Some(("127.0.0.1".into(), 10001)),
        };
        let x = domain_xml(&spec(), &p);
        assert!(x.contains("<graphics type='spice' port='-1' autoport='yes' listen='127.0.0.1'/>"));
        assert!(x.contains("<source mode='bind' host='127.0.0.1' service='10001'/>"));
        assert!(x.contains("<log file='/var/lib/nova/instances/x/console.log' append='on'/>"));
        assert!(!x.contains("<serial type='file'>"));
        let live = "<devices><serial type='tcp'><source mode='bind' host='127.0.0.1' service='10001'/><protocol type='raw'/></serial><graphics type='spice' port='5901' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics></devices>";
        assert_eq!(serial_tcp(live), Some(("127.0.0.1".into(), 10001)));
        assert_eq!(spice_ports(live), Some((5901, None)));
        assert_eq!(
            serial_tcp("<serial type='file'><source path='/x'/></serial>"),
            None
        );
    }

    #[test]
    fn disk_boot_domain() {
        let x = domain_xml(&spec(), &plan());
        assert!(x.starts_with("<domain type='qemu'>"));
        assert!(x.contains("<name>instance-6a1f0c3e-0000-4d2b-8c1a-0123456789ab</name>"));
        assert!(x.contains("<memory unit='MiB'>256</memory>"));
        assert!(x.contains("<vcpu>2</vcpu>"));
        assert!(x.contains("<boot dev='hd'/>"));
        assert!(x.contains("<source file='/var/lib/nova/instances/x/disk'/>"));
        assert!(x.contains("<target dev='vda' bus='virtio'/>"));
        assert!(x.contains("<serial type='file'>"));
        assert!(x.contains("<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>"));
        assert!(
            x.contains("<nova:name>web &lt;1&gt; &amp; &apos;x&apos;</nova:name>"),
            "{x}"
        );
        assert!(!x.contains("<kernel>"));
    }

    #[test]
    fn direct_kernel_boot_and_image_properties() {
        let mut s = spec();
        s.kernel_path = Some("/g/vmlinuz".into());
        s.ramdisk_path = Some("/g/initrd.img".into());
        s.image_properties
            .insert("hw_disk_bus".into(), "scsi".into());
        s.image_properties
            .insert("hw_vif_model".into(), "e1000".into());
        s.network_info.push(Vif {
            id: "p1".into(),
            address: "fa:16:3e:00:00:01".into(),
            bridge: Some("br-int".into()),
            ..Vif::default()
        });
        let mut p = plan();
        p.vnc_listen = None;
        p.virt_type = "kvm".into();
        let x = domain_xml(&s, &p);
        assert!(x.starts_with("<domain type='kvm'>"));
        assert!(x.contains("<kernel>/g/vmlinuz</kernel>"));
        assert!(x.contains("<initrd>/g/initrd.img</initrd>"));
        assert!(x.contains("<cmdline>console=ttyS0</cmdline>"));
        assert!(x.contains("<target dev='sda' bus='scsi'/>"));
        assert!(x.contains("<source bridge='br-int'/>"));
        assert!(x.contains("<model type='e1000'/>"));
        assert!(!x.contains("<graphics"));
    }

    #[test]
    fn bridge_vifs_are_novas_and_their_bridges_are_read_back() {
        let mut s = spec();
        s.network_info.push(Vif {
            id: "0b7e9c55-1f2a-4c3d-9e8f-112233445566".into(),
            address: "fa:16:3e:12:34:56".into(),
            vif_type: "bridge".into(),
            bridge: Some("brq5d2c1b0a-9f".into()),
            devname: Some("tap0b7e9c55-1f".into()),
            fixed_ips: vec!["10.20.30.5".into()],
            mtu: Some(1450),
        });
        let x = domain_xml(&s, &plan());
        assert!(
            x.contains("    <interface type='bridge'>\n      <mac address='fa:16:3e:12:34:56'/>\n      <source bridge='brq5d2c1b0a-9f'/>\n      <target dev='tap0b7e9c55-1f'/>\n      <model type='virtio'/>\n      <mtu size='1450'/>\n    </interface>\n"),
            "{x}"
        );
        assert_eq!(bridges(&x), [("brq5d2c1b0a-9f".to_owned(), Some(1450))]);
        // libvirt's own rendering (double quotes, more elements).
        let live = "<interface type=\"bridge\"><mac address=\"fa:16:3e:12:34:56\"/><source bridge=\"brqx\"/><target dev=\"tapx\"/><model type=\"virtio\"/><alias name=\"net0\"/></interface><interface type='user'><mac address='fa:16:3e:00:00:02'/></interface>";
        assert_eq!(bridges(live), [("brqx".to_owned(), None)]);
        assert_eq!(
            interface_macs(live),
            ["fa:16:3e:12:34:56", "fa:16:3e:00:00:02"]
        );
        assert_eq!(interface_macs(&x), ["fa:16:3e:12:34:56"]);
    }

    #[test]
    fn io_devices_are_read_from_live_xml() {
        let live = "<domain><devices>\n<disk type='file' device='disk'><driver name='qemu'/><source file='/x'/><target dev='vda' bus='virtio'/></disk>\n<disk type=\"file\" device=\"cdrom\"><target dev=\"hdc\" bus=\"ide\"/></disk>\n<interface type='bridge'><mac address='fa:16:3e:00:00:01'/><target dev='tap1'/></interface><interface type='user'><mac address='fa:16:3e:00:00:02'/></interface></devices></domain>";
        let (disks, nics) = io_devices(live);
        assert_eq!(disks, ["vda", "hdc"]);
        assert_eq!(
            nics,
            [
                (
                    Some("fa:16:3e:00:00:01".to_owned()),
                    Some("tap1".to_owned())
                ),
                (Some("fa:16:3e:00:00:02".to_owned()), None)
            ]
        );
    }

    #[test]
    fn live_xml_and_capabilities_are_read() {
        assert_eq!(
            vnc_port("<graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'>"),
            Some(5901)
        );
        assert_eq!(
            vnc_port("<graphics type='vnc' port='-1' autoport='yes'/>"),
            None
        );
        assert_eq!(vnc_port("<devices/>"), None);
        let caps = "<capabilities><guest><os_type>hvm</os_type><arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest>\
                    <guest><os_type>hvm</os_type><arch name='i686'><domain type='qemu'/></arch></guest>\
                    <guest><os_type>xen</os_type><arch name='x86_64'><domain type='xen'/></arch></guest></capabilities>";
        let s = supported_instances(caps, "qemu");
        assert_eq!(
            s,
            vec![
                ["x86_64".to_owned(), "qemu".into(), "hvm".into()],
                ["i686".into(), "qemu".into(), "hvm".into()]
            ]
        );
        assert_eq!(supported_instances(caps, "kvm").len(), 1);
    }
}
