//! The AMQP 0-9-1 transport on RabbitMQ (lapin), wire-compatible with
//! oslo.messaging 18's rabbit driver: the same exchanges, queues, bindings,
//! flags, envelope, reply path, publisher confirms and message properties
//! (see `shared/specs/oslo-wire.md`).
//!
//! Connections: one publishing connection (confirm mode) shared by every
//! send of the transport, and one listening connection shared by every
//! subscription (an RPC server's three queues, a reply queue, a notification
//! listener), each subscription on a channel of its own. oslo opens a
//! connection per listener; lapin runs a thread per connection, so a process
//! hosting hundreds of fake computes would otherwise hold hundreds of
//! threads and broker connections. Both connections reconnect with backoff
//! and failover across the URL's hosts; subscriptions redeclare their queues
//! (same names) on the new listening connection and go on.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::{
    AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo, SASLMechanism,
};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::message::{Codec, Notification, Reply, Request, new_id};
use crate::transport::{
    Ack, Delivery, Destination, Disposition, Inbox, Listen, Message, Transport,
};
use crate::url::{TransportHost, TransportUrl};

/// Settings of an [`AmqpTransport`], named after oslo's options.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// `transport_url`: `rabbit://user:pass@host:port[,host2...]/vhost`.
    pub url: TransportUrl,
    /// `control_exchange` (oslo default `openstack`; nova uses `nova`).
    pub control_exchange: String,
    /// Body encoding of what we send (`json` for oslo peers).
    pub codec: Codec,
    /// `heartbeat_timeout_threshold`: AMQP heartbeat in seconds (0 disables; default 60).
    pub heartbeat: u16,
    /// `rabbit_retry_interval`: first reconnect delay (default 1 s).
    pub retry_interval: Duration,
    /// `rabbit_retry_backoff`: added to the delay at each attempt (default 2 s).
    pub retry_backoff: Duration,
    /// `rabbit_interval_max`: the longest delay between attempts (default 30 s).
    pub interval_max: Duration,
    /// `rabbit_transient_queues_ttl`: `x-expires` of reply and fanout queues (default 1800 s).
    pub transient_queues_ttl: Duration,
    /// `kombu_missing_consumer_retry_timeout`: how long a reply to a missing
    /// reply queue is retried (default 60 s).
    pub missing_consumer_retry_timeout: Duration,
    /// `rabbit_qos_prefetch_count` (0 = unlimited, the default).
    pub prefetch_count: u16,
    /// How long a cast or notification keeps retrying while the broker is
    /// unreachable before failing (calls use their own timeout; default 60 s).
    pub send_timeout: Duration,
    /// Requests larger than this are refused with a failure reply (default 64 MiB).
    pub max_message_size: usize,
    /// Connection name shown by `rabbitmqctl list_connections` (default `<program>:<pid>:<uuid>`).
    pub connection_name: String,
    /// `amqp_durable_queues`: topic exchanges, server queues (`<topic>`,
    /// `<topic>.<server>`) and notification queues are durable, so they and
    /// their (persistent) messages survive a broker restart (default false,
    /// as oslo; reply and fanout queues stay transient).
    pub durable_queues: bool,
    /// `rpc_response_timeout`: how long a call waits for its reply unless
    /// its client sets a timeout (default 60 s).
    pub response_timeout: Duration,
    /// `long_rpc_timeout`: the timeout of the calls that may take long
    /// (default 1800 s; see [`RpcClient::long`](crate::RpcClient::long)).
    pub long_rpc_timeout: Duration,
}

