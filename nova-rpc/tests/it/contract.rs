//! One contract suite, run against every transport: memory always, AMQP
//! against the real RabbitMQ (feature `amqp`).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nova_rpc::{
    Error, Listen, NotificationListener, Notifier, Priority, RemoteKind, RequestContext, RpcClient,
    ServerConfig, Version,
};
use serde_json::{Value, json};

use crate::common::{Fixture, Probe};

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $( #[tokio::test] async fn $name() { super::$name(crate::common::Fixture::memory()).await } )*
        }
        #[cfg(feature = "amqp")]
        mod amqp {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(crate::common::Fixture::amqp().await).await } )*
        }
    };
}

contract!(
    call_returns_the_result,
    casts_are_delivered_once_and_never_answered,
    fanout_reaches_every_server,
    topic_calls_are_shared_and_server_calls_are_directed,
    version_and_namespace_rules,
    unknown_and_private_methods_are_no_such_method,
    remote_errors_round_trip,
    call_without_server_times_out,
    late_reply_is_dropped_and_the_client_goes_on,
    call_monitor_keeps_long_calls_alive,
    dead_server_is_detected_by_the_call_monitor,
    concurrency_is_bounded,
    graceful_stop_finishes_calls_in_flight,
    version_cap_refuses_newer_versions,
    dropping_a_call_frees_its_reply_slot,
    context_crosses_the_wire,
    many_concurrent_calls,
    notifications_round_trip_and_requeue,
);

fn ctx() -> RequestContext {
    RequestContext::new().with_user("u-1").with_project("p-1")
}

async fn call_returns_the_result(f: Fixture) {
    let (probe, _) = Probe::new();
    let s = f.server("a", &probe).await;
    let c = RpcClient::new(f.transport.clone(), f.target());
    let v: Value = c
        .call(&ctx(), "echo", json!({"value": {"k": [1, "two", null]}}))
        .await
        .unwrap();
    assert_eq!(v, json!({"k": [1, "two", null]}));
    let sum: i64 = c
        .call(&ctx(), "add", json!({"a": 2, "b": 40}))
        .await
        .unwrap();
    assert_eq!(sum, 42);
    let pong: String = c
        .prepare()
        .namespace(None)
        .version(Version::new(1, 0))
        .call(&ctx(), "ping", json!({}))
        .await
        .unwrap();
    assert_eq!(pong, "pong");
    s.stop().await;
    f.cleanup().await;
}

async fn casts_are_delivered_once_and_never_answered(f: Fixture) {
    let (probe, mut seen) = Probe::new();
    let s = f.server("a", &probe).await;
    let c = RpcClient::new(f.transport.clone(), f.target());
    c.cast(&ctx(), "record", json!({"value": "c1"}))
        .await
        .unwrap();
    c.prepare()
        .server("a")
        .cast(&ctx(), "record", json!({"value": "c2"}))
        .await
        .unwrap();
    // A failing cast is logged by the server, nothing comes back.
    c.cast(&ctx(), "fail", json!({"message": "x"}))
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(
            tokio::time::timeout(Duration::from_secs(5), seen.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    got.sort_by_key(|a| a.1.to_string());
    assert_eq!(got[0].1, "c1");
    assert_eq!(got[0].0, f.topic);
    assert_eq!(got[1].1, "c2");
    assert_eq!(got[1].0, format!("{}.a", f.topic));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), seen.recv())
            .await
            .is_err(),
        "no duplicates"
    );
    assert_eq!(c.pending_calls(), 0);
    s.stop().await;
    f.cleanup().await;
}

