//! Prometheus metrics (`[metrics]`): one registry per process, the
//! `metrics` crate's facade everywhere (the library crates record through
//! it and cost nothing until a recorder is installed) and
//! `metrics-exporter-prometheus` to render the text exposition format.
//!
//! Options (off by default: the registry is only installed when asked for):
//!
//! * `[metrics] enabled` — record and serve metrics.
//! * `[metrics] host`, `[metrics] port` — the listener of a service without
//!   an HTTP API of its own (conductor, scheduler, compute, and the console
//!   proxies, whose port faces browsers; each binary has its own default
//!   port, [`CONDUCTOR_PORT`] …). `nova-api` and `nova-all` serve
//!   `/metrics` on the compute API's port, `nova-placement-api`,
//!   `nova-network-api` and `nova-api-metadata` on their API's port; each
//!   also on this listener when `port` is set.
//!
//! What is recorded:
//!
//! * HTTP (every server a [`Runner::http`] started, [`instrument`]):
//!   `nova_http_requests_total{api, method, route, status}` and `nova_http_request_duration_seconds{api, method, route}`,
//!   `route` being the matched route template (`/v2.1/servers/{id}`), never
//!   the raw path (`<unmatched>` for what no route matched).
//! * RPC (nova-rpc, [`nova_rpc::metrics`]): client and server requests by
//!   kind, topic, method and outcome, with latency.
//! * The scheduler: `nova_scheduler_decisions_total{outcome}` (`selected`,
//!   `no_valid_host`, `error`), `nova_scheduler_no_valid_host_total`,
//!   `nova_scheduler_select_duration_seconds`; Placement claims:
//!   `nova_placement_claims_total{outcome}` (`claimed`, `conflict`,
//!   `error`); the Placement API's conflicts:
//!   `nova_placement_conflicts_total{code}` (each 409 by Placement error
//!   code, `placement.concurrent_update` a generation conflict) and
//!   `nova_placement_generation_retries_total{operation}` (writes its
//!   store retried after losing a provider generation race).
//! * At each scrape, from the database when the process has one:
//!   `nova_instances{vm_state}` (instances not deleted),
//!   `nova_compute_heartbeat_age_seconds{host}` (the age of each
//!   compute service's last report, as `is_up` reads it),
//!   `nova_db_pool_connections{database, state}` (`open`, `in_use`,
//!   `idle`, `max`; `database` is `nova`, or a database the process
//!   opened beside it, [`watch_pool`]: `placement`, `network`).
//! * `nova_service_heartbeat_timestamp_seconds{binary, host}`: when this
//!   process last reported each of its services alive.

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use nova_objects::{ListQuery, Service};

use crate::conf::{Conf, ConfError};
use crate::service::Runner;

/// `[metrics] port` default of `nova-conductor`.
pub const CONDUCTOR_PORT: u16 = 9781;
/// `[metrics] port` default of `nova-scheduler`.
pub const SCHEDULER_PORT: u16 = 9782;
/// `[metrics] port` default of `nova-compute`.
pub const COMPUTE_PORT: u16 = 9783;
/// `[metrics] port` default of `nova-novncproxy`.
pub const NOVNCPROXY_PORT: u16 = 9784;
/// `[metrics] port` default of `nova-spicehtml5proxy`.
pub const SPICEHTML5PROXY_PORT: u16 = 9785;
/// `[metrics] port` default of `nova-serialproxy`.
pub const SERIALPROXY_PORT: u16 = 9786;

/// HTTP requests answered.
pub const HTTP_REQUESTS: &str = "nova_http_requests_total";
/// HTTP request latency (until the response's head).
pub const HTTP_DURATION: &str = "nova_http_request_duration_seconds";
/// Instances not deleted, by `vm_state`.
pub const INSTANCES: &str = "nova_instances";
/// Age of each compute service's last heartbeat.
pub const HEARTBEAT_AGE: &str = "nova_compute_heartbeat_age_seconds";
/// When this process last reported a service alive.
pub const HEARTBEAT_TIMESTAMP: &str = "nova_service_heartbeat_timestamp_seconds";
/// The database pool's connections.
pub const DB_POOL: &str = "nova_db_pool_connections";
/// 409s the Placement API answered, by Placement error code (recorded by
/// nova-placement's API).
pub const PLACEMENT_CONFLICTS: &str = "nova_placement_conflicts_total";
/// Writes Placement's store retried after losing a provider generation
/// race (recorded by nova-placement's store).
pub const PLACEMENT_RETRIES: &str = "nova_placement_generation_retries_total";

