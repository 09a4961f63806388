//! The in-memory transport: a small broker inside the process with the same
//! routing as RabbitMQ under oslo.messaging (topic queues shared by the
//! servers of a topic, per-server queues, a fanout queue per listener,
//! reply queues, notification queues that keep messages until a listener
//! comes). Used by tests, examples and the all-in-one process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;

use crate::error::{Error, Result};
use crate::message::new_id;
use crate::transport::{Ack, Delivery, Destination, Disposition, Inbox, Listen, Message, Transport};

/// Settings of a [`MemoryTransport`].
#[derive(Debug, Clone)]
pub struct MemoryConfig {
    /// Exchange for targets that name none (oslo's `control_exchange`, default `openstack`).
    pub control_exchange: String,
    /// Messages a queue holds before publishing to it fails with
    /// [`Error::Delivery`] (default 65,536).
    pub queue_capacity: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig { control_exchange: "openstack".into(), queue_capacity: 65_536 }
    }
}

type Item = (Message, String, String);
type QueueEnds = (flume::Sender<Item>, flume::Receiver<Item>);

#[derive(Debug)]
struct Queue {
    tx: flume::Sender<Item>,
    rx: flume::Receiver<Item>,
}

#[derive(Debug, Default)]
struct State {
    queues: HashMap<String, Queue>,
    /// exchange -> (routing key, queue); fanout exchanges bind with "".
    bindings: HashMap<String, Vec<(String, String)>>,
}

#[derive(Debug)]
struct Broker {
    state: Mutex<State>,
    capacity: usize,
}

