//! One proxy's HTTP side: the web client's pages, and the websocket
//! upgrade after the token and `Origin` checks.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::source::{ConnectInfo, Refused, Source};

/// Which proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// `nova-novncproxy`: VNC, with the RFB security negotiation.
    NoVnc,
    /// `nova-spicehtml5proxy`: SPICE.
    SpiceHtml5,
    /// `nova-serialproxy`: the guest's TCP serial port.
    Serial,
}

impl ProxyKind {
    /// The binary's name.
    pub fn binary(self) -> &'static str {
        match self {
            ProxyKind::NoVnc => "nova-novncproxy",
            ProxyKind::SpiceHtml5 => "nova-spicehtml5proxy",
            ProxyKind::Serial => "nova-serialproxy",
        }
    }

    /// The web client's directory the binary defaults `[DEFAULT] web` to.
    pub fn default_web(self) -> Option<&'static str> {
        match self {
            ProxyKind::NoVnc => Some("/usr/share/novnc"),
            ProxyKind::SpiceHtml5 => Some("/usr/share/spice-html5"),
            ProxyKind::Serial => None,
        }
    }

    /// Whether a token of `console_type` may use this proxy.
    fn serves(self, console_type: &str) -> bool {
        match self {
            ProxyKind::NoVnc => console_type == "novnc",
            ProxyKind::SpiceHtml5 => console_type == "spice-html5",
            ProxyKind::Serial => console_type == "serial",
        }
    }
}

/// One proxy's settings.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Which proxy.
    pub kind: ProxyKind,
    /// The web client's pages (`[DEFAULT] web`), if any.
    pub web: Option<PathBuf>,
    /// `[console] allowed_origins`.
    pub allowed_origins: Vec<String>,
    /// Ends the relays when the service stops.
    pub stop: CancellationToken,
}

#[derive(Debug)]
struct Shared {
    cfg: ProxyConfig,
    source: Arc<dyn Source>,
}

/// The proxy's router: `GET` of a page under the web directory, or a
/// websocket upgrade on any path.
pub fn app(cfg: ProxyConfig, source: Arc<dyn Source>) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Arc::new(Shared { cfg, source }))
}

fn refuse(status: StatusCode, msg: &str) -> Response {
    tracing::info!(
        status = status.as_u16(),
        "console connection refused: {msg}"
    );
    (status, format!("{msg}\n")).into_response()
}

/// The `token` query parameter, else the `token` cookie (noVNC's).
fn token_of(query: Option<&str>, headers: &HeaderMap) -> String {
    if let Some(q) = query
        && let Some((_, t)) = nova_service::consoles::form_pairs(q)
            .into_iter()
            .rev()
            .find(|(k, _)| k == "token")
        && !t.is_empty()
    {
        return t;
    }
    for c in headers.get_all(header::COOKIE) {
        let Ok(c) = c.to_str() else { continue };
        for part in c.split(';') {
            if let Some((k, v)) = part.trim().split_once('=')
                && k.trim() == "token"
            {
                return v.trim().trim_matches('"').to_owned();
            }
        }
    }
    String::new()
}

/// `(scheme, host)` of a URL (`scheme://host[:port]/...`); the host
/// lower-cased, IPv6 brackets removed.
fn scheme_host(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or("");
    Some((scheme.to_ascii_lowercase(), host_of(authority)))
}

/// The host of `host[:port]` (nova's `netutils.parse_host_port`).
fn host_of(authority: &str) -> String {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_ascii_lowercase();
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) => {
            h.to_ascii_lowercase()
        }
        _ => authority.to_ascii_lowercase(),
    }
}

/// Nova's origin check: no `Origin` (not a browser) passes; otherwise its
/// host is the request's `Host` or an allowed origin, and its scheme
/// (`X-Forwarded-Proto` first) is the base URL's (`ws` also takes `http`,
/// `wss` `https`).
fn check_origin(
    headers: &HeaderMap,
    allowed: &[String],
    info: &ConnectInfo,
) -> Result<(), &'static str> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| "Origin header not valid.")?;
    let (mut scheme, host) = scheme_host(origin).ok_or("Origin header not valid.")?;
    if let Some(p) = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        scheme = p.to_ascii_lowercase();
    }
    if host.is_empty() || scheme.is_empty() {
        return Err("Origin header not valid.");
    }
    let own = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(host_of)
        .unwrap_or_default();
    if host != own && !allowed.iter().any(|a| a.eq_ignore_ascii_case(&host)) {
        return Err("Origin header does not match this host.");
    }
    let base_scheme = scheme_host(&info.access_url_base)
        .map(|(s, _)| s)
        .unwrap_or_default();
    let ok = scheme == base_scheme
        || (base_scheme == "ws" && scheme == "http")
        || (base_scheme == "wss" && scheme == "https");
    if !ok {
        return Err("Origin header protocol does not match this host.");
    }
    Ok(())
}

async fn handle(state: State<Arc<Shared>>, req: Request) -> Response {
    let is_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let mut resp = answer(state, req, is_upgrade).await;
    // The `route` label (`[metrics]`): a console connection or a web
    // client's file, never the raw path.
    let route = if is_upgrade {
        "/{websocket}"
    } else {
        "/{file}"
    };
    resp.extensions_mut()
        .insert(nova_service::metrics::RouteLabel(route));
    resp
}

