//! Notifications: oslo's `Notifier` and a notification listener.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::context::RequestContext;
use crate::error::{Error, Result};
use crate::message::{Notification, new_id};
use crate::transport::{Ack, Destination, Disposition, Inbox, Listen, Message, Transport};

/// A notification priority; the routing key is `<topic>.<priority>` in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    /// `audit`
    Audit,
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `warn`
    Warn,
    /// `error`
    Error,
    /// `critical`
    Critical,
    /// `sample`
    Sample,
}

impl Priority {
    /// Every priority.
    pub const ALL: [Priority; 7] = [
        Priority::Audit,
        Priority::Debug,
        Priority::Info,
        Priority::Warn,
        Priority::Error,
        Priority::Critical,
        Priority::Sample,
    ];

    /// Lower-case name (routing keys).
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Audit => "audit",
            Priority::Debug => "debug",
            Priority::Info => "info",
            Priority::Warn => "warn",
            Priority::Error => "error",
            Priority::Critical => "critical",
            Priority::Sample => "sample",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str() == lower || (lower == "warning" && *p == Priority::Warn))
            .ok_or_else(|| Error::Codec(format!("unknown notification priority {s:?}")))
    }
}

/// Which notification format a [`Notifier`] sends (oslo's notification `driver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NotifyDriver {
    /// `messagingv2`: enveloped messages (what nova configures).
    #[default]
    MessagingV2,
    /// `messaging`: v1, no envelope.
    Messaging,
    /// `noop`: send nothing (oslo's default when no driver is configured).
    Noop,
}

/// Sends notifications to `<topic>.<priority>` on the control exchange.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use nova_rpc::{MemoryTransport, Notifier, NotificationListener, Priority, RequestContext};
/// let t = MemoryTransport::new();
/// let notifier = Notifier::new(t.clone(), "compute.host1", &["notifications"]);
/// notifier.notify(&RequestContext::new(), Priority::Info, "compute.instance.create.end",
///                 serde_json::json!({"instance_id": "i-1"})).await.unwrap();
/// let mut listener = NotificationListener::start(t, None, &["notifications"], &[Priority::Info], None).await.unwrap();
/// let n = listener.next().await.unwrap();
/// assert_eq!(n.notification.event_type, "compute.instance.create.end");
/// assert_eq!(n.notification.priority, "INFO");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Notifier {
    transport: Arc<dyn Transport>,
    publisher_id: String,
    topics: Vec<String>,
    exchange: Option<String>,
    driver: NotifyDriver,
}

