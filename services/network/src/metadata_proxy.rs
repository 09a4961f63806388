//! The metadata forwarder of one network: an HTTP server listening on
//! 169.254.169.254:80 inside the network's `qdhcp-` namespace (its socket is
//! opened by a short-lived thread that enters the namespace; the server runs
//! on this process's runtime), passing each request to nova-api-metadata
//! with the guest's address as `X-Forwarded-For` (nova's lookup by fixed
//! address, `[api] use_forwarded_for`) and `X-Neutron-Network-ID`, as
//! Neutron's isolated-metadata proxy does. Headers a guest could use to
//! claim another identity are dropped.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use nix::sched::CloneFlags;
use uuid::Uuid;

/// Where guests ask for metadata.
pub(crate) const METADATA_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254));

/// The largest request body passed on (a password POST is 255 bytes).
const BODY_LIMIT: usize = 1 << 20;

/// Headers never passed on: hop-by-hop ones, and the identity headers
/// only the forwarder itself may set.
const DROPPED: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-instance-id",
    "x-instance-id-signature",
    "x-tenant-id",
    "x-metadata-provider",
    "x-metadata-provider-signature",
    "x-neutron-network-id",
    "x-neutron-router-id",
];

/// A running forwarder; dropping it stops it.
#[derive(Debug)]
pub(crate) struct MetadataProxy {
    task: tokio::task::JoinHandle<()>,
    /// The namespace's inode when the socket was opened: a namespace
    /// deleted and made again needs a new socket.
    netns_ino: u64,
}

impl Drop for MetadataProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MetadataProxy {
    /// Whether it still serves the namespace `ns` as it is now.
    pub(crate) fn serves(&self, ns: &str) -> bool {
        !self.task.is_finished() && netns_ino(ns).ok() == Some(self.netns_ino)
    }
}

#[derive(Debug)]
struct Forward {
    client: reqwest::Client,
    upstream: String,
    network_id: Uuid,
}

fn netns_ino(ns: &str) -> std::io::Result<u64> {
    Ok(std::fs::metadata(Path::new("/run/netns").join(ns))?.ino())
}

/// A TCP listener bound to `addr` inside the namespace `ns`. The socket
/// keeps its namespace; the thread that made it ends right away.
async fn listen_in(ns: &str, addr: SocketAddr) -> anyhow::Result<(std::net::TcpListener, u64)> {
    let path = Path::new("/run/netns").join(ns);
    let ns = ns.to_owned();
    tokio::task::spawn_blocking(move || {
        std::thread::scope(|s| {
            s.spawn(|| -> anyhow::Result<(std::net::TcpListener, u64)> {
                let f = File::open(&path).with_context(|| format!("{}", path.display()))?;
                let ino = f.metadata()?.ino();
                nix::sched::setns(&f, CloneFlags::CLONE_NEWNET)
                    .with_context(|| format!("cannot enter namespace {ns}"))?;
                let l = std::net::TcpListener::bind(addr)
                    .with_context(|| format!("cannot listen on {addr} in {ns}"))?;
                l.set_nonblocking(true)?;
                Ok((l, ino))
            })
            .join()
            .map_err(|_| anyhow!("the thread entering {ns} panicked"))?
        })
    })
    .await?
}

/// Starts the forwarder of `network_id` in namespace `ns` to `upstream`
/// (nova-api-metadata's base URL, e.g. `http://127.0.0.1:8775`).
pub(crate) async fn start(
    ns: &str,
    network_id: Uuid,
    upstream: &str,
) -> anyhow::Result<MetadataProxy> {
    // A forwarder being stopped (its task aborted a moment ago) may still
    // hold the port for a little while.
    let mut tries = 0;
    let (listener, netns_ino) = loop {
        match listen_in(ns, SocketAddr::new(METADATA_ADDR, 80)).await {
            Ok(l) => break l,
            Err(e) if tries < 20 => {
                tracing::debug!(namespace = ns, error = %e, "metadata listener not ready yet");
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let state = Arc::new(Forward {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            // Straight to nova-api-metadata, never through an HTTP proxy.
            .no_proxy()
            .build()?,
        upstream: upstream.trim_end_matches('/').to_owned(),
        network_id,
    });
    let app = Router::new().fallback(forward).with_state(state);
    let ns_name = ns.to_owned();
    let task = tokio::spawn(async move {
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
        if let Err(e) = served {
            tracing::error!(namespace = ns_name, error = %e, "metadata forwarder stopped");
        }
    });
    Ok(MetadataProxy { task, netns_ino })
}

async fn forward(
    State(f): State<Arc<Forward>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", f.upstream);
    let mut headers = HeaderMap::new();
    for (k, v) in &parts.headers {
        if !DROPPED.contains(&k.as_str()) {
            headers.append(k.clone(), v.clone());
        }
    }
    let guest = peer.ip().to_canonical().to_string();
    if let Ok(v) = HeaderValue::from_str(&guest) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    if let Ok(v) = HeaderValue::from_str(&f.network_id.to_string()) {
        headers.insert(HeaderName::from_static("x-neutron-network-id"), v);
    }
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
    };
    let sent = f
        .client
        .request(parts.method, &url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(guest, url, error = %e, "metadata service unreachable");
            return (StatusCode::BAD_GATEWAY, "metadata service unreachable").into_response();
        }
    };
    let status = resp.status();
    let mut out_headers = HeaderMap::new();
    for (k, v) in resp.headers() {
        if !DROPPED.contains(&k.as_str()) {
            out_headers.append(k.clone(), v.clone());
        }
    }
    match resp.bytes().await {
        Ok(b) => {
            let mut r = Response::new(Body::from(b));
            *r.status_mut() = status;
            *r.headers_mut() = out_headers;
            r
        }
        Err(e) => {
            tracing::warn!(guest, url, error = %e, "metadata answer cut short");
            (StatusCode::BAD_GATEWAY, "metadata service answer cut short").into_response()
        }
    }
}
