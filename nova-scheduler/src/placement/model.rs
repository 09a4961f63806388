//! Placement's data model: resource providers (trees), inventories,
//! traits, aggregates, consumers and their allocations.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A shared name (provider uuid, resource class, trait): cloning it does
/// not allocate.
pub type Name = Arc<str>;

/// Resource classes Placement defines (os-resource-classes).
pub const STANDARD_RESOURCE_CLASSES: &[&str] = &[
    "VCPU",
    "MEMORY_MB",
    "DISK_GB",
    "PCI_DEVICE",
    "SRIOV_NET_VF",
    "NUMA_SOCKET",
    "NUMA_CORE",
    "NUMA_THREAD",
    "NUMA_MEMORY_MB",
    "IPV4_ADDRESS",
    "VGPU",
    "VGPU_DISPLAY_HEAD",
    "NET_BW_EGR_KILOBIT_PER_SEC",
    "NET_BW_IGR_KILOBIT_PER_SEC",
    "PCPU",
    "MEM_ENCRYPTION_CONTEXT",
    "FPGA",
    "PGPU",
    "NET_PACKET_RATE_KILOPACKET_PER_SEC",
    "NET_PACKET_RATE_EGR_KILOPACKET_PER_SEC",
    "NET_PACKET_RATE_IGR_KILOPACKET_PER_SEC",
];

/// The standard traits (os-traits 3.9), one per line, sorted.
const STANDARD_TRAITS_TEXT: &str = include_str!("standard_traits.txt");

/// The standard traits Placement knows without being told (os-traits).
pub fn standard_traits() -> impl Iterator<Item = &'static str> {
    STANDARD_TRAITS_TEXT.lines().filter(|l| !l.is_empty())
}

/// Whether `t` is a standard trait.
pub fn is_standard_trait(t: &str) -> bool {
    STANDARD_TRAITS_TEXT.lines().any(|l| l == t)
}

/// Whether `t` is a well-formed custom trait (`CUSTOM_[A-Z0-9_]+`).
pub fn valid_custom_name(t: &str) -> bool {
    t.strip_prefix("CUSTOM_").is_some_and(|s| {
        !s.is_empty()
            && s.len() <= 248
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// Whether `rc` is a standard class or a well-formed custom one (`CUSTOM_[A-Z0-9_]+`).
pub fn valid_resource_class(rc: &str) -> bool {
    STANDARD_RESOURCE_CLASSES.contains(&rc) || valid_custom_name(rc)
}

/// One inventory of a provider.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InventoryRecord {
    /// Total amount (≥ 1).
    pub total: i64,
    /// Reserved for the provider's own use.
    pub reserved: i64,
    /// Smallest allocation.
    pub min_unit: i64,
    /// Largest allocation.
    pub max_unit: i64,
    /// Allocations must be multiples of this.
    pub step_size: i64,
    /// Overcommit ratio.
    pub allocation_ratio: f64,
}

impl InventoryRecord {
    /// `total` units with Placement's defaults (reserved 0, min 1, max =
    /// total, step 1, ratio 1.0).
    pub fn new(total: i64) -> Self {
        InventoryRecord {
            total,
            reserved: 0,
            min_unit: 1,
            max_unit: total,
            step_size: 1,
            allocation_ratio: 1.0,
        }
    }

    /// With an overcommit ratio.
    pub fn with_ratio(mut self, r: f64) -> Self {
        self.allocation_ratio = r;
        self
    }

    /// With a reserved amount.
    pub fn with_reserved(mut self, r: i64) -> Self {
        self.reserved = r;
        self
    }

    /// Placement's capacity: `int((total - reserved) * allocation_ratio)`.
    pub fn capacity(&self) -> i64 {
        ((self.total - self.reserved) as f64 * self.allocation_ratio) as i64
    }

    /// Whether `amount` more fits on top of `used`: capacity, min/max
    /// unit and step size.
    pub fn admits(&self, used: i64, amount: i64) -> bool {
        amount >= self.min_unit
            && amount <= self.max_unit
            && self.step_size > 0
            && amount % self.step_size == 0
            && used + amount <= self.capacity()
    }

    /// Checks the record's own consistency (Placement's schema rules).
    pub fn validate(&self) -> Result<(), String> {
        if self.total < 1 {
            return Err("total must be at least 1".into());
        }
        if self.reserved < 0 || self.reserved > self.total {
            return Err("reserved must be between 0 and total".into());
        }
        if self.min_unit < 1 || self.max_unit < self.min_unit || self.step_size < 1 {
            return Err("min_unit, max_unit and step_size must satisfy 1 <= min_unit <= max_unit, step_size >= 1".into());
        }
        if self.allocation_ratio.is_nan()
            || self.allocation_ratio <= 0.0
            || !self.allocation_ratio.is_finite()
        {
            return Err("allocation_ratio must be a positive number".into());
        }
        Ok(())
    }
}

/// A resource provider as callers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceProvider {
    /// Uuid.
    pub uuid: String,
    /// Unique name.
    pub name: String,
    /// Generation: bumped by every change to the provider or its allocations.
    pub generation: u64,
    /// Parent provider (nested trees).
    pub parent_provider_uuid: Option<String>,
    /// Root of the tree.
    pub root_provider_uuid: String,
}

/// Resources per provider: `{provider uuid: {resource class: amount}}`.
pub type Allocations = BTreeMap<Name, BTreeMap<Name, i64>>;

/// One provider's new inventories in a batch write (the reshaper, 1.30),
/// checked against `generation`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InventoryWrite {
    /// The provider.
    pub provider: String,
    /// Its generation as the caller saw it.
    pub generation: u64,
    /// The inventories it ends with.
    pub inventories: BTreeMap<String, InventoryRecord>,
}

