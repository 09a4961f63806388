//! What the scheduler knows of one compute node (nova's `HostState`).

use std::collections::{BTreeMap, BTreeSet};

/// A host aggregate: metadata shared by its member hosts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregate {
    /// Nova's aggregate id.
    pub id: i64,
    /// Aggregate uuid (Placement aggregate).
    pub uuid: String,
    /// Unique name.
    pub name: String,
    /// Metadata (`availability_zone`, `filter_tenant_id`, multipliers, ...).
    pub metadata: BTreeMap<String, String>,
}

/// The service behind a compute node, as the service group sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceInfo {
    /// Administratively disabled.
    pub disabled: bool,
    /// Why.
    pub disabled_reason: Option<String>,
    /// Forced down by an operator.
    pub forced_down: bool,
    /// Seconds since the last heartbeat.
    pub seconds_since_heartbeat: f64,
}

/// A resource inventory beyond VCPU/MEMORY_MB/DISK_GB (or overriding them):
/// Placement's inventory record with its current usage.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// Total amount.
    pub total: i64,
    /// Reserved for the host.
    pub reserved: i64,
    /// Overcommit ratio.
    pub allocation_ratio: f64,
    /// Used by allocations.
    pub used: f64,
    /// Largest single allocation.
    pub max_unit: i64,
}

impl Inventory {
    /// Placement's capacity check: `used + amount <= (total - reserved) * ratio`
    /// and `amount <= max_unit`.
    pub fn fits(&self, amount: i64) -> bool {
        let cap = (self.total - self.reserved) as f64 * self.allocation_ratio;
        self.used + amount as f64 <= cap && amount <= self.max_unit
    }
}

/// One compute node as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostState {
    /// Compute service host name.
    pub host: String,
    /// Hypervisor host name (node).
    pub nodename: String,
    /// Compute node uuid (the root resource provider).
    pub uuid: String,
    /// Cell uuid.
    pub cell_uuid: String,
    /// Physical CPUs.
    pub vcpus_total: i64,
    /// CPUs in use.
    pub vcpus_used: i64,
    /// Memory (MiB).
    pub total_usable_ram_mb: i64,
    /// Free memory (MiB, may be negative).
    pub free_ram_mb: i64,
    /// Disk (GiB).
    pub total_usable_disk_gb: i64,
    /// Free disk (MiB).
    pub free_disk_mb: i64,
    /// Disk used (MiB).
    pub disk_mb_used: i64,
    /// CPU overcommit.
    pub cpu_allocation_ratio: f64,
    /// RAM overcommit.
    pub ram_allocation_ratio: f64,
    /// Disk overcommit.
    pub disk_allocation_ratio: f64,
    /// Instances on the host.
    pub num_instances: i64,
    /// Instances in I/O-heavy task states.
    pub num_io_ops: i64,
    /// Recent failed builds.
    pub failed_builds: i64,
    /// Hypervisor type (`QEMU`).
    pub hypervisor_type: String,
    /// Hypervisor version, nova's integer form (8.2.0 = 8002000).
    pub hypervisor_version: i64,
    /// `cpu_info` JSON.
    pub cpu_info: serde_json::Value,
    /// `[arch, hv_type, vm_mode]` triples.
    pub supported_instances: Vec<[String; 3]>,
    /// Host IP (SimpleCIDRAffinityFilter).
    pub host_ip: String,
    /// Compute node stats.
    pub stats: BTreeMap<String, String>,
    /// Metrics by name.
    pub metrics: BTreeMap<String, f64>,
    /// Indices into the scheduler's aggregate list.
    pub aggregates: Vec<usize>,
    /// Instance uuids on the host.
    pub instances: BTreeSet<String>,
    /// The service.
    pub service: ServiceInfo,
    /// Reserved VCPU / MEMORY_MB / DISK_GB (Placement inventories).
    pub reserved_vcpus: i64,
    /// Reserved memory (MiB).
    pub reserved_memory_mb: i64,
    /// Reserved disk (GiB).
    pub reserved_disk_gb: i64,
    /// Other inventories by resource class.
    pub inventories: BTreeMap<String, Inventory>,
    /// Traits of the root provider.
    pub traits: BTreeSet<String>,
}

impl Default for HostState {
    fn default() -> Self {
        HostState {
            host: String::new(),
            nodename: String::new(),
            uuid: String::new(),
            cell_uuid: String::new(),
            vcpus_total: 16,
            vcpus_used: 0,
            total_usable_ram_mb: 32768,
            free_ram_mb: 32768,
            total_usable_disk_gb: 500,
            free_disk_mb: 500 * 1024,
            disk_mb_used: 0,
            cpu_allocation_ratio: 4.0,
            ram_allocation_ratio: 1.0,
            disk_allocation_ratio: 1.0,
            num_instances: 0,
            num_io_ops: 0,
            failed_builds: 0,
            hypervisor_type: "QEMU".into(),
            hypervisor_version: 8_002_000,
            cpu_info: serde_json::Value::Object(Default::default()),
            supported_instances: vec![["x86_64".into(), "kvm".into(), "hvm".into()]],
            host_ip: "192.0.2.1".into(),
            stats: BTreeMap::new(),
            metrics: BTreeMap::new(),
            aggregates: Vec::new(),
            instances: BTreeSet::new(),
            service: ServiceInfo::default(),
            reserved_vcpus: 0,
            reserved_memory_mb: 0,
            reserved_disk_gb: 0,
            inventories: BTreeMap::new(),
            traits: BTreeSet::new(),
        }
    }
}

impl HostState {
    /// A host named `host` (node of the same name) with nova's defaults.
    pub fn new(host: &str) -> Self {
        HostState {
            host: host.to_owned(),
            nodename: host.to_owned(),
            ..Self::default()
        }
    }

