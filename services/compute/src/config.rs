//! The compute service's settings (nova.conf names).

use std::time::Duration;

/// Compute settings (nova.conf names).
#[derive(Debug, Clone)]
pub struct ComputeConfig {
    /// `[DEFAULT] host`.
    pub host: String,
    /// `[DEFAULT] report_interval`.
    pub report_interval: Duration,
    /// `[DEFAULT] update_resources_interval` (0 = 60 s).
    pub update_resources_interval: Duration,
    /// `[DEFAULT] sync_power_state_interval`.
    pub sync_power_state_interval: Duration,
    /// `[DEFAULT] max_concurrent_builds`.
    pub max_concurrent_builds: usize,
    /// How long `stop_instance` lets the guest shut down cleanly.
    pub shutdown_timeout: Duration,
    /// `[DEFAULT] reclaim_instance_interval` (none: 0, deletes are
    /// immediate): soft-deleted instances older than this are reclaimed,
    /// checked that often.
    pub reclaim_instance_interval: Option<Duration>,
    /// The console options (`[vnc]`, `[spice]`, `[serial_console]`,
    /// `[mks]`, `[consoleauth] token_ttl`).
    pub consoles: nova_service::consoles::ConsoleOptions,
}

impl ComputeConfig {
    /// Defaults for `host`.
    pub fn new(host: &str) -> Self {
        ComputeConfig {
            host: host.to_owned(),
            report_interval: Duration::from_secs(10),
            update_resources_interval: Duration::from_secs(60),
            sync_power_state_interval: Duration::from_secs(600),
            max_concurrent_builds: 10,
            shutdown_timeout: Duration::from_secs(60),
            reclaim_instance_interval: None,
            consoles: Default::default(),
        }
    }

    /// From nova.conf.
    pub fn from_conf(conf: &nova_service::Conf) -> anyhow::Result<Self> {
        let mut c = Self::new(&conf.host());
        let (report, _) = conf.service_group()?;
        c.report_interval = Duration::from_secs(report);
        let upd = conf.parse_or("DEFAULT", "update_resources_interval", 0u64)?;
        c.update_resources_interval = Duration::from_secs(if upd == 0 { 60 } else { upd });
        c.sync_power_state_interval =
            Duration::from_secs(conf.parse_or("DEFAULT", "sync_power_state_interval", 600u64)?);
        c.max_concurrent_builds = conf
            .parse_or("DEFAULT", "max_concurrent_builds", 10usize)?
            .max(1);
        let reclaim = conf.parse_or("DEFAULT", "reclaim_instance_interval", 0i64)?;
        c.reclaim_instance_interval = (reclaim > 0).then(|| Duration::from_secs(reclaim as u64));
        c.consoles = nova_service::consoles::ConsoleOptions::from_conf(conf)?;
        Ok(c)
    }
}
