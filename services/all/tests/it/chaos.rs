//! Chaos over the distributed deployment: every service a process, on a
//! RabbitMQ node and a PostgreSQL cluster of the test's own. Under a
//! steady boot/delete load each service is killed (`kill -9`) once and
//! started again, RabbitMQ is restarted twice and PostgreSQL once. After
//! nova's (short) timeouts every server is ACTIVE, ERROR or gone,
//! Placement holds exactly the allocations of the servers that exist, no
//! RPC call outlived its timeout and no cast to a durable queue was lost.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nova_rpc::{
    AmqpConfig, AmqpTransport, Dispatcher, Endpoint, RequestContext, RpcClient, RpcServer, Target,
    Transport, Version,
};
use sea_orm::ConnectionTrait as _;
use serde_json::{Value, json};

use crate::cluster::free_port;
use crate::cluster::temp_dir;
use crate::multiprocess::{Procs, bin, json_req};
use crate::own_infra::{OwnPostgres, OwnRabbit};

/// `[DEFAULT] instance_build_timeout` of the test's nova.conf.
const BUILD_TIMEOUT: u64 = 20;
/// `[DEFAULT] rpc_response_timeout` of the test's nova.conf: longer than
/// a broker restart, so that calls wait the restart out (as nova's
/// default 60 s does).
const RPC_TIMEOUT: u64 = 30;

/// One HTTP request that may meet a dead API: `None` when no answer came.
async fn try_req(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let mut rb = http
        .request(method, url)
        .header("X-Auth-Token", token)
        .header("OpenStack-API-Version", "compute 2.100");
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.ok()?;
    let s = r.status().as_u16();
    let t = r.text().await.ok()?;
    Some((s, serde_json::from_str(&t).unwrap_or(Value::Null)))
}

/// The services, each started again after its `kill -9`.
struct Services {
    procs: Procs,
    conf: PathBuf,
    dir: PathBuf,
    env: BTreeMap<String, String>,
}

impl Services {
    fn start(&mut self, name: &str, host: &str) {
        self.env.insert(name.to_owned(), host.to_owned());
        self.procs
            .spawn(name, &self.conf, &[("NOVA_DEFAULT_HOST", host)], &self.dir);
    }

    /// SIGKILL, then the same service again.
    fn kill_and_restart(&mut self, name: &str) {
        let i = self
            .procs
            .0
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no process {name}"));
        let (_, mut child) = self.procs.0.remove(i);
        child.kill().unwrap();
        child.wait().unwrap();
        let host = self.env[name].clone();
        self.start(name, &host);
    }
}

fn log_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

/// A test RPC endpoint counting the casts it received.
fn probe_endpoint(seen: Arc<Mutex<BTreeSet<u64>>>) -> Endpoint {
    Endpoint::new(Some("chaos"), Version::new(1, 0))
        .method("record", move |_c, a: Value| {
            if let Some(n) = a["n"].as_u64() {
                seen.lock().unwrap().insert(n);
            }
            async move { Ok(()) }
        })
        .method("echo", |_c, a: Value| async move { Ok(a["n"].as_u64()) })
}

