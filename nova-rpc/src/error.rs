//! The crate's error type and oslo's remote failure shape.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything an RPC operation can end with besides success.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No reply came in time (oslo's `MessagingTimeout`).
    #[error("Timed out waiting for a reply to message ID {msg_id} (after {timeout:?})")]
    Timeout {
        /// The request's `_msg_id`.
        msg_id: String,
        /// The timeout that expired (the call timeout or the call-monitor timeout).
        timeout: Duration,
    },
    /// The remote endpoint raised an error; it crossed the wire in oslo's failure shape.
    #[error("remote error: {0}")]
    Remote(Box<RemoteError>),
    /// The requested version is above the client's `version_cap` (oslo's `RPCVersionCapError`).
    #[error(
        "requested message version, {version} is incompatible: it needs a version cap of at least that, but the cap is {cap}"
    )]
    VersionCap {
        /// The version the message asked for.
        version: String,
        /// The configured cap.
        cap: String,
    },
    /// The target cannot be used for this operation (e.g. `call` on a fanout target).
    #[error("invalid target: {0}")]
    InvalidTarget(String),
    /// A version string that is not `X.Y` or `X.Y.Z`.
    #[error("invalid RPC version {0:?}: expected \"X.Y\" or \"X.Y.Z\"")]
    InvalidVersion(String),
    /// A `transport_url` that cannot be used.
    #[error("invalid transport_url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL with any password masked.
        url: String,
        /// What is wrong and what to change.
        reason: String,
    },
    /// The broker could not be reached or refused an operation.
    #[error("transport failure: {message}")]
    Transport {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A message could not be delivered (oslo's `MessageDeliveryFailure`).
    #[error("message delivery failure: {0}")]
    Delivery(String),
    /// A value could not be encoded or decoded.
    #[error("codec error: {0}")]
    Codec(String),
    /// Arguments or a result did not match the expected Rust type.
    #[error("cannot convert value: {0}")]
    Convert(#[from] serde_json::Error),
    /// The transport, server or client has been shut down.
    #[error("{0} is closed")]
    Closed(&'static str),
}

impl Error {
    /// True for [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// The remote error, if this is one.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            Error::Remote(r) => Some(r),
            _ => None,
        }
    }

    /// True when the server had no such method (oslo's `NoSuchMethod`).
    pub fn is_no_such_method(&self) -> bool {
        self.remote()
            .is_some_and(|r| r.kind() == RemoteKind::NoSuchMethod)
    }

    /// True when no endpoint served the namespace/version (oslo's `UnsupportedVersion`).
    pub fn is_unsupported_version(&self) -> bool {
        self.remote()
            .is_some_and(|r| r.kind() == RemoteKind::UnsupportedVersion)
    }

    #[cfg(feature = "amqp")]
    pub(crate) fn transport(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Transport {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// The module oslo's dispatcher errors come from.
pub const DISPATCHER_MODULE: &str = "oslo_messaging.rpc.dispatcher";

/// Well-known remote error classes, so callers need not compare strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteKind {
    /// `oslo_messaging.rpc.dispatcher.NoSuchMethod`.
    NoSuchMethod,
    /// `oslo_messaging.rpc.dispatcher.UnsupportedVersion`.
    UnsupportedVersion,
    /// An argument did not fit the method (Python's `TypeError`).
    TypeError,
    /// Anything else: look at [`RemoteError::class`] and [`RemoteError::module`].
    Other,
}

/// An exception as oslo.messaging serializes it into a reply's `failure`:
/// `{"class", "module", "message", "tb", "args", "kwargs"}`.
///
/// Endpoints return it to fail a call; callers get it back inside
/// [`Error::Remote`].
///
/// ```
/// use nova_rpc::RemoteError;
/// let e = RemoteError::new("InstanceNotFound", "nova.exception", "Instance abc could not be found.")
///     .with_kwarg("instance_id", "abc");
/// let wire = e.to_failure_json();
/// let back = RemoteError::from_failure_json(&wire).unwrap();
/// assert_eq!(back, e);
/// assert!(back.is("nova.exception", "InstanceNotFound"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteError {
    /// Exception class name.
    pub class: String,
    /// Module the class lives in (`builtins` for Python built-ins).
    pub module: String,
    /// `str(exception)`.
    pub message: String,
    /// Traceback lines (each ending in a newline); may be empty.
    #[serde(default)]
    pub tb: Vec<String>,
    /// Positional constructor arguments.
    #[serde(default)]
    pub args: Vec<Value>,
    /// Keyword arguments (`exc.kwargs`).
    #[serde(default)]
    pub kwargs: Map<String, Value>,
}

impl RemoteError {
    /// A remote error with `args = [message]` and no kwargs, as Python builds
    /// `Class(message)`.
    pub fn new(
        class: impl Into<String>,
        module: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let message = message.into();
        RemoteError {
            class: class.into(),
            module: module.into(),
            args: vec![Value::String(message.clone())],
            message,
            tb: Vec::new(),
            kwargs: Map::new(),
        }
    }

    /// Adds one keyword argument.
    pub fn with_kwarg(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.kwargs.insert(key.into(), value.into());
        self
    }

    /// oslo's `NoSuchMethod`.
    pub fn no_such_method(method: &str) -> Self {
        Self::new(
            "NoSuchMethod",
            DISPATCHER_MODULE,
            format!("Endpoint does not support RPC method {method}"),
        )
    }

    /// oslo's `UnsupportedVersion`.
    pub fn unsupported_version(version: &str, method: &str) -> Self {
        Self::new(
            "UnsupportedVersion",
            DISPATCHER_MODULE,
            format!("Endpoint does not support RPC version {version}. Attempted method: {method}"),
        )
    }

    /// Python's `TypeError`, for arguments that do not fit a method.
    pub fn type_error(message: impl Into<String>) -> Self {
        Self::new("TypeError", "builtins", message)
    }

    /// A server-side failure that is not the endpoint's fault (bad message, internal error).
    pub fn internal(class: &str, message: impl Into<String>) -> Self {
        Self::new(class, "nova_rpc", message)
    }

    /// Fills `tb` with a Python-style traceback naming where the error was
    /// raised, when it has none: oslo peers expect one and show it.
    pub fn with_default_traceback(mut self, location: &str) -> Self {
        if self.tb.is_empty() {
            self.tb = vec![
                "Traceback (most recent call last):\n".to_owned(),
                format!("  File \"<nova-rs>\", in {location}\n"),
                format!("{}.{}: {}\n", self.module, self.class, self.message),
            ];
        }
        self
    }

    /// Which well-known error this is.
    pub fn kind(&self) -> RemoteKind {
        match (self.module.as_str(), self.class.as_str()) {
            (DISPATCHER_MODULE, "NoSuchMethod") => RemoteKind::NoSuchMethod,
            (DISPATCHER_MODULE, "UnsupportedVersion") => RemoteKind::UnsupportedVersion,
            ("builtins" | "exceptions", "TypeError") => RemoteKind::TypeError,
            _ => RemoteKind::Other,
        }
    }

    /// True when module and class match (a `_Remote` suffix is ignored as oslo does).
    pub fn is(&self, module: &str, class: &str) -> bool {
        strip_remote(&self.module) == module && strip_remote(&self.class) == class
    }

    /// Decodes the kwargs into a typed struct.
    pub fn kwargs_as<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_value(Value::Object(self.kwargs.clone()))?)
    }

    /// The `failure` string of a reply (JSON, itself carried as a JSON string).
    pub fn to_failure_json(&self) -> String {
        // Serializing plain strings, arrays and maps cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// Parses a reply's `failure` string. Missing `tb`/`args`/`kwargs` are
    /// accepted; missing `class`/`message` are not.
    pub fn from_failure_json(s: &str) -> Result<Self> {
        let mut e: RemoteError = serde_json::from_str(s)
            .map_err(|e| Error::Codec(format!("invalid failure in reply: {e}")))?;
        // Re-raised remote exceptions carry a _Remote suffix; oslo strips it.
        if e.class.ends_with("_Remote") && e.module.ends_with("_Remote") {
            e.class = strip_remote(&e.class).to_owned();
            e.module = strip_remote(&e.module).to_owned();
        }
        Ok(e)
    }
}

fn strip_remote(s: &str) -> &str {
    s.strip_suffix("_Remote").unwrap_or(s)
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}: {}", self.module, self.class, self.message)
    }
}

