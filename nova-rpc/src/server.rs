//! The RPC server: consumes a target's queues, dispatches with bounded
//! concurrency, replies, sends call-monitor heartbeats, stops gracefully.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::DupCache;
use crate::dispatcher::Dispatcher;
use crate::error::{Error, RemoteError, Result};
use crate::message::{Reply, new_id};
use crate::target::Target;
use crate::transport::{Delivery, Destination, Listen, Message, Transport};

/// Settings of an [`RpcServer`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Requests processed at once; further messages wait in the queue
    /// (oslo's `executor_thread_pool_size`, default 64).
    pub executor_pool_size: usize,
    /// How long [`RpcServer::stop`] waits for requests in progress (default 60 s).
    pub drain_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            executor_pool_size: 64,
            drain_timeout: Duration::from_secs(60),
        }
    }
}

struct Shared {
    transport: Arc<dyn Transport>,
    topic: String,
    dispatcher: Dispatcher,
    dups: Mutex<DupCache>,
}

/// A running RPC server for one `(topic, server)` (oslo's `RPCServer`).
#[derive(Debug)]
pub struct RpcServer {
    target: Target,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl RpcServer {
    /// Subscribes to `<topic>`, `<topic>.<server>` and the topic's fanout,
    /// and serves with the default [`ServerConfig`].
    pub async fn start(
        transport: Arc<dyn Transport>,
        target: Target,
        dispatcher: Dispatcher,
    ) -> Result<RpcServer> {
        Self::start_with(transport, target, dispatcher, ServerConfig::default()).await
    }

    /// Same as [`RpcServer::start`] with explicit settings.
    pub async fn start_with(
        transport: Arc<dyn Transport>,
        target: Target,
        dispatcher: Dispatcher,
        config: ServerConfig,
    ) -> Result<RpcServer> {
        let Some(server) = target.server.clone().filter(|s| !s.is_empty()) else {
            return Err(Error::InvalidTarget(
                "an RPC server needs a topic and a server name".into(),
            ));
        };
        if target.topic.is_empty() {
            return Err(Error::InvalidTarget(
                "an RPC server needs a topic and a server name".into(),
            ));
        }
        let exchange = target
            .exchange
            .clone()
            .unwrap_or_else(|| transport.control_exchange().to_owned());
        let inbox = transport
            .listen(Listen::Rpc {
                exchange,
                topic: target.topic.clone(),
                server,
            })
            .await?;
        let shared = Arc::new(Shared {
            transport,
            topic: target.topic.clone(),
            dispatcher,
            dups: Mutex::default(),
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(shared, inbox, stop.clone(), config));
        Ok(RpcServer { target, stop, task })
    }

    /// The target served.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// A token that stops the server when cancelled (e.g. from a signal handler).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops consuming, finishes the requests already received (up to the
    /// drain timeout) and returns when done.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// Waits until the server stops (its stop token was cancelled, or the transport closed).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

async fn run(
    shared: Arc<Shared>,
    mut inbox: crate::transport::Inbox,
    stop: CancellationToken,
    config: ServerConfig,
) {
    let limit = Arc::new(Semaphore::new(config.executor_pool_size.max(1)));
    let tracker = TaskTracker::new();
    let cancelled = stop.cancelled();
    tokio::pin!(cancelled);
    loop {
        let permit = tokio::select! {
            _ = &mut cancelled => break,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let delivery = tokio::select! {
            _ = &mut cancelled => break,
            d = inbox.recv() => match d {
                Some(d) => d,
                None => { tracing::warn!("transport closed the server's queues"); break }
            },
        };
        let shared = shared.clone();
        tracker.spawn(async move {
            handle(&shared, delivery).await;
            drop(permit);
        });
    }
    // Stop consuming; what the transport already handed us is still served.
    inbox.close();
    while let Some(delivery) = inbox.recv().await {
        let shared = shared.clone();
        tracker.spawn(async move { handle(&shared, delivery).await });
    }
    tracker.close();
    if tokio::time::timeout(config.drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?config.drain_timeout, "requests still running at the end of the drain timeout");
    }
}

async fn send_reply(
    shared: &Shared,
    queue: &str,
    msg_id: &str,
    method: &str,
    outcome: Result<Value, RemoteError>,
) {
    let (result, failure) = match outcome {
        Ok(v) => (v, None),
        Err(e) => (
            Value::Null,
            Some(e.with_default_traceback(method).to_failure_json()),
        ),
    };
    let reply = Reply {
        result,
        failure,
        ending: true,
        msg_id: msg_id.to_owned(),
        unique_id: new_id(),
    };
    let dest = Destination::Reply {
        queue: queue.to_owned(),
    };
    if let Err(e) = shared
        .transport
        .send(&dest, Message::Reply(reply), None)
        .await
    {
        tracing::warn!(msg_id, reply_q = queue, error = %e, "could not send reply");
    }
}

async fn handle(shared: &Shared, delivery: Delivery) {
    let req = match delivery.message {
        Ok(Message::Request(r)) => r,
        Ok(other) => {
            tracing::warn!(?other, "unexpected message in an RPC queue, dropped");
            return;
        }
        Err(bad) => {
            tracing::warn!(reason = %bad.reason, exchange = %delivery.exchange, routing_key = %delivery.routing_key,
                "malformed RPC message");
            if let (Some(msg_id), Some(reply_q)) = (&bad.msg_id, &bad.reply_q) {
                let err = RemoteError::internal("MalformedMessage", bad.reason);
                send_reply(shared, reply_q, msg_id, "<message decoding>", Err(err)).await;
            }
            return;
        }
    };
    if shared
        .dups
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .seen(&req.unique_id)
    {
        tracing::warn!(unique_id = %req.unique_id, method = %req.method, "duplicate message dropped");
        return;
    }
    let reply_to = match (&req.msg_id, &req.reply_q) {
        (Some(id), Some(q)) => Some((id.clone(), q.clone())),
        _ => None,
    };
    let heartbeat = match (&reply_to, req.call_monitor_timeout) {
        (Some((id, q)), Some(cm)) => {
            let every = cm.trunc() / 2.0;
            if every < 1.0 {
                tracing::warn!(
                    call_monitor_timeout = cm,
                    "call-monitor timeout below 2 s: no heartbeats sent"
                );
                None
            } else {
                Some(spawn_heartbeat(
                    shared.transport.clone(),
                    q.clone(),
                    id.clone(),
                    Duration::from_secs_f64(every),
                ))
            }
        }
        _ => None,
    };
    let method = req.method.clone();
    // Everything logged while serving carries the caller's request id.
    let span = tracing::info_span!(
        "rpc",
        method = %req.method,
        request_id = req.context.get("request_id").and_then(|v| v.as_str()).unwrap_or("-"),
    );
    let kind = if reply_to.is_some() { "call" } else { "cast" };
    let started = crate::metrics::start();
    let outcome = tracing::Instrument::instrument(
        shared
            .dispatcher
            .dispatch(req, delivery.exchange, delivery.routing_key),
        span,
    )
    .await;
    crate::metrics::server(started, kind, &shared.topic, &method, &outcome);
    if let Some(h) = heartbeat {
        h.abort();
    }
    match reply_to {
        Some((msg_id, queue)) => send_reply(shared, &queue, &msg_id, &method, outcome).await,
        None => {
            if let Err(e) = outcome {
                tracing::error!(%method, error = %e, "cast failed");
            }
        }
    }
}

fn spawn_heartbeat(
    transport: Arc<dyn Transport>,
    queue: String,
    msg_id: String,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let dest = Destination::Reply { queue };
        loop {
            tick.tick().await;
            let beat = Reply {
                result: Value::Null,
                failure: None,
                ending: false,
                msg_id: msg_id.clone(),
                unique_id: new_id(),
            };
            if let Err(e) = transport.send(&dest, Message::Reply(beat), None).await {
                tracing::warn!(%msg_id, error = %e, "could not send call-monitor heartbeat");
            }
        }
    })
}