async fn fanout_reaches_every_server(f: Fixture) {
    let (probe, mut seen) = Probe::new();
    let a = f.server("a", &probe).await;
    let b = f.server("b", &probe).await;
    let c = RpcClient::new(f.transport.clone(), f.target()).fanout(true);
    c.cast(&ctx(), "record", json!({"value": "all"}))
        .await
        .unwrap();
    let mut exchanges = Vec::new();
    for _ in 0..2 {
        let (key, v, ex) = tokio::time::timeout(Duration::from_secs(5), seen.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v, "all");
        assert_eq!(key, "", "fanout casts carry an empty routing key");
        exchanges.push(ex);
    }
    assert_eq!(exchanges, vec![format!("{}_fanout", f.topic); 2]);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), seen.recv())
            .await
            .is_err()
    );
    let err = c
        .call::<Value>(&ctx(), "echo", json!({"value": 1}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidTarget(_)), "{err}");
    a.stop().await;
    b.stop().await;
    f.cleanup().await;
}

async fn topic_calls_are_shared_and_server_calls_are_directed(f: Fixture) {
    let (probe, _) = Probe::new();
    let a = f.server("a", &probe).await;
    let b = f.server("b", &probe).await;
    let c = RpcClient::new(f.transport.clone(), f.target());
    for _ in 0..5 {
        let who: String = c
            .prepare()
            .server("b")
            .call(&ctx(), "whoami", json!({}))
            .await
            .unwrap();
        assert_eq!(who, "b");
    }
    let mut seen = HashSet::new();
    for _ in 0..40 {
        let who: String = c.call(&ctx(), "whoami", json!({})).await.unwrap();
        seen.insert(who);
    }
    assert_eq!(
        seen,
        HashSet::from(["a".to_string(), "b".to_string()]),
        "both servers share the topic queue"
    );
    a.stop().await;
    b.stop().await;
    f.cleanup().await;
}

async fn version_and_namespace_rules(f: Fixture) {
    let (probe, _) = Probe::new();
    let s = f.server("a", &probe).await;
    let c = RpcClient::new(f.transport.clone(), f.target());
    let call = |v: Version, ns: Option<&'static str>| {
        let c = c.prepare().version(v).namespace(ns);
        async move { c.call::<Value>(&ctx(), "echo", json!({"value": 1})).await }
    };
    assert!(
        call(Version::new(1, 0), Some("test")).await.is_ok(),
        "older minor is served"
    );
    let e = call(Version::new(1, 4), Some("test")).await.unwrap_err();
    assert!(e.is_unsupported_version(), "{e}");
    assert_eq!(
        e.remote().unwrap().message,
        "Endpoint does not support RPC version 1.4. Attempted method: echo"
    );
    assert!(
        call(Version::new(2, 0), Some("test"))
            .await
            .unwrap_err()
            .is_unsupported_version()
    );
    assert!(
        call(Version::new(1, 0), Some("nope"))
            .await
            .unwrap_err()
            .is_unsupported_version()
    );
    // echo exists only in "test": the null namespace endpoint is compatible but lacks it.
    assert!(
        call(Version::new(1, 0), None)
            .await
            .unwrap_err()
            .is_no_such_method()
    );
    s.stop().await;
    f.cleanup().await;
}

async fn unknown_and_private_methods_are_no_such_method(f: Fixture) {
    let (probe, _) = Probe::new();
    let s = f.server("a", &probe).await;
    let c = RpcClient::new(f.transport.clone(), f.target());
    let e = c
        .call::<Value>(&ctx(), "no_such_method", json!({}))
        .await
        .unwrap_err();
    assert!(e.is_no_such_method(), "{e}");
    assert_eq!(
        e.remote().unwrap().message,
        "Endpoint does not support RPC method no_such_method"
    );
    assert!(
        c.call::<Value>(&ctx(), "_private", json!({}))
            .await
            .unwrap_err()
            .is_no_such_method()
    );
    s.stop().await;
    f.cleanup().await;
}

