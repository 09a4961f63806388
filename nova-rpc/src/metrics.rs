//! RPC metrics through the `metrics` facade: nothing is measured until
//! [`set_enabled`] (the services call it when they install a recorder,
//! `[metrics] enabled`).
//!
//! * `nova_rpc_client_requests_total{kind, topic, method, outcome}` and
//!   `nova_rpc_client_duration_seconds{kind, topic, method}`: calls (until
//!   the reply) and casts (until the broker took the message) a client sent;
//!   `outcome` is `ok`, `timeout`, `remote_error` (the server raised),
//!   `rejected` (the version cap or the target refused it before sending)
//!   or `error` (transport, codec).
//! * `nova_rpc_server_requests_total{kind, topic, method, outcome}` and
//!   `nova_rpc_server_duration_seconds{kind, topic, method}`: requests an
//!   RPC server dispatched; `outcome` is `ok`, `error` (the method failed)
//!   or `rejected` (no such method or version: `method` is then
//!   `<rejected>`, so a caller cannot grow the label set).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::error::{Error, RemoteError, RemoteKind};

/// Client requests sent.
pub const CLIENT_REQUESTS: &str = "nova_rpc_client_requests_total";
/// Client request latency.
pub const CLIENT_DURATION: &str = "nova_rpc_client_duration_seconds";
/// Server requests dispatched.
pub const SERVER_REQUESTS: &str = "nova_rpc_server_requests_total";
/// Server dispatch latency.
pub const SERVER_DURATION: &str = "nova_rpc_server_duration_seconds";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns the measurements on (or off): the process that installs a
/// recorder says so, and until then a request costs one atomic load.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// When a request started, if metrics are being recorded (no clock read
/// otherwise).
pub(crate) fn start() -> Option<Instant> {
    ENABLED.load(Ordering::Relaxed).then(Instant::now)
}

pub(crate) fn client<T>(
    started: Option<Instant>,
    kind: &'static str,
    topic: &str,
    method: &str,
    out: &Result<T, Error>,
) {
    let Some(started) = started else { return };
    let outcome = match out {
        Ok(_) => "ok",
        Err(Error::Timeout { .. }) => "timeout",
        Err(Error::Remote(_)) => "remote_error",
        Err(Error::VersionCap { .. } | Error::InvalidTarget(_)) => "rejected",
        Err(_) => "error",
    };
    metrics::histogram!(CLIENT_DURATION, "kind" => kind, "topic" => topic.to_owned(),
        "method" => method.to_owned())
    .record(started.elapsed().as_secs_f64());
    metrics::counter!(CLIENT_REQUESTS, "kind" => kind, "topic" => topic.to_owned(),
        "method" => method.to_owned(), "outcome" => outcome)
    .increment(1);
}

pub(crate) fn server(
    started: Option<Instant>,
    kind: &'static str,
    topic: &str,
    method: &str,
    out: &Result<serde_json::Value, RemoteError>,
) {
    let Some(started) = started else { return };
    let (method, outcome) = match out {
        Ok(_) => (method, "ok"),
        Err(e)
            if matches!(
                e.kind(),
                RemoteKind::NoSuchMethod | RemoteKind::UnsupportedVersion
            ) =>
        {
            ("<rejected>", "rejected")
        }
        Err(_) => (method, "error"),
    };
    metrics::histogram!(SERVER_DURATION, "kind" => kind, "topic" => topic.to_owned(),
        "method" => method.to_owned())
    .record(started.elapsed().as_secs_f64());
    metrics::counter!(SERVER_REQUESTS, "kind" => kind, "topic" => topic.to_owned(),
        "method" => method.to_owned(), "outcome" => outcome)
    .increment(1);
}
