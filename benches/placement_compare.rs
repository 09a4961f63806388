//! Placement over HTTP, side by side on the same data and box: ours
//! (nova-placement's API router on `SqlPlacement`, SQLite, served on a
//! local port) vs OpenStack Placement 16 (PyPI openstack-placement on
//! SQLite, `scripts/placement_py_server.py` under wsgiref).
//!
//! - `GET /allocation_candidates?resources=VCPU:1,MEMORY_MB:512,DISK_GB:10&limit=1000`
//!   at 1k, 10k and 100k providers (`NOVA_RS_BENCH_SIZES=1000,10000` to
//!   choose): median of `NOVA_RS_BENCH_RUNS` (15) for ours, of 3 for
//!   Placement 16, from the request to the answer's last byte (the client
//!   parses the JSON after the clock stops, for both servers).
//! - `PUT /allocations/{consumer}` (new consumers, 1.28): p50 / p99, on
//!   SQLite for both, and ours on PostgreSQL when `NOVA_RS_PG_URL` is set.
//!
//! `cargo bench --bench placement_compare --features db,postgres`
//! (NOVA_RS_PYTHON: the test virtualenv's Python, with
//! openstack-placement). `NOVA_RS_BENCH_OURS_ONLY=1` skips Placement 16
//! (for profiling).
//!
//! `NOVA_RS_BENCH_BREAKDOWN=1` also prints, per size, the answer's size
//! and where our request spends its time in this process (CPU time of the
//! calling thread from `clock_gettime`, which load on the box does not
//! inflate much, and wall time): the model's answer
//! (`allocation_candidates_async` on the warm mirror), the whole router
//! without sockets (`oneshot`: query parsing, the answer, its JSON, the
//! middleware), the HTTP request's wall time, and the process's CPU time
//! (every thread) per HTTP request (server and client together).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

// The allocator of the service binaries (`nova-placement-api`, nova-all):
// our server runs in this process.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use nova_placement::{PlacementHandle, SqlPlacement, api};
use sea_orm::ConnectionTrait as _;
use tokio::io::AsyncBufReadExt as _;

fn rp_uuid(i: usize) -> String {
    format!("{i:08x}-0000-4000-8000-{i:012x}")
}

/// The rows' `created_at` (the Python side writes the same).
const CREATED: &str = "2026-01-01 00:00:00";

/// Our tables filled with `n` providers (bulk SQL: the same rows the
/// Python side inserts into Placement's).
async fn fill_ours(url: &str, n: usize) -> SqlPlacement {
    let p = SqlPlacement::open(url).await.unwrap();
    p.sync().await.unwrap();
    let db = nova_objects::db::Database::connect(&nova_objects::db::DbConfig::new(url))
        .await
        .unwrap();
    let conn = db.connection();
    for chunk in (1..=n).collect::<Vec<_>>().chunks(500) {
        let rps: Vec<String> = chunk
            .iter()
            .map(|&i| {
                format!(
                    "('{u}', 'cn-{i}', 0, NULL, '{u}', '{CREATED}')",
                    u = rp_uuid(i)
                )
            })
            .collect();
        conn.execute_unprepared(&format!(
            "INSERT INTO resource_providers (uuid, name, generation, parent_uuid, root_uuid, created_at) VALUES {}",
            rps.join(", ")
        ))
        .await
        .unwrap();
        let invs: Vec<String> = chunk
            .iter()
            .flat_map(|&i| {
                let u = rp_uuid(i);
                [
                    ("VCPU", 64, 16.0),
                    ("MEMORY_MB", 262_144, 1.5),
                    ("DISK_GB", 2000, 1.0),
                ]
                .map(|(rc, t, r)| {
                    format!("('{u}', '{rc}', {t}, 0, 1, {t}, 1, {r:.1}, '{CREATED}')")
                })
            })
            .collect();
        conn.execute_unprepared(&format!(
            "INSERT INTO inventories (rp_uuid, resource_class, total, reserved, min_unit, max_unit, step_size, allocation_ratio, created_at) VALUES {}",
            invs.join(", ")
        ))
        .await
        .unwrap();
    }
    p
}