async fn remote_errors_round_trip(f: Fixture) {
    let (probe, _) = Probe::new();
    let s = f.server("a", &probe).await;
    let c = RpcClient::new(f.transport.clone(), f.target());
    let e = c
        .call::<Value>(&ctx(), "fail", json!({"message": "boom", "code": 7}))
        .await
        .unwrap_err();
    let r = e.remote().expect("a remote error");
    assert!(r.is("nova_rs.tests", "TestError"));
    assert_eq!(r.message, "boom");
    assert_eq!(r.args, vec![json!("boom")]);
    assert_eq!(r.kwargs["code"], 7);
    assert!(!r.tb.is_empty(), "a traceback is always sent");
    let bad = c
        .call::<Value>(&ctx(), "add", json!({"a": "x", "b": 1}))
        .await
        .unwrap_err();
    assert_eq!(bad.remote().unwrap().kind(), RemoteKind::TypeError);
    s.stop().await;
    f.cleanup().await;
}

async fn call_without_server_times_out(f: Fixture) {
    let c = RpcClient::new(f.transport.clone(), f.target()).timeout(Duration::from_millis(700));
    let t0 = Instant::now();
    let e = c
        .call::<Value>(&ctx(), "echo", json!({"value": 1}))
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(650) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(c.pending_calls(), 0);
    f.cleanup().await;
}

async fn late_reply_is_dropped_and_the_client_goes_on(f: Fixture) {
    let (probe, _) = Probe::new();
    let s = f.server("a", &probe).await;
    let c = RpcClient::new(f.transport.clone(), f.target());
    let e = c
        .prepare()
        .timeout(Duration::from_millis(300))
        .call::<Value>(&ctx(), "sleep", json!({"ms": 800}))
        .await;
    assert!(e.unwrap_err().is_timeout());
    tokio::time::sleep(Duration::from_millis(700)).await; // the late reply arrives and is dropped
    let v: i64 = c
        .call(&ctx(), "add", json!({"a": 1, "b": 1}))
        .await
        .unwrap();
    assert_eq!(v, 2);
    s.stop().await;
    f.cleanup().await;
}

async fn call_monitor_keeps_long_calls_alive(f: Fixture) {
    let (probe, _) = Probe::new();
    let s = f.server("a", &probe).await;
    let c = RpcClient::new(f.transport.clone(), f.target())
        .timeout(Duration::from_secs(20))
        .call_monitor_timeout(Some(Duration::from_secs(2)));
    // 3.5 s of work under a 2 s monitor: only heartbeats (every 1 s) keep it alive.
    let ms: u64 = c.call(&ctx(), "sleep", json!({"ms": 3500})).await.unwrap();
    assert_eq!(ms, 3500);
    s.stop().await;
    f.cleanup().await;
}

async fn dead_server_is_detected_by_the_call_monitor(f: Fixture) {
    // A "server" that takes requests and dies with them: no reply, no heartbeat.
    let exchange = f.transport.control_exchange().to_owned();
    let mut black_hole = f
        .transport
        .listen(Listen::Rpc {
            exchange,
            topic: f.topic.clone(),
            server: "dead".into(),
        })
        .await
        .unwrap();
    let c = RpcClient::new(f.transport.clone(), f.target())
        .timeout(Duration::from_secs(60))
        .call_monitor_timeout(Some(Duration::from_secs(2)));
    let t0 = Instant::now();
    let cx = ctx();
    let call = c.call::<Value>(&cx, "sleep", json!({"ms": 10}));
    let (r, d) = tokio::join!(call, black_hole.recv());
    assert!(d.is_some(), "the request reached the dead server");
    assert!(r.unwrap_err().is_timeout());
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "detected after {took:?}, not after the 60 s call timeout"
    );
    drop(black_hole);
    f.cleanup().await;
}

