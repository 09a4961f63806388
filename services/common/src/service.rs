//! The service runner: what every nova-rs service process does around its
//! manager, once.
//!
//! A binary parses its [`ConfigArgs`], builds a [`Runner`] and hands it to
//! its crate's wiring (`nova_conductor::run(runner)` and so on), which takes
//! what it needs from the runner — the transport, the database, Placement,
//! cell1 — and gives it what it starts: RPC servers, HTTP servers, periodic
//! tasks, the service record with its heartbeats. [`Runner::run`] then
//! waits for SIGTERM/SIGINT and drains, in this order:
//!
//! 1. HTTP servers stop accepting connections and finish the requests in
//!    flight (idle keep-alive connections are closed);
//! 2. RPC servers stop consuming and finish the requests they hold, the
//!    last started first (in one process: computes before the conductor
//!    before the scheduler, so work in flight can still call what it needs);
//! 3. periodic tasks and heartbeats stop (a pass that is running finishes).
//!
//! `nova-all` runs every service's wiring on one runner (one transport, one
//! database, one Placement) and shuts down through the same drain.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt as _;
use nova_objects::db::Database;
use nova_objects::{CellMapping, Objects, Service};
use nova_placement::{PlacementHandle, SqlPlacement};
use nova_rpc::{RpcServer, Transport, Version};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::conf::Conf;

/// The `--config` option every service binary takes.
#[derive(clap::Args, Debug, Clone)]
pub struct ConfigArgs {
    /// nova.conf files (later ones override earlier ones).
    #[arg(
        long = "config",
        alias = "config-file",
        default_value = "/etc/nova/nova.conf",
        global = true
    )]
    pub config: Vec<PathBuf>,
}

impl ConfigArgs {
    /// The configuration these files give ([`Conf::for_service`]: files,
    /// `NOVA_*` overrides, logging, warnings about unknown options).
    pub fn conf(&self) -> anyhow::Result<Conf> {
        Ok(Conf::for_service(&self.config)?)
    }
}

/// `[upgrade_levels] compute` as a version cap for compute RPC clients
/// (`auto`: none).
pub fn compute_version_cap(conf: &Conf) -> anyhow::Result<Option<Version>> {
    nova_rpcapi::parse_version_cap(
        &conf.str_or("upgrade_levels", "compute", "auto"),
        nova_rpcapi::compute::VERSION_ALIASES,
    )
    .map_err(|e| anyhow::anyhow!("[upgrade_levels] compute: {e}"))
}

/// How long the drain waits for HTTP requests in flight (the RPC servers
/// have their own, [`nova_rpc::ServerConfig::drain_timeout`]).
pub const HTTP_DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What the runner drains on shutdown.
#[derive(Default)]
struct Parts {
    http: Vec<(String, JoinHandle<()>)>,
    rpc: Vec<RpcServer>,
    tasks: Vec<(String, JoinHandle<()>)>,
}

struct Inner {
    conf: Conf,
    stop: CancellationToken,
    sync_schema: AtomicBool,
    transport: OnceCell<Arc<dyn Transport>>,
    database: OnceCell<Arc<Database>>,
    objects: OnceCell<Objects>,
    placement: OnceCell<PlacementHandle>,
    cell1: OnceCell<CellMapping>,
    notifier: OnceCell<crate::notifications::Notifier>,
    service_user: std::sync::OnceLock<Option<Arc<crate::service_auth::ServiceUser>>>,
    parts: Mutex<Parts>,
    http_drain_timeout: Duration,
}