impl std::error::Error for RemoteError {}

impl From<RemoteError> for Error {
    fn from(e: RemoteError) -> Self {
        Error::Remote(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_observed_oslo_failure() {
        let wire = r#"{"class": "PeerError", "module": "oslo_peer", "message": "boom", "tb": ["Traceback (most recent call last):\n", "oslo_peer.PeerError: boom\n"], "args": ["boom"], "kwargs": {"code": 7}}"#;
        let e = RemoteError::from_failure_json(wire).unwrap();
        assert_eq!(e.class, "PeerError");
        assert_eq!(e.kwargs["code"], 7);
        assert_eq!(e.tb.len(), 2);
        assert_eq!(e.kind(), RemoteKind::Other);
    }

    #[test]
    fn dispatcher_errors_have_oslo_names_and_messages() {
        let e = RemoteError::unsupported_version("1.9", "echo");
        assert_eq!(
            e.message,
            "Endpoint does not support RPC version 1.9. Attempted method: echo"
        );
        assert_eq!(e.kind(), RemoteKind::UnsupportedVersion);
        assert_eq!(
            RemoteError::no_such_method("x").kind(),
            RemoteKind::NoSuchMethod
        );
    }

    #[test]
    fn remote_suffix_is_stripped() {
        let wire = r#"{"class": "Boom_Remote", "module": "m_Remote", "message": "x"}"#;
        let e = RemoteError::from_failure_json(wire).unwrap();
        assert_eq!((e.class.as_str(), e.module.as_str()), ("Boom", "m"));
    }

    #[test]
    fn garbage_failure_is_a_codec_error() {
        assert!(matches!(
            RemoteError::from_failure_json("{"),
            Err(Error::Codec(_))
        ));
        assert!(matches!(
            RemoteError::from_failure_json("{\"module\":\"m\"}"),
            Err(Error::Codec(_))
        ));
    }
}
