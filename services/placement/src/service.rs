//! [`PlacementService`]: what the services need of Placement, async; and
//! [`PlacementHandle`], the cheap clone the services hold.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use nova_scheduler::placement::{
    AllocationCandidates, Allocations, CandidatesRequest, ConsumerAllocations, ConsumerWrite,
    InventoryRecord, InventoryWrite, Placement, PlacementError, ResourceProvider,
};

type Result<T> = std::result::Result<T, PlacementError>;

/// Placement as the services use it: the async twin of nova-scheduler's
/// synchronous [`Placement`] trait (the methods carry `_async` so a type
/// may implement both), plus the provider listing the API serves.
///
/// Implementations: [`SqlPlacement`](crate::SqlPlacement) (the tables, in
/// this process) and [`MemoryPlacementService`](crate::MemoryPlacementService);
/// an HTTP client of any Placement fits the same shape, since errors are
/// Placement's own: [`PlacementError::ConcurrentUpdate`] for a stale
/// provider or consumer generation (409 `placement.concurrent_update`,
/// retry with fresh data), `NotFound` (404), `InventoryInUse` /
/// `ProviderInUse` / `CannotDeleteParent` / `Duplicate` /
/// `CapacityExceeded` (409), `BadRequest` (400), and `Unavailable` when
/// the store cannot answer at all (503: a database or Placement outage,
/// which a retry at once will not cure).
#[async_trait::async_trait]
pub trait PlacementService: Send + Sync + std::fmt::Debug {
    /// `POST /resource_providers`: a root, or a child of `parent`.
    async fn create_provider_async(
        &self,
        uuid: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<ResourceProvider>;

    /// `GET /resource_providers/{uuid}`.
    async fn get_provider_async(&self, uuid: &str) -> Result<ResourceProvider>;

    /// `GET /resource_providers` (`name=` and `uuid=` filters), by name.
    async fn list_providers_async(
        &self,
        name: Option<&str>,
        uuid: Option<&str>,
    ) -> Result<Vec<ResourceProvider>>;

    /// `DELETE /resource_providers/{uuid}`: refused while it has
    /// allocations or children.
    async fn delete_provider_async(&self, uuid: &str) -> Result<()>;

    /// `GET /resource_providers/{uuid}/inventories`: the generation and
    /// the inventories.
    async fn inventories_async(
        &self,
        uuid: &str,
    ) -> Result<(u64, BTreeMap<String, InventoryRecord>)>;

    /// `PUT /resource_providers/{uuid}/inventories`: replaces them all;
    /// refused when a class in use would lose its inventory (a capacity
    /// below usage is allowed, as in Placement). Returns the new generation.
    async fn set_inventories_async(
        &self,
        uuid: &str,
        generation: u64,
        inventories: &BTreeMap<String, InventoryRecord>,
    ) -> Result<u64>;

    /// `GET /resource_providers/{uuid}/traits`: the generation and traits.
    async fn traits_async(&self, uuid: &str) -> Result<(u64, BTreeSet<String>)>;

    /// `PUT /resource_providers/{uuid}/traits`. Returns the new generation.
    async fn set_traits_async(
        &self,
        uuid: &str,
        generation: u64,
        traits: &BTreeSet<String>,
    ) -> Result<u64>;

    /// `GET /resource_providers/{uuid}/aggregates`: the generation and
    /// aggregates.
    async fn aggregates_async(&self, uuid: &str) -> Result<(u64, BTreeSet<String>)>;

    /// `PUT /resource_providers/{uuid}/aggregates`. Returns the new
    /// generation.
    async fn set_aggregates_async(
        &self,
        uuid: &str,
        generation: u64,
        aggregates: &BTreeSet<String>,
    ) -> Result<u64>;

    /// `GET /resource_providers/{uuid}/usages`: used amount per class.
    async fn usages_async(&self, uuid: &str) -> Result<BTreeMap<String, i64>>;

    /// `GET /allocation_candidates`.
    async fn allocation_candidates_async(
        &self,
        req: &CandidatesRequest,
    ) -> Result<AllocationCandidates>;

    /// `GET /allocations/{consumer}` (empty for an unknown consumer).
    async fn allocations_async(&self, consumer: &str) -> Result<ConsumerAllocations>;

    /// `PUT /allocations/{consumer}`: replaces the consumer's allocations
    /// atomically (empty deletes them). `consumer_generation` is `None`
    /// for a new consumer. Returns the consumer's new generation (`None`
    /// once it has no allocations).
    async fn put_allocations_async(
        &self,
        consumer: &str,
        allocations: &Allocations,
        project_id: &str,
        user_id: &str,
        consumer_generation: Option<u64>,
    ) -> Result<Option<u64>>;

    /// `PUT /allocations/{consumer}` with Placement's checks before the
    /// write, in Placement's order: the consumer generation (`expected`),
    /// then each provider allocated from exists, has an inventory of each
    /// class, and the amounts keep its `min_unit` / `max_unit` /
    /// `step_size` (`BadRequest` "Unable to allocate inventory: ..."),
    /// then the capacity. `consumer_type` (1.38) is recorded with the
    /// allocations. The default checks through the trait's reads, then
    /// writes; the SQL store does the checks on the write's own read.
    async fn put_allocations_checked_async(
        &self,
        consumer: &str,
        allocations: &Allocations,
        owner: (&str, &str),
        consumer_type: Option<&str>,
        expected: ConsumerGeneration,
    ) -> Result<Option<u64>> {
        let cur = self.allocations_async(consumer).await?;
        let generation = match expected {
            ConsumerGeneration::Any => cur.consumer_generation,
            ConsumerGeneration::Is(given) if given == cur.consumer_generation => given,
            ConsumerGeneration::Is(given) => {
                return Err(PlacementError::ConcurrentUpdate(consumer_conflict(
                    cur.consumer_generation,
                    given,
                )));
            }
        };
        for (rp, res) in allocations {
            let inv = match self.inventories_async(rp).await {
                Ok((_, inv)) => inv,
                Err(PlacementError::NotFound(_)) => {
                    return Err(PlacementError::BadRequest(missing_provider(rp)));
                }
                Err(e) => return Err(e),
            };
            for (rc, n) in res {
                check_amount(rp, rc, inv.get(&**rc), *n)?;
            }
        }
        let g = self
            .put_allocations_async(consumer, allocations, owner.0, owner.1, generation)
            .await?;
        if let Some(t) = consumer_type
            && !allocations.is_empty()
        {
            self.set_consumer_type_async(consumer, Some(t)).await?;
        }
        Ok(g)
    }

    /// `POST /allocations` and `POST /reshaper` (1.30): several consumers'
    /// allocations and providers' inventories, all or nothing, as
    /// Placement's one transaction: each provider in `inventories`
    /// widened to old and new (a generation bump), the allocations
    /// replaced (a bump per provider the consumers now allocate from, or
    /// a released consumer had allocations on), the inventories narrowed
    /// to the new (a bump). Each consumer's new generation (`None`:
    /// released). The default refuses it (a store that cannot).
    async fn write_many_async(
        &self,
        inventories: &[InventoryWrite],
        consumers: &[ConsumerWrite],
    ) -> Result<Vec<Option<u64>>> {
        let _ = (inventories, consumers);
        Err(PlacementError::BadRequest(
            "batch writes are not supported by this Placement".into(),
        ))
    }

    /// `DELETE /allocations/{consumer}`, whatever its generation (a
    /// consumer without allocations is fine).
    async fn delete_allocations_async(&self, consumer: &str) -> Result<()>;

    /// `PUT /resource_providers/{uuid}`: renames the provider and sets
    /// its parent (`reparent`: microversion 1.37's moves, else a parent
    /// may only be given to a root). The generation stays, as in
    /// Placement.
    async fn update_provider_async(
        &self,
        uuid: &str,
        name: &str,
        parent: Option<&str>,
        reparent: bool,
    ) -> Result<ResourceProvider>;

    /// Every consumer with allocations, with them, by uuid (optionally
    /// only those of `project_id` and `user_id`): `GET /usages` and
    /// `GET /resource_providers/{uuid}/allocations` read these.
    async fn consumers_async(
        &self,
        project_id: Option<&str>,
        user_id: Option<&str>,
    ) -> Result<Vec<(String, ConsumerAllocations)>>;

    /// The consumers with allocations against provider `uuid`
    /// (`GET /resource_providers/{uuid}/allocations`; what the resource
    /// tracker's healing reads). The default filters
    /// [`PlacementService::consumers_async`].
    async fn provider_consumers_async(&self, uuid: &str) -> Result<Vec<String>> {
        Ok(self
            .consumers_async(None, None)
            .await?
            .into_iter()
            .filter(|(_, a)| a.allocations.contains_key(uuid))
            .map(|(c, _)| c)
            .collect())
    }

    /// Records the type of a consumer that has allocations (1.38's
    /// `consumer_type`; `None`: unknown). A consumer without allocations
    /// has none to record: nothing happens.
    async fn set_consumer_type_async(
        &self,
        consumer: &str,
        consumer_type: Option<&str>,
    ) -> Result<()>;

    /// The custom resource classes or traits: those created, and those in
    /// use (`CUSTOM_*` only; the standard ones are constants).
    async fn custom_names_async(&self, kind: Custom) -> Result<BTreeSet<String>>;

    /// `POST /resource_classes`, `PUT /traits/{name}`: registers a custom
    /// name; false when it was already there.
    async fn add_custom_name_async(&self, kind: Custom, name: &str) -> Result<bool>;

    /// `DELETE /resource_classes/{name}`, `DELETE /traits/{name}`: refused
    /// (`InUse`) while an inventory or a provider uses it; `NotFound`
    /// when unknown.
    async fn remove_custom_name_async(&self, kind: Custom, name: &str) -> Result<()>;

    /// The stored times of the rows `of` names, one per row found
    /// (`Last-Modified`). `None`: this store keeps no times (the API then
    /// answers with now, as Placement does for objects without them).
    async fn times_async(&self, of: crate::Stamped<'_>) -> Result<Option<Vec<crate::Times>>> {
        let _ = of;
        Ok(None)
    }

    /// Forgets what the implementation caches for candidates, so the next
    /// query sees every write (a scheduler does this before it answers
    /// NoValidHost). Nothing to forget by default.
    fn invalidate(&self) {}
}

/// The consumer generation a `PUT /allocations/{consumer}` expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGeneration {
    /// Before 1.28: whatever it is when read (the write still fails if it
    /// moves meanwhile).
    Any,
    /// 1.28 and later: exactly this (`None`: a new consumer).
    Is(Option<u64>),
}

