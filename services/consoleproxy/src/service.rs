//! The proxies' wiring on the service runner: what `nova-novncproxy`,
//! `nova-spicehtml5proxy`, `nova-serialproxy` and `nova-all` start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nova_rpcapi::compute::ComputeApi;
use nova_service::consoles::{self, ConsoleOptions};
use nova_service::{Runner, compute_version_cap};

use crate::proxy::{ProxyConfig, ProxyKind, app};
use crate::source::DbSource;
use crate::tls::TlsOptions;

/// The default `[metrics] port` of proxy `kind`'s binary.
pub fn metrics_port(kind: ProxyKind) -> u16 {
    use nova_service::metrics::{NOVNCPROXY_PORT, SERIALPROXY_PORT, SPICEHTML5PROXY_PORT};
    match kind {
        ProxyKind::NoVnc => NOVNCPROXY_PORT,
        ProxyKind::SpiceHtml5 => SPICEHTML5PROXY_PORT,
        ProxyKind::Serial => SERIALPROXY_PORT,
    }
}

/// `(host, port)` the proxy listens on, from its options.
fn listen(o: &ConsoleOptions, kind: ProxyKind) -> (String, u16) {
    match kind {
        ProxyKind::NoVnc => (o.novncproxy_host.clone(), o.novncproxy_port),
        ProxyKind::SpiceHtml5 => (o.html5proxy_host.clone(), o.html5proxy_port),
        ProxyKind::Serial => (o.serialproxy_host.clone(), o.serialproxy_port),
    }
}

/// Starts proxy `kind` on `runner` (its options from the runner's
/// nova.conf): the listener (with TLS when `[DEFAULT] cert` exists;
/// `ssl_only` refuses plain connections), the database lookup with the compute RPC,
/// and a task deleting expired tokens every minute. Returns where it
/// listens.
pub async fn start(runner: &Runner, kind: ProxyKind) -> anyhow::Result<SocketAddr> {
    let conf = runner.conf();
    let o = ConsoleOptions::from_conf(conf)?;
    let (host, port) = listen(&o, kind);
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .map_err(|e| anyhow::anyhow!("{}: cannot listen on {host}:{port}: {e}", kind.binary()))?;
    let addr = listener.local_addr()?;
    let objects = runner.objects().await?;
    let transport = runner.transport().await?;
    let compute = ComputeApi::new(transport).version_cap(compute_version_cap(conf)?);
    let web = o
        .web
        .clone()
        .or_else(|| kind.default_web().map(str::to_owned))
        .map(PathBuf::from);
    let cfg = ProxyConfig {
        kind,
        web,
        allowed_origins: o.allowed_origins.clone(),
        stop: runner.stop_token(),
    };
    let source = Arc::new(DbSource::new(objects.clone(), compute));
    let tls_opts = TlsOptions::from_conf(conf)?;
    match tls_opts.acceptor()? {
        // websockify's listener: TLS or plain, per connection.
        Some(acceptor) => {
            let stop = runner.stop_token();
            let app = nova_service::metrics::instrument_named(app(cfg, source), kind.binary());
            let h = tokio::spawn(crate::tls::serve(
                listener,
                app,
                Some(acceptor),
                tls_opts,
                stop,
            ));
            runner.task(kind.binary(), h);
        }
        None => runner.http(kind.binary(), listener, app(cfg, source)),
    }
    runner.periodic(
        &format!("{} expired token purge", kind.binary()),
        Duration::from_secs(60),
        Duration::from_secs(5),
        move || {
            let objects = objects.clone();
            async move {
                match consoles::purge_expired(&objects, &nova_service::context::admin(), 1000).await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(n, "expired console tokens deleted"),
                    Err(e) => tracing::warn!(error = %e, "cannot delete expired console tokens"),
                }
            }
        },
    );
    tracing::info!(%addr, "{} started", kind.binary());
    Ok(addr)
}

/// `nova-all`: starts the proxy of every enabled console (`[vnc]
/// enabled`, `[spice] enabled`, `[serial_console] enabled`). A port that
/// is taken is logged and skipped (several all-in-ones on one machine
/// share nova's default ports); other errors stop start-up.
pub async fn start_enabled(runner: &Runner) -> anyhow::Result<Vec<(ProxyKind, SocketAddr)>> {
    let o = ConsoleOptions::from_conf(runner.conf())?;
    let mut out = Vec::new();
    for (kind, on) in [
        (ProxyKind::NoVnc, o.vnc_enabled),
        (ProxyKind::SpiceHtml5, o.spice_enabled),
        (ProxyKind::Serial, o.serial_enabled),
    ] {
        if !on {
            continue;
        }
        match start(runner, kind).await {
            Ok(a) => out.push((kind, a)),
            Err(e) if e.to_string().contains("cannot listen") => {
                tracing::warn!("{e}: not started")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// A proxy binary: starts it, then serves until SIGTERM and drains. With
/// `[metrics] enabled`, `/metrics` on a listener of its own (`[metrics]
/// host`:`port`, by default 127.0.0.1 and [`metrics_port`]): the proxy's
/// port faces browsers.
pub async fn run(runner: Runner, kind: ProxyKind) -> anyhow::Result<()> {
    nova_service::metrics::serve(&runner, metrics_port(kind)).await?;
    start(&runner, kind).await?;
    runner.run().await
}
