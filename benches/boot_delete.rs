//! Boot+delete throughput and boot latency (API accept → ACTIVE) with
//! 1,000 fake computes, through the real HTTP API:
//!
//! * `all`: `nova-all` in this process (memory transport, SQLite file);
//! * `ports`: as `all` with nova-all's built-in network service: each
//!   server boots on the shared `private` network, so the compute makes a
//!   port, binds it, waits for `network-vif-plugged` and deletes it with
//!   the server (not run unless named);
//! * `actions`: the same `nova-all`; each client boots one server, then
//!   pauses and unpauses it in a loop (each action polled until done):
//!   server actions/s through the API;
//! * `multi`: nova-api, nova-conductor, nova-scheduler and four
//!   nova-compute processes (250 fake hosts each) over RabbitMQ and
//!   PostgreSQL — needs `cargo build --release --workspace --bins --all-features`.
//!
//! Clients boot a server, poll it every 5 ms until ACTIVE, delete it and
//! poll until it is gone, in a loop. Prints one JSON line per mode with
//! the anchor (Nova: 5.4 boot+delete/s, boot median 6.2 s with 1,000 fake
//! computes on 26 servers) beside it.
//!
//! Run with: cargo bench --bench boot_delete --features amqp,postgres -- [all|ports|actions|multi] [--computes N] [--clients N] [--cycles N]
//! (`all` and `ports` also take `--set section.option=value` for its nova.conf; `RUST_LOG` turns on logging;
//! with `--set metrics.enabled=true`, also the RPC requests served and (`ports`) the network service's requests per boot+delete;
//! `all ports --rounds N` runs the pair N times, alternating, and ends with a line of the ratios ports/all
//! and their median: one pair moves by ±10 % on a shared box)

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

// The allocator of the service binaries (nova-all runs in this process).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../services/all/tests/it/vhost.rs"]
mod vhost;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4)
}

/// CPU time of this process so far (user + system), in ms.
fn cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .map_or(0.0, |ticks| ticks * 10.0)
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Target {
    compute: String,
    identity: String,
    image: String,
}

