//! nova.conf: INI with oslo.config names and environment overrides.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// A configuration error: the option and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError(pub String);

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfError {}

/// Options every service knows, `(section, key)`; sections ending in `*`
/// accept any key (they are validated by the library that reads them).
pub const KNOWN_OPTIONS: &[(&str, &str)] = &[
    ("DEFAULT", "transport_url"),
    ("DEFAULT", "host"),
    ("DEFAULT", "my_ip"),
    ("DEFAULT", "debug"),
    ("DEFAULT", "state_path"),
    ("DEFAULT", "control_exchange"),
    ("DEFAULT", "rpc_response_timeout"),
    ("DEFAULT", "long_rpc_timeout"),
    ("DEFAULT", "report_interval"),
    ("DEFAULT", "service_down_time"),
    ("DEFAULT", "periodic_enable"),
    ("DEFAULT", "periodic_fuzzy_delay"),
    ("DEFAULT", "compute_driver"),
    ("DEFAULT", "max_concurrent_builds"),
    ("DEFAULT", "update_resources_interval"),
    ("DEFAULT", "sync_power_state_interval"),
    ("DEFAULT", "reclaim_instance_interval"),
    ("DEFAULT", "instance_usage_audit"),
    ("DEFAULT", "instance_usage_audit_period"),
    ("DEFAULT", "instance_build_timeout"),
    ("DEFAULT", "allow_resize_to_same_host"),
    ("DEFAULT", "resize_confirm_window"),
    ("DEFAULT", "reserved_host_memory_mb"),
    ("DEFAULT", "reserved_host_disk_mb"),
    ("DEFAULT", "reserved_host_cpus"),
    ("DEFAULT", "cpu_allocation_ratio"),
    ("DEFAULT", "ram_allocation_ratio"),
    ("DEFAULT", "disk_allocation_ratio"),
    ("DEFAULT", "initial_cpu_allocation_ratio"),
    ("DEFAULT", "initial_ram_allocation_ratio"),
    ("DEFAULT", "initial_disk_allocation_ratio"),
    ("DEFAULT", "default_availability_zone"),
    ("DEFAULT", "internal_service_availability_zone"),
    ("DEFAULT", "osapi_compute_listen"),
    ("DEFAULT", "osapi_compute_listen_port"),
    ("DEFAULT", "instance_name_template"),
    // The metadata API and config drives.
    ("DEFAULT", "enabled_apis"),
    ("DEFAULT", "metadata_listen"),
    ("DEFAULT", "metadata_listen_port"),
    ("DEFAULT", "metadata_workers"),
    ("DEFAULT", "force_config_drive"),
    ("DEFAULT", "config_drive_format"),
    ("DEFAULT", "mkisofs_cmd"),
    ("DEFAULT", "instances_path"),
    ("neutron", "*"),
    ("network", "*"),
    ("nova", "*"),
    ("keystone_authtoken", "*"),
    ("service_user", "*"),
    ("DEFAULT", "vif_plugging_timeout"),
    ("DEFAULT", "vif_plugging_is_fatal"),
    ("neutron", "service_metadata_proxy"),
    ("neutron", "metadata_proxy_shared_secret"),
    ("neutron", "endpoint_override"),
    ("neutron", "token"),
    ("api", "metadata_cache_expiration"),
    ("api", "local_metadata_per_cell"),
    ("api", "dhcp_domain"),
    ("api", "use_forwarded_for"),
    ("api", "config_drive_skip_versions"),
    ("api", "vendordata_providers"),
    ("api", "vendordata_jsonfile_path"),
    ("api", "vendordata_dynamic_targets"),
    ("api", "vendordata_dynamic_connect_timeout"),
    ("api", "vendordata_dynamic_read_timeout"),
    ("api", "vendordata_dynamic_failure_fatal"),
    ("glance", "api_servers"),
    ("database", "connection"),
    ("database", "max_pool_size"),
    ("database", "pool_timeout"),
    ("database", "connection_debug"),
    ("placement_database", "connection"),
    ("cors", "*"),
    ("api", "auth_strategy"),
    ("keystone_authtoken", "*"),
    ("oslo_policy", "*"),
    ("api", "max_limit"),
    ("api", "enable_instance_password"),
    ("api", "compute_link_prefix"),
    ("scheduler", "*"),
    ("filter_scheduler", "*"),
    ("quota", "*"),
    ("upgrade_levels", "*"),
    ("libvirt", "*"),
    ("vnc", "*"),
    ("spice", "*"),
    ("serial_console", "*"),
    ("mks", "*"),
    ("consoleauth", "*"),
    ("console", "*"),
    ("DEFAULT", "web"),
    ("DEFAULT", "ssl_only"),
    ("DEFAULT", "cert"),
    ("DEFAULT", "key"),
    ("identity", "*"),
    ("image", "*"),
    ("fake", "*"),
    ("oslo_messaging_rabbit", "*"),
    ("placement", "*"),
    ("notifications", "notification_format"),
    ("notifications", "versioned_notifications_topics"),
    ("notifications", "notify_on_state_change"),
    ("notifications", "bdms_in_notifications"),
    ("notifications", "include_share_mapping"),
    ("notifications", "default_level"),
    ("oslo_messaging_notifications", "driver"),
    ("oslo_messaging_notifications", "transport_url"),
    ("oslo_messaging_notifications", "topics"),
    ("metrics", "enabled"),
    ("metrics", "host"),
    ("metrics", "port"),
];

