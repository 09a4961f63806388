//! Fixtures shared by the integration tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nova_rpc::{
    Call, Dispatcher, Endpoint, MemoryTransport, NoArgs, RemoteError, RpcServer, ServerConfig,
    Target, Transport, Version,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The broker the AMQP tests use.
#[cfg_attr(not(feature = "amqp"), allow(dead_code))]
pub(crate) fn amqp_url() -> String {
    std::env::var("NOVA_RS_AMQP_URL")
        .unwrap_or_else(|_| "rabbit://guest:guest@127.0.0.1:5672/".into())
}

/// A transport for one test, with a unique topic so parallel tests never meet.
pub(crate) struct Fixture {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) topic: String,
    #[cfg_attr(not(feature = "amqp"), allow(dead_code))]
    pub(crate) kind: &'static str,
}

impl Fixture {
    pub(crate) fn memory() -> Fixture {
        Fixture {
            transport: MemoryTransport::new(),
            topic: unique("t"),
            kind: "memory",
        }
    }

    #[cfg(feature = "amqp")]
    pub(crate) async fn amqp() -> Fixture {
        let url = amqp_url();
        let t = nova_rpc::AmqpTransport::connect(nova_rpc::AmqpConfig::from_url(&url).unwrap().control_exchange("nova_rs_test"))
            .await
            .unwrap_or_else(|e| {
                panic!("RabbitMQ is not reachable at {url} ({e}): start it (bash scripts/test does) or set NOVA_RS_AMQP_URL")
            });
        Fixture {
            transport: t,
            topic: unique("t"),
            kind: "amqp",
        }
    }

    /// Starts a test server `name` on the fixture's topic.
    pub(crate) async fn server(&self, name: &str, probe: &Probe) -> RpcServer {
        self.server_with(name, probe, ServerConfig::default()).await
    }

    pub(crate) async fn server_with(
        &self,
        name: &str,
        probe: &Probe,
        config: ServerConfig,
    ) -> RpcServer {
        let target = Target::topic(&self.topic).with_server(name);
        let d = Dispatcher::new(vec![test_endpoint(name, probe.clone()), default_endpoint()]);
        RpcServer::start_with(self.transport.clone(), target, d, config)
            .await
            .expect("server starts")
    }

    pub(crate) fn target(&self) -> Target {
        Target::topic(&self.topic)
            .with_namespace("test")
            .with_version(Version::new(1, 3))
    }

    /// Removes the topic queues the test left on the broker (they have no TTL).
    pub(crate) async fn cleanup(self) {
        #[cfg(feature = "amqp")]
        if self.kind == "amqp" {
            delete_queues(
                std::slice::from_ref(&self.topic),
                &["a", "b", "c"].map(|s| format!("{}.{s}", self.topic)),
            )
            .await;
        }
    }
}

#[cfg(feature = "amqp")]
pub(crate) async fn delete_queues(names: &[String], more: &[String]) {
    use lapin::options::QueueDeleteOptions;
    let Ok(conn) =
        lapin::Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", Default::default())
            .await
    else {
        return;
    };
    if let Ok(ch) = conn.create_channel().await {
        for q in names.iter().chain(more) {
            let _ = ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
    }
    let _ = conn.close(200, "OK".into()).await;
}

pub(crate) fn unique(prefix: &str) -> String {
    format!(
        "nova_rs_{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// What the test endpoint saw.
#[derive(Clone)]
pub(crate) struct Probe {
    pub(crate) casts: mpsc::UnboundedSender<(String, Value, String)>,
    pub(crate) running: Arc<AtomicUsize>,
    pub(crate) max_running: Arc<AtomicUsize>,
}

impl Probe {
    pub(crate) fn new() -> (Probe, mpsc::UnboundedReceiver<(String, Value, String)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Probe {
                casts: tx,
                running: Arc::default(),
                max_running: Arc::default(),
            },
            rx,
        )
    }
}

#[derive(Deserialize)]
struct Val {
    value: Value,
}
#[derive(Deserialize)]
struct Add {
    a: i64,
    b: i64,
}
#[derive(Deserialize)]
struct Sleep {
    ms: u64,
}
#[derive(Deserialize)]
struct Fail {
    message: String,
    code: Option<i64>,
}

/// namespace `test`, version 1.3: echo, add, sleep, fail, whoami, record, get_context.
pub(crate) fn test_endpoint(server: &str, probe: Probe) -> Endpoint {
    let name = server.to_owned();
    let p1 = probe.clone();
    let p2 = probe;
    Endpoint::new(Some("test"), Version::new(1, 3))
        .method("echo", |_c, a: Val| async move { Ok(a.value) })
        .method("add", |_c, a: Add| async move { Ok(a.a + a.b) })
        .method("sleep", move |_c, a: Sleep| {
            let p = p1.clone();
            async move {
                let now = p.running.fetch_add(1, Ordering::SeqCst) + 1;
                p.max_running.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(a.ms)).await;
                p.running.fetch_sub(1, Ordering::SeqCst);
                Ok(a.ms)
            }
        })
        .method("fail", |_c, a: Fail| async move {
            Err::<(), _>(
                RemoteError::new("TestError", "nova_rs.tests", a.message)
                    .with_kwarg("code", a.code),
            )
        })
        .method("whoami", move |_c, _: NoArgs| {
            let n = name.clone();
            async move { Ok(n) }
        })
        .method("record", move |c: Call, a: Val| {
            let _ = p2
                .casts
                .send((c.routing_key.to_string(), a.value, c.exchange.to_string()));
            async move { Ok(()) }
        })
        .method("get_context", |c: Call, _: NoArgs| async move {
            Ok(json!({"context": c.context.as_map(), "client_timeout": c.client_timeout}))
        })
        .method("_private", |_c, _: NoArgs| async move {
            Ok("must not be reachable")
        })
}

/// The null namespace, version 1.0: ping.
pub(crate) fn default_endpoint() -> Endpoint {
    Endpoint::new(None, Version::new(1, 0))
        .method("ping", |_c, _: NoArgs| async move { Ok("pong") })
}

/// Starts the test endpoint as server `name` of `topic` on `transport`.
pub(crate) async fn serve(transport: Arc<dyn Transport>, topic: &str, name: &str) -> RpcServer {
    let (probe, _) = Probe::new();
    let d = Dispatcher::new(vec![test_endpoint(name, probe), default_endpoint()]);
    RpcServer::start_with(
        transport,
        Target::topic(topic).with_server(name),
        d,
        ServerConfig::default(),
    )
    .await
    .expect("server starts")
}
