//! oslo.messaging-compatible RPC for Rust: call / cast / fanout to
//! [`Target`]s, version caps, an endpoint [`Dispatcher`] with oslo's rules,
//! remote errors in oslo's failure shape, call-monitor heartbeats, and
//! notifications — over an in-memory transport (always built) or RabbitMQ
//! (feature `amqp`), wire-compatible with Python oslo.messaging 18.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use nova_rpc::{Dispatcher, Endpoint, MemoryTransport, NoArgs, RequestContext, RpcClient, RpcServer, Target, Version};
//!
//! let transport = MemoryTransport::new();
//! let endpoint = Endpoint::new(Some("demo"), Version::new(1, 1))
//!     .method("hello", |call, _: NoArgs| async move {
//!         Ok(format!("hello {}", call.context.user_id().unwrap_or("nobody")))
//!     });
//! let server = RpcServer::start(transport.clone(), Target::topic("demo").with_server("host1"),
//!                               Dispatcher::new(vec![endpoint])).await?;
//!
//! let client = RpcClient::new(transport, Target::topic("demo").with_namespace("demo"))
//!     .version(Version::new(1, 0));
//! let ctx = RequestContext::new().with_user("alice");
//! let answer: String = client.call(&ctx, "hello", serde_json::json!({})).await?;
//! assert_eq!(answer, "hello alice");
//! let err = client.call::<String>(&ctx, "nope", serde_json::json!({})).await.unwrap_err();
//! assert!(err.is_no_such_method());
//! server.stop().await;
//! # Ok::<(), nova_rpc::Error>(()) }).unwrap();
//! ```
#![deny(missing_docs)]

#[cfg(feature = "amqp")]
mod amqp;
mod client;
mod context;
mod dispatcher;
mod error;
mod memory;
mod message;
pub mod metrics;
mod notify;
mod serializer;
mod server;
mod target;
mod transport;
mod url;
mod version;

#[cfg(feature = "amqp")]
pub use amqp::{AmqpConfig, AmqpTransport};
pub use client::{DEFAULT_LONG_TIMEOUT, DEFAULT_TIMEOUT, RpcClient};
pub use context::{RequestContext, new_request_id};
pub use dispatcher::{Call, Dispatcher, Endpoint, NoArgs};
pub use error::{DISPATCHER_MODULE, Error, RemoteError, RemoteKind, Result};
pub use memory::{MemoryConfig, MemoryTransport};
pub use message::{Codec, ENVELOPE_VERSION, Malformed, Notification, Reply, Request, new_id};
pub use notify::{NotificationListener, Notifier, NotifyDriver, Priority, ReceivedNotification};
pub use serializer::{NoOpSerializer, Serializer};
pub use server::{RpcServer, ServerConfig};
pub use target::Target;
#[cfg(feature = "test-util")]
pub mod test_util;

pub use transport::{Ack, Delivery, Destination, Disposition, Inbox, Listen, Message, Transport};
pub use url::{TransportHost, TransportUrl};
pub use version::Version;

/// Defines an RPC interface once, as a trait: the server implements the
/// trait, and the macro derives the server [`Endpoint`] (the provided
/// method `Arc<Self>::endpoint()`) and a typed client.
///
/// `#[interface(topic = .., version = .., client = Name[, namespace = ..])]`
/// on a trait whose methods are `async fn m(&self, ctx: RequestContext,
/// kwarg: Type, ...) -> Reply` (no reply for casts), each with
/// `#[rpc(call|cast, version = "X.Y"[, min = "X.Y"][, server | fanout])]`:
/// * `version` is what the method sends when the cap allows it, `min` the
///   oldest it may fall back to; an argument marked
///   `#[rpc(since = "X.Y")]` is left out of older versions (also
///   `needed`: refuse to send an older version when the value is not the
///   type's default; `default`: missing on arrival means
///   `Default::default()`). The client sends the newest of these
///   versions its cap allows, like nova's `can_send_version` chains.
/// * `server`: the client method takes a `server: &str` after the context
///   and sends to `<topic>.<server>`; `fanout`: a cast to every server.
/// * `long` (calls): the client sends it as [`RpcClient::long`] does
///   (nova's `long_rpc_timeout` calls: the long timeout, heartbeats
///   within the client's own).
/// * `alt_topic = "t", alt_since = "X.Y"`: the client sends to topic `t`
///   instead when its cap allows `X.Y` (nova's `prepare_for_alt_rpcserver`:
///   a second server that keeps serving during a graceful shutdown).
/// * The server method returns `Result<Reply, RemoteError>`; the client
///   method `Result<Reply>` (a cast: once sent).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use nova_rpc::{Dispatcher, MemoryTransport, RemoteError, RequestContext, RpcServer, Target, Version};
///
/// #[nova_rpc::interface(topic = "greeter", version = Version::new(1, 2), client = GreeterApi)]
/// pub trait Greeter {
///     /// Says hello (1.2 added `shout`).
///     #[rpc(call, version = "1.2", min = "1.0")]
///     async fn hello(&self, ctx: RequestContext, name: String, #[rpc(since = "1.2", default)] shout: bool) -> String;
/// }
///
/// struct Polite;
/// impl Greeter for Polite {
///     async fn hello(&self, _ctx: RequestContext, name: String, shout: bool) -> Result<String, RemoteError> {
///         let s = format!("hello {name}");
///         Ok(if shout { s.to_uppercase() } else { s })
///     }
/// }
///
/// let transport = MemoryTransport::new();
/// let server = RpcServer::start(transport.clone(), Target::topic("greeter").with_server("h1"),
///                               Dispatcher::new(vec![Arc::new(Polite).endpoint()])).await?;
/// let ctx = RequestContext::new();
/// let api = GreeterApi::new(transport.clone());
/// assert_eq!(api.hello(&ctx, &"bob".into(), &true).await?, "HELLO BOB");
/// // Capped at 1.1: sent as 1.0, without `shout`.
/// let old = GreeterApi::new(transport).version_cap(Some(Version::new(1, 1)));
/// assert_eq!(old.hello(&ctx, &"bob".into(), &true).await?, "hello bob");
/// server.stop().await;
/// # Ok::<(), nova_rpc::Error>(()) }).unwrap();
/// ```
pub use nova_rpc_macros::interface;

/// What [`interface`]'s expansion names; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use serde_json;
}
