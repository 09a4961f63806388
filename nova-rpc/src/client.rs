//! The RPC client: `call`, `cast`, fanout and server-directed messages,
//! version caps, timeouts and call-monitor heartbeats.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::context::RequestContext;
use crate::error::{Error, RemoteError, Result};
use crate::message::{Reply, Request, new_id};
use crate::serializer::{NoOpSerializer, Serializer};
use crate::target::Target;
use crate::transport::{Destination, Listen, Message, Transport};
use crate::version::Version;

/// oslo's `rpc_response_timeout` default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// nova's `long_rpc_timeout` default (1800 s).
pub const DEFAULT_LONG_TIMEOUT: Duration = Duration::from_secs(1800);

/// How many `_unique_id`s a receiver remembers to drop duplicates (oslo's `DUP_MSG_CHECK_SIZE`).
pub(crate) const DUP_CHECK_SIZE: usize = 16;

/// The last few `_unique_id`s seen by one receiver (kept as 64-bit hashes:
/// no allocation per message, and a false match among 16 ids is negligible).
#[derive(Debug, Default)]
pub(crate) struct DupCache {
    seen: VecDeque<u64>,
    hasher: std::hash::RandomState,
}

impl DupCache {
    /// True if `id` was seen already; remembers it otherwise.
    pub(crate) fn seen(&mut self, id: &str) -> bool {
        use std::hash::BuildHasher;
        if id.is_empty() {
            return false;
        }
        let h = self.hasher.hash_one(id);
        if self.seen.contains(&h) {
            return true;
        }
        if self.seen.len() == DUP_CHECK_SIZE {
            self.seen.pop_front();
        }
        self.seen.push_back(h);
        false
    }
}

/// Routes replies from the reply queue to the calls waiting for them.
#[derive(Debug)]
struct ReplyHub {
    queue: String,
    waiters: Mutex<HashMap<String, flume::Sender<Reply>>>,
    _stop: DropGuard,
}

impl ReplyHub {
    async fn start(transport: &Arc<dyn Transport>) -> Result<Arc<ReplyHub>> {
        let mut inbox = transport.listen(Listen::Replies).await?;
        let token = CancellationToken::new();
        let hub = Arc::new(ReplyHub {
            queue: inbox.name().to_owned(),
            waiters: Mutex::new(HashMap::new()),
            _stop: token.clone().drop_guard(),
        });
        let weak = Arc::downgrade(&hub);
        tokio::spawn(async move {
            let mut dups = DupCache::default();
            // One cancellation future for the whole loop: creating one per
            // message registers (under a lock) with the token every time.
            let cancelled = token.cancelled();
            tokio::pin!(cancelled);
            loop {
                let delivery = tokio::select! {
                    _ = &mut cancelled => break,
                    d = inbox.recv() => match d { Some(d) => d, None => break },
                };
                let reply = match delivery.message {
                    Ok(Message::Reply(r)) => r,
                    Ok(other) => {
                        tracing::warn!(?other, "unexpected message in reply queue, dropped");
                        continue;
                    }
                    Err(bad) => {
                        tracing::warn!(reason = %bad.reason, "undecodable reply dropped");
                        continue;
                    }
                };
                if dups.seen(&reply.unique_id) {
                    tracing::debug!(msg_id = %reply.msg_id, "duplicate reply dropped");
                    continue;
                }
                let Some(hub) = weak.upgrade() else { break };
                let tx = hub.lock().get(&reply.msg_id).cloned();
                match tx {
                    Some(tx) => {
                        let _ = tx.send(reply);
                    }
                    None => {
                        tracing::info!(msg_id = %reply.msg_id, "no calling threads waiting for msg_id")
                    }
                }
            }
        });
        Ok(hub)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, flume::Sender<Reply>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes a waiter's slot when the call ends or its future is dropped.
struct Waiter {
    hub: Arc<ReplyHub>,
    msg_id: String,
    rx: flume::Receiver<Reply>,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.hub.lock().remove(&self.msg_id);
    }
}

#[derive(Debug)]
struct Shared {
    transport: Arc<dyn Transport>,
    serializer: Arc<dyn Serializer>,
    hub: OnceCell<Arc<ReplyHub>>,
}

/// An RPC client bound to a [`Target`], like oslo's `RPCClient`.
///
/// Clones and [`RpcClient::prepare`]d copies share one reply queue.
#[derive(Debug, Clone)]
pub struct RpcClient {
    shared: Arc<Shared>,
    target: Target,
    timeout: Duration,
    /// What [`RpcClient::long`] sets the timeout to.
    long_timeout: Duration,
    call_monitor_timeout: Option<Duration>,
    version_cap: Option<Version>,
    /// `destination()` of the current target, computed when the target changes.
    dest: Option<Destination>,
}

impl RpcClient {
    /// A client for `target` with the transport's default timeouts
    /// (`rpc_response_timeout`, 60 s, and `long_rpc_timeout`, 1800 s,
    /// unless configured) and no version cap.
    pub fn new(transport: Arc<dyn Transport>, target: Target) -> Self {
        let timeout = transport.response_timeout();
        let long_timeout = transport.long_rpc_timeout();
        RpcClient {
            shared: Arc::new(Shared {
                transport,
                serializer: Arc::new(NoOpSerializer),
                hub: OnceCell::new(),
            }),
            target,
            timeout,
            long_timeout,
            call_monitor_timeout: None,
            version_cap: None,
            dest: None,
        }
        .refresh()
    }