/// A parsed nova.conf.
#[derive(Debug, Clone, Default)]
pub struct Conf {
    sections: BTreeMap<String, BTreeMap<String, String>>,
}

impl Conf {
    /// An empty configuration (every option at its default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses INI text (`[section]`, `key = value`, `#`/`;` comments).
    pub fn parse(text: &str) -> Result<Self, ConfError> {
        let ini = ini::Ini::load_from_str_noescape(text)
            .map_err(|e| ConfError(format!("nova.conf: {e}")))?;
        let mut conf = Conf::new();
        for (section, props) in ini.iter() {
            let section = section.unwrap_or("DEFAULT");
            for (k, v) in props.iter() {
                conf.set(section, k, v);
            }
        }
        Ok(conf)
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ConfError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfError(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| ConfError(format!("{}: {e}", path.display())))
    }

    /// Applies `NOVA_<SECTION>_<KEY>=value` overrides from `vars` (section
    /// names case-insensitive; `NOVA_DEFAULT_HOST`, `NOVA_DATABASE_CONNECTION`).
    pub fn apply_env<I: IntoIterator<Item = (String, String)>>(&mut self, vars: I) {
        let known_sections: Vec<&str> = KNOWN_OPTIONS.iter().map(|(s, _)| *s).collect();
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix("NOVA_") else {
                continue;
            };
            let lower = rest.to_ascii_lowercase();
            // The longest known section that prefixes the name.
            let mut best: Option<&str> = None;
            for s in &known_sections {
                let prefix = format!("{}_", s.to_ascii_lowercase());
                if lower.starts_with(&prefix) && best.is_none_or(|b| b.len() < s.len()) {
                    best = Some(s);
                }
            }
            if let Some(section) = best {
                let key = &lower[section.len() + 1..];
                self.set(section, key, &value);
            }
        }
    }

    /// Sets an option.
    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        let section = if section.eq_ignore_ascii_case("default") {
            "DEFAULT"
        } else {
            section
        };
        self.sections
            .entry(section.to_owned())
            .or_default()
            .insert(key.trim().to_owned(), value.trim().to_owned());
    }

    /// The options not in [`KNOWN_OPTIONS`] (to warn about).
    pub fn unknown_options(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (s, keys) in &self.sections {
            for k in keys.keys() {
                let known = KNOWN_OPTIONS
                    .iter()
                    .any(|(ks, kk)| ks == s && (*kk == "*" || kk == k));
                if !known {
                    out.push(format!("[{s}] {k}"));
                }
            }
        }
        out
    }

    /// A raw value.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.sections
            .get(section)
            .and_then(|s| s.get(key))
            .map(String::as_str)
    }

    /// Every option of a section.
    pub fn section(&self, section: &str) -> BTreeMap<String, String> {
        self.sections.get(section).cloned().unwrap_or_default()
    }

    /// A string with a default.
    pub fn str_or(&self, section: &str, key: &str, default: &str) -> String {
        self.get(section, key)
            .filter(|v| !v.is_empty())
            .unwrap_or(default)
            .to_owned()
    }

    /// A typed value with a default; an unparsable value is an error
    /// naming the option.
    pub fn parse_or<T: FromStr>(
        &self,
        section: &str,
        key: &str,
        default: T,
    ) -> Result<T, ConfError> {
        match self.get(section, key).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v.parse::<T>().map_err(|_| {
                ConfError(format!(
                    "invalid value '{v}' for [{section}] {key}: expected {}",
                    std::any::type_name::<T>()
                        .rsplit("::")
                        .next()
                        .unwrap_or("a value")
                ))
            }),
        }
    }

    /// A boolean (`true/false/yes/no/1/0/on/off`).
    pub fn bool_or(&self, section: &str, key: &str, default: bool) -> Result<bool, ConfError> {
        match self
            .get(section, key)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") => Ok(default),
            Some("true" | "yes" | "1" | "on") => Ok(true),
            Some("false" | "no" | "0" | "off") => Ok(false),
            Some(v) => Err(ConfError(format!(
                "invalid value '{v}' for [{section}] {key}: expected true or false"
            ))),
        }
    }

    /// A comma-separated list.
    pub fn list(&self, section: &str, key: &str) -> Option<Vec<String>> {
        self.get(section, key).map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }

    /// `[DEFAULT] host`, or the machine's host name.
    pub fn host(&self) -> String {
        self.get("DEFAULT", "host")
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned())
    }

    /// `[DEFAULT] transport_url` (default `memory://`).
    pub fn transport_url(&self) -> String {
        self.str_or("DEFAULT", "transport_url", "memory://")
    }

    /// `[database] connection` (default: a SQLite file under `state_path`).
    pub fn database_connection(&self) -> String {
        match self.get("database", "connection").filter(|v| !v.is_empty()) {
            Some(c) => c.to_owned(),
            None => format!(
                "sqlite:{}/nova.sqlite",
                self.str_or("DEFAULT", "state_path", "/var/lib/nova")
            ),
        }
    }

    /// `[placement_database] connection`, defaulting to `[database] connection`.
    pub fn placement_connection(&self) -> String {
        self.get("placement_database", "connection")
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| self.database_connection())
    }

    /// `report_interval` and `service_down_time`, in seconds.
    pub fn service_group(&self) -> Result<(u64, u64), ConfError> {
        let report = self.parse_or("DEFAULT", "report_interval", 10u64)?;
        let down = self.parse_or("DEFAULT", "service_down_time", 60u64)?;
        if report == 0 || down <= report {
            return Err(ConfError(format!(
                "[DEFAULT] service_down_time ({down}) must be greater than report_interval ({report}), which must be positive"
            )));
        }
        Ok((report, down))
    }

    /// `[DEFAULT] instance_build_timeout` in seconds (nova's default 0:
    /// none): how long an instance may stay building before the conductor
    /// (unscheduled) or its compute puts it in ERROR.
    pub fn instance_build_timeout(&self) -> Result<Option<std::time::Duration>, ConfError> {
        let t = self.parse_or("DEFAULT", "instance_build_timeout", 0u64)?;
        Ok((t > 0).then(|| std::time::Duration::from_secs(t)))
    }
}

