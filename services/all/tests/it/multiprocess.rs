//! The distributed deployment: nova-api, nova-conductor, nova-scheduler
//! and three nova-computes as separate processes, over RabbitMQ and
//! PostgreSQL, set up with nova-manage. Twenty servers boot, spread as
//! the weighers say; one is resized, cold-migrated and live-migrated
//! between compute processes; all are deleted; Placement usages return
//! to zero.

#![cfg(all(feature = "amqp", feature = "postgres"))]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sea_orm::ConnectionTrait as _;
use serde_json::{Value, json};

use crate::cluster::{free_port, temp_dir};
use crate::vhost::Vhost;

pub(crate) fn bin(name: &str) -> PathBuf {
    // target/<profile>/deps/it-<hash> → target/<profile>/<name>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace --all-features --bins` first (scripts/test does)",
        p.display()
    );
    p
}

pub(crate) struct Procs(pub(crate) Vec<(String, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            // SIGTERM first: the services shut down gracefully.
            let _ = Command::new("kill").arg(c.id().to_string()).status();
        }
        // Up to 10 s to stop: a nova-compute with hundreds of fake hosts
        // deletes their fanout queues on the way out.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline
            && self
                .0
                .iter_mut()
                .any(|p| matches!(p.1.try_wait(), Ok(None)))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Procs {
    pub(crate) fn spawn(&mut self, name: &str, conf: &Path, env: &[(&str, &str)], log: &Path) {
        // Appended: a process started again keeps its predecessor's log.
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log.join(format!("{name}.log")))
            .unwrap();
        let mut cmd = Command::new(bin(name.split('@').next().unwrap()));
        cmd.arg("--config")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.0.push((name.to_owned(), cmd.spawn().unwrap()));
    }

    pub(crate) fn check_alive(&mut self, log: &Path) {
        for (name, c) in &mut self.0 {
            if let Ok(Some(status)) = c.try_wait() {
                let text =
                    std::fs::read_to_string(log.join(format!("{name}.log"))).unwrap_or_default();
                panic!("{name} exited with {status}:\n{text}");
            }
        }
    }
}

