//! Nova's `KeyPair`, `KeyPairList` objects (fields, types and versions as in nova 34).

use crate::{DateTime, nova_object};

/// Nova's `KeyPair` object (version 1.4).
#[nova_object(name = "KeyPair", version = "1.4")]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPair {
    id: i64,
    name: String,
    user_id: Option<String>,
    fingerprint: Option<String>,
    public_key: Option<String>,
    #[field(since = "1.2")]
    r#type: String,
    created_at: Option<DateTime>,
    updated_at: Option<DateTime>,
    deleted_at: Option<DateTime>,
    deleted: bool,
}

/// Nova's `KeyPairList` object (version 1.3).
#[nova_object(name = "KeyPairList", version = "1.3", list)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPairList {
    objects: Vec<KeyPair>,
}