/// One consumer's new allocations in a batch write (`POST /allocations`,
/// the reshaper): empty allocations release the consumer's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsumerWrite {
    /// The consumer.
    pub consumer: String,
    /// Its new allocations.
    pub allocations: Allocations,
    /// Project.
    pub project_id: String,
    /// User.
    pub user_id: String,
    /// Its generation now, as the caller saw it (`None`: a new consumer).
    pub generation: Option<u64>,
}

/// A consumer's allocations (`GET /allocations/{consumer}`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsumerAllocations {
    /// Resources per provider.
    pub allocations: Allocations,
    /// Project.
    pub project_id: String,
    /// User.
    pub user_id: String,
    /// Consumer generation (`None` for a consumer that does not exist).
    pub consumer_generation: Option<u64>,
    /// Consumer type (microversion 1.38; `None`: unknown).
    pub consumer_type: Option<String>,
}

/// One request group of `GET /allocation_candidates`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestGroup {
    /// Suffix (`""` for the unnumbered group).
    pub suffix: String,
    /// Resource class → amount.
    pub resources: BTreeMap<String, i64>,
    /// Traits required.
    pub required_traits: BTreeSet<String>,
    /// Traits forbidden.
    pub forbidden_traits: BTreeSet<String>,
    /// Any-of trait sets (`required=in:A,B`, 1.39): one trait of each set.
    pub any_traits: Vec<BTreeSet<String>>,
    /// `member_of`: each entry is a set of aggregates one of which the
    /// provider must be in (`in:a,b`); every entry must hold.
    pub member_of: Vec<BTreeSet<String>>,
    /// `member_of=!in:`: aggregates the provider must not be in.
    pub forbidden_aggregates: BTreeSet<String>,
    /// `in_tree`: the root the providers must be under.
    pub in_tree: Option<String>,
}

/// `group_policy` for several numbered groups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GroupPolicy {
    /// Groups may share a provider.
    #[default]
    None,
    /// Numbered groups use different providers.
    Isolate,
}

/// A `GET /allocation_candidates` query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CandidatesRequest {
    /// The groups (the unnumbered one first, if any).
    pub groups: Vec<RequestGroup>,
    /// Policy between numbered groups.
    pub group_policy: GroupPolicy,
    /// Traits the root provider must have (`root_required`).
    pub root_required: BTreeSet<String>,
    /// Traits the root provider must not have (`root_required=!T`).
    pub root_forbidden: BTreeSet<String>,
    /// `same_subtree`: each a set of group suffixes whose providers must
    /// all lie under one of them.
    pub same_subtree: Vec<BTreeSet<String>>,
    /// At most this many allocation requests (`limit`).
    pub limit: Option<usize>,
    /// Leave `provider_summaries` empty (in-process callers that only
    /// claim, like the scheduler; the HTTP API always fills them).
    pub without_summaries: bool,
}

