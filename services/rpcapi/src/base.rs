//! The base RPC API every Nova service serves (`nova/baserpc.py`):
//! namespace `baseapi`, version 1.1, `ping`.

use std::sync::Arc;
use std::time::Duration;

use nova_rpc::{
    Endpoint, RemoteError, RequestContext, Result, RpcClient, Target, Transport, Version,
};
use serde_json::{Value, json};

/// The namespace.
pub const NAMESPACE: &str = "baseapi";
/// The version.
pub const VERSION: Version = Version::new(1, 1);

/// The base API (served on every service's topic).
#[nova_rpc::interface(namespace = NAMESPACE, version = VERSION, client = BaseApi)]
pub trait Base {
    /// Answers `{"service": <binary>, "arg": arg}`: the service is alive.
    #[rpc(call, version = "1.0")]
    async fn ping(&self, ctx: RequestContext, #[rpc(default)] arg: Value) -> Value;
}

struct BaseService {
    binary: String,
}

impl Base for BaseService {
    async fn ping(&self, _ctx: RequestContext, arg: Value) -> Result<Value, RemoteError> {
        Ok(json!({"service": self.binary, "arg": arg}))
    }
}

/// The endpoint a service named `binary` adds to its RPC server.
pub fn endpoint(binary: &str) -> Endpoint {
    Arc::new(BaseService {
        binary: binary.to_owned(),
    })
    .endpoint()
}

/// Pings `topic` (optionally one server): the service's answer.
pub async fn ping(
    transport: Arc<dyn Transport>,
    ctx: &RequestContext,
    topic: &str,
    server: Option<&str>,
    arg: Value,
    timeout: Duration,
) -> Result<Value> {
    let mut client =
        RpcClient::new(transport, Target::topic(topic).with_namespace(NAMESPACE)).timeout(timeout);
    if let Some(s) = server {
        client = client.server(s);
    }
    BaseApi::from_client(client).ping(ctx, &arg).await
}
