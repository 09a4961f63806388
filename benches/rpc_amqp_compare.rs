//! nova-rpc over RabbitMQ against (b) a bare lapin request/reply loop with
//! the same bodies, the same delivery guarantees (publisher confirms, ack on
//! receipt, queued without waiting for its write, as nova-rpc does), the same topic-exchange routing and the same connection layout
//! (publishing and consuming on separate connections) — the ceiling; the
//! bare loop with one connection per side is printed for reference — and (c) the real Python oslo.messaging
//! (`oslo_peer.py client bench` against `oslo_peer.py server`) — the anchor.
//! All on the same broker, in one run; one JSON line per figure, then a summary.
//!
//! Run with: cargo bench --features amqp --bench rpc_amqp_compare
//! (NOVA_RS_BENCH_N calls per run for Rust, default 10000, NOVA_RS_BENCH_ROUNDS interleaved rounds, default 3; NOVA_RS_BENCH_PY_N for Python, default 2000;
//!  NOVA_RS_PYTHON / NOVA_RS_SHARED locate the Python peer; scripts/test sets them up)

#[path = "harness.rs"]
mod harness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use nova_rpc::{
    AmqpConfig, AmqpTransport, Codec, Dispatcher, Endpoint, Reply, Request, RequestContext,
    RpcClient, RpcServer, ServerConfig, Target, Version,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const URL: &str = "rabbit://guest:guest@127.0.0.1:5672/";
const AMQP_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const CONCURRENCY: [usize; 3] = [1, 10, 50];
const BARE_EXCHANGE: &str = "bench_bare";

#[derive(Serialize, Deserialize, Clone, PartialEq)]
struct Echo {
    value: String,
}

fn payload() -> Echo {
    Echo {
        value: "x".repeat(16),
    }
}

fn env_n(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

type Results = Vec<(String, String, usize, f64, f64, f64)>;

fn record(results: &mut Results, f: &harness::Figures, name: &str, mode: &str, c: usize) {
    println!("{}", f.json(name, mode, c));
    results.push((name.into(), mode.into(), c, f.per_s, f.p50_ms, f.p99_ms));
}

// ------------------------------------------------------------------ (b) bare lapin

/// The bodies nova-rpc would send, so the broker moves the same bytes.
fn bodies(queue: &str, reply_q: &str) -> (Vec<u8>, Vec<u8>) {
    let req = Request {
        method: "echo".into(),
        args: json!({"value": payload().value})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        namespace: Some("bench".into()),
        version: None,
        msg_id: Some(nova_rpc::new_id()),
        reply_q: Some(reply_q.into()),
        call_monitor_timeout: None,
        unique_id: nova_rpc::new_id(),
        context: Arc::new(
            RequestContext::new()
                .with_user("bench")
                .with_project("bench")
                .into_map(),
        ),
    };
    let reply = Reply {
        result: json!(payload().value),
        failure: None,
        ending: true,
        msg_id: req.msg_id.clone().unwrap_or_default(),
        unique_id: nova_rpc::new_id(),
    };
    let _ = queue;
    (
        Codec::Json.encode(&req, true).unwrap_or_default(),
        Codec::Json.encode(&reply, true).unwrap_or_default(),
    )
}

async fn confirm_channel(conn: &Connection) -> lapin::Result<Channel> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

/// A confirm-mode channel for publishing: on a connection of its own when
/// `split`, otherwise on `conn` (the returned connection must be kept open).
async fn publisher(conn: &Connection, split: bool) -> lapin::Result<(Option<Connection>, Channel)> {
    let own = if split {
        Some(Connection::connect(AMQP_URI, Default::default()).await?)
    } else {
        None
    };
    let ch = confirm_channel(own.as_ref().unwrap_or(conn)).await?;
    Ok((own, ch))
}

fn props() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
}

/// `split`: each side publishes on one connection and consumes on another
/// (nova-rpc's layout, as RabbitMQ recommends); otherwise one connection a side.
async fn bare(results: &mut Results, n: usize, split: bool) -> lapin::Result<()> {
    let name = if split {
        "bare lapin"
    } else {
        "bare lapin 1conn"
    };
    let id = nova_rpc::new_id();
    let (req_q, reply_q) = (
        format!("bench_bare_req_{id}"),
        format!("bench_bare_reply_{id}"),
    );
    let (req_body, reply_body) = bodies(&req_q, &reply_q);
    let reply_body = Arc::new(reply_body);

    // Server: consume, ack on receipt, reply with confirm.
    let sconn = Connection::connect(AMQP_URI, Default::default()).await?;
    let sch = sconn.create_channel().await?;
    let qopts = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    sch.queue_declare(req_q.as_str().into(), qopts, FieldTable::default())
        .await?;
    // Requests go through a topic exchange, as oslo's do (the routing the broker does is the same).
    sch.exchange_declare(
        BARE_EXCHANGE.into(),
        lapin::ExchangeKind::Topic,
        Default::default(),
        FieldTable::default(),
    )
    .await?;
    sch.queue_bind(
        req_q.as_str().into(),
        BARE_EXCHANGE.into(),
        req_q.as_str().into(),
        Default::default(),
        FieldTable::default(),
    )
    .await?;
    let (sconn_pub, spub) = publisher(&sconn, split).await?;
    let mut consumer = sch
        .basic_consume(
            req_q.as_str().into(),
            "s".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let server = tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            let _ = futures_util::FutureExt::now_or_never(d.acker.ack(BasicAckOptions::default()));
            let (Some(to), Some(corr)) = (
                d.properties.reply_to().clone(),
                d.properties.correlation_id().clone(),
            ) else {
                continue; // a cast
            };
            let (spub, body) = (spub.clone(), reply_body.clone());
            tokio::spawn(async move {
                let p = props().with_correlation_id(corr);
                let opts = BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                };
                if let Ok(c) = spub.basic_publish("".into(), to, opts, &body, p).await {
                    let _ = c.await;
                }
            });
        }
    });

    // Client: one reply queue, replies routed by correlation id.
    let cconn = Connection::connect(AMQP_URI, Default::default()).await?;
    let cch = cconn.create_channel().await?;
    cch.queue_declare(reply_q.as_str().into(), qopts, FieldTable::default())
        .await?;
    let (cconn_pub, cpub) = publisher(&cconn, split).await?;
    let waiters: Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>> = Arc::default();
    let mut replies = cch
        .basic_consume(
            reply_q.as_str().into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let w = waiters.clone();
    let router = tokio::spawn(async move {
        while let Some(Ok(d)) = replies.next().await {
            let _ = futures_util::FutureExt::now_or_never(d.acker.ack(BasicAckOptions::default()));
            let corr = d
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default();
            let tx = w.lock().unwrap_or_else(|p| p.into_inner()).remove(&corr);
            if let Some(tx) = tx {
                let _ = tx.send(d.data);
            }
        }
    });
    let req_body = Arc::new(req_body);
    for c in CONCURRENCY {
        let (cpub, waiters, req_body, req_q, reply_q) = (
            cpub.clone(),
            waiters.clone(),
            req_body.clone(),
            req_q.clone(),
            reply_q.clone(),
        );
        let f = harness::load(n, c, move || {
            let (cpub, waiters, req_body, req_q, reply_q) = (
                cpub.clone(),
                waiters.clone(),
                req_body.clone(),
                req_q.clone(),
                reply_q.clone(),
            );
            async move {
                let corr = nova_rpc::new_id();
                let (tx, rx) = oneshot::channel();
                waiters
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(corr.clone(), tx);
                let p = props()
                    .with_reply_to(reply_q.as_str().into())
                    .with_correlation_id(corr.as_str().into())
                    .with_expiration("30000".into());
                let Ok(confirm) = cpub
                    .basic_publish(
                        BARE_EXCHANGE.into(),
                        req_q.as_str().into(),
                        BasicPublishOptions::default(),
                        &req_body,
                        p,
                    )
                    .await
                else {
                    return false;
                };
                if confirm.await.is_err() {
                    return false;
                }
                tokio::time::timeout(Duration::from_secs(30), rx)
                    .await
                    .is_ok_and(|r| r.is_ok())
            }
        })
        .await;
        record(results, &f, name, "call", c);
    }
    let (cpub2, req_body2, req_q2) = (cpub.clone(), req_body.clone(), req_q.clone());
    let f = harness::load(n, 1, move || {
        let (cpub, req_body, req_q) = (cpub2.clone(), req_body2.clone(), req_q2.clone());
        async move {
            match cpub
                .basic_publish(
                    BARE_EXCHANGE.into(),
                    req_q.as_str().into(),
                    BasicPublishOptions::default(),
                    &req_body,
                    props(),
                )
                .await
            {
                Ok(c) => c.await.is_ok(),
                Err(_) => false,
            }
        }
    })
    .await;
    record(results, &f, name, "cast", 1);
    router.abort();
    server.abort();
    let _ = cconn.close(200, "OK".into()).await;
    let _ = sconn.close(200, "OK".into()).await;
    for c in [cconn_pub, sconn_pub].into_iter().flatten() {
        let _ = c.close(200, "OK".into()).await;
    }
    Ok(())
}

