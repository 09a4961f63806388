//! The real osc-placement CLI (PyPI, in the test virtualenv, as
//! `openstack resource provider ...`) against `nova-placement-api`:
//! create, list, show, inventory set, trait set, aggregate set, allocation
//! candidate list, usage show.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command};

use serde_json::Value;

struct Server(Child, std::path::PathBuf);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn start() -> (Server, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("placement-osc-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("placement.conf");
    std::fs::write(
        &conf,
        format!(
            "[placement_database]\nconnection = sqlite://{}/p.db\n[api]\nauth_strategy = noauth2\n",
            dir.display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_nova-placement-api"))
        .arg("--config")
        .arg(&conf)
        .arg("--port")
        .arg(port.to_string())
        .spawn()
        .unwrap();
    let server = Server(child, dir);
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (server, port);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("nova-placement-api did not listen");
}

fn osc(port: u16, args: &[&str]) -> Value {
    let venv = std::env::var("NOVA_RS_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles/bin/python".into());
    let openstack = std::path::Path::new(&venv).with_file_name("openstack");
    // `trait create` prints nothing and takes no format.
    let format: &[&str] = if args[..2] == ["trait", "create"] {
        &[]
    } else {
        &["-f", "json"]
    };
    let out = Command::new(&openstack)
        .args(args)
        .args(format)
        .env("OS_AUTH_TYPE", "admin_token")
        .env("OS_TOKEN", "admin")
        .env("OS_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("OS_PLACEMENT_API_VERSION", "1.39")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (scripts/test installs osc-placement)",
                openstack.display()
            )
        });
    assert!(
        out.status.success(),
        "openstack {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

#[test]
fn osc_placement_drives_our_placement() {
    let (_server, port) = start();
    let rp = osc(port, &["resource", "provider", "create", "cn1"]);
    let uuid = rp["uuid"].as_str().unwrap().to_owned();
    assert_eq!(rp["generation"], 0);
    let list = osc(port, &["resource", "provider", "list"]);
    assert_eq!(list[0]["name"], "cn1");
    let inv = osc(
        port,
        &[
            "resource",
            "provider",
            "inventory",
            "set",
            &uuid,
            "--resource",
            "VCPU=8",
            "--resource",
            "MEMORY_MB=4096",
        ],
    );
    assert_eq!(inv.as_array().unwrap().len(), 2, "{inv}");
    osc(port, &["trait", "create", "CUSTOM_OSC"]);
    let traits = osc(
        port,
        &[
            "resource",
            "provider",
            "trait",
            "set",
            &uuid,
            "--trait",
            "CUSTOM_OSC",
            "--trait",
            "HW_CPU_X86_AVX2",
        ],
    );
    assert_eq!(traits.as_array().unwrap().len(), 2, "{traits}");
    let agg = "33333333-3333-3333-3333-333333333333";
    let aggs = osc(
        port,
        &[
            "resource",
            "provider",
            "aggregate",
            "set",
            &uuid,
            "--aggregate",
            agg,
            "--generation",
            "2",
        ],
    );
    assert_eq!(aggs[0]["uuid"], agg);
    let cands = osc(
        port,
        &[
            "allocation",
            "candidate",
            "list",
            "--resource",
            "VCPU=2",
            "--required",
            "CUSTOM_OSC",
        ],
    );
    assert_eq!(cands.as_array().unwrap().len(), 1, "{cands}");
    assert_eq!(cands[0]["resource provider"], uuid.as_str());
    let usage = osc(port, &["resource", "provider", "usage", "show", &uuid]);
    assert_eq!(usage.as_array().unwrap().len(), 2, "{usage}");
    let show = osc(port, &["resource", "provider", "show", &uuid]);
    assert_eq!(show["generation"], 3);
}