impl Notifier {
    /// A notifier for `topics` (oslo's default is `["notifications"]`).
    pub fn new(
        transport: Arc<dyn Transport>,
        publisher_id: impl Into<String>,
        topics: &[&str],
    ) -> Self {
        Notifier {
            transport,
            publisher_id: publisher_id.into(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            exchange: None,
            driver: NotifyDriver::default(),
        }
    }

    /// Chooses the format.
    pub fn driver(mut self, driver: NotifyDriver) -> Self {
        self.driver = driver;
        self
    }

    /// Publishes to `exchange` instead of the control exchange.
    pub fn exchange(mut self, exchange: impl Into<String>) -> Self {
        self.exchange = Some(exchange.into());
        self
    }

    /// A copy with another publisher id (oslo's `prepare(publisher_id=...)`).
    pub fn prepare(&self, publisher_id: impl Into<String>) -> Self {
        let mut n = self.clone();
        n.publisher_id = publisher_id.into();
        n
    }

    /// Sends one notification to every topic.
    pub async fn notify(
        &self,
        ctx: &RequestContext,
        priority: Priority,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        if self.driver == NotifyDriver::Noop {
            return Ok(());
        }
        let payload: Value = serde_json::to_value(payload)?;
        // oslo sends a redacted copy of the context: no credentials.
        let mut context = ctx.as_map().clone();
        context.remove("auth_token");
        let exchange = self
            .exchange
            .clone()
            .unwrap_or_else(|| self.transport.control_exchange().to_owned());
        let msg = Notification {
            message_id: uuid::Uuid::new_v4().to_string(),
            publisher_id: self.publisher_id.clone(),
            event_type: event_type.to_owned(),
            priority: priority.as_str().to_ascii_uppercase(),
            payload,
            timestamp: chrono::Utc::now()
                .naive_utc()
                .format("%Y-%m-%d %H:%M:%S%.6f")
                .to_string(),
            unique_id: new_id(),
            context: std::sync::Arc::new(context),
        };
        for topic in &self.topics {
            let dest = Destination::Notification {
                exchange: exchange.clone(),
                routing_key: format!("{topic}.{priority}"),
                envelope: self.driver == NotifyDriver::MessagingV2,
            };
            self.transport
                .send(&dest, Message::Notification(msg.clone()), None)
                .await?;
        }
        Ok(())
    }

    /// `notify` at `info`.
    pub async fn info(
        &self,
        ctx: &RequestContext,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        self.notify(ctx, Priority::Info, event_type, payload).await
    }

    /// `notify` at `error`.
    pub async fn error(
        &self,
        ctx: &RequestContext,
        event_type: &str,
        payload: impl Serialize,
    ) -> Result<()> {
        self.notify(ctx, Priority::Error, event_type, payload).await
    }
}

/// One received notification; acknowledged when dropped unless requeued.
#[derive(Debug)]
pub struct ReceivedNotification {
    /// The notification.
    pub notification: Notification,
    /// The routing key it came with (`<topic>.<priority>`).
    pub routing_key: std::sync::Arc<str>,
    ack: Option<Ack>,
}

impl ReceivedNotification {
    /// Puts it back in the queue (oslo's `NotificationResult.REQUEUE`).
    pub fn requeue(mut self) {
        if let Some(a) = self.ack.take() {
            a.settle(Disposition::Requeue);
        }
    }
}

impl Drop for ReceivedNotification {
    fn drop(&mut self) {
        if let Some(a) = self.ack.take() {
            a.settle(Disposition::Ack);
        }
    }
}

/// Receives notifications from `<topic>.<priority>` queues.
#[derive(Debug)]
pub struct NotificationListener {
    inbox: Inbox,
}

impl NotificationListener {
    /// Listens on every `topic` × `priority` on `exchange` (default: the
    /// control exchange). With `pool`, listeners sharing the pool name share
    /// one queue (each notification goes to one of them).
    pub async fn start(
        transport: Arc<dyn Transport>,
        exchange: Option<&str>,
        topics: &[&str],
        priorities: &[Priority],
        pool: Option<&str>,
    ) -> Result<NotificationListener> {
        let exchange = exchange.unwrap_or(transport.control_exchange()).to_owned();
        let mut bindings = Vec::new();
        for t in topics {
            for p in priorities {
                bindings.push((exchange.clone(), format!("{t}.{p}")));
            }
        }
        let inbox = transport
            .listen(Listen::Notifications {
                bindings,
                pool: pool.map(str::to_owned),
            })
            .await?;
        Ok(NotificationListener { inbox })
    }

    /// The next notification; `None` when the transport closed. Malformed
    /// messages are logged, acknowledged and skipped.
    pub async fn next(&mut self) -> Option<ReceivedNotification> {
        loop {
            let mut d = self.inbox.recv().await?;
            match d.message {
                Ok(Message::Notification(notification)) => {
                    return Some(ReceivedNotification {
                        notification,
                        routing_key: d.routing_key,
                        ack: d.ack.take(),
                    });
                }
                Ok(other) => tracing::warn!(
                    ?other,
                    "unexpected message in a notification queue, dropped"
                ),
                Err(bad) => tracing::warn!(reason = %bad.reason, "malformed notification dropped"),
            }
            if let Some(a) = d.ack.take() {
                a.settle(Disposition::Ack);
            }
        }
    }

    /// Stops consuming.
    pub fn close(&mut self) {
        self.inbox.close();
    }
}