// ------------------------------------------------------------------ (a) nova-rpc

async fn ours(results: &mut Results, n: usize) -> nova_rpc::Result<()> {
    let topic = format!("bench_novarpc_{}", nova_rpc::new_id());
    let server_t =
        AmqpTransport::connect(AmqpConfig::from_url(URL)?.control_exchange("bench")).await?;
    let client_t =
        AmqpTransport::connect(AmqpConfig::from_url(URL)?.control_exchange("bench")).await?;
    let endpoint = Endpoint::new(Some("bench"), Version::new(1, 0))
        .method("echo", |_c, e: Echo| async move { Ok(e.value) });
    let server = RpcServer::start_with(
        server_t.clone(),
        Target::topic(&topic).with_server("s1"),
        Dispatcher::new(vec![endpoint]),
        ServerConfig::default(),
    )
    .await?;
    let client = RpcClient::new(
        client_t.clone(),
        Target::topic(&topic).with_namespace("bench"),
    )
    .timeout(Duration::from_secs(30));
    let ctx = RequestContext::new()
        .with_user("bench")
        .with_project("bench");
    let want = payload().value;
    for _ in 0..20 {
        client.call::<String>(&ctx, "echo", payload()).await?;
    }
    for c in CONCURRENCY {
        let (client, ctx, want) = (client.clone(), ctx.clone(), want.clone());
        let f = harness::load(n, c, move || {
            let (client, ctx, want) = (client.clone(), ctx.clone(), want.clone());
            async move {
                client
                    .call::<String>(&ctx, "echo", payload())
                    .await
                    .is_ok_and(|v| v == want)
            }
        })
        .await;
        record(results, &f, "nova-rpc amqp", "call", c);
    }
    let (client2, ctx2) = (client.clone(), ctx.clone());
    let f = harness::load(n, 1, move || {
        let (client, ctx) = (client2.clone(), ctx2.clone());
        async move { client.cast(&ctx, "echo", payload()).await.is_ok() }
    })
    .await;
    record(results, &f, "nova-rpc amqp", "cast", 1);
    server.stop().await;
    server_t.close().await;
    client_t.close().await;
    super_cleanup(&topic).await;
    Ok(())
}

