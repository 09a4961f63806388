//! The real `openstack` CLI (python-openstackclient from PyPI, in the
//! test virtualenv) against the `nova-all` binary and the clouds.yaml it
//! writes: the commands an operator runs on day one.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::cluster::{free_port, temp_dir};

mod lifecycle;
mod moves;
mod network;
mod subresources;
mod zones;

/// The `openstack` executable of the test virtualenv; `None` (outside CI)
/// when it is not installed. In CI a missing client fails the test.
pub(crate) fn openstack() -> Option<PathBuf> {
    let venv =
        std::env::var("NOVA_RS_VENV").unwrap_or_else(|_| "/var/tmp/nova-rs/venv-oracles".into());
    let exe = Path::new(&venv).join("bin/openstack");
    if exe.exists() {
        return Some(exe);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{} is missing: scripts/test installs python-openstackclient into the test virtualenv",
            exe.display()
        );
    }
    eprintln!(
        "SKIP: {} is not installed (run scripts/test once to create the virtualenv)",
        exe.display()
    );
    None
}

pub(crate) struct NovaAll {
    child: std::process::Child,
    dir: PathBuf,
}

impl Drop for NovaAll {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How long one `openstack` command may take (a `--wait` included).
pub(crate) const CLI_TIMEOUT: Duration = Duration::from_secs(180);

pub(crate) struct Cli {
    pub(crate) exe: PathBuf,
    pub(crate) clouds: PathBuf,
}

impl Cli {
    /// Runs `openstack --os-cloud nova-rs ARGS`; panics with its output
    /// when it fails or takes more than [`CLI_TIMEOUT`] (it is killed).
    pub(crate) fn run(&self, args: &[&str]) -> String {
        let mut child = std::process::Command::new(&self.exe)
            .args(["--os-cloud", "nova-rs"])
            .args(args)
            .env("OS_CLIENT_CONFIG_FILE", &self.clouds)
            .env_remove("OS_CLOUD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let read = |mut r: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = r.read_to_end(&mut v);
                String::from_utf8_lossy(&v).into_owned()
            })
        };
        let out = read(Box::new(child.stdout.take().unwrap()));
        let err = read(Box::new(child.stderr.take().unwrap()));
        let deadline = std::time::Instant::now() + CLI_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
        let Some(status) = status else {
            panic!(
                "openstack {} took more than {CLI_TIMEOUT:?} and was killed\n{stdout}{stderr}",
                args.join(" ")
            );
        };
        assert!(
            status.success(),
            "openstack {}: {status}\n{stdout}{stderr}",
            args.join(" ")
        );
        stdout
    }

    pub(crate) fn value(&self, args: &[&str], field: &str) -> String {
        let mut a = args.to_vec();
        a.extend(["-f", "value", "-c", field]);
        self.run(&a).trim().to_owned()
    }
}

