//! nova's notifications, received by a real Python oslo.messaging
//! notification listener from RabbitMQ while nova-all runs on the memory
//! transport with `[oslo_messaging_notifications] transport_url` on the
//! broker; each versioned notification is compared with nova's own sample
//! for its event type (`doc/notification_samples`, vendored under
//! `tests/fixtures/notification_samples`): same keys, object names,
//! namespaces and versions, same JSON types (values that legitimately
//! differ — uuids, times, hosts, names — are not compared; a null on
//! either side passes for a nullable field).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::vhost::Vhost;

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/notification_samples")
}

/// Loads `file` (relative to the samples) with its `$ref`s resolved as
/// nova's sample tests do: the referenced document, with the referencing
/// object's other keys merged over it (recursively for objects).
fn load_sample(file: &Path) -> Value {
    let text =
        std::fs::read_to_string(file).unwrap_or_else(|e| panic!("sample {}: {e}", file.display()));
    let v: Value = serde_json::from_str(&text).unwrap();
    resolve(v, file.parent().unwrap())
}

fn resolve(v: Value, base: &Path) -> Value {
    match v {
        Value::Object(mut m) => {
            let reference = m.remove("$ref");
            let mut out = match reference {
                Some(Value::String(r)) => {
                    let path = base.join(r.trim_end_matches('#'));
                    load_sample(&path)
                }
                _ => Value::Object(Default::default()),
            };
            for (k, v) in m {
                let v = resolve(v, base);
                merge(&mut out, k, v);
            }
            out
        }
        Value::Array(a) => Value::Array(a.into_iter().map(|x| resolve(x, base)).collect()),
        other => other,
    }
}

