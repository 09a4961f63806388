//! AMQP-only checks against the real RabbitMQ: what we put on the wire,
//! the topology we declare, bad input, and broker failures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use nova_rpc::{AmqpConfig, AmqpTransport, RemoteKind, RequestContext, RpcClient, Target, Version};
use serde_json::{Map, Value, json};

use crate::common::{Fixture, Probe, amqp_url, delete_queues, serve, unique};

const EXCHANGE: &str = "nova_rs_test";

async fn raw() -> (Connection, Channel) {
    let conn = Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", Default::default())
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 (bash scripts/test starts it)");
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        EXCHANGE.into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    (conn, ch)
}

/// A private queue bound to `EXCHANGE` with `key`, and its consumer.
async fn spy(ch: &Channel, key: &str) -> (String, lapin::Consumer) {
    let q = unique("spy");
    let opts = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    ch.queue_declare(q.as_str().into(), opts, FieldTable::default())
        .await
        .unwrap();
    if !key.is_empty() {
        ch.queue_bind(
            q.as_str().into(),
            EXCHANGE.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    let consumer = ch
        .basic_consume(
            q.as_str().into(),
            q.as_str().into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    (q, consumer)
}

async fn next(c: &mut lapin::Consumer) -> lapin::message::Delivery {
    tokio::time::timeout(Duration::from_secs(10), c.next())
        .await
        .expect("a message within 10 s")
        .unwrap()
        .unwrap()
}

/// The inner oslo.message, keys in wire order.
fn inner(body: &[u8]) -> Vec<(String, Value)> {
    let outer = serde_json::from_slice::<OrderedMap>(body).unwrap().0;
    let keys: Vec<&str> = outer.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, vec!["oslo.version", "oslo.message"]);
    assert_eq!(outer[0].1, "2.0");
    let text = outer[1].1.as_str().expect("oslo.message is a JSON string");
    // serde_json's Map is sorted; read the key order from the text with a streaming parse.
    let ordered: Vec<(String, Value)> = serde_json::from_str::<OrderedMap>(text).unwrap().0;
    ordered
}

struct OrderedMap(Vec<(String, Value)>);
impl<'de> serde::Deserialize<'de> for OrderedMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OrderedMap;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<OrderedMap, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = m.next_entry()? {
                    v.push(e);
                }
                Ok(OrderedMap(v))
            }
        }
        d.deserialize_map(V)
    }
}