/// One allocation request of the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocationRequest {
    /// The root provider of the tree it allocates from.
    pub root_provider_uuid: Name,
    /// Resources per provider.
    pub allocations: Allocations,
    /// (request group suffix, provider) pairs: which providers satisfied
    /// which group (Placement's `mappings`).
    pub mappings: Vec<(Name, Name)>,
}

impl AllocationRequest {
    /// The providers that satisfied group `suffix`.
    pub fn providers_for(&self, suffix: &str) -> Vec<&str> {
        self.mappings
            .iter()
            .filter(|(g, _)| &**g == suffix)
            .map(|(_, p)| &**p)
            .collect()
    }
}

/// A provider in the summaries: capacity and usage per class, traits.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSummary {
    /// The provider.
    pub uuid: Name,
    /// (class, capacity, used).
    pub resources: Vec<(Name, i64, i64)>,
    /// Traits.
    pub traits: Vec<Name>,
    /// Parent.
    pub parent_provider_uuid: Option<Name>,
    /// Root.
    pub root_provider_uuid: Name,
}

impl ProviderSummary {
    /// (capacity, used) of class `rc`.
    pub fn resource(&self, rc: &str) -> Option<(i64, i64)> {
        self.resources
            .iter()
            .find(|(r, _, _)| &**r == rc)
            .map(|(_, c, u)| (*c, *u))
    }
}

/// One row of [`AllocationCandidates`]: indices into its tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CandidateRow {
    pub(crate) root: u32,
    pub(crate) parts: (u32, u32),
    pub(crate) maps: (u32, u32),
}

/// The answer of `GET /allocation_candidates`: allocation requests (in
/// tree order) and provider summaries. Requests are stored compactly (no
/// allocation per candidate) and built on demand with
/// [`AllocationCandidates::request`] / [`AllocationCandidates::allocations`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllocationCandidates {
    pub(crate) providers: Vec<Name>,
    pub(crate) classes: Vec<Name>,
    pub(crate) groups: Vec<Name>,
    pub(crate) rows: Vec<CandidateRow>,
    /// (provider, class, amount), indices into the tables.
    pub(crate) parts: Vec<(u32, u32, i64)>,
    /// (group, provider).
    pub(crate) maps: Vec<(u32, u32)>,
    /// Every provider of the trees that appear (unless the request said
    /// `without_summaries`).
    pub provider_summaries: Vec<ProviderSummary>,
}

impl AllocationCandidates {
    /// Candidates from built requests and summaries (an answer read from
    /// another Placement, over HTTP).
    pub fn from_requests(requests: &[AllocationRequest], summaries: Vec<ProviderSummary>) -> Self {
        let mut out = AllocationCandidates {
            provider_summaries: summaries,
            ..Default::default()
        };
        fn slot(table: &mut Vec<Name>, name: &Name) -> u32 {
            match table.iter().position(|n| n == name) {
                Some(i) => i as u32,
                None => {
                    table.push(name.clone());
                    (table.len() - 1) as u32
                }
            }
        }
        for r in requests {
            let root = slot(&mut out.providers, &r.root_provider_uuid);
            let start = out.parts.len() as u32;
            for (rp, res) in &r.allocations {
                let p = slot(&mut out.providers, rp);
                for (rc, n) in res {
                    let c = slot(&mut out.classes, rc);
                    out.parts.push((p, c, *n));
                }
            }
            let mstart = out.maps.len() as u32;
            for (g, rp) in &r.mappings {
                let gi = slot(&mut out.groups, g);
                let p = slot(&mut out.providers, rp);
                out.maps.push((gi, p));
            }
            out.rows.push(CandidateRow {
                root,
                parts: (start, out.parts.len() as u32),
                maps: (mstart, out.maps.len() as u32),
            });
        }
        out
    }

    /// How many allocation requests.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The root provider of request `i`.
    pub fn root(&self, i: usize) -> &Name {
        &self.providers[self.rows[i].root as usize]
    }

    /// The providers the requests name, by the indices [`Self::parts`]
    /// and [`Self::mapping_pairs`] give.
    pub fn provider_table(&self) -> &[Name] {
        &self.providers
    }

    /// The resource classes the requests name, by index.
    pub fn class_table(&self) -> &[Name] {
        &self.classes
    }

    /// The request groups' suffixes, by index.
    pub fn group_table(&self) -> &[Name] {
        &self.groups
    }

