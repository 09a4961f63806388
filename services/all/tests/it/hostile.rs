//! Hostile input over real sockets: what a client that lies about its
//! body or uses the wrong method gets (nova's fault bodies), and bodies
//! that must be refused before anything is written.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::cluster::Cluster;

/// Sends `head` + `body` on a fresh connection, half-closes it, and reads
/// the whole answer: (status, body).
async fn raw(c: &Cluster, head: &str, body: &[u8]) -> (u16, String) {
    let addr = c
        .all
        .api
        .compute_url
        .trim_start_matches("http://")
        .to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_owned();
    (status, body)
}

fn fault_name(body: &str) -> String {
    // A chunked body may carry chunk sizes around the JSON.
    let start = body.find('{').unwrap_or(0);
    let end = body.rfind('}').map_or(body.len(), |e| e + 1);
    let v: Value = serde_json::from_str(&body[start..end]).unwrap_or(Value::Null);
    v.as_object()
        .and_then(|o| o.keys().next().cloned())
        .unwrap_or_default()
}

#[tokio::test]
async fn lying_clients_and_wrong_methods_get_nova_faults() {
    let c = Cluster::start(1, &[]).await;
    let tok = c.token("demo").await;
    // A body shorter than its Content-Length: the client went away.
    let head = format!(
        "POST /v2.1/os-keypairs HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {tok}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    );
    let (status, body) = raw(&c, &head, b"{\"keypair\": {\"name\": \"trunc").await;
    assert_ne!(status, 413, "a truncated body is not too large: {body}");
    if status != 0 {
        assert_eq!(status, 400, "{body}");
        assert_eq!(fault_name(&body), "badRequest", "{body}");
    }
    // The same with a chunked body cut in the middle of a chunk.
    let head = format!(
        "POST /v2.1/os-keypairs HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {tok}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let (status, body) = raw(&c, &head, b"40\r\n{\"keypair\": {\"name\": \"trunc").await;
    assert_ne!(status, 413, "a truncated body is not too large: {body}");
    let r = c.get("/v2.1/os-keypairs", "demo").await;
    assert_eq!(r.body["keypairs"], json!([]), "nothing was written");

    // Wrong methods: nova's badMethod fault, with a body.
    for (m, path) in [
        ("PATCH", "/v2.1/servers"),
        ("POST", "/v2.1/flavors/detail"),
        ("DELETE", "/v2.1/os-hypervisors"),
        ("POST", "/"),
        ("PUT", "/v2.1/"),
    ] {
        let head = format!(
            "{m} {path} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {tok}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let (status, body) = raw(&c, &head, b"").await;
        assert_eq!(status, 405, "{m} {path}: {body}");
        assert_eq!(fault_name(&body), "badMethod", "{m} {path}: {body:?}");
    }
    let r = c
        .call(Method::GET, "/v2.1/servers", "demo", "3.0", None)
        .await;
    assert_eq!(r.status, 406);
    assert_eq!(r.fault().0, "computeFault");
    c.stop().await;
}

/// The compute API's routes: `(path template, methods)` from the route
/// table the router is built from (`nova_api::V21_ROUTES`), so that a new
/// route is covered without editing this test;
/// [`every_route_refuses_hostile_input`] checks the list against the
/// running router (every other method is 405).
fn compute_routes() -> Vec<(String, Vec<&'static str>)> {
    nova_api::V21_ROUTES
        .iter()
        .map(|r| (r.path.to_owned(), r.methods.to_vec()))
        .collect()
}

/// nova's fault name for a status (`Fault._fault_names`).
fn nova_fault_name(status: u16) -> &'static str {
    match status {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 => "overLimit",
        415 => "badMediaType",
        429 => "overLimit",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    }
}

struct Hostile<'a> {
    c: &'a Cluster,
    tok: String,
    sent: usize,
}

impl Hostile<'_> {
    /// Sends one request (as admin, who gets past every policy check to
    /// the parsing); checks no 5xx and, for an error, nova's fault body.
    /// Returns the status.
    async fn send(&mut self, method: &str, path: &str, mv: &[u8], body: Option<Vec<u8>>) -> u16 {
        self.sent += 1;
        let mut version = b"compute ".to_vec();
        version.extend_from_slice(mv);
        let mut rb = self
            .c
            .http
            .request(
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                self.c.url(path),
            )
            .header("X-Auth-Token", &self.tok)
            .header(
                "OpenStack-API-Version",
                reqwest::header::HeaderValue::from_bytes(&version).unwrap(),
            );
        if let Some(b) = body {
            rb = rb.header("Content-Type", "application/json").body(b);
        }
        let what = format!(
            "{method} {} at {}",
            path.chars().take(200).collect::<String>(),
            String::from_utf8_lossy(mv)
        );
        let trace = std::env::var_os("NOVA_RS_HOSTILE_TRACE").is_some();
        if trace {
            eprintln!("hostile: {what}");
        }
        let r = rb.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        if trace && status < 300 && method != "get" {
            eprintln!("hostile: {status} {what}");
        }
        assert!(status < 500, "{what}: {status} {text}");
        if status >= 400 {
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{what}: {status} without a JSON fault: {text:?}"));
            let (name, inner) = v
                .as_object()
                .filter(|o| o.len() == 1)
                .and_then(|o| o.iter().next())
                .unwrap_or_else(|| panic!("{what}: {status} not a fault body: {text}"));
            assert_eq!(name, nova_fault_name(status), "{what}: {text}");
            assert_eq!(inner["code"], json!(status), "{what}: {text}");
            assert!(inner["message"].is_string(), "{what}: {text}");
        }
        status
    }
}