/// Latency buckets (seconds) of every histogram: 1 ms … 60 s.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `enabled` (default false).
    pub enabled: bool,
    /// `host` (default `127.0.0.1`).
    pub host: String,
    /// `port` (none: the binary's default, or the API's port).
    pub port: Option<u16>,
}

impl MetricsConfig {
    /// `[metrics]` of `conf`; a bad value names the option.
    pub fn from_conf(conf: &Conf) -> Result<Self, ConfError> {
        let port = match conf.get("metrics", "port").filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => Some(v.parse::<u16>().map_err(|_| {
                ConfError(format!(
                    "invalid value '{v}' for [metrics] port: expected a port number"
                ))
            })?),
        };
        Ok(MetricsConfig {
            enabled: conf.bool_or("metrics", "enabled", false)?,
            host: conf.str_or("metrics", "host", "127.0.0.1"),
            port,
        })
    }
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static INSTALL: Mutex<()> = Mutex::new(());

/// Installs the process's Prometheus recorder (once; later calls return
/// the same handle) and turns on nova-rpc's measurements.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let _once = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|e| anyhow::anyhow!("metrics buckets: {e}"))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
    describe();
    nova_rpc::metrics::set_enabled(true);
    // Histograms are buffered until drained: drain them even when no one
    // scrapes (a thread, so no runtime's shutdown stops it).
    let h = handle.clone();
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                h.run_upkeep();
            }
        })?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// The recorder's handle, when [`install`] ran.
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE.get().cloned()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency, by route template"
    );
    describe_counter!(
        nova_rpc::metrics::CLIENT_REQUESTS,
        "RPC calls and casts sent, by method and outcome"
    );
    describe_histogram!(
        nova_rpc::metrics::CLIENT_DURATION,
        Unit::Seconds,
        "RPC client latency (a call until its reply, a cast until sent)"
    );
    describe_counter!(
        nova_rpc::metrics::SERVER_REQUESTS,
        "RPC requests dispatched by this process's servers, by method and outcome"
    );
    describe_histogram!(
        nova_rpc::metrics::SERVER_DURATION,
        Unit::Seconds,
        "RPC server dispatch latency"
    );
    describe_gauge!(INSTANCES, "Instances not deleted, by vm_state");
    describe_gauge!(
        HEARTBEAT_AGE,
        Unit::Seconds,
        "Age of each compute service's last heartbeat in the database"
    );
    describe_gauge!(
        HEARTBEAT_TIMESTAMP,
        Unit::Seconds,
        "Unix time this process last reported the service alive"
    );
    describe_gauge!(
        DB_POOL,
        "Database pool connections: open, in use, idle and the limit"
    );
    describe_counter!(
        PLACEMENT_CONFLICTS,
        "Placement API 409 answers, by Placement error code"
    );
    describe_counter!(
        PLACEMENT_RETRIES,
        "Placement writes retried after a provider generation race, by operation"
    );
}

/// `app` recording its requests when this process records metrics and
/// `name` (the [`Runner::http`] name) is an HTTP API or a console proxy.
pub fn instrument_named(app: Router, name: &str) -> Router {
    match api_label(name) {
        Some(api) if handle().is_some() => instrument(app, api),
        _ => app,
    }
}

/// Records `router`'s requests (`api` names it in the labels). Put it
/// outermost: the route template is known there (axum applies the layer
/// to each route), and the status is the one the client gets.
pub fn instrument(router: Router, api: &'static str) -> Router {
    router.layer(middleware::from_fn(move |req: Request, next: Next| {
        track(api, req, next)
    }))
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        // Anything a client invents stays one label value.
        _ => "other",
    }
}

