//! Nova's RPC interfaces, one module per service: the topic, the
//! namespace, the version history, the argument structures (shared by the
//! client and the server so both sides agree on names) and a typed client.
//! This is nova's `rpcapi.py` layer; it keeps `nova-rpc` generic and stops
//! the services from linking each other.
//!
//! Objects travel as oslo.versionedobjects primitives (`serde_json::Value`
//! holding `nova_object.*` keys), exactly as Nova's `NovaObjectSerializer`
//! puts them on the wire.

pub mod base;
pub mod compute;
pub mod conductor;
pub mod scheduler;

use std::time::Duration;

pub use nova_rpc::{RequestContext, Version};

/// How long a `call` waits before `MessagingTimeout` (`rpc_response_timeout`).
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(60);

/// Parses an `[upgrade_levels]` value: a version (`6.0`), a release alias
/// known to `aliases`, or `auto`/empty (no cap).
pub fn parse_version_cap(
    value: &str,
    aliases: &[(&str, Version)],
) -> Result<Option<Version>, String> {
    let v = value.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    if let Some((_, ver)) = aliases.iter().find(|(n, _)| n.eq_ignore_ascii_case(v)) {
        return Ok(Some(*ver));
    }
    v.parse::<Version>()
        .map(Some)
        .map_err(|_| format!("'{v}' is neither a version (X.Y) nor a known release name"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn caps_parse_versions_aliases_and_auto() {
        let aliases = compute::VERSION_ALIASES;
        assert_eq!(parse_version_cap("auto", aliases).unwrap(), None);
        assert_eq!(parse_version_cap("", aliases).unwrap(), None);
        assert_eq!(
            parse_version_cap("zed", aliases).unwrap(),
            Some(Version::new(6, 1))
        );
        assert_eq!(
            parse_version_cap("5.12", aliases).unwrap(),
            Some(Version::new(5, 12))
        );
        assert!(parse_version_cap("banana", aliases).is_err());
    }
}