#[test]
fn the_openstack_cli_runs_against_nova_all() {
    let Some((all, cli)) = launch(3, &[]) else {
        return;
    };
    let dir = all.dir.clone();

    // Image, flavor, keypair.
    let img = dir.join("disk.raw");
    std::fs::write(&img, vec![0u8; 256 * 1024]).unwrap();
    let image_id = cli.value(
        &[
            "image",
            "create",
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
            "--public",
            "--file",
            img.to_str().unwrap(),
            "cli-image",
        ],
        "id",
    );
    assert_eq!(cli.value(&["image", "show", &image_id], "status"), "active");
    cli.run(&[
        "flavor",
        "create",
        "--ram",
        "256",
        "--disk",
        "1",
        "--vcpus",
        "1",
        "lab.flavor",
    ]);
    let key = dir.join("key.pub");
    std::fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGsRJ5XbOOx1hPN7sC4nT3T0Fm9gWl7EJAx/J2cqvT4W cli\n",
    )
    .unwrap();
    let fp = cli.value(
        &[
            "keypair",
            "create",
            "--public-key",
            key.to_str().unwrap(),
            "k1",
        ],
        "fingerprint",
    );
    assert_eq!(fp.split(':').count(), 16, "{fp}");

    // A server, with --wait.
    let status = cli.value(
        &[
            "server",
            "create",
            "--flavor",
            "lab.flavor",
            "--image",
            "cli-image",
            "--nic",
            "none",
            "--key-name",
            "k1",
            "--wait",
            "vm1",
        ],
        "status",
    );
    assert_eq!(status, "ACTIVE");
    let list = cli.run(&["server", "list"]);
    assert!(
        list.contains("vm1")
            && list.contains("ACTIVE")
            && list.contains("cli-image")
            && list.contains("lab.flavor"),
        "{list}"
    );
    assert_eq!(cli.value(&["server", "show", "vm1"], "key_name"), "k1");

    // Reboot, stop, start.
    cli.run(&["server", "reboot", "--wait", "vm1"]);
    assert_eq!(cli.value(&["server", "show", "vm1"], "status"), "ACTIVE");
    cli.run(&["server", "stop", "vm1"]);
    wait_for(&cli, "vm1", "SHUTOFF");
    cli.run(&["server", "start", "vm1"]);
    wait_for(&cli, "vm1", "ACTIVE");

    // Admin views.
    let hv = cli.run(&["hypervisor", "list"]);
    assert_eq!(hv.matches("fake-compute-").count(), 3, "{hv}");
    assert!(hv.contains("up"), "{hv}");
    let svc = cli.run(&["compute", "service", "list"]);
    for b in ["nova-compute", "nova-conductor", "nova-scheduler"] {
        assert!(svc.contains(b), "{svc}");
    }
    let az = cli.run(&["availability", "zone", "list", "--compute"]);
    assert!(az.contains("nova") && az.contains("available"), "{az}");
    let limits = cli.run(&["limits", "show", "--absolute"]);
    assert!(
        limits.contains("total_instances_used") && limits.contains("max_total_instances"),
        "{limits}"
    );
    let used: Vec<&str> = limits
        .lines()
        .filter(|l| l.contains("total_ram_used"))
        .collect();
    assert!(used.first().is_some_and(|l| l.contains("256")), "{limits}");

    // Delete, with --wait.
    cli.run(&["server", "delete", "--wait", "vm1"]);
    let list = cli.run(&["server", "list"]);
    assert!(!list.contains("vm1"), "{list}");
    cli.run(&["keypair", "delete", "k1"]);
    cli.run(&["flavor", "delete", "lab.flavor"]);
    cli.run(&["image", "delete", "cli-image"]);
}

pub(crate) fn wait_for(cli: &Cli, server: &str, status: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if cli.value(&["server", "show", server], "status") == status {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{server} never reached {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts the `nova-all` binary with `fake_computes` fake computes and
/// the environment overrides `env` (`NOVA_<SECTION>_<KEY>`), and waits
/// for its clouds.yaml; `None` when the CLI is not installed.
pub(crate) fn launch(fake_computes: usize, env: &[(&str, &str)]) -> Option<(NovaAll, Cli)> {
    let exe = openstack()?;
    let dir = temp_dir("cli");
    let (port, image_port, network_port) = (free_port(), free_port(), free_port());
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_nova-all"))
        .args(["--fake-computes", &fake_computes.to_string(), "--state-dir"])
        .arg(&dir)
        .args([
            "--port",
            &port.to_string(),
            "--image-port",
            &image_port.to_string(),
            "--network-port",
            &network_port.to_string(),
        ])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut all = NovaAll {
        child,
        dir: dir.clone(),
    };
    let clouds = dir.join("clouds.yaml");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !clouds.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "nova-all did not start"
        );
        if let Ok(Some(status)) = all.child.try_wait() {
            panic!("nova-all exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((all, Cli { exe, clouds }))
}
