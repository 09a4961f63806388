//! A RabbitMQ node and a PostgreSQL cluster of a test's own, on free
//! ports in a temporary directory, that the test may stop and start at
//! will: the machine's shared broker and database (5672, 5432) are never
//! restarted. Needs root (the PostgreSQL server runs as `postgres`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::temp_dir;
use crate::multiprocess::free_port;

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
/// configuration, Mnesia and log directories; no plugins). Durable queues
/// and persistent messages survive [`OwnRabbit::restart`].
pub(crate) struct OwnRabbit {
    dir: PathBuf,
    pub(crate) port: u16,
    dist_port: u16,
    node: String,
    child: Option<Child>,
    starts: usize,
}

impl OwnRabbit {
    /// Starts the node and waits until it accepts connections.
    pub(crate) fn start(tag: &str) -> OwnRabbit {
        let dir = temp_dir(&format!("rabbit-{tag}"));
        let (port, dist_port) = (free_port(), free_port());
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n"),
        )
        .unwrap();
        // An empty env file: the system's (`NODENAME=rabbit@localhost`) is not read.
        std::fs::write(dir.join("rabbitmq-env.conf"), "").unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
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

    /// `rabbit://guest:guest@127.0.0.1:<port>/`.
    pub(crate) fn url(&self) -> String {
        format!("rabbit://guest:guest@127.0.0.1:{}/", self.port)
    }

    fn launch(&mut self) {
        self.starts += 1;
        let log = self.dir.join(format!("server-{}.log", self.starts));
        let out = std::fs::File::create(&log).unwrap();
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
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("rabbitmq-server must be installed (/usr/lib/rabbitmq/bin)");
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(60), "RabbitMQ", &log);
    }

    /// Stops the node as an operator would (SIGTERM: a clean shutdown;
    /// durable queues and persistent messages are kept on disk).
    pub(crate) fn stop(&mut self) {
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

    /// Stops and starts the node again on the same ports and data.
    pub(crate) fn restart(&mut self) {
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

/// A PostgreSQL cluster (`initdb` + `pg_ctl` from
/// `/usr/lib/postgresql/<version>/bin`, run as `postgres`), trust
/// authentication on 127.0.0.1 and a free port.
pub(crate) struct OwnPostgres {
    dir: PathBuf,
    bin: PathBuf,
    pub(crate) port: u16,
}

impl OwnPostgres {
    /// Creates and starts the cluster.
    pub(crate) fn start(tag: &str) -> OwnPostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries (/usr/lib/postgresql/<version>/bin)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("pg_ctl").exists())
            .max()
            .expect("no /usr/lib/postgresql/<version>/bin/pg_ctl");
        let dir = temp_dir(&format!("pg-{tag}"));
        let pg = OwnPostgres {
            dir,
            bin,
            port: free_port(),
        };
        let chown = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(&pg.dir)
            .status()
            .unwrap();
        assert!(chown.success(), "chown postgres {}", pg.dir.display());
        pg.as_postgres(&format!(
            "{} -D {}/data -A trust -U postgres -E UTF8 --no-sync",
            pg.bin.join("initdb").display(),
            pg.dir.display()
        ));
        pg.start_server();
        pg
    }

    fn as_postgres(&self, cmd: &str) {
        let out = Command::new("su")
            .args(["postgres", "-s", "/bin/sh", "-c", cmd])
            .current_dir(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start_server(&self) {
        self.as_postgres(&format!(
            "{} -D {d}/data -l {d}/server.log -w -t 60 -o '-p {p} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300' start",
            self.bin.join("pg_ctl").display(),
            d = self.dir.display(),
            p = self.port
        ));
    }

    fn stop_server(&self, mode: &str) {
        let _ = Command::new("su")
            .args([
                "postgres",
                "-s",
                "/bin/sh",
                "-c",
                &format!(
                    "{} -D {}/data -m {mode} -w -t 60 stop",
                    self.bin.join("pg_ctl").display(),
                    self.dir.display()
                ),
            ])
            .output();
    }

    /// `postgres://postgres@127.0.0.1:<port>/<db>`.
    pub(crate) fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Restarts the server (`pg_ctl stop -m fast`: every connection is cut).
    pub(crate) fn restart(&self) {
        self.stop_server("fast");
        self.start_server();
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.stop_server("immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
