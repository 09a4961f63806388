//! Nova's `ImageMeta`, `ImageMetaProps` objects (fields, types and versions as in nova 34).

use std::collections::{BTreeMap, BTreeSet};

use crate::{DateTime, nova_object};

/// Nova's `ImageMeta` object (version 1.8).
#[nova_object(name = "ImageMeta", version = "1.8")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageMeta {
    #[field(kind = "UUID")]
    id: String,
    name: String,
    status: String,
    visibility: String,
    #[field(kind = "FlexibleBoolean")]
    protected: bool,
    checksum: String,
    owner: String,
    size: i64,
    virtual_size: i64,
    container_format: String,
    disk_format: String,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    tags: Vec<String>,
    direct_url: String,
    min_ram: i64,
    min_disk: i64,
    properties: ImageMetaProps,
}

/// Nova's `ImageMetaProps` object (version 1.44).
#[nova_object(name = "ImageMetaProps", version = "1.44", compat = image_meta_props_compat)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageMetaProps {
    #[field(
        kind = "Enum(alpha,armv6,armv7l,armv7b,aarch64,cris,i686,ia64,lm32,m68k,microblaze,microblazeel,mips,mipsel,mips64,mips64el,openrisc,parisc,parisc64,ppc,ppcle,ppc64,ppc64le,ppcemb,s390,s390x,sh4,sh4eb,sparc,sparc64,unicore32,x86_64,xtensa,xtensaeb)"
    )]
    hw_architecture: String,
    #[field(
        since = "1.31",
        kind = "Enum(alpha,armv6,armv7l,armv7b,aarch64,cris,i686,ia64,lm32,m68k,microblaze,microblazeel,mips,mipsel,mips64,mips64el,openrisc,parisc,parisc64,ppc,ppcle,ppc64,ppc64le,ppcemb,s390,s390x,sh4,sh4eb,sparc,sparc64,unicore32,x86_64,xtensa,xtensaeb)"
    )]
    hw_emulation_architecture: String,
    hw_auto_disk_config: String,
    #[field(kind = "FlexibleBoolean")]
    hw_boot_menu: bool,
    #[field(kind = "Enum(fdc,ide,sata,scsi,usb,virtio,xen,lxc,uml)")]
    hw_cdrom_bus: String,
    hw_cpu_cores: i64,
    hw_cpu_sockets: i64,
    hw_cpu_max_cores: i64,
    hw_cpu_max_sockets: i64,
    hw_cpu_max_threads: i64,
    #[field(kind = "Enum(dedicated,shared,mixed)")]
    hw_cpu_policy: String,
    #[field(since = "1.9", kind = "Enum(prefer,isolate,require)")]
    hw_cpu_thread_policy: String,
    #[field(since = "1.10")]
    hw_cpu_realtime_mask: String,
    hw_cpu_threads: i64,
    hw_device_id: i64,
    #[field(kind = "Enum(fdc,ide,sata,scsi,usb,virtio,xen,lxc,uml)")]
    hw_disk_bus: String,
    hw_disk_type: String,
    #[field(kind = "Enum(fdc,ide,sata,scsi,usb,virtio,xen,lxc,uml)")]
    hw_floppy_bus: String,
    #[field(since = "1.11", kind = "Enum(uefi,bios)")]
    hw_firmware_type: String,
    #[field(since = "1.38", kind = "FlexibleBoolean")]
    hw_firmware_stateless: bool,
    #[field(since = "1.29", kind = "Enum(usb,virtio)")]
    hw_input_bus: String,
    #[field(kind = "FlexibleBoolean")]
    hw_ipxe_boot: bool,
    #[field(since = "1.33", kind = "FlexibleBoolean")]
    hw_locked_memory: bool,
    hw_machine_type: String,
    #[field(since = "1.24", kind = "FlexibleBoolean")]
    hw_mem_encryption: bool,
    #[field(
        since = "1.42",
        kind = "Enum(amd-sev,amd-sev-es,amd-sev-snp,intel-tdx)"
    )]
    hw_mem_encryption_model: String,
    hw_mem_page_size: String,
    hw_numa_nodes: i64,
    hw_numa_cpus: Vec<BTreeSet<i64>>,
    hw_numa_mem: Vec<i64>,
    #[field(since = "1.25", kind = "Enum(required,legacy,preferred,socket)")]
    hw_pci_numa_affinity_policy: String,
    #[field(since = "1.14", kind = "Enum(usbtablet)")]
    hw_pointer_model: String,
    #[field(since = "1.23", kind = "FlexibleBoolean")]
    hw_pmu: bool,
    #[field(kind = "FlexibleBoolean")]
    hw_qemu_guest_agent: bool,
    #[field(
        since = "1.15",
        kind = "Enum(fdc,ide,sata,scsi,usb,virtio,xen,lxc,uml)"
    )]
    hw_rescue_bus: String,
    #[field(since = "1.15", kind = "Enum(cdrom,disk,floppy,fs,lun)")]
    hw_rescue_device: String,
    #[field(kind = "Enum(virtio)")]
    hw_rng_model: String,
    #[field(since = "1.21", kind = "FlexibleBoolean")]
    hw_time_hpet: bool,
    hw_serial_port_count: i64,
    #[field(kind = "Enum(buslogic,ibmvscsi,lsilogic,lsisas1068,lsisas1078,virtio-scsi,vmpvscsi)")]
    hw_scsi_model: String,
    #[field(kind = "Enum(cirrus,qxl,vga,vmvga,xen,virtio,gop,none,bochs)")]
    hw_video_model: String,
    hw_video_ram: i64,
    #[field(
        kind = "Enum(virtio,ne2k_pci,pcnet,rtl8139,e1000,e1000e,netfront,spapr-vlan,lan9118,sriov,vmxnet,vmxnet3,igb)"
    )]
    hw_vif_model: String,
    #[field(since = "1.34", kind = "Enum(intel,smmuv3,virtio,auto)")]
    hw_viommu_model: String,
    #[field(kind = "Enum(hvm,xen,uml,exe)")]
    hw_vm_mode: String,
    #[field(kind = "Enum(none,pause,poweroff,reset,disabled)")]
    hw_watchdog_action: String,
    #[field(since = "1.4", kind = "FlexibleBoolean")]
    hw_vif_multiqueue_enabled: bool,
    #[field(since = "1.27", kind = "Enum(tpm-tis,tpm-crb)")]
    hw_tpm_model: String,
    #[field(since = "1.27", kind = "Enum(1.2,2.0)")]
    hw_tpm_version: String,
    #[field(since = "1.32", kind = "FlexibleBoolean")]
    hw_ephemeral_encryption: bool,
    #[field(since = "1.32", kind = "Enum(plain,luks,luksv2)")]
    hw_ephemeral_encryption_format: String,
    #[field(since = "1.37", kind = "UUID")]
    hw_ephemeral_encryption_secret_uuid: String,
    #[field(since = "1.35", kind = "FlexibleBoolean")]
    hw_virtio_packed_ring: bool,
    #[field(since = "1.36", kind = "Enum(passthrough,emulate)")]
    hw_maxphysaddr_mode: String,
    #[field(since = "1.36")]
    hw_maxphysaddr_bits: i64,
    #[field(
        since = "1.40",
        kind = "Enum(sb16,es1370,pcspk,ac97,ich6,ich9,usb,virtio)"
    )]
    hw_sound_model: String,
    #[field(since = "1.41", kind = "Enum(none,nec-xhci,qemu-xhci)")]
    hw_usb_model: String,
    #[field(since = "1.41")]
    hw_redirected_usb_ports: i64,
    #[field(kind = "FlexibleBoolean")]
    img_bittorrent: bool,
    #[field(kind = "FlexibleBoolean")]
    img_bdm_v2: bool,
    #[field(kind = "List(Dict(String?))")]
    img_block_device_mapping: Vec<BTreeMap<String, Option<String>>>,
    #[field(kind = "FlexibleBoolean")]
    img_cache_in_nova: bool,
    img_compression_level: i64,
    #[field(since = "1.2", kind = "VersionPredicate")]
    img_hv_requested_version: String,
    #[field(
        since = "1.2",
        kind = "Enum(baremetal,bhyve,docker,fake,hyperv,ironic,kqemu,kvm,lxc,lxd,openvz,parallels,phyp,qemu,test,uml,vbox,vz,vmware,xen,zvm,prsm)"
    )]
    img_hv_type: String,
    #[field(since = "1.7", kind = "Enum(optional,mandatory)")]
    img_config_drive: String,
    #[field(kind = "FlexibleBoolean")]
    img_linked_clone: bool,
    #[field(kind = "List(Dict(String?))")]
    img_mappings: Vec<BTreeMap<String, Option<String>>>,
    img_owner_id: String,
    img_root_device_name: String,
    #[field(kind = "FlexibleBoolean")]
    img_use_agent: bool,
    img_version: i64,
    img_signature: String,
    #[field(kind = "Enum(SHA-224,SHA-256,SHA-384,SHA-512)")]
    img_signature_hash_method: String,
    #[field(kind = "UUID")]
    img_signature_certificate_uuid: String,
    #[field(
        kind = "Enum(DSA,ECC_SECP384R1,ECC_SECP521R1,ECC_SECT409K1,ECC_SECT409R1,ECC_SECT571K1,ECC_SECT571R1,RSA-PSS)"
    )]
    img_signature_key_type: String,
    #[field(since = "1.19", kind = "FlexibleBoolean")]
    img_hide_hypervisor_id: bool,
    #[field(since = "1.5")]
    os_admin_user: String,
    os_command_line: String,
    os_distro: String,
    #[field(since = "1.1", kind = "FlexibleBoolean")]
    os_require_quiesce: bool,
    #[field(since = "1.13", kind = "Enum(required,disabled,optional)")]
    os_secure_boot: String,
    #[field(kind = "FlexibleBoolean")]
    os_skip_agent_inject_files_at_boot: bool,
    #[field(kind = "FlexibleBoolean")]
    os_skip_agent_inject_ssh: bool,
    #[field(kind = "Enum(linux,windows)")]
    os_type: String,
    #[field(since = "1.20")]
    traits_required: Vec<String>,
}

