//! Transport, database, tracing, shutdown, service group and periodic tasks.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use nova_objects::db::{Database, DbConfig};
use nova_objects::{ListQuery, Objects, Service};
use nova_rpc::{MemoryConfig, MemoryTransport, Transport, TransportUrl};
use tokio_util::sync::CancellationToken;

use crate::conf::Conf;

/// Nova 34's `SERVICE_VERSION` (what services record).
const SERVICE_VERSION: i64 = 73;

/// Logs to stderr (`RUST_LOG` filters; `debug` raises the default level).
pub fn init_tracing(debug: bool) {
    let default = if debug { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A token cancelled on SIGINT or SIGTERM: services stop taking work,
/// finish what they hold and exit.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("signal received: shutting down");
        t.cancel();
    });
    token
}

/// The RPC transport `[DEFAULT] transport_url` names: `memory://` (one
/// process) or `rabbit://` (needs the `amqp` feature). The exchange is
/// `[DEFAULT] control_exchange` (`nova`).
pub async fn connect_transport(conf: &Conf) -> anyhow::Result<Arc<dyn Transport>> {
    connect_transport_url(conf, &conf.transport_url(), "[DEFAULT] transport_url").await
}

/// A transport to `url` (`option` names where it came from in messages),
/// on `[DEFAULT] control_exchange`.
pub async fn connect_transport_url(
    conf: &Conf,
    url: &str,
    option: &str,
) -> anyhow::Result<Arc<dyn Transport>> {
    let url = url.to_owned();
    let exchange = conf.str_or("DEFAULT", "control_exchange", "nova");
    let parsed: TransportUrl = url.parse().with_context(|| format!("invalid {option}"))?;
    let (response_timeout, long_rpc_timeout) = rpc_timeouts(conf)?;
    if parsed.is_memory() {
        return Ok(Arc::new(MemoryTransport::with_config(MemoryConfig {
            control_exchange: exchange,
            response_timeout,
            long_rpc_timeout,
            ..MemoryConfig::default()
        })));
    }
    #[cfg(feature = "amqp")]
    {
        let mut cfg = nova_rpc::AmqpConfig::from_url(&url)?.control_exchange(exchange);
        cfg.durable_queues = conf.bool_or("oslo_messaging_rabbit", "amqp_durable_queues", false)?;
        // oslo's reconnect options (the URL's query still wins for the interval).
        let secs = |key: &str, d: std::time::Duration| {
            conf.parse_or("oslo_messaging_rabbit", key, d.as_secs_f64())
                .map(|v: f64| {
                    if v.is_finite() {
                        std::time::Duration::from_secs_f64(v.clamp(0.0, 3600.0))
                    } else {
                        d
                    }
                })
        };
        if !url.contains("rabbit_retry_interval=") {
            cfg.retry_interval = secs("rabbit_retry_interval", cfg.retry_interval)?;
        }
        cfg.retry_backoff = secs("rabbit_retry_backoff", cfg.retry_backoff)?;
        cfg.interval_max = secs("rabbit_interval_max", cfg.interval_max)?;
        cfg.response_timeout = response_timeout;
        cfg.long_rpc_timeout = long_rpc_timeout;
        let t = nova_rpc::AmqpTransport::connect(cfg)
            .await
            .with_context(|| format!("cannot reach the message broker at {parsed}"))?;
        Ok(t)
    }
    #[cfg(not(feature = "amqp"))]
    anyhow::bail!(
        "{option} {parsed}: this build has only the in-memory transport (build with feature amqp)"
    )
}

/// `[DEFAULT] rpc_response_timeout` (60 s) and `long_rpc_timeout` (1800 s,
/// nova's timeout of the calls that may take long: scheduling, the
/// live-migration steps, enabling a host), both positive (a year at most).
fn rpc_timeouts(conf: &Conf) -> anyhow::Result<(Duration, Duration)> {
    let mut out = [0u64; 2];
    for (slot, (key, default)) in out
        .iter_mut()
        .zip([("rpc_response_timeout", 60u64), ("long_rpc_timeout", 1800)])
    {
        *slot = conf.parse_or("DEFAULT", key, default)?;
        if *slot == 0 {
            anyhow::bail!("[DEFAULT] {key} must be positive");
        }
    }
    // A deadline must stay representable: at most a year.
    let secs = |s: u64| Duration::from_secs(s.min(365 * 86_400));
    Ok((secs(out[0]), secs(out[1])))
}