impl AmqpConfig {
    /// Defaults for `url`.
    pub fn new(url: TransportUrl) -> Self {
        let program = std::env::args()
            .next()
            .and_then(|a| {
                std::path::Path::new(&a)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "nova-rs".into());
        AmqpConfig {
            url,
            control_exchange: "openstack".into(),
            codec: Codec::Json,
            heartbeat: 60,
            retry_interval: Duration::from_secs(1),
            retry_backoff: Duration::from_secs(2),
            interval_max: Duration::from_secs(30),
            transient_queues_ttl: Duration::from_secs(1800),
            missing_consumer_retry_timeout: Duration::from_secs(60),
            prefetch_count: 0,
            send_timeout: Duration::from_secs(60),
            max_message_size: 64 << 20,
            connection_name: format!("{program}:{}:{}", std::process::id(), uuid::Uuid::new_v4()),
            durable_queues: false,
            response_timeout: crate::client::DEFAULT_TIMEOUT,
            long_rpc_timeout: crate::client::DEFAULT_LONG_TIMEOUT,
        }
    }

    /// Parses `url` and applies defaults; the URL's query may set
    /// `heartbeat_timeout_threshold`, `rabbit_retry_interval`,
    /// `rabbit_qos_prefetch_count` and `rabbit_transient_queues_ttl`.
    pub fn from_url(url: &str) -> Result<Self> {
        let parsed: TransportUrl = url.parse()?;
        if parsed.is_memory() {
            return Err(Error::InvalidUrl {
                url: parsed.to_string(),
                reason: "fake:// is the in-memory transport, not AMQP".into(),
            });
        }
        let mut c = AmqpConfig::new(parsed);
        for (k, v) in c.url.options.clone() {
            let bad = || Error::InvalidUrl {
                url: c.url.to_string(),
                reason: format!("option {k}={v:?} is not a number"),
            };
            match k.as_str() {
                "heartbeat_timeout_threshold" => c.heartbeat = v.parse().map_err(|_| bad())?,
                "rabbit_retry_interval" => {
                    c.retry_interval = Duration::from_secs(v.parse().map_err(|_| bad())?)
                }
                "rabbit_qos_prefetch_count" => c.prefetch_count = v.parse().map_err(|_| bad())?,
                "rabbit_transient_queues_ttl" => {
                    c.transient_queues_ttl = Duration::from_secs(v.parse().map_err(|_| bad())?)
                }
                other => tracing::warn!(option = other, "unknown transport_url option ignored"),
            }
        }
        Ok(c)
    }

    /// Sets the control exchange.
    pub fn control_exchange(mut self, exchange: impl Into<String>) -> Self {
        self.control_exchange = exchange.into();
        self
    }

    /// Sets the codec.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    fn backoff(&self, attempt: u32) -> Duration {
        if attempt == 0 {
            return Duration::ZERO;
        }
        (self.retry_interval + self.retry_backoff * (attempt - 1)).min(self.interval_max)
    }
}

struct PubConn {
    conn: Connection,
    channel: Channel,
    declared: Mutex<HashSet<String>>,
}

struct Inner {
    config: AmqpConfig,
    next_host: AtomicUsize,
    publisher: RwLock<Option<Arc<PubConn>>>,
    reconnecting: tokio::sync::Mutex<()>,
    /// The connection every subscription's channel is opened on.
    listener: tokio::sync::Mutex<Option<Arc<Connection>>>,
    /// Reply queues found missing for `missing_consumer_retry_timeout`:
    /// later replies to them are dropped at once (oslo: 200 entries, 60 s).
    obsolete_replies: Mutex<HashMap<String, Instant>>,
    shutdown: CancellationToken,
}

/// The RabbitMQ transport.
#[derive(Clone)]
pub struct AmqpTransport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AmqpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpTransport")
            .field("url", &self.inner.config.url.to_string())
            .finish_non_exhaustive()
    }
}

fn lapin_err(what: &str) -> impl FnOnce(lapin::Error) -> Error + '_ {
    move |e| Error::transport(what.to_owned(), e)
}

impl AmqpTransport {
    /// Connects the publishing connection (failing fast when no host answers).
    pub async fn connect(config: AmqpConfig) -> Result<Arc<AmqpTransport>> {
        let t = AmqpTransport {
            inner: Arc::new(Inner {
                config,
                next_host: AtomicUsize::new(0),
                publisher: RwLock::new(None),
                reconnecting: tokio::sync::Mutex::new(()),
                listener: tokio::sync::Mutex::new(None),
                obsolete_replies: Mutex::new(HashMap::new()),
                shutdown: CancellationToken::new(),
            }),
        };
        t.inner.publisher().await?;
        Ok(Arc::new(t))
    }

    /// Parses `url` and connects with default settings.
    pub async fn from_url(url: &str) -> Result<Arc<AmqpTransport>> {
        Self::connect(AmqpConfig::from_url(url)?).await
    }

    /// The settings in use.
    pub fn config(&self) -> &AmqpConfig {
        &self.inner.config
    }

    /// Stops every subscription and closes the connections.
    pub async fn close(&self) {
        self.inner.shutdown.cancel();
        let p = self
            .inner
            .publisher
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(p) = p {
            let _ = p.conn.close(200, "OK".into()).await;
        }
        if let Some(l) = self.inner.listener.lock().await.take() {
            let _ = l.close(200, "OK".into()).await;
        }
    }
}