async fn answer(State(sh): State<Arc<Shared>>, req: Request, is_upgrade: bool) -> Response {
    if !is_upgrade {
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        drop(req);
        return crate::files::serve(sh.cfg.web.as_deref(), method, path).await;
    }
    let (mut parts, _body) = req.into_parts();
    if parts.method != Method::GET {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "websocket upgrades are GETs",
        );
    }
    let accept = match crate::websocket::check_handshake(&parts.headers) {
        Ok(a) => a,
        Err(msg) => return refuse(StatusCode::BAD_REQUEST, msg),
    };
    let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "the connection cannot be upgraded",
        );
    };
    let token = token_of(parts.uri.query(), &parts.headers);
    let info = match sh.source.connect_info(&token).await {
        Ok(i) if sh.cfg.kind.serves(&i.console_type) => i,
        Ok(_) | Err(Refused::InvalidToken) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "The token '***' is invalid or has expired",
            );
        }
        Err(Refused::Failed(e)) => {
            tracing::error!(error = %e, "console token lookup failed");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "console token lookup failed",
            );
        }
    };
    if let Err(msg) = check_origin(&parts.headers, &sh.cfg.allowed_origins, &info) {
        return refuse(StatusCode::FORBIDDEN, msg);
    }
    // Connect before accepting: a guest that is not there is an error the
    // client sees as such.
    let guest = match crate::relay::connect(&info).await {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(host = %info.host, port = info.port, error = %e, "cannot reach the console");
            return refuse(StatusCode::BAD_GATEWAY, "cannot reach the console");
        }
    };
    // websockify's subprotocols: the first the client asks for that it knows.
    let chosen = parts
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| match p.trim() {
            "binary" => Some(("binary", crate::relay::Mode::Binary)),
            "base64" => Some(("base64", crate::relay::Mode::Base64)),
            _ => None,
        });
    let mode = chosen.map_or(crate::relay::Mode::Binary, |(_, m)| m);
    let kind = sh.cfg.kind;
    let stop = sh.cfg.stop.clone();
    tracing::info!(instance = %info.instance_uuid, host = %info.host, port = info.port, "console connection");
    tokio::spawn(async move {
        let client = match on_upgrade.await {
            Ok(u) => client_of(u),
            Err(e) => {
                tracing::info!(error = %e, "websocket upgrade failed");
                return;
            }
        };
        let r = crate::relay::run(client, guest, mode, kind == ProxyKind::NoVnc, stop).await;
        if let Err(e) = r {
            tracing::info!(error = %e, "console connection ended");
        }
    });
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    if let Some((p, _)) = chosen {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    r
}

/// The upgraded connection in halves: the TCP socket itself when the
/// listener is plain TCP (no locking between the halves), else the
/// upgraded stream split.
fn client_of(u: hyper::upgrade::Upgraded) -> crate::relay::Client {
    match u.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let tcp = parts.io.into_inner();
            let _ = tcp.set_nodelay(true);
            let (r, w) = tcp.into_split();
            crate::relay::Client {
                read: Box::pin(r),
                write: Box::pin(w),
                already: parts.read_buf,
            }
        }
        Err(u) => {
            let (r, w) = tokio::io::split(TokioIo::new(u));
            crate::relay::Client {
                read: Box::pin(r),
                write: Box::pin(w),
                already: bytes::Bytes::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(base: &str) -> ConnectInfo {
        ConnectInfo {
            console_type: "novnc".into(),
            host: "127.0.0.1".into(),
            port: 5900,
            internal_access_path: None,
            access_url_base: base.into(),
            instance_uuid: "u".into(),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn origin_must_be_this_host_or_allowed_with_the_base_scheme() {
        let i = info("http://proxy.example:6080/vnc_auto.html");
        let ok = headers(&[
            ("host", "proxy.example:6080"),
            ("origin", "http://proxy.example:6080"),
        ]);
        assert_eq!(check_origin(&ok, &[], &i), Ok(()));
        let none = headers(&[("host", "proxy.example:6080")]);
        assert_eq!(check_origin(&none, &[], &i), Ok(()));
        let foreign = headers(&[
            ("host", "proxy.example:6080"),
            ("origin", "http://evil.example"),
        ]);
        assert_eq!(
            check_origin(&foreign, &[], &i),
            Err("Origin header does not match this host.")
        );
        assert_eq!(check_origin(&foreign, &["evil.example".into()], &i), Ok(()));
        let https = headers(&[
            ("host", "proxy.example"),
            ("origin", "https://proxy.example"),
        ]);
        assert_eq!(
            check_origin(&https, &[], &i),
            Err("Origin header protocol does not match this host.")
        );
        let ws = info("ws://127.0.0.1:6083/");
        let http = headers(&[
            ("host", "127.0.0.1:6083"),
            ("origin", "http://127.0.0.1:6083"),
        ]);
        assert_eq!(check_origin(&http, &[], &ws), Ok(()));
        let v6 = headers(&[("host", "[::1]:6080"), ("origin", "http://[::1]:6080")]);
        assert_eq!(check_origin(&v6, &[], &i), Ok(()));
    }

    #[test]
    fn token_from_query_or_cookie() {
        let h = headers(&[("cookie", "a=b; token=tok2")]);
        assert_eq!(token_of(Some("token=tok1"), &h), "tok1");
        assert_eq!(token_of(None, &h), "tok2");
        assert_eq!(token_of(Some("x=1"), &HeaderMap::new()), "");
    }
}