async fn publish(ch: &Channel, key: &str, body: &[u8]) {
    let props = BasicProperties::default().with_content_type("application/json".into());
    ch.basic_publish(
        EXCHANGE.into(),
        key.into(),
        BasicPublishOptions::default(),
        body,
        props,
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

fn enveloped(msg: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"oslo.version": "2.0", "oslo.message": msg.to_string()})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_replies_carry_oslo_properties_and_envelopes() {
    let f = Fixture::amqp().await;
    let (probe, _) = Probe::new();
    let server = f.server("a", &probe).await;
    let (_conn, ch) = raw().await;
    let (_q, mut requests) = spy(&ch, &f.topic).await;
    let client = RpcClient::new(f.transport.clone(), f.target()).timeout(Duration::from_secs(3));
    let ctx = RequestContext::empty().with_user("u-1");

    let r: Value = client
        .call(&ctx, "echo", json!({"value": {"k": [1, "two", null]}}))
        .await
        .unwrap();
    assert_eq!(r, json!({"k": [1, "two", null]}));
    let d = next(&mut requests).await;
    let p = &d.properties;
    assert_eq!(
        p.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert_eq!(
        p.content_encoding().as_ref().map(|s| s.as_str()),
        Some("utf-8")
    );
    assert_eq!(*p.delivery_mode(), Some(2));
    assert_eq!(*p.priority(), Some(0));
    assert_eq!(
        p.expiration().as_ref().map(|s| s.as_str()),
        Some("3000"),
        "calls carry their timeout in ms"
    );
    assert!(p.correlation_id().is_none() && p.reply_to().is_none());
    let m = inner(&d.data);
    let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "method",
            "args",
            "namespace",
            "version",
            "_msg_id",
            "_reply_q",
            "_timeout",
            "_unique_id",
            "_context_user_id"
        ]
    );
    assert_eq!(m[3].1, "1.3");
    let reply_q = m[5].1.as_str().unwrap().to_owned();
    assert!(
        reply_q.starts_with("reply_") && reply_q.len() == 38,
        "{reply_q}"
    );
    assert_eq!(m[4].1.as_str().unwrap().len(), 32, "_msg_id is uuid4 hex");
    assert_eq!(
        m[6].1,
        Value::Null,
        "_timeout is the call-monitor timeout, null when unset"
    );

    client
        .cast(&ctx, "echo", json!({"value": "c"}))
        .await
        .unwrap();
    let d = next(&mut requests).await;
    assert!(
        d.properties.expiration().is_none(),
        "casts have no expiration"
    );
    let keys: Vec<String> = inner(&d.data).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        vec![
            "method",
            "args",
            "namespace",
            "version",
            "_unique_id",
            "_context_user_id"
        ]
    );

    // A reply, as a Python caller would receive it.
    let (my_reply_q, mut replies) = spy(&ch, "").await;
    let req = json!({"method": "add", "args": {"a": 1, "b": 2}, "namespace": "test", "version": "1.0",
        "_msg_id": "m-1", "_reply_q": my_reply_q, "_timeout": null, "_unique_id": "u-raw-1"});
    publish(&ch, &f.topic, &enveloped(&req)).await;
    let d = next(&mut replies).await;
    assert!(d.properties.expiration().is_none());
    assert_eq!(*d.properties.delivery_mode(), Some(2));
    assert_eq!(
        d.exchange.as_str(),
        "",
        "replies go through the default exchange"
    );
    let m = inner(&d.data);
    let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        vec!["result", "failure", "ending", "_msg_id", "_unique_id"]
    );
    assert_eq!(
        (
            m[0].1.clone(),
            m[1].1.clone(),
            m[2].1.clone(),
            m[3].1.clone()
        ),
        (json!(3), Value::Null, json!(true), json!("m-1"))
    );
    server.stop().await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_answered_and_the_server_keeps_serving() {
    let f = Fixture::amqp().await;
    // A server whose transport refuses requests over 4 KiB.
    let mut cfg = AmqpConfig::from_url(&amqp_url())
        .unwrap()
        .control_exchange(EXCHANGE);
    cfg.max_message_size = 4096;
    let small = AmqpTransport::connect(cfg).await.unwrap();
    let server = serve(small.clone(), &f.topic, "a").await;
    let (_conn, ch) = raw().await;
    let (reply_q, mut replies) = spy(&ch, "").await;

    for garbage in [
        &b"not json{"[..],
        b"\xff\xfe",
        b"[1,2,3]",
        b"{\"oslo.version\": \"2.0\", \"oslo.message\": \"{broken\"}",
        b"{\"oslo.version\": \"9.0\", \"oslo.message\": \"{}\"}",
        b"{\"oslo.version\": \"2.0\", \"oslo.message\": 42}",
    ] {
        publish(&ch, &f.topic, garbage).await;
    }
    // No method, but a reply address: the caller gets a failure, not a timeout.
    publish(
        &ch,
        &f.topic,
        &enveloped(
            &json!({"args": {}, "_msg_id": "m-nomethod", "_reply_q": reply_q, "_unique_id": "u1"}),
        ),
    )
    .await;
    let d = next(&mut replies).await;
    let m: Map<String, Value> = inner(&d.data).into_iter().collect();
    assert_eq!(m["_msg_id"], "m-nomethod");
    let failure = nova_rpc::RemoteError::from_failure_json(m["failure"].as_str().unwrap()).unwrap();
    assert_eq!(failure.class, "MalformedMessage");
    assert!(failure.message.contains("no method"), "{}", failure.message);
    // Too big: refused with a failure that says so.
    let big = json!({"method": "echo", "args": {"value": "x".repeat(8000)}, "namespace": "test",
        "_msg_id": "m-big", "_reply_q": reply_q, "_unique_id": "u2"});
    publish(&ch, &f.topic, &enveloped(&big)).await;
    let d = next(&mut replies).await;
    let m: Map<String, Value> = inner(&d.data).into_iter().collect();
    assert_eq!(m["_msg_id"], "m-big");
    assert!(
        m["failure"]
            .as_str()
            .unwrap()
            .contains("exceeds the limit of 4096 bytes")
    );
    // Unknown keys are ignored; wrong argument types are a TypeError.
    let extra = json!({"method": "add", "args": {"a": 1, "b": 2}, "namespace": "test", "surprise": [1],
        "_msg_id": "m-extra", "_reply_q": reply_q, "_unique_id": "u3"});
    publish(&ch, &f.topic, &enveloped(&extra)).await;
    let m: Map<String, Value> = inner(&next(&mut replies).await.data).into_iter().collect();
    assert_eq!(
        (m["_msg_id"].clone(), m["result"].clone()),
        (json!("m-extra"), json!(3))
    );
    // A duplicate _unique_id is dropped (the last 16 are remembered).
    publish(
        &ch,
        &f.topic,
        &enveloped(
            &json!({"method": "add", "args": {"a": 1, "b": 1}, "namespace": "test",
        "_msg_id": "m-dup", "_reply_q": reply_q, "_unique_id": "u3"}),
        ),
    )
    .await;
    assert!(
        tokio::time::timeout(Duration::from_millis(500), replies.next())
            .await
            .is_err(),
        "duplicate not answered"
    );

    // The server still serves, and a client ignores replies nobody waits for.
    let client = RpcClient::new(
        small.clone(),
        Target::topic(&f.topic).with_namespace("test"),
    );
    let v: i64 = client
        .call(&RequestContext::new(), "add", json!({"a": 20, "b": 22}))
        .await
        .unwrap();
    assert_eq!(v, 42);
    let e = client
        .call::<Value>(&RequestContext::new(), "add", json!({"a": "x", "b": 1}))
        .await
        .unwrap_err();
    assert_eq!(e.remote().unwrap().kind(), RemoteKind::TypeError);
    server.stop().await;
    small.close().await;
    f.cleanup().await;
}

