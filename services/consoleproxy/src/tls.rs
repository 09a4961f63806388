//! The proxies' own listener with TLS, as websockify's (nova's `[DEFAULT]
//! ssl_only`, `cert`, `key`): each connection's first byte tells a TLS
//! ClientHello (`0x16`, or `0x80` for an SSLv2-style hello) from plain
//! HTTP. A TLS connection is accepted with the certificate in `cert` (and
//! the key in `key`, else in `cert`); without the certificate file it is
//! refused ("SSL connection but 'self.pem' not found"). A plain
//! connection is refused when `ssl_only` is set.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

/// nova's `[DEFAULT] ssl_only`, `cert` and `key`.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// `ssl_only`: refuse plain connections.
    pub ssl_only: bool,
    /// `cert` (`self.pem`, relative to the working directory, as nova).
    pub cert: PathBuf,
    /// `key`: the private key's file (else the key is in `cert`).
    pub key: Option<PathBuf>,
}

impl TlsOptions {
    /// From nova.conf.
    pub fn from_conf(conf: &nova_service::Conf) -> anyhow::Result<Self> {
        Ok(TlsOptions {
            ssl_only: conf.bool_or("DEFAULT", "ssl_only", false)?,
            cert: PathBuf::from(conf.str_or("DEFAULT", "cert", "self.pem")),
            key: conf
                .get("DEFAULT", "key")
                .filter(|k| !k.is_empty())
                .map(PathBuf::from),
        })
    }

    /// The acceptor of the certificate, `None` without its file (then only
    /// plain connections are served); `ssl_only` without it is an error.
    pub fn acceptor(&self) -> anyhow::Result<Option<TlsAcceptor>> {
        if !self.cert.exists() {
            if self.ssl_only {
                anyhow::bail!(
                    "[DEFAULT] ssl_only is set but the certificate {} does not exist",
                    self.cert.display()
                );
            }
            return Ok(None);
        }
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .with_context(|| format!("reading {}", self.cert.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("certificates in {}", self.cert.display()))?;
        if certs.is_empty() {
            anyhow::bail!("no certificate in {}", self.cert.display());
        }
        let key_file: &Path = self.key.as_deref().unwrap_or(&self.cert);
        let key = PrivateKeyDer::from_pem_file(key_file)
            .with_context(|| format!("no private key in {}", key_file.display()))?;
        let cfg = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("the certificate and key do not match")?;
        Ok(Some(TlsAcceptor::from(Arc::new(cfg))))
    }
}

/// Serves `app` on `listener` until `stop`: TLS or plain per connection.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    opts: TlsOptions,
    stop: CancellationToken,
) {
    loop {
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let (app, tls, opts, stop) = (app.clone(), tls.clone(), opts.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                r = connection(tcp, app, tls.as_ref(), &opts) => {
                    if let Err(e) = r {
                        tracing::info!(error = %e, "console proxy connection refused");
                    }
                }
                _ = stop.cancelled() => {}
            }
        });
    }
}

async fn connection(
    tcp: TcpStream,
    app: Router,
    tls: Option<&TlsAcceptor>,
    opts: &TlsOptions,
) -> Result<(), String> {
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(30), tcp.peek(&mut first))
        .await
        .map_err(|_| "no request within 30 s".to_owned())?
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(());
    }
    let service = TowerToHyperService::new(app);
    let http = hyper::server::conn::http1::Builder::new();
    if first[0] == 0x16 || first[0] == 0x80 {
        let Some(acceptor) = tls else {
            return Err(format!(
                "SSL connection but '{}' not found",
                opts.cert.display()
            ));
        };
        let stream = tokio::time::timeout(Duration::from_secs(30), acceptor.accept(tcp))
            .await
            .map_err(|_| "TLS handshake timed out".to_owned())?
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        http.serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await
            .map_err(|e| e.to_string())
    } else if opts.ssl_only {
        Err("non-SSL connection received but disallowed".into())
    } else {
        http.serve_connection(TokioIo::new(tcp), service)
            .with_upgrades()
            .await
            .map_err(|e| e.to_string())
    }
}
