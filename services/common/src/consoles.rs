//! Remote consoles: nova's console options (`[vnc]`, `[spice]`,
//! `[serial_console]`, `[mks]`, `[consoleauth]`, `[console]`) and the
//! `ConsoleAuthToken` records the compute authorizes and the proxies
//! validate.
//!
//! A token is a random uuid handed to the user once, inside the console
//! URL; the database keeps only its SHA-256 (hex) in the record's `token`
//! column (nova's `token_hash`), with `expires` = now + `[consoleauth]
//! token_ttl`. Validation hashes the presented token, finds the record and
//! refuses it once expired (deleting it: nova's
//! `console_auth_token_get_valid` + `clean_expired_console_auths`).

use nova_objects::{ConsoleAuthToken, ListQuery, Lookup, Objects, SortDir};
use nova_rpc::RequestContext;
use sha2::{Digest, Sha256};

use crate::Conf;

/// The console settings (nova's option names and defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleOptions {
    /// `[vnc] enabled` (true).
    pub vnc_enabled: bool,
    /// `[vnc] server_listen` (127.0.0.1): where the guest's VNC server listens.
    pub vnc_server_listen: String,
    /// `[vnc] server_proxyclient_address` (127.0.0.1): the address the
    /// proxy connects to.
    pub vnc_proxyclient_address: String,
    /// `[vnc] novncproxy_host` (0.0.0.0).
    pub novncproxy_host: String,
    /// `[vnc] novncproxy_port` (6080).
    pub novncproxy_port: u16,
    /// `[vnc] novncproxy_base_url` (`http://127.0.0.1:6080/vnc_auto.html`).
    pub novncproxy_base_url: String,
    /// `[spice] enabled` (false).
    pub spice_enabled: bool,
    /// `[spice] server_listen` (127.0.0.1).
    pub spice_server_listen: String,
    /// `[spice] server_proxyclient_address` (127.0.0.1).
    pub spice_proxyclient_address: String,
    /// `[spice] html5proxy_host` (0.0.0.0).
    pub html5proxy_host: String,
    /// `[spice] html5proxy_port` (6082).
    pub html5proxy_port: u16,
    /// `[spice] html5proxy_base_url` (`http://127.0.0.1:6082/spice_auto.html`).
    pub html5proxy_base_url: String,
    /// `[spice] spice_direct_proxy_base_url` (`http://127.0.0.1:13002/nova`).
    pub spice_direct_proxy_base_url: String,
    /// `[serial_console] enabled` (false).
    pub serial_enabled: bool,
    /// `[serial_console] base_url` (`ws://127.0.0.1:6083/`).
    pub serial_base_url: String,
    /// `[serial_console] port_range` (10000:20000).
    pub serial_port_range: (u16, u16),
    /// `[serial_console] proxyclient_address` (127.0.0.1).
    pub serial_proxyclient_address: String,
    /// `[serial_console] serialproxy_host` (0.0.0.0).
    pub serialproxy_host: String,
    /// `[serial_console] serialproxy_port` (6083).
    pub serialproxy_port: u16,
    /// `[mks] enabled` (false; no driver here offers MKS).
    pub mks_enabled: bool,
    /// `[mks] mksproxy_base_url`.
    pub mks_base_url: String,
    /// `[consoleauth] token_ttl` in seconds (600).
    pub token_ttl: i64,
    /// `[console] allowed_origins`: host names accepted in a websocket's
    /// `Origin` besides the request's own `Host`.
    pub allowed_origins: Vec<String>,
    /// `[DEFAULT] web`: the directory of the web client's pages (per
    /// proxy: `/usr/share/novnc`, `/usr/share/spice-html5`).
    pub web: Option<String>,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        ConsoleOptions {
            vnc_enabled: true,
            vnc_server_listen: "127.0.0.1".into(),
            vnc_proxyclient_address: "127.0.0.1".into(),
            novncproxy_host: "0.0.0.0".into(),
            novncproxy_port: 6080,
            novncproxy_base_url: "http://127.0.0.1:6080/vnc_auto.html".into(),
            spice_enabled: false,
            spice_server_listen: "127.0.0.1".into(),
            spice_proxyclient_address: "127.0.0.1".into(),
            html5proxy_host: "0.0.0.0".into(),
            html5proxy_port: 6082,
            html5proxy_base_url: "http://127.0.0.1:6082/spice_auto.html".into(),
            spice_direct_proxy_base_url: "http://127.0.0.1:13002/nova".into(),
            serial_enabled: false,
            serial_base_url: "ws://127.0.0.1:6083/".into(),
            serial_port_range: (10000, 20000),
            serial_proxyclient_address: "127.0.0.1".into(),
            serialproxy_host: "0.0.0.0".into(),
            serialproxy_port: 6083,
            mks_enabled: false,
            mks_base_url: "http://127.0.0.1:6090/".into(),
            token_ttl: 600,
            allowed_origins: Vec::new(),
            web: None,
        }
    }
}

