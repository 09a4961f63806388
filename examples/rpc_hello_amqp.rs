//! The rpc_hello demo over RabbitMQ on loopback (the same code, another transport).
//!
//! Run with: cargo run --features amqp --example rpc_hello_amqp
//! (RabbitMQ on 127.0.0.1:5672, guest/guest; or set NOVA_RS_AMQP_URL)

#[path = "rpc_hello.rs"]
#[allow(dead_code)]
mod hello;

use nova_rpc::AmqpTransport;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("NOVA_RS_AMQP_URL")
        .unwrap_or_else(|_| "rabbit://guest:guest@127.0.0.1:5672/".into());
    let transport = AmqpTransport::from_url(&url).await?;
    hello::demo(transport.clone()).await?;
    transport.close().await;
    Ok(())
}
