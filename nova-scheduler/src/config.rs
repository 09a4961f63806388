//! Scheduler settings, with nova's option names (`[filter_scheduler]`,
//! `[scheduler]`, `[metrics]`).

/// The default `enabled_filters` of nova 34.
pub const DEFAULT_FILTERS: &[&str] = &[
    "ComputeFilter",
    "ComputeCapabilitiesFilter",
    "ImagePropertiesFilter",
    "ServerGroupAntiAffinityFilter",
    "ServerGroupAffinityFilter",
];

/// Every weigher, in nova's discovery order (the default `weight_classes`).
pub const ALL_WEIGHERS: &[&str] = &[
    "CrossCellWeigher",
    "NumInstancesWeigher",
    "MetricsWeigher",
    "CPUWeigher",
    "BuildFailureWeigher",
    "ServerGroupSoftAffinityWeigher",
    "ServerGroupSoftAntiAffinityWeigher",
    "RAMWeigher",
    "DiskWeigher",
    "PCIWeigher",
    "ImagePropertiesWeigher",
    "IoOpsWeigher",
    "HypervisorVersionWeigher",
];

/// Scheduler configuration. Field names are nova's option names.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// `[filter_scheduler] enabled_filters`, in run order.
    pub enabled_filters: Vec<String>,
    /// `[filter_scheduler] weight_classes` (by weigher name).
    pub weighers: Vec<String>,
    /// `ram_weight_multiplier` (1.0; negative stacks).
    pub ram_weight_multiplier: f64,
    /// `cpu_weight_multiplier` (1.0).
    pub cpu_weight_multiplier: f64,
    /// `disk_weight_multiplier` (1.0).
    pub disk_weight_multiplier: f64,
    /// `io_ops_weight_multiplier` (-1.0).
    pub io_ops_weight_multiplier: f64,
    /// `num_instances_weight_multiplier` (0.0).
    pub num_instances_weight_multiplier: f64,
    /// `soft_affinity_weight_multiplier` (1.0).
    pub soft_affinity_weight_multiplier: f64,
    /// `soft_anti_affinity_weight_multiplier` (1.0).
    pub soft_anti_affinity_weight_multiplier: f64,
    /// `build_failure_weight_multiplier` (1e6, applied negatively).
    pub build_failure_weight_multiplier: f64,
    /// `cross_cell_move_weight_multiplier` (1e6).
    pub cross_cell_move_weight_multiplier: f64,
    /// `hypervisor_version_weight_multiplier` (1.0).
    pub hypervisor_version_weight_multiplier: f64,
    /// `pci_weight_multiplier` (1.0).
    pub pci_weight_multiplier: f64,
    /// `image_props_weight_multiplier` (0.0).
    pub image_props_weight_multiplier: f64,
    /// `[metrics] weight_multiplier` (1.0).
    pub metrics_weight_multiplier: f64,
    /// `[metrics] weight_setting`: `(metric, ratio)` pairs.
    pub metrics_weight_setting: Vec<(String, f64)>,
    /// `[metrics] required` (true).
    pub metrics_required: bool,
    /// `[metrics] weight_of_unavailable` (-10000.0).
    pub metrics_weight_of_unavailable: f64,
    /// `host_subset_size` (1): the chosen host is picked at random among
    /// this many best hosts.
    pub host_subset_size: usize,
    /// `shuffle_best_same_weighed_hosts` (false).
    pub shuffle_best_same_weighed_hosts: bool,
    /// `[scheduler] max_attempts` (3): alternates = max_attempts - 1.
    pub max_attempts: usize,
    /// Return alternates at all.
    pub return_alternates: bool,
    /// `max_instances_per_host` (50).
    pub max_instances_per_host: i64,
    /// `max_io_ops_per_host` (8).
    pub max_io_ops_per_host: i64,
    /// `isolated_hosts`.
    pub isolated_hosts: Vec<String>,
    /// `isolated_images`.
    pub isolated_images: Vec<String>,
    /// `restrict_isolated_hosts_to_isolated_images` (true).
    pub restrict_isolated_hosts_to_isolated_images: bool,
    /// `image_properties_default_architecture` (none).
    pub image_properties_default_architecture: Option<String>,
    /// `aggregate_image_properties_isolation_namespace` (none).
    pub aggregate_image_properties_isolation_namespace: Option<String>,
    /// `aggregate_image_properties_isolation_separator` (".").
    pub aggregate_image_properties_isolation_separator: String,
    /// `[DEFAULT] service_down_time` (60 s).
    pub service_down_time: f64,
    /// Seed of the random choice among `host_subset_size` hosts.
    pub seed: u64,
    /// `[scheduler] max_placement_results` (1000): allocation candidates asked for.
    pub max_placement_results: usize,
    /// `[scheduler] limit_tenants_to_placement_aggregate` (false).
    pub limit_tenants_to_placement_aggregate: bool,
    /// `[scheduler] placement_aggregate_required_for_tenants` (false).
    pub placement_aggregate_required_for_tenants: bool,
    /// `[scheduler] query_placement_for_image_type_support` (false).
    pub query_placement_for_image_type_support: bool,
    /// `[scheduler] enable_isolated_aggregate_filtering` (false).
    pub enable_isolated_aggregate_filtering: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            enabled_filters: DEFAULT_FILTERS.iter().map(|s| (*s).to_owned()).collect(),
            weighers: ALL_WEIGHERS.iter().map(|s| (*s).to_owned()).collect(),
            ram_weight_multiplier: 1.0,
            cpu_weight_multiplier: 1.0,
            disk_weight_multiplier: 1.0,
            io_ops_weight_multiplier: -1.0,
            num_instances_weight_multiplier: 0.0,
            soft_affinity_weight_multiplier: 1.0,
            soft_anti_affinity_weight_multiplier: 1.0,
            build_failure_weight_multiplier: 1_000_000.0,
            cross_cell_move_weight_multiplier: 1_000_000.0,
            hypervisor_version_weight_multiplier: 1.0,
            pci_weight_multiplier: 1.0,
            image_props_weight_multiplier: 0.0,
            metrics_weight_multiplier: 1.0,
            metrics_weight_setting: Vec::new(),
            metrics_required: true,
            metrics_weight_of_unavailable: -10000.0,
            host_subset_size: 1,
            shuffle_best_same_weighed_hosts: false,
            max_attempts: 3,
            return_alternates: true,
            max_instances_per_host: 50,
            max_io_ops_per_host: 8,
            isolated_hosts: Vec::new(),
            isolated_images: Vec::new(),
            restrict_isolated_hosts_to_isolated_images: true,
            image_properties_default_architecture: None,
            aggregate_image_properties_isolation_namespace: None,
            aggregate_image_properties_isolation_separator: ".".into(),
            service_down_time: 60.0,
            seed: 0,
            max_placement_results: 1000,
            limit_tenants_to_placement_aggregate: false,
            placement_aggregate_required_for_tenants: false,
            query_placement_for_image_type_support: false,
            enable_isolated_aggregate_filtering: false,
        }
    }
}