impl ConsoleOptions {
    /// From nova.conf.
    pub fn from_conf(conf: &Conf) -> anyhow::Result<Self> {
        let d = Self::default();
        let s = |sec: &str, key: &str, def: &str| conf.str_or(sec, key, def);
        let range = s("serial_console", "port_range", "10000:20000");
        let serial_port_range = range
            .split_once(':')
            .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
            .filter(|(a, b): &(u16, u16)| a < b)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "invalid value '{range}' for [serial_console] port_range: expected MIN:MAX"
                )
            })?;
        Ok(ConsoleOptions {
            vnc_enabled: conf.bool_or("vnc", "enabled", d.vnc_enabled)?,
            vnc_server_listen: s("vnc", "server_listen", &d.vnc_server_listen),
            vnc_proxyclient_address: s(
                "vnc",
                "server_proxyclient_address",
                &d.vnc_proxyclient_address,
            ),
            novncproxy_host: s("vnc", "novncproxy_host", &d.novncproxy_host),
            novncproxy_port: conf.parse_or("vnc", "novncproxy_port", d.novncproxy_port)?,
            novncproxy_base_url: s("vnc", "novncproxy_base_url", &d.novncproxy_base_url),
            spice_enabled: conf.bool_or("spice", "enabled", d.spice_enabled)?,
            spice_server_listen: s("spice", "server_listen", &d.spice_server_listen),
            spice_proxyclient_address: s(
                "spice",
                "server_proxyclient_address",
                &d.spice_proxyclient_address,
            ),
            html5proxy_host: s("spice", "html5proxy_host", &d.html5proxy_host),
            html5proxy_port: conf.parse_or("spice", "html5proxy_port", d.html5proxy_port)?,
            html5proxy_base_url: s("spice", "html5proxy_base_url", &d.html5proxy_base_url),
            spice_direct_proxy_base_url: s(
                "spice",
                "spice_direct_proxy_base_url",
                &d.spice_direct_proxy_base_url,
            ),
            serial_enabled: conf.bool_or("serial_console", "enabled", d.serial_enabled)?,
            serial_base_url: s("serial_console", "base_url", &d.serial_base_url),
            serial_port_range,
            serial_proxyclient_address: s(
                "serial_console",
                "proxyclient_address",
                &d.serial_proxyclient_address,
            ),
            serialproxy_host: s("serial_console", "serialproxy_host", &d.serialproxy_host),
            serialproxy_port: conf.parse_or(
                "serial_console",
                "serialproxy_port",
                d.serialproxy_port,
            )?,
            mks_enabled: conf.bool_or("mks", "enabled", d.mks_enabled)?,
            mks_base_url: s("mks", "mksproxy_base_url", &d.mks_base_url),
            token_ttl: conf.parse_or("consoleauth", "token_ttl", d.token_ttl)?,
            allowed_origins: conf.list("console", "allowed_origins").unwrap_or_default(),
            web: conf.get("DEFAULT", "web").map(str::to_owned),
        })
    }
}

