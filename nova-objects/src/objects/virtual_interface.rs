//! Nova's `VirtualInterface`, `VirtualInterfaceList` objects (fields,
//! types and versions as in nova 34): one record per port of an instance
//! (`uuid` is the port's id, `address` its MAC), kept so that the tag the
//! user gave the interface (`networks[].tag`, os-interface's `tag`) can be
//! shown by the API (2.70) and in the device metadata. `network_id` is
//! nova-network's integer id: left unset with Neutron, as nova does.

use crate::{DateTime, nova_object};

/// Nova's `VirtualInterface` object (version 1.3).
#[nova_object(name = "VirtualInterface", version = "1.3")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VirtualInterface {
    id: i64,
    address: Option<String>,
    network_id: i64,
    #[field(kind = "UUID")]
    instance_uuid: String,
    #[field(kind = "UUID")]
    uuid: String,
    #[field(since = "1.1")]
    tag: Option<String>,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}

/// Nova's `VirtualInterfaceList` object (version 1.0).
#[nova_object(name = "VirtualInterfaceList", version = "1.0", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VirtualInterfaceList {
    objects: Vec<VirtualInterface>,
}