/// Placement's 409 when the consumer generation given is not the current
/// one (`ensure_consumer`'s wording: the current, then the given).
pub(crate) fn consumer_conflict(current: Option<u64>, given: Option<u64>) -> String {
    match (current, given) {
        (None, g) => format!(
            "consumer generation conflict - expected null but got {}",
            g.map_or("None".to_owned(), |g| g.to_string())
        ),
        (Some(c), g) => format!(
            "consumer generation conflict - expected {c} but got {}",
            g.map_or("None".to_owned(), |g| g.to_string())
        ),
    }
}

/// The start of [`consumer_conflict`]'s messages.
pub(crate) const CONSUMER_CONFLICT: &str = "consumer generation conflict - expected ";

/// Placement's 400 for an allocation from a provider that does not exist.
pub(crate) fn missing_provider(rp: &str) -> String {
    format!("Allocation for resource provider '{rp}' that does not exist.")
}

/// Placement's checks of one amount against the provider's inventory of
/// its class (`None`: no such inventory).
pub(crate) fn check_amount(
    rp: &str,
    rc: &str,
    inv: Option<&InventoryRecord>,
    n: i64,
) -> Result<()> {
    let Some(i) = inv else {
        return Err(PlacementError::BadRequest(format!(
            "Unable to allocate inventory: Inventory for '{rc}' on resource provider '{rp}' invalid."
        )));
    };
    if n < i.min_unit || n > i.max_unit || n % i.step_size.max(1) != 0 {
        return Err(PlacementError::BadRequest(format!(
            "Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{rp}'. The requested amount would violate inventory constraints."
        )));
    }
    Ok(())
}