/// Enum values added after a version cannot be sent to older peers (nova
/// refuses rather than silently changing the guest); `disabled` watchdog
/// action, meaning the default, is dropped before 1.16.
fn image_meta_props_compat(
    data: &mut serde_json::Map<String, serde_json::Value>,
    target: crate::ObjVersion,
) -> crate::Result<()> {
    use crate::{ObjVersion as V, refuse_new_values as refuse};
    const RULES: &[(V, &str, &[&str])] = &[
        (V::new(1, 44), "hw_mem_encryption_model", &["intel-tdx"]),
        (V::new(1, 43), "hw_mem_encryption_model", &["amd-sev-snp"]),
        (V::new(1, 39), "hw_vif_model", &["igb"]),
        (V::new(1, 30), "hw_video_model", &["bochs"]),
        (V::new(1, 28), "hw_pci_numa_affinity_policy", &["socket"]),
        (V::new(1, 26), "hw_cpu_policy", &["mixed"]),
        (V::new(1, 22), "hw_video_model", &["gop", "virtio", "none"]),
        (V::new(1, 6), "hw_disk_bus", &["lxc", "uml"]),
    ];
    for (since, field, values) in RULES {
        if target < *since {
            refuse(data, target, field, values)?;
        }
    }
    if target < V::new(1, 16)
        && data.get("hw_watchdog_action").and_then(|v| v.as_str()) == Some("disabled")
    {
        data.remove("hw_watchdog_action");
    }
    Ok(())
}

