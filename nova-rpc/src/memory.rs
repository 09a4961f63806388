//! The in-memory transport: a small broker inside the process with the same
//! routing as RabbitMQ under oslo.messaging (topic queues shared by the
//! servers of a topic, per-server queues, a fanout queue per listener,
//! reply queues, notification queues that keep messages until a listener
//! comes). Used by tests, examples and the all-in-one process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::error::{Error, Result};
use crate::message::new_id;
use crate::transport::{
    Ack, Delivery, Destination, Disposition, Inbox, Listen, Message, Transport,
};

/// Settings of a [`MemoryTransport`].
#[derive(Debug, Clone)]
pub struct MemoryConfig {
    /// Exchange for targets that name none (oslo's `control_exchange`, default `openstack`).
    pub control_exchange: String,
    /// Messages each consumer of a queue (or a queue without consumers)
    /// holds; publishing to a full queue waits for room (default 65,536).
    pub queue_capacity: usize,
    /// How long publishing waits for room in a full queue before failing
    /// with [`Error::Delivery`] (default 60 s).
    pub send_timeout: Duration,
    /// `rpc_response_timeout`: how long a call waits for its reply unless
    /// its client sets a timeout (default 60 s).
    pub response_timeout: Duration,
    /// `long_rpc_timeout`: the timeout of the calls that may take long
    /// (default 1800 s; see [`RpcClient::long`](crate::RpcClient::long)).
    pub long_rpc_timeout: Duration,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            control_exchange: "openstack".into(),
            queue_capacity: 65_536,
            send_timeout: Duration::from_secs(60),
            response_timeout: crate::client::DEFAULT_TIMEOUT,
            long_rpc_timeout: crate::client::DEFAULT_LONG_TIMEOUT,
        }
    }
}

type Item = (Message, Arc<str>, Arc<str>);
/// `(routing key, queue)` bound to an exchange.
type Binding = (Arc<str>, Arc<str>);
/// A message waiting for room in a consumer's channel.
type Pending = (flume::Sender<Item>, Item);

/// A queue: messages go round-robin to its consumers (each with a private
/// channel, like RabbitMQ's per-consumer delivery), or wait in the backlog
/// while it has none (each with its expiry, RabbitMQ's per-message TTL:
/// an expired call is dropped, not handed to a late consumer).
#[derive(Debug, Default)]
struct Queue {
    consumers: Vec<(u64, flume::Sender<Item>, flume::Receiver<Item>)>,
    next: usize,
    backlog: VecDeque<(Item, Option<Instant>)>,
}

#[derive(Debug, Default)]
struct State {
    queues: HashMap<Arc<str>, Queue>,
    /// exchange -> (routing key, queue); fanout exchanges bind with "".
    bindings: HashMap<Arc<str>, Vec<Binding>>,
    /// The empty name (default exchange, fanout routing key), shared.
    empty: Arc<str>,
    next_consumer: u64,
}

#[derive(Debug)]
struct Broker {
    state: Mutex<State>,
    capacity: usize,
}

impl Broker {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a single insert/remove/push, so a panic elsewhere
        // cannot leave the maps half-changed: recover from poison.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands `item` to the next consumer with room, or to the backlog when
    /// the queue has no consumer. When every consumer is full, returns the
    /// next one's sender with the item, to wait on outside the lock.
    fn enqueue(
        &self,
        q: &mut Queue,
        name: &str,
        mut item: Item,
        expires: Option<Instant>,
    ) -> Result<Option<Pending>> {
        let n = q.consumers.len();
        for i in 0..n {
            let idx = (q.next + i) % n;
            match q.consumers[idx].1.try_send(item) {
                Ok(()) => {
                    q.next = idx + 1;
                    return Ok(None);
                }
                Err(flume::TrySendError::Full(back) | flume::TrySendError::Disconnected(back)) => {
                    item = back
                }
            }
        }
        if n > 0 {
            let idx = q.next % n;
            q.next = idx + 1;
            return Ok(Some((q.consumers[idx].1.clone(), item)));
        }
        if q.backlog.len() >= self.capacity {
            return Err(Error::Delivery(format!(
                "queue {name} is full ({} messages) and nobody consumes it",
                self.capacity
            )));
        }
        q.backlog.push_back((item, expires));
        Ok(None)
    }