fn rabbitmqctl(args: &[&str]) -> String {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .env(
            "PATH",
            format!(
                "{}:/usr/sbin:/usr/lib/rabbitmq/bin",
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .expect("rabbitmqctl must be runnable (as root) for this test");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declares_the_same_topology_as_oslo() {
    let f = Fixture::amqp().await;
    let (probe, _) = Probe::new();
    let server = f.server("host1", &probe).await;
    let client = RpcClient::new(f.transport.clone(), f.target());
    let _: Value = client
        .call(&RequestContext::new(), "echo", json!({"value": 1}))
        .await
        .unwrap();
    let queues = rabbitmqctl(&[
        "-q",
        "list_queues",
        "name",
        "durable",
        "auto_delete",
        "exclusive",
        "arguments",
    ]);
    let row = |name: &str| {
        queues
            .lines()
            .find(|l| l.split('\t').next() == Some(name))
            .map(str::to_owned)
    };
    assert_eq!(
        row(&f.topic).unwrap(),
        format!("{}\tfalse\tfalse\tfalse\t[]", f.topic)
    );
    assert_eq!(
        row(&format!("{}.host1", f.topic)).unwrap(),
        format!("{}.host1\tfalse\tfalse\tfalse\t[]", f.topic)
    );
    let fanout: Vec<&str> = queues
        .lines()
        .filter(|l| l.starts_with(&format!("{}_fanout_", f.topic)))
        .collect();
    assert_eq!(fanout.len(), 1, "{queues}");
    assert!(
        fanout[0].ends_with("false\tfalse\tfalse\t[{\"x-expires\",1800000}]"),
        "{}",
        fanout[0]
    );
    let exchanges = rabbitmqctl(&[
        "-q",
        "list_exchanges",
        "name",
        "type",
        "durable",
        "auto_delete",
    ]);
    assert!(
        exchanges
            .lines()
            .any(|l| l == format!("{}_fanout\tfanout\tfalse\ttrue", f.topic)),
        "{exchanges}"
    );
    assert!(
        exchanges
            .lines()
            .any(|l| l == format!("{EXCHANGE}\ttopic\tfalse\tfalse")),
        "{exchanges}"
    );
    server.stop().await;
    let after = rabbitmqctl(&["-q", "list_queues", "name"]);
    assert!(
        !after.contains(&format!("{}_fanout_", f.topic)),
        "the fanout queue is deleted at stop"
    );
    f.cleanup().await;
}

/// Closes, on the broker side, every connection whose name contains `marker`.
fn kill_connections(marker: &str) -> usize {
    let list = rabbitmqctl(&["-q", "list_connections", "pid", "client_properties"]);
    let pids: Vec<String> = list
        .lines()
        .filter(|l| l.contains(marker))
        .filter_map(|l| l.split('\t').next())
        .map(str::to_owned)
        .collect();
    for pid in &pids {
        rabbitmqctl(&["close_connection", pid, "nova-rs test: connection dropped"]);
    }
    pids.len()
}

async fn transport_named(url: &str, marker: &str) -> Arc<AmqpTransport> {
    let mut cfg = AmqpConfig::from_url(url)
        .unwrap()
        .control_exchange(EXCHANGE);
    cfg.connection_name = format!("{marker}:{}", uuid::Uuid::new_v4());
    cfg.retry_interval = Duration::from_millis(500);
    AmqpTransport::connect(cfg).await.unwrap()
}

/// Calls in a loop while the broker at `url` goes away; every call must end
/// within its timeout, and calls must succeed again afterwards without a restart.
async fn survive<F: std::future::Future<Output = ()>>(
    url: &str,
    disrupt: impl FnOnce(String) -> F,
) {
    let marker = unique("conn");
    let topic = unique("t");
    let server_t = transport_named(url, &marker).await;
    let client_t = transport_named(url, &marker).await;
    let server = serve(server_t.clone(), &topic, "a").await;
    let client = RpcClient::new(
        client_t.clone(),
        Target::topic(&topic)
            .with_namespace("test")
            .with_version(Version::new(1, 0)),
    )
    .timeout(Duration::from_secs(3));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed, mut slowest) = (0, 0, Duration::ZERO);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t0 = Instant::now();
                match client
                    .call::<i64>(&RequestContext::new(), "add", json!({"a": 1, "b": 1}))
                    .await
                {
                    Ok(2) => ok += 1,
                    _ => {
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                slowest = slowest.max(t0.elapsed());
            }
            (ok, failed, slowest)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    disrupt(marker.clone()).await;
    // Recovered: a call to the server's own queue succeeds within 30 s.
    let t0 = Instant::now();
    loop {
        let r = client
            .prepare()
            .server("a")
            .call::<i64>(&RequestContext::new(), "add", json!({"a": 2, "b": 2}))
            .await;
        if r.as_ref().is_ok_and(|v| *v == 4) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no recovery after 30 s: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed, slowest) = traffic.await.unwrap();
    assert!(
        ok > 5,
        "traffic flowed before and after ({ok} ok, {failed} failed)"
    );
    assert!(
        slowest < Duration::from_secs(5),
        "every call ended within its 3 s timeout (slowest {slowest:?})"
    );
    server.stop().await;
    server_t.close().await;
    client_t.close().await;
    delete_queues(&[topic.clone(), format!("{topic}.a")], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_dropped_by_the_broker_are_recovered() {
    survive(&amqp_url(), |marker| async move {
        let killed = tokio::task::spawn_blocking(move || kill_connections(&marker))
            .await
            .unwrap();
        assert_eq!(
            killed, 4,
            "publisher + server connections of both transports"
        );
    })
    .await;
}

/// A process serving many hosts (nova-compute with fake hosts) holds two
/// broker connections per transport, not one per server; when the broker
/// drops them, every server comes back on the new listening connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_of_one_transport_share_its_two_connections() {
    let marker = unique("shared");
    let topic = unique("t");
    let t = transport_named(&amqp_url(), &marker).await;
    let mut servers = Vec::new();
    for i in 0..20 {
        servers.push(serve(t.clone(), &topic, &format!("h{i}")).await);
    }
    let client = RpcClient::new(
        t.clone(),
        Target::topic(&topic)
            .with_namespace("test")
            .with_version(Version::new(1, 0)),
    )
    .timeout(Duration::from_secs(3));
    let call_all = |client: RpcClient| async move {
        for i in 0..20 {
            let r = client
                .prepare()
                .server(format!("h{i}"))
                .call::<i64>(&RequestContext::new(), "add", json!({"a": i, "b": 1}))
                .await;
            if r.as_ref().ok() != Some(&(i + 1)) {
                return Err(format!("h{i}: {r:?}"));
            }
        }
        Ok(())
    };
    call_all(client.clone()).await.unwrap();
    let m = marker.clone();
    let killed = tokio::task::spawn_blocking(move || kill_connections(&m))
        .await
        .unwrap();
    assert_eq!(
        killed, 2,
        "20 servers and a reply queue: one publishing and one listening connection"
    );
    let t0 = Instant::now();
    while let Err(e) = call_all(client.clone()).await {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "not every server recovered within 30 s: {e}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for s in servers {
        s.stop().await;
    }
    t.close().await;
    let mut queues = vec![topic.clone()];
    queues.extend((0..20).map(|i| format!("{topic}.h{i}")));
    delete_queues(&queues, &[]).await;
}

/// Stops and starts a RabbitMQ node of the test's own ([`OwnRabbit`]; the
/// machine's broker, which other tests use meanwhile, is not touched):
/// every connection and every non-durable queue is lost.
#[cfg(feature = "test-util")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts its own RabbitMQ: run with --run-ignored only"]
async fn broker_restart_is_survived() {
    use nova_rpc::test_util::OwnRabbit;
    let rabbit = tokio::task::spawn_blocking(|| OwnRabbit::start("rpc_restart"))
        .await
        .unwrap();
    let url = rabbit.url();
    let rabbit = Arc::new(std::sync::Mutex::new(rabbit));
    let node = rabbit.clone();
    survive(&url, |_| async move {
        tokio::task::spawn_blocking(move || node.lock().unwrap().restart())
            .await
            .unwrap();
    })
    .await;
    tokio::task::spawn_blocking(move || drop(rabbit))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_skips_a_dead_host() {
    // Port 1 refuses at once; the second host of the URL is the real broker.
    let url = "rabbit://guest:guest@127.0.0.1:1,guest:guest@127.0.0.1:5672/";
    let t = AmqpTransport::connect(
        AmqpConfig::from_url(url)
            .unwrap()
            .control_exchange(EXCHANGE),
    )
    .await
    .unwrap();
    let topic = unique("t");
    let server = serve(t.clone(), &topic, "a").await;
    let c = RpcClient::new(t.clone(), Target::topic(&topic).with_namespace("test"));
    let v: i64 = c
        .call(&RequestContext::new(), "add", json!({"a": 1, "b": 2}))
        .await
        .unwrap();
    assert_eq!(v, 3);
    server.stop().await;
    t.close().await;
    delete_queues(&[topic.clone(), format!("{topic}.a")], &[]).await;
    let all_dead = AmqpConfig::from_url("rabbit://guest:guest@127.0.0.1:1/").unwrap();
    let e = AmqpTransport::connect(all_dead).await.unwrap_err();
    assert!(
        e.to_string().contains("127.0.0.1:1"),
        "the error names the host: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msgpack_is_chosen_by_configuration_and_read_by_content_type() {
    let topic = unique("t");
    // The server sends JSON, the client MessagePack: each side reads what the other sends.
    let server_t = AmqpTransport::connect(
        AmqpConfig::from_url(&amqp_url())
            .unwrap()
            .control_exchange(EXCHANGE),
    )
    .await
    .unwrap();
    let client_t = AmqpTransport::connect(
        AmqpConfig::from_url(&amqp_url())
            .unwrap()
            .control_exchange(EXCHANGE)
            .codec(nova_rpc::Codec::Msgpack),
    )
    .await
    .unwrap();
    let (_conn, ch) = raw().await;
    let (_q, mut requests) = spy(&ch, &topic).await;
    let server = serve(server_t.clone(), &topic, "a").await;
    let c = RpcClient::new(
        client_t.clone(),
        Target::topic(&topic).with_namespace("test"),
    );
    let v: Value = c
        .call(
            &RequestContext::new(),
            "echo",
            json!({"value": {"n": [1.5, null, "x"]}}),
        )
        .await
        .unwrap();
    assert_eq!(v, json!({"n": [1.5, null, "x"]}));
    let d = next(&mut requests).await;
    assert_eq!(
        d.properties.content_type().as_ref().map(|s| s.as_str()),
        Some("application/msgpack")
    );
    assert!(
        serde_json::from_slice::<Value>(&d.data).is_err(),
        "the body is MessagePack, not JSON"
    );
    server.stop().await;
    server_t.close().await;
    client_t.close().await;
    delete_queues(&[topic.clone(), format!("{topic}.a")], &[]).await;
}

/// `amqp_durable_queues`: the topic exchange and the server's queues
/// (`<topic>`, `<topic>.<server>`) are durable, so they and their
/// persistent messages outlive a broker restart; fanout and reply queues
/// stay transient. A client's default call timeout is the transport's
/// `rpc_response_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_queues_and_the_response_timeout_are_configurable() {
    let exchange = unique("durable_x");
    let mut cfg = AmqpConfig::from_url(&amqp_url())
        .unwrap()
        .control_exchange(&exchange);
    cfg.durable_queues = true;
    cfg.response_timeout = Duration::from_secs(1);
    let t = AmqpTransport::connect(cfg).await.unwrap();
    let topic = unique("t");
    let server = serve(t.clone(), &topic, "a").await;
    let client = RpcClient::new(
        t.clone(),
        Target::topic(&topic)
            .with_namespace("test")
            .with_version(Version::new(1, 0)),
    );
    let v: i64 = client
        .call(&RequestContext::new(), "add", json!({"a": 1, "b": 2}))
        .await
        .unwrap();
    assert_eq!(v, 3);
    let queues = rabbitmqctl(&["-q", "list_queues", "name", "durable"]);
    let durable = |name: &str| {
        queues
            .lines()
            .find(|l| l.split('\t').next() == Some(name))
            .map(|l| l.ends_with("\ttrue"))
    };
    assert_eq!(durable(&topic), Some(true), "{queues}");
    assert_eq!(durable(&format!("{topic}.a")), Some(true), "{queues}");
    let fanout: Vec<&str> = queues
        .lines()
        .filter(|l| l.starts_with(&format!("{topic}_fanout_")))
        .collect();
    assert!(
        fanout.len() == 1 && fanout[0].ends_with("\tfalse"),
        "{fanout:?}"
    );
    let exchanges = rabbitmqctl(&["-q", "list_exchanges", "name", "durable"]);
    assert!(
        exchanges.lines().any(|l| l == format!("{exchange}\ttrue")),
        "{exchanges}"
    );
    // Nobody serves `b`: the call ends after the transport's 1 s.
    let t0 = Instant::now();
    let e = client
        .prepare()
        .server("b")
        .call::<i64>(&RequestContext::new(), "add", json!({"a": 1, "b": 2}))
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    server.stop().await;
    t.close().await;
    delete_queues(
        &[topic.clone(), format!("{topic}.a"), format!("{topic}.b")],
        &[],
    )
    .await;
    // The durable exchange would outlive the test.
    let (conn, ch) = raw().await;
    ch.exchange_delete(
        exchange.as_str().into(),
        lapin::options::ExchangeDeleteOptions::default(),
    )
    .await
    .unwrap();
    let _ = conn.close(200, "OK".into()).await;
}
