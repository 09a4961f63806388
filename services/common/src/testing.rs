//! For tests that run a service binary as a process: a scratch directory
//! and a free port, the child process, and the wait for its listener; the
//! process is killed and the directory removed when the [`Daemon`] drops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// A port nothing listens on now (the OS's choice).
///
/// # Panics
/// When no local port can be bound.
#[must_use]
#[allow(clippy::expect_used)]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// A service process under test, its directory and its port.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
}

impl Daemon {
    /// A new scratch directory `<tmp>/<name>-<pid>-<port>` for a process
    /// that will listen on a free port; nothing runs yet.
    ///
    /// # Panics
    /// When the directory cannot be created.
    #[must_use]
    #[allow(clippy::expect_used)]
    pub fn new(name: &str) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("{name}-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the daemon's directory");
        Self {
            child: None,
            dir,
            port,
        }
    }

    /// The scratch directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The port the process is to listen on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Writes `text` to `file` in the directory; its path.
    ///
    /// # Panics
    /// When the file cannot be written.
    #[allow(clippy::expect_used)]
    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.dir.join(file);
        std::fs::write(&path, text).expect("a file in the daemon's directory");
        path
    }

    /// A nova database (SQLite) in the directory with the schema
    /// `nova-manage db sync` creates; its URL.
    ///
    /// # Panics
    /// When it cannot be created.
    #[allow(clippy::expect_used)]
    pub async fn nova_database(&self) -> String {
        let url = format!("sqlite:///{}/nova.sqlite", self.dir.display());
        let db = nova_objects::db::Database::connect(&nova_objects::db::DbConfig::new(&url))
            .await
            .expect("the nova database opens");
        db.sync().await.expect("the nova schema is created");
        url
    }

    /// Starts `cmd` as this daemon's process.
    ///
    /// # Panics
    /// When it cannot be started.
    #[allow(clippy::expect_used)]
    pub fn spawn(&mut self, cmd: &mut Command) {
        self.child = Some(cmd.spawn().expect("the daemon starts"));
    }

    /// Runs the API binary `bin` with `--config conf --port <its port>`
    /// and waits until it listens there.
    pub async fn serve(&mut self, bin: &str, conf: &Path) {
        let port = self.port;
        self.spawn(
            Command::new(bin)
                .arg("--config")
                .arg(conf)
                .arg("--port")
                .arg(port.to_string()),
        );
        self.listening(port).await;
    }

    /// Waits (20 s at most) until something accepts connections on `port`.
    ///
    /// # Panics
    /// When nothing does in time.
    pub async fn listening(&self, port: u16) {
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nothing listens on {port} ({})", self.dir.display());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