/// Creates the directory of a SQLite file database (other URLs: nothing).
pub fn ensure_sqlite_dir(connection: &str) -> anyhow::Result<()> {
    let path = connection.strip_prefix("sqlite:").map(|p| {
        // SQLAlchemy: sqlite:///relative, sqlite:////absolute; sqlx: sqlite:path.
        let p = p.split('?').next().unwrap_or(p);
        p.strip_prefix("///")
            .or_else(|| p.strip_prefix("//"))
            .unwrap_or(p)
    });
    if let Some(path) = path
        && !path.starts_with(":memory")
        && !path.is_empty()
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if let Some(path) = path
        && !path.starts_with(":memory")
        && !path.is_empty()
    {
        restrict_sqlite_file(std::path::Path::new(path))?;
    }
    Ok(())
}

/// The database holds every record (and the identity's users' projects):
/// the file is created `0640`, and one that others could read loses
/// their access (SQLite gives its WAL and shared-memory files the same
/// mode).
fn restrict_sqlite_file(path: &std::path::Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        match std::fs::metadata(path) {
            Ok(m) => {
                let mode = m.permissions().mode();
                if m.is_file() && mode & 0o007 != 0 {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o007))
                        .with_context(|| format!("cannot restrict {}", path.display()))?;
                }
            }
            Err(_) => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o640)
                    .open(path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Opens `[database] connection` (SQLAlchemy URLs accepted) with
/// `max_pool_size`, `pool_timeout` and `connection_debug`; `sync` runs
/// the migrations first (the all-in-one does; split services expect
/// `nova-manage db sync`).
pub async fn open_database(conf: &Conf, sync: bool) -> anyhow::Result<Database> {
    let connection = conf.database_connection();
    ensure_sqlite_dir(&connection)?;
    let mut cfg = DbConfig::new(&connection);
    if let Some(n) = conf
        .get("database", "max_pool_size")
        .filter(|v| !v.is_empty())
    {
        cfg.max_pool_size = Some(n.parse().map_err(|_| {
            anyhow::anyhow!("invalid value '{n}' for [database] max_pool_size: expected a number")
        })?);
    }
    cfg.pool_timeout = Duration::from_secs(conf.parse_or("database", "pool_timeout", 30u64)?);
    cfg.connection_debug = conf.parse_or("database", "connection_debug", 0u8)?;
    let db = Database::connect(&cfg)
        .await
        .with_context(|| "cannot open [database] connection")?;
    if sync {
        db.sync().await?;
    } else if db.schema_version().await? != Some(Database::latest_schema_version()) {
        anyhow::bail!(
            "the database schema is not current: run `nova-manage db sync` (schema {:?}, expected {})",
            db.schema_version().await?,
            Database::latest_schema_version()
        );
    }
    Ok(db)
}

use crate::context::admin;

/// The Service record of `binary` on `host` (created, or re-enabled
/// for a new version): what the service group tracks. A new record is
/// announced (`service.create`).
pub async fn register_service(
    objects: &Objects,
    notifier: &crate::notifications::Notifier,
    host: &str,
    binary: &str,
    topic: &str,
) -> anyhow::Result<Service> {
    let ctx = admin();
    let q = ListQuery::new()
        .filter("host", host)
        .filter("binary", binary);
    let found: Vec<Service> = objects.list(&ctx, &q).await?;
    let now = chrono::Utc::now();
    if let Some(mut s) = found.into_iter().next() {
        s.set_version(SERVICE_VERSION);
        s.set_last_seen_up(Some(now));
        objects.save(&ctx, &mut s).await?;
        crate::metrics::heartbeat_reported(binary, host);
        return Ok(s);
    }
    let mut s = Service::new()
        .with_uuid(uuid::Uuid::new_v4().to_string())
        .with_host(Some(host.to_owned()))
        .with_binary(Some(binary.to_owned()))
        .with_topic(Some(topic.to_owned()))
        .with_report_count(0)
        .with_disabled(false)
        .with_forced_down(false)
        .with_version(SERVICE_VERSION)
        .with_last_seen_up(Some(now));
    objects.create(&ctx, &mut s).await?;
    crate::metrics::heartbeat_reported(binary, host);
    notifier
        .service(&ctx, &s, crate::notifications::ServiceAction::Create)
        .await;
    Ok(s)
}

/// Reports the service alive every `interval` until `stop` (nova's DB
/// service-group driver: `report_count` += 1 and `last_seen_up` = now).
pub fn heartbeat(
    objects: Objects,
    mut service: Service,
    interval: Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    periodic(stop, interval, interval, move || {
        service.set_report_count(*service.report_count() + 1);
        service.set_last_seen_up(Some(chrono::Utc::now()));
        let mut s = service.clone();
        let objects = objects.clone();
        async move {
            match objects.save(&admin(), &mut s).await {
                Ok(()) => crate::metrics::heartbeat_reported(
                    s.binary().as_deref().unwrap_or("-"),
                    s.host().as_deref().unwrap_or("-"),
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "service heartbeat failed (the service will look down if this lasts)");
                }
            }
        }
    })
}

