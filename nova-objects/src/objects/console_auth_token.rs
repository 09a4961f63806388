//! Nova's `ConsoleAuthToken` objects (fields, types and versions as in nova 34).

use crate::{DateTime, nova_object};

/// Nova's `ConsoleAuthToken` object (version 1.3).
#[nova_object(name = "ConsoleAuthToken", version = "1.3")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsoleAuthToken {
    id: i64,
    console_type: String,
    host: String,
    port: i64,
    #[field(since = "1.3")]
    tls_port: Option<i64>,
    internal_access_path: Option<String>,
    #[field(kind = "UUID")]
    instance_uuid: String,
    access_url_base: Option<String>,
    token: String,
    #[field(since = "1.2")]
    expires: i64,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
}
