//! `transport_url` parsing, as oslo.messaging reads it:
//! `rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost?option=value`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// One broker host of a [`TransportUrl`].
#[derive(Clone, PartialEq, Eq)]
pub struct TransportHost {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (5672 when absent).
    pub port: u16,
    /// User (`guest` when absent).
    pub username: String,
    /// Password (`guest` when absent).
    pub password: String,
}

impl fmt::Debug for TransportHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportHost")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// A parsed `transport_url`. Several hosts mean failover, tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportUrl {
    /// Driver: `rabbit` (alias `kombu`), or `fake`/`memory` for the in-memory transport.
    pub scheme: String,
    /// Broker hosts.
    pub hosts: Vec<TransportHost>,
    /// Virtual host (`/` when the path is empty).
    pub virtual_host: String,
    /// Query options (override `[oslo_messaging_rabbit]` options).
    pub options: BTreeMap<String, String>,
}

const DEFAULT_PORT: u16 = 5672;

fn percent_decode(s: &str, what: &str, url: &str) -> Result<String, Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            let v = hex
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::InvalidUrl {
                    url: redact(url),
                    reason: format!("bad percent-escape in the {what}"),
                })?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::InvalidUrl {
        url: redact(url),
        reason: format!("the {what} is not UTF-8"),
    })
}

/// The URL with passwords masked, for messages and logs.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (netloc, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let hosts: Vec<String> = netloc
        .split(',')
        .map(|h| match h.rsplit_once('@') {
            Some((cred, host)) => match cred.split_once(':') {
                Some((user, _)) => format!("{user}:***@{host}"),
                None => format!("{cred}@{host}"),
            },
            None => h.to_owned(),
        })
        .collect();
    format!("{scheme}://{}{tail}", hosts.join(","))
}

impl FromStr for TransportUrl {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::InvalidUrl {
            url: redact(url),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected <driver>://[user:pass@]host[:port][,...]/[vhost]"))?;
        let scheme = scheme.to_ascii_lowercase();
        if !matches!(scheme.as_str(), "rabbit" | "kombu" | "fake" | "memory") {
            return Err(bad(
                "unsupported driver: use rabbit:// (RabbitMQ) or fake:// (in memory)",
            ));
        }
        let (before_query, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let (netloc, path) = match before_query.split_once('/') {
            Some((n, p)) => (n, Some(p)),
            None => (before_query, None),
        };
        let mut hosts = Vec::new();
        for part in netloc.split(',').filter(|p| !p.is_empty()) {
            let (cred, hostport) = match part.rsplit_once('@') {
                Some((c, h)) => (Some(c), h),
                None => (None, part),
            };
            let (username, password) = match cred {
                Some(c) => match c.split_once(':') {
                    Some((u, p)) => (
                        percent_decode(u, "user name", url)?,
                        percent_decode(p, "password", url)?,
                    ),
                    None => (percent_decode(c, "user name", url)?, String::new()),
                },
                None => ("guest".to_owned(), "guest".to_owned()),
            };
            let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
                let (h, after) = v6
                    .split_once(']')
                    .ok_or_else(|| bad("unclosed [ in an IPv6 host"))?;
                let port = match after.strip_prefix(':') {
                    Some(p) => Some(p),
                    None if after.is_empty() => None,
                    None => return Err(bad("unexpected text after an IPv6 host")),
                };
                (h.to_owned(), port)
            } else {
                match hostport.rsplit_once(':') {
                    Some((h, p)) => (h.to_owned(), Some(p)),
                    None => (hostport.to_owned(), None),
                }
            };
            let port = match port {
                None | Some("") => DEFAULT_PORT,
                Some(p) => p
                    .parse()
                    .map_err(|_| bad("the port must be a number from 1 to 65535"))?,
            };
            if host.is_empty() {
                return Err(bad("a host is empty"));
            }
            hosts.push(TransportHost {
                host,
                port,
                username,
                password,
            });
        }
        let is_memory = matches!(scheme.as_str(), "fake" | "memory");
        if hosts.is_empty() && !is_memory {
            // oslo's bare `rabbit://` means localhost with default credentials.
            hosts.push(TransportHost {
                host: "localhost".into(),
                port: DEFAULT_PORT,
                username: "guest".into(),
                password: "guest".into(),
            });
        }
        let virtual_host = match path {
            None | Some("") => "/".to_owned(),
            Some(p) => percent_decode(p, "virtual host", url)?,
        };
        let mut options = BTreeMap::new();
        for kv in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|s| !s.is_empty())
        {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            options.insert(
                percent_decode(k, "query", url)?,
                percent_decode(v, "query", url)?,
            );
        }
        Ok(TransportUrl {
            scheme,
            hosts,
            virtual_host,
            options,
        })
    }
}

impl TransportUrl {
    /// True for `fake://` / `memory://`.
    pub fn is_memory(&self) -> bool {
        matches!(self.scheme.as_str(), "fake" | "memory")
    }
}

impl fmt::Display for TransportUrl {
    /// Displays the URL with passwords masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        for (i, h) in self.hosts.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let host = if h.host.contains(':') {
                format!("[{}]", h.host)
            } else {
                h.host.clone()
            };
            write!(f, "{}:***@{}:{}", h.username, host, h.port)?;
        }
        let vhost = if self.virtual_host == "/" {
            ""
        } else {
            &self.virtual_host
        };
        write!(f, "/{vhost}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_oslo_urls() {
        let u: TransportUrl =
            "rabbit://nova:s%40cret@r1:5673,other:pw@[::1]/prod?heartbeat_timeout_threshold=30"
                .parse()
                .unwrap();
        assert_eq!(u.hosts.len(), 2);
        assert_eq!(u.hosts[0].password, "s@cret");
        assert_eq!(u.hosts[0].port, 5673);
        assert_eq!(u.hosts[1].host, "::1");
        assert_eq!(u.hosts[1].port, 5672);
        assert_eq!(u.virtual_host, "prod");
        assert_eq!(u.options["heartbeat_timeout_threshold"], "30");
        let d: TransportUrl = "rabbit://guest:guest@127.0.0.1:5672/".parse().unwrap();
        assert_eq!(d.virtual_host, "/");
        let bare: TransportUrl = "rabbit://".parse().unwrap();
        assert_eq!(bare.hosts[0].host, "localhost");
        assert!("fake://".parse::<TransportUrl>().unwrap().is_memory());
    }

    #[test]
    fn errors_never_show_the_password() {
        for bad in [
            "rabbit://u:topsecret@h:notaport/",
            "zmq://u:topsecret@h/",
            "rabbit://u:topsecret@[::1/",
        ] {
            let e = bad.parse::<TransportUrl>().unwrap_err().to_string();
            assert!(!e.contains("topsecret"), "{e}");
            assert!(e.contains("u:***@"), "{e}");
        }
        let u: TransportUrl = "rabbit://u:topsecret@h/".parse().unwrap();
        assert!(!format!("{u} {u:?}").contains("topsecret"));
    }
}
