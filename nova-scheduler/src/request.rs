//! What is being scheduled (the parts of nova's `RequestSpec` the
//! scheduler reads), and the resources it asks Placement for.

use std::collections::{BTreeMap, BTreeSet};

/// The flavor of the request.
#[derive(Debug, Clone, PartialEq)]
pub struct FlavorSpec {
    /// Flavor name (AggregateTypeAffinityFilter).
    pub name: String,
    /// VCPUs.
    pub vcpus: i64,
    /// Memory (MiB).
    pub memory_mb: i64,
    /// Root disk (GiB).
    pub root_gb: i64,
    /// Ephemeral disk (GiB).
    pub ephemeral_gb: i64,
    /// Swap (MiB).
    pub swap: i64,
    /// Extra specs (`capabilities:*`, `aggregate_instance_extra_specs:*`,
    /// `resources:*`, `trait:*`, `hw:*`).
    pub extra_specs: BTreeMap<String, String>,
}

impl Default for FlavorSpec {
    fn default() -> Self {
        FlavorSpec {
            name: "flavor".into(),
            vcpus: 1,
            memory_mb: 512,
            root_gb: 1,
            ephemeral_gb: 0,
            swap: 0,
            extra_specs: BTreeMap::new(),
        }
    }
}

/// A server group the new instances belong to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerGroup {
    /// Group uuid.
    pub uuid: String,
    /// `affinity`, `anti-affinity`, `soft-affinity` or `soft-anti-affinity`.
    pub policy: String,
    /// `max_server_per_host` rule (anti-affinity, default 1).
    pub max_server_per_host: Option<i64>,
    /// Member instance uuids (including the ones being scheduled).
    pub members: BTreeSet<String>,
    /// Hosts running members; grows as instances are placed.
    pub hosts: Vec<String>,
}

/// A host (and optionally node) the request must land on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Destination {
    /// Compute host.
    pub host: String,
    /// Node, if named.
    pub node: Option<String>,
    /// Cell uuid the move prefers (CrossCellWeigher), if any.
    pub cell_uuid: Option<String>,
    /// Whether a cross-cell move is allowed.
    pub allow_cross_cell_move: bool,
}

/// A scheduling request: nova's `RequestSpec`, as far as scheduling goes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    /// Project (tenant isolation).
    pub project_id: String,
    /// User.
    pub user_id: String,
    /// Flavor.
    pub flavor: FlavorSpec,
    /// Image id (IsolatedHostsFilter).
    pub image_id: String,
    /// Image disk format (`qcow2`, `raw`, ...; image-type pre-filter).
    pub image_disk_format: Option<String>,
    /// Image properties (`hw_architecture`, `img_hv_type`, ...): strings,
    /// or a list of strings for `traits_required`.
    pub image_properties: BTreeMap<String, serde_json::Value>,
    /// Requested availability zone.
    pub availability_zone: Option<String>,
    /// Scheduler hints (each a list of strings).
    pub scheduler_hints: BTreeMap<String, Vec<String>>,
    /// The server group, if any.
    pub group: Option<ServerGroup>,
    /// The uuids of the instances to place (one placement each).
    pub instance_uuids: Vec<String>,
    /// Hosts never to use (case-insensitive).
    pub ignore_hosts: Vec<String>,
    /// Forced hosts: filters are skipped.
    pub force_hosts: Vec<String>,
    /// Forced nodes: filters are skipped.
    pub force_nodes: Vec<String>,
    /// A requested destination.
    pub requested_destination: Option<Destination>,
    /// Boot from volume: the root disk is not local.
    pub is_bfv: bool,
}

impl Request {
    /// Nova's `request_is_rebuild`: the `_nova_check_type` hint is `["rebuild"]`.
    pub fn is_rebuild(&self) -> bool {
        self.scheduler_hints
            .get("_nova_check_type")
            .is_some_and(|v| v.len() == 1 && v[0] == "rebuild")
    }

    /// A scheduler hint's first value.
    pub fn hint(&self, key: &str) -> Option<&str> {
        self.scheduler_hints
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// An image property as a string.
    pub fn image_prop(&self, key: &str) -> Option<&str> {
        self.image_properties.get(key).and_then(|v| v.as_str())
    }

    /// What the request asks Placement for (nova's `ResourceRequest`).
    pub fn resources(&self) -> ResourceRequest {
        ResourceRequest::from_request(self)
    }
}

/// Resource classes and traits of a request (the unnumbered group).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceRequest {
    /// Resource class → amount.
    pub resources: BTreeMap<String, i64>,
    /// Traits the provider must have.
    pub required_traits: BTreeSet<String>,
    /// Traits the provider must not have.
    pub forbidden_traits: BTreeSet<String>,
}

/// A consumer id for a placement that names no instance.
pub(crate) fn new_consumer_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "consumer-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The resource classes the node itself reports.
pub const STANDARD_CLASSES: [&str; 4] = ["VCPU", "PCPU", "MEMORY_MB", "DISK_GB"];

impl ResourceRequest {
    /// The amount of resource class `rc` requested (0 when none).
    pub fn amount(&self, rc: &str) -> i64 {
        self.resources.get(rc).copied().unwrap_or(0)
    }

    /// Amounts of [`STANDARD_CLASSES`], in that order.
    pub fn standard_amounts(&self) -> [i64; 4] {
        STANDARD_CLASSES.map(|rc| self.amount(rc))
    }
}

impl ResourceRequest {
    /// Nova's mapping of flavor and image to resources and traits:
    /// VCPU (PCPU with `hw:cpu_policy=dedicated`), MEMORY_MB, DISK_GB =
    /// root (unless boot from volume) + ephemeral + swap rounded up to GiB;
    /// `resources:RC=N` overrides (0 removes); `trait:T=required|forbidden`
    /// and the image's `traits_required`.
    pub fn from_request(req: &Request) -> Self {
        let f = &req.flavor;
        let mut r = ResourceRequest::default();
        let dedicated = f.extra_specs.get("hw:cpu_policy").map(String::as_str) == Some("dedicated")
            || req.image_prop("hw_cpu_policy") == Some("dedicated");
        r.resources
            .insert(if dedicated { "PCPU" } else { "VCPU" }.into(), f.vcpus);
        r.resources.insert("MEMORY_MB".into(), f.memory_mb);
        let mut disk = f.ephemeral_gb + (f.swap + 1023) / 1024;
        if !req.is_bfv {
            disk += f.root_gb;
        }
        r.resources.insert("DISK_GB".into(), disk);
        for (k, v) in &f.extra_specs {
            if let Some(rc) = k.strip_prefix("resources:") {
                if let Ok(n) = v.trim().parse::<i64>() {
                    r.resources.insert(rc.to_owned(), n);
                }
            } else if let Some(t) = k.strip_prefix("trait:") {
                match v.as_str() {
                    "required" => {
                        r.required_traits.insert(t.to_owned());
                    }
                    "forbidden" => {
                        r.forbidden_traits.insert(t.to_owned());
                    }
                    _ => {}
                }
            }
        }
        if let Some(serde_json::Value::Array(ts)) = req.image_properties.get("traits_required") {
            r.required_traits
                .extend(ts.iter().filter_map(|t| t.as_str().map(str::to_owned)));
        }
        r.resources.retain(|_, n| *n > 0);
        r
    }
}