/// SHA-256 of a token, hex (nova's `utils.get_sha256_str`).
pub fn token_hash(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Seconds since the epoch (nova's `timeutils.utcnow_ts`).
pub fn now_ts() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Percent-encodes a query component as Python's `urlencode` does
/// (`quote_plus`: unreserved characters kept, space as `+`).
fn quote_plus(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The console URL for `token` (nova's `ConsoleAuthToken.access_url`):
/// noVNC gets the token inside its `path` parameter (`?path=%3Ftoken%3D…`,
/// noVNC ≥ 1.1 dropped the top-level `token`), every other type
/// `<base>?token=…`.
pub fn access_url(console_type: &str, base: &str, token: &str) -> String {
    if console_type != "novnc" {
        return format!("{base}?token={token}");
    }
    let (head, fragment) = match base.split_once('#') {
        Some((h, f)) => (h, Some(f)),
        None => (base, None),
    };
    let (path, query) = head.split_once('?').unwrap_or((head, ""));
    let mut params: Vec<(String, String)> = form_pairs(query);
    let old_path = params
        .iter()
        .find(|(k, _)| k == "path")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let new_path = format!("{old_path}?token={token}");
    match params.iter_mut().find(|(k, _)| k == "path") {
        Some(p) => p.1 = new_path,
        None => params.push(("path".into(), new_path)),
    }
    let q: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", quote_plus(k), quote_plus(v)))
        .collect();
    let mut url = format!("{path}?{}", q.join("&"));
    if let Some(f) = fragment {
        url.push('#');
        url.push_str(f);
    }
    url
}

/// `application/x-www-form-urlencoded` pairs of a query string.
pub fn form_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Where a console is, as the driver reports it, and what it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleTarget {
    /// `novnc`, `spice-html5`, `spice-direct`, `serial`, `webmks`.
    pub console_type: String,
    /// Host the proxy connects to.
    pub host: String,
    /// Port.
    pub port: i64,
    /// TLS port (SPICE).
    pub tls_port: Option<i64>,
    /// Path to ask for with `CONNECT` first, if any.
    pub internal_access_path: Option<String>,
    /// The instance.
    pub instance_uuid: String,
    /// The proxy's base URL.
    pub access_url_base: String,
}

/// An authorized console: the record and the one copy of its token.
#[derive(Debug, Clone)]
pub struct Authorized {
    /// The stored record (its `token` is the hash).
    pub record: ConsoleAuthToken,
    /// The token itself.
    pub token: String,
    /// The URL to give the user.
    pub access_url: String,
}

/// Authorizes a console for `ttl` seconds (nova's
/// `ConsoleAuthToken.authorize`): a new random token whose hash is stored.
pub async fn authorize(
    objects: &Objects,
    ctx: &RequestContext,
    target: &ConsoleTarget,
    ttl: i64,
) -> nova_objects::Result<Authorized> {
    let token = uuid::Uuid::new_v4().to_string();
    let mut rec = ConsoleAuthToken::default();
    rec.set_console_type(target.console_type.clone());
    rec.set_host(target.host.clone());
    rec.set_port(target.port);
    rec.set_tls_port(target.tls_port);
    rec.set_internal_access_path(target.internal_access_path.clone());
    rec.set_instance_uuid(target.instance_uuid.clone());
    rec.set_access_url_base(Some(target.access_url_base.clone()));
    rec.set_token(token_hash(&token));
    rec.set_expires(now_ts() + ttl);
    objects.create(ctx, &mut rec).await?;
    let access_url = access_url(&target.console_type, &target.access_url_base, &token);
    Ok(Authorized {
        record: rec,
        token,
        access_url,
    })
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRefused {
    /// No record has this token.
    Unknown,
    /// The record expired (it is deleted now).
    Expired,
}

/// The record of a valid `token` (nova's `ConsoleAuthToken.validate`);
/// an expired one is deleted and refused.
pub async fn validate(
    objects: &Objects,
    ctx: &RequestContext,
    token: &str,
) -> nova_objects::Result<Result<ConsoleAuthToken, TokenRefused>> {
    if token.is_empty() {
        return Ok(Err(TokenRefused::Unknown));
    }
    let found: nova_objects::Result<ConsoleAuthToken> = objects
        .get(ctx, Lookup::field("token", token_hash(token)))
        .await;
    let mut rec = match found {
        Ok(r) => r,
        Err(e) if e.is_not_found() => return Ok(Err(TokenRefused::Unknown)),
        Err(e) => return Err(e),
    };
    if *rec.expires() <= now_ts() {
        match objects.destroy(ctx, &mut rec).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        return Ok(Err(TokenRefused::Expired));
    }
    Ok(Ok(rec))
}

/// Deletes expired records, oldest expiry first, up to `limit` (nova's
/// `clean_expired_console_auths`); returns how many.
pub async fn purge_expired(
    objects: &Objects,
    ctx: &RequestContext,
    limit: u64,
) -> nova_objects::Result<usize> {
    let q = ListQuery::new().sort("expires", SortDir::Asc).limit(limit);
    let recs: Vec<ConsoleAuthToken> = objects.list(ctx, &q).await?;
    let now = now_ts();
    let mut n = 0;
    for mut r in recs {
        if *r.expires() > now {
            break;
        }
        match objects.destroy(ctx, &mut r).await {
            Ok(()) => n += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn novnc_urls_carry_the_token_in_path_as_nova_builds_them() {
        assert_eq!(
            access_url("novnc", "http://127.0.0.1:6080/vnc_auto.html", "abc-1"),
            "http://127.0.0.1:6080/vnc_auto.html?path=%3Ftoken%3Dabc-1"
        );
        assert_eq!(
            access_url("novnc", "http://h:6080/vnc_lite.html?path=websockify", "t"),
            "http://h:6080/vnc_lite.html?path=websockify%3Ftoken%3Dt"
        );
        assert_eq!(
            access_url("serial", "ws://127.0.0.1:6083/", "t"),
            "ws://127.0.0.1:6083/?token=t"
        );
        assert_eq!(
            access_url("spice-html5", "http://h:6082/spice_auto.html", "t"),
            "http://h:6082/spice_auto.html?token=t"
        );
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn options_read_nova_names() {
        let conf = Conf::parse(
            "[vnc]\nnovncproxy_port = 7000\n[serial_console]\nenabled = true\nport_range = 100:200\n[console]\nallowed_origins = a, b\n",
        )
        .unwrap();
        let o = ConsoleOptions::from_conf(&conf).unwrap();
        assert_eq!(o.novncproxy_port, 7000);
        assert!(o.serial_enabled && o.vnc_enabled && !o.spice_enabled);
        assert_eq!(o.serial_port_range, (100, 200));
        assert_eq!(o.allowed_origins, vec!["a".to_owned(), "b".to_owned()]);
        let bad = Conf::parse("[serial_console]\nport_range = 5\n").unwrap();
        assert!(ConsoleOptions::from_conf(&bad).is_err());
    }
}
