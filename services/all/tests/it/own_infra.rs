//! A RabbitMQ node and a PostgreSQL cluster of a test's own, on free
//! ports in a temporary directory, that the test may stop and start at
//! will: the machine's shared broker and database (5672, 5432) are never
//! restarted. Needs root (the PostgreSQL server runs as `postgres`). The
//! node is nova-rpc's (`nova_rpc::test_util::OwnRabbit`, also used by its
//! broker restart test).

use std::path::PathBuf;
use std::process::Command;

pub(crate) use nova_rpc::test_util::OwnRabbit;

use crate::cluster::free_port;
use crate::cluster::temp_dir;

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