async fn token(http: &reqwest::Client, identity: &str) -> String {
    let auth = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": "admin"}}}, "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
    for _ in 0..600 {
        if let Ok(r) = http
            .post(format!("{identity}/auth/tokens"))
            .json(&auth)
            .send()
            .await
            && r.status().as_u16() == 201
        {
            return r.headers()["x-subject-token"]
                .to_str()
                .expect("token")
                .to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no token from {identity}");
}

async fn prepare(http: &reqwest::Client, t: &Target, tok: &str) -> String {
    let r = http
        .post(format!("{}/v2.1/flavors", t.compute))
        .header("X-Auth-Token", tok)
        .json(
            &json!({"flavor": {"name": "bench", "ram": 64, "vcpus": 1, "disk": 1, "id": "bench"}}),
        )
        .send()
        .await
        .expect("flavor");
    assert!(
        r.status().is_success() || r.status().as_u16() == 409,
        "flavor: {}",
        r.status()
    );
    let img: Value = http
        .post(format!("{}/v2/images", t.image))
        .header("X-Auth-Token", tok)
        .json(&json!({"name": "bench", "disk_format": "raw", "container_format": "bare", "visibility": "public"}))
        .send()
        .await
        .expect("image")
        .json()
        .await
        .expect("image json");
    let id = img["id"].as_str().expect("image id").to_owned();
    http.put(format!("{}/v2/images/{id}/file", t.image))
        .header("X-Auth-Token", tok)
        .body(vec![0u8; 1024])
        .send()
        .await
        .expect("upload");
    id
}

struct Figures {
    cycles: usize,
    seconds: f64,
    latencies_ms: Vec<f64>,
    errors: usize,
    /// HTTP requests sent (create, polls, delete).
    requests: usize,
}

/// Boot+delete cycles by `clients` clients; `networks`: the create
/// body's (`"none"`, or the network to make a port on).
async fn workload(
    t: Arc<Target>,
    tok: String,
    image: String,
    networks: Value,
    clients: usize,
    cycles: usize,
) -> Figures {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .build()
        .expect("client");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let poll = Duration::from_millis(arg("--poll-ms", 5) as u64);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, t, tok, image, next, networks) = (
            http.clone(),
            t.clone(),
            tok.clone(),
            image.clone(),
            next.clone(),
            networks.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut requests = 0;
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < cycles {
                let sent = Instant::now();
                requests += 2; // create, delete
                let r = http
                    .post(format!("{}/v2.1/servers", t.compute))
                    .header("X-Auth-Token", &tok)
                    .header("OpenStack-API-Version", "compute 2.100")
                    .json(&json!({"server": {"name": "b", "flavorRef": "bench", "imageRef": image, "networks": networks}}))
                    .send()
                    .await
                    .expect("create");
                assert_eq!(r.status().as_u16(), 202, "create");
                let body: Value = r.json().await.expect("create json");
                let id = body["server"]["id"].as_str().expect("id").to_owned();
                let url = format!("{}/v2.1/servers/{id}", t.compute);
                loop {
                    requests += 1;
                    let s: Value = http.get(&url).header("X-Auth-Token", &tok).send().await.expect("show").json().await.expect("show json");
                    match s["server"]["status"].as_str() {
                        // With a port: its address shown, or the cycle failed.
                        Some("ACTIVE")
                            if networks.is_array()
                                && s["server"]["addresses"]
                                    .as_object()
                                    .is_none_or(|a| a.is_empty()) =>
                        {
                            errors += 1;
                            break;
                        }
                        Some("ACTIVE") => break,
                        Some("ERROR") => {
                            errors += 1;
                            break;
                        }
                        _ => tokio::time::sleep(poll).await,
                    }
                }
                lat.push(sent.elapsed().as_secs_f64() * 1000.0);
                let r = http.delete(&url).header("X-Auth-Token", &tok).send().await.expect("delete");
                assert_eq!(r.status().as_u16(), 204, "delete");
                loop {
                    requests += 1;
                    let r = http.get(&url).header("X-Auth-Token", &tok).send().await.expect("show");
                    if r.status().as_u16() == 404 {
                        break;
                    }
                    tokio::time::sleep(poll).await;
                }
            }
            (lat, errors, requests)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    let mut requests = 0;
    for t in tasks {
        let (l, e, r) = t.await.expect("client");
        all.extend(l);
        errors += e;
        requests += r;
    }
    let seconds = start.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    Figures {
        cycles: all.len(),
        seconds,
        latencies_ms: all,
        errors,
        requests,
    }
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn report(mode: &str, computes: usize, clients: usize, f: &Figures, extra: Value) {
    let mut out = json!({
        "bench": "boot_delete", "mode": mode, "computes": computes, "clients": clients,
        "cycles": f.cycles, "errors": f.errors, "seconds": (f.seconds * 100.0).round() / 100.0,
        "boot_delete_per_s": ((f.cycles as f64 / f.seconds) * 10.0).round() / 10.0,
        "boot_p50_ms": (pct(&f.latencies_ms, 0.5) * 10.0).round() / 10.0,
        "boot_p90_ms": (pct(&f.latencies_ms, 0.9) * 10.0).round() / 10.0,
        "boot_p99_ms": (pct(&f.latencies_ms, 0.99) * 10.0).round() / 10.0,
        "http_requests_per_boot_delete": ((f.requests as f64 / f.cycles.max(1) as f64) * 10.0).round() / 10.0,
        "anchor_nova_boot_delete_per_s": 5.4, "anchor_nova_boot_p50_ms": 6200.0,
    });
    if let (Some(o), Some(e)) = (out.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    println!("{out}");
}

/// The `private` network of nova-all's network service.
async fn private_network(http: &reqwest::Client, url: &str, tok: &str) -> String {
    let b: Value = http
        .get(format!("{url}/v2.0/networks?name=private"))
        .header("X-Auth-Token", tok)
        .send()
        .await
        .expect("networks")
        .json()
        .await
        .expect("networks json");
    b["networks"][0]["id"]
        .as_str()
        .expect("the private network")
        .to_owned()
}

/// The network service's HTTP requests so far, by `METHOD route`, from
/// the process's metrics (`--set metrics.enabled=true`; empty without).
/// Counters so far (with `--set metrics.enabled=true`): the network
/// service's requests by `method route`, and the RPC requests served by
/// `topic.method`.
fn requests() -> [std::collections::BTreeMap<String, f64>; 2] {
    let mut out = [(); 2].map(|_| std::collections::BTreeMap::new());
    let Some(h) = nova_service::metrics::handle() else {
        return out;
    };
    let label = |l: &str, k: &str| {
        let at = l.find(&format!("{k}=\""))? + k.len() + 2;
        Some(l[at..at + l[at..].find('"')?].to_owned())
    };
    for l in h.render().lines() {
        let (i, a, b) = if l.starts_with(nova_service::metrics::HTTP_REQUESTS)
            && l.contains("api=\"network\"")
        {
            (0, "method", "route")
        } else if l.starts_with(nova_rpc::metrics::SERVER_REQUESTS) {
            (1, "topic", "method")
        } else {
            continue;
        };
        let (Some(x), Some(y), Some(v)) = (
            label(l, a),
            label(l, b),
            l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()),
        ) else {
            continue;
        };
        let key = if i == 0 {
            format!("{x} {y}")
        } else {
            format!("{x}.{y}")
        };
        *out[i].entry(key).or_default() += v;
    }
    out
}

/// `all` (`ports`: with the built-in network service, a port per server).
/// Returns the boot+delete/s.
async fn run_all(computes: usize, clients: usize, cycles: usize, ports: bool) -> f64 {
    let dir = std::env::temp_dir().join(format!("nova-rs-bench-{}", uuid::Uuid::new_v4().simple()));
    let mut conf = nova_service::Conf::new();
    for (s, k, v) in [
        ("DEFAULT", "osapi_compute_listen_port", "0"),
        ("image", "bind_port", "0"),
        ("quota", "instances", "-1"),
        ("quota", "cores", "-1"),
        ("quota", "ram", "-1"),
    ] {
        conf.set(s, k, v);
    }
    if ports {
        conf.set("network", "enabled", "true");
        conf.set("network", "bind_port", "0");
    }
    if let Ok(n) = std::env::var("BENCH_POOL") {
        conf.set("database", "max_pool_size", &n);
    }
    // `--set section.option=value` (repeatable), e.g. `--set database.connection_debug=60`
    // with `RUST_LOG=warn,sqlx::query=info` to see every SQL statement.
    let args: Vec<String> = std::env::args().collect();
    for w in args.windows(2).filter(|w| w[0] == "--set") {
        let (key, value) = w[1].split_once('=').expect("--set section.option=value");
        let (section, option) = key.split_once('.').expect("--set section.option=value");
        conf.set(section, option, value);
    }
    let conf = nova_all::embedded_defaults(conf, &dir);
    static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let first = !STARTED.swap(true, std::sync::atomic::Ordering::Relaxed);
    let before = rss_kib();
    let t = Instant::now();
    let all = nova_all::AllInOne::start(conf.clone(), 0)
        .await
        .expect("start");
    let base = rss_kib();
    let hosts: Vec<String> = (1..=computes).map(|n| format!("bench-{n}")).collect();
    let mut all = all;
    all.add_computes(&hosts).await.expect("computes");
    let started = t.elapsed().as_secs_f64();
    let with_computes = rss_kib();
    let target = Arc::new(Target {
        compute: all.api.compute_url.clone(),
        identity: all.api.identity_url.clone(),
        image: all.api.image_url.clone(),
    });
    let http = reqwest::Client::new();
    let tok = token(&http, &target.identity).await;
    let image = prepare(&http, &target, &tok).await;
    let networks = match all.network.as_ref().filter(|_| ports) {
        Some(n) => json!([{"uuid": private_network(&http, &n.url, &tok).await}]),
        None => json!("none"),
    };
    tokio::time::sleep(Duration::from_millis(1200)).await; // host view and Placement mirror settle
    // Warm-up, then the measured run.
    workload(
        target.clone(),
        tok.clone(),
        image.clone(),
        networks.clone(),
        clients,
        clients * 2,
    )
    .await;
    let cpu = cpu_ms();
    let counted = requests();
    let f = workload(target, tok, image, networks, clients, cycles).await;
    let cpu_per_cycle = (cpu_ms() - cpu) / f.cycles.max(1) as f64;
    // Per boot+delete, by request (with `--set metrics.enabled=true`).
    let per_cycle = |v: f64| (v / f.cycles.max(1) as f64 * 100.0).round() / 100.0;
    let [net, rpc] = requests();
    let delta = |now: std::collections::BTreeMap<String, f64>,
                 before: &std::collections::BTreeMap<String, f64>|
     -> serde_json::Map<String, Value> {
        now.into_iter()
            .map(|(k, v)| {
                let d = v - before.get(&k).copied().unwrap_or(0.0);
                (k, json!(per_cycle(d)))
            })
            .filter(|(_, v)| v.as_f64() != Some(0.0))
            .collect()
    };
    let (net, rpc) = (delta(net, &counted[0]), delta(rpc, &counted[1]));
    let net_total = net.values().filter_map(Value::as_f64).sum::<f64>();
    report(
        if ports { "ports" } else { "all" },
        computes,
        clients,
        &f,
        json!({
            "start_s": (started * 10.0).round() / 10.0,
            // Services and clients together (one process).
            "cpu_ms_per_boot_delete": (cpu_per_cycle * 100.0).round() / 100.0,
            // Only the first cluster of the process measures memory: a
            // later one reuses what the allocator kept from the earlier run
            // (`all ports` read 0 KiB per compute), so it reports null.
            "rss_services_mib": first.then(|| base.saturating_sub(before) / 1024),
            "rss_per_fake_compute_kib": first.then(|| with_computes.saturating_sub(base) / computes.max(1) as u64),
            "network_requests_per_boot_delete": (!net.is_empty()).then(|| (net_total * 100.0).round() / 100.0),
            "network_requests_by_route": (!net.is_empty()).then_some(net),
            "rpc_requests_served_by_method": (!rpc.is_empty()).then_some(rpc),
        }),
    );
    all.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    f.cycles as f64 / f.seconds
}

/// Pause+unpause cycles through the API, `clients` servers (one each)
/// on `computes` fake computes in this process.
async fn run_actions(computes: usize, clients: usize, cycles: usize) {
    let dir = std::env::temp_dir().join(format!("nova-rs-bench-{}", uuid::Uuid::new_v4().simple()));
    let mut conf = nova_service::Conf::new();
    for (s, k, v) in [
        ("DEFAULT", "osapi_compute_listen_port", "0"),
        ("image", "bind_port", "0"),
    ] {
        conf.set(s, k, v);
    }
    let conf = nova_all::embedded_defaults(conf, &dir);
    let mut all = nova_all::AllInOne::start(conf, 0).await.expect("start");
    let hosts: Vec<String> = (1..=computes).map(|n| format!("bench-{n}")).collect();
    all.add_computes(&hosts).await.expect("computes");
    let t = Arc::new(Target {
        compute: all.api.compute_url.clone(),
        identity: all.api.identity_url.clone(),
        image: all.api.image_url.clone(),
    });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .build()
        .expect("client");
    let tok = token(&http, &t.identity).await;
    let image = prepare(&http, &t, &tok).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let poll = Duration::from_millis(arg("--poll-ms", 5) as u64);
    // One server per client, ACTIVE.
    let mut servers = Vec::new();
    for _ in 0..clients {
        let r: Value = http
            .post(format!("{}/v2.1/servers", t.compute))
            .header("X-Auth-Token", &tok)
            .header("OpenStack-API-Version", "compute 2.100")
            .json(&json!({"server": {"name": "a", "flavorRef": "bench", "imageRef": image, "networks": "none"}}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("create json");
        servers.push(
            r["server"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("create: {r}"))
                .to_owned(),
        );
    }
    let wait = move |http: reqwest::Client, url: String, tok: String, want: &'static str| async move {
        let mut polls = 0;
        loop {
            polls += 1;
            let s: Value = http
                .get(&url)
                .header("X-Auth-Token", &tok)
                .send()
                .await
                .expect("show")
                .json()
                .await
                .expect("show json");
            if s["server"]["status"] == want && s["server"]["OS-EXT-STS:task_state"].is_null() {
                return polls;
            }
            assert_ne!(s["server"]["status"], "ERROR", "{s}");
            tokio::time::sleep(poll).await;
        }
    };
    for id in &servers {
        let url = format!("{}/v2.1/servers/{id}", t.compute);
        wait(http.clone(), url, tok.clone(), "ACTIVE").await;
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cpu = cpu_ms();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for id in servers.clone() {
        let (http, t, tok, next) = (http.clone(), t.clone(), tok.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let url = format!("{}/v2.1/servers/{id}", t.compute);
            let (mut lat, mut requests) = (Vec::new(), 0);
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < cycles {
                for (body, want) in [
                    (json!({"pause": null}), "PAUSED"),
                    (json!({"unpause": null}), "ACTIVE"),
                ] {
                    let sent = Instant::now();
                    let r = http
                        .post(format!("{url}/action"))
                        .header("X-Auth-Token", &tok)
                        .json(&body)
                        .send()
                        .await
                        .expect("action");
                    assert_eq!(r.status().as_u16(), 202, "action");
                    requests += 1 + wait(http.clone(), url.clone(), tok.clone(), want).await;
                    lat.push(sent.elapsed().as_secs_f64() * 1000.0);
                }
            }
            (lat, requests)
        }));
    }
    let (mut lat, mut requests) = (Vec::new(), 0);
    for task in tasks {
        let (l, r) = task.await.expect("client");
        lat.extend(l);
        requests += r;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_per_action = (cpu_ms() - cpu) / lat.len().max(1) as f64;
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{}",
        json!({
            "bench": "boot_delete", "mode": "actions", "computes": computes, "clients": clients,
            "actions": lat.len(), "seconds": (seconds * 100.0).round() / 100.0,
            "actions_per_s": ((lat.len() as f64 / seconds) * 10.0).round() / 10.0,
            "action_p50_ms": (pct(&lat, 0.5) * 10.0).round() / 10.0,
            "action_p90_ms": (pct(&lat, 0.9) * 10.0).round() / 10.0,
            "http_requests_per_action": ((requests as f64 / lat.len().max(1) as f64) * 10.0).round() / 10.0,
            "cpu_ms_per_action": (cpu_per_action * 100.0).round() / 100.0,
        })
    );
    all.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
        }
        // Up to 10 s to stop: a nova-compute with hundreds of fake hosts
        // deletes their fanout queues on the way out.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && self.0.iter_mut().any(|c| matches!(c.try_wait(), Ok(None)))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_owned()
}

fn proc_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4)
}