/// What the hostile requests must not change: every resource the API
/// writes, as the admin sees it (volatile fields such as heartbeats left
/// out).
async fn snapshot(c: &Cluster, server: &str, flavor: &str, demo_project: &str) -> Value {
    let mut out = serde_json::Map::new();
    let pick = |v: &Value, keys: &[&str]| -> Value {
        let mut m = serde_json::Map::new();
        for k in keys {
            m.insert((*k).to_owned(), v[*k].clone());
        }
        Value::Object(m)
    };
    let servers = c
        .call(
            Method::GET,
            "/v2.1/servers/detail?all_tenants=1",
            "admin",
            "2.100",
            None,
        )
        .await;
    let mut list: Vec<Value> = servers.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            pick(
                s,
                &[
                    "id",
                    "name",
                    "status",
                    "OS-EXT-STS:task_state",
                    "metadata",
                    "tags",
                    "description",
                    "locked",
                    "locked_reason",
                    "flavor",
                    "image",
                    "key_name",
                    "OS-EXT-SRV-ATTR:hostname",
                    "accessIPv4",
                    "accessIPv6",
                ],
            )
        })
        .collect();
    list.sort_by_key(|s| s["id"].to_string());
    out.insert("servers".into(), Value::Array(list));
    for (key, path, user) in [
        (
            "flavors",
            "/v2.1/flavors/detail?is_public=None".to_owned(),
            "admin",
        ),
        (
            "access",
            format!("/v2.1/flavors/{flavor}/os-flavor-access"),
            "admin",
        ),
        ("keypairs_admin", "/v2.1/os-keypairs".to_owned(), "admin"),
        ("keypairs_demo", "/v2.1/os-keypairs".to_owned(), "demo"),
        ("aggregates", "/v2.1/os-aggregates".to_owned(), "admin"),
        (
            "groups",
            "/v2.1/os-server-groups?all_projects=1".to_owned(),
            "admin",
        ),
        (
            "quota",
            format!("/v2.1/os-quota-sets/{demo_project}"),
            "admin",
        ),
        (
            "quota_class",
            "/v2.1/os-quota-class-sets/default".to_owned(),
            "admin",
        ),
        ("migrations", "/v2.1/os-migrations".to_owned(), "admin"),
        (
            "actions",
            format!("/v2.1/servers/{server}/os-instance-actions"),
            "admin",
        ),
        (
            "password",
            format!("/v2.1/servers/{server}/os-server-password"),
            "admin",
        ),
    ] {
        let mut r = c.call(Method::GET, &path, user, "2.100", None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        if key == "actions"
            && let Some(list) = r.body["instanceActions"].as_array_mut()
        {
            // nova records an interface action before the compute looks at
            // the port or network it names (`_record_action_start` in
            // `attach_interface` / `detach_interface`), so a refused attach
            // or detach of a well-formed but unknown port leaves its
            // action, there as here (a detach's is recorded by a cast,
            // possibly after its route's batch).
            list.retain(|a| {
                !matches!(
                    a["action"].as_str(),
                    Some("attach_interface" | "detach_interface")
                )
            });
        }
        out.insert(key.into(), r.body);
    }
    let services = c
        .call(Method::GET, "/v2.1/os-services", "admin", "2.100", None)
        .await;
    let mut svcs: Vec<Value> = services.body["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            pick(
                s,
                &[
                    "id",
                    "binary",
                    "host",
                    "status",
                    "disabled_reason",
                    "forced_down",
                    "zone",
                ],
            )
        })
        .collect();
    svcs.sort_by_key(|s| s["id"].to_string());
    out.insert("services".into(), Value::Array(svcs));
    let images = c
        .call(Method::GET, "/v2.1/images/detail", "admin", "2.35", None)
        .await;
    assert_eq!(images.status, 200, "{}", images.body);
    let imgs: Vec<Value> = images.body["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| pick(i, &["id", "name", "metadata", "status"]))
        .collect();
    out.insert("images".into(), Value::Array(imgs));
    // Aggregates and flavors carry their update time: keep the rest.
    for v in out.values_mut() {
        strip_times(v);
    }
    Value::Object(out)
}