/// The two catalogs of custom names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Custom {
    /// `CUSTOM_*` resource classes.
    ResourceClasses,
    /// `CUSTOM_*` traits.
    Traits,
}

impl Custom {
    /// The stored kind.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Custom::ResourceClasses => "resource_class",
            Custom::Traits => "trait",
        }
    }
}

/// A shared Placement, whatever its implementation: what managers and the
/// API hold. Cheap to clone; derefs to [`PlacementService`].
///
/// It is also nova-scheduler's synchronous [`Placement`], for
/// `Scheduler::select_destinations_known`: call that from a blocking
/// context (`tokio::task::spawn_blocking`) or a multi-threaded runtime.
#[derive(Debug, Clone)]
pub struct PlacementHandle(Arc<dyn PlacementService>);

impl PlacementHandle {
    /// A handle on `service`.
    pub fn new(service: impl PlacementService + 'static) -> Self {
        PlacementHandle(Arc::new(service))
    }

    /// An empty in-memory Placement (tests, embedding).
    pub fn memory() -> Self {
        Self::new(crate::MemoryPlacementService::new())
    }
}

impl From<Arc<dyn PlacementService>> for PlacementHandle {
    fn from(service: Arc<dyn PlacementService>) -> Self {
        PlacementHandle(service)
    }
}