async fn probe_server(
    t: &Arc<AmqpTransport>,
    topic: &str,
    seen: &Arc<Mutex<BTreeSet<u64>>>,
) -> RpcServer {
    let t: Arc<dyn Transport> = t.clone();
    RpcServer::start(
        t,
        Target::topic(topic).with_server("probe"),
        Dispatcher::new(vec![probe_endpoint(seen.clone())]),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "starts its own RabbitMQ and PostgreSQL, kills services: run with --run-ignored only"]
async fn kill_each_service_and_restart_the_broker_and_database_under_load() {
    let t0 = Instant::now();
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let (rabbit, pg) = tokio::join!(
        tokio::task::spawn_blocking({
            let tag = tag.clone();
            move || OwnRabbit::start(&format!("chaos_{tag}"))
        }),
        tokio::task::spawn_blocking({
            let tag = tag.clone();
            move || OwnPostgres::start(&format!("chaos_{tag}"))
        })
    );
    let rabbit = Arc::new(Mutex::new(rabbit.unwrap()));
    let pg = pg.unwrap();
    let amqp = rabbit.lock().unwrap().url();
    let admin_db =
        nova_objects::db::Database::connect(&nova_objects::db::DbConfig::new(pg.url("postgres")))
            .await
            .unwrap();
    admin_db
        .connection()
        .execute_unprepared("CREATE DATABASE chaos")
        .await
        .unwrap();
    drop(admin_db);
    let db_url = pg.url("chaos");
    let dir = temp_dir("chaos");
    let (port, image_port) = (free_port(), free_port());
    let conf = dir.join("nova.conf");
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\ntransport_url = {amqp}\ncontrol_exchange = nova\nstate_path = {state}\n\
             report_interval = 1\nservice_down_time = 6\nrpc_response_timeout = {RPC_TIMEOUT}\n\
             instance_build_timeout = {BUILD_TIMEOUT}\nupdate_resources_interval = 5\n\
             osapi_compute_listen = 127.0.0.1\nosapi_compute_listen_port = {port}\ncompute_driver = fake.FakeDriver\n\
             [oslo_messaging_rabbit]\namqp_durable_queues = true\nrabbit_retry_interval = 1\nrabbit_retry_backoff = 0\nrabbit_interval_max = 1\n\
             [database]\nconnection = {db_url}\n[image]\nbind_port = {image_port}\n[identity]\nsecret = chaos-{tag}\n\
             [quota]\ninstances = -1\ncores = -1\nram = -1\n[fake]\nvcpus = 64\nmemory_mb = 65536\nlocal_gb = 2000\n",
            state = dir.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(bin("nova-manage"))
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

    let mut svc = Services {
        procs: Procs(Vec::new()),
        conf: conf.clone(),
        dir: dir.clone(),
        env: BTreeMap::new(),
    };
    svc.start("nova-conductor", "ctl");
    svc.start("nova-scheduler", "ctl");
    svc.start("nova-compute@0", "chaos-cmp-0");
    svc.start("nova-compute@1", "chaos-cmp-1");
    svc.start("nova-api", "ctl");

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(90))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let auth = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": "admin"}}}, "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
    let deadline = Instant::now() + Duration::from_secs(60);
    let token = loop {
        svc.procs.check_alive(&dir);
        if let Ok(r) = http
            .post(format!("{base}/identity/v3/auth/tokens"))
            .json(&auth)
            .send()
            .await
            && r.status().as_u16() == 201
        {
            break r.headers()["x-subject-token"].to_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "nova-api never came up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let hypervisors = |http: reqwest::Client, base: String, token: String| async move {
        try_req(
            &http,
            reqwest::Method::GET,
            &format!("{base}/v2.1/os-hypervisors/detail"),
            &token,
            None,
        )
        .await
        .map(|(_, b)| b["hypervisors"].as_array().cloned().unwrap_or_default())
        .unwrap_or_default()
    };
    loop {
        svc.procs.check_alive(&dir);
        let hv = hypervisors(http.clone(), base.clone(), token.clone()).await;
        if hv.iter().filter(|h| h["state"] == "up").count() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "computes never came up: {hv:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = std::process::Command::new(bin("nova-manage"))
        .arg("--config")
        .arg(&conf)
        .args(["cell_v2", "discover_hosts"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (s, b) = json_req(
        &http,
        reqwest::Method::POST,
        &format!("{base}/v2.1/flavors"),
        &token,
        Some(
            json!({"flavor": {"name": "chaos", "ram": 512, "vcpus": 1, "disk": 1, "id": "chaos1"}}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let r = http.post(format!("http://127.0.0.1:{image_port}/v2/images")).header("X-Auth-Token", &token).json(&json!({"name": "chaos", "disk_format": "raw", "container_format": "bare", "visibility": "public"})).send().await.unwrap();
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
    eprintln!("chaos: cloud up after {:?}", t0.elapsed());

    // The probe: a test RPC server on a durable queue of the same broker.
    let mut cfg = AmqpConfig::from_url(&amqp)
        .unwrap()
        .control_exchange("chaos");
    cfg.durable_queues = true;
    cfg.retry_interval = Duration::from_millis(500);
    cfg.retry_backoff = Duration::from_millis(500);
    cfg.interval_max = Duration::from_secs(2);
    cfg.response_timeout = Duration::from_secs(3);
    let probe_t = AmqpTransport::connect(cfg).await.unwrap();
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let topic = "chaos_probe";
    let server = probe_server(&probe_t, topic, &seen).await;
    let probe_client = RpcClient::new(
        probe_t.clone() as Arc<dyn Transport>,
        Target::topic(topic)
            .with_namespace("chaos")
            .with_version(Version::new(1, 0)),
    );

    // The load: a boot every 300 ms, and a delete of an earlier server
    // every other step; casts and calls to the probe all along.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (http, base, token, image_id, stop) = (
            http.clone(),
            base.clone(),
            token.clone(),
            image_id.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut booted: Vec<String> = Vec::new();
            let (mut refused, mut slowest) = (0usize, Duration::ZERO);
            // Answers a user should not get: a 5xx other than 503.
            let mut wrong: Vec<String> = Vec::new();
            let mut step = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                step += 1;
                let t = Instant::now();
                match try_req(&http, reqwest::Method::POST, &format!("{base}/v2.1/servers"), &token, Some(json!({"server": {"name": format!("chaos-{step}"), "flavorRef": "chaos1", "imageRef": image_id, "networks": "none"}}))).await {
                    Some((202, b)) => booted.push(b["server"]["id"].as_str().unwrap().to_owned()),
                    Some((s, b)) => {
                        if s >= 500 && s != 503 {
                            wrong.push(format!("boot answered {s} at {:?}: {b}", t0.elapsed()));
                        }
                        refused += 1;
                    }
                    None => refused += 1,
                }
                slowest = slowest.max(t.elapsed());
                if step.is_multiple_of(2) && booted.len() > 4 {
                    let id = booted.remove(0);
                    let t = Instant::now();
                    if let Some((s, b)) = try_req(
                        &http,
                        reqwest::Method::DELETE,
                        &format!("{base}/v2.1/servers/{id}"),
                        &token,
                        None,
                    )
                    .await
                        && !(s == 204 || s == 404 || s == 409 || s == 503)
                    {
                        wrong.push(format!("delete answered {s} at {:?}: {b}", t0.elapsed()));
                    }
                    slowest = slowest.max(t.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            (step, refused, slowest, wrong)
        })
    };
    let casts = {
        let (client, stop) = (probe_client.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut sent, mut calls, mut slowest_call) = (BTreeSet::new(), 0, Duration::ZERO);
            let mut n = 1000u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                if client
                    .cast(&RequestContext::new(), "record", json!({"n": n}))
                    .await
                    .is_ok()
                {
                    sent.insert(n);
                }
                let t = Instant::now();
                if client
                    .call::<u64>(&RequestContext::new(), "echo", json!({"n": n}))
                    .await
                    .is_ok_and(|v| v == n)
                {
                    calls += 1;
                }
                slowest_call = slowest_call.max(t.elapsed());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (sent, calls, slowest_call)
        })
    };

    let restart_rabbit = |rabbit: Arc<Mutex<OwnRabbit>>| async move {
        let t = Instant::now();
        tokio::task::spawn_blocking(move || rabbit.lock().unwrap().restart())
            .await
            .unwrap();
        eprintln!("chaos: RabbitMQ restarted in {:?}", t.elapsed());
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    // RabbitMQ restart 1, with the probe server away: what was cast to its
    // durable queue meanwhile waits there, across the restart.
    server.stop().await;
    let mut offline = BTreeSet::new();
    for n in 0..20u64 {
        probe_client
            .cast(&RequestContext::new(), "record", json!({"n": n}))
            .await
            .unwrap();
        offline.insert(n);
    }
    restart_rabbit(rabbit.clone()).await;
    let server = probe_server(&probe_t, topic, &seen).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in [
        "nova-api",
        "nova-conductor",
        "nova-scheduler",
        "nova-compute@0",
    ] {
        svc.kill_and_restart(name);
        eprintln!(
            "chaos: {name} killed and started again at {:?}",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(4)).await;
        if name == "nova-scheduler" {
            let t = Instant::now();
            tokio::task::block_in_place(|| pg.restart());
            eprintln!(
                "chaos: PostgreSQL restarted in {:?}, at {:?}",
                t.elapsed(),
                t0.elapsed()
            );
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }
    restart_rabbit(rabbit.clone()).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (steps, refused, slowest, wrong) = load.await.unwrap();
    let (sent, calls, slowest_call) = casts.await.unwrap();
    eprintln!(
        "chaos: load over at {:?}: {steps} boots ({refused} unanswered or refused), slowest request {slowest:?}; {} probe casts, {calls} calls, slowest call {slowest_call:?}",
        t0.elapsed(),
        sent.len()
    );
    svc.procs.check_alive(&dir);

    // No call outlived its timeout (3 s, plus scheduling slack).
    assert!(
        slowest_call < Duration::from_secs(5),
        "a probe call took {slowest_call:?}"
    );
    assert!(calls > 10, "calls went through ({calls})");
    // No API request waited past the casts' send timeout.
    assert!(
        slowest < Duration::from_secs(60),
        "an API request took {slowest:?}"
    );

    // Every server settles: ACTIVE or ERROR (or gone), within the build timeout.
    // The conductor looks for builds older than the timeout every
    // `instance_build_timeout` seconds.
    let deadline = Instant::now() + Duration::from_secs(2 * BUILD_TIMEOUT + 30);
    let servers = loop {
        svc.procs.check_alive(&dir);
        let list = try_req(
            &http,
            reqwest::Method::GET,
            &format!("{base}/v2.1/servers/detail"),
            &token,
            None,
        )
        .await
        .map(|(_, b)| b["servers"].as_array().cloned().unwrap_or_default());
        if let Some(all) = list {
            // The fake driver's guests live in the nova-compute process:
            // those of the compute that was killed died with it, and
            // its power sync tells the truth (SHUTOFF), as nova does.
            let unsettled: Vec<&Value> = all
                .iter()
                .filter(|s| {
                    let shutoff_on_killed =
                        s["status"] == "SHUTOFF" && s["OS-EXT-SRV-ATTR:host"] == "chaos-cmp-0";
                    !(s["status"] == "ACTIVE" || s["status"] == "ERROR" || shutoff_on_killed)
                        || !s["OS-EXT-STS:task_state"].is_null()
                })
                .collect();
            if unsettled.is_empty() {
                break all;
            }
            assert!(
                Instant::now() < deadline,
                "servers not settled {:?} after the load:\n{}\nconductor:\n{}",
                t0.elapsed(),
                unsettled
                    .iter()
                    .map(|s| format!(
                        "{} {} {} {}",
                        s["id"], s["status"], s["OS-EXT-STS:task_state"], s["OS-EXT-SRV-ATTR:host"]
                    ))
                    .collect::<Vec<_>>()
                    .join("\n"),
                log_of(&dir, "nova-conductor")
                    .lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let active = servers.iter().filter(|s| s["status"] == "ACTIVE").count();
    let error = servers.iter().filter(|s| s["status"] == "ERROR").count();
    eprintln!(
        "chaos: settled at {:?}: {} servers, {active} ACTIVE, {error} ERROR",
        t0.elapsed(),
        servers.len()
    );
    assert!(active > 0, "some boots succeeded");

    // Placement holds exactly the allocations of the servers that exist:
    // one of the flavor's size for each ACTIVE server.
    let placement = nova_placement::PlacementHandle::new(
        nova_placement::SqlPlacement::open(&db_url).await.unwrap(),
    );
    let nodes: Vec<String> = hypervisors(http.clone(), base.clone(), token.clone())
        .await
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(nodes.len(), 2);
    let usage = |placement: nova_placement::PlacementHandle, nodes: Vec<String>| async move {
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
        total
    };
    let mut held = 0;
    for s in &servers {
        let id = s["id"].as_str().unwrap();
        let a = placement.allocations_async(id).await.unwrap();
        let mine: i64 = a
            .allocations
            .values()
            .map(|r| r.get("MEMORY_MB").copied().unwrap_or(0))
            .sum();
        if s["status"] == "ACTIVE" || s["status"] == "SHUTOFF" {
            assert_eq!(mine, 512, "{id} {} holds {:?}", s["status"], a.allocations);
        }
        held += mine;
    }
    // Healing (update_resources_interval = 5 s) removes what deleted
    // instances left behind.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let total = usage(placement.clone(), nodes.clone()).await;
        if total == held {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Placement uses {total} MB, the {} servers hold {held} MB",
            servers.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // No cast to the durable queue was lost, across both broker restarts.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = seen.lock().unwrap().clone();
        let missing: Vec<u64> = offline
            .iter()
            .chain(sent.iter())
            .filter(|n| !got.contains(n))
            .copied()
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "casts lost: {missing:?} ({} sent)",
            offline.len() + sent.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Everything can still be deleted; Placement ends empty.
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
        assert!(st == 204 || st == 404, "{st} {b}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, list) = json_req(
            &http,
            reqwest::Method::GET,
            &format!("{base}/v2.1/servers"),
            &token,
            None,
        )
        .await;
        if list["servers"].as_array().is_some_and(|a| a.is_empty())
            && usage(placement.clone(), nodes.clone()).await == 0
        {
            break;
        }
        assert!(Instant::now() < deadline, "not all deleted: {list}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Once a service or the database is back, requests succeed again:
    // no request failed with a 500 (a dead database connection kept in a
    // pool, say).
    assert!(
        wrong.is_empty(),
        "unexpected answers:\n{}",
        wrong.join("\n")
    );
    eprintln!("chaos: done in {:?}", t0.elapsed());
    server.stop().await;
    probe_t.close().await;
    drop(placement);
    drop(svc);
    drop(rabbit);
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Four nova-scheduler processes share the conductor's requests (one
/// topic queue) on a cloud with room for twelve servers: Placement in
/// PostgreSQL is the only arbiter between them. Nothing is overcommitted,
/// and every boot that fits ends ACTIVE (a lost claim moves on to the
/// next host); the others end in ERROR with NoValidHost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "seven service processes: run with --run-ignored only"]
async fn four_schedulers_racing_on_a_nearly_full_cloud_never_overcommit() {
    let t0 = Instant::now();
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let pg_admin = std::env::var("NOVA_RS_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let vhost = crate::vhost::Vhost::create(
        &std::env::var("NOVA_RS_AMQP_URL")
            .unwrap_or_else(|_| "rabbit://guest:guest@127.0.0.1:5672/".into()),
        &format!("chaos_race_{tag}"),
    );
    let admin_db = nova_objects::db::Database::connect(&nova_objects::db::DbConfig::new(&pg_admin))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {pg_admin} ({e})"));
    let dbname = format!("chaos_race_{tag}");
    admin_db
        .connection()
        .execute_unprepared(&format!("CREATE DATABASE {dbname}"))
        .await
        .unwrap();
    let db_url = match pg_admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{dbname}"),
        None => panic!("NOVA_RS_PG_URL has no database name"),
    };
    let dir = temp_dir("race");
    let (port, image_port) = (free_port(), free_port());
    let conf = dir.join("nova.conf");
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\ntransport_url = {amqp}\ncontrol_exchange = nova\nstate_path = {state}\n\
             report_interval = 1\nservice_down_time = 15\ncpu_allocation_ratio = 1.0\nreserved_host_memory_mb = 0\n\
             osapi_compute_listen = 127.0.0.1\nosapi_compute_listen_port = {port}\ncompute_driver = fake.FakeDriver\n\
             [database]\nconnection = {db_url}\n[image]\nbind_port = {image_port}\n[identity]\nsecret = race-{tag}\n\
             [quota]\ninstances = -1\ncores = -1\nram = -1\n[fake]\nvcpus = 4\nmemory_mb = 65536\nlocal_gb = 2000\n",
            amqp = vhost.url,
            state = dir.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(bin("nova-manage"))
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
    let mut svc = Services {
        procs: Procs(Vec::new()),
        conf: conf.clone(),
        dir: dir.clone(),
        env: BTreeMap::new(),
    };
    svc.start("nova-conductor", "ctl");
    for n in 0..4 {
        svc.start(&format!("nova-scheduler@{n}"), &format!("sched-{n}"));
    }
    for n in 0..3 {
        svc.start(&format!("nova-compute@{n}"), &format!("race-cmp-{n}"));
    }
    svc.start("nova-api", "ctl");
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let auth = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": "admin"}}}, "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
    let deadline = Instant::now() + Duration::from_secs(60);
    let token = loop {
        svc.procs.check_alive(&dir);
        if let Ok(r) = http
            .post(format!("{base}/identity/v3/auth/tokens"))
            .json(&auth)
            .send()
            .await
            && r.status().as_u16() == 201
        {
            break r.headers()["x-subject-token"].to_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "nova-api never came up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let nodes = loop {
        svc.procs.check_alive(&dir);
        let (_, hv) = json_req(
            &http,
            reqwest::Method::GET,
            &format!("{base}/v2.1/os-hypervisors/detail"),
            &token,
            None,
        )
        .await;
        let hv = hv["hypervisors"].as_array().cloned().unwrap_or_default();
        if hv.iter().filter(|h| h["state"] == "up").count() == 3 {
            break hv
                .iter()
                .map(|h| h["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>();
        }
        assert!(Instant::now() < deadline, "computes never came up: {hv:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let out = std::process::Command::new(bin("nova-manage"))
        .arg("--config")
        .arg(&conf)
        .args(["cell_v2", "discover_hosts"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (s, b) = json_req(
        &http,
        reqwest::Method::POST,
        &format!("{base}/v2.1/flavors"),
        &token,
        Some(json!({"flavor": {"name": "race", "ram": 256, "vcpus": 1, "disk": 1, "id": "race1"}})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let r = http.post(format!("http://127.0.0.1:{image_port}/v2/images")).header("X-Auth-Token", &token).json(&json!({"name": "race", "disk_format": "raw", "container_format": "bare", "visibility": "public"})).send().await.unwrap();
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

    // Boots all at once, each its own request (so the four schedulers
    // take them in parallel); waits until each is ACTIVE or ERROR.
    let race = |round: &'static str, n: usize| {
        let (http, base, token, image_id) =
            (http.clone(), base.clone(), token.clone(), image_id.clone());
        async move {
            let mut reqs = Vec::new();
            for i in 0..n {
                let (http, base, token, image_id) =
                    (http.clone(), base.clone(), token.clone(), image_id.clone());
                reqs.push(tokio::spawn(async move {
                    let (s, b) = json_req(&http, reqwest::Method::POST, &format!("{base}/v2.1/servers"), &token, Some(json!({"server": {"name": format!("{round}-{i}"), "flavorRef": "race1", "imageRef": image_id, "networks": "none"}}))).await;
                    assert_eq!(s, 202, "{b}");
                    b["server"]["id"].as_str().unwrap().to_owned()
                }));
            }
            let mut ids = Vec::new();
            for r in reqs {
                ids.push(r.await.unwrap());
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut done = BTreeMap::new();
            while done.len() < ids.len() {
                for id in &ids {
                    if done.contains_key(id) {
                        continue;
                    }
                    let (_, b) = json_req(
                        &http,
                        reqwest::Method::GET,
                        &format!("{base}/v2.1/servers/{id}"),
                        &token,
                        None,
                    )
                    .await;
                    let s = &b["server"];
                    if (s["status"] == "ACTIVE" || s["status"] == "ERROR")
                        && s["OS-EXT-STS:task_state"].is_null()
                    {
                        done.insert(id.clone(), s.clone());
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "{round}: boots not settled: {} of {}",
                    done.len(),
                    ids.len()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            done
        }
    };
    // Half full, then ten more boots race for the last six places.
    let first = race("fill", 6).await;
    assert!(first.values().all(|s| s["status"] == "ACTIVE"), "{first:?}");
    let second = race("race", 10).await;
    svc.procs.check_alive(&dir);
    let active: Vec<&Value> = second
        .values()
        .filter(|s| s["status"] == "ACTIVE")
        .collect();
    let failed: Vec<&Value> = second.values().filter(|s| s["status"] == "ERROR").collect();
    assert_eq!(
        active.len(),
        6,
        "every boot that fits ends ACTIVE: {:?}",
        failed
            .iter()
            .map(|s| s["fault"].clone())
            .collect::<Vec<_>>()
    );
    for s in &failed {
        let msg = s["fault"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("No valid host"), "{s}");
    }
    // No provider is used past its capacity; the twelve hold it all.
    let placement = nova_placement::PlacementHandle::new(
        nova_placement::SqlPlacement::open(&db_url).await.unwrap(),
    );
    let mut total = 0;
    let mut per_host = BTreeMap::new();
    for n in &nodes {
        let u = placement.usages_async(n).await.unwrap();
        let vcpu = u.get("VCPU").copied().unwrap_or(0);
        assert!(vcpu <= 4, "provider {n} overcommitted: {u:?}");
        per_host.insert(n.clone(), vcpu);
        total += vcpu;
    }
    assert_eq!(total, 12, "{per_host:?}");
    for s in first.values().chain(second.values()) {
        let id = s["id"].as_str().unwrap();
        let a = placement.allocations_async(id).await.unwrap();
        let want = usize::from(s["status"] == "ACTIVE");
        assert_eq!(
            a.allocations.len(),
            want,
            "{id} {}: {:?}",
            s["status"],
            a.allocations
        );
    }
    eprintln!("race: done in {:?}, {per_host:?}", t0.elapsed());
    drop(placement);
    drop(svc);
    drop(vhost);
    let _ = admin_db
        .connection()
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {dbname} WITH (FORCE)"))
        .await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// After a PostgreSQL restart every pooled connection is dead, however
/// recently used: each is checked at check-out (oslo.db's ping), so the
/// first statements after the restart succeed rather than failing once
/// per pooled connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts its own PostgreSQL: run with --run-ignored only"]
async fn statements_after_a_database_restart_succeed() {
    let pg = tokio::task::spawn_blocking(|| OwnPostgres::start("dbrestart"))
        .await
        .unwrap();
    let db =
        nova_objects::db::Database::connect(&nova_objects::db::DbConfig::new(pg.url("postgres")))
            .await
            .unwrap();
    // Several hot connections in the pool.
    let busy = |db: nova_objects::db::Database| async move {
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                db.connection()
                    .execute_unprepared("SELECT pg_sleep(0.05)")
                    .await
                    .map(|_| ())
            }));
        }
        let mut errors = Vec::new();
        for t in tasks {
            if let Err(e) = t.await.unwrap() {
                errors.push(e.to_string());
            }
        }
        errors
    };
    assert_eq!(busy(db.clone()).await, Vec::<String>::new());
    tokio::task::block_in_place(|| pg.restart());
    assert_eq!(
        busy(db.clone()).await,
        Vec::<String>::new(),
        "statements after the restart"
    );
    drop(db);
    drop(pg);
}