impl SchedulerConfig {
    /// Sets a `[filter_scheduler]` / `[scheduler]` / `[metrics]` option by
    /// its nova name from its string form (nova.conf). Unknown names and
    /// bad values are errors that name the option.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), crate::Error> {
        let bad = || crate::Error::Config(format!("{name}: invalid value {value:?}"));
        let f = || value.trim().parse::<f64>().map_err(|_| bad());
        let i = || value.trim().parse::<i64>().map_err(|_| bad());
        let b = || match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(bad()),
        };
        let list = || -> Vec<String> {
            value
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        match name {
            "enabled_filters" => self.enabled_filters = list(),
            "weight_classes" => self.weighers = list(),
            "ram_weight_multiplier" => self.ram_weight_multiplier = f()?,
            "cpu_weight_multiplier" => self.cpu_weight_multiplier = f()?,
            "disk_weight_multiplier" => self.disk_weight_multiplier = f()?,
            "io_ops_weight_multiplier" => self.io_ops_weight_multiplier = f()?,
            "num_instances_weight_multiplier" => self.num_instances_weight_multiplier = f()?,
            "soft_affinity_weight_multiplier" => self.soft_affinity_weight_multiplier = f()?,
            "soft_anti_affinity_weight_multiplier" => {
                self.soft_anti_affinity_weight_multiplier = f()?
            }
            "build_failure_weight_multiplier" => self.build_failure_weight_multiplier = f()?,
            "cross_cell_move_weight_multiplier" => self.cross_cell_move_weight_multiplier = f()?,
            "hypervisor_version_weight_multiplier" => {
                self.hypervisor_version_weight_multiplier = f()?
            }
            "pci_weight_multiplier" => self.pci_weight_multiplier = f()?,
            "image_props_weight_multiplier" => self.image_props_weight_multiplier = f()?,
            "weight_multiplier" | "metrics_weight_multiplier" => {
                self.metrics_weight_multiplier = f()?
            }
            "weight_setting" => {
                self.metrics_weight_setting = value
                    .split(',')
                    .filter_map(|kv| {
                        let (k, v) = kv.split_once('=')?;
                        Some((k.trim().to_owned(), v.trim().parse().ok()?))
                    })
                    .collect()
            }
            "required" => self.metrics_required = b()?,
            "weight_of_unavailable" => self.metrics_weight_of_unavailable = f()?,
            "host_subset_size" => {
                let n = i()?;
                if n < 1 {
                    return Err(bad());
                }
                self.host_subset_size = n as usize;
            }
            "shuffle_best_same_weighed_hosts" => self.shuffle_best_same_weighed_hosts = b()?,
            "max_attempts" => {
                let n = i()?;
                if n < 1 {
                    return Err(bad());
                }
                self.max_attempts = n as usize;
            }
            "max_instances_per_host" => self.max_instances_per_host = i()?,
            "max_io_ops_per_host" => self.max_io_ops_per_host = i()?,
            "isolated_hosts" => self.isolated_hosts = list(),
            "isolated_images" => self.isolated_images = list(),
            "restrict_isolated_hosts_to_isolated_images" => {
                self.restrict_isolated_hosts_to_isolated_images = b()?
            }
            "image_properties_default_architecture" => {
                self.image_properties_default_architecture = Some(value.trim().to_owned())
            }
            "aggregate_image_properties_isolation_namespace" => {
                self.aggregate_image_properties_isolation_namespace = Some(value.trim().to_owned())
            }
            "aggregate_image_properties_isolation_separator" => {
                self.aggregate_image_properties_isolation_separator = value.to_owned()
            }
            "service_down_time" => self.service_down_time = f()?,
            "max_placement_results" => {
                let n = i()?;
                if n < 1 {
                    return Err(bad());
                }
                self.max_placement_results = n as usize;
            }
            "limit_tenants_to_placement_aggregate" => {
                self.limit_tenants_to_placement_aggregate = b()?
            }
            "placement_aggregate_required_for_tenants" => {
                self.placement_aggregate_required_for_tenants = b()?
            }
            "query_placement_for_image_type_support" => {
                self.query_placement_for_image_type_support = b()?
            }
            "enable_isolated_aggregate_filtering" => {
                self.enable_isolated_aggregate_filtering = b()?
            }
            _ => {
                return Err(crate::Error::Config(format!(
                    "unknown scheduler option {name}"
                )));
            }
        }
        Ok(())
    }
}