/// nova's legacy image property names and the field each stands for
/// (`ImageMetaProps._set_attr_from_legacy_names`).
const LEGACY_PROPS: [(&str, &str); 5] = [
    ("architecture", "hw_architecture"),
    ("hypervisor_type", "img_hv_type"),
    ("vm_mode", "hw_vm_mode"),
    ("hypervisor_version_requires", "img_hv_requested_version"),
    ("auto_disk_config", "hw_auto_disk_config"),
];

impl ImageMeta {
    /// nova's `ImageMeta.from_dict`: an image as the image service shows
    /// it (Glance v2: custom properties as top-level keys, or nova's own
    /// dict with them under `properties`) with the fields it has set; the
    /// properties that are `ImageMetaProps` fields become those fields,
    /// coerced from Glance's strings as nova's field types coerce them
    /// (a value a field cannot take is left out; other keys are ignored,
    /// as nova ignores them).
    pub fn from_dict(img: &serde_json::Value) -> ImageMeta {
        use serde_json::Value;
        let mut m = ImageMeta::new();
        let s = |k: &str| img.get(k).and_then(Value::as_str).map(str::to_owned);
        let n = |k: &str| img.get(k).and_then(Value::as_i64);
        if let Some(v) = s("id") {
            m.set_id(v);
        }
        if let Some(v) = s("name") {
            m.set_name(v);
        }
        if let Some(v) = s("status") {
            m.set_status(v);
        }
        if let Some(v) = s("visibility") {
            m.set_visibility(v);
        }
        if let Some(v) = img.get("protected").and_then(Value::as_bool) {
            m.set_protected(v);
        }
        if let Some(v) = s("checksum") {
            m.set_checksum(v);
        }
        if let Some(v) = s("owner") {
            m.set_owner(v);
        }
        if let Some(v) = n("size") {
            m.set_size(v);
        }
        if let Some(v) = n("virtual_size") {
            m.set_virtual_size(v);
        }
        if let Some(v) = s("container_format") {
            m.set_container_format(v);
        }
        if let Some(v) = s("disk_format") {
            m.set_disk_format(v);
        }
        if let Some(v) = s("created_at").and_then(|t| crate::field::parse_datetime(&t)) {
            m.set_created_at(Some(v));
        }
        if let Some(v) = s("updated_at").and_then(|t| crate::field::parse_datetime(&t)) {
            m.set_updated_at(Some(v));
        }
        if let Some(tags) = img.get("tags").and_then(Value::as_array) {
            m.set_tags(
                tags.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect::<Vec<_>>(),
            );
        }
        if let Some(v) = s("direct_url") {
            m.set_direct_url(v);
        }
        m.set_min_ram(n("min_ram").unwrap_or(0));
        m.set_min_disk(n("min_disk").unwrap_or(0));
        let props = match img.get("properties") {
            Some(p @ Value::Object(_)) => p,
            _ => img,
        };
        m.set_properties(ImageMetaProps::from_dict(props));
        m
    }
}

