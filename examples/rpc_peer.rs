//! The Rust twin of `shared/oracles/oslo_peer.py`: the same modes, flags,
//! server methods and one-line JSON output, so either peer can stand in for
//! the other in interop tests.
//!
//! Run with: cargo run --features amqp --example rpc_peer -- server --topic demo --server s1 --duration 5
//! and:      cargo run --features amqp --example rpc_peer -- client call add --topic demo --args '{"a": 2, "b": 40}'

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use nova_rpc::{
    AmqpConfig, AmqpTransport, Call, Dispatcher, Endpoint, Error, NoArgs, NotificationListener,
    Notifier, NotifyDriver, Priority, RemoteError, RemoteKind, RequestContext, RpcClient,
    RpcServer, ServerConfig, Target, Transport, Version,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

const DEFAULT_URL: &str = "rabbit://guest:guest@127.0.0.1:5672/";

#[derive(Parser)]
#[command(about = "nova-rpc reference peer (twin of oslo_peer.py)")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Args, Clone)]
struct Common {
    /// transport URL
    #[arg(long, env = "OSLO_PEER_URL", default_value = DEFAULT_URL)]
    url: String,
    /// control exchange
    #[arg(long, default_value = "openstack")]
    exchange: String,
}

#[derive(Args, Clone)]
struct TargetArgs {
    #[arg(long, default_value = "oslo_peer")]
    topic: String,
    /// Target namespace ('' = None)
    #[arg(long, default_value = "")]
    namespace: String,
    #[arg(long, default_value = "1.3")]
    version: String,
}

impl TargetArgs {
    fn namespace(&self) -> Option<&str> {
        (!self.namespace.is_empty()).then_some(self.namespace.as_str())
    }
}

#[derive(Subcommand)]
enum Mode {
    /// run an RPC server
    Server {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value = "peer1")]
        server: String,
        /// exit after this many seconds (0 = until SIGINT/SIGTERM)
        #[arg(long, default_value_t = 0.0)]
        duration: f64,
        #[arg(long, default_value_t = 10000)]
        max_casts: usize,
        /// also expose 'ping' on an endpoint with namespace None, version 1.0
        #[arg(long)]
        extra_endpoint: bool,
    },
    /// RPC client operations
    Client {
        #[command(subcommand)]
        op: ClientOp,
    },
    /// send one notification
    Notify(NotifyArgs),
    /// print received notifications
    ListenNotify {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "notifications")]
        topics: String,
        #[arg(long)]
        pool: Option<String>,
        #[arg(long, default_value = "audit,debug,info,warn,error,critical,sample")]
        priorities: String,
        #[arg(long, default_value_t = 1)]
        count: usize,
        #[arg(long, default_value_t = 30.0)]
        duration: f64,
    },
}

#[derive(Args, Clone)]
struct OpArgs {
    method: String,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    target: TargetArgs,
    /// direct the message to one server
    #[arg(long)]
    server: Option<String>,
    /// method kwargs as a JSON object
    #[arg(long)]
    args: Option<String>,
    /// request context as a JSON object
    #[arg(long)]
    context: Option<String>,
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    #[arg(long)]
    call_monitor_timeout: Option<f64>,
    #[arg(long)]
    version_cap: Option<String>,
    /// remote exception modules whose errors count as rebuilt (as oslo's allowed_remote_exmods)
    #[arg(long, default_value = "oslo_peer")]
    exmods: String,
}

#[derive(Subcommand)]
enum ClientOp {
    Call(OpArgs),
    Cast(OpArgs),
    Fanout(OpArgs),
    Bench(BenchArgs),
}

#[derive(Args, Clone)]
struct NotifyArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value = "notifications")]
    topics: String,
    #[arg(long, default_value = "messagingv2")]
    driver: String,
    #[arg(long, default_value = "compute.peer1")]
    publisher_id: String,
    #[arg(long, default_value = "compute.instance.create.end")]
    event_type: String,
    #[arg(long, default_value = "info")]
    priority: String,
    #[arg(long, default_value = r#"{"instance_id": "i-1"}"#)]
    payload: String,
    #[arg(long)]
    context: Option<String>,
}

