//! The base RPC API every Nova service serves (`nova/baserpc.py`):
//! namespace `baseapi`, version 1.1, `ping`.

use std::sync::Arc;
use std::time::Duration;

use nova_rpc::{Endpoint, RequestContext, Result, RpcClient, Target, Transport, Version};
use serde::Deserialize;
use serde_json::{Value, json};

/// The namespace.
pub const NAMESPACE: &str = "baseapi";
/// The version.
pub const VERSION: Version = Version::new(1, 1);

#[derive(Deserialize)]
struct PingArgs {
    #[serde(default)]
    arg: Value,
}

/// The endpoint a service named `binary` adds to its RPC server.
pub fn endpoint(binary: &str) -> Endpoint {
    let binary = binary.to_owned();
    Endpoint::new(Some(NAMESPACE), VERSION).method("ping", move |_call, a: PingArgs| {
        let out = json!({"service": binary, "arg": a.arg});
        async move { Ok(out) }
    })
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
    let mut target = Target::topic(topic).with_namespace(NAMESPACE);
    if let Some(s) = server {
        target = target.with_server(s);
    }
    RpcClient::new(transport, target)
        .version(VERSION)
        .timeout(timeout)
        .call(ctx, "ping", json!({ "arg": arg }))
        .await
}