impl Inner {
    fn uri(&self, h: &TransportHost) -> AMQPUri {
        AMQPUri {
            scheme: AMQPScheme::AMQP,
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: h.username.clone(),
                    password: h.password.clone(),
                },
                host: h.host.clone(),
                port: h.port,
            },
            vhost: self.config.url.virtual_host.clone(),
            query: AMQPQueryString {
                heartbeat: Some(self.config.heartbeat),
                auth_mechanism: Some(SASLMechanism::AMQPlain),
                connection_timeout: Some(10_000),
                ..Default::default()
            },
        }
    }

    /// Opens a connection to the first host that answers, starting with the
    /// one that worked last (oslo's round-robin failover).
    async fn open(&self) -> Result<Connection> {
        let hosts = &self.config.url.hosts;
        let start = self.next_host.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..hosts.len() {
            let idx = (start + i) % hosts.len();
            let props = ConnectionProperties::default()
                .with_connection_name(self.config.connection_name.clone().into())
                .with_client_property("product".into(), "nova-rs".into())
                .with_client_property("product_version".into(), env!("CARGO_PKG_VERSION").into());
            let attempt = Connection::connect_uri(self.uri(&hosts[idx]), props);
            match tokio::time::timeout(Duration::from_secs(15), attempt).await {
                Ok(Ok(c)) => {
                    self.next_host.store(idx, Ordering::Relaxed);
                    return Ok(c);
                }
                Ok(Err(e)) => {
                    last = Some(Error::transport(
                        format!("cannot connect to {}:{}", hosts[idx].host, hosts[idx].port),
                        e,
                    ))
                }
                Err(_) => {
                    last = Some(Error::Transport {
                        message: format!(
                            "connecting to {}:{} timed out",
                            hosts[idx].host, hosts[idx].port
                        ),
                        source: None,
                    })
                }
            }
        }
        Err(last.unwrap_or(Error::Transport {
            message: "transport_url has no host".into(),
            source: None,
        }))
    }

    async fn publisher(&self) -> Result<Arc<PubConn>> {
        let current = |this: &Self| -> Option<Arc<PubConn>> {
            let g = this.publisher.read().unwrap_or_else(|p| p.into_inner());
            g.as_ref()
                .filter(|p| p.channel.status().connected())
                .cloned()
        };
        if let Some(p) = current(self) {
            return Ok(p);
        }
        let _g = self.reconnecting.lock().await;
        if let Some(p) = current(self) {
            return Ok(p);
        }
        if self.shutdown.is_cancelled() {
            return Err(Error::Closed("AMQP transport"));
        }
        let conn = self.open().await?;
        let channel = conn
            .create_channel()
            .await
            .map_err(lapin_err("cannot open a channel"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(lapin_err("confirm.select failed"))?;
        let p = Arc::new(PubConn {
            conn,
            channel,
            declared: Mutex::new(HashSet::new()),
        });
        *self.publisher.write().unwrap_or_else(|p| p.into_inner()) = Some(p.clone());
        tracing::debug!("publisher connected");
        Ok(p)
    }

    /// The shared listening connection, opened again if it was lost.
    async fn listening_connection(&self) -> Result<Arc<Connection>> {
        let mut g = self.listener.lock().await;
        if let Some(c) = g.as_ref().filter(|c| c.status().connected()) {
            return Ok(c.clone());
        }
        if self.shutdown.is_cancelled() {
            return Err(Error::Closed("AMQP transport"));
        }
        if let Some(old) = g.take() {
            tokio::spawn(async move {
                let _ = old.close(320, "reconnecting".into()).await;
            });
        }
        let c = Arc::new(self.open().await?);
        tracing::debug!("listening connection opened");
        *g = Some(c.clone());
        Ok(c)
    }

    fn invalidate(&self, p: &Arc<PubConn>) {
        let mut g = self.publisher.write().unwrap_or_else(|p| p.into_inner());
        if g.as_ref().is_some_and(|c| Arc::ptr_eq(c, p)) {
            *g = None;
        }
    }

    fn is_obsolete_reply_queue(&self, queue: &str) -> bool {
        let mut m = self
            .obsolete_replies
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        m.retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
        m.contains_key(queue)
    }

    fn mark_obsolete_reply_queue(&self, queue: &str) {
        let mut m = self
            .obsolete_replies
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if m.len() >= 200
            && let Some(oldest) = m.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone())
        {
            m.remove(&oldest);
        }
        m.insert(queue.to_owned(), Instant::now());
    }
}