#[derive(Args, Clone)]
struct BenchArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long)]
    server: Option<String>,
    #[arg(short = 'n', long = "count", default_value_t = 2000)]
    count: usize,
    #[arg(short = 'c', long = "concurrency", default_value_t = 1)]
    concurrency: usize,
    #[arg(long, default_value_t = 16)]
    payload_size: usize,
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    #[arg(long)]
    cast: bool,
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    #[arg(long)]
    context: Option<String>,
}

fn print(v: &Value) {
    println!("{}", serde_json::to_string(v).unwrap_or_default());
}

fn parse_json(text: Option<&str>, what: &str) -> anyhow::Result<Map<String, Value>> {
    match text {
        None => Ok(Map::new()),
        Some(t) => match serde_json::from_str::<Value>(t)
            .with_context(|| format!("invalid JSON for {what}"))?
        {
            Value::Object(m) => Ok(m),
            Value::Null => Ok(Map::new()),
            _ => bail!("{what} must be a JSON object"),
        },
    }
}

async fn connect(common: &Common) -> anyhow::Result<Arc<AmqpTransport>> {
    let cfg = AmqpConfig::from_url(&common.url)?.control_exchange(common.exchange.clone());
    Ok(AmqpTransport::connect(cfg).await?)
}

/// Language-neutral description of an error seen by the client (as oslo_peer's describe_exception).
fn describe(e: &Error, exmods: &[&str]) -> Value {
    match e {
        Error::Timeout { .. } => json!({"kind": "timeout", "class": "MessagingTimeout",
            "module": "oslo_messaging.exceptions", "message": e.to_string()}),
        Error::Remote(r) => {
            let rebuilt = matches!(r.module.as_str(), "builtins" | "exceptions")
                || exmods.contains(&r.module.as_str());
            let mut d = json!({"kind": "remote", "reconstructed": rebuilt, "class": r.class,
                "module": if rebuilt { Value::from(r.module.clone()) } else { Value::Null },
                "message": r.message, "traceback": r.tb});
            if rebuilt {
                d["args"] = Value::from(r.args.clone());
                d["kwargs"] = Value::Object(r.kwargs.clone());
            }
            d
        }
        other => {
            json!({"kind": "local", "class": format!("{other:?}").split([' ', '(', '{']).next().unwrap_or(""),
            "module": "nova_rpc", "message": other.to_string()})
        }
    }
}

// ---------------------------------------------------------------------------- server

#[derive(Deserialize)]
struct EchoArgs {
    value: Value,
}
#[derive(Deserialize)]
struct AddArgs {
    a: Value,
    b: Value,
}
#[derive(Deserialize)]
struct SleepArgs {
    seconds: Value,
}
#[derive(Deserialize)]
struct FailArgs {
    message: String,
    #[serde(default)]
    code: Value,
}
#[derive(Deserialize)]
struct GetCastsArgs {
    #[serde(default)]
    clear: bool,
}

fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's `a + b` for JSON values.
fn py_add(a: &Value, b: &Value) -> Result<Value, RemoteError> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => Ok(i
                .checked_add(j)
                .map(Value::from)
                .unwrap_or_else(|| Value::from(i as f64 + j as f64))),
            _ => Ok(Value::from(
                x.as_f64().unwrap_or(0.0) + y.as_f64().unwrap_or(0.0),
            )),
        },
        (Value::String(x), Value::String(y)) => Ok(Value::from(format!("{x}{y}"))),
        (Value::Array(x), Value::Array(y)) => {
            Ok(Value::from(x.iter().chain(y).cloned().collect::<Vec<_>>()))
        }
        _ => Err(RemoteError::type_error(format!(
            "unsupported operand type(s) for +: '{}' and '{}'",
            py_type(a),
            py_type(b)
        ))),
    }
}

type Casts = Arc<Mutex<VecDeque<Value>>>;

fn record(casts: &Casts, max: usize, call: &Call, args: Value) {
    if call.expects_reply {
        return;
    }
    let rec = json!({
        "method": call.method, "args": args, "namespace": call.namespace,
        "version": call.version.to_string(), "context": call.context.as_map(),
        "exchange": &*call.exchange, "routing_key": &*call.routing_key,
        "received_at": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
    });
    let mut c = casts.lock().unwrap_or_else(|p| p.into_inner());
    if c.len() >= max {
        c.pop_front();
    }
    c.push_back(rec);
}