pub(crate) async fn json_req(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = http
        .request(method, url)
        .header("X-Auth-Token", token)
        .header("OpenStack-API-Version", "compute 2.100");
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let s = r.status().as_u16();
    let t = r.text().await.unwrap();
    (s, serde_json::from_str(&t).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_as_processes_over_rabbitmq_and_postgresql() {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let pg_admin = std::env::var("NOVA_RS_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let vhost = Vhost::create(
        &std::env::var("NOVA_RS_AMQP_URL")
            .unwrap_or_else(|_| "rabbit://guest:guest@127.0.0.1:5672/".into()),
        &format!("nova_mp_{tag}"),
    );
    let amqp = &vhost.url;
    let admin_db = nova_objects::db::Database::connect(&nova_objects::db::DbConfig::new(&pg_admin))
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is not reachable at {pg_admin} ({e}): bash scripts/test starts it")
        });
    let dbname = format!("nova_mp_{tag}");
    admin_db
        .connection()
        .execute_unprepared(&format!("CREATE DATABASE {dbname}"))
        .await
        .unwrap();
    let db_url = match pg_admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{dbname}"),
        None => panic!("NOVA_RS_PG_URL has no database name"),
    };
    let dir = temp_dir("mp");
    let (port, image_port) = (free_port(), free_port());
    let conf = dir.join("nova.conf");
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\ntransport_url = {amqp}\ncontrol_exchange = nova_mp_{tag}\nstate_path = {state}\nreport_interval = 1\nservice_down_time = 15\n\
             osapi_compute_listen = 127.0.0.1\nosapi_compute_listen_port = {port}\ncompute_driver = fake.FakeDriver\n\
             [database]\nconnection = {db_url}\n[image]\nbind_port = {image_port}\n[identity]\nsecret = mp-{tag}\n\
             [quota]\ninstances = -1\ncores = -1\nram = -1\n[fake]\nvcpus = 64\nmemory_mb = 65536\nlocal_gb = 2000\n",
            state = dir.display()
        ),
    )
    .unwrap();
    // nova-manage db sync, then every service.
    let out = Command::new(bin("nova-manage"))
        .arg("--config")
        .arg(&conf)
        .args(["db", "sync"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "db sync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("applied") && said.contains("cell1"), "{said}");
    let again = Command::new(bin("nova-manage"))
        .arg("--config")
        .arg(&conf)
        .args(["db", "sync"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("applied 0 migration"),
        "db sync is idempotent"
    );

    let mut procs = Procs(Vec::new());
    procs.spawn(
        "nova-conductor",
        &conf,
        &[("NOVA_DEFAULT_HOST", &format!("ctl-{tag}"))],
        &dir,
    );
    procs.spawn(
        "nova-scheduler",
        &conf,
        &[("NOVA_DEFAULT_HOST", &format!("ctl-{tag}"))],
        &dir,
    );
    procs.spawn(
        "nova-api",
        &conf,
        &[("NOVA_DEFAULT_HOST", &format!("ctl-{tag}"))],
        &dir,
    );
    let hosts: Vec<String> = (1..=3).map(|n| format!("mp{tag}-cmp-{n}")).collect();
    for (n, h) in hosts.iter().enumerate() {
        procs.spawn(
            &format!("nova-compute@{n}"),
            &conf,
            &[("NOVA_DEFAULT_HOST", h)],
            &dir,
        );
    }

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    // Wait for the API and a token.
    let auth = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": "admin"}}}, "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let token = loop {
        procs.check_alive(&dir);
        if let Ok(r) = http
            .post(format!("{base}/identity/v3/auth/tokens"))
            .json(&auth)
            .send()
            .await
            && r.status().as_u16() == 201
        {
            break r.headers()["x-subject-token"].to_str().unwrap().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nova-api never came up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Wait for the three computes to be up.
    loop {
        procs.check_alive(&dir);
        let (_, hv) = json_req(
            &http,
            reqwest::Method::GET,
            &format!("{base}/v2.1/os-hypervisors/detail"),
            &token,
            None,
        )
        .await;
        let up = hv["hypervisors"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|h| h["state"] == "up").count());
        if up == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "computes never came up: {hv}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // nova-manage maps the new hosts; nova-status is happy.
    let out = Command::new(bin("nova-manage"))
        .arg("--config")
        .arg(&conf)
        .args(["cell_v2", "discover_hosts", "--verbose"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Found 3 unmapped computes"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let st = Command::new(bin("nova-status"))
        .arg("--config")
        .arg(&conf)
        .args(["upgrade", "check"])
        .output()
        .unwrap();
    assert_eq!(
        st.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&st.stdout)
    );

    // A flavor and an image.
    let (s, _) = json_req(&http, reqwest::Method::POST, &format!("{base}/v2.1/flavors"), &token, Some(json!({"flavor": {"name": "mp.small", "ram": 1024, "vcpus": 1, "disk": 1, "id": "mp1"}}))).await;
    assert_eq!(s, 200);
    let r = http.post(format!("http://127.0.0.1:{image_port}/v2/images")).header("X-Auth-Token", &token).json(&json!({"name": "mp", "disk_format": "raw", "container_format": "bare", "visibility": "public"})).send().await.unwrap();
    let image: Value = r.json().await.unwrap();
    let image_id = image["id"].as_str().unwrap().to_owned();
    let r = http
        .put(format!(
            "http://127.0.0.1:{image_port}/v2/images/{image_id}/file"
        ))
        .header("X-Auth-Token", &token)
        .body(vec![1u8; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);

    // Twenty servers in one request.
    let (s, body) = json_req(&http, reqwest::Method::POST, &format!("{base}/v2.1/servers"), &token, Some(json!({"server": {"name": "mp", "flavorRef": "mp1", "imageRef": image_id, "networks": "none", "min_count": 20, "max_count": 20}}))).await;
    assert_eq!(s, 202, "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let servers = loop {
        procs.check_alive(&dir);
        let (_, list) = json_req(
            &http,
            reqwest::Method::GET,
            &format!("{base}/v2.1/servers/detail"),
            &token,
            None,
        )
        .await;
        let all = list["servers"].as_array().cloned().unwrap_or_default();
        assert!(
            all.iter().all(|s| s["status"] != "ERROR"),
            "a server failed: {list}"
        );
        if all.len() == 20 && all.iter().all(|s| s["status"] == "ACTIVE") {
            break all;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "servers not active: {list}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // The RAM weigher spreads: equal hosts end within one server of each other.
    let mut per_host = std::collections::BTreeMap::<String, usize>::new();
    for s in &servers {
        *per_host
            .entry(s["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_host.len(), 3, "{per_host:?}");
    let (min, max) = (
        per_host.values().min().unwrap(),
        per_host.values().max().unwrap(),
    );
    assert!(max - min <= 1, "spread {per_host:?}");

    // Placement in PostgreSQL holds exactly the twenty allocations.
    let placement = nova_placement::PlacementHandle::new(
        nova_placement::SqlPlacement::open(&db_url).await.unwrap(),
    );
    let mut total = 0;
    let (_, hv) = json_req(
        &http,
        reqwest::Method::GET,
        &format!("{base}/v2.1/os-hypervisors"),
        &token,
        None,
    )
    .await;
    let nodes: Vec<String> = hv["hypervisors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_owned())
        .collect();
    for n in &nodes {
        total += placement
            .usages_async(n)
            .await
            .unwrap()
            .get("MEMORY_MB")
            .copied()
            .unwrap_or(0);
    }
    assert_eq!(total, 20 * 1024);

    // Moves between compute processes: a resize (confirmed), a cold
    // migration (confirmed) and a live migration of one server; after
    // each, one allocation, on its host, and the totals add up.
    let (s, _) = json_req(
        &http,
        reqwest::Method::POST,
        &format!("{base}/v2.1/flavors"),
        &token,
        Some(
            json!({"flavor": {"name": "mp.big", "ram": 2048, "vcpus": 1, "disk": 1, "id": "mp2"}}),
        ),
    )
    .await;
    assert_eq!(s, 200);
    let mover = servers[0]["id"].as_str().unwrap().to_owned();
    let show = |id: String| {
        let (http, base, token) = (&http, &base, &token);
        async move {
            let (_, b) = json_req(
                http,
                reqwest::Method::GET,
                &format!("{base}/v2.1/servers/{id}"),
                token,
                None,
            )
            .await;
            b["server"].clone()
        }
    };
    let mut host = servers[0]["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap()
        .to_owned();
    for (action, body, ram) in [
        ("resize", json!({"resize": {"flavorRef": "mp2"}}), 2048),
        ("migrate", json!({"migrate": null}), 2048),
        (
            "live",
            json!({"os-migrateLive": {"host": null, "block_migration": "auto"}}),
            2048,
        ),
    ] {
        let (st, b) = json_req(
            &http,
            reqwest::Method::POST,
            &format!("{base}/v2.1/servers/{mover}/action"),
            &token,
            Some(body),
        )
        .await;
        assert_eq!(st, 202, "{action}: {b}");
        let want = if action == "live" {
            "ACTIVE"
        } else {
            "VERIFY_RESIZE"
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let now = loop {
            procs.check_alive(&dir);
            let s = show(mover.clone()).await;
            assert_ne!(s["status"], "ERROR", "{action}: {s}");
            if s["status"] == want
                && s["OS-EXT-STS:task_state"].is_null()
                && s["OS-EXT-SRV-ATTR:host"] != host.as_str()
            {
                break s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{action} never finished: {s}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        if want == "VERIFY_RESIZE" {
            let (st, b) = json_req(
                &http,
                reqwest::Method::POST,
                &format!("{base}/v2.1/servers/{mover}/action"),
                &token,
                Some(json!({"confirmResize": null})),
            )
            .await;
            assert_eq!(st, 204, "{b}");
            loop {
                let s = show(mover.clone()).await;
                if s["status"] == "ACTIVE" && s["OS-EXT-STS:task_state"].is_null() {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "confirm never finished: {s}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        if action == "live" {
            // Settled once the migration says so.
            loop {
                let (_, m) = json_req(&http, reqwest::Method::GET, &format!("{base}/v2.1/os-migrations?instance_uuid={mover}&migration_type=live-migration"), &token, None).await;
                if m["migrations"][0]["status"] == "completed" {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "live migration never completed: {m}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        host = now["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_owned();
        let a = placement.allocations_async(&mover).await.unwrap();
        assert_eq!(a.allocations.len(), 1, "{action}: {:?}", a.allocations);
        assert_eq!(
            a.allocations.values().next().unwrap().get("MEMORY_MB"),
            Some(&ram)
        );
        let mut total = 0;
        for n in &nodes {
            total += placement
                .usages_async(n)
                .await
                .unwrap()
                .get("MEMORY_MB")
                .copied()
                .unwrap_or(0);
        }
        assert_eq!(
            total,
            19 * 1024 + ram,
            "{action}: no migration's allocation left"
        );
    }

    // Delete them all.
    for s in &servers {
        let id = s["id"].as_str().unwrap();
        let (st, b) = json_req(
            &http,
            reqwest::Method::DELETE,
            &format!("{base}/v2.1/servers/{id}"),
            &token,
            None,
        )
        .await;
        assert_eq!(st, 204, "{b}");
    }
    loop {
        procs.check_alive(&dir);
        let (_, list) = json_req(
            &http,
            reqwest::Method::GET,
            &format!("{base}/v2.1/servers"),
            &token,
            None,
        )
        .await;
        if list["servers"].as_array().is_some_and(|a| a.is_empty()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "servers not deleted: {list}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut total = 0;
    for n in &nodes {
        for (_, v) in placement.usages_async(n).await.unwrap() {
            total += v;
        }
    }
    assert_eq!(total, 0, "every allocation released");
    drop(procs);
    drop(placement);
    drop(vhost);
    let _ = admin_db
        .connection()
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {dbname} WITH (FORCE)"))
        .await;
    let _ = std::fs::remove_dir_all(&dir);
}