    /// `enqueue` from a place that cannot wait (a consumer leaving, a
    /// requeue): a full consumer is waited on by a task.
    fn enqueue_detached(&self, q: &mut Queue, name: &str, item: Item) {
        match self.enqueue(q, name, item, None) {
            Ok(None) => {}
            Ok(Some((tx, item))) => match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    h.spawn(async move {
                        let _ = tx.send_async(item).await;
                    });
                }
                Err(_) => tracing::warn!(
                    queue = name,
                    "queue full outside a runtime: a message was dropped"
                ),
            },
            Err(e) => tracing::warn!(queue = name, error = %e, "a returned message was dropped"),
        }
    }

    /// Adds a consumer to `queue` (creating it) and hands it the backlog.
    fn attach(&self, st: &mut State, queue: &str) -> (u64, flume::Receiver<Item>) {
        st.next_consumer += 1;
        let id = st.next_consumer;
        let (tx, rx) = flume::bounded(self.capacity);
        let q = st.queues.entry(queue.into()).or_default();
        let now = Instant::now();
        while let Some((item, expires)) = q.backlog.pop_front() {
            if expires.is_some_and(|t| t <= now) {
                tracing::debug!(queue, "an expired message was dropped");
                continue;
            }
            if let Err(flume::TrySendError::Full(item) | flume::TrySendError::Disconnected(item)) =
                tx.try_send(item)
            {
                q.backlog.push_front((item, expires));
                break;
            }
        }
        q.consumers.push((id, tx, rx.clone()));
        (id, rx)
    }

    /// Removes a consumer; what it had not taken goes back to the queue.
    fn detach(&self, st: &mut State, queue: &str, id: u64) {
        let Some(q) = st.queues.get_mut(queue) else {
            return;
        };
        let Some(pos) = q.consumers.iter().position(|c| c.0 == id) else {
            return;
        };
        let (_, _, rx) = q.consumers.remove(pos);
        let left: Vec<Item> = rx.drain().collect();
        for item in left {
            self.enqueue_detached(q, queue, item);
        }
    }

    fn bind(st: &mut State, exchange: &str, key: &str, queue: &str) {
        let queue: Arc<str> = match st.queues.get_key_value(queue) {
            Some((name, _)) => name.clone(),
            None => {
                let name: Arc<str> = queue.into();
                st.queues.insert(name.clone(), Queue::default());
                name
            }
        };
        let b = st.bindings.entry(exchange.into()).or_default();
        if !b.iter().any(|(k, q)| &**k == key && *q == queue) {
            b.push((key.into(), queue));
        }
    }

    fn delete(st: &mut State, queue: &str) {
        st.queues.remove(queue);
        for b in st.bindings.values_mut() {
            b.retain(|(_, q)| &**q != queue);
        }
    }

    fn publish(
        &self,
        exchange: &str,
        key: &str,
        msg: Message,
        expires: Option<Instant>,
    ) -> Result<Vec<Pending>> {
        let mut st = self.lock();
        // A topic message nobody has bound a queue for yet (a server that is
        // starting, or restarting): the queue its server will consume is
        // declared and holds it, as the durable, non-auto-delete queues of
        // oslo's rabbit driver hold casts across a consumer's restart. Fanout
        // and reply messages are not kept (RabbitMQ does not keep them).
        if !exchange.is_empty()
            && !exchange.ends_with("_fanout")
            && !st
                .bindings
                .get(exchange)
                .is_some_and(|b| b.iter().any(|(k, _)| &**k == key))
        {
            Self::bind(&mut st, exchange, key, key);
        }
        // (queue, exchange, routing key) of every copy; names are shared, not copied.
        let mut targets: Vec<(Arc<str>, Arc<str>, Arc<str>)> = Vec::new();
        if exchange.is_empty() {
            if let Some((name, _)) = st.queues.get_key_value(key) {
                targets.push((name.clone(), st.empty.clone(), name.clone()));
            }
        } else if let Some((ex, binds)) = st.bindings.get_key_value(exchange) {
            let fanout = exchange.ends_with("_fanout");
            for (k, q) in binds {
                if fanout {
                    targets.push((q.clone(), ex.clone(), st.empty.clone()));
                } else if &**k == key {
                    targets.push((q.clone(), ex.clone(), k.clone()));
                }
            }
        }
        if targets.is_empty() {
            tracing::debug!(exchange, routing_key = key, "message unroutable, dropped");
            if exchange.is_empty() {
                return Err(Error::Delivery(format!("no queue named {key}")));
            }
            return Ok(Vec::new());
        }
        let mut pending = Vec::new();
        let last = targets.len() - 1;
        let mut msg = Some(msg);
        for (i, (name, ex, rk)) in targets.into_iter().enumerate() {
            let m = if i == last { msg.take() } else { msg.clone() };
            let (Some(m), Some(q)) = (m, st.queues.get_mut(&name)) else {
                continue;
            };
            pending.extend(self.enqueue(q, &name, (m, ex, rk), expires)?);
        }
        Ok(pending)
    }
}