fn strip_times(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !matches!(k.as_str(), "updated_at" | "updated" | "links"));
            m.values_mut().for_each(strip_times);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

/// A JSON document nested `depth` levels.
fn deep(depth: usize, open: &str, close: &str) -> Vec<u8> {
    let mut s = open.repeat(depth);
    s.push_str(&close.repeat(depth));
    s.into_bytes()
}

/// The top-level keys a write route's handler reads (wrong values under
/// them reach the schema or the handler's own checks).
fn body_keys(path: &str) -> Vec<&'static str> {
    let last = path.rsplit('/').find(|s| !s.starts_with('{')).unwrap_or("");
    let tail_is_param = path.ends_with('}');
    match (last, tail_is_param) {
        ("servers", _) => vec!["server", "os:scheduler_hints"],
        ("action", _) if path.starts_with("/servers/{id}/migrations") => vec!["force_complete"],
        ("action", _) if path.starts_with("/servers") => vec![
            "reboot",
            "resize",
            "rebuild",
            "createImage",
            "createBackup",
            "changePassword",
            "os-resetState",
            "os-getConsoleOutput",
            "rescue",
            "evacuate",
            "os-migrateLive",
            "addSecurityGroup",
            "os-start",
            "bogus",
        ],
        ("action", _) if path.starts_with("/flavors") => {
            vec!["addTenantAccess", "removeTenantAccess"]
        }
        ("action", _) => vec!["add_host", "remove_host", "set_metadata"],
        ("metadata", true) => vec!["meta"],
        ("metadata", false) => vec!["metadata"],
        ("tags", _) => vec!["tags"],
        ("remote-consoles", _) => vec!["remote_console"],
        ("flavors", _) => vec!["flavor"],
        ("os-extra_specs", false) => vec!["extra_specs"],
        ("os-keypairs", _) => vec!["keypair"],
        ("os-services", _) => vec!["status", "disabled_reason", "forced_down"],
        ("os-aggregates", _) => vec!["aggregate"],
        ("os-server-groups", _) => vec!["server_group"],
        ("os-server-external-events", _) => vec!["events"],
        ("os-quota-sets", _) => vec!["quota_set"],
        ("os-quota-class-sets", _) => vec!["quota_class_set"],
        ("os-hosts", _) => vec!["status", "maintenance_mode"],
        _ => vec![],
    }
}