/// One service process (or, in `nova-all`, all of them): its
/// configuration, its shared connections (opened once, on first use), and
/// everything it started, drained on stop. Cheap to clone (shared).
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = self.parts();
        f.debug_struct("Runner")
            .field("host", &self.host())
            .field("stopped", &self.inner.stop.is_cancelled())
            .field("http_servers", &parts.http.len())
            .field("rpc_servers", &parts.rpc.len())
            .field("tasks", &parts.tasks.len())
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// A runner on `conf`; it stops when [`Runner::stop_token`] is
    /// cancelled or [`Runner::shutdown`] is called (no signal handling:
    /// see [`Runner::with_signals`]).
    pub fn new(conf: Conf) -> Self {
        Self::with_http_drain_timeout(conf, HTTP_DRAIN_TIMEOUT)
    }

    fn with_http_drain_timeout(conf: Conf, http_drain_timeout: Duration) -> Self {
        Runner {
            inner: Arc::new(Inner {
                conf,
                stop: CancellationToken::new(),
                sync_schema: AtomicBool::new(false),
                transport: OnceCell::new(),
                database: OnceCell::new(),
                objects: OnceCell::new(),
                placement: OnceCell::new(),
                cell1: OnceCell::new(),
                notifier: OnceCell::new(),
                service_user: std::sync::OnceLock::new(),
                parts: Mutex::default(),
                http_drain_timeout,
            }),
        }
    }

    /// What a service binary starts with: the configuration of `args`
    /// (logging started) and a stop on SIGTERM or SIGINT.
    pub fn from_args(args: &ConfigArgs) -> anyhow::Result<Self> {
        Ok(Self::new(args.conf()?).with_signals())
    }

    /// Stops on SIGTERM or SIGINT (needs a Tokio runtime).
    pub fn with_signals(self) -> Self {
        let signals = crate::shutdown_token();
        let stop = self.inner.stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = signals.cancelled() => stop.cancel(),
                _ = stop.cancelled() => {}
            }
        });
        self
    }

    /// Runs the database migrations when the database is opened (the
    /// all-in-one does; split services expect `nova-manage db sync` and
    /// refuse an old schema).
    pub fn with_schema_sync(self) -> Self {
        self.inner.sync_schema.store(true, Ordering::Relaxed);
        self
    }

    /// The configuration.
    pub fn conf(&self) -> &Conf {
        &self.inner.conf
    }

    /// `[DEFAULT] host`.
    pub fn host(&self) -> String {
        self.inner.conf.host()
    }

    /// Cancelled when the runner stops: what a service starts outside the
    /// runner watches it (children of it stop with it).
    pub fn stop_token(&self) -> CancellationToken {
        self.inner.stop.clone()
    }

    // The accessors box their start-up futures: they nest (cell1 →
    // objects → database), and a service's start-up future would otherwise
    // be too deep for the compiler's layout queries.

    /// The RPC transport ([`crate::connect_transport`]), connected once.
    pub async fn transport(&self) -> anyhow::Result<Arc<dyn Transport>> {
        let t = self
            .inner
            .transport
            .get_or_try_init(|| crate::connect_transport(&self.inner.conf).boxed())
            .await?;
        Ok(t.clone())
    }

    /// The database ([`crate::open_database`]), opened once.
    pub async fn database(&self) -> anyhow::Result<Arc<Database>> {
        let db = self
            .inner
            .database
            .get_or_try_init(|| {
                async {
                    let sync = self.inner.sync_schema.load(Ordering::Relaxed);
                    Ok::<_, anyhow::Error>(Arc::new(
                        crate::open_database(&self.inner.conf, sync).await?,
                    ))
                }
                .boxed()
            })
            .await?;
        Ok(db.clone())
    }

    /// The database, if this runner opened it (none is opened here).
    pub fn database_if_open(&self) -> Option<Arc<Database>> {
        self.inner.database.get().cloned()
    }

    /// The objects of the database (services with database access; a
    /// compute reaches objects through the conductor instead).
    pub async fn objects(&self) -> anyhow::Result<Objects> {
        let objects = self
            .inner
            .objects
            .get_or_try_init(|| {
                async {
                    let db: Arc<dyn nova_objects::ObjectStore> = self.database().await?;
                    Ok::<_, anyhow::Error>(Objects::from_arc(db))
                }
                .boxed()
            })
            .await?;
        Ok(objects.clone())
    }

    /// Placement, opened once: over HTTP when `[placement] auth_url` or
    /// `endpoint_override` is set (nova's options); else beside the database (on its connections
    /// when `[placement_database] connection` is the same, tables created)
    /// when this runner opened one, else directly at `[placement_database]
    /// connection` (a compute, which has no database of its own).
    pub async fn placement(&self) -> anyhow::Result<PlacementHandle> {
        let p = self
            .inner
            .placement
            .get_or_try_init(|| {
                async {
                    let conf = &self.inner.conf;
                    // `[placement] auth_url` or `endpoint_override`: a
                    // Placement service over HTTP (any Placement).
                    if let Some(http) = nova_placement::HttpPlacement::from_options(|k| {
                        conf.get("placement", k)
                            .filter(|v| !v.is_empty())
                            .map(str::to_owned)
                    }) {
                        return Ok::<_, anyhow::Error>(PlacementHandle::new(http));
                    }
                    match self.inner.database.get() {
                        Some(db) => {
                            let p = SqlPlacement::open_beside(
                                &conf.placement_connection(),
                                &conf.database_connection(),
                                db,
                            )
                            .await?;
                            p.sync().await?;
                            Ok::<_, anyhow::Error>(PlacementHandle::new(p))
                        }
                        None => Ok(PlacementHandle::new(
                            SqlPlacement::open(&conf.placement_connection()).await?,
                        )),
                    }
                }
                .boxed()
            })
            .await?;
        Ok(p.clone())
    }

    /// cell1's mapping (cell0 and cell1 created when missing).
    pub async fn cell1(&self) -> anyhow::Result<CellMapping> {
        let c = self
            .inner
            .cell1
            .get_or_try_init(|| {
                async {
                    let objects = self.objects().await?;
                    let conf = &self.inner.conf;
                    Ok::<_, anyhow::Error>(
                        crate::cells::ensure_cells(
                            &objects,
                            &conf.transport_url(),
                            &conf.database_connection(),
                        )
                        .await?,
                    )
                }
                .boxed()
            })
            .await?;
        Ok(c.clone())
    }

    /// `[service_user]`: the service token every call made on a user's
    /// behalf carries (`None` unless `send_service_user_token`), one per
    /// process so its token is cached once.
    pub fn service_user(
        &self,
    ) -> Result<Option<Arc<crate::service_auth::ServiceUser>>, crate::ConfError> {
        if let Some(s) = self.inner.service_user.get() {
            return Ok(s.clone());
        }
        let s = crate::service_auth::ServiceUser::from_conf(&self.inner.conf)?;
        Ok(self.inner.service_user.get_or_init(|| s).clone())
    }

    /// The notifier (`[notifications]`, `[oslo_messaging_notifications]`),
    /// built once: on the RPC transport, or on its own when
    /// `[oslo_messaging_notifications] transport_url` names another (so an
    /// all-in-one on the memory transport can publish to RabbitMQ). Without
    /// a messaging driver no transport is opened.
    pub async fn notifier(&self) -> anyhow::Result<crate::notifications::Notifier> {
        let n = self
            .inner
            .notifier
            .get_or_try_init(|| {
                async {
                    use crate::notifications::{NotificationConfig, Notifier};
                    let conf = &self.inner.conf;
                    let cfg = NotificationConfig::from_conf(conf)?;
                    let transport = match (cfg.messaging(), &cfg.transport_url) {
                        (None, _) => None,
                        (Some(_), Some(url)) if *url != conf.transport_url() => Some(
                            crate::runner::connect_transport_url(
                                conf,
                                url,
                                "[oslo_messaging_notifications] transport_url",
                            )
                            .await?,
                        ),
                        (Some(_), _) => Some(self.transport().await?),
                    };
                    let image_url = conf.get("image", "public_url").map(str::to_owned);
                    Ok::<_, anyhow::Error>(Notifier::new(cfg, transport, image_url))
                }
                .boxed()
            })
            .await?;
        Ok(n.clone())
    }

    /// Registers `binary` on this host in the service group (the Service
    /// record, [`crate::register_service`]) and reports it alive every
    /// `[DEFAULT] report_interval` until the runner stops.
    pub async fn register_service(&self, binary: &str, topic: &str) -> anyhow::Result<Service> {
        let (report, _) = self.inner.conf.service_group()?;
        let objects = self.objects().await?;
        let notifier = self.notifier().await?;
        let service =
            crate::register_service(&objects, &notifier, &self.host(), binary, topic).await?;
        let hb = crate::heartbeat(
            objects,
            service.clone(),
            Duration::from_secs(report),
            self.stop_token(),
        );
        self.task(format!("{binary} heartbeat"), hb);
        Ok(service)
    }

    /// An RPC server to drain on stop (stop consuming, finish what it holds).
    pub fn rpc_server(&self, server: RpcServer) {
        self.parts().rpc.push(server);
    }

    /// Stops the RPC server of `topic` on `server` now (drained); false when
    /// there is none.
    pub async fn stop_rpc_server(&self, topic: &str, server: &str) -> bool {
        let found = {
            let mut parts = self.parts();
            let i = parts.rpc.iter().position(|s| {
                s.target().topic == topic && s.target().server.as_deref() == Some(server)
            });
            i.map(|i| parts.rpc.remove(i))
        };
        match found {
            Some(s) => {
                s.stop().await;
                true
            }
            None => false,
        }
    }

    /// Serves `app` on `listener` until the runner stops; then it stops
    /// accepting and finishes the requests in flight.
    /// When the process records metrics ([`crate::metrics::install`]), the
    /// requests are recorded ([`crate::metrics::instrument`]).
    pub fn http(&self, name: &str, listener: tokio::net::TcpListener, app: axum::Router) {
        let app = crate::metrics::instrument_named(app, name);
        let stop = self.stop_token();
        let label = name.to_owned();
        let h = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
            {
                tracing::error!(server = %label, error = %e, "HTTP server failed");
            }
        });
        self.parts().http.push((name.to_owned(), h));
    }

    /// Runs `task` every `interval` (first after `initial_delay`) until the
    /// runner stops ([`crate::periodic`]); the drain waits for a running pass.
    pub fn periodic<F, Fut>(&self, name: &str, interval: Duration, initial_delay: Duration, task: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h = crate::periodic(self.stop_token(), interval, initial_delay, task);
        self.task(name, h);
    }

    /// A background task that ends when [`Runner::stop_token`] is
    /// cancelled; the drain waits for it.
    pub fn task(&self, name: impl Into<String>, handle: JoinHandle<()>) {
        self.parts().tasks.push((name.into(), handle));
    }

    /// Waits until the runner is stopped (a signal, or its token), then
    /// drains ([`Runner::shutdown`]).
    pub async fn run(self) -> anyhow::Result<()> {
        self.inner.stop.cancelled().await;
        self.shutdown().await;
        Ok(())
    }

    /// Stops and drains everything started on this runner: HTTP servers
    /// (requests in flight answered), then RPC servers (last started
    /// first), then periodic tasks. Calling it again does nothing more.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        let parts = std::mem::take(&mut *self.parts());
        if parts.http.is_empty() && parts.rpc.is_empty() && parts.tasks.is_empty() {
            return;
        }
        tracing::info!(
            http = parts.http.len(),
            rpc = parts.rpc.len(),
            tasks = parts.tasks.len(),
            "stopping: draining requests in flight"
        );
        let timeout = self.inner.http_drain_timeout;
        futures_util::future::join_all(parts.http.into_iter().map(|(name, mut h)| async move {
            if tokio::time::timeout(timeout, &mut h).await.is_err() {
                tracing::warn!(server = %name, ?timeout, "HTTP requests still running at the end of the drain timeout");
                h.abort();
            }
        }))
        .await;
        for server in parts.rpc.into_iter().rev() {
            server.stop().await;
        }
        for (name, h) in parts.tasks {
            if let Err(e) = h.await
                && !e.is_cancelled()
            {
                tracing::warn!(task = %name, error = %e, "background task failed");
            }
        }
        tracing::info!("stopped");
    }

    fn parts(&self) -> std::sync::MutexGuard<'_, Parts> {
        self.inner.parts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    use nova_rpc::{
        Dispatcher, Endpoint, MemoryTransport, NoArgs, RequestContext, RpcClient, Target,
    };
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn runner() -> Runner {
        let mut conf = Conf::new();
        conf.set("DEFAULT", "host", "test-host");
        conf.set("database", "connection", "sqlite::memory:");
        Runner::new(conf).with_schema_sync()
    }

    async fn get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn an_http_request_in_flight_is_answered_and_then_the_server_is_gone() {
        let r = runner();
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
        let entered = Arc::new(Mutex::new(Some(entered_tx)));
        let app = axum::Router::new().route(
            "/slow",
            axum::routing::get(move || {
                let entered = entered.clone();
                async move {
                    if let Some(tx) = entered.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "done"
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        r.http("test", l, app);
        let req = tokio::spawn(get(addr, "/slow"));
        entered_rx.await.unwrap();
        // The stop fires while the request is in the handler.
        r.stop_token().cancel();
        r.clone().run().await.unwrap();
        let answer = req.await.unwrap().unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
        assert!(
            get(addr, "/slow").await.is_err(),
            "the listener is closed after the drain"
        );
    }

    #[tokio::test]
    async fn an_rpc_call_in_flight_is_answered_and_periodic_tasks_stop() {
        let r = runner();
        let transport: Arc<dyn Transport> = MemoryTransport::new();
        let (entered_tx, entered_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let endpoint =
            Endpoint::new(None, Version::new(1, 0)).method("slow", move |_call, _: NoArgs| {
                let entered = entered_tx.clone();
                async move {
                    let _ = entered.send(());
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok("done")
                }
            });
        let server = RpcServer::start(
            transport.clone(),
            Target::topic("drain").with_server("test-host"),
            Dispatcher::new(vec![endpoint]),
        )
        .await
        .unwrap();
        r.rpc_server(server);
        let passes = Arc::new(AtomicUsize::new(0));
        let p = passes.clone();
        r.periodic(
            "count",
            Duration::from_millis(10),
            Duration::ZERO,
            move || {
                let p = p.clone();
                async move {
                    p.fetch_add(1, Ordering::SeqCst);
                }
            },
        );
        while passes.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let client = RpcClient::new(transport, Target::topic("drain"))
            .version(Version::new(1, 0))
            .timeout(Duration::from_secs(5));
        let call = tokio::spawn(async move {
            client
                .call::<String>(&RequestContext::new(), "slow", serde_json::json!({}))
                .await
        });
        let mut entered_rx = entered_rx;
        entered_rx.recv().await.unwrap();
        r.shutdown().await;
        assert_eq!(call.await.unwrap().unwrap(), "done");
        let after = passes.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            passes.load(Ordering::SeqCst),
            after,
            "the periodic task stopped"
        );
        assert!(format!("{r:?}").contains("rpc_servers: 0"));
    }

    #[tokio::test]
    async fn the_notifier_publishes_service_create_on_the_rpc_transport() {
        let mut conf = Conf::new();
        conf.set("DEFAULT", "host", "test-host");
        conf.set("database", "connection", "sqlite::memory:");
        conf.set("notifications", "notification_format", "versioned");
        conf.set("oslo_messaging_notifications", "driver", "messagingv2");
        let r = Runner::new(conf).with_schema_sync();
        let t = r.transport().await.unwrap();
        let mut l = nova_rpc::NotificationListener::start(
            t,
            None,
            &["versioned_notifications"],
            &[nova_rpc::Priority::Info],
            None,
        )
        .await
        .unwrap();
        assert!(r.notifier().await.unwrap().versioned_enabled());
        r.register_service("nova-test", "test").await.unwrap();
        let got = l.next().await.unwrap();
        assert_eq!(got.notification.event_type, "service.create");
        assert_eq!(got.notification.publisher_id, "nova-test:test-host");
        r.shutdown().await;
    }

    #[tokio::test]
    async fn shared_connections_open_once_and_the_service_record_beats() {
        let mut conf = Conf::new();
        conf.set("DEFAULT", "host", "test-host");
        conf.set("database", "connection", "sqlite::memory:");
        conf.set("DEFAULT", "report_interval", "1");
        conf.set("DEFAULT", "service_down_time", "5");
        let r = Runner::new(conf).with_schema_sync();
        let t1 = r.transport().await.unwrap();
        let t2 = r.transport().await.unwrap();
        assert!(Arc::ptr_eq(&t1, &t2));
        let d1 = r.database().await.unwrap();
        assert!(Arc::ptr_eq(&d1, &r.database().await.unwrap()));
        let cell1 = r.cell1().await.unwrap();
        assert_eq!(r.cell1().await.unwrap().uuid(), cell1.uuid());
        r.placement().await.unwrap();
        let s = r.register_service("nova-test", "test").await.unwrap();
        assert_eq!(s.binary().as_deref(), Some("nova-test"));
        assert!(
            !r.stop_rpc_server("test", "test-host").await,
            "no such server"
        );
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let objects = r.objects().await.unwrap();
        let ctx = RequestContext::new().with_admin(true);
        let found: Vec<Service> = objects
            .list(
                &ctx,
                &nova_objects::ListQuery::new().filter("binary", "nova-test"),
            )
            .await
            .unwrap();
        assert!(*found[0].report_count() >= 1, "heartbeat ran");
        r.shutdown().await;
        r.shutdown().await;
    }
}