fn peer_endpoint(
    server: String,
    t: &TargetArgs,
    casts: Casts,
    max: usize,
) -> anyhow::Result<Endpoint> {
    let version: Version = t.version.parse()?;
    let ns = t.namespace().map(str::to_owned);
    let (c1, c2, c3, c4, c5) = (
        casts.clone(),
        casts.clone(),
        casts.clone(),
        casts.clone(),
        casts,
    );
    let whoami = json!({"server": server, "topic": t.topic, "namespace": ns, "version": t.version});
    Ok(Endpoint::new(t.namespace(), version)
        .method("echo", move |call, a: EchoArgs| {
            record(&c1, max, &call, json!({"value": a.value}));
            async move { Ok(a.value) }
        })
        .method("add", move |call, a: AddArgs| {
            record(&c2, max, &call, json!({"a": a.a, "b": a.b}));
            async move { py_add(&a.a, &a.b) }
        })
        .method("sleep", |_call, a: SleepArgs| async move {
            let secs = match &a.seconds {
                Value::Number(n) => n.as_f64().unwrap_or(0.0),
                Value::String(s) => s.parse().map_err(|_| {
                    RemoteError::new(
                        "ValueError",
                        "builtins",
                        format!("could not convert string to float: '{s}'"),
                    )
                })?,
                other => {
                    return Err(RemoteError::type_error(format!(
                        "float() argument must be a string or a number, not '{}'",
                        py_type(other)
                    )));
                }
            };
            let secs = secs.clamp(0.0, 600.0);
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            Ok(secs)
        })
        .method("fail", move |call, a: FailArgs| {
            record(
                &c3,
                max,
                &call,
                json!({"message": a.message, "code": a.code}),
            );
            async move {
                Err::<Value, _>(
                    RemoteError::new("PeerError", "oslo_peer", a.message)
                        .with_kwarg("code", a.code),
                )
            }
        })
        .method("whoami", move |_call, _: NoArgs| {
            let w = whoami.clone();
            async move { Ok(w) }
        })
        .method("get_context", |call, _: NoArgs| async move {
            let mut m = call.context.into_map();
            m.insert(
                "client_timeout".into(),
                call.client_timeout.map(Value::from).unwrap_or(Value::Null),
            );
            Ok(m)
        })
        .method("get_casts", move |_call, a: GetCastsArgs| {
            let mut c = c4.lock().unwrap_or_else(|p| p.into_inner());
            let out: Vec<Value> = c.iter().cloned().collect();
            if a.clear {
                c.clear();
            }
            async move { Ok(out) }
        })
        .method("clear_casts", move |_call, _: NoArgs| {
            let mut c = c5.lock().unwrap_or_else(|p| p.into_inner());
            let n = c.len();
            c.clear();
            async move { Ok(n) }
        }))
}

async fn run_server(
    common: Common,
    target: TargetArgs,
    server: String,
    duration: f64,
    max_casts: usize,
    extra_endpoint: bool,
) -> anyhow::Result<i32> {
    let transport = connect(&common).await?;
    let casts: Casts = Arc::default();
    let mut endpoints = vec![peer_endpoint(server.clone(), &target, casts, max_casts)?];
    if extra_endpoint {
        endpoints.push(
            Endpoint::new(None, Version::new(1, 0)).method("ping", |_c, _: NoArgs| async move {
                Ok("pong-default-namespace")
            }),
        );
    }
    let rpc_target = Target::topic(&target.topic)
        .with_server(&server)
        .with_exchange(&common.exchange);
    let srv = RpcServer::start_with(
        transport.clone(),
        rpc_target,
        Dispatcher::new(endpoints),
        ServerConfig::default(),
    )
    .await?;
    print(
        &json!({"ready": true, "pid": std::process::id(), "topic": target.topic, "server": server,
        "exchange": common.exchange, "namespace": target.namespace(), "version": target.version,
        "executor": "tokio"}),
    );
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    };
    if duration > 0.0 {
        tokio::select! {
            r = stop => r?,
            _ = tokio::time::sleep(Duration::from_secs_f64(duration)) => {}
        }
    } else {
        stop.await?;
    }
    srv.stop().await;
    transport.close().await;
    Ok(0)
}

// ---------------------------------------------------------------------------- client

