//! Where a message goes, and what an endpoint serves.

use crate::version::Version;

/// oslo.messaging's `Target`: the addressing of a message.
///
/// - a client needs `topic` (and `server` to reach one server, or `fanout`
///   to reach all);
/// - a server needs `topic` and `server`;
/// - an endpoint declares `namespace` and `version`.
///
/// `exchange` defaults to the transport's control exchange.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// Topic exchange; `None` means the configured `control_exchange`.
    pub exchange: Option<String>,
    /// The topic, e.g. `compute`, `conductor`, `scheduler`.
    pub topic: String,
    /// One server listening on the topic (`<topic>.<server>` queue).
    pub server: Option<String>,
    /// Endpoint namespace (`None` is oslo's null namespace).
    pub namespace: Option<String>,
    /// Requested (client) or implemented (endpoint) API version.
    pub version: Option<Version>,
    /// Cast to every server listening on the topic.
    pub fanout: bool,
}

impl Target {
    /// A target for `topic` with everything else defaulted.
    pub fn topic(topic: impl Into<String>) -> Self {
        Target {
            topic: topic.into(),
            ..Default::default()
        }
    }

    /// Sets the server.
    pub fn with_server(mut self, server: impl Into<String>) -> Self {
        self.server = Some(server.into());
        self
    }

    /// Sets the exchange.
    pub fn with_exchange(mut self, exchange: impl Into<String>) -> Self {
        self.exchange = Some(exchange.into());
        self
    }

    /// Sets the namespace.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Sets the version.
    pub fn with_version(mut self, version: Version) -> Self {
        self.version = Some(version);
        self
    }

    /// Sets fanout.
    pub fn with_fanout(mut self, fanout: bool) -> Self {
        self.fanout = fanout;
        self
    }
}