/// Nova's `is_up`: not forced down, and seen within `down_time`.
pub fn is_up(service: &Service, down_time: Duration, now: chrono::DateTime<chrono::Utc>) -> bool {
    if *service.forced_down() {
        return false;
    }
    let seen = service
        .last_seen_up()
        .or(*service.updated_at())
        .or(*service.created_at());
    match seen {
        Some(t) => (now - t).abs().to_std().unwrap_or(Duration::MAX) <= down_time,
        None => false,
    }
}

/// Runs `task` every `interval` (first after `initial_delay`) until
/// `stop`; a run never overlaps the next. The schedule is fixed, as
/// oslo's `FixedIntervalLoopingCall` that nova's service group and
/// periodic tasks run on: a run starts `interval` after the previous one
/// started (at once when that one took longer), not `interval` after it
/// ended, so slow runs (a heartbeat waiting for a busy database) do not
/// stretch the period by their own length.
pub fn periodic<F, Fut>(
    stop: CancellationToken,
    interval: Duration,
    initial_delay: Duration,
    mut task: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(initial_delay) => {}
        }
        // The first tick is now; a late one is taken at once and the next
        // is due `interval` after it (no burst to catch up).
        let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            task().await;
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;

    /// The start times (from the first) of the first `n` runs of a task
    /// taking `run` every `interval`, on tokio's paused clock.
    async fn starts(interval: Duration, run: Duration, n: usize) -> Vec<Duration> {
        let stop = CancellationToken::new();
        let seen = Arc::new(Mutex::new(Vec::<Instant>::new()));
        let s = seen.clone();
        let h = super::periodic(stop.clone(), interval, Duration::ZERO, move || {
            s.lock().unwrap().push(Instant::now());
            tokio::time::sleep(run)
        });
        while seen.lock().unwrap().len() < n {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.cancel();
        h.await.unwrap();
        let seen = seen.lock().unwrap();
        seen.iter().take(n).map(|t| *t - seen[0]).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_periodic_task_starts_on_a_fixed_schedule() {
        // A run of 0.6 s does not push the next start to 1.6 s.
        let s = starts(Duration::from_secs(1), Duration::from_millis(600), 4).await;
        assert_eq!(s, (0..4).map(Duration::from_secs).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_longer_than_the_interval_is_followed_at_once_without_a_burst() {
        let s = starts(Duration::from_secs(1), Duration::from_millis(2500), 3).await;
        let want: Vec<Duration> = [0, 2500, 5000].map(Duration::from_millis).to_vec();
        assert_eq!(s, want);
    }

    #[tokio::test]
    async fn the_rpc_timeouts_of_nova_conf_reach_the_transport() {
        let conf = |extra: &str| {
            super::Conf::parse(&format!("[DEFAULT]\ntransport_url = memory://\n{extra}")).unwrap()
        };
        let t = super::connect_transport(&conf("")).await.unwrap();
        assert_eq!(
            (t.response_timeout(), t.long_rpc_timeout()),
            (Duration::from_secs(60), Duration::from_secs(1800)),
            "nova's defaults"
        );
        let t =
            super::connect_transport(&conf("rpc_response_timeout = 7\nlong_rpc_timeout = 90\n"))
                .await
                .unwrap();
        assert_eq!(
            (t.response_timeout(), t.long_rpc_timeout()),
            (Duration::from_secs(7), Duration::from_secs(90))
        );
        let e = super::connect_transport(&conf("long_rpc_timeout = 0\n"))
            .await
            .err()
            .unwrap();
        assert_eq!(e.to_string(), "[DEFAULT] long_rpc_timeout must be positive");
    }
}