    fn refresh(mut self) -> Self {
        self.dest = self.destination().ok();
        self
    }

    fn current_destination(&self) -> Result<std::borrow::Cow<'_, Destination>> {
        match &self.dest {
            Some(d) => Ok(std::borrow::Cow::Borrowed(d)),
            None => self.destination().map(std::borrow::Cow::Owned),
        }
    }

    /// Uses `serializer` for arguments, results and the context.
    pub fn with_serializer(mut self, serializer: Arc<dyn Serializer>) -> Self {
        let shared = Arc::new(Shared {
            transport: self.shared.transport.clone(),
            serializer,
            hub: OnceCell::new(),
        });
        self.shared = shared;
        self
    }

    /// A copy to change target fields or options on, as oslo's `prepare()`.
    pub fn prepare(&self) -> Self {
        self.clone()
    }

    /// Sets the exchange.
    pub fn exchange(mut self, exchange: impl Into<String>) -> Self {
        self.target.exchange = Some(exchange.into());
        self.refresh()
    }
    /// Sets the topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.target.topic = topic.into();
        self.refresh()
    }
    /// Sends to one server (`<topic>.<server>`).
    pub fn server(mut self, server: impl Into<String>) -> Self {
        self.target.server = Some(server.into());
        self.refresh()
    }
    /// Sets the namespace.
    pub fn namespace(mut self, namespace: Option<&str>) -> Self {
        self.target.namespace = namespace.map(str::to_owned);
        self
    }
    /// Sets the requested version.
    pub fn version(mut self, version: Version) -> Self {
        self.target.version = Some(version);
        self
    }
    /// Casts to every server on the topic.
    pub fn fanout(mut self, fanout: bool) -> Self {
        self.target.fanout = fanout;
        self.refresh()
    }
    /// Sets the call timeout (oslo's `timeout`, default `rpc_response_timeout` = 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Sets what [`RpcClient::long`] uses (nova's `long_rpc_timeout`,
    /// default the transport's).
    pub fn long_timeout(mut self, timeout: Duration) -> Self {
        self.long_timeout = timeout;
        self
    }
    /// For a call that may take long, as nova prepares its
    /// `long_rpc_timeout` calls (`select_destinations`, the live-migration
    /// checks, ...): the call waits up to the long timeout, and the server
    /// proves it is still working with heartbeats, the call failing when
    /// none came for the client's timeout (`call_monitor_timeout =
    /// rpc_response_timeout`).
    pub fn long(self) -> Self {
        let (cm, long) = (self.timeout, self.long_timeout);
        self.call_monitor_timeout(Some(cm)).timeout(long)
    }
    /// Asks the server for heartbeats every `t/2` and fails the call when
    /// none arrived for `t` (oslo's `call_monitor_timeout`).
    pub fn call_monitor_timeout(mut self, t: Option<Duration>) -> Self {
        self.call_monitor_timeout = t;
        self
    }
    /// Refuses to send versions this cap cannot serve.
    pub fn version_cap(mut self, cap: Option<Version>) -> Self {
        self.version_cap = cap;
        self
    }

    /// Calls of this client (and its prepared copies) waiting for a reply.
    pub fn pending_calls(&self) -> usize {
        self.shared.hub.get().map_or(0, |h| h.lock().len())
    }

    /// The current target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// True when `version` may be sent under the version cap (oslo's `can_send_version`).
    pub fn can_send_version(&self, version: Version) -> bool {
        self.version_cap.is_none_or(|cap| cap.can_serve(&version))
    }

    /// The version cap, if any.
    pub fn version_cap_value(&self) -> Option<Version> {
        self.version_cap
    }

    /// The first of `candidates` (newest first) the version cap allows, or
    /// `VersionCap` when none is (how a method of nova's rpcapi picks the
    /// version it sends).
    pub fn highest_sendable(&self, candidates: &[Version]) -> Result<Version> {
        match candidates.iter().find(|v| self.can_send_version(**v)) {
            Some(v) => Ok(*v),
            None => Err(Error::VersionCap {
                version: candidates
                    .last()
                    .copied()
                    .unwrap_or(Version::DEFAULT)
                    .to_string(),
                cap: self.version_cap.map(|c| c.to_string()).unwrap_or_default(),
            }),
        }
    }

    fn check_version_cap(&self) -> Result<()> {
        if let Some(cap) = self.version_cap {
            let v = self.target.version.unwrap_or(Version::DEFAULT);
            if !cap.can_serve(&v) {
                return Err(Error::VersionCap {
                    version: v.to_string(),
                    cap: cap.to_string(),
                });
            }
        }
        Ok(())
    }

    fn destination(&self) -> Result<Destination> {
        let t = &self.target;
        if t.topic.is_empty() {
            return Err(Error::InvalidTarget("a topic is required to send".into()));
        }
        if t.fanout {
            return Ok(Destination::Fanout {
                topic: t.topic.clone(),
            });
        }
        let exchange = t
            .exchange
            .clone()
            .unwrap_or_else(|| self.shared.transport.control_exchange().to_owned());
        let routing_key = match &t.server {
            Some(s) => format!("{}.{}", t.topic, s),
            None => t.topic.clone(),
        };
        Ok(Destination::Topic {
            exchange,
            routing_key,
        })
    }

    fn request(&self, ctx: &RequestContext, method: &str, args: Value) -> Result<Request> {
        let mut args = match args {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => {
                return Err(Error::Codec(format!(
                    "arguments must serialize to an object of keyword arguments, got {other}"
                )));
            }
        };
        let ser = &self.shared.serializer;
        for v in args.values_mut() {
            *v = ser.serialize_entity(ctx, std::mem::take(v))?;
        }
        Ok(Request {
            method: method.to_owned(),
            args,
            namespace: self.target.namespace.clone(),
            version: self.target.version.map(|v| v.to_string()),
            msg_id: None,
            reply_q: None,
            call_monitor_timeout: None,
            unique_id: new_id(),
            context: ser.serialize_context(ctx),
        })
    }

    /// Sends without waiting (oslo's `cast`); fanout when the target says so.
    pub async fn cast(
        &self,
        ctx: &RequestContext,
        method: &str,
        args: impl Serialize,
    ) -> Result<()> {
        let started = crate::metrics::start();
        let out = self.cast_inner(ctx, method, args).await;
        crate::metrics::client(started, "cast", &self.target.topic, method, &out);
        out
    }

    async fn cast_inner(
        &self,
        ctx: &RequestContext,
        method: &str,
        args: impl Serialize,
    ) -> Result<()> {
        self.check_version_cap()?;
        let dest = self.current_destination()?;
        let req = self.request(ctx, method, serde_json::to_value(args)?)?;
        self.shared
            .transport
            .send(&dest, Message::Request(req), None)
            .await
    }

    /// Calls `method` and decodes its result into `R`.
    pub async fn call<R: DeserializeOwned>(
        &self,
        ctx: &RequestContext,
        method: &str,
        args: impl Serialize,
    ) -> Result<R> {
        let v = self
            .call_value(ctx, method, serde_json::to_value(args)?)
            .await?;
        Ok(serde_json::from_value(v)?)
    }

    /// Calls `method` with already-built JSON arguments and returns the
    /// (deserialized) result value.
    pub async fn call_value(
        &self,
        ctx: &RequestContext,
        method: &str,
        args: Value,
    ) -> Result<Value> {
        let started = crate::metrics::start();
        let out = self.call_value_inner(ctx, method, args).await;
        crate::metrics::client(started, "call", &self.target.topic, method, &out);
        out
    }

    async fn call_value_inner(
        &self,
        ctx: &RequestContext,
        method: &str,
        args: Value,
    ) -> Result<Value> {
        if self.target.fanout {
            return Err(Error::InvalidTarget(
                "call() cannot be used with a fanout target".into(),
            ));
        }
        self.check_version_cap()?;
        let dest = self.current_destination()?;
        let mut req = self.request(ctx, method, args)?;
        let shared = &self.shared;
        let hub = shared
            .hub
            .get_or_try_init(|| ReplyHub::start(&shared.transport))
            .await?
            .clone();

        let timeout = match ctx.remaining() {
            Some(left) => left.min(self.timeout),
            None => self.timeout,
        };
        let msg_id = new_id();
        let (tx, rx) = flume::unbounded();
        hub.lock().insert(msg_id.clone(), tx);
        let waiter = Waiter {
            hub: hub.clone(),
            msg_id: msg_id.clone(),
            rx,
        };

        req.msg_id = Some(msg_id.clone());
        req.reply_q = Some(hub.queue.clone());
        req.call_monitor_timeout = self.call_monitor_timeout.map(|d| d.as_secs_f64());
        let started = Instant::now();
        shared
            .transport
            .send(&dest, Message::Request(req), Some(timeout))
            .await?;

        let deadline = started + timeout;
        let cm = self.call_monitor_timeout;
        let mut cm_deadline = cm.map(|d| Instant::now() + d);
        let mut kept: Option<Value> = None;
        loop {
            let (wake, which) = match cm_deadline {
                Some(c) if c < deadline => (c, cm.unwrap_or(timeout)),
                _ => (deadline, timeout),
            };
            let reply = match tokio::time::timeout_at(wake, waiter.rx.recv_async()).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => return Err(Error::Closed("reply listener")),
                Err(_) => {
                    return Err(Error::Timeout {
                        msg_id,
                        timeout: which,
                    });
                }
            };
            if let Some(f) = &reply.failure {
                return Err(RemoteError::from_failure_json(f)?.into());
            }
            if reply.is_heartbeat() {
                cm_deadline = cm.map(|d| Instant::now() + d);
                continue;
            }
            if !reply.result.is_null() {
                kept = Some(reply.result);
            }
            if reply.ending {
                let v = kept.unwrap_or(Value::Null);
                return shared.serializer.deserialize_entity(ctx, v).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dup_cache_remembers_the_last_sixteen() {
        let mut c = DupCache::default();
        for i in 0..20 {
            assert!(!c.seen(&i.to_string()));
        }
        assert!(c.seen("19"));
        assert!(c.seen("4"));
        assert!(!c.seen("0"), "oldest ids are forgotten");
        assert!(!c.seen(""), "empty ids are never duplicates");
        assert!(!c.seen(""));
    }
}
