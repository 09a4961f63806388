//! Claims for a move of an instance that already holds allocations (an
//! evacuation): nova's scheduler merges the destination's resources into
//! the instance's current allocations (with its consumer generation), so
//! the instance holds both until the source is cleaned up; when no host
//! fits, the allocations go back to what they were.

use std::collections::{BTreeMap, BTreeSet};

use nova_scheduler::placement::{
    AllocationCandidates, Allocations, CandidatesRequest, ConsumerAllocations, InventoryRecord,
    Placement, PlacementError, ResourceProvider,
};

/// A Placement whose claims for the consumers in `held` keep what they
/// hold.
#[derive(Debug)]
pub(crate) struct MovePlacement<P> {
    inner: P,
    held: BTreeMap<String, ConsumerAllocations>,
}

impl<P: Placement> MovePlacement<P> {
    /// Over `inner`; `held`: the moving consumers' allocations now.
    pub(crate) fn new(inner: P, held: BTreeMap<String, ConsumerAllocations>) -> Self {
        MovePlacement { inner, held }
    }
}

impl<P: Placement> Placement for MovePlacement<P> {
    fn create_provider(
        &self,
        uuid: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<ResourceProvider, PlacementError> {
        self.inner.create_provider(uuid, name, parent)
    }
    fn get_provider(&self, uuid: &str) -> Result<ResourceProvider, PlacementError> {
        self.inner.get_provider(uuid)
    }
    fn delete_provider(&self, uuid: &str) -> Result<(), PlacementError> {
        self.inner.delete_provider(uuid)
    }
    fn inventories(
        &self,
        uuid: &str,
    ) -> Result<(u64, BTreeMap<String, InventoryRecord>), PlacementError> {
        self.inner.inventories(uuid)
    }
    fn set_inventories(
        &self,
        uuid: &str,
        generation: u64,
        inventories: &BTreeMap<String, InventoryRecord>,
    ) -> Result<u64, PlacementError> {
        self.inner.set_inventories(uuid, generation, inventories)
    }
    fn traits(&self, uuid: &str) -> Result<(u64, BTreeSet<String>), PlacementError> {
        self.inner.traits(uuid)
    }
    fn set_traits(
        &self,
        uuid: &str,
        generation: u64,
        traits: &BTreeSet<String>,
    ) -> Result<u64, PlacementError> {
        self.inner.set_traits(uuid, generation, traits)
    }
    fn aggregates(&self, uuid: &str) -> Result<(u64, BTreeSet<String>), PlacementError> {
        self.inner.aggregates(uuid)
    }
    fn set_aggregates(
        &self,
        uuid: &str,
        generation: u64,
        aggregates: &BTreeSet<String>,
    ) -> Result<u64, PlacementError> {
        self.inner.set_aggregates(uuid, generation, aggregates)
    }
    fn usages(&self, uuid: &str) -> Result<BTreeMap<String, i64>, PlacementError> {
        self.inner.usages(uuid)
    }
    fn allocation_candidates(
        &self,
        req: &CandidatesRequest,
    ) -> Result<AllocationCandidates, PlacementError> {
        self.inner.allocation_candidates(req)
    }
    fn allocations(&self, consumer: &str) -> Result<ConsumerAllocations, PlacementError> {
        self.inner.allocations(consumer)
    }
    /// A moving consumer's claim: its current allocations plus the new.
    fn put_allocations(
        &self,
        consumer: &str,
        allocations: &Allocations,
        project_id: &str,
        user_id: &str,
        consumer_generation: Option<u64>,
    ) -> Result<Option<u64>, PlacementError> {
        match self.held.get(consumer) {
            Some(h) if consumer_generation.is_none() && !allocations.is_empty() => {
                let mut merged = h.allocations.clone();
                for (rp, res) in allocations {
                    merged.insert(rp.clone(), res.clone());
                }
                self.inner.put_allocations(
                    consumer,
                    &merged,
                    project_id,
                    user_id,
                    h.consumer_generation,
                )
            }
            _ => self.inner.put_allocations(
                consumer,
                allocations,
                project_id,
                user_id,
                consumer_generation,
            ),
        }
    }
    /// A moving consumer's failed claim: back to what it held.
    fn delete_allocations(&self, consumer: &str) -> Result<(), PlacementError> {
        let Some(h) = self.held.get(consumer) else {
            return self.inner.delete_allocations(consumer);
        };
        let cur = self.inner.allocations(consumer)?;
        self.inner
            .put_allocations(
                consumer,
                &h.allocations,
                &h.project_id,
                &h.user_id,
                cur.consumer_generation,
            )
            .map(|_| ())
    }
}