async fn run_multi(computes: usize, clients: usize, cycles: usize) {
    use sea_orm::ConnectionTrait as _;
    let bins = bin_dir();
    for b in [
        "nova-api",
        "nova-conductor",
        "nova-scheduler",
        "nova-compute",
        "nova-manage",
    ] {
        assert!(
            bins.join(b).exists(),
            "{}/{b} missing: cargo build --release --workspace --bins --all-features",
            bins.display()
        );
    }
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let pg = std::env::var("NOVA_RS_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let vhost = vhost::Vhost::create(
        &std::env::var("NOVA_RS_AMQP_URL")
            .unwrap_or_else(|_| "rabbit://guest:guest@127.0.0.1:5672/".into()),
        &format!("nova_bench_{tag}"),
    );
    let amqp = &vhost.url;
    let admin = nova_objects::db::Database::connect(&nova_objects::db::DbConfig::new(&pg))
        .await
        .expect("PostgreSQL");
    let dbname = format!("nova_bench_{tag}");
    admin
        .connection()
        .execute_unprepared(&format!("CREATE DATABASE {dbname}"))
        .await
        .expect("create db");
    let db_url = format!("{}/{dbname}", pg.rsplit_once('/').expect("db url").0);
    let dir = std::env::temp_dir().join(format!("nova-rs-bench-mp-{tag}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let iport = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let conf = dir.join("nova.conf");
    std::fs::write(&conf, format!(
        "[DEFAULT]\ntransport_url = {amqp}\ncontrol_exchange = nova_bench_{tag}\nstate_path = {}\nosapi_compute_listen_port = {port}\n\
         [database]\nconnection = {db_url}\nmax_pool_size = 20\n[image]\nbind_port = {iport}\n[quota]\ninstances = -1\ncores = -1\nram = -1\n",
        dir.display())).expect("conf");
    let ok = Command::new(bins.join("nova-manage"))
        .arg("--config")
        .arg(&conf)
        .args(["db", "sync"])
        .stdout(Stdio::null())
        .status()
        .expect("db sync");
    assert!(ok.success());
    let mut procs = Procs(Vec::new());
    let spawn = |name: &str, host: &str, extra: &[&str]| {
        Command::new(bins.join(name))
            .arg("--config")
            .arg(&conf)
            .args(extra)
            .env("NOVA_DEFAULT_HOST", host)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn")
    };
    procs.0.push(spawn("nova-conductor", "ctl", &[]));
    procs.0.push(spawn("nova-scheduler", "ctl", &[]));
    procs.0.push(spawn("nova-api", "ctl", &[]));
    let per = computes.div_ceil(4);
    let t = Instant::now();
    let mut compute_pids = Vec::new();
    for k in 0..4 {
        let c = spawn(
            "nova-compute",
            &format!("bench{k}"),
            &["--fake-hosts", &per.to_string()],
        );
        compute_pids.push(c.id());
        procs.0.push(c);
    }
    let target = Arc::new(Target {
        compute: format!("http://127.0.0.1:{port}"),
        identity: format!("http://127.0.0.1:{port}/identity/v3"),
        image: format!("http://127.0.0.1:{iport}"),
    });
    let http = reqwest::Client::new();
    let tok = token(&http, &target.identity).await;
    loop {
        let hv: Value = http
            .get(format!("{}/v2.1/os-hypervisors", target.compute))
            .header("X-Auth-Token", &tok)
            .send()
            .await
            .expect("hv")
            .json()
            .await
            .expect("hv json");
        let n = hv["hypervisors"].as_array().map_or(0, Vec::len);
        if n >= per * 4 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "computes did not all start: {n}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let started = t.elapsed().as_secs_f64();
    let image = prepare(&http, &target, &tok).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    workload(
        target.clone(),
        tok.clone(),
        image.clone(),
        json!("none"),
        clients,
        clients * 2,
    )
    .await;
    let f = workload(target, tok, image, json!("none"), clients, cycles).await;
    let compute_rss: u64 = compute_pids.iter().map(|p| proc_rss_kib(*p)).sum();
    report(
        "multi (RabbitMQ + PostgreSQL)",
        per * 4,
        clients,
        &f,
        json!({"start_s": (started * 10.0).round() / 10.0, "rss_per_fake_compute_kib": compute_rss / (per * 4) as u64}),
    );
    drop(procs);
    drop(vhost);
    let _ = admin
        .connection()
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {dbname} WITH (FORCE)"))
        .await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let args: Vec<String> = std::env::args().collect();
    let want = |m: &str| {
        !args
            .iter()
            .any(|a| a == "all" || a == "ports" || a == "actions" || a == "multi")
            || args.iter().any(|a| a == m)
    };
    let computes = arg("--computes", 1000);
    let clients = arg("--clients", 8);
    let cycles = arg("--cycles", 2000);
    rt.block_on(async {
        let ports = args.iter().any(|a| a == "ports");
        if want("all") && ports {
            let mut ratios = vec![];
            for _ in 0..arg("--rounds", 1).max(1) {
                let all = run_all(computes, clients, cycles, false).await;
                let with_ports = run_all(computes, clients, cycles, true).await;
                ratios.push(((with_ports / all) * 1000.0).round() / 1000.0);
            }
            let mut sorted = ratios.clone();
            sorted.sort_by(f64::total_cmp);
            let median = match sorted.len() {
                n if n % 2 == 1 => sorted[n / 2],
                n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
            };
            println!(
                "{}",
                json!({"bench": "boot_delete", "ratio": "ports/all boot+delete per s",
                    "ratios": ratios, "median": (median * 1000.0).round() / 1000.0,
                    "target": 0.8})
            );
        } else if want("all") {
            run_all(computes, clients, cycles, false).await;
        } else if ports {
            run_all(computes, clients, cycles, true).await;
        }
        if want("actions") {
            run_actions(computes, clients, cycles / 2).await;
        }
        if want("multi") {
            run_multi(computes, clients, cycles / 2).await;
        }
    });
}