impl Broker {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps inconsistent
        // (every update is a single insert/remove), so recover from poison.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn declare(&self, st: &mut State, queue: &str) -> QueueEnds {
        let cap = self.capacity;
        let q = st.queues.entry(queue.to_owned()).or_insert_with(|| {
            let (tx, rx) = flume::bounded(cap);
            Queue { tx, rx }
        });
        (q.tx.clone(), q.rx.clone())
    }

    fn bind(st: &mut State, exchange: &str, key: &str, queue: &str) {
        let b = st.bindings.entry(exchange.to_owned()).or_default();
        if !b.iter().any(|(k, q)| k == key && q == queue) {
            b.push((key.to_owned(), queue.to_owned()));
        }
    }

    fn delete(st: &mut State, queue: &str) {
        st.queues.remove(queue);
        for b in st.bindings.values_mut() {
            b.retain(|(_, q)| q != queue);
        }
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
            broker: Arc::new(Broker { state: Mutex::default(), capacity: config.queue_capacity.max(1) }),
            control_exchange: config.control_exchange.into(),
        }
    }

    /// Another handle on the same broker with another control exchange.
    pub fn with_control_exchange(&self, exchange: &str) -> Arc<MemoryTransport> {
        Arc::new(MemoryTransport { broker: self.broker.clone(), control_exchange: exchange.into() })
    }

    /// Messages waiting in `queue` (`None` if it does not exist).
    pub fn queue_len(&self, queue: &str) -> Option<usize> {
        self.broker.lock().queues.get(queue).map(|q| q.rx.len())
    }

    fn publish(&self, exchange: &str, key: &str, msg: Message) -> Result<()> {
        let targets: Vec<(String, flume::Sender<Item>)> = {
            let st = self.broker.lock();
            if exchange.is_empty() {
                st.queues.get(key).map(|q| (key.to_owned(), q.tx.clone())).into_iter().collect()
            } else {
                let fanout = exchange.ends_with("_fanout");
                st.bindings
                    .get(exchange)
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| fanout || k == key)
                    .filter_map(|(_, q)| st.queues.get(q).map(|qq| (q.clone(), qq.tx.clone())))
                    .collect()
            }
        };
        if targets.is_empty() {
            tracing::debug!(exchange, routing_key = key, "message unroutable, dropped");
            if exchange.is_empty() {
                return Err(Error::Delivery(format!("no queue named {key}")));
            }
            return Ok(());
        }
        let last = targets.len() - 1;
        let mut msg = Some(msg);
        for (i, (queue, tx)) in targets.into_iter().enumerate() {
            let m = if i == last { msg.take() } else { msg.clone() };
            let Some(m) = m else { break };
            match tx.try_send((m, exchange.to_owned(), key.to_owned())) {
                Ok(()) => {}
                Err(flume::TrySendError::Full(_)) => {
                    return Err(Error::Delivery(format!(
                        "queue {queue} is full ({} messages)",
                        self.broker.capacity
                    )));
                }
                Err(flume::TrySendError::Disconnected(_)) => {}
            }
        }
        Ok(())
    }

    fn inbox(&self, name: String, queues: Vec<QueueEnds>, temporary: Vec<String>, with_ack: bool) -> Inbox {
        let streams = queues.into_iter().map(move |(tx, rx)| {
            rx.into_stream()
                .map(move |(message, exchange, routing_key)| {
                    let ack = with_ack.then(|| {
                        let tx = tx.clone();
                        let item = (message.clone(), exchange.clone(), routing_key.clone());
                        Ack::new(move |d| {
                            if d == Disposition::Requeue {
                                let _ = tx.try_send(item);
                            }
                        })
                    });
                    Delivery { message: Ok(message), exchange, routing_key, ack }
                })
                .boxed()
        });
        let stream = futures_util::stream::select_all(streams).boxed();
        let broker = self.broker.clone();
        Inbox::new(
            name,
            stream,
            move || {
                let mut st = broker.lock();
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

    async fn send(&self, dest: Destination, msg: Message, _expiration: Option<Duration>) -> Result<()> {
        match dest {
            Destination::Topic { exchange, routing_key } => self.publish(&exchange, &routing_key, msg),
            Destination::Fanout { topic } => self.publish(&format!("{topic}_fanout"), "", msg),
            Destination::Reply { queue } => self.publish("", &queue, msg),
            Destination::Notification { exchange, routing_key, .. } => {
                {
                    let mut st = self.broker.lock();
                    self.broker.declare(&mut st, &routing_key);
                    Broker::bind(&mut st, &exchange, &routing_key, &routing_key);
                }
                self.publish(&exchange, &routing_key, msg)
            }
        }
    }

    async fn listen(&self, what: Listen) -> Result<Inbox> {
        let mut st = self.broker.lock();
        match what {
            Listen::Rpc { exchange, topic, server } => {
                let server_q = format!("{topic}.{server}");
                let fanout_q = format!("{topic}_fanout_{}", new_id());
                let rxs = vec![
                    self.broker.declare(&mut st, &topic),
                    self.broker.declare(&mut st, &server_q),
                    self.broker.declare(&mut st, &fanout_q),
                ];
                Broker::bind(&mut st, &exchange, &topic, &topic);
                Broker::bind(&mut st, &exchange, &server_q, &server_q);
                Broker::bind(&mut st, &format!("{topic}_fanout"), &topic, &fanout_q);
                drop(st);
                Ok(self.inbox(server_q, rxs, vec![fanout_q], false))
            }
            Listen::Replies => {
                let name = format!("reply_{}", new_id());
                let rx = self.broker.declare(&mut st, &name);
                drop(st);
                Ok(self.inbox(name.clone(), vec![rx], vec![name], false))
            }
            Listen::Notifications { bindings, pool } => {
                let mut rxs = Vec::new();
                let mut name = String::new();
                for (exchange, key) in &bindings {
                    let queue = pool.clone().unwrap_or_else(|| key.clone());
                    let rx = self.broker.declare(&mut st, &queue);
                    Broker::bind(&mut st, exchange, key, &queue);
                    if !rxs.iter().any(|(_, r): &QueueEnds| r.same_channel(&rx.1)) {
                        rxs.push(rx);
                    }
                    name = queue;
                }
                drop(st);
                Ok(self.inbox(name, rxs, Vec::new(), true))
            }
        }
    }
}
