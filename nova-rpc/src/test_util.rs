//! Test support for users of this crate (feature `test-util`).
//!
//! [`OwnRabbit`]: a RabbitMQ node of a test's own, on free ports in a
//! temporary directory, that the test may stop and start at will: the
//! machine's shared broker (5672) is never restarted, so tests that run at
//! the same time are not disturbed. Needs `rabbitmq-server`
//! (`/usr/lib/rabbitmq/bin`); these helpers panic when the node cannot be
//! started (they are for tests only).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on now (bound, read and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

fn wait_for_port(port: u16, within: Duration, what: &str, log: &Path) {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port} within {within:?}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// A RabbitMQ node (`rabbitmq-server` with its own node name, ports,
/// configuration, Mnesia and log directories; no plugins; `guest` may log
/// in from anywhere). Durable queues and persistent messages survive
/// [`OwnRabbit::restart`]. Dropping it stops the node and removes its
/// directory.
#[derive(Debug)]
pub struct OwnRabbit {
    dir: PathBuf,
    port: u16,
    dist_port: u16,
    node: String,
    child: Option<Child>,
    starts: usize,
}

impl OwnRabbit {
    /// Starts a node (`tag` names it and its directory) and waits until it
    /// accepts connections (at most 60 s).
    pub fn start(tag: &str) -> OwnRabbit {
        let dir = std::env::temp_dir().join(format!(
            "nova-rs-rabbit-{tag}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let (port, dist_port) = (free_port(), free_port());
        let write = |name: &str, text: String| {
            std::fs::write(dir.join(name), text).expect("the node's configuration is written");
        };
        write(
            "rabbitmq.conf",
            format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n"),
        );
        // An empty env file: the system's (`NODENAME=rabbit@localhost`) is not read.
        write("rabbitmq-env.conf", String::new());
        write("enabled_plugins", "[].\n".into());
        let mut r = OwnRabbit {
            dir,
            port,
            dist_port,
            node: format!("nova_rs_{tag}@localhost"),
            child: None,
            starts: 0,
        };
        r.launch();
        r
    }

    /// The AMQP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rabbit://guest:guest@127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("rabbit://guest:guest@127.0.0.1:{}/", self.port)
    }

    fn launch(&mut self) {
        self.starts += 1;
        let log = self.dir.join(format!("server-{}.log", self.starts));
        let out = std::fs::File::create(&log).expect("the node's log file");
        let err = out.try_clone().expect("the node's log file");
        let d = |p: &str| self.dir.join(p);
        let child = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server")
            .env("HOME", &self.dir)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf"))
            .env("RABBITMQ_CONF_ENV_FILE", d("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_PID_FILE", d("rabbit.pid"))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("rabbitmq-server must be installed (/usr/lib/rabbitmq/bin)");
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(60), "RabbitMQ", &log);
    }

    /// Stops the node as an operator would (SIGTERM: a clean shutdown;
    /// durable queues and persistent messages are kept on disk); returns
    /// once its port is closed.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let beam = std::fs::read_to_string(self.dir.join("rabbit.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        sigterm(child.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        // The VM itself (its pid file) must be gone before the next start.
        if let Some(pid) = beam {
            let alive = || Path::new(&format!("/proc/{pid}")).exists();
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if alive() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops and starts the node again on the same ports and data: every
    /// connection and every transient queue is lost.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for OwnRabbit {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
