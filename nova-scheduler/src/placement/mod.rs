//! A Placement service model: resource providers and their trees,
//! inventories with Placement's capacity arithmetic, traits, aggregates,
//! consumers with generations, allocations, usages and allocation
//! candidates — behind the [`Placement`] trait, with the in-memory
//! implementation [`MemoryPlacement`]. The durable implementation and the
//! HTTP API live with the services.
//!
//! ```
//! use std::collections::BTreeMap;
//! use nova_scheduler::placement::{CandidatesRequest, InventoryRecord, MemoryPlacement, Placement, RequestGroup};
//!
//! let p = MemoryPlacement::new();
//! let rp = p.create_provider("rp-1", "cmp-1", None).unwrap();
//! let inv = BTreeMap::from([("VCPU".to_owned(), InventoryRecord::new(8).with_ratio(2.0))]);
//! p.set_inventories(&rp.uuid, rp.generation, &inv).unwrap();
//!
//! let mut group = RequestGroup::default();
//! group.resources.insert("VCPU".into(), 4);
//! let req = CandidatesRequest { groups: vec![group], ..Default::default() };
//! let cands = p.allocation_candidates(&req).unwrap();
//! assert_eq!(cands.summary("rp-1").unwrap().resource("VCPU"), Some((16, 0)));
//!
//! // Claim it for a new consumer (no consumer generation yet).
//! let alloc = cands.allocations(0);
//! p.put_allocations("vm-1", &alloc, "project", "user", None).unwrap();
//! assert_eq!(p.usages("rp-1").unwrap()["VCPU"], 4);
//! ```

mod memory;
mod model;

use std::collections::{BTreeMap, BTreeSet};

pub use memory::MemoryPlacement;
pub use model::{
    AllocationCandidates, AllocationRequest, Allocations, CandidatesRequest, ConsumerAllocations,
    ConsumerWrite, GroupPolicy, InventoryRecord, InventoryWrite, Name, PlacementError,
    ProviderSummary, RequestGroup, ResourceProvider, STANDARD_RESOURCE_CLASSES, is_standard_trait,
    standard_traits, valid_custom_name, valid_resource_class,
};

/// What the scheduler (and the Placement API) need of a Placement store.
/// Every write that names a generation fails with `ConcurrentUpdate` when
/// it is stale.
pub trait Placement: Send + Sync + std::fmt::Debug {
    /// Creates a provider (a root, or a child of `parent`).
    fn create_provider(
        &self,
        uuid: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<ResourceProvider, PlacementError>;
    /// One provider.
    fn get_provider(&self, uuid: &str) -> Result<ResourceProvider, PlacementError>;
    /// Deletes a provider without allocations or children.
    fn delete_provider(&self, uuid: &str) -> Result<(), PlacementError>;
    /// The provider generation and inventories.
    fn inventories(
        &self,
        uuid: &str,
    ) -> Result<(u64, BTreeMap<String, InventoryRecord>), PlacementError>;
    /// Replaces all inventories; refused when a class in use would lose
    /// its inventory (a capacity below usage is allowed, as in Placement:
    /// nothing more fits). Returns the new generation.
    fn set_inventories(
        &self,
        uuid: &str,
        generation: u64,
        inventories: &BTreeMap<String, InventoryRecord>,
    ) -> Result<u64, PlacementError>;
    /// The provider generation and traits.
    fn traits(&self, uuid: &str) -> Result<(u64, BTreeSet<String>), PlacementError>;
    /// Replaces the traits. Returns the new generation.
    fn set_traits(
        &self,
        uuid: &str,
        generation: u64,
        traits: &BTreeSet<String>,
    ) -> Result<u64, PlacementError>;
    /// The provider generation and aggregates.
    fn aggregates(&self, uuid: &str) -> Result<(u64, BTreeSet<String>), PlacementError>;
    /// Replaces the aggregates. Returns the new generation.
    fn set_aggregates(
        &self,
        uuid: &str,
        generation: u64,
        aggregates: &BTreeSet<String>,
    ) -> Result<u64, PlacementError>;
    /// Used amount per class.
    fn usages(&self, uuid: &str) -> Result<BTreeMap<String, i64>, PlacementError>;
    /// `GET /allocation_candidates`.
    fn allocation_candidates(
        &self,
        req: &CandidatesRequest,
    ) -> Result<AllocationCandidates, PlacementError>;
    /// A consumer's allocations (empty for an unknown consumer).
    fn allocations(&self, consumer: &str) -> Result<ConsumerAllocations, PlacementError>;
    /// `PUT /allocations/{consumer}`: replaces the consumer's allocations
    /// atomically (empty deletes them). `consumer_generation` is `None`
    /// for a new consumer. Returns the consumer's new generation (`None`
    /// once it has no allocations).
    fn put_allocations(
        &self,
        consumer: &str,
        allocations: &Allocations,
        project_id: &str,
        user_id: &str,
        consumer_generation: Option<u64>,
    ) -> Result<Option<u64>, PlacementError>;
    /// Deletes a consumer's allocations (whatever its generation).
    fn delete_allocations(&self, consumer: &str) -> Result<(), PlacementError> {
        loop {
            let cur = self.allocations(consumer)?;
            if cur.consumer_generation.is_none() {
                return Ok(());
            }
            match self.put_allocations(
                consumer,
                &Allocations::new(),
                &cur.project_id,
                &cur.user_id,
                cur.consumer_generation,
            ) {
                Err(PlacementError::ConcurrentUpdate(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    }
}
