//! [`MemoryPlacementService`]: the services' Placement in memory, over
//! nova-scheduler's [`MemoryPlacement`] (tests, embedding).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use nova_scheduler::placement::{
    AllocationCandidates, Allocations, CandidatesRequest, ConsumerAllocations, ConsumerWrite,
    InventoryRecord, InventoryWrite, MemoryPlacement, Placement, PlacementError, ResourceProvider,
};

use crate::PlacementService;
use crate::service::Custom;

type Result<T> = std::result::Result<T, PlacementError>;

/// Placement in memory: every operation is one of [`MemoryPlacement`]'s,
/// atomic under its lock. Nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryPlacementService {
    model: MemoryPlacement,
    /// Every provider created here (the model has no listing of its own).
    providers: Mutex<BTreeSet<String>>,
    /// Custom resource classes and traits registered.
    custom: Mutex<BTreeSet<(&'static str, String)>>,
}

impl MemoryPlacementService {
    /// An empty Placement.
    pub fn new() -> Self {
        Self::default()
    }

    /// The model, for synchronous reads (the scheduler's embedding).
    pub fn model(&self) -> &MemoryPlacement {
        &self.model
    }

    fn providers(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.providers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn custom(&self) -> std::sync::MutexGuard<'_, BTreeSet<(&'static str, String)>> {
        self.custom.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The custom names providers use now.
    fn in_use(&self, kind: Custom) -> Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        for rp in self.model.providers() {
            match kind {
                Custom::ResourceClasses => {
                    out.extend(self.model.inventories(&rp.uuid)?.1.into_keys());
                    for (_, c) in self.model.consumers() {
                        for res in c.allocations.values() {
                            out.extend(res.keys().map(|k| k.to_string()));
                        }
                    }
                }
                Custom::Traits => out.extend(self.model.traits(&rp.uuid)?.1),
            }
        }
        out.retain(|n| n.starts_with("CUSTOM_"));
        Ok(out)
    }
}

#[async_trait::async_trait]
impl PlacementService for MemoryPlacementService {
    async fn create_provider_async(
        &self,
        uuid: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<ResourceProvider> {
        let rp = self.model.create_provider(uuid, name, parent)?;
        self.providers().insert(rp.uuid.clone());
        Ok(rp)
    }

    async fn get_provider_async(&self, uuid: &str) -> Result<ResourceProvider> {
        self.model.get_provider(uuid)
    }

    async fn list_providers_async(
        &self,
        name: Option<&str>,
        uuid: Option<&str>,
    ) -> Result<Vec<ResourceProvider>> {
        let known: Vec<String> = self.providers().iter().cloned().collect();
        let mut out: Vec<ResourceProvider> = known
            .iter()
            .filter(|u| uuid.is_none_or(|x| x == u.as_str()))
            .filter_map(|u| self.model.get_provider(u).ok())
            .filter(|rp| name.is_none_or(|n| n == rp.name))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn delete_provider_async(&self, uuid: &str) -> Result<()> {
        self.model.delete_provider(uuid)?;
        self.providers().remove(uuid);
        Ok(())
    }

    async fn inventories_async(
        &self,
        uuid: &str,
    ) -> Result<(u64, BTreeMap<String, InventoryRecord>)> {
        self.model.inventories(uuid)
    }

    async fn set_inventories_async(
        &self,
        uuid: &str,
        generation: u64,
        inventories: &BTreeMap<String, InventoryRecord>,
    ) -> Result<u64> {
        self.model.set_inventories(uuid, generation, inventories)
    }

    async fn traits_async(&self, uuid: &str) -> Result<(u64, BTreeSet<String>)> {
        self.model.traits(uuid)
    }

    async fn set_traits_async(
        &self,
        uuid: &str,
        generation: u64,
        traits: &BTreeSet<String>,
    ) -> Result<u64> {
        self.model.set_traits(uuid, generation, traits)
    }

    async fn aggregates_async(&self, uuid: &str) -> Result<(u64, BTreeSet<String>)> {
        self.model.aggregates(uuid)
    }

    async fn set_aggregates_async(
        &self,
        uuid: &str,
        generation: u64,
        aggregates: &BTreeSet<String>,
    ) -> Result<u64> {
        self.model.set_aggregates(uuid, generation, aggregates)
    }

    async fn usages_async(&self, uuid: &str) -> Result<BTreeMap<String, i64>> {
        self.model.usages(uuid)
    }

    async fn allocation_candidates_async(
        &self,
        req: &CandidatesRequest,
    ) -> Result<AllocationCandidates> {
        self.model.allocation_candidates(req)
    }

    async fn allocations_async(&self, consumer: &str) -> Result<ConsumerAllocations> {
        self.model.allocations(consumer)
    }

    async fn put_allocations_async(
        &self,
        consumer: &str,
        allocations: &Allocations,
        project_id: &str,
        user_id: &str,
        consumer_generation: Option<u64>,
    ) -> Result<Option<u64>> {
        self.model.put_allocations(
            consumer,
            allocations,
            project_id,
            user_id,
            consumer_generation,
        )
    }

    async fn delete_allocations_async(&self, consumer: &str) -> Result<()> {
        self.model.delete_allocations(consumer)
    }

    async fn write_many_async(
        &self,
        inventories: &[InventoryWrite],
        consumers: &[ConsumerWrite],
    ) -> Result<Vec<Option<u64>>> {
        self.model.write_many(inventories, consumers)
    }

    async fn update_provider_async(
        &self,
        uuid: &str,
        name: &str,
        parent: Option<&str>,
        reparent: bool,
    ) -> Result<ResourceProvider> {
        self.model.update_provider(uuid, name, parent, reparent)
    }

    async fn consumers_async(
        &self,
        project_id: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<Vec<(String, ConsumerAllocations)>> {
        let mut all = self.model.consumers();
        all.retain(|(_, c)| {
            project_id.is_none_or(|p| p == c.project_id) && user_id.is_none_or(|u| u == c.user_id)
        });
        Ok(all)
    }

    async fn set_consumer_type_async(
        &self,
        consumer: &str,
        consumer_type: Option<&str>,
    ) -> Result<()> {
        self.model.set_consumer_type(consumer, consumer_type);
        Ok(())
    }

    async fn custom_names_async(&self, kind: Custom) -> Result<BTreeSet<String>> {
        let mut out = self.in_use(kind)?;
        out.extend(
            self.custom()
                .iter()
                .filter(|(k, _)| *k == kind.key())
                .map(|(_, n)| n.clone()),
        );
        Ok(out)
    }

    async fn add_custom_name_async(&self, kind: Custom, name: &str) -> Result<bool> {
        let known = self.custom_names_async(kind).await?.contains(name);
        self.custom().insert((kind.key(), name.to_owned()));
        Ok(!known)
    }

    async fn remove_custom_name_async(&self, kind: Custom, name: &str) -> Result<()> {
        if self.in_use(kind)?.contains(name) {
            return Err(PlacementError::InUse(format!(
                "{} {name} is in use",
                kind.key()
            )));
        }
        if !self.custom().remove(&(kind.key(), name.to_owned())) {
            return Err(PlacementError::NotFound(format!("{} {name}", kind.key())));
        }
        Ok(())
    }
}