impl Deref for PlacementHandle {
    type Target = dyn PlacementService;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

/// Runs `fut` to completion from synchronous code.
fn block<F: Future>(fut: F) -> F::Output {
    let handle = tokio::runtime::Handle::try_current()
        .unwrap_or_else(|_| panic!("PlacementHandle's Placement trait needs a tokio runtime"));
    match handle.runtime_flavor() {
        // Allowed from a blocking thread (`spawn_blocking`) only.
        tokio::runtime::RuntimeFlavor::CurrentThread => handle.block_on(fut),
        _ => tokio::task::block_in_place(|| handle.block_on(fut)),
    }
}

impl Placement for PlacementHandle {
    fn create_provider(
        &self,
        uuid: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Result<ResourceProvider> {
        block(self.0.create_provider_async(uuid, name, parent))
    }
    fn get_provider(&self, uuid: &str) -> Result<ResourceProvider> {
        block(self.0.get_provider_async(uuid))
    }
    fn delete_provider(&self, uuid: &str) -> Result<()> {
        block(self.0.delete_provider_async(uuid))
    }
    fn inventories(&self, uuid: &str) -> Result<(u64, BTreeMap<String, InventoryRecord>)> {
        block(self.0.inventories_async(uuid))
    }
    fn set_inventories(
        &self,
        uuid: &str,
        generation: u64,
        inventories: &BTreeMap<String, InventoryRecord>,
    ) -> Result<u64> {
        block(self.0.set_inventories_async(uuid, generation, inventories))
    }
    fn traits(&self, uuid: &str) -> Result<(u64, BTreeSet<String>)> {
        block(self.0.traits_async(uuid))
    }
    fn set_traits(&self, uuid: &str, generation: u64, traits: &BTreeSet<String>) -> Result<u64> {
        block(self.0.set_traits_async(uuid, generation, traits))
    }
    fn aggregates(&self, uuid: &str) -> Result<(u64, BTreeSet<String>)> {
        block(self.0.aggregates_async(uuid))
    }
    fn set_aggregates(
        &self,
        uuid: &str,
        generation: u64,
        aggregates: &BTreeSet<String>,
    ) -> Result<u64> {
        block(self.0.set_aggregates_async(uuid, generation, aggregates))
    }
    fn usages(&self, uuid: &str) -> Result<BTreeMap<String, i64>> {
        block(self.0.usages_async(uuid))
    }
    fn allocation_candidates(&self, req: &CandidatesRequest) -> Result<AllocationCandidates> {
        block(self.0.allocation_candidates_async(req))
    }
    fn delete_allocations(&self, consumer: &str) -> Result<()> {
        block(self.0.delete_allocations_async(consumer))
    }
    fn allocations(&self, consumer: &str) -> Result<ConsumerAllocations> {
        block(self.0.allocations_async(consumer))
    }
    fn put_allocations(
        &self,
        consumer: &str,
        allocations: &Allocations,
        project_id: &str,
        user_id: &str,
        consumer_generation: Option<u64>,
    ) -> Result<Option<u64>> {
        let out = block(self.0.put_allocations_async(
            consumer,
            allocations,
            project_id,
            user_id,
            consumer_generation,
        ));
        // The scheduler's claims go through here (an empty write is a
        // removal, not a claim).
        if !allocations.is_empty() {
            let outcome = match &out {
                Ok(_) => "claimed",
                Err(
                    PlacementError::ConcurrentUpdate(_)
                    | PlacementError::CapacityExceeded(_)
                    | PlacementError::InventoryInUse(_),
                ) => "conflict",
                Err(_) => "error",
            };
            metrics::counter!("nova_placement_claims_total", "outcome" => outcome).increment(1);
        }
        out
    }
}
