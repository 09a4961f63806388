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
mod notify;
mod serializer;
mod server;
mod target;
mod transport;
mod url;
mod version;

#[cfg(feature = "amqp")]
pub use amqp::{AmqpConfig, AmqpTransport};
pub use client::{DEFAULT_TIMEOUT, RpcClient};
pub use context::{RequestContext, new_request_id};
pub use dispatcher::{Call, Dispatcher, Endpoint, NoArgs};
pub use error::{DISPATCHER_MODULE, Error, RemoteError, RemoteKind, Result};
pub use memory::{MemoryConfig, MemoryTransport};
pub use message::{Codec, ENVELOPE_VERSION, Malformed, Notification, Reply, Request, new_id};
pub use notify::{NotificationListener, Notifier, NotifyDriver, Priority, ReceivedNotification};
pub use serializer::{NoOpSerializer, Serializer};
pub use server::{RpcServer, ServerConfig};
pub use target::Target;
pub use transport::{Ack, Delivery, Destination, Disposition, Inbox, Listen, Message, Transport};
pub use url::{TransportHost, TransportUrl};
pub use version::Version;
