//! nova-rs services on the real OpenStack Placement 16 (PyPI
//! openstack-placement on SQLite, `scripts/placement_py_server.py`),
//! reached over HTTP through `[placement] endpoint_override`: computes
//! report their providers there, the scheduler claims there, a delete
//! leaves no allocation behind.

use std::process::Stdio;

use tokio::io::AsyncBufReadExt as _;

use crate::cluster::{Cluster, temp_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_and_delete_on_placement_16() {
    let python = std::env::var("NOVA_RS_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles/bin/python".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/placement_py_server.py"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = temp_dir("placement16");
    let mut py = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&dir)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {python}: {e} (scripts/test creates the virtualenv)")
        });
    let mut line = String::new();
    tokio::io::BufReader::new(py.stdout.take().unwrap())
        .read_line(&mut line)
        .await
        .unwrap();
    assert_eq!(line.trim(), "listening", "Placement 16 did not start");
    let url = format!("http://127.0.0.1:{port}");
    let c = Cluster::start(2, &[("placement", "endpoint_override", url.as_str())]).await;

    // The computes' providers are in Placement 16.
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            http.get(format!("{url}{path}"))
                .header("x-auth-token", "admin")
                .header("openstack-api-version", "placement 1.39")
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let rps = get("/resource_providers".into()).await;
    assert_eq!(
        rps["resource_providers"].as_array().unwrap().len(),
        2,
        "{rps}"
    );

    let id = c.boot("demo", "on-placement-16", "1").await;
    c.wait_status("demo", &id, "ACTIVE").await;
    let a = get(format!("/allocations/{id}")).await;
    let allocs = a["allocations"].as_object().unwrap();
    assert_eq!(allocs.len(), 1, "{a}");
    assert_eq!(
        allocs.values().next().unwrap()["resources"]["MEMORY_MB"],
        512,
        "{a}"
    );
    assert_eq!(c.total_usage("MEMORY_MB").await, 512);

    let r = c.delete(&format!("/v2.1/servers/{id}"), "demo").await;
    assert_eq!(r.status, 204);
    c.wait_gone("demo", &id).await;
    let a = get(format!("/allocations/{id}")).await;
    assert_eq!(
        a["allocations"],
        serde_json::json!({}),
        "no leaked allocation"
    );
    assert_eq!(c.total_usage("MEMORY_MB").await, 0);
    c.stop().await;
    py.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