async fn super_cleanup(topic: &str) {
    if let Ok(conn) = Connection::connect(AMQP_URI, Default::default()).await {
        if let Ok(ch) = conn.create_channel().await {
            for q in [topic.to_owned(), format!("{topic}.s1")] {
                let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
            }
        }
        let _ = conn.close(200, "OK".into()).await;
    }
}

// ------------------------------------------------------------------ (c) Python oslo.messaging

fn python(results: &mut Results, n: usize) -> Result<(), String> {
    use std::io::BufRead;
    let py = std::env::var("NOVA_RS_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles/bin/python".into());
    let shared = std::env::var("NOVA_RS_SHARED")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared").into());
    let script = format!("{shared}/oracles/oslo_peer.py");
    let topic = format!("bench_oslo_{}", nova_rpc::new_id());
    let mut server = std::process::Command::new(&py)
        .args([
            script.as_str(),
            "server",
            "--topic",
            &topic,
            "--server",
            "s1",
            "--duration",
            "600",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {py}: {e}"))?;
    let mut line = String::new();
    let stdout = server.stdout.take().ok_or("no stdout")?;
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if !line.contains("\"ready\"") {
        let _ = server.kill();
        return Err(format!("python server did not start: {line:?}"));
    }
    let mut run = |extra: &[&str], mode: &str, c: usize| -> Result<(), String> {
        let out = std::process::Command::new(&py)
            .args([
                script.as_str(),
                "client",
                "bench",
                "--topic",
                &topic,
                "-n",
                &n.to_string(),
                "-c",
                &c.to_string(),
            ])
            .args(extra)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(text.lines().last().unwrap_or(""))
            .map_err(|e| format!("{e}: {text}"))?;
        let per_s = v["calls_per_s"]
            .as_f64()
            .or(v["casts_per_s"].as_f64())
            .unwrap_or(0.0);
        let f = harness::Figures {
            per_s,
            p50_ms: v["p50_ms"].as_f64().unwrap_or(f64::NAN),
            p99_ms: v["p99_ms"].as_f64().unwrap_or(f64::NAN),
            errors: v["errors"].as_u64().unwrap_or(0) as usize,
        };
        record(results, &f, "python oslo.messaging", mode, c);
        Ok(())
    };
    let r = CONCURRENCY
        .iter()
        .try_for_each(|c| run(&[], "call", *c))
        .and_then(|()| run(&["--cast"], "cast", 1));
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::process::Command::new(&py)
        .args([
            script.as_str(),
            "delete",
            "--queue",
            &topic,
            "--queue",
            &format!("{topic}.s1"),
        ])
        .output();
    r
}

fn main() {
    let n = env_n("NOVA_RS_BENCH_N", 10_000);
    let rounds = env_n("NOVA_RS_BENCH_ROUNDS", 3).max(1);
    let py_n = env_n("NOVA_RS_BENCH_PY_N", 2_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut results: Results = Vec::new();
    rt.block_on(async {
        // Interleaved rounds, medians reported: the machine's noise hits both alike.
        for round in 0..rounds {
            if let Err(e) = bare(&mut results, n, true).await {
                eprintln!("bare lapin run failed: {e}");
            }
            if let Err(e) = ours(&mut results, n).await {
                eprintln!("nova-rpc run failed: {e}");
            }
            if round == 0
                && let Err(e) = bare(&mut results, n, false).await
            {
                eprintln!("bare lapin run failed: {e}");
            }
        }
    });
    if let Err(e) = python(&mut results, py_n) {
        eprintln!("python anchor not measured: {e}");
    }
    let get = |name: &str, mode: &str, c: usize| -> Option<f64> {
        let mut v: Vec<f64> = results
            .iter()
            .filter(|r| r.0 == name && r.1 == mode && r.2 == c)
            .map(|r| r.3)
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    println!(
        "\nsummary (per second, median of the rounds; nova-rpc as % of bare lapin with the same connection layout; x Python oslo.messaging)"
    );
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    let ratio = |a: Option<f64>, b: Option<f64>, f: &dyn Fn(f64) -> String| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => f(a / b),
        _ => "-".to_string(),
    };
    for (mode, cs) in [("call", &CONCURRENCY[..]), ("cast", &[1][..])] {
        for &c in cs {
            let a = get("nova-rpc amqp", mode, c);
            let b = get("bare lapin", mode, c);
            let b1 = get("bare lapin 1conn", mode, c);
            let py = get("python oslo.messaging", mode, c);
            let pct = ratio(a, b, &|r| format!("{:.0}%", 100.0 * r));
            let x = ratio(a, py, &|r| format!("{r:.1}x"));
            println!(
                "{mode:5} c={c:<3} nova-rpc {:>7}  bare {:>7} (1 conn/side {:>7})  python {:>6}  | {pct:>5} of bare, {x:>6} python",
                fmt(a),
                fmt(b),
                fmt(b1),
                fmt(py)
            );
        }
    }
}