/// How one publish ended.
enum Published {
    Confirmed,
    /// Unroutable mandatory message (no such reply queue).
    Returned,
}

struct Route<'a> {
    exchange: &'a str,
    routing_key: &'a str,
    /// Exchange to declare first (name, kind, auto_delete); none for the default exchange.
    declare: Option<(ExchangeKind, bool)>,
    /// Queue to declare and bind first (notifications keep messages until a listener comes).
    queue: Option<&'a str>,
    mandatory: bool,
}

async fn publish_once(
    p: &PubConn,
    r: &Route<'_>,
    body: &[u8],
    props: BasicProperties,
    durable: bool,
) -> lapin::Result<Published> {
    if let Some((kind, auto_delete)) = &r.declare {
        // Cached per connection; no allocation on the hot path (topic and fanout sends).
        let key: std::borrow::Cow<'_, str> = match r.queue {
            None => r.exchange.into(),
            Some(q) => format!("{}\0{q}", r.exchange).into(),
        };
        let known = p
            .declared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key.as_ref());
        if !known {
            let opts = ExchangeDeclareOptions {
                auto_delete: *auto_delete,
                durable: durable && !*auto_delete,
                ..Default::default()
            };
            p.channel
                .exchange_declare(r.exchange.into(), kind.clone(), opts, FieldTable::default())
                .await?;
            if let Some(q) = r.queue {
                p.channel
                    .queue_declare(
                        q.into(),
                        QueueDeclareOptions {
                            durable,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    )
                    .await?;
                p.channel
                    .queue_bind(
                        q.into(),
                        r.exchange.into(),
                        r.routing_key.into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
            }
            p.declared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.into_owned());
        }
    }
    let opts = BasicPublishOptions {
        mandatory: r.mandatory,
        immediate: false,
    };
    let confirm = p
        .channel
        .basic_publish(r.exchange.into(), r.routing_key.into(), opts, body, props)
        .await?
        .await?;
    match confirm {
        Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)) => Ok(Published::Returned),
        Confirmation::Nack(None) => Err(lapin::Error::from(lapin::ErrorKind::InvalidChannelState(
            lapin::ChannelState::Error,
            "basic.nack",
        ))),
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(Published::Confirmed),
    }
}

fn encode(codec: Codec, msg: &Message, envelope: bool) -> Result<Vec<u8>> {
    let r = match msg {
        Message::Request(m) => codec.encode(m, envelope),
        Message::Reply(m) => codec.encode(m, envelope),
        Message::Notification(m) => codec.encode(m, envelope),
    };
    r.map_err(Error::Codec)
}

#[async_trait::async_trait]
impl Transport for AmqpTransport {
    fn control_exchange(&self) -> &str {
        &self.inner.config.control_exchange
    }

    fn response_timeout(&self) -> Duration {
        self.inner.config.response_timeout
    }

    fn long_rpc_timeout(&self) -> Duration {
        self.inner.config.long_rpc_timeout
    }

