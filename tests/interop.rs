//! Interop with the real Python oslo.messaging 18.3.1 on the real RabbitMQ.
//!
//! `../shared/oracles/oslo_peer.py` (Python, real library) and
//! `examples/rpc_peer.rs` (Rust, nova-rpc) have the same command line and
//! print the same JSON, so every check runs unchanged for every pairing:
//! Python client → Rust server, Rust client → Python server, and Rust ↔ Rust
//! (the Python ↔ Python baseline is `oslo_peer.py selftest`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Peer {
    Python,
    Rust,
}

fn shared() -> PathBuf {
    std::env::var_os("NOVA_RS_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn command(peer: Peer) -> Command {
    match peer {
        Peer::Python => {
            let python = std::env::var("NOVA_RS_PYTHON")
                .unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles/bin/python".into());
            let script = shared().join("oracles/oslo_peer.py");
            assert!(
                script.exists(),
                "{} not found: set NOVA_RS_SHARED",
                script.display()
            );
            assert!(
                Command::new(&python)
                    .args(["-c", "import oslo_messaging"])
                    .status()
                    .is_ok_and(|s| s.success()),
                "{python} cannot import oslo_messaging: run scripts/test (it creates the virtualenv) or set NOVA_RS_PYTHON"
            );
            let mut c = Command::new(python);
            c.arg(script);
            c
        }
        Peer::Rust => {
            let exe = std::env::current_exe().unwrap();
            let bin = exe
                .parent()
                .and_then(|p| p.parent())
                .unwrap()
                .join("examples/rpc_peer");
            assert!(
                bin.exists(),
                "{} not found: cargo build --features amqp --examples",
                bin.display()
            );
            Command::new(bin)
        }
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(peer: Peer, topic: &str, name: &str) -> Server {
    let mut child = command(peer)
        .args([
            "server",
            "--topic",
            topic,
            "--server",
            name,
            "--namespace",
            "peer",
            "--version",
            "1.3",
            "--extra-endpoint",
            "--duration",
            "300",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("peer starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.contains("\"ready\""),
        "{peer:?} server did not start: {line:?}"
    );
    Server(child)
}

/// One client operation; returns its JSON line.
fn client(peer: Peer, topic: &str, op: &str, method: &str, extra: &[&str]) -> Value {
    let mut cmd = command(peer);
    cmd.args(["client", op, method, "--topic", topic]);
    let has = |flag: &str| extra.contains(&flag);
    if !has("--namespace") {
        cmd.args(["--namespace", "peer"]);
    }
    if !has("--version") {
        cmd.args(["--version", "1.3"]);
    }
    if !has("--timeout") {
        cmd.args(["--timeout", "10"]);
    }
    cmd.args(extra);
    let out = cmd.output().expect("client runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|_| {
        panic!(
            "{peer:?} client {op} {method} printed no JSON: {text:?} stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn unique_topic() -> String {
    format!(
        "nova_rs_interop_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

fn cleanup(queues: &[String]) {
    let mut cmd = command(Peer::Python);
    cmd.arg("delete");
    for q in queues {
        cmd.args(["--queue", q]);
    }
    let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
}

fn error_class(r: &Value) -> &str {
    r["error"]["class"].as_str().unwrap_or("")
}

/// The checks of `oslo_peer.py selftest`, for one pairing.
fn run_checks(client_peer: Peer, server_peer: Peer) {
    let topic = unique_topic();
    let _alpha = start_server(server_peer, &topic, "alpha");
    let _beta = start_server(server_peer, &topic, "beta");
    let c = |op: &str, method: &str, extra: &[&str]| client(client_peer, &topic, op, method, extra);
    let ctx = format!("{client_peer:?} client -> {server_peer:?} server");

    let r = c(
        "call",
        "echo",
        &["--args", r#"{"value": {"a": [1, 2, "x"], "b": null}}"#],
    );
    assert_eq!(
        r["result"],
        json!({"a": [1, 2, "x"], "b": null}),
        "{ctx}: echo {r}"
    );
    let r = c("call", "add", &["--args", r#"{"a": 2, "b": 40}"#]);
    assert_eq!(r["result"], 42, "{ctx}: add {r}");
    let r = c("call", "whoami", &["--server", "beta"]);
    assert_eq!(r["result"]["server"], "beta", "{ctx}: directed call {r}");
    let r = c(
        "call",
        "echo",
        &["--args", r#"{"value": 1}"#, "--version", "1.0"],
    );
    assert_eq!(r["ok"], true, "{ctx}: lower minor accepted {r}");
    for (v, ns) in [("1.4", "peer"), ("2.0", "peer"), ("1.0", "nope")] {
        let r = c(
            "call",
            "echo",
            &[
                "--args",
                r#"{"value": 1}"#,
                "--version",
                v,
                "--namespace",
                ns,
            ],
        );
        assert_eq!(
            (r["ok"].clone(), error_class(&r)),
            (json!(false), "UnsupportedVersion"),
            "{ctx}: {v}/{ns} {r}"
        );
    }
    let r = c(
        "call",
        "echo",
        &["--args", r#"{"value": 1}"#, "--version", "1.4"],
    );
    assert_eq!(
        r["error"]["message"], "Endpoint does not support RPC version 1.4. Attempted method: echo",
        "{ctx}"
    );
    let r = c("call", "ping", &["--version", "1.0", "--namespace", ""]);
    assert_eq!(
        r["result"], "pong-default-namespace",
        "{ctx}: null namespace {r}"
    );
    let r = c("call", "no_such_method", &[]);
    assert_eq!(error_class(&r), "NoSuchMethod", "{ctx}: {r}");
    assert_eq!(
        r["error"]["message"], "Endpoint does not support RPC method no_such_method",
        "{ctx}"
    );

    let r = c(
        "call",
        "sleep",
        &["--args", r#"{"seconds": 3}"#, "--timeout", "1"],
    );
    assert_eq!(
        (error_class(&r), r["error"]["kind"].as_str()),
        ("MessagingTimeout", Some("timeout")),
        "{ctx}: {r}"
    );
    assert!(
        r["elapsed_ms"].as_f64().unwrap() < 2500.0,
        "{ctx}: timed out after about 1 s: {r}"
    );
    let r = c(
        "call",
        "sleep",
        &[
            "--args",
            r#"{"seconds": 5}"#,
            "--timeout",
            "30",
            "--call-monitor-timeout",
            "2",
        ],
    );
    assert_eq!(
        r["result"], 5.0,
        "{ctx}: heartbeats keep a 5 s call alive under a 2 s monitor: {r}"
    );

    let r = c(
        "call",
        "fail",
        &[
            "--args",
            r#"{"message": "boom", "code": 7}"#,
            "--exmods",
            "oslo_peer",
        ],
    );
    let e = &r["error"];
    assert_eq!(
        (e["class"].as_str(), e["reconstructed"].as_bool()),
        (Some("PeerError"), Some(true)),
        "{ctx}: {r}"
    );
    assert_eq!(
        (e["message"].as_str(), &e["kwargs"]),
        (Some("boom"), &json!({"code": 7})),
        "{ctx}: {r}"
    );
    let r = c(
        "call",
        "fail",
        &["--args", r#"{"message": "boom2"}"#, "--exmods", ""],
    );
    assert_eq!(
        (error_class(&r), r["error"]["reconstructed"].as_bool()),
        ("PeerError", Some(false)),
        "{ctx}: {r}"
    );
    let r = c(
        "call",
        "add",
        &["--args", r#"{"a": "x", "b": 1}"#, "--exmods", ""],
    );
    assert_eq!(
        (error_class(&r), r["error"]["reconstructed"].as_bool()),
        ("TypeError", Some(true)),
        "{ctx}: {r}"
    );
    assert_eq!(
        r["error"]["kind"], "remote",
        "{ctx}: a remote traceback came along: {r}"
    );

    let r = c(
        "call",
        "get_context",
        &[
            "--context",
            r#"{"user_id": "u-1", "roles": ["member"]}"#,
            "--call-monitor-timeout",
            "4",
        ],
    );
    let mut got = r["result"].clone();
    assert_eq!(
        got["client_timeout"].as_f64(),
        Some(4.0),
        "{ctx}: client_timeout is the call-monitor timeout: {r}"
    );
    got.as_object_mut().unwrap().remove("client_timeout");
    assert_eq!(
        got,
        json!({"user_id": "u-1", "roles": ["member"]}),
        "{ctx}: {r}"
    );

    for s in ["alpha", "beta"] {
        c("call", "clear_casts", &["--server", s]);
    }
    let r = c(
        "cast",
        "echo",
        &[
            "--args",
            r#"{"value": "cast-to-alpha"}"#,
            "--server",
            "alpha",
        ],
    );
    assert_eq!(r["ok"], true, "{ctx}: {r}");
    let r = c("fanout", "echo", &["--args", r#"{"value": "to-all"}"#]);
    assert_eq!(r["ok"], true, "{ctx}: {r}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = c("call", "get_casts", &["--server", "alpha"]);
        let b = c("call", "get_casts", &["--server", "beta"]);
        let args = |r: &Value| -> Vec<Value> {
            r["result"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|x| x["args"].clone())
                .collect()
        };
        let (aa, bb) = (args(&a), args(&b));
        let done = aa.contains(&json!({"value": "cast-to-alpha"}))
            && aa
                .iter()
                .filter(|v| **v == json!({"value": "to-all"}))
                .count()
                == 1
            && bb
                .iter()
                .filter(|v| **v == json!({"value": "to-all"}))
                .count()
                == 1
            && !bb.contains(&json!({"value": "cast-to-alpha"}));
        if done {
            let fan = a["result"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["args"] == json!({"value": "to-all"}))
                .unwrap()
                .clone();
            assert_eq!(fan["exchange"], format!("{topic}_fanout"), "{ctx}: {fan}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{ctx}: casts not recorded as expected: alpha {a} beta {b}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    drop((_alpha, _beta));
    cleanup(&[
        topic.clone(),
        format!("{topic}.alpha"),
        format!("{topic}.beta"),
    ]);
}

#[test]
fn python_client_rust_server() {
    run_checks(Peer::Python, Peer::Rust);
}

#[test]
fn rust_client_python_server() {
    run_checks(Peer::Rust, Peer::Python);
}

#[test]
fn rust_client_rust_server() {
    run_checks(Peer::Rust, Peer::Rust);
}

/// `sender` notifies, `receiver` listens; both formats for v2, and v1 from Python.
fn notifications(sender: Peer, receiver: Peer, driver: &str) {
    let topic = unique_topic();
    let mut listener = command(receiver)
        .args([
            "listen-notify",
            "--topics",
            &topic,
            "--priorities",
            "info,error",
            "--count",
            "2",
            "--duration",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(listener.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "{receiver:?} listener did not start"
        );
    }
    for (prio, event) in [
        ("info", "compute.instance.create.end"),
        ("error", "compute.instance.create.error"),
    ] {
        let out = command(sender)
            .args([
                "notify",
                "--topics",
                &topic,
                "--driver",
                driver,
                "--priority",
                prio,
                "--event-type",
                event,
            ])
            .args([
                "--publisher-id",
                "compute.host1",
                "--payload",
                r#"{"instance_id": "i-1", "n": [1.5, null]}"#,
            ])
            .args(["--context", r#"{"user_id": "u-1", "auth_token": "secret"}"#])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sender:?} notify failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = listener.wait_with_output().unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{sender:?} -> {receiver:?}: {lines:?}");
    let mut seen: Vec<(String, String)> = Vec::new();
    for n in &lines {
        assert_eq!(n["publisher_id"], "compute.host1");
        assert_eq!(
            n["payload"],
            json!({"instance_id": "i-1", "n": [1.5, null]})
        );
        assert_eq!(n["metadata"]["message_id"].as_str().unwrap().len(), 36);
        seen.push((
            n["priority"].as_str().unwrap().into(),
            n["event_type"].as_str().unwrap().into(),
        ));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("error".into(), "compute.instance.create.error".into()),
            ("info".into(), "compute.instance.create.end".into())
        ]
    );
    cleanup(&[format!("{topic}.info"), format!("{topic}.error")]);
}

#[test]
fn notifications_rust_to_python() {
    notifications(Peer::Rust, Peer::Python, "messagingv2");
}

#[test]
fn notifications_python_to_rust() {
    notifications(Peer::Python, Peer::Rust, "messagingv2");
}

#[test]
fn v1_notifications_python_to_rust() {
    notifications(Peer::Python, Peer::Rust, "messaging");
}
