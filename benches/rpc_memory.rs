//! nova-rpc on the in-memory transport: calls/s and latency at 1, 10 and 50
//! concurrent callers, and casts/s, including argument and result
//! serialization (typed struct → wire value → typed struct, both ways).
//!
//! Run with: cargo bench --bench rpc_memory   (N calls per run: NOVA_RS_BENCH_N, default 200000)

#[path = "harness.rs"]
mod harness;

use std::time::Duration;

use nova_rpc::{
    Dispatcher, Endpoint, MemoryTransport, RequestContext, RpcClient, RpcServer, Target, Version,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, PartialEq)]
struct Echo {
    value: String,
}

fn main() {
    let n: usize = std::env::var("NOVA_RS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let transport = MemoryTransport::new();
        let endpoint = Endpoint::new(Some("bench"), Version::new(1, 0))
            .method("echo", |_c, e: Echo| async move { Ok(e) });
        let server = RpcServer::start(
            transport.clone(),
            Target::topic("bench").with_server("s1"),
            Dispatcher::new(vec![endpoint]),
        )
        .await
        .expect("server");
        let client = RpcClient::new(transport, Target::topic("bench").with_namespace("bench"))
            .timeout(Duration::from_secs(30));
        let ctx = RequestContext::new()
            .with_user("bench")
            .with_project("bench");
        let payload = Echo {
            value: "x".repeat(16),
        };
        for c in [1usize, 10, 50] {
            let (client, ctx, payload) = (client.clone(), ctx.clone(), payload.clone());
            let f = harness::load(n, c, move || {
                let (client, ctx, payload) = (client.clone(), ctx.clone(), payload.clone());
                async move {
                    client
                        .call::<Echo>(&ctx, "echo", &payload)
                        .await
                        .is_ok_and(|r| r == payload)
                }
            })
            .await;
            println!("{}", f.json("nova-rpc memory", "call", c));
        }
        let (client2, ctx2, payload2) = (client.clone(), ctx.clone(), payload.clone());
        let f = harness::load(n, 1, move || {
            let (client, ctx, payload) = (client2.clone(), ctx2.clone(), payload2.clone());
            async move { client.cast(&ctx, "echo", &payload).await.is_ok() }
        })
        .await;
        println!("{}", f.json("nova-rpc memory", "cast", 1));
        server.stop().await;
    });
}
