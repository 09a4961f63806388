//! Nova's `BlockDeviceMapping`, `BlockDeviceMappingList` objects (fields, types and versions as in nova 34).

use crate::objects::Instance;
use crate::{DateTime, nova_object};

/// Nova's `BlockDeviceMapping` object (version 1.21).
#[nova_object(name = "BlockDeviceMapping", version = "1.21")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockDeviceMapping {
    id: i64,
    #[field(since = "1.19", kind = "UUID")]
    uuid: String,
    #[field(kind = "UUID")]
    instance_uuid: String,
    instance: Option<Instance>,
    #[field(kind = "Enum(blank,image,snapshot,volume)")]
    source_type: Option<String>,
    #[field(kind = "Enum(local,volume)")]
    destination_type: Option<String>,
    guest_format: Option<String>,
    #[field(kind = "Enum(cdrom,disk,floppy,fs,lun)")]
    device_type: Option<String>,
    disk_bus: Option<String>,
    boot_index: Option<i64>,
    device_name: Option<String>,
    delete_on_termination: bool,
    snapshot_id: Option<String>,
    volume_id: Option<String>,
    volume_size: Option<i64>,
    image_id: Option<String>,
    no_device: bool,
    #[field(kind = "SensitiveString")]
    connection_info: Option<String>,
    #[field(since = "1.17")]
    tag: Option<String>,
    #[field(since = "1.18", kind = "UUID")]
    attachment_id: Option<String>,
    #[field(since = "1.20")]
    volume_type: Option<String>,
    #[field(since = "1.21")]
    encrypted: bool,
    #[field(since = "1.21", kind = "UUID")]
    encryption_secret_uuid: Option<String>,
    #[field(since = "1.21", kind = "Enum(plain,luks,luksv2)")]
    encryption_format: Option<String>,
    #[field(since = "1.21")]
    encryption_options: Option<String>,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}

/// Nova's `BlockDeviceMappingList` object (version 1.18).
#[nova_object(name = "BlockDeviceMappingList", version = "1.18", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockDeviceMappingList {
    objects: Vec<BlockDeviceMapping>,
}