fn client_for(
    transport: Arc<dyn Transport>,
    common: &Common,
    t: &TargetArgs,
    server: &Option<String>,
) -> anyhow::Result<RpcClient> {
    let mut target = Target::topic(&t.topic)
        .with_exchange(&common.exchange)
        .with_version(t.version.parse()?);
    target.namespace = t.namespace().map(str::to_owned);
    target.server = server.clone();
    Ok(RpcClient::new(transport, target))
}

async fn run_op(op: &str, a: OpArgs) -> anyhow::Result<i32> {
    let margs = parse_json(a.args.as_deref(), "--args")?;
    let ctx = RequestContext::from_map(parse_json(a.context.as_deref(), "--context")?);
    let transport = connect(&a.common).await?;
    let mut client = client_for(transport.clone(), &a.common, &a.target, &a.server)?
        .timeout(Duration::from_secs_f64(a.timeout))
        .call_monitor_timeout(a.call_monitor_timeout.map(Duration::from_secs_f64));
    if let Some(cap) = &a.version_cap {
        client = client.version_cap(Some(cap.parse()?));
    }
    if op == "fanout" {
        client = client.fanout(true);
    }
    let exmods: Vec<&str> = a.exmods.split(',').filter(|s| !s.is_empty()).collect();
    let mut out = json!({"op": op, "method": a.method, "topic": a.target.topic, "server": a.server,
        "exchange": a.common.exchange, "namespace": a.target.namespace(), "version": a.target.version});
    let t0 = Instant::now();
    let r = if op == "call" {
        client
            .call_value(&ctx, &a.method, Value::Object(margs))
            .await
    } else {
        client
            .cast(&ctx, &a.method, Value::Object(margs))
            .await
            .map(|()| Value::Null)
    };
    match r {
        Ok(v) => {
            out["ok"] = true.into();
            out["result"] = v;
        }
        Err(e) => {
            out["ok"] = false.into();
            out["error"] = describe(&e, &exmods);
        }
    }
    out["elapsed_ms"] = ((t0.elapsed().as_secs_f64() * 1e6).round() / 1e3).into();
    print(&out);
    transport.close().await;
    Ok(if out["ok"] == true { 0 } else { 1 })
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let k = (sorted.len() - 1) as f64 * p / 100.0;
    let f = k.floor() as usize;
    let c = (f + 1).min(sorted.len() - 1);
    Some(sorted[f] + (sorted[c] - sorted[f]) * (k - f as f64))
}

