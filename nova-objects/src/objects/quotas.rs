//! Nova's `Quotas` objects (fields, types and versions as in nova 34).

use crate::nova_object;

/// Nova's `Quotas` object (version 1.3).
#[nova_object(name = "Quotas", version = "1.3")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quotas {
    reservations: Option<Vec<String>>,
    project_id: Option<String>,
    user_id: Option<String>,
}