/// The in-memory transport. Clones share one broker; separate
/// [`MemoryTransport::new`] calls are separate brokers.
///
/// ```
/// # tokio_test_block_on(async {
/// use nova_rpc::{Dispatcher, Endpoint, MemoryTransport, RpcClient, RpcServer, RequestContext, Target, Version};
/// use serde_json::{json, Value};
///
/// let transport = MemoryTransport::new();
/// let endpoint = Endpoint::new(None, Version::new(1, 0))
///     .method("add", |_call, a: serde_json::Map<String, Value>| async move {
///         Ok(a["a"].as_i64().unwrap_or(0) + a["b"].as_i64().unwrap_or(0))
///     });
/// let server = RpcServer::start(transport.clone(), Target::topic("calc").with_server("s1"),
///                               Dispatcher::new(vec![endpoint])).await.unwrap();
/// let client = RpcClient::new(transport, Target::topic("calc"));
/// let sum: i64 = client.call(&RequestContext::new(), "add", json!({"a": 2, "b": 40})).await.unwrap();
/// assert_eq!(sum, 42);
/// server.stop().await;
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MemoryTransport {
    broker: Arc<Broker>,
    control_exchange: Arc<str>,
    send_timeout: Duration,
    /// `(rpc_response_timeout, long_rpc_timeout)`.
    timeouts: (Duration, Duration),
}

impl Default for MemoryTransport {
    fn default() -> Self {
        Self::with_config(MemoryConfig::default())
    }
}

impl MemoryTransport {
    /// A new broker with default settings, as an `Arc<dyn Transport>`-ready value.
    pub fn new() -> Arc<MemoryTransport> {
        Arc::new(Self::default())
    }

    /// A new broker with the given settings.
    pub fn with_config(config: MemoryConfig) -> Self {
        MemoryTransport {
            broker: Arc::new(Broker {
                state: Mutex::new(State {
                    empty: "".into(),
                    ..Default::default()
                }),
                capacity: config.queue_capacity.max(1),
            }),
            control_exchange: config.control_exchange.into(),
            send_timeout: config.send_timeout,
            timeouts: (config.response_timeout, config.long_rpc_timeout),
        }
    }

    /// Another handle on the same broker with another control exchange.
    pub fn with_control_exchange(&self, exchange: &str) -> Arc<MemoryTransport> {
        Arc::new(MemoryTransport {
            broker: self.broker.clone(),
            control_exchange: exchange.into(),
            send_timeout: self.send_timeout,
            timeouts: self.timeouts,
        })
    }