async fn run_bench(b: BenchArgs) -> anyhow::Result<i32> {
    let BenchArgs {
        common,
        target,
        server,
        count: n,
        concurrency: c,
        payload_size,
        warmup,
        cast,
        timeout,
        context,
    } = b;
    if n == 0 || n > 1_000_000 || c == 0 || c > 256 {
        bail!("bench: count must be 1..1000000, concurrency 1..256");
    }
    let ctx = RequestContext::from_map(parse_json(context.as_deref(), "--context")?);
    let transport = connect(&common).await?;
    let client = client_for(transport.clone(), &common, &target, &server)?
        .timeout(Duration::from_secs_f64(timeout));
    let payload = Value::from("x".repeat(payload_size));
    for _ in 0..warmup {
        client
            .call_value(&ctx, "echo", json!({"value": payload}))
            .await?;
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t_start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..c {
        let (client, ctx, payload, next) =
            (client.clone(), ctx.clone(), payload.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = Vec::new();
            let args = json!({"value": payload});
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                let t0 = Instant::now();
                let r = if cast {
                    client
                        .cast(&ctx, "echo", &args)
                        .await
                        .map(|()| payload.clone())
                } else {
                    client.call_value(&ctx, "echo", args.clone()).await
                };
                match r {
                    Ok(v) if v == payload => lat.push(t0.elapsed().as_secs_f64()),
                    Ok(_) => errors.push(json!({"kind": "local", "message": "bad echo"})),
                    Err(e) => errors.push(describe(&e, &[])),
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors.extend(e);
    }
    let elapsed = t_start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let ms = |v: Option<f64>| v.map(|x| (x * 1e6).round() / 1e3);
    let rate = if elapsed > 0.0 {
        ((lat.len() as f64 / elapsed) * 10.0).round() / 10.0
    } else {
        0.0
    };
    let mut out = json!({"op": "bench", "mode": if cast { "cast" } else { "call" }, "count": n, "concurrency": c,
        "payload_bytes": payload_size, "ok": errors.is_empty(), "errors": errors.len(),
        "first_errors": errors.iter().take(3).cloned().collect::<Vec<_>>(),
        "elapsed_s": (elapsed * 1e4).round() / 1e4,
        "p50_ms": ms(percentile(&lat, 50.0)), "p90_ms": ms(percentile(&lat, 90.0)),
        "p99_ms": ms(percentile(&lat, 99.0)), "max_ms": ms(lat.last().copied()), "min_ms": ms(lat.first().copied())});
    out[if cast { "casts_per_s" } else { "calls_per_s" }] = rate.into();
    print(&out);
    transport.close().await;
    Ok(if errors.is_empty() { 0 } else { 1 })
}

// ---------------------------------------------------------------------------- notifications

async fn run_notify(a: NotifyArgs) -> anyhow::Result<i32> {
    let NotifyArgs {
        common,
        topics,
        driver,
        publisher_id,
        event_type,
        priority,
        payload,
        context,
    } = a;
    let transport = connect(&common).await?;
    let driver = match driver.as_str() {
        "messagingv2" => NotifyDriver::MessagingV2,
        "messaging" => NotifyDriver::Messaging,
        other => bail!("unknown driver {other:?}: use messagingv2 or messaging"),
    };
    let topic_list: Vec<&str> = topics.split(',').collect();
    let notifier = Notifier::new(transport.clone(), publisher_id, &topic_list).driver(driver);
    let ctx = RequestContext::from_map(parse_json(context.as_deref(), "--context")?);
    let payload: Value = serde_json::from_str(&payload).context("invalid JSON for --payload")?;
    let prio: Priority = priority.parse()?;
    notifier.notify(&ctx, prio, &event_type, payload).await?;
    print(
        &json!({"op": "notify", "ok": true, "exchange": common.exchange, "topics": topic_list,
        "priority": priority, "event_type": event_type, "driver": if driver == NotifyDriver::Messaging { "messaging" } else { "messagingv2" }}),
    );
    transport.close().await;
    Ok(0)
}

async fn run_listen(
    common: Common,
    topics: String,
    pool: Option<String>,
    priorities: String,
    count: usize,
    duration: f64,
) -> anyhow::Result<i32> {
    let transport = connect(&common).await?;
    let prios: Vec<Priority> = priorities
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let topic_list: Vec<&str> = topics.split(',').collect();
    let mut listener = NotificationListener::start(
        transport.clone(),
        Some(&common.exchange),
        &topic_list,
        &prios,
        pool.as_deref(),
    )
    .await?;
    eprintln!("listening for notifications");
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(duration);
    while count == 0 || got < count {
        let Ok(Some(n)) = tokio::time::timeout_at(deadline, listener.next()).await else {
            break;
        };
        let msg = &n.notification;
        let mut ctx = (*msg.context).clone();
        ctx.insert("client_timeout".into(), Value::Null);
        print(
            &json!({"priority": msg.priority.to_ascii_lowercase(), "publisher_id": msg.publisher_id,
            "event_type": msg.event_type, "payload": msg.payload, "context": ctx,
            "metadata": {"message_id": msg.message_id, "timestamp": msg.timestamp}}),
        );
        got += 1;
    }
    listener.close();
    transport.close().await;
    Ok(if got > 0 { 0 } else { 1 })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match Cli::parse().mode {
        Mode::Server {
            common,
            target,
            server,
            duration,
            max_casts,
            extra_endpoint,
        } => run_server(common, target, server, duration, max_casts, extra_endpoint).await?,
        Mode::Client { op } => match op {
            ClientOp::Call(a) => run_op("call", a).await?,
            ClientOp::Cast(a) => run_op("cast", a).await?,
            ClientOp::Fanout(a) => run_op("fanout", a).await?,
            ClientOp::Bench(b) => run_bench(b).await?,
        },
        Mode::Notify(a) => run_notify(a).await?,
        Mode::ListenNotify {
            common,
            topics,
            pool,
            priorities,
            count,
            duration,
        } => run_listen(common, topics, pool, priorities, count, duration).await?,
    };
    let _ = RemoteKind::Other;
    std::process::exit(code);
}
