//! The console proxies: `nova-novncproxy`, `nova-spicehtml5proxy` and
//! `nova-serialproxy` (nova's `nova/console/websocketproxy.py` on
//! websockify).
//!
//! One HTTP listener per proxy serves its web client's pages (`[DEFAULT]
//! web`: `/usr/share/novnc`, `/usr/share/spice-html5`) and, on a websocket
//! upgrade, proxies to the guest: the token (query `token`, or the
//! `token` cookie noVNC sets) is validated against the `ConsoleAuthToken`
//! records ([`Source`]: hashed lookup, expiry, then the compute's
//! `validate_console_port`), the `Origin` is checked (its host must be
//! the request's `Host` or in `[console] allowed_origins`, its scheme the
//! base URL's), then the guest's TCP port is opened (a `CONNECT` first
//! when the console has an `internal_access_path`), and bytes flow both
//! ways as websockify moves them: binary frames with the `binary`
//! subprotocol (or none), base64 text frames with `base64`. The VNC proxy
//! does the RFB security negotiation itself (the client is offered
//! `None`, the server is answered with `None`; RFB 3.8, nova's
//! `RFBSecurityProxy`). Refusals are answered before the upgrade
//! (403 with the reason), where websockify would accept the socket and
//! close it.
//!
//! - [`app`]: the router of one proxy over any [`Source`];
//! - [`DbSource`]: the records in nova's database and the compute RPC;
//! - [`start`], [`start_enabled`], [`run`]: the wiring on the service
//!   runner (the binaries, and `nova-all` for the enabled consoles);
//! - [`fake_guest`]: small VNC / SPICE / serial servers for tests and the
//!   bench.

pub mod fake_guest;
mod files;
mod proxy;
mod relay;
mod rfb;
mod service;
mod source;
mod tls;
mod websocket;

pub use proxy::{ProxyConfig, ProxyKind, app};
pub use service::{metrics_port, run, start, start_enabled};
pub use source::{ConnectInfo, DbSource, Refused, Source, StaticSource};
pub use tls::TlsOptions;

/// Serves `app` on `listener` as the proxies do with TLS (websockify's
/// per-connection TLS detection; `ssl_only`), until `stop`.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    opts: TlsOptions,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let acceptor = opts.acceptor()?;
    tls::serve(listener, app, acceptor, opts, stop).await;
    Ok(())
}
