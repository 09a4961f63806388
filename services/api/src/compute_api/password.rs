//! The server password (nova's `nova/api/metadata/password.py`): kept in
//! the instance's system metadata as `password_0` … `password_3`, 255
//! characters each. The metadata service stores it (the guest posts it);
//! `os-server-password` reads and clears it.

use std::collections::BTreeMap;

use nova_objects::{Instance, VersionedObject};
use nova_service::notifications::Source;

use crate::ApiState;
use crate::auth::Ctx;
use crate::fault::ApiResult;

/// nova's `CHUNKS`.
pub(crate) const CHUNKS: usize = 4;
/// nova's `CHUNK_LENGTH`.
pub(crate) const CHUNK_LENGTH: usize = 255;

/// nova's `extract_password`: the `password_*` items in key order, joined
/// (`None` when empty).
pub(crate) fn extract(inst: &Instance) -> Option<String> {
    if !inst.obj_attr_is_set("system_metadata") {
        return None;
    }
    let pw: String = inst
        .system_metadata()
        .iter()
        .filter(|(k, _)| k.starts_with("password_"))
        .filter_map(|(_, v)| v.as_deref())
        .collect();
    (!pw.is_empty()).then_some(pw)
}

/// nova's `convert_password`: `password` (none: cleared) as the four
/// system-metadata items.
pub(crate) fn convert(password: Option<&str>) -> BTreeMap<String, Option<String>> {
    let mut rest: Vec<char> = password.unwrap_or("").chars().collect();
    let mut out = BTreeMap::new();
    for i in 0..CHUNKS {
        let n = rest.len().min(CHUNK_LENGTH);
        let chunk: String = rest.drain(..n).collect();
        out.insert(format!("password_{i}"), Some(chunk));
    }
    out
}

/// Clears the server's password.
pub(crate) async fn clear(st: &ApiState, ctx: &Ctx, inst: Instance) -> ApiResult<()> {
    super::metadata::modify(st, ctx, inst, "system_metadata", Source::Compute, |inst| {
        inst.system_metadata_mut().extend(convert(None));
        Ok(((), true))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_chunked_and_joined_as_nova_does() {
        let long = "x".repeat(300);
        let meta = convert(Some(&long));
        assert_eq!(meta.len(), 4);
        assert_eq!(meta["password_0"].as_deref().map(str::len), Some(255));
        assert_eq!(meta["password_1"].as_deref().map(str::len), Some(45));
        assert_eq!(meta["password_3"].as_deref(), Some(""));
        let inst = Instance::new().with_system_metadata(meta);
        assert_eq!(extract(&inst), Some(long));
        let cleared = Instance::new().with_system_metadata(convert(None));
        assert_eq!(extract(&cleared), None);
    }
}
