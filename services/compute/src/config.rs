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
    /// `[DEFAULT] instance_build_timeout` (0, nova's default: none): an
    /// instance of this host still building after this long goes to ERROR
    /// (nova's `_check_instance_build_time`).
    pub instance_build_timeout: Option<Duration>,
    /// `[DEFAULT] instance_name_template` (`instance-%08x`): the
    /// hypervisor's name of an instance.
    pub instance_name_template: String,
    /// `[DEFAULT] force_config_drive`: every instance gets a config drive.
    pub force_config_drive: bool,
    /// What config drives tell (`[api]` options, as the metadata API).
    pub metadata: nova_metadata::MetadataConfig,
    /// Vendor data on config drives (`[api] vendordata_*`).
    pub vendor: std::sync::Arc<nova_metadata::VendorConfig>,
    /// `[DEFAULT] resize_confirm_window` (none: 0, never): resizes
    /// finished on this host longer ago are confirmed automatically.
    pub resize_confirm_window: Option<Duration>,
    /// `[DEFAULT] shelved_offload_time` (s): 0 offloads a shelved
    /// instance at once, -1 never, otherwise the periodic task offloads
    /// those shelved longer.
    pub shelved_offload_time: i64,
    /// `[DEFAULT] shelved_poll_interval` (s, 3600; ≤ 0 off).
    pub shelved_poll_interval: i64,
    /// `[DEFAULT] instance_usage_audit` (default false): the periodic
    /// usage audit (`instance.exists` for every instance of the last
    /// completed period, recorded in the task log).
    pub instance_usage_audit: bool,
    /// `[DEFAULT] instance_usage_audit_period` (default `month`).
    pub audit_period: nova_service::audit_period::AuditPeriod,
    /// `[glance] api_servers`: the image API (none: the image endpoint of
    /// the request's service catalog, as nova's keystoneauth does).
    pub glance_api_servers: Vec<String>,
    /// The console options (`[vnc]`, `[spice]`, `[serial_console]`,
    /// `[mks]`, `[consoleauth] token_ttl`).
    pub consoles: nova_service::consoles::ConsoleOptions,
    /// `[DEFAULT] vif_plugging_timeout` (300 s; 0: no wait for
    /// `network-vif-plugged`).
    pub vif_plugging_timeout: Duration,
    /// `[DEFAULT] vif_plugging_is_fatal` (true): a build whose VIFs were
    /// not plugged in time fails.
    pub vif_plugging_is_fatal: bool,
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
            instance_build_timeout: None,
            instance_name_template: nova_service::instance_name::DEFAULT_TEMPLATE.into(),
            force_config_drive: false,
            metadata: nova_metadata::MetadataConfig::default(),
            vendor: std::sync::Arc::default(),
            resize_confirm_window: None,
            shelved_offload_time: 0,
            shelved_poll_interval: 3600,
            instance_usage_audit: false,
            audit_period: Default::default(),
            glance_api_servers: Vec::new(),
            consoles: Default::default(),
            vif_plugging_timeout: Duration::from_secs(300),
            vif_plugging_is_fatal: true,
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
        c.instance_build_timeout = conf.instance_build_timeout()?;
        c.instance_name_template = nova_service::instance_name::template(conf);
        c.force_config_drive = conf.bool_or("DEFAULT", "force_config_drive", false)?;
        c.metadata = nova_metadata::MetadataConfig::from_conf(conf);
        c.vendor = std::sync::Arc::new(nova_metadata::VendorConfig::from_conf(conf)?);
        let window = conf.parse_or("DEFAULT", "resize_confirm_window", 0i64)?;
        c.resize_confirm_window = (window > 0).then(|| Duration::from_secs(window as u64));
        c.shelved_offload_time = conf.parse_or("DEFAULT", "shelved_offload_time", 0i64)?;
        c.shelved_poll_interval = conf.parse_or("DEFAULT", "shelved_poll_interval", 3600i64)?;
        c.instance_usage_audit = conf.bool_or("DEFAULT", "instance_usage_audit", false)?;
        c.audit_period = nova_service::audit_period::AuditPeriod::from_conf(conf)?;
        c.glance_api_servers = conf
            .str_or("glance", "api_servers", "")
            .split(',')
            .map(|s| s.trim().trim_end_matches('/').to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        c.consoles = nova_service::consoles::ConsoleOptions::from_conf(conf)?;
        c.vif_plugging_timeout =
            Duration::from_secs(conf.parse_or("DEFAULT", "vif_plugging_timeout", 300u64)?);
        c.vif_plugging_is_fatal = conf.bool_or("DEFAULT", "vif_plugging_is_fatal", true)?;
        Ok(c)
    }
}