async fn concurrency_is_bounded(f: Fixture) {
    let (probe, _) = Probe::new();
    let config = ServerConfig {
        executor_pool_size: 3,
        ..Default::default()
    };
    let s = f.server_with("a", &probe, config).await;
    let c = RpcClient::new(f.transport.clone(), f.target());
    let t0 = Instant::now();
    let calls = (0..9).map(|_| {
        let c = c.clone();
        async move { c.call::<u64>(&ctx(), "sleep", json!({"ms": 300})).await }
    });
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(r.unwrap(), 300);
    }
    assert_eq!(probe.max_running.load(Ordering::SeqCst), 3);
    assert!(
        t0.elapsed() >= Duration::from_millis(850),
        "9 calls of 300 ms, 3 at a time"
    );
    s.stop().await;
    f.cleanup().await;
}

async fn graceful_stop_finishes_calls_in_flight(f: Fixture) {
    let (probe, _) = Probe::new();
    let s = f.server("a", &probe).await;
    let c = RpcClient::new(f.transport.clone(), f.target());
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.call::<u64>(&ctx(), "sleep", json!({"ms": 700})).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    s.stop().await;
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "stop waited for the call in flight"
    );
    assert_eq!(slow.await.unwrap().unwrap(), 700);
    // Stopped: nothing consumes any more.
    let e = c
        .prepare()
        .timeout(Duration::from_millis(500))
        .call::<Value>(&ctx(), "echo", json!({"value": 1}))
        .await;
    assert!(e.unwrap_err().is_timeout());
    f.cleanup().await;
}

async fn version_cap_refuses_newer_versions(f: Fixture) {
    let c = RpcClient::new(f.transport.clone(), f.target()).version_cap(Some(Version::new(1, 2)));
    assert!(c.can_send_version(Version::new(1, 2)));
    assert!(!c.can_send_version(Version::new(1, 3)));
    assert!(!c.can_send_version(Version::new(2, 0)));
    let e = c
        .call::<Value>(&ctx(), "echo", json!({"value": 1}))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::VersionCap { .. }), "{e}");
    let e = c
        .cast(&ctx(), "echo", json!({"value": 1}))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::VersionCap { .. }), "{e}");
    // Downgrade as nova's rpcapi does.
    let (probe, _) = Probe::new();
    let s = f.server("a", &probe).await;
    let v = if c.can_send_version(Version::new(1, 3)) {
        Version::new(1, 3)
    } else {
        Version::new(1, 1)
    };
    let r: Value = c
        .prepare()
        .version(v)
        .call(&ctx(), "echo", json!({"value": "ok"}))
        .await
        .unwrap();
    assert_eq!(r, "ok");
    s.stop().await;
    f.cleanup().await;
}

async fn dropping_a_call_frees_its_reply_slot(f: Fixture) {
    let (probe, _) = Probe::new();
    let s = f.server("a", &probe).await;
    let c = RpcClient::new(f.transport.clone(), f.target());
    let r = tokio::time::timeout(
        Duration::from_millis(200),
        c.call::<u64>(&ctx(), "sleep", json!({"ms": 600})),
    )
    .await;
    assert!(r.is_err(), "the caller gave up");
    assert_eq!(c.pending_calls(), 0, "its reply slot is gone");
    tokio::time::sleep(Duration::from_millis(600)).await; // the orphan reply is dropped quietly
    let v: i64 = c
        .call(&ctx(), "add", json!({"a": 1, "b": 2}))
        .await
        .unwrap();
    assert_eq!(v, 3);
    s.stop().await;
    f.cleanup().await;
}

async fn context_crosses_the_wire(f: Fixture) {
    let (probe, _) = Probe::new();
    let s = f.server("a", &probe).await;
    let c = RpcClient::new(f.transport.clone(), f.target())
        .call_monitor_timeout(Some(Duration::from_secs(4)));
    let mut ctx = RequestContext::new()
        .with_user("u-1")
        .with_project("p-1")
        .with_roles(["member", "reader"])
        .with_timeout(Duration::from_secs(30));
    ctx.set("service_catalog", json!([]));
    let got: Value = c.call(&ctx, "get_context", json!({})).await.unwrap();
    assert_eq!(got["context"], Value::Object(ctx.as_map().clone()));
    assert_eq!(got["client_timeout"], 4.0);
    let back = RequestContext::from_map(got["context"].as_object().cloned().unwrap());
    assert_eq!(back.roles(), vec!["member", "reader"]);
    assert!(back.deadline().is_some());
    // An expired deadline bounds the call.
    let expired = RequestContext::new().with_timeout(Duration::ZERO);
    let e = c
        .call::<Value>(&expired, "sleep", json!({"ms": 500}))
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");
    s.stop().await;
    f.cleanup().await;
}