    async fn send(
        &self,
        dest: &Destination,
        msg: Message,
        expiration: Option<Duration>,
    ) -> Result<()> {
        let inner = &self.inner;
        let cfg = &inner.config;
        let fanout_exchange;
        let (route, envelope) = match dest {
            Destination::Topic {
                exchange,
                routing_key,
            } => (
                Route {
                    exchange,
                    routing_key,
                    declare: Some((ExchangeKind::Topic, false)),
                    queue: None,
                    mandatory: false,
                },
                true,
            ),
            Destination::Fanout { topic } => {
                fanout_exchange = format!("{topic}_fanout");
                (
                    Route {
                        exchange: &fanout_exchange,
                        routing_key: "",
                        declare: Some((ExchangeKind::Fanout, true)),
                        queue: None,
                        mandatory: false,
                    },
                    true,
                )
            }
            Destination::Reply { queue } => {
                if inner.is_obsolete_reply_queue(queue) {
                    tracing::debug!(reply_q = %queue, "reply queue is gone, reply dropped");
                    return Ok(());
                }
                (
                    Route {
                        exchange: "",
                        routing_key: queue,
                        declare: None,
                        queue: None,
                        mandatory: true,
                    },
                    true,
                )
            }
            Destination::Notification {
                exchange,
                routing_key,
                envelope,
            } => (
                Route {
                    exchange,
                    routing_key,
                    declare: Some((ExchangeKind::Topic, false)),
                    queue: Some(routing_key),
                    mandatory: false,
                },
                *envelope,
            ),
        };
        let body = encode(cfg.codec, &msg, envelope)?;
        let mut props = BasicProperties::default()
            .with_content_type(cfg.codec.content_type().into())
            .with_content_encoding("utf-8".into())
            .with_delivery_mode(2)
            .with_priority(0)
            .with_headers(FieldTable::default());
        if let Some(e) = expiration {
            props = props.with_expiration(e.as_millis().max(1).to_string().into());
        }
        let started = Instant::now();
        let deadline = started + expiration.unwrap_or(cfg.send_timeout);
        let mut attempt = 0u32;
        let mut returned_since: Option<Instant> = None;
        loop {
            let outcome = match inner.publisher().await {
                Ok(p) => {
                    match publish_once(&p, &route, &body, props.clone(), cfg.durable_queues).await {
                        Ok(o) => Ok(o),
                        Err(e) => {
                            inner.invalidate(&p);
                            Err(Error::transport("publish failed", e))
                        }
                    }
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(Published::Confirmed) => return Ok(()),
                Ok(Published::Returned) => {
                    // Only replies are mandatory: the caller's reply queue is missing.
                    let since = *returned_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= cfg.missing_consumer_retry_timeout {
                        inner.mark_obsolete_reply_queue(route.routing_key);
                        return Err(Error::Delivery(format!(
                            "reply queue {} does not exist (retried for {:?})",
                            route.routing_key, cfg.missing_consumer_retry_timeout
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => {
                    if matches!(e, Error::Closed(_)) || Instant::now() >= deadline {
                        return Err(e);
                    }
                    let wait = cfg
                        .backoff(attempt)
                        .min(deadline.saturating_duration_since(Instant::now()));
                    tracing::warn!(error = %e, retry_in = ?wait, "AMQP publish failed, reconnecting");
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn listen(&self, what: Listen) -> Result<Inbox> {
        let spec = Arc::new(Spec::new(what, &self.inner.config));
        // The first set-up happens now, so that a broker that cannot be
        // reached is an error here; later losses reconnect in the stream.
        let (ch, consumers) = setup(&self.inner, &spec).await?;
        let n = consumers.len();
        let slot: LiveSlot = Arc::new(Mutex::new(Some(ch)));
        let token = self.inner.shutdown.child_token();
        let state = ConsumerState {
            inner: self.inner.clone(),
            spec: spec.clone(),
            cancelled: Box::pin(token.clone().cancelled_owned()),
            token: token.clone(),
            slot: slot.clone(),
            stream: Some(futures_util::stream::select_all(consumers)),
            attempt: 0,
        };
        let stream = futures_util::stream::unfold(state, |mut s| async move {
            let d = s.next_delivery().await?;
            Some((d, s))
        });
        let close_spec = spec.clone();
        let on_close = move || {
            token.cancel();
            let taken = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let (Some(ch), Ok(rt)) = (taken, tokio::runtime::Handle::try_current()) {
                rt.spawn(async move { teardown(ch, &close_spec, n).await });
            }
        };
        // Deliveries not yet taken are unacknowledged: the broker gives them
        // back to the queue when the channel closes, so nothing is drained here.
        Ok(Inbox::new(
            spec.name.clone(),
            stream.boxed(),
            on_close,
            false,
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rpc,
    Replies,
    Notifications,
}

/// A subscription with its queue names fixed, so that reconnects redeclare the same queues.
#[derive(Debug)]
struct Spec {
    kind: Kind,
    name: String,
    /// Exchanges: (name, kind, auto_delete).
    exchanges: Vec<(String, ExchangeKind, bool)>,
    /// Queues: (name, x-expires in ms).
    queues: Vec<(String, Option<i32>)>,
    /// Bindings: (queue, exchange, routing key).
    bindings: Vec<(String, String, String)>,
    /// Queue deleted when the subscription closes (the server's fanout queue).
    temporary: Option<String>,
}

impl Spec {
    fn new(what: Listen, cfg: &AmqpConfig) -> Spec {
        let ttl = i32::try_from(cfg.transient_queues_ttl.as_millis()).unwrap_or(i32::MAX);
        match what {
            Listen::Rpc {
                exchange,
                topic,
                server,
            } => {
                let server_q = format!("{topic}.{server}");
                let fanout_x = format!("{topic}_fanout");
                let fanout_q = format!("{topic}_fanout_{}", new_id());
                Spec {
                    kind: Kind::Rpc,
                    name: server_q.clone(),
                    exchanges: vec![
                        (exchange.clone(), ExchangeKind::Topic, false),
                        (fanout_x.clone(), ExchangeKind::Fanout, true),
                    ],
                    queues: vec![
                        (topic.clone(), None),
                        (server_q.clone(), None),
                        (fanout_q.clone(), Some(ttl)),
                    ],
                    bindings: vec![
                        (topic.clone(), exchange.clone(), topic.clone()),
                        (server_q.clone(), exchange, server_q),
                        (fanout_q.clone(), fanout_x, topic),
                    ],
                    temporary: Some(fanout_q),
                }
            }
            Listen::Replies => {
                let q = format!("reply_{}", new_id());
                Spec {
                    kind: Kind::Replies,
                    name: q.clone(),
                    exchanges: vec![],
                    queues: vec![(q, Some(ttl))],
                    bindings: vec![],
                    temporary: None,
                }
            }
            Listen::Notifications { bindings, pool } => {
                let mut s = Spec {
                    kind: Kind::Notifications,
                    name: String::new(),
                    exchanges: vec![],
                    queues: vec![],
                    bindings: vec![],
                    temporary: None,
                };
                for (exchange, key) in bindings {
                    let q = pool.clone().unwrap_or_else(|| key.clone());
                    if !s.exchanges.iter().any(|(x, _, _)| *x == exchange) {
                        s.exchanges
                            .push((exchange.clone(), ExchangeKind::Topic, false));
                    }
                    if !s.queues.iter().any(|(n, _)| *n == q) {
                        s.queues.push((q.clone(), None));
                    }
                    s.name = q.clone();
                    s.bindings.push((q, exchange, key));
                }
                s
            }
        }
    }
}

async fn setup(inner: &Inner, spec: &Spec) -> Result<(Channel, Vec<lapin::Consumer>)> {
    let conn = inner.listening_connection().await?;
    let ch = conn
        .create_channel()
        .await
        .map_err(lapin_err("cannot open a channel"))?;
    if inner.config.prefetch_count > 0 {
        ch.basic_qos(inner.config.prefetch_count, BasicQosOptions::default())
            .await
            .map_err(lapin_err("basic.qos failed"))?;
    }
    let durable = inner.config.durable_queues;
    for (name, kind, auto_delete) in &spec.exchanges {
        let opts = ExchangeDeclareOptions {
            auto_delete: *auto_delete,
            durable: durable && !*auto_delete,
            ..Default::default()
        };
        ch.exchange_declare(
            name.as_str().into(),
            kind.clone(),
            opts,
            FieldTable::default(),
        )
        .await
        .map_err(lapin_err("exchange.declare failed"))?;
    }
    for (name, ttl) in &spec.queues {
        let mut args = FieldTable::default();
        if let Some(ms) = ttl {
            args.insert("x-expires".into(), AMQPValue::LongInt(*ms));
        }
        // Transient queues (replies, fanout: with an expiry) are never durable.
        let opts = QueueDeclareOptions {
            durable: durable && ttl.is_none(),
            ..Default::default()
        };
        ch.queue_declare(name.as_str().into(), opts, args)
            .await
            .map_err(lapin_err("queue.declare failed"))?;
    }
    for (queue, exchange, key) in &spec.bindings {
        ch.queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(lapin_err("queue.bind failed"))?;
    }
    let mut consumers = Vec::new();
    for (i, (queue, _)) in spec.queues.iter().enumerate() {
        let c = ch
            .basic_consume(
                queue.as_str().into(),
                (i + 1).to_string().as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(lapin_err("basic.consume failed"))?;
        consumers.push(c);
    }
    Ok((ch, consumers))
}

fn decode(
    kind: Kind,
    d: &lapin::message::Delivery,
    max: usize,
) -> std::result::Result<Message, crate::message::Malformed> {
    let codec = Codec::from_content_type(d.properties.content_type().as_ref().map(|s| s.as_str()));
    match kind {
        Kind::Rpc => Request::decode(codec, &d.data, max).map(Message::Request),
        Kind::Replies => Reply::decode(codec, &d.data).map(Message::Reply),
        Kind::Notifications => Notification::decode(codec, &d.data).map(Message::Notification),
    }
}

async fn teardown(ch: Channel, spec: &Spec, consumers: usize) {
    for i in 0..consumers {
        let _ = ch
            .basic_cancel(
                (i + 1).to_string().as_str().into(),
                BasicCancelOptions::default(),
            )
            .await;
    }
    if let Some(q) = &spec.temporary {
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = ch.close(200, "OK".into()).await;
}

/// The live channel of a subscription, shared with `Inbox::close`.
type LiveSlot = Arc<Mutex<Option<Channel>>>;

/// A subscription's receiving side: polled by the inbox's owner directly (no
/// forwarding task), reconnecting with backoff when the connection is lost.
struct ConsumerState {
    inner: Arc<Inner>,
    spec: Arc<Spec>,
    token: CancellationToken,
    /// Created once: a fresh `cancelled()` per delivery would register with the token each time.
    cancelled: std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    slot: LiveSlot,
    stream: Option<futures_util::stream::SelectAll<lapin::Consumer>>,
    attempt: u32,
}

impl ConsumerState {
    async fn next_delivery(&mut self) -> Option<Delivery> {
        loop {
            if self.token.is_cancelled() {
                self.stream = None;
                let taken = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(ch) = taken {
                    teardown(ch, &self.spec, self.spec.queues.len()).await;
                }
                return None;
            }
            let Some(stream) = self.stream.as_mut() else {
                self.reconnect().await;
                continue;
            };
            let item = tokio::select! {
                _ = &mut self.cancelled => continue,
                i = stream.next() => i,
            };
            let d = match item {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    tracing::warn!(queue = %self.spec.name, error = %e, "AMQP consumer failed, reconnecting");
                    self.lost();
                    continue;
                }
                None => {
                    tracing::warn!(queue = %self.spec.name, "AMQP consumer cancelled, reconnecting");
                    self.lost();
                    continue;
                }
            };
            let message = decode(self.spec.kind, &d, self.inner.config.max_message_size);
            let ack = if self.spec.kind == Kind::Notifications {
                let acker = d.acker.clone();
                Some(Ack::new(move |disp| {
                    tokio::spawn(async move {
                        let r = match disp {
                            Disposition::Ack => acker.ack(BasicAckOptions::default()).await,
                            Disposition::Requeue => {
                                acker
                                    .nack(BasicNackOptions {
                                        requeue: true,
                                        multiple: false,
                                    })
                                    .await
                            }
                        };
                        if let Err(e) = r {
                            tracing::warn!(error = %e, "could not settle a notification");
                        }
                    });
                }))
            } else {
                // oslo acknowledges requests and replies on receipt (at most once).
                // The ack is queued now and written by lapin in the background:
                // waiting for the write would add a thread round trip to every call.
                if !d.acker.usable() {
                    tracing::warn!("delivery on a failed channel; the broker will redeliver it");
                    continue;
                }
                let _ =
                    futures_util::FutureExt::now_or_never(d.acker.ack(BasicAckOptions::default()));
                None
            };
            return Some(Delivery {
                message,
                exchange: d.exchange.as_str().into(),
                routing_key: d.routing_key.as_str().into(),
                ack,
            });
        }
    }

    /// Forgets a broken channel (closing it in the background); a lost
    /// connection is replaced by the next set-up.
    fn lost(&mut self) {
        self.stream = None;
        let taken = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(ch) = taken {
            tokio::spawn(async move {
                let _ = ch.close(200, "reconnecting".into()).await;
            });
        }
    }

    /// One reconnection attempt after the backoff delay.
    async fn reconnect(&mut self) {
        self.attempt += 1;
        let wait = self.inner.config.backoff(self.attempt);
        tokio::select! {
            _ = self.token.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let r = tokio::select! {
            _ = self.token.cancelled() => return,
            r = setup(&self.inner, &self.spec) => r,
        };
        match r {
            Ok((ch, consumers)) => {
                tracing::info!(queue = %self.spec.name, attempt = self.attempt, "reconnected and redeclared queues");
                *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(ch);
                self.stream = Some(futures_util::stream::select_all(consumers));
                self.attempt = 0;
            }
            Err(e) => {
                tracing::warn!(queue = %self.spec.name, error = %e, retry_in = ?self.inner.config.backoff(self.attempt + 1), "AMQP reconnect failed")
            }
        }
    }
}