fn merge(into: &mut Value, key: String, v: Value) {
    let Some(o) = into.as_object_mut() else {
        return;
    };
    match (o.get_mut(&key), v) {
        (Some(existing @ Value::Object(_)), Value::Object(new)) => {
            for (k, v) in new {
                merge(existing, k, v);
            }
        }
        (_, v) => {
            o.insert(key, v);
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// What differs between nova's `sample` and `ours` at `path`.
fn compare(sample: &Value, ours: &Value, path: &str, errors: &mut Vec<String>) {
    if sample.is_null() || ours.is_null() {
        return;
    }
    match (sample, ours) {
        (Value::Object(s), Value::Object(o)) if s.contains_key("nova_object.name") => {
            for k in [
                "nova_object.name",
                "nova_object.namespace",
                "nova_object.version",
            ] {
                if s.get(k) != o.get(k) {
                    errors.push(format!(
                        "{path}: {k} is {:?}, nova's is {:?}",
                        o.get(k),
                        s.get(k)
                    ));
                }
            }
            let own: BTreeSet<&String> = o.keys().collect();
            let novas: BTreeSet<&String> = s.keys().collect();
            if own != novas {
                errors.push(format!("{path}: envelope keys {own:?}, nova's {novas:?}"));
            }
            let (sd, od) = (&s["nova_object.data"], &o["nova_object.data"]);
            let (Some(sd), Some(od)) = (sd.as_object(), od.as_object()) else {
                errors.push(format!("{path}: nova_object.data is not a dict"));
                return;
            };
            // An image's properties are what that image sets.
            if s["nova_object.name"] == "ImageMetaPropsPayload" {
                return;
            }
            let own: BTreeSet<&String> = od.keys().collect();
            let novas: BTreeSet<&String> = sd.keys().collect();
            for missing in novas.difference(&own) {
                errors.push(format!("{path}: field {missing} missing"));
            }
            for extra in own.difference(&novas) {
                errors.push(format!("{path}: field {extra} is not nova's"));
            }
            for (k, sv) in sd {
                if let Some(ov) = od.get(k) {
                    compare(sv, ov, &format!("{path}.{k}"), errors);
                }
            }
        }
        (Value::Array(s), Value::Array(o)) => {
            if let (Some(s0), Some(o0)) = (s.first(), o.first()) {
                for (i, x) in o.iter().enumerate() {
                    compare(s0, x, &format!("{path}[{i}]"), errors);
                }
                let _ = o0;
            }
        }
        (s, o) if kind(s) != kind(o) => {
            errors.push(format!(
                "{path}: {} {o}, nova's is {} {s}",
                kind(o),
                kind(s)
            ));
        }
        _ => {}
    }
}

/// Compares one received notification with nova's sample for its event.
pub(crate) fn check_against_sample(n: &Value) -> Vec<String> {
    let event = n["event_type"].as_str().unwrap_or_default();
    let source = |v: &Value| {
        v.as_str()
            .unwrap_or_default()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    // nova's sample of a delete the API does itself (nothing scheduled).
    let api_delete =
        event.starts_with("instance.delete.") && source(&n["publisher_id"]) == "nova-api";
    let variant = if api_delete { "_not_scheduled" } else { "" };
    let file = samples_dir().join(format!("{}{variant}.json", event.replace('.', "-")));
    let sample = load_sample(&file);
    let mut errors = Vec::new();
    if sample["priority"] != n["priority"] {
        errors.push(format!(
            "priority {}, nova's {}",
            n["priority"], sample["priority"]
        ));
    }
    // A service notification comes from the service's own binary.
    let expected = if event.starts_with("service.") {
        n["payload"]["nova_object.data"]["binary"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    } else {
        source(&sample["publisher_id"])
    };
    // nova's conductor sends the first instance.update (service="conductor").
    let conductor_update =
        event == "instance.update" && source(&n["publisher_id"]) == "nova-conductor";
    if expected != source(&n["publisher_id"]) && !conductor_update {
        errors.push(format!(
            "publisher {}, nova's {}",
            n["publisher_id"], sample["publisher_id"]
        ));
    }
    compare(&sample["payload"], &n["payload"], "payload", &mut errors);
    errors
        .into_iter()
        .map(|e| format!("{event}: {e}"))
        .collect()
}

#[test]
fn the_comparison_catches_what_differs() {
    let sample = load_sample(&samples_dir().join("instance-power_off-end.json"));
    assert_eq!(
        sample["payload"]["nova_object.name"],
        "InstanceActionPayload"
    );
    assert_eq!(
        sample["payload"]["nova_object.data"]["flavor"]["nova_object.name"], "FlavorPayload",
        "$refs resolve"
    );
    let good = json!({"event_type": "instance.power_off.end", "priority": "INFO",
        "publisher_id": "nova-compute:other", "payload": sample["payload"].clone()});
    assert!(check_against_sample(&good).is_empty());
    let mut bad = good.clone();
    bad["payload"]["nova_object.version"] = json!("1.8");
    bad["payload"]["nova_object.data"]["locked"] = json!("no");
    bad["payload"]["nova_object.data"]["flavor"]["nova_object.data"]
        .as_object_mut()
        .unwrap()
        .remove("swap");
    bad["payload"]["nova_object.data"]["extra"] = json!(1);
    let errors = check_against_sample(&bad);
    assert_eq!(errors.len(), 4, "{errors:#?}");
}

/// The Python listener: its lines arrive on a channel.
pub(crate) struct Listener {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Listener {
    pub(crate) fn start(url: &str, topics: &[&str]) -> Listener {
        let python = std::env::var("NOVA_RS_PYTHON")
            .unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles/bin/python".into());
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/notification_listener.py"
        );
        let mut child = Command::new(&python)
            .arg(script)
            .arg(url)
            .arg("nova")
            .args(topics)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {python}: {e} (scripts/test creates the virtualenv)")
            });
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the listener starts");
        assert_eq!(ready, "READY");
        Listener { child, lines: rx }
    }

    /// Everything received until every one of `events` (of `topic`) has
    /// been seen at least once.
    pub(crate) fn until(&self, seen: &mut Vec<Value>, topic: &str, events: &[&str]) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let have: BTreeSet<&str> = seen
                .iter()
                .filter(|n| n["topic"] == topic)
                .filter_map(|n| n["event_type"].as_str())
                .collect();
            let missing: Vec<&&str> = events.iter().filter(|e| !have.contains(**e)).collect();
            if missing.is_empty() {
                return;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => seen.push(serde_json::from_str(&line).unwrap()),
                Err(_) => panic!("never received {missing:?} on {topic}; got {have:?}"),
            }
        }
    }
}

impl Listener {
    /// Reads on until one received notification satisfies `ok`.
    pub(crate) fn until_one(&self, seen: &mut Vec<Value>, what: &str, ok: impl Fn(&Value) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !seen.iter().any(&ok) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => seen.push(serde_json::from_str(&line).unwrap()),
                Err(_) => panic!("never received {what}"),
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        drop(self.child.stdin.take().map(|mut s| s.flush()));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A vhost of its own (`name-<uuid>`) on the real broker, a Python
/// listener on both notification topics there, and a cluster of
/// `computes` fake computes on the memory transport that sends both
/// notification formats to it, with `extra` options.
pub(crate) async fn notifying_cluster(
    name: &str,
    computes: usize,
    extra: &[(&str, &str, &str)],
) -> (Vhost, Listener, Cluster) {
    let amqp = std::env::var("NOVA_RS_AMQP_URL")
        .unwrap_or_else(|_| "rabbit://guest:guest@127.0.0.1:5672/".into());
    let vhost = Vhost::create(&amqp, &format!("{name}-{}", uuid::Uuid::new_v4().simple()));
    let listener = tokio::task::spawn_blocking({
        let url = vhost.url.clone();
        move || Listener::start(&url, &["versioned_notifications", "notifications"])
    })
    .await
    .unwrap();
    let c = {
        let mut opts = vec![
            ("DEFAULT", "transport_url", "memory://"),
            ("oslo_messaging_notifications", "driver", "messagingv2"),
            (
                "oslo_messaging_notifications",
                "transport_url",
                vhost.url.as_str(),
            ),
            ("notifications", "notification_format", "both"),
        ];
        opts.extend_from_slice(extra);
        Cluster::start(computes, &opts).await
    };
    (vhost, listener, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_python_listener_receives_novas_notifications_from_nova_all_on_the_memory_transport() {
    let (vhost, listener, c) = notifying_cluster(
        "nova-rs-notify",
        2,
        &[
            (
                "notifications",
                "notify_on_state_change",
                "vm_and_task_state",
            ),
            ("notifications", "bdms_in_notifications", "true"),
        ],
    )
    .await;
    // Flavors.
    let r = c.post("/v2.1/flavors", "admin", json!({"flavor": {"name": "notif.flavor", "ram": 256, "vcpus": 1, "disk": 1, "rxtx_factor": 2.0}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let fid = r.body["flavor"]["id"].as_str().unwrap().to_owned();
    let r = c
        .post(
            &format!("/v2.1/flavors/{fid}/os-extra_specs"),
            "admin",
            json!({"extra_specs": {"hw:numa_nodes": "1"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Key pairs: generated, imported, deleted.
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-keypairs",
            "demo",
            "2.91",
            Some(json!({"keypair": {"name": "k-gen"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let public = r.body["keypair"]["public_key"].as_str().unwrap().to_owned();
    let r = c
        .post(
            "/v2.1/os-keypairs",
            "demo",
            json!({"keypair": {"name": "k-imp", "public_key": public}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        c.delete("/v2.1/os-keypairs/k-imp", "demo").await.status,
        204
    );
    // A server's life.
    // The image says its architecture, as the image of nova's samples
    // (the request spec's image properties are in compute_task payloads).
    let r = c
        .http
        .patch(format!(
            "{}/v2/images/{}",
            c.all.api.image_url,
            nova_all::FAKE_IMAGE_ID
        ))
        .header("X-Auth-Token", c.token("admin").await)
        .header(
            "Content-Type",
            "application/openstack-images-v2.1-json-patch",
        )
        .body(json!([{"op": "add", "path": "/hw_architecture", "value": "x86_64"}]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = c
        .post(
            "/v2.1/servers",
            "demo",
            json!({"server": {"name": "notified", "flavorRef": "1", "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none", "key_name": "k-gen"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_owned();
    c.wait_status("demo", &id, "ACTIVE").await;
    let action = |body: Value| {
        let id = id.clone();
        let c = &c;
        async move {
            let r = c
                .post(&format!("/v2.1/servers/{id}/action"), "demo", body)
                .await;
            assert_eq!(r.status, 202, "{}", r.body);
        }
    };
    action(json!({"os-stop": null})).await;
    c.wait_status("demo", &id, "SHUTOFF").await;
    action(json!({"os-start": null})).await;
    c.wait_status("demo", &id, "ACTIVE").await;
    action(json!({"reboot": {"type": "SOFT"}})).await;
    c.wait_status("demo", &id, "ACTIVE").await;
    // Resizes: one confirmed, one reverted.
    action(json!({"resize": {"flavorRef": "2"}})).await;
    c.wait_status("demo", &id, "VERIFY_RESIZE").await;
    let r = c
        .post(
            &format!("/v2.1/servers/{id}/action"),
            "demo",
            json!({"confirmResize": null}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    c.wait_status("demo", &id, "ACTIVE").await;
    action(json!({"resize": {"flavorRef": "3"}})).await;
    c.wait_status("demo", &id, "VERIFY_RESIZE").await;
    action(json!({"revertResize": null})).await;
    c.wait_status("demo", &id, "ACTIVE").await;
    // A live migration.
    let r = c
        .call(
            Method::POST,
            &format!("/v2.1/servers/{id}/action"),
            "admin",
            "2.25",
            Some(json!({"os-migrateLive": {"host": null, "block_migration": "auto"}})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = c
            .get(
                &format!("/v2.1/os-migrations?instance_uuid={id}&migration_type=live-migration"),
                "admin",
            )
            .await;
        if r.body["migrations"][0]["status"] == "completed" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", r.body);
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    c.wait_status("demo", &id, "ACTIVE").await;
    // A resize no host can take: compute_task.migrate_server.error.
    let r = c
        .post(
            "/v2.1/flavors",
            "admin",
            json!({"flavor": {"name": "notif.huge", "ram": 64, "vcpus": 1, "disk": 1000000}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let huge = r.body["flavor"]["id"].as_str().unwrap().to_owned();
    action(json!({"resize": {"flavorRef": huge}})).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = c
            .get(
                &format!("/v2.1/os-migrations?instance_uuid={id}&migration_type=resize"),
                "admin",
            )
            .await;
        let failed = r.body["migrations"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["status"] == "error"));
        if failed {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", r.body);
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    c.wait_status("demo", &id, "ACTIVE").await;
    assert_eq!(
        c.delete(&format!("/v2.1/flavors/{huge}"), "admin")
            .await
            .status,
        202
    );
    assert_eq!(
        c.delete(&format!("/v2.1/servers/{id}"), "demo")
            .await
            .status,
        204
    );
    c.wait_gone("demo", &id).await;
    // A build the hypervisor fails (on every host): instance.create.error.
    for comp in &c.all.computes {
        comp.fake.as_ref().unwrap().set_faults(nova_virt::Faults {
            fail_spawn_for_flavor: Some("notif.flavor".into()),
            ..Default::default()
        });
    }
    let r = c
        .post(
            "/v2.1/servers",
            "admin",
            json!({"server": {"name": "broken", "flavorRef": fid, "imageRef": nova_all::FAKE_IMAGE_ID, "networks": "none"}}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let broken = r.body["server"]["id"].as_str().unwrap().to_owned();
    c.wait_status("admin", &broken, "ERROR").await;
    assert_eq!(
        c.delete(&format!("/v2.1/servers/{broken}"), "admin")
            .await
            .status,
        204
    );
    c.wait_gone("admin", &broken).await;
    assert_eq!(
        c.delete(&format!("/v2.1/flavors/{fid}"), "admin")
            .await
            .status,
        202
    );
    // A service disabled, enabled, and a compute's record deleted.
    let r = c
        .call(
            Method::GET,
            "/v2.1/os-services?binary=nova-compute",
            "admin",
            "2.53",
            None,
        )
        .await;
    let services = r.body["services"].as_array().unwrap().clone();
    let sid = services[0]["id"].as_str().unwrap().to_owned();
    for body in [
        json!({"status": "disabled", "disabled_reason": "maintenance"}),
        json!({"status": "enabled"}),
    ] {
        let r = c
            .call(
                Method::PUT,
                &format!("/v2.1/os-services/{sid}"),
                "admin",
                "2.53",
                Some(body),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let last = services.last().unwrap()["id"].as_str().unwrap().to_owned();
    let r = c
        .call(
            Method::DELETE,
            &format!("/v2.1/os-services/{last}"),
            "admin",
            "2.53",
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);

    let versioned = [
        "service.create",
        "flavor.create",
        "flavor.update",
        "flavor.delete",
        "keypair.create.start",
        "keypair.create.end",
        "keypair.import.start",
        "keypair.import.end",
        "keypair.delete.start",
        "keypair.delete.end",
        "instance.update",
        "instance.create.start",
        "instance.create.end",
        "instance.create.error",
        "compute_task.migrate_server.error",
        "instance.power_off.start",
        "instance.power_off.end",
        "instance.power_on.start",
        "instance.power_on.end",
        "instance.reboot.start",
        "instance.reboot.end",
        "instance.delete.start",
        "instance.shutdown.start",
        "instance.shutdown.end",
        "instance.delete.end",
        "service.update",
        "service.delete",
    ];
    let legacy = [
        "compute.instance.create.start",
        "compute.instance.create.end",
        "compute.instance.create.error",
        "compute.instance.update",
        "compute.instance.power_off.start",
        "compute.instance.power_off.end",
        "compute.instance.delete.start",
        "compute.instance.delete.end",
        "compute_task.migrate_server",
        "keypair.create.start",
        "keypair.import.end",
        "keypair.delete.end",
    ];
    let broken_id = broken.clone();
    let seen = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        listener.until(&mut seen, "versioned_notifications", &versioned);
        listener.until(&mut seen, "notifications", &legacy);
        // The failed build's end in ERROR is announced too.
        listener.until_one(&mut seen, "an instance.update to error", |n| {
            n["event_type"] == "instance.update"
                && n["topic"] == "versioned_notifications"
                && n["payload"]["nova_object.data"]["uuid"] == broken_id.as_str()
                && n["payload"]["nova_object.data"]["state_update"]["nova_object.data"]["state"]
                    == "error"
        });
        seen
    })
    .await
    .unwrap();
    let mut errors = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for n in seen
        .iter()
        .filter(|n| n["topic"] == "versioned_notifications")
    {
        *counts.entry(n["event_type"].as_str().unwrap()).or_default() += 1;
        errors.extend(check_against_sample(n));
    }
    assert!(
        errors.is_empty(),
        "differences from nova's samples:\n{}",
        errors.join("\n")
    );
    // What the payloads say is true.
    let find = |event: &str| {
        seen.iter()
            .find(|n| n["event_type"] == event && n["topic"] == "versioned_notifications")
            .unwrap()
    };
    let create_end = &find("instance.create.end")["payload"]["nova_object.data"];
    assert_eq!(create_end["uuid"], id.as_str());
    assert_eq!(create_end["display_name"], "notified");
    assert_eq!(create_end["state"], "active");
    assert_eq!(create_end["key_name"], "k-gen");
    assert_eq!(
        create_end["keypairs"][0]["nova_object.data"]["name"],
        "k-gen"
    );
    assert_eq!(create_end["flavor"]["nova_object.data"]["flavorid"], "1");
    assert_eq!(
        create_end["block_devices"],
        json!([]),
        "no volumes attached"
    );
    assert!(create_end["shares"].is_null(), "shares not asked for");
    assert!(
        create_end["request_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("req-")),
        "{create_end}"
    );
    let error = &find("instance.create.error");
    assert_eq!(error["priority"], "ERROR");
    assert_eq!(
        error["payload"]["nova_object.data"]["fault"]["nova_object.data"]["function_name"],
        "spawn"
    );
    let flavor = &find("flavor.create")["payload"]["nova_object.data"];
    assert_eq!(
        (flavor["name"].as_str(), flavor["memory_mb"].as_i64()),
        (Some("notif.flavor"), Some(256))
    );
    assert_eq!(
        find("flavor.create")["publisher_id"],
        format!("nova-api:{}", c.all.runner.host())
    );
    let import_start = &find("keypair.import.start")["payload"]["nova_object.data"];
    assert!(import_start["fingerprint"].is_null() && import_start["public_key"].is_string());
    let disabled = seen
        .iter()
        .filter(|n| n["event_type"] == "service.update")
        .map(|n| n["payload"]["nova_object.data"]["disabled"].clone())
        .collect::<Vec<_>>();
    assert_eq!(disabled, [json!(true), json!(false)]);
    assert!(
        counts["service.create"] >= 4,
        "conductor, scheduler and two computes: {counts:?}"
    );
    // Two resizes (each compared with nova's samples above).
    for (event, n) in [
        ("instance.resize_prep.start", 2),
        ("instance.resize_prep.end", 2),
        ("instance.resize.start", 2),
        ("instance.resize.end", 2),
        ("instance.resize_finish.start", 2),
        ("instance.resize_finish.end", 2),
        ("instance.resize_confirm.start", 1),
        ("instance.resize_confirm.end", 1),
        ("instance.resize_revert.start", 1),
        ("instance.resize_revert.end", 1),
        ("instance.live_migration_pre.start", 1),
        ("instance.live_migration_pre.end", 1),
        ("instance.live_migration_post.start", 1),
        ("instance.live_migration_post.end", 1),
        ("instance.live_migration_post_dest.start", 1),
        ("instance.live_migration_post_dest.end", 1),
    ] {
        assert_eq!(counts.get(event).copied(), Some(n), "{event}: {counts:?}");
    }
    // The failed resize: the instance stays active, the new flavor is in
    // the request spec, the reason is nova's NoValidHost.
    let task = find("compute_task.migrate_server.error");
    assert_eq!(task["priority"], "ERROR");
    assert!(
        task["publisher_id"]
            .as_str()
            .unwrap()
            .starts_with("nova-conductor:"),
        "{task}"
    );
    let task = &task["payload"]["nova_object.data"];
    assert_eq!(task["instance_uuid"], id.as_str());
    assert_eq!(task["state"], "active");
    assert_eq!(
        task["reason"]["nova_object.data"]["exception"],
        "NoValidHost"
    );
    let spec = &task["request_spec"]["nova_object.data"];
    assert_eq!(spec["instance_uuid"], id.as_str());
    assert_eq!(spec["flavor"]["nova_object.data"]["name"], "notif.huge");
    assert_eq!(spec["flavor"]["nova_object.data"]["root_gb"], 1000000);
    assert_eq!(spec["security_groups"], json!(["default"]));
    assert_eq!(spec["num_instances"], 1);
    assert_eq!(
        spec["image"]["nova_object.data"]["properties"]["nova_object.data"]["hw_architecture"],
        "x86_64"
    );
    let legacy_task = seen
        .iter()
        .find(|n| n["event_type"] == "compute_task.migrate_server")
        .unwrap();
    assert_eq!(legacy_task["priority"], "ERROR");
    assert_eq!(legacy_task["payload"]["instance_id"], id.as_str());
    assert_eq!(legacy_task["payload"]["method"], "migrate_server");
    // nova's legacy dict, through oslo's `to_primitive(convert_instances=True)`:
    // the Flavor object becomes the plain dict of its set fields.
    assert_eq!(
        legacy_task["payload"]["request_spec"]["instance_type"]["name"],
        "notif.huge"
    );
    let prep = seen
        .iter()
        .find(|n| n["event_type"] == "instance.resize_prep.start")
        .unwrap();
    assert_eq!(
        prep["payload"]["nova_object.data"]["new_flavor"]["nova_object.data"]["name"],
        "m1.small"
    );
    // The conductor announces the instance as it goes to its cell.
    let first_update = seen
        .iter()
        .find(|n| {
            n["event_type"] == "instance.update"
                && n["topic"] == "versioned_notifications"
                && n["payload"]["nova_object.data"]["uuid"] == id.as_str()
        })
        .unwrap();
    assert!(
        first_update["publisher_id"]
            .as_str()
            .unwrap()
            .starts_with("nova-conductor:"),
        "{first_update}"
    );
    assert_eq!(
        first_update["payload"]["nova_object.data"]["state_update"]["nova_object.data"]["state"],
        "building"
    );
    // The legacy twin of create.end carries nova's legacy fields.
    let legacy_end = seen
        .iter()
        .find(|n| n["event_type"] == "compute.instance.create.end")
        .unwrap();
    assert_eq!(legacy_end["payload"]["instance_id"], id.as_str());
    assert_eq!(legacy_end["payload"]["message"], "Success");
    assert!(
        legacy_end["publisher_id"]
            .as_str()
            .unwrap()
            .starts_with("compute.")
    );
    drop(seen);
    c.stop().await;
    drop(vhost);
}