async fn many_concurrent_calls(f: Fixture) {
    let (probe, _) = Probe::new();
    let a = f.server("a", &probe).await;
    let b = f.server("b", &probe).await;
    let c = RpcClient::new(f.transport.clone(), f.target());
    let calls = (0..400i64).map(|i| {
        let c = c.clone();
        async move {
            (
                i,
                c.call::<i64>(&ctx(), "add", json!({"a": i, "b": 1000}))
                    .await,
            )
        }
    });
    let stream = futures_util::stream::iter(calls);
    use futures_util::StreamExt;
    let results: Vec<_> = stream.buffer_unordered(50).collect().await;
    assert_eq!(results.len(), 400);
    for (i, r) in results {
        assert_eq!(r.unwrap(), i + 1000);
    }
    assert_eq!(c.pending_calls(), 0);
    a.stop().await;
    b.stop().await;
    f.cleanup().await;
}

async fn notifications_round_trip_and_requeue(f: Fixture) {
    let topic = f.topic.clone();
    let notifier = Notifier::new(f.transport.clone(), "compute.host1", &[&topic]);
    // Sent before anyone listens: the queue keeps it.
    notifier
        .info(
            &ctx(),
            "compute.instance.create.end",
            json!({"instance_id": "i-1"}),
        )
        .await
        .unwrap();
    notifier
        .error(
            &ctx(),
            "compute.instance.create.error",
            json!({"instance_id": "i-2"}),
        )
        .await
        .unwrap();
    let t = f.transport.clone();
    let mut listener = start_listener(t, &topic).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let n = tokio::time::timeout(Duration::from_secs(5), listener.next())
            .await
            .unwrap()
            .unwrap();
        got.push((
            n.notification.priority.clone(),
            n.notification.event_type.clone(),
            n.routing_key.to_string(),
        ));
        if n.notification.priority == "INFO" {
            assert_eq!(n.notification.publisher_id, "compute.host1");
            assert_eq!(n.notification.payload, json!({"instance_id": "i-1"}));
            assert_eq!(n.notification.context.get("user_id"), Some(&json!("u-1")));
            assert_eq!(n.notification.message_id.len(), 36, "uuid with dashes");
        }
    }
    got.sort();
    assert_eq!(
        got[0],
        (
            "ERROR".into(),
            "compute.instance.create.error".into(),
            format!("{topic}.error")
        )
    );
    assert_eq!(
        got[1],
        (
            "INFO".into(),
            "compute.instance.create.end".into(),
            format!("{topic}.info")
        )
    );
    // Requeue: the same notification comes again.
    notifier.info(&ctx(), "again", json!(1)).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), listener.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.notification.event_type, "again");
    first.requeue();
    let second = tokio::time::timeout(Duration::from_secs(5), listener.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.notification.event_type, "again");
    drop(second);
    listener.close();
    #[cfg(feature = "amqp")]
    if f.kind == "amqp" {
        let qs: Vec<String> = Priority::ALL
            .iter()
            .map(|p| format!("{topic}.{p}"))
            .collect();
        crate::common::delete_queues(&qs, &[]).await;
    }
    f.cleanup().await;
}

async fn start_listener(
    t: std::sync::Arc<dyn nova_rpc::Transport>,
    topic: &str,
) -> NotificationListener {
    NotificationListener::start(t, None, &[topic], &[Priority::Info, Priority::Error], None)
        .await
        .unwrap()
}