async fn serve_ours(p: PlacementHandle) -> String {
    let app = api::router(p, api::noauth2());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    // Served as the services' HTTP servers are (`Runner::http`: axum's defaults).
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

async fn serve_python(n: usize) -> (tokio::process::Child, String) {
    let python = std::env::var("NOVA_RS_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles/bin/python".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/placement_py_server.py"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!(
        "placement16-bench-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut child = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&dir)
        .arg(port.to_string())
        .arg(n.to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let mut line = String::new();
    tokio::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .await
        .unwrap();
    assert_eq!(line.trim(), "listening");
    (child, format!("http://127.0.0.1:{port}"))
}

fn req(http: &reqwest::Client, m: reqwest::Method, url: String) -> reqwest::RequestBuilder {
    http.request(m, url)
        .header("x-auth-token", "admin")
        .header("openstack-api-version", "placement 1.39")
}

/// Median time of `runs` candidate queries, and how many came back.
async fn candidates(
    http: &reqwest::Client,
    base: &str,
    runs: usize,
    parse_every: bool,
) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let r = req(
            http,
            reqwest::Method::GET,
            format!(
                "{base}/allocation_candidates?resources=VCPU:1,MEMORY_MB:512,DISK_GB:10&limit=1000"
            ),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        // Timed to the answer's last byte; the client's own JSON parse
        // (the same work for both servers) is not the server's latency.
        let body = r.bytes().await.unwrap();
        times.push(t.elapsed());
        // The breakdown parses once (the count is the same every run), so
        // that the process's CPU per request is the HTTP exchange's; the
        // figures parse every answer, as a scheduler would.
        if parse_every || count == 0 {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            count = v["allocation_requests"].as_array().unwrap().len();
        }
    }
    times.sort();
    (times[times.len() / 2], count)
}

/// A CPU clock of this process, in µs (`clock_gettime`, which brings the
/// running thread's count up to date: `/proc/*/schedstat` is only updated
/// at ticks and context switches, so a millisecond's work read there
/// mostly showed 0, and `/proc/self/schedstat` is the main thread alone).
#[allow(unsafe_code)]
fn cpu_clock_us(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(clock, &raw mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 * 1e6 + ts.tv_nsec as f64 / 1e3
}

/// CPU time this thread has run, in µs.
fn thread_cpu_us() -> f64 {
    cpu_clock_us(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time of the whole process (every thread), in µs.
fn process_cpu_us() -> f64 {
    cpu_clock_us(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// The query of [`candidates`], as the API parses it.
fn candidates_request() -> nova_scheduler::placement::CandidatesRequest {
    use nova_scheduler::placement::{CandidatesRequest, RequestGroup};
    CandidatesRequest {
        groups: vec![RequestGroup {
            resources: [("VCPU", 1), ("MEMORY_MB", 512), ("DISK_GB", 10)]
                .into_iter()
                .map(|(rc, n)| (rc.to_owned(), n))
                .collect(),
            ..Default::default()
        }],
        limit: Some(1000),
        ..Default::default()
    }
}

/// Medians of `n` runs of `op` (after `n / 10` to warm up): thread-CPU µs
/// and wall µs, on a current-thread runtime of its own, so the calling
/// thread does all the work that is measured.
fn thread_cpu_median<F, Fut>(n: usize, op: F) -> (f64, f64)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for _ in 0..n / 10 {
                op().await;
            }
            let mut cpu = Vec::with_capacity(n);
            let mut wall = Vec::with_capacity(n);
            for _ in 0..n {
                let w = Instant::now();
                let c = thread_cpu_us();
                op().await;
                cpu.push(thread_cpu_us() - c);
                wall.push(w.elapsed().as_secs_f64() * 1e6);
            }
            cpu.sort_by(f64::total_cmp);
            wall.sort_by(f64::total_cmp);
            (cpu[n / 2], wall[n / 2])
        })
    })
    .join()
    .unwrap()
}

/// Where a request's time goes in this process (see the module doc).
async fn breakdown(http: &reqwest::Client, handle: PlacementHandle, base: &str, n: usize) {
    use tower::ServiceExt as _;
    let runs = 300;
    let h = handle.clone();
    let (model, model_wall) = thread_cpu_median(runs, move || {
        let h = h.clone();
        async move {
            let c = h
                .allocation_candidates_async(&candidates_request())
                .await
                .unwrap();
            assert!(!c.is_empty());
        }
    });
    let app = api::router(handle, api::noauth2());
    let size = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = size.clone();
    let (router, router_wall) = thread_cpu_median(runs, move || {
        let app = app.clone();
        let seen = seen.clone();
        async move {
            let r = axum::http::Request::get(
                "/allocation_candidates?resources=VCPU:1,MEMORY_MB:512,DISK_GB:10&limit=1000",
            )
            .header("x-auth-token", "admin")
            .header("openstack-api-version", "placement 1.39")
            .body(axum::body::Body::empty())
            .unwrap();
            let resp = app.oneshot(r).await.unwrap();
            assert_eq!(resp.status(), 200);
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            assert!(body.len() > 1000);
            seen.store(body.len(), std::sync::atomic::Ordering::Relaxed);
        }
    });
    let before = process_cpu_us();
    let (wall, _) = candidates(http, base, runs, false).await;
    let per_http = (process_cpu_us() - before) / runs as f64;
    println!(
        "    breakdown, {n} providers, body {} bytes, median of {runs}, CPU (wall) µs: model {model:.0} ({model_wall:.0}), router without sockets {router:.0} ({router_wall:.0}; of which parsing, JSON and middleware ≈ {:.0}), HTTP request {:.0} wall, process CPU (server and client, every thread) per HTTP request (mean) {per_http:.0}",
        size.load(std::sync::atomic::Ordering::Relaxed),
        router - model,
        wall.as_secs_f64() * 1e6,
    );
}

/// p50 and p99 of `n` claims by new consumers.
async fn claims(
    http: &reqwest::Client,
    base: &str,
    providers: usize,
    n: usize,
) -> (Duration, Duration) {
    let mut times = Vec::new();
    for k in 0..n {
        let rp = rp_uuid(1 + k % providers);
        let body = serde_json::json!({
            "allocations": {rp: {"resources": {"VCPU": 1, "MEMORY_MB": 512}}},
            "project_id": "p", "user_id": "u", "consumer_generation": null,
        });
        let t = Instant::now();
        let r = req(
            http,
            reqwest::Method::PUT,
            format!("{base}/allocations/{}", uuid::Uuid::new_v4()),
        )
        .header("openstack-api-version", "placement 1.28")
        .json(&body)
        .send()
        .await
        .unwrap();
        times.push(t.elapsed());
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap_or_default());
    }
    times.sort();
    (times[n / 2], times[n * 99 / 100])
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let http = reqwest::Client::new();
    let sizes: Vec<usize> = match std::env::var("NOVA_RS_BENCH_SIZES") {
        Ok(s) => s.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
        Err(_) => vec![1000, 10_000, 100_000],
    };
    let runs: usize = std::env::var("NOVA_RS_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    // Profiling ours alone: no Python Placement.
    let python = std::env::var("NOVA_RS_BENCH_OURS_ONLY").is_err();
    println!("GET /allocation_candidates (limit 1000), HTTP, SQLite: ours vs Placement 16");
    for n in sizes {
        let dir =
            std::env::temp_dir().join(format!("placement-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let handle =
            PlacementHandle::new(fill_ours(&format!("sqlite:{}/p.db", dir.display()), n).await);
        let ours = serve_ours(handle.clone()).await;
        let (o, oc) = candidates(&http, &ours, runs, true).await;
        if std::env::var("NOVA_RS_BENCH_BREAKDOWN").is_ok() {
            breakdown(&http, handle, &ours, n).await;
        }
        if !python {
            println!("  {n:>6} providers: ours {} ({oc} candidates)", ms(o));
            continue;
        }
        let (mut py, theirs) = serve_python(n).await;
        let (t, tc) = candidates(&http, &theirs, 3, true).await;
        println!(
            "  {n:>6} providers: ours {} ({oc} candidates), Placement 16 {} ({tc}): {:.0}x",
            ms(o),
            ms(t),
            t.as_secs_f64() / o.as_secs_f64()
        );
        if n == 1000 {
            let (op50, op99) = claims(&http, &ours, n, 300).await;
            let (tp50, tp99) = claims(&http, &theirs, n, 300).await;
            println!(
                "PUT /allocations/{{consumer}}, SQLite: ours p50 {} p99 {}; Placement 16 p50 {} p99 {}",
                ms(op50),
                ms(op99),
                ms(tp50),
                ms(tp99)
            );
        }
        py.kill().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Ok(pg) = std::env::var("NOVA_RS_PG_URL") {
        let name = format!("placement_bench_{}", uuid::Uuid::new_v4().simple());
        let admin = nova_objects::db::Database::connect(&nova_objects::db::DbConfig::new(&pg))
            .await
            .unwrap();
        admin
            .connection()
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let base = pg.rsplit_once('/').map_or(pg.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        let ours = serve_ours(PlacementHandle::new(fill_ours(&url, 1000).await)).await;
        let (p50, p99) = claims(&http, &ours, 1000, 300).await;
        println!(
            "PUT /allocations/{{consumer}}, PostgreSQL: ours p50 {} p99 {}",
            ms(p50),
            ms(p99)
        );
        // The bench's database goes (its server still holds connections).
        admin
            .connection()
            .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await
            .unwrap();
    }
}