    /// The Placement inventory of resource class `rc` with its usage, as
    /// the host reports it (VCPU, MEMORY_MB and DISK_GB from the node).
    pub fn inventory(&self, rc: &str) -> Option<Inventory> {
        match rc {
            "VCPU" => Some(Inventory {
                total: self.vcpus_total,
                reserved: self.reserved_vcpus,
                allocation_ratio: self.cpu_allocation_ratio,
                used: self.vcpus_used as f64,
                max_unit: self.vcpus_total,
            }),
            "MEMORY_MB" => Some(Inventory {
                total: self.total_usable_ram_mb,
                reserved: self.reserved_memory_mb,
                allocation_ratio: self.ram_allocation_ratio,
                used: (self.total_usable_ram_mb - self.free_ram_mb) as f64,
                max_unit: self.total_usable_ram_mb,
            }),
            "DISK_GB" => Some(Inventory {
                total: self.total_usable_disk_gb,
                reserved: self.reserved_disk_gb,
                allocation_ratio: self.disk_allocation_ratio,
                used: self.total_usable_disk_gb as f64 - self.free_disk_mb as f64 / 1024.0,
                max_unit: self.total_usable_disk_gb,
            }),
            other => self.inventories.get(other).cloned(),
        }
    }

    /// Nova's `consume_from_request`: what one placed instance takes.
    pub fn consume(&mut self, memory_mb: i64, disk_gb: i64, vcpus: i64) {
        self.free_ram_mb -= memory_mb;
        self.free_disk_mb -= disk_gb * 1024;
        self.vcpus_used += vcpus;
        self.num_instances += 1;
        self.num_io_ops += 1;
    }
}

/// Python's `str()` of a JSON scalar (what nova compares extra specs
/// against): integers plainly, floats with a `.0` when whole, booleans as
/// `True`/`False`.
pub(crate) fn py_str(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        serde_json::Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            if f.fract() == 0.0 && f.abs() < 1e16 {
                format!("{f:.1}")
            } else {
                format!("{f}")
            }
        }
        other => other.to_string(),
    }
}

/// A HostState attribute, borrowed where it can be.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr<'a> {
    /// A string attribute.
    Str(&'a str),
    /// An integer attribute.
    Int(i64),
    /// A float attribute.
    Float(f64),
    /// A structured attribute (`cpu_info`, `stats`, `supported_instances`).
    Json(serde_json::Value),
}

impl Attr<'_> {
    /// As a JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        match self {
            Attr::Str(s) => serde_json::Value::from(*s),
            Attr::Int(i) => serde_json::Value::from(*i),
            Attr::Float(f) => serde_json::Value::from(*f),
            Attr::Json(v) => v.clone(),
        }
    }
}

impl HostState {
    /// HostState attribute `name` as nova's filters read it
    /// (`getattr(host_state, name)`), `None` when it has no such attribute.
    pub fn attr_ref(&self, name: &str) -> Option<Attr<'_>> {
        use serde_json::Value as V;
        Some(match name {
            "host" => Attr::Str(&self.host),
            "nodename" | "hypervisor_hostname" => Attr::Str(&self.nodename),
            "uuid" => Attr::Str(&self.uuid),
            "cell_uuid" => Attr::Str(&self.cell_uuid),
            "total_usable_ram_mb" => Attr::Int(self.total_usable_ram_mb),
            "free_ram_mb" => Attr::Int(self.free_ram_mb),
            "total_usable_disk_gb" => Attr::Int(self.total_usable_disk_gb),
            "free_disk_mb" => Attr::Int(self.free_disk_mb),
            "disk_mb_used" => Attr::Int(self.disk_mb_used),
            "vcpus_total" => Attr::Int(self.vcpus_total),
            "vcpus_used" => Attr::Int(self.vcpus_used),
            "cpu_allocation_ratio" => Attr::Float(self.cpu_allocation_ratio),
            "ram_allocation_ratio" => Attr::Float(self.ram_allocation_ratio),
            "disk_allocation_ratio" => Attr::Float(self.disk_allocation_ratio),
            "num_instances" => Attr::Int(self.num_instances),
            "num_io_ops" => Attr::Int(self.num_io_ops),
            "failed_builds" => Attr::Int(self.failed_builds),
            "hypervisor_type" => Attr::Str(&self.hypervisor_type),
            "hypervisor_version" => Attr::Int(self.hypervisor_version),
            "host_ip" => Attr::Str(&self.host_ip),
            "cpu_info" => Attr::Json(self.cpu_info.clone()),
            "stats" => Attr::Json(V::Object(
                self.stats
                    .iter()
                    .map(|(k, v)| (k.clone(), V::from(v.as_str())))
                    .collect(),
            )),
            "supported_instances" => Attr::Json(V::Array(
                self.supported_instances
                    .iter()
                    .map(|t| V::Array(t.iter().map(|s| V::from(s.as_str())).collect()))
                    .collect(),
            )),
            _ => return None,
        })
    }

    /// [`HostState::attr_ref`] as a JSON value.
    pub fn attr(&self, name: &str) -> Option<serde_json::Value> {
        self.attr_ref(name).map(|a| a.to_value())
    }

    /// Whether `name` is an attribute of nova's HostState that
    /// [`HostState::attr_ref`] does not model (numa_topology, pci_stats, ...).
    pub(crate) fn unmodelled_nova_attr(name: &str) -> bool {
        matches!(
            name,
            "numa_topology"
                | "pci_stats"
                | "metrics"
                | "limits"
                | "service"
                | "aggregates"
                | "instances"
                | "updated"
                | "allocation_candidates"
        )
    }
}