impl ImageMetaProps {
    /// nova's `ImageMetaProps.from_dict`: every key of `img` that names a
    /// field (or a legacy name of one), coerced from the image API's
    /// string to the field's type; `trait:<NAME>=required` keys become
    /// `traits_required`. A value the field refuses is left out (nova
    /// raises on it when the image is used).
    pub fn from_dict(img: &serde_json::Value) -> ImageMetaProps {
        use crate::VersionedObject;
        use serde_json::{Map, Value, json};
        let Some(all) = img.as_object() else {
            return ImageMetaProps::new();
        };
        let primitive = |data: Map<String, Value>| {
            json!({
                "nova_object.name": "ImageMetaProps",
                "nova_object.namespace": "nova",
                "nova_object.version": Self::VERSION.to_string(),
                "nova_object.data": data,
            })
        };
        let candidates = |v: &Value| -> Vec<Value> {
            let Some(s) = v.as_str() else {
                return vec![v.clone()];
            };
            let mut c = vec![json!(s)];
            if let Ok(i) = s.trim().parse::<i64>() {
                c.push(json!(i));
            }
            if let Ok(f) = s.trim().parse::<f64>() {
                c.push(json!(f));
            }
            match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" | "y" | "t" => c.push(json!(true)),
                "false" | "no" | "off" | "0" | "n" | "f" => c.push(json!(false)),
                _ => {}
            }
            c.push(json!(
                s.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>()
            ));
            c
        };
        let mut data = Map::new();
        let mut traits: Vec<String> = Vec::new();
        for (key, value) in all {
            if let Some(t) = key.strip_prefix("trait:") {
                if value.as_str() == Some("required") {
                    traits.push(t.to_owned());
                }
                continue;
            }
            let field = LEGACY_PROPS
                .iter()
                .find(|(old, _)| old == key)
                .map(|(_, new)| *new)
                .unwrap_or(key.as_str());
            if field == "traits_required" || Self::obj_field_index(field).is_none() {
                continue;
            }
            if data.contains_key(field) && field != key {
                // The field's own name wins over its legacy one.
                continue;
            }
            // An enum field takes only its values (nova raises on others).
            let kind = Self::obj_class()
                .fields
                .iter()
                .find(|f| f.name == field)
                .map(|f| f.kind.name())
                .unwrap_or_default();
            if let Some(values) = kind.strip_prefix("Enum(").and_then(|k| k.strip_suffix(')'))
                && !value
                    .as_str()
                    .is_some_and(|v| values.split(',').any(|x| x == v))
            {
                continue;
            }
            for c in candidates(value) {
                let one: Map<String, Value> = [(field.to_owned(), c.clone())].into_iter().collect();
                if Self::obj_from_primitive(&primitive(one)).is_ok() {
                    data.insert(field.to_owned(), c);
                    break;
                }
            }
        }
        if !traits.is_empty() {
            traits.sort();
            data.insert("traits_required".into(), json!(traits));
        }
        Self::obj_from_primitive(&primitive(data)).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod from_dict_props_tests {
    use super::*;
    use crate::VersionedObject;

    #[test]
    fn glance_properties_become_typed_fields_and_required_traits() {
        let img = serde_json::json!({
            "id": "155d900f-4e14-4e4c-a73d-069cbf4541e6", "name": "i", "status": "active",
            "architecture": "x86_64", "hw_cpu_cores": "2", "hw_boot_menu": "true",
            "trait:CUSTOM_GOLD": "required", "trait:CUSTOM_X": "forbidden",
            "os_distro": "debian", "not_a_field": "x", "hw_disk_bus": "floppy-disk",
        });
        let m = ImageMeta::from_dict(&img);
        let p = m.properties();
        assert_eq!(p.hw_architecture(), "x86_64");
        assert_eq!(*p.hw_cpu_cores(), 2);
        assert!(*p.hw_boot_menu());
        assert_eq!(p.traits_required(), &vec!["CUSTOM_GOLD".to_owned()]);
        assert_eq!(p.os_distro(), "debian");
        assert!(
            !p.obj_attr_is_set("hw_disk_bus"),
            "an invalid enum value is left out"
        );
        assert!(!p.obj_attr_is_set("hw_cpu_sockets"));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::VersionedObject;
    use serde_json::json;

    #[test]
    fn from_dict_takes_glance_properties_as_nova_coerces_them() {
        let img = json!({
            "id": "155d900f-4e14-4e4c-a73d-069cbf4541e6", "name": "cirros", "status": "active",
            "visibility": "public", "protected": false, "size": 1024, "min_ram": 0,
            "disk_format": "qcow2", "container_format": "bare", "tags": ["a"],
            "hw_architecture": "x86_64", "hw_cpu_cores": "2", "hw_boot_menu": "yes",
            "hw_disk_bus": "no-such-bus", "owner_specified.openstack.md5": "x",
        });
        let m = ImageMeta::from_dict(&img);
        assert_eq!(m.name(), "cirros");
        assert_eq!(*m.size(), 1024);
        assert!(!m.obj_attr_is_set("checksum"), "absent fields stay unset");
        let props = m.properties().obj_to_primitive()["nova_object.data"].clone();
        assert_eq!(
            props,
            json!({"hw_architecture": "x86_64", "hw_cpu_cores": 2, "hw_boot_menu": true})
        );
    }
}
