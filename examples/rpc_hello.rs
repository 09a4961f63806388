//! call, cast and fanout between two servers and a client, in one process.
//!
//! Run with: cargo run --example rpc_hello

use std::sync::Arc;
use std::time::Duration;

use nova_rpc::{
    Dispatcher, Endpoint, MemoryTransport, RequestContext, RpcClient, RpcServer, Target, Transport,
    Version,
};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

#[derive(Deserialize)]
struct Greet {
    name: String,
}

/// Starts two servers on topic `hello`, then calls, casts and fans out.
pub(crate) async fn demo(transport: Arc<dyn Transport>) -> anyhow::Result<()> {
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<String>();
    let mut servers = Vec::new();
    for host in ["host1", "host2"] {
        let seen = seen_tx.clone();
        let endpoint = Endpoint::new(Some("hello"), Version::new(1, 1))
            .method("greet", move |call, g: Greet| async move {
                Ok(format!(
                    "hello {} from {host} (request {})",
                    g.name,
                    call.context.request_id().unwrap_or("-")
                ))
            })
            .method("note", move |call, g: Greet| {
                let kind = if call.exchange.ends_with("_fanout") {
                    "fanout"
                } else {
                    "cast"
                };
                let _ = seen.send(format!("{host} got a {kind}: {}", g.name));
                async move { Ok(()) }
            });
        let target = Target::topic("hello").with_server(host);
        let server = RpcServer::start_with(
            transport.clone(),
            target,
            Dispatcher::new(vec![endpoint]),
            Default::default(),
        )
        .await?;
        servers.push(server);
    }

    let client = RpcClient::new(transport, Target::topic("hello").with_namespace("hello"))
        .version(Version::new(1, 0))
        .timeout(Duration::from_secs(10));
    let ctx = RequestContext::new().with_user("demo").with_project("demo");

    let answer: String = client.call(&ctx, "greet", json!({"name": "world"})).await?;
    println!("call:   {answer}");
    let direct: String = client
        .prepare()
        .server("host2")
        .call(&ctx, "greet", json!({"name": "host2 only"}))
        .await?;
    println!("direct: {direct}");

    client
        .cast(&ctx, "note", json!({"name": "one cast"}))
        .await?;
    client
        .prepare()
        .fanout(true)
        .cast(&ctx, "note", json!({"name": "everyone"}))
        .await?;
    for _ in 0..3 {
        let seen = tokio::time::timeout(Duration::from_secs(5), seen_rx.recv()).await?;
        println!("seen:   {}", seen.unwrap_or_default());
    }

    match client
        .prepare()
        .version(Version::new(1, 2))
        .call::<String>(&ctx, "greet", json!({"name": "x"}))
        .await
    {
        Ok(v) => anyhow::bail!("a 1.1 server answered a 1.2 call: {v}"),
        Err(e) => println!("1.2 on a 1.1 server: {e}"),
    }

    for s in servers {
        s.stop().await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    demo(MemoryTransport::new()).await
}