    /// Request `i`'s amounts, unbuilt: (provider, class, amount), indices
    /// into [`Self::provider_table`] and [`Self::class_table`], in no
    /// particular order; amounts of one (provider, class) add up.
    pub fn parts(&self, i: usize) -> &[(u32, u32, i64)] {
        let (a, b) = self.rows[i].parts;
        &self.parts[a as usize..b as usize]
    }

    /// Request `i`'s mappings, unbuilt: (group, provider), indices into
    /// [`Self::group_table`] and [`Self::provider_table`].
    pub fn mapping_pairs(&self, i: usize) -> &[(u32, u32)] {
        let (a, b) = self.rows[i].maps;
        &self.maps[a as usize..b as usize]
    }

    /// The resources of request `i` per provider (what a claim sends).
    pub fn allocations(&self, i: usize) -> Allocations {
        let (a, b) = self.rows[i].parts;
        let mut out: Allocations = BTreeMap::new();
        for &(p, rc, n) in &self.parts[a as usize..b as usize] {
            *out.entry(self.providers[p as usize].clone())
                .or_default()
                .entry(self.classes[rc as usize].clone())
                .or_default() += n;
        }
        out
    }

    /// Request `i`, built.
    pub fn request(&self, i: usize) -> AllocationRequest {
        let (a, b) = self.rows[i].maps;
        AllocationRequest {
            root_provider_uuid: self.root(i).clone(),
            allocations: self.allocations(i),
            mappings: self.maps[a as usize..b as usize]
                .iter()
                .map(|&(g, p)| {
                    (
                        self.groups[g as usize].clone(),
                        self.providers[p as usize].clone(),
                    )
                })
                .collect(),
        }
    }

    /// Every request, built.
    pub fn requests(&self) -> impl Iterator<Item = AllocationRequest> + '_ {
        (0..self.len()).map(|i| self.request(i))
    }

    /// The summary of provider `uuid`.
    pub fn summary(&self, uuid: &str) -> Option<&ProviderSummary> {
        self.provider_summaries.iter().find(|s| &*s.uuid == uuid)
    }
}

/// Placement errors, with Placement's error codes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// 404.
    #[error("{0} not found")]
    NotFound(String),
    /// 409 `placement.concurrent_update`: a stale generation.
    #[error("{0}")]
    ConcurrentUpdate(String),
    /// 409 `placement.inventory.inuse`.
    #[error("{0}")]
    InventoryInUse(String),
    /// 409 `placement.resource_provider.inuse`.
    #[error("{0}")]
    ProviderInUse(String),
    /// 409: a resource class or trait still in use.
    #[error("{0}")]
    InUse(String),
    /// 409 `placement.resource_provider.cannot_delete_parent`.
    #[error("{0}")]
    CannotDeleteParent(String),
    /// 409 `placement.duplicate_name` / duplicate uuid.
    #[error("{0}")]
    Duplicate(String),
    /// 409: the allocation does not fit (capacity exceeded or unit constraints).
    #[error("{0}")]
    CapacityExceeded(String),
    /// 400: a malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// 503: the store could not answer (its database unreachable or
    /// failing, or a remote Placement down). Not a lost race: retrying at
    /// once will not help.
    #[error("{0}")]
    Unavailable(String),
}

impl PlacementError {
    /// Placement's error `code` (microversion ≥ 1.23).
    pub fn code(&self) -> &'static str {
        match self {
            PlacementError::NotFound(_) => "placement.resource_provider.not_found",
            PlacementError::ConcurrentUpdate(_) => "placement.concurrent_update",
            PlacementError::InventoryInUse(_) => "placement.inventory.inuse",
            PlacementError::ProviderInUse(_) => "placement.resource_provider.inuse",
            PlacementError::CannotDeleteParent(_) => {
                "placement.resource_provider.cannot_delete_parent"
            }
            PlacementError::Duplicate(_) => "placement.duplicate_name",
            PlacementError::CapacityExceeded(_)
            | PlacementError::InUse(_)
            | PlacementError::BadRequest(_)
            | PlacementError::Unavailable(_) => "placement.undefined_code",
        }
    }

    /// The HTTP status Placement answers with.
    pub fn status(&self) -> u16 {
        match self {
            PlacementError::NotFound(_) => 404,
            PlacementError::BadRequest(_) => 400,
            PlacementError::Unavailable(_) => 503,
            _ => 409,
        }
    }

    /// Whether a retry may succeed (a lost race).
    pub fn is_conflict(&self) -> bool {
        self.status() == 409
    }
}
