//! A RabbitMQ virtual host of a test's or a bench's own: the queues of
//! services that were killed (server queues have no expiry, as in oslo)
//! go with it, and no run inherits another's unread messages. Needs
//! `rabbitmqctl` (root), as the nova-rpc broker tests do.

use std::process::Command;

fn rabbitmqctl(args: &[&str]) -> Result<(), String> {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .env(
            "PATH",
            format!("{}:/usr/sbin", std::env::var("PATH").unwrap_or_default()),
        )
        .output()
        .map_err(|e| format!("rabbitmqctl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Deleted with everything in it when dropped.
pub(crate) struct Vhost {
    name: String,
    /// The transport URL with this virtual host.
    pub(crate) url: String,
}

impl Vhost {
    /// Creates `name` on the local broker, open to the user of `amqp_url`
    /// (`rabbit://user:password@host:port/`), and returns it.
    pub(crate) fn create(amqp_url: &str, name: &str) -> Vhost {
        let base = amqp_url.trim_end_matches('/');
        let base = match base.rfind('/') {
            Some(i) if i > base.find("://").map_or(0, |s| s + 2) => &base[..i],
            _ => base,
        };
        let user = base
            .split("://")
            .nth(1)
            .and_then(|r| r.split([':', '@']).next())
            .unwrap_or("guest");
        rabbitmqctl(&["add_vhost", name])
            .unwrap_or_else(|e| panic!("cannot add vhost {name}: {e}"));
        rabbitmqctl(&["set_permissions", "-p", name, user, ".*", ".*", ".*"])
            .unwrap_or_else(|e| panic!("cannot open vhost {name} to {user}: {e}"));
        Vhost {
            name: name.to_owned(),
            url: format!("{base}/{name}"),
        }
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = rabbitmqctl(&["delete_vhost", &self.name]);
    }
}
