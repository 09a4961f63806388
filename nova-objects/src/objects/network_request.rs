//! Nova's `NetworkRequest`, `NetworkRequestList` objects (fields, types and versions as in nova 34).

use crate::nova_object;

/// Nova's `NetworkRequest` object (version 1.3).
#[nova_object(name = "NetworkRequest", version = "1.3")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkRequest {
    network_id: Option<String>,
    #[field(kind = "IPAddress")]
    address: Option<String>,
    #[field(kind = "UUID")]
    port_id: Option<String>,
    #[field(kind = "UUID")]
    pci_request_id: Option<String>,
    #[field(since = "1.2")]
    tag: Option<String>,
    #[field(since = "1.3", kind = "UUID")]
    arq_uuid: Option<String>,
    #[field(since = "1.3")]
    device_profile: Option<String>,
}

/// Nova's `NetworkRequestList` object (version 1.1).
#[nova_object(name = "NetworkRequestList", version = "1.1", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkRequestList {
    objects: Vec<NetworkRequest>,
}
