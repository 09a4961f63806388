//! The small trait every transport implements, and what flows through it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::error::Result;
use crate::message::{Malformed, Notification, Reply, Request};

/// Where a message is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The topic exchange `exchange` with a routing key `<topic>` or `<topic>.<server>`.
    Topic {
        /// Exchange name.
        exchange: String,
        /// Routing key.
        routing_key: String,
    },
    /// Every listener on `topic` (exchange `<topic>_fanout`).
    Fanout {
        /// The topic.
        topic: String,
    },
    /// A caller's reply queue (through the default exchange).
    Reply {
        /// The `_reply_q` of the request.
        queue: String,
    },
    /// A notification topic `<topic>.<priority>` on `exchange`; the queue of
    /// that name is created so that notifications wait for a listener.
    Notification {
        /// Exchange name.
        exchange: String,
        /// `<topic>.<priority>`.
        routing_key: String,
        /// oslo's `messagingv2` envelope (true) or plain v1 (false).
        envelope: bool,
    },
}

/// Any message a transport carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A call or cast.
    Request(Request),
    /// A reply or heartbeat.
    Reply(Reply),
    /// A notification.
    Notification(Notification),
}

/// What a listener subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// An RPC server: queues `<topic>` and `<topic>.<server>` on `exchange`,
    /// and a private fanout queue on `<topic>_fanout`.
    Rpc {
        /// Exchange name.
        exchange: String,
        /// Topic.
        topic: String,
        /// Server name.
        server: String,
    },
    /// A private reply queue `reply_<uuid>` for calls.
    Replies,
    /// Notification queues: one `(exchange, routing key)` per entry; the
    /// queue is named after the routing key, or `pool` when given.
    Notifications {
        /// `(exchange, "<topic>.<priority>")` pairs.
        bindings: Vec<(String, String)>,
        /// Shared queue name for a pool of listeners.
        pool: Option<String>,
    },
}

/// What the receiver decides about a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Handled: acknowledge it.
    Ack,
    /// Put it back in the queue for another try.
    Requeue,
}

/// Settles a delivery that is acknowledged after processing (notifications).
pub struct Ack(Box<dyn FnOnce(Disposition) + Send>);

impl Ack {
    /// Wraps a settle function.
    pub fn new(f: impl FnOnce(Disposition) + Send + 'static) -> Self {
        Ack(Box::new(f))
    }
    /// Settles the delivery.
    pub fn settle(self, d: Disposition) {
        (self.0)(d)
    }
}

impl fmt::Debug for Ack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ack")
    }
}

/// One received message (or what could be read of a broken one).
#[derive(Debug)]
pub struct Delivery {
    /// The message, or why it could not be decoded.
    pub message: std::result::Result<Message, Malformed>,
    /// Exchange it was published to.
    pub exchange: Arc<str>,
    /// Its routing key.
    pub routing_key: Arc<str>,
    /// Present when the delivery must be settled after processing.
    pub ack: Option<Ack>,
}

/// The receiving end of a subscription.
pub struct Inbox {
    name: String,
    stream: Option<BoxStream<'static, Delivery>>,
    on_close: Option<Box<dyn FnOnce() + Send>>,
    drain_on_close: bool,
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Inbox {
    /// An inbox over a stream of deliveries. `on_close` stops consuming; when
    /// `drain_on_close` is true the deliveries already received locally are
    /// still yielded after [`Inbox::close`] (the stream must then end).
    pub fn new(
        name: impl Into<String>,
        stream: BoxStream<'static, Delivery>,
        on_close: impl FnOnce() + Send + 'static,
        drain_on_close: bool,
    ) -> Self {
        Inbox {
            name: name.into(),
            stream: Some(stream),
            on_close: Some(Box::new(on_close)),
            drain_on_close,
        }
    }

    /// The queue name (for replies: the `_reply_q` callers put in requests).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next delivery; `None` once closed and drained, or when the transport is gone.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.stream.as_mut()?.next().await
    }

    /// Stops consuming from the broker. Deliveries already received are still
    /// returned by [`Inbox::recv`] where the transport buffers them.
    pub fn close(&mut self) {
        if let Some(f) = self.on_close.take() {
            f();
        }
        if !self.drain_on_close {
            self.stream = None;
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        if let Some(f) = self.on_close.take() {
            f();
        }
    }
}

/// A message transport: publishes messages to destinations and subscribes
/// to queues. Call semantics (reply routing, timeouts, heartbeats) and
/// dispatch live above it, so every transport behaves the same.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// The exchange used when a target names none (oslo's `control_exchange`).
    fn control_exchange(&self) -> &str;

    /// Publishes one message. `expiration` is the per-message TTL (calls carry
    /// their timeout). Returns once the broker has taken the message.
    async fn send(
        &self,
        dest: &Destination,
        msg: Message,
        expiration: Option<Duration>,
    ) -> Result<()>;

    /// Subscribes; the inbox yields deliveries until closed.
    async fn listen(&self, what: Listen) -> Result<Inbox>;

    /// Whether a server consumes `queue` (`topic` or `topic.server`), when
    /// the transport can tell: the memory broker, whose servers all live in
    /// this process, knows; a remote broker says `None` (its queues
    /// outlive their consumers).
    fn has_consumer(&self, queue: &str) -> Option<bool> {
        let _ = queue;
        None
    }

    /// How long a call waits for its reply unless its client says
    /// otherwise (oslo's `rpc_response_timeout`, default 60 s).
    fn response_timeout(&self) -> Duration {
        crate::client::DEFAULT_TIMEOUT
    }

    /// The timeout of the calls that may take long (nova's `[DEFAULT]
    /// long_rpc_timeout`, default 1800 s; see [`crate::RpcClient::long`]).
    fn long_rpc_timeout(&self) -> Duration {
        crate::client::DEFAULT_LONG_TIMEOUT
    }
}