    /// Messages waiting in `queue` (`None` if it does not exist).
    pub fn queue_len(&self, queue: &str) -> Option<usize> {
        let st = self.broker.lock();
        let q = st.queues.get(queue)?;
        Some(q.backlog.len() + q.consumers.iter().map(|c| c.2.len()).sum::<usize>())
    }

    /// An inbox over consumers of `queues`; closing it detaches them (their
    /// untaken messages go back to the queues) and deletes `temporary` queues.
    fn inbox(
        &self,
        st: &mut State,
        name: String,
        queues: Vec<String>,
        temporary: Vec<String>,
        with_ack: bool,
    ) -> Inbox {
        let mut attached = Vec::new();
        let mut streams = Vec::new();
        for q in queues {
            let (id, rx) = self.broker.attach(st, &q);
            let broker = self.broker.clone();
            let queue = q.clone();
            streams.push(
                rx.into_stream()
                    .map(move |(message, exchange, routing_key)| {
                        let ack = with_ack.then(|| {
                            let broker = broker.clone();
                            let queue = queue.clone();
                            let item = (message.clone(), exchange.clone(), routing_key.clone());
                            Ack::new(move |d| {
                                if d == Disposition::Requeue {
                                    let mut st = broker.lock();
                                    if let Some(q) = st.queues.get_mut(queue.as_str()) {
                                        broker.enqueue_detached(q, &queue, item);
                                    }
                                }
                            })
                        });
                        Delivery {
                            message: Ok(message),
                            exchange,
                            routing_key,
                            ack,
                        }
                    })
                    .boxed(),
            );
            attached.push((q, id));
        }
        let stream = futures_util::stream::select_all(streams).boxed();
        let broker = self.broker.clone();
        Inbox::new(
            name,
            stream,
            move || {
                let mut st = broker.lock();
                for (q, id) in &attached {
                    broker.detach(&mut st, q, *id);
                }
                for q in &temporary {
                    Broker::delete(&mut st, q);
                }
            },
            false,
        )
    }
}

#[async_trait::async_trait]
impl Transport for MemoryTransport {
    fn control_exchange(&self) -> &str {
        &self.control_exchange
    }

    fn response_timeout(&self) -> Duration {
        self.timeouts.0
    }

    fn long_rpc_timeout(&self) -> Duration {
        self.timeouts.1
    }

    async fn send(
        &self,
        dest: &Destination,
        msg: Message,
        expiration: Option<Duration>,
    ) -> Result<()> {
        let expires = expiration.and_then(|d| Instant::now().checked_add(d));
        let pending = match dest {
            Destination::Topic {
                exchange,
                routing_key,
            } => self.broker.publish(exchange, routing_key, msg, expires),
            Destination::Fanout { topic } => {
                self.broker
                    .publish(&format!("{topic}_fanout"), "", msg, expires)
            }
            Destination::Reply { queue } => self.broker.publish("", queue, msg, expires),
            Destination::Notification {
                exchange,
                routing_key,
                ..
            } => {
                Broker::bind(&mut self.broker.lock(), exchange, routing_key, routing_key);
                self.broker.publish(exchange, routing_key, msg, expires)
            }
        }?;
        // Full consumers: wait for room (backpressure), but not forever.
        for (tx, item) in pending {
            match tokio::time::timeout(self.send_timeout, tx.send_async(item)).await {
                Ok(_) => {}
                Err(_) => {
                    return Err(Error::Delivery(format!(
                        "queue full for {:?}: the consumer does not keep up",
                        self.send_timeout
                    )));
                }
            }
        }
        Ok(())
    }

    fn has_consumer(&self, queue: &str) -> Option<bool> {
        let st = self.broker.lock();
        Some(
            st.queues
                .get(queue)
                .is_some_and(|q| !q.consumers.is_empty()),
        )
    }