/// A response extension naming the route template a fallback handler
/// served (an API routed by its own code, the metadata API's trees): the
/// `route` label when axum matched no route (a `MatchedPath` on the
/// response, from a router nested as a fallback service, comes first).
#[derive(Debug, Clone, Copy)]
pub struct RouteLabel(pub &'static str);

async fn track(api: &'static str, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let resp = next.run(req).await;
    // An inner router (a fallback service) may hand its template back on
    // the response, a handler that routes by itself a `RouteLabel`.
    let route = matched
        .or_else(|| {
            resp.extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_owned())
        })
        .unwrap_or_else(|| {
            resp.extensions()
                .get::<RouteLabel>()
                .map_or("<unmatched>", |l| l.0)
                .to_owned()
        });
    let status = resp.status().as_u16().to_string();
    metrics::histogram!(HTTP_DURATION, "api" => api, "method" => method, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(HTTP_REQUESTS, "api" => api, "method" => method, "route" => route,
        "status" => status)
    .increment(1);
    resp
}

/// The `api` label of the HTTP server [`Runner::http`] calls `name`
/// (`None`: not recorded, the metrics listener itself).
fn api_label(name: &str) -> Option<&'static str> {
    Some(match name {
        "metrics" => return None,
        "compute API" => "compute",
        "image API" => "image",
        "placement API" => "placement",
        "network API" => "network",
        "metadata API" => "metadata",
        "nova-novncproxy" => "novncproxy",
        "nova-spicehtml5proxy" => "spicehtml5proxy",
        "nova-serialproxy" => "serialproxy",
        _ => "other",
    })
}

/// `GET /metrics` of `runner`'s process (the gauges read at scrape time
/// from its database first).
pub fn routes(runner: &Runner) -> Router {
    let runner = runner.clone();
    Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let runner = runner.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, CONTENT_TYPE)],
                    render(&runner).await,
                )
                    .into_response()
            }
        }),
    )
}

/// The exposition text: the scrape-time gauges refreshed, then everything
/// the registry holds (empty when no recorder is installed).
pub async fn render(runner: &Runner) -> String {
    let Some(handle) = handle() else {
        return String::new();
    };
    if let Some(db) = runner.database_if_open() {
        pool_gauges("nova", &db);
        collect_database(runner, &db).await;
    }
    let pools = POOLS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (name, db) in &pools {
        pool_gauges(name, db);
    }
    handle.render()
}