/// Every compute route, every method: wrong types, huge numbers, control
/// characters, deep nesting, large bodies, bad ids, bad query parameters
/// and bad microversion headers. No 5xx, nova's fault bodies, and
/// nothing written (the resources before and after each route's batch
/// are the same).
#[tokio::test]
async fn every_route_refuses_hostile_input() {
    // With nova-all's network service, as it runs by default: the
    // interface, security group and floating IP routes reach it.
    let c = Cluster::start(
        1,
        &[
            ("network", "enabled", "true"),
            ("network", "bind_port", "0"),
            ("network", "external_network_name", "public"),
        ],
    )
    .await;
    let routes = compute_routes();
    assert!(routes.len() > 60, "{} routes parsed", routes.len());
    assert!(routes.contains(&("/servers".to_owned(), vec!["get", "post"])));

    // Real resources for the ids in paths.
    let server = c.boot("demo", "hostile-target", "1").await;
    c.wait_status("demo", &server, "ACTIVE").await;
    let r = c
        .call(
            Method::PUT,
            &format!("/v2.1/servers/{server}/tags/t1"),
            "demo",
            "2.100",
            None,
        )
        .await;
    assert!(r.status < 300, "{}", r.body);
    let r = c
        .post(
            &format!("/v2.1/servers/{server}/metadata"),
            "demo",
            json!({"metadata": {"k1": "v1"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .post(
            "/v2.1/flavors",
            "admin",
            json!({"flavor": {"name": "hostile-private", "ram": 64, "vcpus": 1, "disk": 1,
                   "id": "hostile-private", "os-flavor-access:is_public": false}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let flavor = "hostile-private".to_owned();
    let r = c
        .post(
            &format!("/v2.1/flavors/{flavor}/os-extra_specs"),
            "admin",
            json!({"extra_specs": {"hw:cpu_policy": "shared"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .call(
            Method::POST,
            "/v2.1/os-keypairs",
            "admin",
            "2.10",
            Some(json!({"keypair": {"name": "hostile-kp"}})),
        )
        .await;
    assert!(r.status < 300, "{}", r.body);
    let r = c
        .post(
            "/v2.1/os-aggregates",
            "admin",
            json!({"aggregate": {"name": "hostile-agg"}}),
        )
        .await;
    assert!(r.status < 300, "{}", r.body);
    let aggregate = r.body["aggregate"]["id"].to_string();
    let r = c
        .post(
            "/v2.1/os-server-groups",
            "admin",
            json!({"server_group": {"name": "hostile-group", "policy": "anti-affinity"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let group = r.body["server_group"]["id"].as_str().unwrap().to_owned();
    let r = c.get("/v2.1/os-services", "admin").await;
    let service = r.body["services"][0]["id"].as_str().unwrap().to_owned();
    let host = r.body["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["binary"] == "nova-compute")
        .map(|s| s["host"].as_str().unwrap().to_owned())
        .unwrap();
    let r = c.get("/v2.1/os-hypervisors", "admin").await;
    let hypervisor = r.body["hypervisors"][0]["id"].as_str().unwrap().to_owned();
    let r = c.get("/v2.1/limits", "demo").await;
    assert_eq!(r.status, 200);
    let actions = c
        .get(
            &format!("/v2.1/servers/{server}/os-instance-actions"),
            "admin",
        )
        .await;
    let request_id = actions.body["instanceActions"][0]["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let demo_project =
        c.get(&format!("/v2.1/servers/{server}"), "demo").await.body["server"]["tenant_id"]
            .as_str()
            .unwrap()
            .to_owned();
    let real = |path: &str, param: &str| -> String {
        match param {
            "id" if path.starts_with("/servers") => server.clone(),
            "id" if path.starts_with("/flavors") => flavor.clone(),
            "id" if path.starts_with("/os-aggregates") => aggregate.clone(),
            "id" if path.starts_with("/os-server-groups") => group.clone(),
            "id" if path.starts_with("/os-services") => service.clone(),
            "id" if path.starts_with("/os-hypervisors") => hypervisor.clone(),
            "id" if path.starts_with("/images") => nova_all::FAKE_IMAGE_ID.to_owned(),
            "key" if path.starts_with("/servers") => "k1".into(),
            "key" if path.starts_with("/flavors") => "hw:cpu_policy".into(),
            "tag" => "t1".into(),
            "name" => "hostile-kp".into(),
            "project" => demo_project.clone(),
            "class" => "default".into(),
            "host" => host.clone(),
            "request_id" => request_id.clone(),
            "alias" => "os-keypairs".into(),
            "before" => "2020-01-01 00:00:00".into(),
            "migration_id" => "1".into(),
            _ => "x".into(),
        }
    };
    let bad_ids: Vec<String> = vec![
        "0".into(),
        "-1".into(),
        "99999999999999999999999999".into(),
        "1e400".into(),
        "%00".into(),
        "%0a%0d%07".into(),
        "a%ff%fe".into(),
        "%e2%80%ae%c0%af".into(),
        "%7B%22a%22%3A1%7D".into(),
        "null".into(),
        "a".repeat(5000),
    ];
    let queries: Vec<String> = vec![
        "limit=-1".into(),
        "limit=abc".into(),
        "limit=99999999999999999999999".into(),
        "limit=1e400".into(),
        "marker=%00".into(),
        "marker=".to_owned() + &"m".repeat(3000),
        "changes-since=notadate&changes-before=%00".into(),
        "name=(((%5B&ip=%5B&ip6=(".into(),
        "sort_key=%00&sort_dir=sideways".into(),
        "sort_key=display_name&sort_key=uuid&sort_dir=asc&sort_dir=desc&sort_dir=up".into(),
        "all_tenants=%ff&deleted=maybe&status=%00".into(),
        "is_public=maybe&minDisk=-1&minRam=abc".into(),
        "start=garbage&end=2020-13-45T99:99:99&detailed=maybe".into(),
        "user_id=%00&project_id=%0a&tenant_id[]=1".into(),
        "hypervisor_hostname_pattern=%00&with_servers=maybe".into(),
        "tags=".to_owned() + &"t,".repeat(2000) + "&not-tags-any=%00",
        "%00=%00&%ff=&=&&&".into(),
        "limit=0&offset=-1&page=%00".into(),
        "flavor=%00&image=..%2F..&host=%0a&node=".into(),
        "locked=maybe&availability_zone=%00&config_drive=2".into(),
    ];
    // Values no handler takes for any key (a map of strings is a valid
    // `metadata` or `extra_specs`, an empty list valid `tags`: see `skip`).
    let mut wrong: Vec<Vec<u8>> = [
        json!(1),
        json!(-1),
        json!(1e308),
        json!(u64::MAX),
        json!("x"),
        json!("\u{0}\u{7}\u{1b}[2J"),
        json!(true),
        json!([]),
        json!({"\u{0}": "\u{1}"}),
        json!({"name": "\u{0}\u{7}", "id": "\u{0}"}),
        json!({"name": 1, "ram": "x", "vcpus": 1e300}),
        json!({"name": ["x"], "type": {}, "host": 99999999999999999999u128.to_string()}),
    ]
    .iter()
    .map(|v| serde_json::to_vec(v).unwrap())
    .collect();
    wrong.push(b"1e400".to_vec());
    wrong.push(b"-99999999999999999999999999999".to_vec());
    wrong.push(deep(300, "[", "]"));
    let skip = |key: &str, w: &[u8]| {
        (key == "tags" && w == b"[]")
            || (key == "forced_down" && w == b"true")
            || (matches!(key, "metadata" | "extra_specs")
                && w.starts_with(b"{")
                && !w.starts_with(b"{\"\\u0000\""))
    };
    let mut generic: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"\"x\"".to_vec(),
        b"1e400".to_vec(),
        b"{\"a\": 1, \"a\": 2}".to_vec(),
        b"\xff\xfe{}".to_vec(),
        b"{\"\x00\": 1}".to_vec(),
        deep(50_000, "[", "]"),
        deep(5_000, "{\"a\":", "}"),
    ];
    // Larger than nova's max_request_body_size (112 KiB): 413.
    let mut large = b"{\"x\": \"".to_vec();
    large.extend(std::iter::repeat_n(b'a', 300 * 1024));
    large.extend_from_slice(b"\"}");
    generic.push(large);

    let mut h = Hostile {
        c: &c,
        tok: c.token("admin").await,
        sent: 0,
    };
    let before = snapshot(&c, &server, &flavor, &demo_project).await;
    let fill = |path: &str, hostile: Option<(usize, &str)>| -> String {
        let mut out = String::from("/v2.1");
        let mut n = 0;
        for seg in path.split('/').skip(1) {
            out.push('/');
            if let Some(p) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                match hostile {
                    Some((i, bad)) if i == n => out.push_str(bad),
                    _ => out.push_str(&real(path, p)),
                }
                n += 1;
            } else {
                out.push_str(seg);
            }
        }
        out
    };
    for (path, methods) in &routes {
        let params = path.matches('{').count();
        // The route table matches the router: every other method is 405.
        for m in ["get", "post", "put", "delete"] {
            if !methods.contains(&m) {
                let status = h.send(m, &fill(path, Some((0, "x"))), b"2.100", None).await;
                assert_eq!(status, 405, "{m} {path} is not in the route table");
            }
        }
        for &m in methods {
            // A GET of the os-hosts power actions acts on the host: only
            // hostile ids there, as for the writes.
            let writes = m != "get"
                || path.ends_with("reboot")
                || path.ends_with("shutdown")
                || path.ends_with("startup");
            for mv in [&b"2.1"[..], b"2.100"] {
                // Bad ids, each parameter in turn.
                for i in 0..params {
                    for bad in &bad_ids {
                        let body = writes.then(|| b"{\"x\": 1}".to_vec());
                        h.send(m, &fill(path, Some((i, bad))), mv, body).await;
                    }
                }
                if !writes {
                    for q in &queries {
                        h.send(m, &format!("{}?{q}", fill(path, None)), mv, None)
                            .await;
                    }
                    continue;
                }
                if m == "delete" || m == "get" {
                    continue;
                }
                // Wrong bodies on the real resource.
                for b in &generic {
                    h.send(m, &fill(path, None), mv, Some(b.clone())).await;
                }
                for key in body_keys(path) {
                    for w in wrong.iter().filter(|w| !skip(key, w)) {
                        let mut b = format!("{{\"{key}\": ").into_bytes();
                        b.extend_from_slice(w);
                        b.push(b'}');
                        h.send(m, &fill(path, None), mv, Some(b)).await;
                    }
                }
            }
        }
        // Unservable microversions on every route.
        let m = methods[0];
        for mv in [
            &b"2.01"[..],
            "½.1".as_bytes(),
            b"\xbd.1",
            b"2.1000000",
            b"99999.99999",
            b"2.1.1",
        ] {
            let status = h.send(m, &fill(path, Some((0, "x"))), mv, None).await;
            assert!(
                matches!(status, 400 | 406),
                "{m} {path} at {mv:?}: {status}"
            );
        }
        let after = snapshot(&c, &server, &flavor, &demo_project).await;
        for (k, v) in before.as_object().unwrap() {
            assert_eq!(
                &after[k], v,
                "hostile requests on {path} changed {k}:\nafter  {}\nbefore {v}",
                after[k]
            );
        }
    }
    eprintln!("{} hostile requests over {} routes", h.sent, routes.len());
    c.stop().await;
}