    async fn listen(&self, what: Listen) -> Result<Inbox> {
        let mut st = self.broker.lock();
        Ok(match what {
            Listen::Rpc {
                exchange,
                topic,
                server,
            } => {
                let server_q = format!("{topic}.{server}");
                let fanout_q = format!("{topic}_fanout_{}", new_id());
                Broker::bind(&mut st, &exchange, &topic, &topic);
                Broker::bind(&mut st, &exchange, &server_q, &server_q);
                Broker::bind(&mut st, &format!("{topic}_fanout"), &topic, &fanout_q);
                let queues = vec![topic, server_q.clone(), fanout_q.clone()];
                self.inbox(&mut st, server_q, queues, vec![fanout_q], false)
            }
            Listen::Replies => {
                let name = format!("reply_{}", new_id());
                self.inbox(&mut st, name.clone(), vec![name.clone()], vec![name], false)
            }
            Listen::Notifications { bindings, pool } => {
                let mut queues: Vec<String> = Vec::new();
                for (exchange, key) in &bindings {
                    let queue = pool.clone().unwrap_or_else(|| key.clone());
                    Broker::bind(&mut st, exchange, key, &queue);
                    if !queues.contains(&queue) {
                        queues.push(queue);
                    }
                }
                let name = queues.last().cloned().unwrap_or_default();
                self.inbox(&mut st, name, queues, Vec::new(), true)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dispatcher, Endpoint, RequestContext, RpcClient, RpcServer, Target, Version};
    use serde_json::{Value, json};

    fn recording(seen: Arc<Mutex<Vec<i64>>>) -> Dispatcher {
        let endpoint = Endpoint::new(None, Version::new(1, 0)).method(
            "note",
            move |_call, a: serde_json::Map<String, Value>| {
                let seen = seen.clone();
                async move {
                    seen.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(a["n"].as_i64().unwrap_or(-1));
                    Ok(())
                }
            },
        );
        Dispatcher::new(vec![endpoint])
    }

    #[tokio::test]
    async fn a_cast_to_a_server_that_has_not_started_yet_waits_for_it() {
        let transport = MemoryTransport::new();
        let client = RpcClient::new(
            transport.clone(),
            Target::topic("compute").with_server("h1"),
        );
        client
            .cast(&RequestContext::new(), "note", json!({"n": 1}))
            .await
            .unwrap();
        // Another server of the topic does not get it: it is for h1.
        let other_seen = Arc::new(Mutex::new(Vec::new()));
        let other = RpcServer::start(
            transport.clone(),
            Target::topic("compute").with_server("h2"),
            recording(other_seen.clone()),
        )
        .await
        .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let server = RpcServer::start(
            transport.clone(),
            Target::topic("compute").with_server("h1"),
            recording(seen.clone()),
        )
        .await
        .unwrap();
        for _ in 0..100 {
            if !seen.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*seen.lock().unwrap(), vec![1], "the cast was kept for h1");
        assert_eq!(transport.has_consumer("compute.h1"), Some(true));
        assert_eq!(transport.has_consumer("compute.h3"), Some(false));
        assert!(other_seen.lock().unwrap().is_empty());
        server.stop().await;
        other.stop().await;
    }

    #[tokio::test]
    async fn an_expired_call_is_not_handed_to_a_late_server() {
        let transport = MemoryTransport::new();
        let client = RpcClient::new(transport.clone(), Target::topic("late").with_server("h1"))
            .timeout(Duration::from_millis(50));
        let r: crate::Result<Value> = client
            .call(&RequestContext::new(), "note", json!({"n": 7}))
            .await;
        assert!(r.is_err_and(|e| e.is_timeout()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let server = RpcServer::start(
            transport.clone(),
            Target::topic("late").with_server("h1"),
            recording(seen.clone()),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(seen.lock().unwrap().is_empty(), "an expired call was run");
        assert_eq!(transport.queue_len("late.h1"), Some(0));
        server.stop().await;
    }
}