impl Conf {
    /// What a service binary does first: reads `--config` files (later
    /// ones override), applies `NOVA_*` environment overrides, starts
    /// logging, and warns about options nothing reads.
    pub fn for_service(paths: &[std::path::PathBuf]) -> Result<Self, ConfError> {
        let mut conf = Conf::new();
        for p in paths {
            let more = Conf::load(p)?;
            for (s, keys) in more.sections {
                for (k, v) in keys {
                    conf.set(&s, &k, &v);
                }
            }
        }
        conf.apply_env(std::env::vars());
        crate::init_tracing(conf.bool_or("DEFAULT", "debug", false)?);
        for o in conf.unknown_options() {
            tracing::warn!(option = %o, "unknown option ignored");
        }
        Ok(conf)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_env_and_types() {
        let mut c = Conf::parse(
            "[DEFAULT]\nhost = cmp1\nreport_interval = 5\n# comment\n[database]\nconnection = sqlite::memory:\n[bogus]\nx = 1\n",
        )
        .unwrap();
        assert_eq!(c.host(), "cmp1");
        assert_eq!(c.service_group().unwrap(), (5, 60));
        c.apply_env([
            ("NOVA_DEFAULT_HOST".to_owned(), "cmp2".to_owned()),
            (
                "NOVA_FILTER_SCHEDULER_HOST_SUBSET_SIZE".to_owned(),
                "2".to_owned(),
            ),
            ("HOME".to_owned(), "/root".to_owned()),
        ]);
        assert_eq!(c.host(), "cmp2");
        assert_eq!(c.get("filter_scheduler", "host_subset_size"), Some("2"));
        assert_eq!(c.unknown_options(), vec!["[bogus] x".to_owned()]);
        c.set("DEFAULT", "report_interval", "ten");
        let e = c.service_group().unwrap_err().to_string();
        assert!(e.contains("[DEFAULT] report_interval"), "{e}");
        c.set("DEFAULT", "report_interval", "60");
        assert!(
            c.service_group().is_err(),
            "down time must exceed the interval"
        );
        assert!(c.bool_or("DEFAULT", "debug", false).is_ok());
        c.set("DEFAULT", "debug", "maybe");
        assert!(c.bool_or("DEFAULT", "debug", false).is_err());
    }
}
