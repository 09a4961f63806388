//! Nova's `InstanceExternalEvent` (fields, types and versions as in nova 34):
//! what Neutron, Cinder and others tell nova through
//! `os-server-external-events`, passed on to the instance's compute.

use crate::nova_object;

/// Nova's `InstanceExternalEvent` object (version 1.5).
#[nova_object(name = "InstanceExternalEvent", version = "1.5")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceExternalEvent {
    #[field(kind = "UUID")]
    instance_uuid: String,
    #[field(
        kind = "Enum(network-changed,network-vif-plugged,network-vif-unplugged,network-vif-deleted,volume-extended,power-update,accelerator-request-bound,volume-reimaged)"
    )]
    name: String,
    #[field(kind = "Enum(failed,completed,in-progress)")]
    status: String,
    tag: Option<String>,
    data: std::collections::BTreeMap<String, String>,
}

impl InstanceExternalEvent {
    /// nova's `make_key`: `name-tag` (or `name` without a tag), which the
    /// compute's waiters are keyed on.
    pub fn key(&self) -> String {
        match self.tag() {
            Some(t) => format!("{}-{t}", self.name()),
            None => self.name().clone(),
        }
    }
}