/// Databases a process opened beside the runner's (`[placement_database]`,
/// `[network] connection`), whose pools a scrape reports.
static POOLS: Mutex<Vec<(&'static str, nova_objects::db::Database)>> = Mutex::new(Vec::new());

/// Reports `db`'s pool as `nova_db_pool_connections{database=name}` at
/// each scrape (the runner's own database is `nova`); a no-op when the
/// process records no metrics.
pub fn watch_pool(name: &'static str, db: &nova_objects::db::Database) {
    if HANDLE.get().is_none() {
        return;
    }
    let mut pools = POOLS.lock().unwrap_or_else(|p| p.into_inner());
    if !pools.iter().any(|(n, _)| *n == name) {
        pools.push((name, db.clone()));
    }
}

fn pool_gauges(name: &'static str, db: &nova_objects::db::Database) {
    let pool = db.pool_status();
    for (state, n) in [
        ("open", pool.size),
        ("idle", pool.idle),
        ("in_use", pool.size.saturating_sub(pool.idle)),
        ("max", pool.max),
    ] {
        metrics::gauge!(DB_POOL, "database" => name, "state" => state).set(f64::from(n));
    }
}

async fn collect_database(runner: &Runner, db: &nova_objects::db::Database) {
    match instances_by_state(db).await {
        Ok(counts) => {
            for s in crate::states::VmState::ALL {
                let n = counts
                    .iter()
                    .find(|(k, _)| k.as_deref() == Some(s.as_str()))
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!(INSTANCES, "vm_state" => s.as_str()).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count instances"),
    }
    let Ok(objects) = runner.objects().await else {
        return;
    };
    let q = ListQuery::new().filter("binary", "nova-compute");
    match objects.list::<Service>(&crate::context::admin(), &q).await {
        Ok(services) => {
            let now = chrono::Utc::now();
            for s in services {
                let seen = s.last_seen_up().or(*s.updated_at()).or(*s.created_at());
                let (Some(host), Some(seen)) = (s.host().clone(), seen) else {
                    continue;
                };
                let age = (now - seen).num_milliseconds().max(0) as f64 / 1000.0;
                metrics::gauge!(HEARTBEAT_AGE, "host" => host).set(age);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the compute services"),
    }
}

async fn instances_by_state(
    db: &nova_objects::db::Database,
) -> Result<Vec<(Option<String>, i64)>, sea_orm::DbErr> {
    use sea_orm::ConnectionTrait as _;
    use sea_orm::sea_query::{Expr, ExprTrait as _, Func, Query};
    let mut q = Query::select();
    q.column("vm_state")
        .expr_as(Func::count(Expr::col("id")), "n")
        .from("instances")
        .and_where(Expr::col("deleted").eq(0))
        .group_by_col("vm_state");
    let rows = db.connection().query_all(&q).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<Option<String>>("", "vm_state")?,
                r.try_get::<i64>("", "n")?,
            ))
        })
        .collect()
}

/// Records that `binary` on `host` just reported itself alive.
pub(crate) fn heartbeat_reported(binary: &str, host: &str) {
    if HANDLE.get().is_none() {
        return;
    }
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    metrics::gauge!(HEARTBEAT_TIMESTAMP, "binary" => binary.to_owned(), "host" => host.to_owned())
        .set(now);
}

/// For a service without an HTTP API of its own: when `[metrics] enabled`,
/// installs the recorder and serves `/metrics` on `[metrics] host`:`port`
/// (`default_port` when unset) until the runner stops. Returns where.
pub async fn serve(runner: &Runner, default_port: u16) -> anyhow::Result<Option<SocketAddr>> {
    let cfg = MetricsConfig::from_conf(runner.conf())?;
    if !cfg.enabled {
        return Ok(None);
    }
    install()?;
    let addr = format!("{}:{}", cfg.host, cfg.port.unwrap_or(default_port));
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| anyhow::anyhow!("[metrics] cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    runner.http("metrics", listener, routes(runner));
    tracing::info!(%local, "metrics at /metrics");
    Ok(Some(local))
}

/// For a service with an HTTP API: when `[metrics] enabled`, installs the
/// recorder (so [`Runner::http`] records the requests of every HTTP server
/// started after) and adds `/metrics` to `router` (and a listener of its
/// own when `[metrics] port` is set).
pub async fn expose(runner: &Runner, router: Router) -> anyhow::Result<Router> {
    let cfg = MetricsConfig::from_conf(runner.conf())?;
    if !cfg.enabled {
        return Ok(router);
    }
    install()?;
    if let Some(port) = cfg.port {
        serve(runner, port).await?;
    }
    Ok(router.merge(routes(runner)))
}

/// The sum of the samples of exposition `text` named `name` whose labels
/// include `want` (0 when none): what a test or a probe reads from a
/// scrape. Lines it cannot read are skipped.
pub fn sample_sum(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(parse_sample)
        .filter(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

/// A sample's name, labels and value.
type Sample = (String, Vec<(String, String)>, f64);

/// `name{k="v",…} value` (a timestamp after the value is ignored).
fn parse_sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices();
        let mut key = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = Some(i + 1);
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    if chars.next().map(|(_, q)| q) != Some('"') {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                other => key.push(other),
            }
        }
        rest = &r[end?..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((name, labels, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let c = MetricsConfig::from_conf(&Conf::new()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.enabled, "off unless asked for");
        assert_eq!(c.port, None);
        let conf = Conf::parse("[metrics]\nenabled = true\nhost = 0.0.0.0\nport = 9100\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let c = MetricsConfig::from_conf(&conf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (c.enabled, c.host.as_str(), c.port),
            (true, "0.0.0.0", Some(9100))
        );
        let bad = Conf::parse("[metrics]\nport = 70000\n").unwrap_or_else(|e| panic!("{e}"));
        let err = MetricsConfig::from_conf(&bad).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("[metrics] port")));
    }

    #[test]
    fn samples_are_read_by_name_and_labels() {
        let text = "# TYPE a counter\na{route=\"/x/{id}\",status=\"200\"} 2\n\
            a{route=\"/x/{id}\",status=\"404\"} 1\na{route=\"q\\\"\\\\,}\"} 4 1700000000\n\
            b 7.5\nbroken{x=1} 3\n";
        assert_eq!(sample_sum(text, "a", &[]), 7.0);
        assert_eq!(sample_sum(text, "a", &[("route", "/x/{id}")]), 3.0);
        assert_eq!(sample_sum(text, "a", &[("status", "404")]), 1.0);
        assert_eq!(sample_sum(text, "a", &[("route", "q\"\\,}")]), 4.0);
        assert_eq!(sample_sum(text, "b", &[]), 7.5);
        assert_eq!(sample_sum(text, "broken", &[]), 0.0);
        assert_eq!(sample_sum(text, "a", &[("status", "500")]), 0.0);
    }
}
